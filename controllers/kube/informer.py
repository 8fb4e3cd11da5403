"""Informers: a local cache of one kind, kept current by a watch, with indexes and handlers.

Why: a controller reads far more than it writes. controller-runtime answers reads from
informer caches and sends only writes to the API server; at a thousand hosts that is the
difference between a few requests per state change and dozens. This module does the same:
- `Informer` runs one `Store.watch` from scratch (resource_version None: every object arrives
  as ADDED, then every change). The watch is the reflector: it resumes from the last
  resourceVersion after a dropped connection, follows bookmarks, relists on 410 Gone and
  delivers the difference (controllers/kube/store.py for the API server; the memory store has the
  same contract), so the cache never misses a change and never needs a relist of its own.
  Handlers are called on the watch's delivery thread with (old, new): (None, obj) for an add,
  (old, obj) for an update, (obj, None) for a delete. They only map the change to workqueue
  keys; they must not block.
- `CachedStore` is the `ports.Store` the reconcilers get: `get` and `list` of cached kinds come
  from the informers, everything else (and every write) goes to the backing store. Reads may
  be stale; a write based on a stale read is refused with 409 Conflict and retried, exactly as
  with controller-runtime's client.

Write-through: after a successful write, the object the server returned replaces the cached
copy at once, so the reconciler's next pass (often immediately) sees its own write instead of
bouncing off a 409 until the watch catches up. Handlers still see every change: when the watch
delivers that write, their `old` is the copy they were given last, not the written-through one
(another controller's update filter, e.g. on a host's provisioning state, compares the two).
To keep the cache from ever moving backwards,
resourceVersions are compared as integers (what etcd-backed servers hand out); an event or a
write-through older than the cached copy is ignored, and a write-through never resurrects an
object the cache has already seen deleted (deleted keys keep a bounded tombstone). When a version is
not an integer the comparison is skipped and the latest arrival wins.

Label-selected caches: an informer given a `label_selector` watches only matching objects
(the API server filters), so nothing else is ever sent to the manager (the Secret cache: only
Secrets labelled `wiring.SECRET_LABEL`). For such a kind a cache miss is not proof of absence:
`CachedStore` then asks the kind's `on_miss` hook (controllers/kube/secrets.py reads the one
Secret by name and labels it).
"""

import builtins
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, Protocol, TypeVar, runtime_checkable

from metalcubed.controllers.kube import metrics
from metalcubed.core import labels, outcome, ports
from metalcubed.core.api import meta

R = TypeVar("R", bound=meta.Resource)

log = logging.getLogger(__name__)

Handler = Callable[[R | None, R | None], None]
"""(None, new) add · (old, new) update · (old, None) delete."""

_TOMBSTONES = 16384

MissHandler = Callable[[meta.ObjectKey], meta.Resource]
"""A label-selected cache's answer for a key it does not hold (CachedStore `on_miss`)."""

IndexFunc = Callable[[R], Iterable[str]]
"""The index values of an object (e.g. "namespace/secret-name" for every Secret it uses)."""


@runtime_checkable
class SyncingWatch(Protocol):
    """A watch that can say when it has delivered the initial state (controller-runtime's
    SyncingSource). A watch without it is taken as synced when `Store.watch` returns, which is
    true of the memory store (synchronous delivery)."""

    def stop(self) -> None: ...

    def wait_synced(self, timeout_s: float) -> bool: ...


def _version(obj: meta.Resource) -> int | None:
    try:
        return int(obj.metadata.resource_version or "")
    except ValueError:
        return None


def _older(candidate: meta.Resource, cached: meta.Resource) -> bool:
    a, b = _version(candidate), _version(cached)
    return a is not None and b is not None and a < b


