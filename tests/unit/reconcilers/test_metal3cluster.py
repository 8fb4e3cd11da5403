"""The Metal3Cluster reconciler on the memory store."""

from typing import Any

import pytest

from metalcubed.core import outcome
from metalcubed.core.api import capi, meta
from metalcubed.core.api.capm3 import v1beta2 as v2
from metalcubed.core.clock import ManualClock
from metalcubed.core.memory_store import MemoryStore
from metalcubed.core.reconcilers import metal3cluster

NS = "lab"
KEY = meta.ObjectKey(NS, "m3c")


class Lab:
    def __init__(self, *, garbage_collection: bool = True) -> None:
        self.clock = ManualClock()
        self.store = MemoryStore(clock=self.clock, garbage_collection=garbage_collection)
        self.reconciler = metal3cluster.Metal3ClusterReconciler(store=self.store, clock=self.clock)

    def cluster(self, *, paused: bool = False) -> capi.Cluster:
        return self.store.create(capi.Cluster(
            metadata=meta.ObjectMeta(name="lab", namespace=NS),
            spec=capi.ClusterSpec(paused=paused)))

    def m3c(self, spec: dict[str, Any], *, owner: capi.Cluster | None = None) -> None:
        refs = () if owner is None else (meta.OwnerReference(
            api_version=capi.API_VERSION, kind="Cluster", name=owner.metadata.name,
            uid=owner.metadata.uid or ""),)
        self.store.create(v2.Metal3Cluster(
            metadata=meta.ObjectMeta(name="m3c", namespace=NS, owner_references=refs),
            spec=v2.Metal3ClusterSpec.model_validate(spec)))

    def get(self) -> v2.Metal3Cluster:
        return self.store.get(v2.Metal3Cluster, KEY)

    def conditions(self) -> dict[str, tuple[str, str]]:
        status = self.get().status
        assert status is not None
        return {c.type: (c.status, c.reason) for c in status.conditions or ()}


ENDPOINT = {"controlPlaneEndpoint": {"host": "192.168.111.249", "port": 6443},
            "failureDomains": [{"name": "rack-a", "controlPlane": True}]}


def test_without_an_owner_cluster_it_waits_and_only_mirrors_failure_domains() -> None:
    lab = Lab()
    lab.m3c(ENDPOINT)
    assert lab.reconciler.reconcile(KEY).is_done
    got = lab.get()
    assert got.metadata.finalizers == ()
    assert got.status is not None and got.status.failure_domains == got.spec.failure_domains
    assert got.status.initialization is None


def test_a_valid_endpoint_makes_it_provisioned_and_ready() -> None:
    lab = Lab()
    lab.m3c(ENDPOINT, owner=lab.cluster())
    assert lab.reconciler.reconcile(KEY).is_done
    got = lab.get()
    assert got.metadata.finalizers == (metal3cluster.FINALIZER,)
    assert got.status is not None and got.status.initialization is not None
    assert got.status.initialization.provisioned is True
    assert lab.conditions() == {"BaremetalInfrastructureReady": ("True", "Ready"),
                                "Paused": ("False", "NotPaused"), "Ready": ("True", "Ready")}
    version = got.metadata.resource_version
    lab.clock.advance(60)
    lab.reconciler.reconcile(KEY)
    assert lab.get().metadata.resource_version == version  # nothing changed: nothing written


def test_a_missing_endpoint_host_is_reported_as_upstream() -> None:
    lab = Lab()
    lab.m3c({"controlPlaneEndpoint": {"port": 6443}}, owner=lab.cluster())
    lab.reconciler.reconcile(KEY)
    got = lab.get()
    assert got.status is not None and got.status.initialization is not None
    assert got.status.initialization.provisioned is False
    assert lab.conditions()["BaremetalInfrastructureReady"] == (
        "False", "ControlPlaneEndpointFailed")
    legacy = got.status.deprecated.v1beta1 if got.status.deprecated else None
    assert legacy is not None and legacy.failure_message == metal3cluster.INVALID_ENDPOINT


def test_a_paused_cluster_pauses_it() -> None:
    lab = Lab()
    lab.m3c(ENDPOINT, owner=lab.cluster(paused=True))
    assert lab.reconciler.reconcile(KEY) == outcome.Outcome.after(metal3cluster.REQUEUE_S)
    assert lab.conditions() == {"Paused": ("True", "Paused")}
    assert lab.get().metadata.finalizers == ()


def test_an_owner_that_does_not_exist_is_an_error_that_is_retried() -> None:
    """The window before the garbage collector removes the dangling reference."""
    lab = Lab(garbage_collection=False)
    ghost = capi.Cluster(metadata=meta.ObjectMeta(name="ghost", namespace=NS, uid="u"))
    lab.m3c(ENDPOINT, owner=ghost)
    with pytest.raises(outcome.TransientError):
        lab.reconciler.reconcile(KEY)
    assert lab.conditions() == {"Ready": ("False", "FailedToGetOwnerCluster")}


def test_deletion_waits_for_the_clusters_machines() -> None:
    lab = Lab()
    cluster = lab.cluster()
    lab.m3c(ENDPOINT, owner=cluster)
    lab.reconciler.reconcile(KEY)
    machine = lab.store.create(capi.Machine(metadata=meta.ObjectMeta(
        name="m0", namespace=NS, labels={capi.CLUSTER_NAME_LABEL: "lab"})))
    lab.store.delete(v2.Metal3Cluster, KEY)
    assert lab.reconciler.reconcile(KEY) == outcome.Outcome.after(metal3cluster.REQUEUE_S)
    assert lab.conditions()["Ready"] == ("False", "Deleting")
    lab.store.delete(capi.Machine, machine.key)
    assert lab.reconciler.reconcile(KEY).is_done
    with pytest.raises(outcome.NotFound):
        lab.get()


def test_a_cluster_change_queues_its_metal3cluster() -> None:
    cluster = capi.Cluster(metadata=meta.ObjectMeta(name="lab", namespace=NS),
                           spec=capi.ClusterSpec(infrastructure_ref=capi.
                                                 ContractVersionedObjectReference(
                                                     api_group="infrastructure.cluster.x-k8s.io",
                                                     kind="Metal3Cluster", name="m3c")))
    def no_index(_name: str, _value: str) -> list[meta.ObjectKey]:
        return []

    assert list(metal3cluster.metal3cluster_of(cluster, no_index)) == [KEY]
    other = cluster.model_copy(update={"spec": capi.ClusterSpec()})
    assert list(metal3cluster.metal3cluster_of(other, no_index)) == []
