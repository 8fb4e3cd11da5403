"""What a reconcile pass costs in simulated time (DESIGN rule 4), and the adapters that bill it.

In the fleet model a reconcile runs in zero simulated time, then its worker stays busy for the
pass's *bill*: the modelled latency of every port call it made. Reads from the informer cache
are free; every API write pays a round trip and first waits for a token from the client's
rate limiter (client-go's token bucket, BMO's --kube-api-qps 20 / --kube-api-burst 30); every
provisioner (Ironic API) request pays its latency. So the model's workers saturate, queue and
throttle where the real controller's would.

`Meter` is the bill of the pass in progress (the sim runs one pass at a time, so one meter
serves every worker); `MeteredStore` and the provisioner adapter charge it. Writes made outside
a pass (the workload, i.e. the user's kubectl) go to the raw store and are not billed.
"""

import random
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from metalcubed.core import ports, ratelimit
from metalcubed.core.api import meta
from metalcubed.simulators.fleet import distribution as dist

R = TypeVar("R", bound=meta.Resource)


class Meter:
    """The simulated seconds the current reconcile pass has spent so far."""

    __slots__ = ("bill_s", "rng")

    def __init__(self, rng: random.Random) -> None:
        self.bill_s = 0.0
        self.rng = rng
        """Draws latencies (one stream for all costs, separate from behaviour randomness)."""

    def start(self) -> None:
        self.bill_s = 0.0

    def charge(self, seconds: float) -> None:
        self.bill_s += seconds


class ApiStats:
    """API writes by verb, and the time spent waiting for the client rate limiter."""

    __slots__ = ("throttle_wait_s", "throttled", "writes")

    def __init__(self) -> None:
        self.writes: Counter[str] = Counter()
        self.throttled = 0
        self.throttle_wait_s = 0.0


class MeteredStore:
    """A `ports.Store` that bills writes (rate limiter wait + latency) to the current pass."""

    def __init__(
        self,
        store: ports.Store,
        meter: Meter,
        *,
        latency: dist.Distribution,
        qps: float,
        burst: int,
        now_s: Callable[[], float],
        epoch: datetime,
        stats: ApiStats,
    ) -> None:
        self._store = store
        self._meter = meter
        self._latency = latency
        self._bucket = ratelimit.TokenBucket(qps=qps, burst=burst)
        self._now_s = now_s
        self._epoch = epoch
        self._stats = stats
        # Reads go straight to the store: no frame of our own on the hot path.
        self.get = store.get  # type: ignore[method-assign]
        self.list = store.list  # type: ignore[method-assign]

    def _bill(self, verb: str) -> None:
        meter = self._meter
        at = self._now_s() + meter.bill_s
        wait = self._bucket.reserve(at)
        stats = self._stats
        stats.writes[verb] += 1
        if wait > 0:
            stats.throttled += 1
            stats.throttle_wait_s += wait
        meter.charge(wait + self._latency.draw(meter.rng))

    # --- reads: the informer cache, free ---------------------------------------------------------

    def get(self, kind: type[R], key: meta.ObjectKey) -> R:
        return self._store.get(kind, key)

    def list(
        self, kind: type[R], *, namespace: str | None = None, label_selector: str | None = None
    ) -> list[R]:
        return self._store.list(kind, namespace=namespace, label_selector=label_selector)

    def watch(
        self,
        kind: type[R],
        handler: Callable[[ports.WatchEvent[R]], None],
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
    ) -> ports.Watch:
        return self._store.watch(
            kind, handler, namespace=namespace, resource_version=resource_version,
            label_selector=label_selector,
        )

    # --- writes: API calls ------------------------------------------------------------------------

    def create(self, obj: R) -> R:
        self._bill("create")
        return self._store.create(obj)

    def update(self, obj: R) -> R:
        self._bill("update")
        return self._store.update(obj)

    def update_status(self, obj: R) -> R:
        self._bill("update_status")
        return self._store.update_status(obj)

    def add_owner(self, obj: R, owner: meta.OwnerReference) -> R:
        self._bill("patch")
        return self._store.add_owner(obj, owner)

    def delete(self, kind: type[R], key: meta.ObjectKey) -> None:
        self._bill("delete")
        self._store.delete(kind, key)


class SimEvents:
    """A `ports.EventRecorder` that counts Events by type and reason.

    Events go out through the recorder's own client in the background (client-go's broadcaster),
    so they cost the reconcile pass nothing.
    """

    def __init__(self) -> None:
        self.by_reason: Counter[str] = Counter()
        self.warnings = 0

    def record(
        self, obj: meta.Resource, *, type: ports.EventType, reason: str, message: str
    ) -> None:
        self.by_reason[reason] += 1
        if type == ports.EventType.WARNING:
            self.warnings += 1


class SimMetrics:
    """A `ports.Metrics` that keeps upstream BMO's counters (histograms: count and sum)."""

    def __init__(self) -> None:
        self.counters: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        self.sums: dict[str, float] = {}
        self.counts: Counter[str] = Counter()

    def inc(self, name: str, labels: dict[str, str] | None = None) -> None:
        key = (name, tuple(sorted(labels.items())) if labels else ())
        self.counters[key] += 1

    def observe(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        self.sums[name] = self.sums.get(name, 0.0) + value
        self.counts[name] += 1

    def total(self, name: str) -> int:
        return sum(count for (metric, _), count in self.counters.items() if metric == name)

    def by_label(self, name: str, label: str) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (metric, labels), count in self.counters.items():
            if metric == name:
                out[dict(labels).get(label, "")] += count
        return dict(out)
