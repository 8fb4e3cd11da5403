"""Informer handlers see every change even when a write-through got to the cache first.

The kube watch delivers a controller's own write after CachedStore has already cached the
object it wrote (write-through). Handlers must still get (the copy they saw before, the new
one): another controller's update filter compares the two (the DataImage controller reacts to a
host's provisioning state, which only the host controller writes).
"""

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from metalcubed.controllers.kube import informer
from metalcubed.core import memory_store, outcome, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import change, meta
from tests.unit.reconcilers.conftest import ManualClock


class HeldWatchStore:
    """The memory store, its watch events held until `release` (as a slow watch connection
    delivers them after the write returned). A test double for this one behaviour."""

    def __init__(self) -> None:
        self.store = memory_store.MemoryStore(clock=ManualClock())
        self.held: list[tuple[Callable[[Any], None], Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def watch(self, kind: Any, handler: Callable[[Any], None], **kw: Any) -> ports.Watch:
        return self.store.watch(kind, lambda event: self.held.append((handler, event)), **kw)

    def release(self) -> None:
        held, self.held = self.held, []
        for handler, event in held:
            handler(event)


@pytest.fixture
def running() -> Iterator[tuple[HeldWatchStore, informer.Informer[bmh.BareMetalHost],
                                list[tuple[Any, Any]]]]:
    held = HeldWatchStore()
    cache: informer.Informer[bmh.BareMetalHost] = informer.Informer(held, bmh.BareMetalHost)  # type: ignore[arg-type]
    seen: list[tuple[Any, Any]] = []
    cache.add_handler(lambda old, new: seen.append((old, new)))
    stop = threading.Event()
    thread = threading.Thread(target=cache.run, args=(stop,), daemon=True)
    thread.start()
    assert cache.wait_synced(stop, timeout_s=10)
    try:
        yield held, cache, seen
    finally:
        stop.set()
        thread.join(timeout=10)


def test_an_update_written_through_first_still_reaches_handlers_as_a_change(
    running: tuple[HeldWatchStore, informer.Informer[bmh.BareMetalHost], list[tuple[Any, Any]]],
) -> None:
    held, cache, seen = running
    host = held.store.create(bmh.BareMetalHost(
        metadata=meta.ObjectMeta(name="h", namespace="ns"),
        spec=bmh.BareMetalHostSpec(online=True)))
    held.release()
    assert seen == [(None, host)]
    status = bmh.BareMetalHostStatus(provisioning=bmh.ProvisionStatus(
        state=bmh.ProvisioningState.EXTERNALLY_PROVISIONED))
    written = held.store.update_status(change.replace(host, {"status": status}))
    cache.write_through(written)  # what CachedStore does after a successful write
    assert cache.get(host.key) is written
    held.release()
    old, new = seen[-1]
    assert old.status.provisioning.state == bmh.ProvisioningState.NONE
    assert new.status.provisioning.state == bmh.ProvisioningState.EXTERNALLY_PROVISIONED


def test_an_update_that_removes_the_last_finalizer_leaves_the_cache_at_once(
    running: tuple[HeldWatchStore, informer.Informer[bmh.BareMetalHost], list[tuple[Any, Any]]],
) -> None:
    """The server deletes the object and answers with it as last stored, finalizers still
    listed. Kept in the cache until the watch catches up, it would send the next pass to remove
    them again. Late events (a status write made before) must not bring it back; handlers
    still see the deletion."""
    held, cache, seen = running
    cached = informer.CachedStore(held, [cache])  # type: ignore[arg-type, list-item]
    host = held.store.create(bmh.BareMetalHost(
        metadata=meta.ObjectMeta(name="h", namespace="ns", finalizers=("example.com/f",))))
    held.store.delete(bmh.BareMetalHost, host.key)
    held.release()
    deleting = cached.get(bmh.BareMetalHost, host.key)
    assert deleting.metadata.deletion_timestamp is not None
    status = bmh.BareMetalHostStatus(error_message="late")
    deleting = cached.update_status(change.replace(deleting, {"status": status}))
    returned = cached.update(deleting.with_meta(finalizers=()))
    assert returned.metadata.finalizers == ("example.com/f",)  # as the server answers
    with pytest.raises(outcome.NotFound):
        cached.get(bmh.BareMetalHost, host.key)
    assert cached.list(bmh.BareMetalHost, namespace="ns") == []
    held.release()  # the late MODIFIED, then the DELETED
    with pytest.raises(outcome.NotFound):
        cached.get(bmh.BareMetalHost, host.key)
    assert seen[-1][1] is None and seen[-1][0].metadata.name == "h"
    again = held.store.create(bmh.BareMetalHost(metadata=meta.ObjectMeta(name="h",
                                                                          namespace="ns")))
    held.release()  # a new object of that name is cached as usual
    assert cached.get(bmh.BareMetalHost, host.key) == again