class Informer(Generic[R]):
    """The cache of one kind (optionally one namespace). A runnable; needs no leadership."""

    need_leader_election = False

    def __init__(
        self,
        store: ports.Store,
        kind: type[R],
        *,
        namespace: str | None = None,
        runtime_metrics: metrics.RuntimeMetrics | None = None,
        retry_max_s: float = 30.0,
        label_selector: str | None = None,
    ) -> None:
        self.kind = kind
        self.namespace = namespace if kind.NAMESPACED else None
        self.label_selector = label_selector or None
        self._selector = labels.parse(label_selector) if label_selector else None
        self.name = f"informer-{kind.KIND}"
        self._store = store
        self._metrics = runtime_metrics
        self._retry_max_s = retry_max_s
        self._lock = threading.Lock()
        self._items: dict[meta.ObjectKey, R] = {}
        self._delivered: dict[meta.ObjectKey, R] = {}
        """The copy each key's handlers were last given: their `old` on the next update. Not
        the cached copy, which a write-through may already have replaced by the very object
        the watch then delivers (handlers would see old == new and miss the change)."""
        self._handlers: list[Handler[R]] = []
        self._index_funcs: dict[str, IndexFunc[R]] = {}
        self._indexes: dict[str, dict[str, set[meta.ObjectKey]]] = {}
        self._index_values: dict[str, dict[meta.ObjectKey, tuple[str, ...]]] = {}
        self._synced = threading.Event()
        self._tombstones: dict[meta.ObjectKey, int] = {}
        """Deleted keys -> the deletion's resourceVersion (bounded, oldest dropped first)."""

    # --- wiring (before run) -------------------------------------------------------------------

    def add_handler(self, handler: Handler[R]) -> None:
        self._handlers.append(handler)

    def add_index(self, name: str, func: IndexFunc[R]) -> None:
        with self._lock:
            self._index_funcs[name] = func
            self._indexes[name] = {}
            self._index_values[name] = {}
            for key, obj in self._items.items():
                self._index_one(name, key, obj)

    # --- the runnable --------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Start the watch (retrying while the API is unreachable), mark synced, wait for stop."""
        delay = 0.5
        watch: ports.Watch | None = None
        while not stop.is_set():
            try:
                watch = self._store.watch(self.kind, self._on_event, namespace=self.namespace,
                                          label_selector=self.label_selector)
                break
            except outcome.MetalcubedError as exc:
                log.warning("informer %s: cannot start watch: %s; retrying in %.1fs",
                            self.kind.KIND, exc, delay)
                stop.wait(delay)
                delay = min(delay * 2, self._retry_max_s)
        if watch is None:
            return
        try:
            if isinstance(watch, SyncingWatch):
                while not stop.is_set() and not watch.wait_synced(0.5):
                    pass
            if not stop.is_set():
                self._synced.set()
                log.info("informer %s synced: %d objects", self.kind.KIND, len(self._items))
            stop.wait()
        finally:
            watch.stop()

    def has_synced(self) -> bool:
        return self._synced.is_set()

    def wait_synced(self, stop: threading.Event, timeout_s: float | None = None) -> bool:
        """Block until synced, `stop` or the timeout; True when synced."""
        waited = 0.0
        while not self._synced.wait(0.1):
            waited += 0.1
            if stop.is_set() or (timeout_s is not None and waited >= timeout_s):
                return False
        return True

    # --- reads ---------------------------------------------------------------------------------

    def get(self, key: meta.ObjectKey) -> R | None:
        with self._lock:
            return self._items.get(key)

    def list(self, *, namespace: str | None = None) -> list[R]:
        with self._lock:
            items = [
                obj for key, obj in self._items.items()
                if namespace is None or key.namespace == namespace
            ]
        items.sort(key=lambda o: (o.metadata.namespace, o.metadata.name))
        return items

    def by_index(self, name: str, value: str) -> builtins.list[R]:
        with self._lock:
            keys = self._indexes[name].get(value, set())
            return [self._items[k] for k in keys if k in self._items]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    # --- writes into the cache -----------------------------------------------------------------

    def write_through(self, obj: R) -> None:
        """Cache `obj`, just written, if it is newer than what is cached (module doc)."""
        key = obj.key
        version = _version(obj)
        if version is None or (self.namespace is not None and key.namespace != self.namespace):
            return
        if self._selector is not None and not self._selector.matches(obj.metadata.labels):
            return  # not for this cache (the watch says when it stops matching)
        with self._lock:
            cached = self._items.get(key)
            if cached is None:
                if self._tombstones.get(key, -1) >= version:
                    return  # already seen deleted: never resurrect it
            elif _older(obj, cached) or cached.metadata.resource_version == (
                obj.metadata.resource_version
            ):
                return
            self._items[key] = obj
            self._reindex(key, obj)

    def forget(self, obj: R) -> None:
        """`obj` was deleted by our own write (the update that removed its last finalizer):
        drop it now rather than when the watch's DELETED arrives. The server answers such an
        update with the object as last stored, finalizers still listed; cached until then, it
        would send the next pass to remove them again (a 404). Watch events up to its version
        are stale from now on; handlers still get the DELETED."""
        key = obj.key
        version = _version(obj)
        if version is None:
            return
        with self._lock:
            cached = self._items.get(key)
            if cached is not None and _older(obj, cached):
                return  # a newer object of that name is cached: not the one deleted
            self._tombstone(key, obj)
            if cached is not None:
                del self._items[key]
                self._reindex(key, None)

    def _on_event(self, event: ports.WatchEvent[R]) -> None:
        obj = event.object
        key = obj.key
        with self._lock:
            cached = self._items.get(key)
            old = self._delivered.get(key, cached)
            if event.type is ports.WatchEventType.DELETED:
                self._items.pop(key, None)
                self._delivered.pop(key, None)
                self._reindex(key, None)
                self._tombstone(key, obj)
                old, new = (old or obj), None
            else:
                if cached is not None and _older(obj, cached):
                    return  # the cache already holds a newer copy (a write-through)
                if cached is None and self._tombstones.get(key, -1) >= (_version(obj) or 0):
                    return  # a late event of an object our own write deleted (`forget`)
                self._items[key] = obj
                self._delivered[key] = obj
                self._reindex(key, obj)
                new = obj
        if self._metrics is not None:
            self._metrics.informer_events.labels(kind=self.kind.KIND, type=event.type.value).inc()
        for handler in self._handlers:
            try:
                handler(old, new)
            except Exception:  # a mapping bug must not stop the cache
                log.exception("informer %s: handler failed for %s", self.kind.KIND, key)

    def _tombstone(self, key: meta.ObjectKey, obj: R) -> None:
        version = _version(obj)
        if version is None:
            return
        self._tombstones.pop(key, None)
        self._tombstones[key] = version
        while len(self._tombstones) > _TOMBSTONES:
            del self._tombstones[next(iter(self._tombstones))]

    # --- indexes (called with the lock held) --------------------------------------------------

    def _reindex(self, key: meta.ObjectKey, obj: R | None) -> None:
        for name in self._index_funcs:
            previous = self._index_values[name].pop(key, ())
            index = self._indexes[name]
            for value in previous:
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]
            if obj is not None:
                self._index_one(name, key, obj)

    def _index_one(self, name: str, key: meta.ObjectKey, obj: R) -> None:
        values = tuple(dict.fromkeys(self._index_funcs[name](obj)))
        if not values:
            return
        self._index_values[name][key] = values
        index = self._indexes[name]
        for value in values:
            index.setdefault(value, set()).add(key)


