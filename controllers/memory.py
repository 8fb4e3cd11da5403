"""The memory store and the wall clock for real-time runtimes (the lab, the embedded manager).

core/ is pure and single-threaded, so the two real-world pieces it must not contain live here:

- `WallClock`: `ports.Clock` over the system clock (UTC).
- `LockedStore`: a thread-safe `ports.Store` around core.memory_store.MemoryStore, for runtimes
  whose workers are threads. Every call holds one lock, so calls are linearizable and see the
  MemoryStore's semantics unchanged.

Watch handlers never run under the lock. The inner store hands each event (already committed,
in resourceVersion order) to a queue; after the call that caused it releases the lock, the
calling thread delivers the queue. Only one thread delivers at a time, so every handler sees
events one at a time and in commit order; a thread that finds another one delivering leaves its
events to it. Consequences for handler authors:
- a handler may call the store (it gets the lock like any caller); the events its writes cause
  are delivered after it returns;
- a write may return before its events reach the handlers (another thread may be delivering
  them), as with a real API server; handlers must be quick and must not block;
- a handler that raises does not lose later events: the rest are delivered first, then the
  exception propagates to the thread that was delivering.
No thread is started here.
"""

import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from metalcubed.core import memory_store, ports
from metalcubed.core.api import meta

R = TypeVar("R", bound=meta.Resource)


class WallClock:
    """`ports.Clock` reading the system clock; timezone-aware UTC. Thread-safe."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class _Forward:
    """A user handler and whether its watch is still running."""

    __slots__ = ("active", "handler")

    def __init__(self, handler: Callable[[ports.WatchEvent[Any]], None]) -> None:
        self.handler = handler
        self.active = True


class _LockedWatch:
    __slots__ = ("_forward", "_inner", "_lock")

    def __init__(self, lock: threading.Lock, forward: _Forward, inner: ports.Watch) -> None:
        self._lock = lock
        self._forward = forward
        self._inner = inner

    def stop(self) -> None:
        with self._lock:
            self._forward.active = False
            self._inner.stop()


class LockedStore:
    """Thread-safe `ports.Store` over a MemoryStore (see the module docstring)."""

    def __init__(self, inner: memory_store.MemoryStore) -> None:
        self.inner = inner
        """The wrapped store; touch it only while no other thread uses this one."""
        self._lock = threading.Lock()
        self._pending: deque[tuple[_Forward, ports.WatchEvent[Any]]] = deque()
        self._delivering = threading.Lock()

    @property
    def resource_version(self) -> str:
        with self._lock:
            return self.inner.resource_version

    def add_admission(self, kind: type[R], hook: memory_store.AdmissionHook[R]) -> None:
        with self._lock:
            self.inner.add_admission(kind, hook)

    def get(self, kind: type[R], key: meta.ObjectKey) -> R:
        with self._lock:
            return self.inner.get(kind, key)

    def list(
        self, kind: type[R], *, namespace: str | None = None, label_selector: str | None = None
    ) -> list[R]:
        with self._lock:
            return self.inner.list(kind, namespace=namespace, label_selector=label_selector)

    def create(self, obj: R) -> R:
        try:
            with self._lock:
                return self.inner.create(obj)
        finally:
            self._deliver()

    def update(self, obj: R) -> R:
        try:
            with self._lock:
                return self.inner.update(obj)
        finally:
            self._deliver()

    def update_status(self, obj: R) -> R:
        try:
            with self._lock:
                return self.inner.update_status(obj)
        finally:
            self._deliver()

    def add_owner(self, obj: R, owner: meta.OwnerReference) -> R:
        try:
            with self._lock:
                return self.inner.add_owner(obj, owner)
        finally:
            self._deliver()

    def delete(self, kind: type[R], key: meta.ObjectKey) -> None:
        try:
            with self._lock:
                self.inner.delete(kind, key)
        finally:
            self._deliver()

    def watch(
        self,
        kind: type[R],
        handler: Callable[[ports.WatchEvent[R]], None],
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
    ) -> ports.Watch:
        forward = _Forward(handler)
        pending = self._pending

        def enqueue(event: ports.WatchEvent[R]) -> None:
            pending.append((forward, event))

        try:
            with self._lock:
                inner = self.inner.watch(
                    kind, enqueue, namespace=namespace, resource_version=resource_version,
                    label_selector=label_selector,
                )
        finally:
            self._deliver()
        return _LockedWatch(self._lock, forward, inner)

    def _deliver(self) -> None:
        """Run queued handlers outside the store lock, one thread at a time, in order."""
        pending = self._pending
        while pending:
            if not self._delivering.acquire(blocking=False):
                return  # the delivering thread re-checks the queue before it lets go
            try:
                while pending:
                    forward, event = pending.popleft()
                    if forward.active:
                        forward.handler(event)
            except BaseException:
                self._delivering.release()
                self._deliver()  # the other events first, then the handler's error
                raise
            self._delivering.release()
