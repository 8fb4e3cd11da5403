"""BareMetalHost -> Node label sync (upstream's metal3labelsync controller) on the memory store:
the prefix rule, removal, other labels untouched, pause, a bad prefix named."""

import pytest

from metalcubed.core import outcome
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import capi, meta, node
from metalcubed.core.api.capm3 import v1beta2 as v2
from metalcubed.core.reconcilers import capm3node, metal3labelsync, metal3machine
from tests.unit.reconcilers.capm3_lab import NS, Lab

P = bmh.ProvisioningState


class SyncLab(Lab):
    """A provisioned machine m0 on host h0 whose Machine has the Node n0, in cluster c1 whose
    Metal3Cluster m3c carries `prefixes`."""

    def __init__(self, prefixes: str | None = "team.example.com, zone.io") -> None:
        super().__init__()
        self.sync = metal3labelsync.Metal3LabelSyncReconciler(store=self.store,
                                                              events=self.events)
        annotations = {capm3node.PREFIX_ANNOTATION: prefixes} if prefixes is not None else {}
        cluster = self.store.get(capi.Cluster, meta.ObjectKey(NS, "c1"))
        self.store.update(cluster.model_copy(update={"spec": capi.ClusterSpec.model_validate(
            {"infrastructureRef": {"kind": "Metal3Cluster", "name": "m3c",
                                   "apiGroup": "infrastructure.cluster.x-k8s.io"}})}))
        self.store.create(v2.Metal3Cluster(metadata=meta.ObjectMeta(
            name="m3c", namespace=NS, annotations=annotations,
            owner_references=(meta.OwnerReference(api_version=capi.API_VERSION, kind="Cluster",
                                                  name="c1", uid=cluster.metadata.uid or ""),))))
        self.host("h0")
        key = self.machine("m0")
        self.settle(key)
        self.set_state("h0", P.PROVISIONED)
        self.settle(key)
        self.store.create(node.Node(metadata=meta.ObjectMeta(
            name="n0", labels={"keep": "me", "zone.io/rack": "old", "zone.io/stale": "x"})))
        machine = self.store.get(capi.Machine, meta.ObjectKey(NS, "m0"))
        self.store.update_status(machine.model_copy(update={"status": capi.MachineStatus(
            node_ref=capi.MachineNodeReference(name="n0"))}))

    def label_host(self, labels: dict[str, str]) -> None:
        host = self.get_host("h0")
        self.store.update(host.with_meta(labels={**host.metadata.labels, **labels}))

    def node_labels(self) -> dict[str, str]:
        return dict(self.store.get(node.Node, meta.ObjectKey("", "n0")).metadata.labels)


def test_labels_with_a_listed_prefix_follow_the_host_and_nothing_else_moves() -> None:
    lab = SyncLab()
    lab.label_host({"team.example.com/owner": "ops", "zone.io/rack": "r7",
                    "other.io/x": "no", "plain": "no"})
    assert lab.sync.reconcile(lab.get_host("h0").key) == outcome.Outcome.done()
    assert lab.node_labels() == {"keep": "me", "team.example.com/owner": "ops",
                                 "zone.io/rack": "r7"}  # zone.io/stale: not on the host
    version = lab.store.get(node.Node, meta.ObjectKey("", "n0")).metadata.resource_version
    lab.sync.reconcile(lab.get_host("h0").key)
    assert lab.store.get(node.Node, meta.ObjectKey("", "n0")).metadata.resource_version == (
        version)  # nothing new to write


def test_without_the_annotation_or_while_paused_nothing_is_synced() -> None:
    lab = SyncLab(prefixes=None)
    lab.label_host({"zone.io/rack": "r7"})
    before = lab.node_labels()
    lab.sync.reconcile(lab.get_host("h0").key)
    assert lab.node_labels() == before
    paused = SyncLab()
    paused.label_host({"zone.io/rack": "r7"})
    host = paused.get_host("h0")
    paused.store.update(host.with_meta(annotations={bmh.PAUSED_ANNOTATION: "user"}))
    paused.sync.reconcile(host.key)
    assert paused.node_labels()["zone.io/rack"] == "old"


def test_a_bad_prefix_is_a_spec_error_and_an_event_naming_the_annotation() -> None:
    lab = SyncLab(prefixes="ok.io, Not_A_Domain")
    with pytest.raises(outcome.SpecError, match=r"metal3-label-sync-prefixes.*Not_A_Domain"):
        lab.sync.reconcile(lab.get_host("h0").key)
    assert lab.events.reasons(meta.ObjectKey(NS, "m3c")) == ["InvalidLabelPrefix"]


def test_the_wiring_maps_nodes_machines_and_clusters_to_the_host() -> None:
    lab = SyncLab()
    host = lab.get_host("h0")
    index = {(metal3machine.HOST_UID_INDEX, host.metadata.uid): [host.key],
             (metal3labelsync.CONSUMER_INDEX, f"{NS}/m0"): [host.key],
             (metal3labelsync.CLUSTER_INDEX, f"{NS}/c1"): [host.key]}

    def lookup(name: str, value: str) -> list[meta.ObjectKey]:
        return index.get((name, value), [])

    watches = {w.kind: w for w in metal3labelsync.WIRING.watches}
    n0 = node.Node(metadata=meta.ObjectMeta(name="n0", labels={node.UUID_LABEL:
                                                                host.metadata.uid or ""}))
    assert list(watches[node.Node].keys(n0, lookup)) == [host.key]
    machine = capi.Machine.model_validate({"metadata": {"name": "m0", "namespace": NS},
                                           "spec": {"infrastructureRef": {
                                               "kind": "Metal3Machine", "name": "m0"}}})
    assert list(watches[capi.Machine].keys(machine, lookup)) == [host.key]
    m3c = lab.store.get(v2.Metal3Cluster, meta.ObjectKey(NS, "m3c"))
    assert list(watches[v2.Metal3Cluster].keys(m3c, lookup)) == [host.key]
    # A Node's heartbeat (status only) is not worth a pass; a label change is.
    assert watches[node.Node].update_filter is not None
    assert not watches[node.Node].update_filter(n0, n0.model_copy())
    assert watches[node.Node].update_filter(n0, n0.with_meta(labels={"a": "b"}))
    # A Machine matters when it names its Node; its other status moves do not.
    machine_filter = watches[capi.Machine].update_filter
    assert machine_filter is not None
    wire = machine.to_wire()
    phased = capi.Machine.model_validate({**wire, "status": {"phase": "Provisioned"}})
    named = capi.Machine.model_validate({**wire, "status": {"phase": "Running",
                                                            "nodeRef": {"name": "n0"}}})
    assert not machine_filter(machine, phased)
    assert machine_filter(phased, named)
