"""LockedStore under threads: linearizable writes, handlers outside the lock, in commit order."""

import threading
from random import Random

import pytest

from metalcubed.controllers import memory
from metalcubed.core import memory_store, outcome, ports
from metalcubed.core.api import meta

NS = "t"


def secret(name: str) -> meta.Secret:
    return meta.Secret(metadata=meta.ObjectMeta(name=name, namespace=NS), data={"n": "MA=="})


@pytest.fixture
def store() -> memory.LockedStore:
    return memory.LockedStore(memory_store.MemoryStore(clock=memory.WallClock(), rng=Random(1)))


def test_concurrent_optimistic_increments_lose_nothing(store: memory.LockedStore) -> None:
    key = store.create(meta.Secret(metadata=meta.ObjectMeta(name="counter", namespace=NS),
                                   data={"n": "0"})).key
    conflicts = []

    def increment(times: int) -> None:
        for _ in range(times):
            while True:
                current = store.get(meta.Secret, key)
                bumped = current.model_copy(update={"data": {"n": str(int(current.data["n"]) + 1)}})
                try:
                    store.update(bumped)
                    break
                except outcome.Conflict:
                    conflicts.append(1)

    threads = [threading.Thread(target=increment, args=(200,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert store.get(meta.Secret, key).data["n"] == "800"


def test_threads_see_events_once_each_in_version_order(store: memory.LockedStore) -> None:
    seen: list[int] = []
    store.watch(meta.Secret, lambda e: seen.append(int(e.object.metadata.resource_version or 0)))

    def create(prefix: str) -> None:
        for i in range(150):
            store.create(secret(f"{prefix}-{i}"))

    threads = [threading.Thread(target=create, args=(f"p{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(seen) == 600
    assert seen == sorted(seen) and len(set(seen)) == 600


def test_handler_runs_outside_the_lock_and_may_write(store: memory.LockedStore) -> None:
    names: list[str] = []

    def mirror(event: ports.WatchEvent[meta.Secret]) -> None:
        # Another thread must be able to use the store while a handler runs.
        done = threading.Event()

        def other_caller() -> None:
            store.list(meta.Secret)
            done.set()

        threading.Thread(target=other_caller).start()
        assert done.wait(timeout=10), "store lock held during handler"
        name = event.object.metadata.name
        names.append(name)
        if event.type is ports.WatchEventType.ADDED and not name.endswith("-copy"):
            store.create(secret(name + "-copy"))

    store.watch(meta.Secret, mirror)
    store.create(secret("a"))
    assert names == ["a", "a-copy"]


def test_stopped_watch_gets_nothing(store: memory.LockedStore) -> None:
    got: list[object] = []
    watch = store.watch(meta.Secret, got.append)
    watch.stop()
    watch.stop()
    store.create(secret("a"))
    assert got == []


def test_raising_handler_does_not_starve_others(store: memory.LockedStore) -> None:
    got: list[str] = []

    def boom(event: ports.WatchEvent[meta.Secret]) -> None:
        raise RuntimeError("boom")

    store.watch(meta.Secret, boom)
    store.watch(meta.Secret, lambda e: got.append(e.object.metadata.name))
    with pytest.raises(RuntimeError):
        store.create(secret("a"))
    assert got == ["a"]


def test_wall_clock_is_utc() -> None:
    now = memory.WallClock().now()
    assert now.utcoffset() is not None and now.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
