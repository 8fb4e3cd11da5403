"""A controller: the core workqueue driven by threads, and N workers calling `reconcile`.

The queue itself (core/queue.py) is pure: dedupe, one worker per key, delays and per-key
exponential backoff, all decided from an injected clock. `SharedQueue` puts it behind one lock
with two condition variables and adds the only thing the pure queue cannot do, waiting:
- workers block on *ready* until a key can be handed out;
- one timer thread (client-go's delaying-queue loop) sleeps until the earliest delayed key is
  due, then wakes as many workers as keys became ready. It is woken early when an earlier
  delay is added or a worker goes idle, so a delayed key is never served late, and idle
  workers never poll. It looks at the clock at least every `MAX_WAIT_S` (client-go's
  maxWait), so a clock that jumps, or a test's manual clock, is noticed.

`Controller.run` is controller-runtime's worker loop (style anchor A1): wait for the caches to
sync, start the workers, and for each key: reconcile, then act on the result through
core/wiring's `action_for`/`apply`, the switch the fleet model uses too - `done` forgets the
key, `after(s)` forgets it and adds it back after s seconds, a permanent error is logged and
forgotten (terminal), any other error is retried with the rate limiter (or after
`retry_after_s` when the error names one). An unexpected exception is a bug in a reconciler: it
is logged with its traceback and retried with backoff, never allowed to kill the worker
(controller-runtime recovers panics the same way). The key is always marked done, so the
queue's one-worker-per-key rule holds whatever happens.
"""

import logging
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from metalcubed.controllers.kube import metrics
from metalcubed.core import outcome, ports, wiring
from metalcubed.core import queue as core_queue
from metalcubed.core.api import meta

K = TypeVar("K", bound=Hashable)

log = logging.getLogger(__name__)

MAX_WAIT_S = 10.0
"""The timer looks at the clock at least this often (client-go's delaying queue maxWait), so
a clock that jumps (or a test's manual clock) is noticed."""


class Reconciler(Protocol):
    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome: ...


class Syncable(Protocol):
    """A cache a controller waits for before its first reconcile."""

    def wait_synced(self, stop: threading.Event, timeout_s: float | None = None) -> bool: ...


class SharedQueue(Generic[K]):
    """The core workqueue made thread-safe and blocking (see the module docstring)."""

    def __init__(self, queue: core_queue.WorkQueue[K], clock: ports.Clock) -> None:
        self._queue = queue
        self._clock = clock
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._timer = threading.Condition(self._lock)
        self._shutdown = False

    # --- producers ---------------------------------------------------------------------------

    def add(self, key: K) -> None:
        with self._lock:
            self._queue.add(key)
            self._ready.notify()

    def add_after(self, key: K, delay_s: float) -> None:
        with self._lock:
            self._queue.add_after(key, delay_s)
            if delay_s <= 0:
                self._ready.notify()
            else:
                self._timer.notify()

    def add_rate_limited(self, key: K) -> None:
        with self._lock:
            self._queue.add_rate_limited(key)
            self._timer.notify()

    def forget(self, key: K) -> None:
        with self._lock:
            self._queue.forget(key)

    def num_requeues(self, key: K) -> int:
        with self._lock:
            return self._queue.num_requeues(key)

    # --- consumers ---------------------------------------------------------------------------

    def get(self) -> K | None:
        """The next ready key (now processing), blocking; None once shut down."""
        with self._lock:
            while not self._shutdown:
                key = self._queue.get()
                if key is not None:
                    return key
                self._timer.notify()  # an idle worker: make sure the timer watches the clock
                self._ready.wait()
            return None

    def done(self, key: K) -> None:
        with self._lock:
            self._queue.done(key)
            if len(self._queue):
                self._ready.notify()

    def run_timer(self) -> None:
        """The timer loop: wake workers when delayed keys come due. Returns on shutdown."""
        with self._lock:
            while not self._shutdown:
                ready = len(self._queue)  # promotes the keys whose time has come
                if ready:
                    self._ready.notify(ready)
                at = self._queue.next_ready_at()
                if at is None or ready:
                    # Nothing delayed, or keys wait for busy workers (who call get() when
                    # free, which promotes due keys itself): sleep until something changes.
                    self._timer.wait()
                    continue
                wait_s = (at - self._clock.now()).total_seconds()
                self._timer.wait(min(max(wait_s, 0.001), MAX_WAIT_S))

    def shutdown(self) -> None:
        with self._lock:
            self._shutdown = True
            self._ready.notify_all()
            self._timer.notify_all()

    # --- observing ---------------------------------------------------------------------------

    def stats(self) -> tuple[int, core_queue.QueueMetrics]:
        with self._lock:
            m = self._queue.metrics
            return self._queue.depth, core_queue.QueueMetrics(
                adds=m.adds, retries=m.retries, gets=m.gets, wait_s_total=m.wait_s_total,
                longest_wait_s=m.longest_wait_s,
            )

    def next_ready_at(self) -> datetime | None:
        """When the earliest delayed key is due (None: nothing delayed)."""
        with self._lock:
            return self._queue.next_ready_at()

    def idle(self) -> bool:
        """Nothing ready, nothing being processed (delayed keys may be pending)."""
        with self._lock:
            return len(self._queue) == 0 and self._queue.processing == 0


