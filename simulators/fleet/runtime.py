"""The fleet model's controller runtime: simulated clock, workqueues, workers, watch delivery.

The same pieces as the kube runtime, with a different way to wait: per controller, core's
`WorkQueue` (dedupe, per-key serialization, rate-limited retries, delays) under N simpy worker
slots, each running that controller's real reconciler. The controllers are core/controllerset's
list, the one controllers/manager.py's compose() runs, over `Informers`: one cache per kind,
shared by every controller that watches or indexes it, as the manager's shared informers. A
worker takes a key, runs one pass (zero simulated time), then holds its slot for the pass's
bill (`cost.Meter`: API writes, provisioner requests, CPU) before acting on the outcome as
controller-runtime does:

core/wiring.py's `action_for`/`apply`, the switch the kube worker uses too:

    done      -> forget
    after(s)  -> forget, add_after(s)
    raised    -> add_rate_limited (add_after(retry_after_s) when the error gives one;
                 PermanentError: forget, no retry)

Watch events of every kind a controller watches (e.g. core/wiring.BAREMETALHOST: hosts through
BMO's update filter, Secrets through the host index, HardwareData to its owner host) are mapped
to keys by `wiring.keys_for_change`, exactly as the kube informers' handlers map them, and
reach that controller's queue after the modelled watch latency, counted from the moment the
write lands (the writer's bill so far).
Workers are slots, not processes; an alarm armed at the queue's next ready time starts passes
when slots are free, so an idle controller costs no simulated ticks.
"""

import logging
import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

import simpy

from metalcubed.core import clock, outcome, ports, queue, wiring
from metalcubed.core.api import meta
from metalcubed.core.ports import WatchEvent, WatchEventType
from metalcubed.simulators.fleet import cost
from metalcubed.simulators.fleet import distribution as dist

log = logging.getLogger(__name__)

EPOCH = clock.EPOCH
"""Simulated time zero: a fixed UTC instant, so timestamps in the store are reproducible."""


class SimClock:
    """`ports.Clock` over simpy's `env.now` (seconds since `epoch`)."""

    __slots__ = ("_cached", "_cached_at", "_env", "epoch")

    def __init__(self, env: simpy.Environment, epoch: datetime) -> None:
        self._env = env
        self.epoch = epoch
        self._cached_at = -1.0
        self._cached = epoch

    def now(self) -> datetime:
        now = self._env.now
        if now != self._cached_at:
            self._cached_at = now
            self._cached = self.epoch + timedelta(seconds=now)
        return self._cached

    def seconds(self, when: datetime) -> float:
        return (when - self.epoch).total_seconds()


class Reconciler(Protocol):
    """What the runtime needs of a reconciler (core's BareMetalHostReconciler fits)."""

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome: ...


class ControllerStats:
    __slots__ = (
        "busy_s",
        "delayed_gaps",
        "errors",
        "passes",
        "peak_busy",
        "permanent_errors",
        "reconcile_wall_s",
        "unexpected_errors",
    )

    def __init__(self) -> None:
        self.passes = 0
        self.peak_busy = 0
        self.busy_s = 0.0
        self.errors: dict[str, int] = {}
        self.permanent_errors = 0
        self.unexpected_errors = 0
        """Passes that raised something other than a MetalcubedError (a bug; retried)."""
        self.reconcile_wall_s = 0.0
        """Wall-clock seconds spent inside the reconciler (for benchmarks; not in reports)."""
        self.delayed_gaps: list[float] = []
        """Seconds between consecutive passes over a host that is `delayed`."""


_Passed = tuple[meta.ObjectKey, outcome.Outcome | Exception, int]
"""What a finished pass hands to `_finish`: the key, its outcome or what it raised, and the
epoch (process) it ran in."""


