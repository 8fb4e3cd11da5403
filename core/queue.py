"""The controller workqueue: per-key serialization, dedupe, delays and rate-limited retries.

A reconciler is told *which* object to look at, never what happened (STYLE 1), so the queue
holds keys, not events. It is client-go's workqueue (the one controller-runtime uses) as a plain
data structure with no threads, shared by the fleet model (simulated clock, simpy workers) and
the kube runtime (wall clock, worker threads holding a lock around it):

- Dedupe: a key added while it is already waiting is queued once (`add` on a queued key is a
  no-op), so a burst of watch events costs one reconcile.
- Per-key serialization: a key handed out by `get` is *processing* until `done`; adding it
  meanwhile marks it dirty, and `done` puts it back at the end of the queue. Two workers
  therefore never reconcile the same object at once, and no change is lost.
- Delays: `add_after(key, delay_s)` makes the key ready later; when it is already waiting the
  earliest time wins. A delayed key is independent of an immediate `add` of the same key (as
  in client-go, the delayed entry still fires later and is deduped if still queued).
- Retries: `add_rate_limited(key)` = `add_after(key, limiter.when(key))` with client-go's
  DefaultControllerRateLimiter: the max of a per-key exponential backoff (5 ms * 2^failures,
  capped at 1000 s) and an overall token bucket (10 per second, burst 100; the one bucket of
  `ratelimit`). `forget(key)` resets the key's failure count (after a successful reconcile).
- Order: FIFO among ready keys; delayed keys join the FIFO in the order of their ready time.

Time comes only from the injected `ports.Clock`: a runtime asks `next_ready_at()` to know when
to wake and calls `get()` then; nothing here blocks or sleeps. Not thread-safe by itself.

How a runtime uses it (controller-runtime's reconcileHandler):
    key = q.get();  outcome = reconcile(key)
    done            -> q.forget(key)
    after(s)        -> q.forget(key); q.add_after(key, s)
    raised error    -> q.add_rate_limited(key)  (or add_after(retry_after_s) when given)
    finally         -> q.done(key)
"""

import heapq
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, Protocol, TypeVar

from metalcubed.core import ports, ratelimit

K = TypeVar("K", bound=Hashable)

_MAX_EXPONENT = 64
"""Beyond 2**64 * base every backoff is capped anyway; stops float overflow."""


class RateLimiter(Protocol):
    """How long a key waits before its next retry (client-go workqueue.RateLimiter)."""

    def when(self, key: Hashable, now: datetime) -> float:
        """The delay in seconds for this retry of `key`; records the retry."""
        ...

    def forget(self, key: Hashable) -> None:
        """Stop tracking `key` (its next failure starts from scratch)."""
        ...

    def num_requeues(self, key: Hashable) -> int:
        """Retries of `key` since it was last forgotten."""
        ...


class ItemExponentialBackoff:
    """Per-key exponential backoff: base_s * 2^failures, capped at max_s."""

    def __init__(self, *, base_s: float = 0.005, max_s: float = 1000.0) -> None:
        self._base_s = base_s
        self._max_s = max_s
        self._failures: dict[Hashable, int] = {}

    def when(self, key: Hashable, now: datetime) -> float:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        return min(self._base_s * 2.0 ** min(failures, _MAX_EXPONENT), self._max_s)

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: Hashable) -> int:
        return self._failures.get(key, 0)


class BucketRateLimiter:
    """An overall limit on retries: every retry of any key takes a token from one
    `ratelimit.TokenBucket` (client-go's BucketRateLimiter)."""

    def __init__(self, *, qps: float = 10.0, burst: int = 100) -> None:
        self._bucket = ratelimit.TokenBucket(qps=qps, burst=burst)
        self._epoch: datetime | None = None

    def when(self, key: Hashable, now: datetime) -> float:
        epoch = self._epoch
        if epoch is None:
            epoch = self._epoch = now
        return self._bucket.reserve((now - epoch).total_seconds())

    def forget(self, key: Hashable) -> None:
        return None

    def num_requeues(self, key: Hashable) -> int:
        return 0


class MaxOfRateLimiter:
    """The longest delay any of `limiters` asks for (each records the retry)."""

    def __init__(self, *limiters: RateLimiter) -> None:
        self._limiters = limiters

    def when(self, key: Hashable, now: datetime) -> float:
        return max(limiter.when(key, now) for limiter in self._limiters)

    def forget(self, key: Hashable) -> None:
        for limiter in self._limiters:
            limiter.forget(key)

    def num_requeues(self, key: Hashable) -> int:
        return max(limiter.num_requeues(key) for limiter in self._limiters)


def default_rate_limiter() -> MaxOfRateLimiter:
    """client-go's DefaultControllerRateLimiter (controller-runtime's default)."""
    return MaxOfRateLimiter(ItemExponentialBackoff(), BucketRateLimiter())