class CachedStore:
    """`ports.Store` reading cached kinds from informers and writing through `backend`."""

    def __init__(
        self,
        backend: ports.Store,
        informers: Iterable[Informer[meta.Resource]],
        *,
        on_miss: Mapping[type[meta.Resource], MissHandler] | None = None,
    ):
        """`on_miss[kind](key)`: what a `get` of a label-selected kind answers when the cache
        does not hold the key (the object, or NotFound)."""
        self._backend = backend
        self._informers: dict[type[meta.Resource], Informer[meta.Resource]] = {
            informer.kind: informer for informer in informers
        }
        self._on_miss = dict(on_miss or {})

    def informer(self, kind: type[R]) -> "Informer[R] | None":
        found = self._informers.get(kind)
        return found  # type: ignore[return-value]

    def get(self, kind: type[R], key: meta.ObjectKey) -> R:
        informer = self.informer(kind)
        if informer is None or not self._covers(informer, key.namespace):
            return self._backend.get(kind, key)
        obj = informer.get(key)
        if obj is None:
            miss = self._on_miss.get(kind)
            if miss is not None:
                return miss(key)  # type: ignore[return-value]
            raise outcome.NotFound(kind.KIND, str(key))
        return obj

    def list(
        self, kind: type[R], *, namespace: str | None = None, label_selector: str | None = None
    ) -> builtins.list[R]:
        informer = self.informer(kind)
        if informer is None or (
            informer.namespace is not None and namespace != informer.namespace
        ):
            return self._backend.list(kind, namespace=namespace, label_selector=label_selector)
        items = informer.list(namespace=namespace)
        if not label_selector:
            return items
        try:
            selector = labels.parse(label_selector)
        except labels.SelectorError as exc:
            raise outcome.Invalid(kind.KIND, "labelSelector", [("labelSelector", str(exc))]) \
                from exc
        return [obj for obj in items if selector.matches(obj.metadata.labels)]

    @staticmethod
    def _covers(informer: "Informer[R]", namespace: str) -> bool:
        return informer.namespace is None or informer.namespace == namespace

    def create(self, obj: R) -> R:
        return self._through(self._backend.create(obj))

    def update(self, obj: R) -> R:
        written = self._backend.update(obj)
        if obj.metadata.deletion_timestamp is not None and not obj.metadata.finalizers:
            informer = self.informer(type(written))
            if informer is not None:  # the server deleted it: no finalizer was left
                informer.forget(written)
            return written
        return self._through(written)

    def update_status(self, obj: R) -> R:
        return self._through(self._backend.update_status(obj))

    def add_owner(self, obj: R, owner: meta.OwnerReference) -> R:
        return self._through(self._backend.add_owner(obj, owner))

    def _through(self, written: R) -> R:
        informer = self.informer(type(written))
        if informer is not None:
            informer.write_through(written)
        return written

    def delete(self, kind: type[R], key: meta.ObjectKey) -> None:
        self._backend.delete(kind, key)

    def watch(
        self,
        kind: type[R],
        handler: Callable[[ports.WatchEvent[R]], None],
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
    ) -> ports.Watch:
        return self._backend.watch(
            kind, handler, namespace=namespace, resource_version=resource_version,
            label_selector=label_selector,
        )
