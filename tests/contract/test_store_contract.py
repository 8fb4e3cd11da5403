"""The store contract (core/testing/store_contract.py) run against MemoryStore.

The memory store delivers watch events synchronously, so `wait_until` checks its predicate once;
it collects garbage itself and keeps a short history here so that Gone can be provoked.
"""

from collections.abc import Callable
from random import Random

import pytest

from metalcubed.controllers import memory
from metalcubed.core import clock, memory_store
from metalcubed.core.testing import store_contract

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