class Informers:
    """The shared caches: per kind, the last copy seen of each object (the `old` of the next
    update) and the indexes on it; each change is handed to every controller watching the kind.

    Subscribes to the store once per kind, whatever the number of controllers.
    """

    def __init__(self, controllers: "list[Controller]") -> None:
        self._seen: dict[type[meta.Resource], dict[meta.ObjectKey, meta.Resource]] = {}
        self._indexes: dict[str, wiring.IndexTable] = {}
        self._by_kind: dict[type[meta.Resource], list[wiring.IndexTable]] = {}
        self._watchers: dict[type[meta.Resource], list[tuple[Controller, wiring.Watch[Any]]]] = {}
        for controller in controllers:
            w = controller.wiring
            for kind in w.kinds:
                self._seen.setdefault(kind, {})
                self._watchers.setdefault(kind, [])
            for index in w.indexes:
                if index.name not in self._indexes:
                    table = self._indexes[index.name] = wiring.IndexTable(index)
                    self._by_kind.setdefault(index.kind, []).append(table)
            for watch in w.watches:
                self._watchers[watch.kind].append((controller, watch))

    @property
    def kinds(self) -> tuple[type[meta.Resource], ...]:
        return tuple(self._seen)

    def watch(self, store: ports.Store) -> None:
        for kind in self._seen:
            store.watch(kind, self.on_watch)

    def lookup(self, index: str, value: str) -> list[meta.ObjectKey]:
        return self._indexes[index].keys(value)

    def on_watch(self, event: WatchEvent[Any]) -> None:
        """The informers' event handler: update the cache and indexes, then let each watching
        controller map the change to its keys (core/wiring) and queue them.

        Runs synchronously inside whatever wrote (often another pass), so it only queues and
        sets alarms; passes start from callbacks.
        """
        obj: meta.Resource = event.object
        kind = type(obj)
        seen = self._seen.get(kind)
        if seen is None:
            return
        key = obj.key
        old: meta.Resource | None
        new: meta.Resource | None
        tables = self._by_kind.get(kind, ())
        deleted = event.type == WatchEventType.DELETED
        if deleted:
            old, new = seen.pop(key, None) or obj, None
            for table in tables:
                table.delete(key)
        else:
            old, new = seen.get(key), obj
            seen[key] = obj
            for table in tables:
                table.put(obj)
        for controller, watch in self._watchers[kind]:
            if deleted and kind is controller.wiring.kind:
                controller.forget(key)
            keys = wiring.keys_for_change(watch, old, new, self.lookup)
            if keys:  # none: e.g. a status-only host update, BMO's predicate drops it
                controller.enqueue(keys)


