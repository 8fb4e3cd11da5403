"""Owner references for one object from concurrent callers go out in batches (group commit).

Real threads: the first caller's write is held open while three more callers arrive; they
must all be carried by the one next write, and each caller gets the object of the write that
carried its owner (or that write's exception)."""

import threading
import time
from collections.abc import Callable
from concurrent import futures

import pytest

from metalcubed.controllers.kube import ownerbatch
from metalcubed.core.api import meta

TIMEOUT_S = 30.0


def ref(name: str) -> meta.OwnerReference:
    return meta.OwnerReference(api_version="metal3.io/v1alpha1", kind="HostFirmwareSettings",
                               name=name, uid=f"uid-{name}")


def until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


class HeldWrites:
    """A write that records its owners and, the first time, waits until released."""

    def __init__(self, fail_second: bool = False) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.first_entered = threading.Event()
        self.release = threading.Event()
        self._fail_second = fail_second

    def __call__(self, owners: tuple[meta.OwnerReference, ...]) -> meta.Resource:
        self.calls.append(tuple(o.name for o in owners))
        if len(self.calls) == 1:
            self.first_entered.set()
            assert self.release.wait(TIMEOUT_S)
        elif self._fail_second:
            raise RuntimeError("write failed")
        return meta.Secret(metadata=meta.ObjectMeta(
            name="schema", resource_version=str(len(self.calls))))


def run(fail_second: bool) -> tuple[HeldWrites, dict[str, "futures.Future[meta.Resource]"]]:
    batches, write, key = ownerbatch.OwnerBatches(), HeldWrites(fail_second), "schema"
    with futures.ThreadPoolExecutor(4) as pool:
        results = {"a": pool.submit(batches.add, key, ref("a"), write)}
        assert write.first_entered.wait(TIMEOUT_S)
        for name in "bcd":
            results[name] = pool.submit(batches.add, key, ref(name), write)
        until(lambda: batches.waiting(key) == 4)
        write.release.set()
        futures.wait(results.values(), timeout=TIMEOUT_S)
    assert batches.waiting(key) == 0
    return write, results


def test_callers_arriving_during_a_write_share_the_next_one() -> None:
    write, results = run(fail_second=False)
    assert write.calls[0] == ("a",)
    assert sorted(write.calls[1]) == ["b", "c", "d"] and len(write.calls) == 2
    assert results["a"].result().metadata.resource_version == "1"
    assert {results[n].result().metadata.resource_version for n in "bcd"} == {"2"}


def test_a_failed_write_fails_every_caller_it_carried() -> None:
    write, results = run(fail_second=True)
    assert len(write.calls) == 2
    assert results["a"].result().metadata.resource_version == "1"
    for name in "bcd":
        with pytest.raises(RuntimeError, match="write failed"):
            results[name].result()
