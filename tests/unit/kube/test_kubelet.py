"""The lab kubelet over the memory store: a Node when a host serves a Metal3Machine, Ready
following the host's power, re-registered when deleted, gone with the deprovisioning; Nodes
that are not its own are never touched. `drain()` runs its passes on the test's thread."""

from datetime import UTC, datetime

import pytest

from metalcubed.controllers.kube import kubelet
from metalcubed.core import outcome
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import hardwaredata, meta, node
from metalcubed.core.clock import ManualClock
from metalcubed.core.memory_store import MemoryStore

NS = "lab"
NOW = datetime(2026, 12, 3, tzinfo=UTC)


class Rig:
    def __init__(self) -> None:
        self.store = MemoryStore(clock=ManualClock())
        self.kubelet = kubelet.LabKubelet(self.store, clock=lambda: NOW).subscribe()

    def host(self, name: str, *, state: bmh.ProvisioningState, on: bool = True,
             image: bool = True, consumer: bool = True) -> None:
        try:
            host = self.store.get(bmh.BareMetalHost, meta.ObjectKey(NS, name))
        except outcome.NotFound:
            host = self.store.create(bmh.BareMetalHost(
                metadata=meta.ObjectMeta(name=name, namespace=NS)))
        spec = host.spec.model_copy(update={
            "online": on,
            "image": bmh.Image(url="http://172.22.0.1/node.qcow2") if image else None,
            "consumer_ref": meta.ObjectReference(kind="Metal3Machine", name="m-" + name,
                                                 namespace=NS) if consumer else None})
        host = self.store.update(host.model_copy(update={"spec": spec}))
        self.store.update_status(host.model_copy(update={"status": host.status.model_copy(
            update={"powered_on": on,
                    "provisioning": host.status.provisioning.model_copy(
                        update={"state": state}),
                    "hardware": hardwaredata.HardwareDetails(
                        nics=(hardwaredata.NIC(name="eth0", ip="192.168.111.21"),))})}))
        self.kubelet.drain()

    def node(self, name: str) -> node.Node | None:
        try:
            return self.store.get(node.Node, meta.ObjectKey("", name))
        except outcome.NotFound:
            return None

    def ready(self, name: str) -> str | None:
        found = self.node(name)
        assert found is not None
        return next(c.status for c in found.status.conditions if c.type == "Ready")


P = bmh.ProvisioningState


def test_a_provisioned_host_gets_a_ready_node_labelled_with_its_uid() -> None:
    rig = Rig()
    rig.host("h0", state=P.PROVISIONING)
    assert rig.node("h0") is None
    rig.host("h0", state=P.PROVISIONED)
    made = rig.node("h0")
    assert made is not None
    uid = rig.store.get(bmh.BareMetalHost, meta.ObjectKey(NS, "h0")).metadata.uid
    assert made.metadata.labels == {node.UUID_LABEL: uid}
    assert made.spec.provider_id is None  # CAPM3 sets it
    assert made.ready() is True
    assert [(a.type, a.address) for a in made.status.addresses] == [
        ("InternalIP", "192.168.111.21"), ("Hostname", "h0")]


def test_ready_follows_power_and_a_reboot_heals_a_sick_node() -> None:
    rig = Rig()
    rig.host("h0", state=P.PROVISIONED)
    sick = rig.node("h0")
    assert sick is not None
    condition = sick.status.conditions[0].model_copy(update={"status": "False"})
    rig.store.update_status(sick.model_copy(update={"status": sick.status.model_copy(
        update={"conditions": (condition,)})}))
    rig.kubelet.drain()
    assert rig.ready("h0") == "False"  # stays sick while the host runs
    rig.host("h0", state=P.PROVISIONED, on=False)
    assert rig.ready("h0") == "Unknown"
    rig.host("h0", state=P.PROVISIONED, on=True)
    assert rig.ready("h0") == "True"


def test_a_deleted_node_registers_again_only_while_the_host_runs() -> None:
    rig = Rig()
    rig.host("h0", state=P.PROVISIONED)
    rig.store.delete(node.Node, meta.ObjectKey("", "h0"))
    rig.kubelet.drain()
    assert rig.node("h0") is not None
    rig.host("h0", state=P.PROVISIONED, on=False)
    rig.store.delete(node.Node, meta.ObjectKey("", "h0"))
    rig.kubelet.drain()
    assert rig.node("h0") is None  # off: nobody registers it
    rig.host("h0", state=P.PROVISIONED, on=True)
    assert rig.ready("h0") == "True"


@pytest.mark.parametrize("change", ["image cleared", "released", "deprovisioning", "deleted"])
def test_the_node_goes_with_the_deprovisioning(change: str) -> None:
    rig = Rig()
    rig.host("h0", state=P.PROVISIONED)
    if change == "image cleared":
        rig.host("h0", state=P.PROVISIONED, image=False)
    elif change == "released":
        rig.host("h0", state=P.PROVISIONED, consumer=False)
    elif change == "deprovisioning":
        rig.host("h0", state=P.DEPROVISIONING)
    else:
        rig.store.delete(bmh.BareMetalHost, meta.ObjectKey(NS, "h0"))
        rig.kubelet.drain()
    assert rig.node("h0") is None


def test_nodes_that_are_not_the_labs_are_left_alone() -> None:
    rig = Rig()
    rig.store.create(node.Node(metadata=meta.ObjectMeta(name="control-plane")))
    rig.store.create(node.Node(metadata=meta.ObjectMeta(name="h9",
                                                        labels={node.UUID_LABEL: "x"})))
    assert rig.kubelet.drain() == 2
    assert rig.node("control-plane") is not None
    assert rig.node("h9") is not None  # its host was never seen: not known to be gone
    assert rig.kubelet.writes == 0


def test_plan_is_level_triggered() -> None:
    rig = Rig()
    rig.host("h0", state=P.PROVISIONED)
    host = rig.store.get(bmh.BareMetalHost, meta.ObjectKey(NS, "h0"))
    assert kubelet.plan(host, rig.node("h0"), NOW) is None  # nothing more to do
    writes = rig.kubelet.writes
    rig.host("h0", state=P.PROVISIONED)  # an unrelated host update
    assert rig.kubelet.writes == writes
