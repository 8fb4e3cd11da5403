"""Informer caches over the real API server (K8sStore's reflector watch underneath)."""

import threading
from collections.abc import Iterator

import pytest

from metalcubed.controllers.kube import informer, store
from metalcubed.core import outcome
from metalcubed.core.api import meta
from tests.kube import test_e2e_support as e2e


@pytest.fixture
def secrets(
    kube_store: store.K8sStore, kube_namespace: str
) -> Iterator[tuple[informer.Informer[meta.Secret], list[str]]]:
    kube_store.create(meta.Secret(metadata=meta.ObjectMeta(name="before",
                                                           namespace=kube_namespace)))
    inf = informer.Informer(kube_store, meta.Secret, namespace=kube_namespace)
    seen: list[str] = []
    inf.add_handler(lambda old, new: seen.append(
        ("add" if old is None else "delete" if new is None else "update")
        + ":" + (new or old).metadata.name  # type: ignore[union-attr]
    ))
    stop = threading.Event()
    thread = threading.Thread(target=inf.run, args=(stop,), daemon=True)
    thread.start()
    assert inf.wait_synced(stop, timeout_s=10)
    yield inf, seen
    stop.set()
    thread.join(timeout=15)


def test_sync_covers_existing_objects_and_changes_follow(
    kube_store: store.K8sStore, kube_namespace: str,
    secrets: tuple[informer.Informer[meta.Secret], list[str]],
) -> None:
    inf, seen = secrets
    assert inf.get(meta.ObjectKey(kube_namespace, "before")) is not None  # synced means listed
    created = kube_store.create(meta.Secret(metadata=meta.ObjectMeta(
        name="s", namespace=kube_namespace)))
    e2e.wait_until(lambda: inf.get(created.key) is not None, timeout_s=10, what="add")
    kube_store.update(created.with_meta(labels={"a": "b"}))
    e2e.wait_until(lambda: (inf.get(created.key) or created).metadata.labels == {"a": "b"},
                   timeout_s=10, what="update")
    kube_store.delete(meta.Secret, created.key)
    e2e.wait_until(lambda: inf.get(created.key) is None, timeout_s=10, what="delete")
    assert seen[0] == "add:before"
    assert seen[-3:] == ["add:s", "update:s", "delete:s"]


def test_cached_store_write_through_avoids_a_stale_second_write(
    kube_store: store.K8sStore, kube_namespace: str,
    secrets: tuple[informer.Informer[meta.Secret], list[str]],
) -> None:
    inf, _ = secrets
    cached = informer.CachedStore(kube_store, [inf])  # type: ignore[list-item]
    created = cached.create(meta.Secret(metadata=meta.ObjectMeta(
        name="w", namespace=kube_namespace)))
    # Read-modify-write twice in a row, as a reconciler does on consecutive passes: the second
    # read must already see the first write, or the second write would be a 409.
    for value in ("1", "2", "3"):
        current = cached.get(meta.Secret, created.key)
        cached.update(current.with_meta(labels={"v": value}))
    assert cached.get(meta.Secret, created.key).metadata.labels == {"v": "3"}
    stale = created.with_meta(labels={"v": "old"})
    with pytest.raises(outcome.Conflict):
        cached.update(stale)
