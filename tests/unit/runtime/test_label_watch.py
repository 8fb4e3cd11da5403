"""A label-selected watch on the memory store follows the API server's semantics: only matching
objects, ADDED when an object comes to match, DELETED when it stops (the Secret cache relies on
it; tests/kube/test_manager_secrets.py checks the API server itself)."""

from metalcubed.controllers import memory
from metalcubed.core import memory_store, ports
from metalcubed.core.api import meta

NS = "ns"


def test_only_matching_objects_and_their_transitions_are_seen() -> None:
    store = memory_store.MemoryStore(clock=memory.WallClock())
    store.create(meta.Secret(metadata=meta.ObjectMeta(name="old", namespace=NS,
                                                      labels={"use": "yes"})))
    plain = store.create(meta.Secret(metadata=meta.ObjectMeta(name="plain", namespace=NS)))
    seen: list[tuple[str, str]] = []
    watch = store.watch(meta.Secret, lambda e: seen.append((e.type.value, e.object.metadata.name)),
                        namespace=NS, label_selector="use=yes")
    assert seen == [("ADDED", "old")]
    plain = store.update(plain.with_meta(annotations={"a": "b"}))  # still unlabelled: unseen
    plain = store.update(plain.with_meta(labels={"use": "yes"}))
    plain = store.update(plain.with_meta(annotations={"a": "c"}))
    plain = store.update(plain.with_meta(labels={"use": "no"}))
    store.delete(meta.Secret, plain.key)
    store.delete(meta.Secret, meta.ObjectKey(NS, "old"))
    assert seen == [("ADDED", "old"), ("ADDED", "plain"), ("MODIFIED", "plain"),
                    ("DELETED", "plain"), ("DELETED", "old")]
    watch.stop()


def test_the_locked_store_passes_the_selector_on() -> None:
    store = memory.LockedStore(memory_store.MemoryStore(clock=memory.WallClock()))
    seen: list[ports.WatchEvent[meta.Secret]] = []
    watch = store.watch(meta.Secret, seen.append, label_selector="use=yes")
    store.create(meta.Secret(metadata=meta.ObjectMeta(name="x", namespace=NS)))
    store.create(meta.Secret(metadata=meta.ObjectMeta(name="y", namespace=NS,
                                                      labels={"use": "yes"})))
    assert [e.object.metadata.name for e in seen] == ["y"]
    watch.stop()
