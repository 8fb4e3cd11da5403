"""Informer caches and the caching Store over the memory store (controllers/kube/informer.py)."""

import threading
from collections.abc import Iterator

import pytest

from metalcubed.controllers import memory
from metalcubed.controllers.kube import informer
from metalcubed.core import memory_store, outcome, ports
from metalcubed.core.api import meta

NS = "ns"


@pytest.fixture
def store() -> memory.LockedStore:
    return memory.LockedStore(memory_store.MemoryStore(clock=memory.WallClock()))


Change = tuple[str | None, str | None]


@pytest.fixture
def secrets(store: memory.LockedStore) -> Iterator[tuple[informer.Informer[meta.Secret],
                                                       list[Change]]]:
    inf = informer.Informer(store, meta.Secret, namespace=NS)
    seen: list[Change] = []

    def handler(old: meta.Secret | None, new: meta.Secret | None) -> None:
        seen.append((old.metadata.resource_version if old else None,
                     new.metadata.resource_version if new else None))

    inf.add_handler(handler)
    inf.add_index("label", lambda s: [s.metadata.labels.get("app", "")] if
                  s.metadata.labels.get("app") else [])
    stop = threading.Event()
    thread = threading.Thread(target=inf.run, args=(stop,), daemon=True)
    thread.start()
    assert inf.wait_synced(stop, timeout_s=5)
    yield inf, seen
    stop.set()
    thread.join(timeout=5)


def _secret(name: str, ns: str = NS, **labels: str) -> meta.Secret:
    return meta.Secret(metadata=meta.ObjectMeta(name=name, namespace=ns, labels=labels))


def test_cache_follows_adds_updates_and_deletes(
    store: memory.LockedStore, secrets: tuple[informer.Informer[meta.Secret], list[Change]]
) -> None:
    inf, seen = secrets
    created = store.create(_secret("a"))
    assert inf.get(created.key) == created
    updated = store.update(created.with_meta(labels={"x": "y"}))
    assert inf.get(created.key) == updated
    store.delete(meta.Secret, created.key)
    assert inf.get(created.key) is None
    rv = [created.metadata.resource_version, updated.metadata.resource_version]
    assert seen == [(None, rv[0]), (rv[0], rv[1]), (rv[1], None)]


def test_namespace_scoped_informer_ignores_other_namespaces(
    store: memory.LockedStore, secrets: tuple[informer.Informer[meta.Secret], list[Change]]
) -> None:
    inf, seen = secrets
    store.create(_secret("a", ns="elsewhere"))
    assert len(inf) == 0 and seen == []


def test_objects_present_before_start_are_synced(store: memory.LockedStore) -> None:
    store.create(_secret("early"))
    inf = informer.Informer(store, meta.Secret)
    stop = threading.Event()
    thread = threading.Thread(target=inf.run, args=(stop,), daemon=True)
    thread.start()
    assert inf.wait_synced(stop, timeout_s=5)
    assert [s.metadata.name for s in inf.list()] == ["early"]
    stop.set()
    thread.join(timeout=5)


def test_index_follows_label_changes(
    store: memory.LockedStore, secrets: tuple[informer.Informer[meta.Secret], list[Change]]
) -> None:
    inf, _ = secrets
    a = store.create(_secret("a", app="one"))
    store.create(_secret("b", app="one"))
    assert {s.metadata.name for s in inf.by_index("label", "one")} == {"a", "b"}
    store.update(a.with_meta(labels={"app": "two"}))
    assert [s.metadata.name for s in inf.by_index("label", "one")] == ["b"]
    assert [s.metadata.name for s in inf.by_index("label", "two")] == ["a"]