@dataclass(slots=True)
class QueueMetrics:
    """Counters in the spirit of client-go's workqueue metrics."""

    adds: int = 0
    """Keys that became queued (an `add` of an already queued key is deduped, not counted)."""
    retries: int = 0
    """`add_rate_limited` calls."""
    gets: int = 0
    """Keys handed out by `get`."""
    wait_s_total: float = 0.0
    """Sum over `get`s of the time the key spent ready in the queue."""
    longest_wait_s: float = 0.0
    """The longest such wait."""


class WorkQueue(Generic[K]):
    """The workqueue (see the module docstring for the model)."""

    def __init__(self, clock: ports.Clock, *, rate_limiter: RateLimiter | None = None) -> None:
        self._clock = clock
        self._limiter: RateLimiter = (
            rate_limiter if rate_limiter is not None else default_rate_limiter()
        )
        self._ready: deque[K] = deque()
        self._ready_since: dict[K, datetime] = {}
        self._dirty: set[K] = set()
        """Keys that need a reconcile: in `_ready`, or processing and re-added."""
        self._processing: set[K] = set()
        self._waiting: dict[K, datetime] = {}
        """Key -> earliest time it becomes ready; `_heap` entries that disagree are stale."""
        self._heap: list[tuple[datetime, int, K]] = []
        self._seq = 0
        self.metrics = QueueMetrics()

    # --- adding ----------------------------------------------------------------------------

    def add(self, key: K) -> None:
        """Queue `key` now; a no-op when it is already queued. Idempotent."""
        if key not in self._dirty:
            self._enqueue(key, self._clock.now())

    def _enqueue(self, key: K, since: datetime) -> None:
        self._dirty.add(key)
        self.metrics.adds += 1
        if key not in self._processing:
            self._ready.append(key)
            self._ready_since[key] = since

    def add_after(self, key: K, delay_s: float) -> None:
        """Queue `key` after `delay_s` seconds (now when <= 0); the earliest pending time wins."""
        if delay_s <= 0:
            self.add(key)
            return
        at = self._clock.now() + timedelta(seconds=delay_s)
        current = self._waiting.get(key)
        if current is not None and current <= at:
            return
        self._waiting[key] = at
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, key))

    def add_rate_limited(self, key: K) -> None:
        """Queue `key` after the rate limiter's delay (a failed reconcile's retry)."""
        self.metrics.retries += 1
        self.add_after(key, self._limiter.when(key, self._clock.now()))

    def forget(self, key: K) -> None:
        """Reset `key`'s backoff (after a reconcile that did not fail). Idempotent."""
        self._limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        """Rate-limited retries of `key` since it was last forgotten."""
        return self._limiter.num_requeues(key)

    # --- taking ----------------------------------------------------------------------------

    def get(self) -> K | None:
        """The next ready key (FIFO), now marked processing; None when nothing is ready."""
        now = self._clock.now()
        if self._heap:
            self._promote(now)
        if not self._ready:
            return None
        key = self._ready.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        since = self._ready_since.pop(key, now)
        waited = (now - since).total_seconds()
        metrics = self.metrics
        metrics.gets += 1
        metrics.wait_s_total += waited
        if waited > metrics.longest_wait_s:
            metrics.longest_wait_s = waited
        return key

    def done(self, key: K) -> None:
        """Finish processing `key`; re-queue it if it was added meanwhile.

        Raises:
            ValueError: `key` is not being processed (a runtime bug).
        """
        try:
            self._processing.remove(key)
        except KeyError:
            raise ValueError(f"done({key!r}) for a key that is not being processed") from None
        if key in self._dirty:
            self._ready.append(key)
            self._ready_since[key] = self._clock.now()

    # --- observing -------------------------------------------------------------------------

    def next_ready_at(self) -> datetime | None:
        """When `get` will next return a key: now if one is ready, the earliest delayed time
        otherwise, None when nothing is queued or delayed (keys being processed come back
        through `done`)."""
        now = self._clock.now()
        if self._heap:
            self._promote(now)
        if self._ready:
            return now
        heap = self._heap
        while heap:
            at, _, key = heap[0]
            if self._waiting.get(key) == at:
                return at
            heapq.heappop(heap)
        return None

    def __len__(self) -> int:
        """Keys ready to be handed out now (client-go's Len)."""
        if self._heap:
            self._promote(self._clock.now())
        return len(self._ready)

    @property
    def depth(self) -> int:
        """Keys waiting for a reconcile: ready, or processing and re-added."""
        return len(self._dirty)

    @property
    def delayed(self) -> int:
        """Keys with a pending `add_after`."""
        return len(self._waiting)

    @property
    def processing(self) -> int:
        """Keys handed out and not yet done."""
        return len(self._processing)

    def _promote(self, now: datetime) -> None:
        """Move delayed keys whose time has come into the ready FIFO, in time order."""
        heap = self._heap
        waiting = self._waiting
        while heap and heap[0][0] <= now:
            at, _, key = heapq.heappop(heap)
            if waiting.get(key) == at:
                del waiting[key]
                if key not in self._dirty:
                    self._enqueue(key, at)
