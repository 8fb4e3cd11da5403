"""The store contract (core/testing/store_contract.py), unchanged, against K8sStore.

The API server delivers watch events asynchronously and the garbage collector works in the
background, so `wait_until` polls. Gone-after-N-writes is not provoked here: the watch cache
keeps every event younger than 75 s whatever their number, so no small N makes a version too
old; test_store.py checks Gone with a version older than the cache instead.

The same suite runs against the CachedStore the manager reads through (informers over
K8sStore). Its reads come from watch-fed caches: what create and update return is cached at
once (write-through), so reads see the store's own writes, but `delete` returns nothing to
cache, and a read right after it shows the object as it was until the watch delivers the
deletion (milliseconds on loopback). The harness declares that (`delete_read_at_once=False`):
the deletion checks wait for the read; every other check is the same as for K8sStore.
"""

from collections.abc import Callable, Iterator

import pytest

from metalcubed.controllers.kube import store
from metalcubed.core.testing import store_contract
from tests.contract import cached
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


class TestCachedStoreOverK8sContract(store_contract.StoreContract):
    """Informers of the test's namespace, or of all namespaces (a manager without a watch
    namespace; other tests' objects are in its cache too)."""

    @pytest.fixture(params=["namespace", "cluster"])
    def harness(
        self, kube_store: store.K8sStore, kube_namespace: str, request: pytest.FixtureRequest
    ) -> Iterator[store_contract.StoreHarness]:
        scope = kube_namespace if request.param == "namespace" else None
        with cached.cached_store(kube_store, namespace=scope) as cached_store:
            yield store_contract.StoreHarness(
                store=cached_store,
                namespace=kube_namespace,
                kind=store_contract.baremetalhost_kind(),
                wait_until=poll,
                garbage_collection=True,
                gone_after_writes=None,
                delete_read_at_once=False,
            )