def test_write_through_is_visible_before_the_watch_event(
    secrets: tuple[informer.Informer[meta.Secret], list[Change]]
) -> None:
    inf, _ = secrets
    old = _secret("a").with_meta(resource_version="5", uid="u")
    inf._on_event(ports.WatchEvent(ports.WatchEventType.ADDED, old))
    newer = old.with_meta(resource_version="7", labels={"k": "v"})
    inf.write_through(newer)
    assert inf.get(old.key) == newer
    # The watch then delivers the intermediate version: the cache does not move backwards.
    middle = old.with_meta(resource_version="6")
    inf._on_event(ports.WatchEvent(ports.WatchEventType.MODIFIED, middle))
    assert inf.get(old.key) == newer


def test_write_through_never_resurrects_a_deleted_object(
    secrets: tuple[informer.Informer[meta.Secret], list[Change]]
) -> None:
    inf, _ = secrets
    obj = _secret("a").with_meta(resource_version="5", uid="u")
    inf._on_event(ports.WatchEvent(ports.WatchEventType.ADDED, obj))
    inf._on_event(ports.WatchEvent(ports.WatchEventType.DELETED,
                                   obj.with_meta(resource_version="9")))
    inf.write_through(obj.with_meta(resource_version="8"))  # a late write response
    assert inf.get(obj.key) is None


def test_write_through_of_a_create_fills_the_cache(
    secrets: tuple[informer.Informer[meta.Secret], list[Change]]
) -> None:
    inf, _ = secrets
    obj = _secret("new").with_meta(resource_version="12", uid="u")
    inf.write_through(obj)
    assert inf.get(obj.key) == obj


def test_a_handler_that_raises_does_not_stop_the_cache(store: memory.LockedStore) -> None:
    inf = informer.Informer(store, meta.Secret)

    def broken(old: meta.Secret | None, new: meta.Secret | None) -> None:
        raise RuntimeError("mapping bug")

    inf.add_handler(broken)
    stop = threading.Event()
    thread = threading.Thread(target=inf.run, args=(stop,), daemon=True)
    thread.start()
    assert inf.wait_synced(stop, timeout_s=5)
    store.create(_secret("a"))
    store.create(_secret("b"))
    assert len(inf) == 2
    stop.set()
    thread.join(timeout=5)


# --- CachedStore ---------------------------------------------------------------------------


def test_cached_store_reads_from_the_cache_and_writes_through(
    store: memory.LockedStore, secrets: tuple[informer.Informer[meta.Secret], list[Change]]
) -> None:
    inf, _ = secrets
    cached = informer.CachedStore(store, [inf])  # type: ignore[list-item]
    created = cached.create(_secret("a", app="x"))
    assert cached.get(meta.Secret, created.key) == created
    assert [s.metadata.name for s in cached.list(meta.Secret, namespace=NS,
                                                 label_selector="app=x")] == ["a"]
    assert cached.list(meta.Secret, namespace=NS, label_selector="app=y") == []
    with pytest.raises(outcome.NotFound):
        cached.get(meta.Secret, meta.ObjectKey(NS, "missing"))
    with pytest.raises(outcome.Invalid):
        cached.list(meta.Secret, namespace=NS, label_selector="app in (")


def test_cached_store_goes_to_the_backend_outside_the_cached_namespace(
    store: memory.LockedStore, secrets: tuple[informer.Informer[meta.Secret], list[Change]]
) -> None:
    inf, _ = secrets
    cached = informer.CachedStore(store, [inf])  # type: ignore[list-item]
    other = store.create(_secret("b", ns="other"))
    assert cached.get(meta.Secret, other.key) == other
    assert [s.metadata.name for s in cached.list(meta.Secret, namespace="other")] == ["b"]


def test_stale_cache_write_is_a_conflict(
    store: memory.LockedStore, secrets: tuple[informer.Informer[meta.Secret], list[Change]]
) -> None:
    inf, _ = secrets
    cached = informer.CachedStore(store, [inf])  # type: ignore[list-item]
    created = cached.create(_secret("a"))
    cached.update(created.with_meta(labels={"v": "1"}))
    with pytest.raises(outcome.Conflict):
        cached.update(created.with_meta(labels={"v": "2"}))  # based on the old version
