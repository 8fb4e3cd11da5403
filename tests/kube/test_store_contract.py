"""The store contract (core/testing/store_contract.py), unchanged, against K8sStore.

The API server delivers watch events asynchronously and the garbage collector works in the
background, so `wait_until` polls. Gone-after-N-writes is not provoked here: the watch cache
keeps every event younger than 75 s whatever their number, so no small N makes a version too
old; test_store.py checks Gone with a version older than the cache instead.
"""

from collections.abc import Callable

import pytest

from metalcubed.controllers.kube import store
from metalcubed.core.testing import store_contract
from tests.kube.conftest import wait_until


def poll(predicate: Callable[[], bool], timeout_s: float) -> None:
    wait_until(predicate, timeout_s=timeout_s)


class TestK8sStoreContract(store_contract.StoreContract):
    @pytest.fixture
    def harness(
        self, kube_store: store.K8sStore, kube_namespace: str
    ) -> store_contract.StoreHarness:
        return store_contract.StoreHarness(
            store=kube_store,
            namespace=kube_namespace,
            kind=store_contract.baremetalhost_kind(),
            wait_until=poll,
            garbage_collection=True,
            gone_after_writes=None,
        )
