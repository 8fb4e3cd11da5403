"""The store contract (core/testing/store_contract.py) run against MemoryStore, LockedStore and
the CachedStore production reads through (informers over a LockedStore).

The memory store delivers watch events synchronously, so `wait_until` checks its predicate once;
it collects garbage itself and keeps a short history here so that Gone can be provoked. Over it,
the CachedStore's informers see every write before the write returns, so it meets the whole
contract with reads at once, deletions included (over the API server it cannot: see
tests/kube/test_store_contract.py).
"""

from collections.abc import Callable, Iterator
from random import Random

import pytest

from metalcubed.controllers import memory
from metalcubed.core import clock, memory_store
from metalcubed.core.testing import store_contract
from tests.contract import cached

HISTORY = 16


def immediately(predicate: Callable[[], bool], timeout_s: float) -> None:
    assert predicate(), "the memory store applies every effect before the call returns"


class TestMemoryStoreContract(store_contract.StoreContract):
    @pytest.fixture
    def harness(self) -> store_contract.StoreHarness:
        store = memory_store.MemoryStore(
            clock=clock.ManualClock(), rng=Random(11), history_size=HISTORY
        )
        return store_contract.StoreHarness(
            store=store,
            namespace="contract",
            kind=store_contract.baremetalhost_kind(),
            wait_until=immediately,
            garbage_collection=True,
            gone_after_writes=HISTORY + 1,
        )


class TestLockedStoreContract(store_contract.StoreContract):
    """The thread-safe wrapper keeps every semantic (used from one thread here)."""

    @pytest.fixture
    def harness(self) -> store_contract.StoreHarness:
        inner = memory_store.MemoryStore(
            clock=clock.ManualClock(), rng=Random(12), history_size=HISTORY
        )
        return store_contract.StoreHarness(
            store=memory.LockedStore(inner),
            namespace="contract",
            kind=store_contract.baremetalhost_kind(),
            wait_until=immediately,
            garbage_collection=True,
            gone_after_writes=HISTORY + 1,
        )


class TestCachedStoreOverMemoryContract(store_contract.StoreContract):
    """Reads from informer caches, writes through to a LockedStore (as the manager's
    embedded mode would); informers of the watched namespace, or of all namespaces (a manager
    without a watch namespace)."""

    @pytest.fixture(params=["namespace", "cluster"])
    def harness(self, request: pytest.FixtureRequest) -> Iterator[store_contract.StoreHarness]:
        inner = memory_store.MemoryStore(
            clock=clock.ManualClock(), rng=Random(13), history_size=HISTORY
        )
        scope = "contract" if request.param == "namespace" else None
        with cached.cached_store(memory.LockedStore(inner), namespace=scope) as store:
            yield store_contract.StoreHarness(
                store=store,
                namespace="contract",
                kind=store_contract.baremetalhost_kind(),
                wait_until=immediately,
                garbage_collection=True,
                gone_after_writes=HISTORY + 1,
            )