class Controller:
    """One reconciler, its workqueue and its workers. A runnable that needs leadership."""

    need_leader_election = True

    def __init__(
        self,
        name: str,
        reconciler: Reconciler,
        *,
        clock: ports.Clock,
        workers: int,
        caches: Sequence[Syncable] = (),
        runtime_metrics: metrics.RuntimeMetrics | None = None,
        rate_limiter: core_queue.RateLimiter | None = None,
        shutdown_timeout_s: float = 30.0,
    ) -> None:
        if workers < 1:
            raise ValueError(f"controller {name}: workers must be >= 1, got {workers}")
        self.name = name
        self.workers = workers
        self._reconciler = reconciler
        self._caches = tuple(caches)
        self._metrics = runtime_metrics
        self._shutdown_timeout_s = shutdown_timeout_s
        self.queue: SharedQueue[meta.ObjectKey] = SharedQueue(
            core_queue.WorkQueue(clock, rate_limiter=rate_limiter), clock
        )
        self._active = 0
        self._active_lock = threading.Lock()
        self.started = threading.Event()
        if runtime_metrics is not None:
            runtime_metrics.watch_queue(name, self.queue.stats)
            runtime_metrics.max_concurrent.labels(controller=name).set(workers)
            runtime_metrics.active_workers.labels(controller=name).set(0)

    def enqueue(self, key: meta.ObjectKey) -> None:
        """Ask for a reconcile of `key` (event handlers call this; never blocks for long)."""
        self.queue.add(key)

    # --- the runnable --------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        for cache in self._caches:
            if not cache.wait_synced(stop):
                return
        timer = threading.Thread(target=self.queue.run_timer, name=f"{self.name}-timer",
                                 daemon=True)
        timer.start()
        threads = [
            threading.Thread(target=self._work, name=f"{self.name}-worker-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for thread in threads:
            thread.start()
        log.info("controller %s: started %d workers", self.name, self.workers)
        self.started.set()
        stop.wait()
        log.info("controller %s: stopping; waiting for in-flight reconciles", self.name)
        self.queue.shutdown()
        deadline = time.monotonic() + self._shutdown_timeout_s
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        timer.join(timeout=1.0)
        left = sum(t.is_alive() for t in threads)
        if left:
            log.warning("controller %s: %d workers still busy after %.0fs", self.name, left,
                        self._shutdown_timeout_s)

    def _work(self) -> None:
        while True:
            key = self.queue.get()
            if key is None:
                return
            self._process(key)

    def _process(self, key: meta.ObjectKey) -> None:
        m = self._metrics
        with self._active_lock:
            self._active += 1
            active = self._active
        if m is not None:
            m.active_workers.labels(controller=self.name).set(active)
        started = time.monotonic()
        label = "error"
        q = self.queue
        try:
            result: outcome.Outcome | Exception
            try:
                result = self._reconciler.reconcile(key)
            except Exception as exc:
                result = exc
            action = wiring.action_for(result)
            wiring.apply(action, q, key)
            label = action.result
            error = action.error
            if error is None:
                return
            if action.unexpected:
                log.error("reconcile %s %s: unexpected exception (retried with backoff)",
                          self.name, key, exc_info=error)
                if m is not None:
                    m.reconcile_panics.labels(controller=self.name).inc()
            elif action.verdict is wiring.Verdict.STOP:
                log.warning("reconcile %s %s: terminal error, not retried: %s", self.name, key,
                            error)
                if m is not None:
                    m.terminal_errors.labels(controller=self.name).inc()
            else:
                level = logging.DEBUG if isinstance(error, outcome.Conflict) else logging.INFO
                log.log(level, "reconcile %s %s: %s (retry %d)", self.name, key, error,
                        q.num_requeues(key))
        finally:
            q.done(key)
            with self._active_lock:
                self._active -= 1
                active = self._active
            if m is not None:
                elapsed = time.monotonic() - started
                m.active_workers.labels(controller=self.name).set(active)
                m.reconcile_total.labels(controller=self.name, result=label).inc()
                m.reconcile_time.labels(controller=self.name).observe(elapsed)
                m.queue_work_duration.labels(name=self.name, controller=self.name).observe(
                    elapsed
                )
                if label == "error":
                    m.reconcile_errors.labels(controller=self.name).inc()


# --- event handlers: informer changes -> workqueue keys ----------------------------------------

R = TypeVar("R", bound=meta.Resource)


def enqueue_changes(
    enqueue: Callable[[meta.ObjectKey], None],
    watch: "wiring.Watch[R]",
    lookup: wiring.IndexLookup,
) -> Callable[[R | None, R | None], None]:
    """An informer handler: map each change through core/wiring (the watch's update filter and
    mapper, the same ones the fleet model applies) and enqueue the keys."""

    def handle(old: R | None, new: R | None) -> None:
        for key in wiring.keys_for_change(watch, old, new, lookup):
            enqueue(key)

    return handle
