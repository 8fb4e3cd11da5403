"""`ports.EventRecorder` over the core/v1 Events API, aggregated the way client-go's recorder is.

A reconciler's `record` call must never block a worker on the API server, so it only appends
to a bounded in-memory queue; sender threads write the Events. Events are sharded over the
senders by object, so one object's Events stay in order and each sender keeps the correlation
state of its own objects (no lock on the hot path). Two senders by default: enough to keep up
with a fleet's steady state, few enough that during a mass enrollment the API server's capacity
goes to the hosts first and Events catch up afterwards (they are diagnostics; the host's status
is current either way). When a
queue is full the event is dropped and counted (the port is best effort: Events are a
diagnostic, status is the record of truth).

Aggregation follows client-go's EventCorrelator:
- the same (object, type, reason, message) seen again is not a new Event: the existing one is
  patched with `count + 1` and a new `lastTimestamp` (an LRU of 4096 recent Events; a patch that
  meets a 404, because the Event expired, creates a fresh one);
- a spam filter per object (core's token bucket: 25, refilled one every 5 minutes) drops the
  excess from an object that emits Events in a loop;
- a send that fails because the API server is unreachable or overloaded is tried again a few
  times with a growing pause (MAX_TRIES), without holding up the Events queued behind it.
Events carry upstream's source: component `metal3-baremetal-controller`, reporting controller
`metal3.io/baremetal-controller`, and the manager's identity as reporting instance.
"""

import dataclasses
import heapq
import itertools
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client as k8s

from metalcubed.controllers.kube import metrics
from metalcubed.core import ports, ratelimit
from metalcubed.core.api import meta

log = logging.getLogger(__name__)

COMPONENT = "metal3-baremetal-controller"
REPORTING_CONTROLLER = "metal3.io/baremetal-controller"
MAX_MESSAGE_LENGTH = 1024
_LRU_SIZE = 4096
_SPAM_BURST = 25
_SPAM_REFILL_S = 300.0
MAX_TRIES = 5
"""Sends of one Event while the API server is unreachable or failing (5xx, 429), spaced
1, 2, 4, 8 s apart (client-go tries 12 times, 10 s apart)."""


@dataclass(frozen=True, slots=True)
class _Pending:
    namespace: str
    involved: dict[str, str]
    type: str
    reason: str
    message: str
    at: datetime
    attempt: int = 0


@dataclass(slots=True)
class _Seen:
    name: str
    count: int
    first: str


def _retryable(exc: Exception) -> bool:
    """The API server was unreachable, overloaded or failing: worth another try."""
    if isinstance(exc, k8s.ApiException):
        return exc.status in (0, 429) or exc.status >= 500
    return isinstance(exc, (urllib3.exceptions.HTTPError, OSError))