class Controller:
    """One controller's workers over core's workqueue.

    Workers are a count of free slots, not processes: a pass starts (in a simpy callback, never
    inside another pass) when a key is ready and a slot is free, and its slot is released by a
    timeout of the pass's bill. Per pass that is one scheduled event.
    """

    def __init__(
        self,
        env: simpy.Environment,
        *,
        clock: SimClock,
        reconciler: Reconciler,
        concurrency: int,
        meter: cost.Meter,
        watch_latency: dist.Distribution,
        reconcile_cpu: dist.Distribution,
        is_delayed: Callable[[meta.ObjectKey], bool] = lambda key: False,
        wiring_: wiring.Wiring = wiring.BAREMETALHOST,
    ) -> None:
        self._env = env
        self._clock = clock
        self._reconciler = reconciler
        self._meter = meter
        self._watch_latency = watch_latency
        self._cpu = reconcile_cpu
        self._is_delayed = is_delayed
        self.queue: queue.WorkQueue[meta.ObjectKey] = queue.WorkQueue(clock)
        self.concurrency = concurrency
        self._free = concurrency
        self._alarm_at = math.inf
        self.wiring = wiring_
        self.name = wiring_.name
        self._last_pass: dict[meta.ObjectKey, float] = {}
        self._own: Informers | None = None
        self._epoch = 0
        """Bumped by `restart`: passes of an earlier process are not acted on."""
        self.restarts = 0
        self.stats = ControllerStats()

    # --- watch events ----------------------------------------------------------------------------

    def watch(self, store: ports.Store) -> None:
        """Run alone: own caches over the store (several controllers share one `Informers`)."""
        self.informers().watch(store)

    def on_watch(self, event: WatchEvent[Any]) -> None:
        """A change as the controller's own informers hear it (run alone)."""
        self.informers().on_watch(event)

    def informers(self) -> "Informers":
        if self._own is None:
            self._own = Informers([self])
        return self._own

    def forget(self, key: meta.ObjectKey) -> None:
        """The reconciled object is gone."""
        self._last_pass.pop(key, None)

    def enqueue(self, keys: list[meta.ObjectKey]) -> None:
        """Queue `keys` after the watch latency (from when the write that caused it lands)."""
        delay = self._meter.bill_s + self._watch_latency.draw(self._meter.rng)
        for k in keys:
            self.queue.add_after(k, delay)
        if self._free:
            self._alarm(self._env.now + delay)

    def restart(self, keys: list[meta.ObjectKey]) -> None:
        """The controller's process restarts: what its queue held (ready and delayed keys,
        backoff counts) is lost, passes in flight have made their writes but are not acted on,
        and the new process's informers list every object (`keys`) and queue them."""
        self._epoch += 1
        self.restarts += 1
        self.queue = queue.WorkQueue(self._clock)
        self._last_pass.clear()
        self.enqueue(keys)

    # --- passes -----------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Start passes while keys are ready and slots free; then arm the alarm."""
        work = self.queue
        while self._free:
            key = work.get()
            if key is None:
                at = work.next_ready_at()
                if at is not None:
                    self._alarm(self._clock.seconds(at))
                return
            self._start(key)

    def _start(self, key: meta.ObjectKey) -> None:
        env = self._env
        meter = self._meter
        stats = self.stats
        self._free -= 1
        busy = self.concurrency - self._free
        if busy > stats.peak_busy:
            stats.peak_busy = busy
        now = env.now
        if self._is_delayed(key):
            last = self._last_pass.get(key)
            if last is not None:
                stats.delayed_gaps.append(now - last)
        self._last_pass[key] = now
        meter.start()
        result: outcome.Outcome | Exception
        started = time.perf_counter()
        try:
            result = self._reconciler.reconcile(key)
        except Exception as exc:
            result = exc  # acted on in _finish, as the kube worker does (core/wiring)
        stats.reconcile_wall_s += time.perf_counter() - started
        bill = meter.bill_s + self._cpu.draw(meter.rng)
        meter.start()
        stats.passes += 1
        stats.busy_s += bill
        finish = env.timeout(bill, value=(key, result, self._epoch))
        finish.callbacks.append(self._finish)

    def _finish(self, event: simpy.Event) -> None:
        key, result, epoch = cast(_Passed, event.value)
        work = self.queue
        if epoch != self._epoch:  # the process that ran this pass is gone
            self._free += 1
            self._dispatch()
            return
        action = wiring.action_for(result)
        if action.error is not None:
            stats = self.stats
            name = type(action.error).__name__
            stats.errors[name] = stats.errors.get(name, 0) + 1
            if action.verdict is wiring.Verdict.STOP:
                stats.permanent_errors += 1
            if action.unexpected:
                stats.unexpected_errors += 1
                if stats.errors[name] == 1:  # a bug in a reconciler: show the first of a kind
                    log.error("reconcile %s: unexpected exception (retried with backoff)", key,
                              exc_info=action.error)
        wiring.apply(action, work, key)
        work.done(key)
        self._free += 1
        if len(work):  # keys became ready while every slot was busy
            self._dispatch()
            return
        at = work.next_ready_at()  # this slot is free now: be woken when the next key is due
        if at is not None:
            self._alarm(self._clock.seconds(at))

    def _alarm(self, when: float) -> None:
        """Make sure a dispatch happens at `when` (simulated seconds)."""
        when += 1e-6  # past the key's ready instant despite datetime rounding
        if when < self._alarm_at:
            self._alarm_at = when
            alarm = self._env.timeout(max(0.0, when - self._env.now), value=when)
            alarm.callbacks.append(self._ring)

    def _ring(self, event: simpy.Event) -> None:
        # Compare the instant the alarm was armed for, not env.now: now + (when - now) can
        # land one float step below `when`, and an alarm left armed in the past would swallow
        # every later one (the controller would stall with keys ready).
        if cast(float, event.value) >= self._alarm_at:
            self._alarm_at = math.inf
        self._dispatch()