def _timestamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class K8sEventRecorder:
    """Records Events without blocking the caller; a runnable sends them (no leadership)."""

    name = "event-recorder"
    need_leader_election = False

    def __init__(
        self,
        api: k8s.ApiClient,
        *,
        reporting_instance: str,
        component: str = COMPONENT,
        reporting_controller: str = REPORTING_CONTROLLER,
        senders: int = 2,
        queue_size: int = 10000,
        runtime_metrics: metrics.RuntimeMetrics | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._now = now
        self._metrics = runtime_metrics
        self._senders = [
            _Sender(
                api,
                component=component,
                reporting_controller=reporting_controller,
                instance=reporting_instance,
                queue_size=max(1, queue_size // max(1, senders)),
                count=self._count,
                monotonic=monotonic,
            )
            for _ in range(max(1, senders))
        ]

    # --- ports.EventRecorder ---------------------------------------------------------------

    def record(
        self, obj: meta.Resource, *, type: ports.EventType, reason: str, message: str
    ) -> None:
        if len(message) > MAX_MESSAGE_LENGTH:
            message = message[: MAX_MESSAGE_LENGTH - 3] + "..."
        involved = {
            "apiVersion": obj.api_version,
            "kind": obj.kind,
            "name": obj.metadata.name,
            "namespace": obj.metadata.namespace,
            "uid": obj.metadata.uid or "",
            "resourceVersion": obj.metadata.resource_version or "",
        }
        pending = _Pending(
            namespace=obj.metadata.namespace or "default",
            involved=involved,
            type=type.value,
            reason=reason,
            message=message,
            at=self._now(),
        )
        shard = hash((obj.kind, obj.metadata.namespace, obj.metadata.name)) % len(self._senders)
        try:
            self._senders[shard].queue.put_nowait(pending)
        except queue.Full:
            self._count("dropped")

    # --- the runnable ------------------------------------------------------------------------

    def run(self, stop: threading.Event, *, drain_s: float = 5.0) -> None:
        """Send queued Events until `stop`, then flush what is queued for up to `drain_s`."""
        threads = [
            threading.Thread(target=sender.run, args=(stop, drain_s),
                             name=f"event-sender-{i}", daemon=True)
            for i, sender in enumerate(self._senders)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queue is empty (tests); True when they emptied in time."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(s.queue.empty() for s in self._senders):
                return True
            time.sleep(0.05)
        return all(s.queue.empty() for s in self._senders)

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.events_sent.labels(outcome=outcome).inc()


class _Sender:
    """One sender thread's queue and correlation state (its shard of the objects)."""

    def __init__(
        self,
        api: k8s.ApiClient,
        *,
        component: str,
        reporting_controller: str,
        instance: str,
        queue_size: int,
        count: Callable[[str], None],
        monotonic: Callable[[], float],
    ) -> None:
        self._api = api
        self._component = component
        self._reporting_controller = reporting_controller
        self._instance = instance
        self.queue: queue.Queue[_Pending] = queue.Queue(maxsize=queue_size)
        self._count = count
        self._monotonic = monotonic
        self._seen: OrderedDict[tuple[str, ...], _Seen] = OrderedDict()
        self._spam: dict[tuple[str, ...], ratelimit.TokenBucket] = {}
        self._retries: list[tuple[float, int, _Pending]] = []
        self._tie = itertools.count()

    def run(self, stop: threading.Event, drain_s: float) -> None:
        while not stop.is_set():
            wait_s = 0.2
            if self._retries:
                due_in = self._retries[0][0] - self._monotonic()
                if due_in <= 0:
                    self._send(heapq.heappop(self._retries)[2])
                    continue
                wait_s = min(wait_s, due_in)
            try:
                item = self.queue.get(timeout=wait_s)
            except queue.Empty:
                continue
            self._send(item)
        deadline = self._monotonic() + drain_s
        while self._monotonic() < deadline:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return
            self._send(item)

    def _send(self, p: _Pending) -> None:
        inv = p.involved
        obj_key = (inv["namespace"], inv["kind"], inv["name"], inv["uid"])
        if p.attempt == 0 and not self._allow(obj_key):
            self._count("spam_filtered")
            return
        key = (*obj_key, p.type, p.reason, p.message)
        seen = self._seen.get(key)
        try:
            if seen is not None:
                self._seen.move_to_end(key)
                if self._patch(p, seen):
                    self._count("aggregated")
                    return
            name = f"{inv['name']}.{time.time_ns():x}"
            self._create(p, name)
            self._seen[key] = _Seen(name=name, count=1, first=_timestamp(p.at))
            while len(self._seen) > _LRU_SIZE:
                self._seen.popitem(last=False)
            self._count("created")
        except Exception as exc:  # best effort: an Event must never take the sender down
            if _retryable(exc) and p.attempt + 1 < MAX_TRIES:
                self._count("retried")
                due = self._monotonic() + 2.0**p.attempt
                retry = dataclasses.replace(p, attempt=p.attempt + 1)
                heapq.heappush(self._retries, (due, next(self._tie), retry))
                return
            self._count("failed")
            log.warning("event %s on %s %s/%s not recorded: %s", p.reason, inv["kind"],
                        inv["namespace"], inv["name"], exc)

    def _allow(self, obj_key: tuple[str, ...]) -> bool:
        bucket = self._spam.get(obj_key)
        if bucket is None:
            if len(self._spam) > _LRU_SIZE:
                self._spam.clear()
            bucket = self._spam[obj_key] = ratelimit.TokenBucket(
                qps=1.0 / _SPAM_REFILL_S, burst=_SPAM_BURST
            )
        return bucket.allow(self._monotonic())

    def _create(self, p: _Pending, name: str) -> None:
        stamp = _timestamp(p.at)
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": p.namespace},
            "involvedObject": {k: v for k, v in p.involved.items() if v},
            "reason": p.reason,
            "message": p.message,
            "type": p.type,
            "source": {"component": self._component},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "reportingComponent": self._reporting_controller,
            "reportingInstance": self._instance,
        }
        self._api.call_api(
            f"/api/v1/namespaces/{p.namespace}/events", "POST",
            header_params={"Content-Type": "application/json", "Accept": "application/json"},
            body=body, auth_settings=["BearerToken"], response_types_map={},
            _return_http_data_only=True, _request_timeout=10,
        )

    def _patch(self, p: _Pending, seen: _Seen) -> bool:
        """Bump the count of an existing Event; False when it is gone (create a new one)."""
        patch = {"count": seen.count + 1, "lastTimestamp": _timestamp(p.at)}
        try:
            self._api.call_api(
                f"/api/v1/namespaces/{p.namespace}/events/{seen.name}", "PATCH",
                header_params={
                    "Content-Type": "application/merge-patch+json",
                    "Accept": "application/json",
                },
                body=patch, auth_settings=["BearerToken"], response_types_map={},
                _return_http_data_only=True, _request_timeout=10,
            )
        except k8s.ApiException as exc:
            if exc.status == 404:
                return False
            raise
        seen.count += 1
        return True
