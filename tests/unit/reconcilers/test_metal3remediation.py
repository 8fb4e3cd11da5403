"""The Metal3Remediation reconciler on the memory store: reboot, taint or delete-and-restore the
Node, retry on timeout, give up visibly. BMO's power handling is played by `bmo()` (a host
under a `reboot.metal3.io/...` annotation is off, else on), as the real BMO does it."""

import datetime

import pytest

from metalcubed.core import outcome
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import capi, meta, node
from metalcubed.core.api.capm3 import v1beta2 as v2
from metalcubed.core.clock import ManualClock
from metalcubed.core.memory_store import MemoryStore
from metalcubed.core.reconcilers import metal3machine
from metalcubed.core.reconcilers import metal3remediation as rem
from metalcubed.core.testing.fakes import RecordingEventRecorder

NS = "lab"
KEY = meta.ObjectKey(NS, "m0")
HOST = meta.ObjectKey(NS, "h0")


class Rig:
    def __init__(self, *, taint: bool = True, online: bool = True, retry_limit: int = 1,
                 timeout_s: int = 300, node_ref: bool = True) -> None:
        self.clock = ManualClock()
        self.store = MemoryStore(clock=self.clock)
        self.events = RecordingEventRecorder()
        self.reconciler = rem.Metal3RemediationReconciler(
            store=self.store, clock=self.clock, events=self.events, out_of_service_taint=taint)
        host = self.store.create(bmh.BareMetalHost(
            metadata=meta.ObjectMeta(name="h0", namespace=NS),
            spec=bmh.BareMetalHostSpec(online=online, consumer_ref=meta.ObjectReference(
                api_version=v2.API_VERSION, kind="Metal3Machine", name="m0", namespace=NS))))
        self.store.update_status(host.model_copy(update={"status": host.status.model_copy(
            update={"powered_on": online, "provisioning": host.status.provisioning.model_copy(
                update={"state": bmh.ProvisioningState.PROVISIONED})})}))
        machine = self.store.create(capi.Machine.model_validate({
            "metadata": {"name": "m0", "namespace": NS,
                         "labels": {capi.CLUSTER_NAME_LABEL: "c1"}},
            "spec": {"clusterName": "c1", "version": "v1.36.3", "infrastructureRef": {
                "apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "Metal3Machine",
                "name": "m0"}}}))
        if node_ref:
            machine = self.store.update_status(machine.model_copy(update={
                "status": capi.MachineStatus.model_validate({
                    "nodeRef": {"name": "h0"}, "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                                    "lastTransitionTime": "2026-01-01T00:00:00Z"}]})}))
        self.store.create(v2.Metal3Machine(metadata=meta.ObjectMeta(
            name="m0", namespace=NS,
            annotations={metal3machine.HOST_ANNOTATION: f"{NS}/h0"})))
        self.store.create(node.Node.model_validate({
            "metadata": {"name": "h0", "labels": {"metal3.io/uuid": "u-1", "role": "worker"},
                         "annotations": {"team": "a"}},
            "spec": {"providerID": f"metal3://{NS}/h0/m0", "podCIDR": "10.244.1.0/24"}}))
        owner = meta.OwnerReference(api_version=capi.API_VERSION, kind="Machine", name="m0",
                                    uid=machine.metadata.uid or "")
        self.store.create(v2.Metal3Remediation.model_validate({
            "metadata": {"name": "m0", "namespace": NS, "ownerReferences": [owner.to_wire()]},
            "spec": {"strategy": {"type": "Reboot", "retryLimit": retry_limit,
                                  "timeoutSeconds": timeout_s}}}))

    def bmo(self) -> None:
        """BMO, played: a host under a reboot annotation powers off, else on."""
        host = self.host()
        off = any(a.startswith("reboot.metal3.io") for a in host.metadata.annotations)
        if host.status.powered_on == off:
            self.store.update_status(host.model_copy(update={"status": host.status.model_copy(
                update={"powered_on": not off})}))

    def step(self) -> outcome.Outcome:
        result = self.reconciler.reconcile(KEY)
        self.bmo()
        return result

    def run(self, passes: int = 12) -> None:
        for _ in range(passes):
            self.step()

    def m3r(self) -> v2.Metal3Remediation:
        return self.store.get(v2.Metal3Remediation, KEY)

    def phase(self) -> str | None:
        status = self.m3r().status
        return status.phase if status else None

    def host(self) -> bmh.BareMetalHost:
        return self.store.get(bmh.BareMetalHost, HOST)

    def node(self) -> node.Node:
        return self.store.get(node.Node, meta.ObjectKey("", "h0"))

    def machine(self) -> capi.Machine:
        return self.store.get(capi.Machine, KEY)


def test_reboot_with_the_out_of_service_taint_powers_off_taints_powers_on_and_untaints() -> None:
    rig = Rig()
    assert rig.step().requeue_after_s == rem.STEP_S
    assert rig.phase() == rem.RUNNING and rig.m3r().status.last_remediated  # type: ignore[union-attr]
    rig.step()
    assert rem.FINALIZER in rig.m3r().metadata.finalizers
    power_off = rem.power_off_annotation(rig.m3r())
    assert rig.step().requeue_after_s == rem.POLL_S
    assert rig.host().metadata.annotations[power_off] == '{"mode": "hard"}'
    assert not rig.host().status.powered_on  # BMO honoured it
    rig.step()  # powered off: taint the Node
    tainted = rig.node()
    assert [(t.key, t.value, t.effect) for t in tainted.spec.taints] == [
        ("node.kubernetes.io/out-of-service", "nodeshutdown", "NoExecute")]
    assert tainted.to_wire()["spec"]["podCIDR"] == "10.244.1.0/24"  # nothing else lost
    rig.step()
    assert rig.phase() == rem.WAITING
    rig.step()  # annotation removed, BMO powers on
    assert power_off not in rig.host().metadata.annotations and rig.host().status.powered_on
    rig.step()  # on again, Node there: untaint, finalizer off
    assert rig.node().spec.taints == ()
    assert rem.FINALIZER not in rig.m3r().metadata.finalizers
    assert rig.phase() == rem.WAITING  # MachineHealthCheck deletes it once the Node is healthy
    assert rig.events.reasons(KEY) == ["PoweringOff", "PoweringOn"]
    assert rem.UNHEALTHY_ANNOTATION not in rig.host().metadata.annotations


def test_legacy_mode_backs_up_deletes_and_restores_the_node() -> None:
    rig = Rig(taint=False)
    rig.run(4)  # Running, finalizer, power off, BMO off
    rig.step()  # back up labels and annotations on the remediation
    backup = rig.m3r().metadata.annotations
    assert backup[rem.NODE_LABELS_BACKUP] == '{"metal3.io/uuid":"u-1","role":"worker"}'
    assert backup[rem.NODE_ANNOTATIONS_BACKUP] == '{"team":"a"}'
    rig.step()  # delete the Node (after power-off: no workload runs twice)
    with pytest.raises(outcome.NotFound):
        rig.node()
    rig.step()
    assert rig.phase() == rem.WAITING
    rig.step()  # power on
    assert rig.host().status.powered_on
    # The host boots and its kubelet registers the Node again, with only its own labels.
    rig.store.create(node.Node.model_validate({"metadata": {
        "name": "h0", "labels": {"metal3.io/uuid": "u-1"}}}))
    rig.step()
    restored = rig.node()
    assert restored.metadata.labels == {"metal3.io/uuid": "u-1", "role": "worker"}
    assert restored.metadata.annotations == {"team": "a"}
    m3r = rig.m3r()
    assert rem.NODE_LABELS_BACKUP not in m3r.metadata.annotations
    assert rem.FINALIZER not in m3r.metadata.finalizers


def test_still_unhealthy_after_the_timeout_retries_then_hands_the_machine_back() -> None:
    rig = Rig(retry_limit=1, timeout_s=300)
    rig.run(12)  # one reboot done; MachineHealthCheck does not delete it: Node unhealthy
    assert rig.phase() == rem.WAITING and rem.FINALIZER not in rig.m3r().metadata.finalizers
    assert rig.step().requeue_after_s == rem.POLL_S  # within the timeout: wait
    rig.clock.advance(301)
    rig.step()
    status = rig.m3r().status
    assert status is not None and (status.phase, status.retry_count) == (rem.RUNNING, 1)
    rig.run(12)  # the second reboot
    assert rig.events.reasons(KEY) == ["PoweringOff", "PoweringOn"] * 2
    rig.clock.advance(301)
    assert rig.step().is_done
    assert rig.phase() == rem.DELETING
    assert rig.host().metadata.annotations[rem.UNHEALTHY_ANNOTATION] == "capm3/UnhealthyNode"
    machine = rig.machine()
    v1beta1 = {c.type: (c.status, c.reason, c.severity)
               for c in machine.status.deprecated.v1beta1.conditions}  # type: ignore[union-attr]
    assert v1beta1["OwnerRemediated"] == ("False", "WaitingForRemediation", "Warning")
    v1beta2 = {c.type: (c.status, c.reason) for c in machine.status.conditions or ()}
    assert v1beta2 == {"Ready": ("True", "Ready"),  # kept
                       "OwnerRemediated": ("False", "WaitingForRemediation")}
    assert rig.events.reasons(KEY)[-1] == "RemediationFailed"
    version = rig.m3r().metadata.resource_version
    assert rig.step().is_done and rig.m3r().metadata.resource_version == version


def test_an_offline_host_is_not_remediated() -> None:
    rig = Rig(online=False)
    assert rig.step().is_done
    assert rig.phase() == rem.FAILED
    assert not any(a.startswith("reboot.metal3.io") for a in rig.host().metadata.annotations)


def test_no_node_ref_reboots_the_host_without_touching_nodes() -> None:
    rig = Rig(node_ref=False)
    rig.run(5)
    assert rig.phase() == rem.WAITING and rig.node().spec.taints == ()


def test_a_missing_metal3machine_is_an_error_until_the_remediation_is_deleted() -> None:
    rig = Rig()
    rig.run(3)
    assert rem.FINALIZER in rig.m3r().metadata.finalizers
    rig.store.delete(v2.Metal3Machine, KEY)
    with pytest.raises(outcome.TransientError, match="Metal3Machine m0 not found"):
        rig.reconciler.reconcile(KEY)
    rig.store.delete(v2.Metal3Remediation, KEY)  # the finalizer holds it
    assert rig.step().is_done
    with pytest.raises(outcome.NotFound):
        rig.m3r()


def test_deleting_the_machine_collects_the_remediation_despite_its_finalizer() -> None:
    rig = Rig()
    rig.run(3)
    rig.store.delete(capi.Machine, KEY)  # garbage collection deletes the remediation it owns
    assert rig.m3r().metadata.deletion_timestamp is not None
    assert rig.step().is_done
    with pytest.raises(outcome.NotFound):
        rig.m3r()


def test_a_strategy_other_than_reboot_is_ignored() -> None:
    rig = Rig()
    m3r = rig.m3r()
    rig.store.update(m3r.model_copy(update={"spec": v2.Metal3RemediationSpec()}))
    assert rig.step().is_done and rig.phase() is None


def test_timeouts_use_upstreams_default_of_600_seconds() -> None:
    rig = Rig(timeout_s=0)
    rig.run(12)
    rig.clock.advance(599)
    rig.step()
    assert rig.phase() == rem.WAITING
    rig.clock.advance(datetime.timedelta(seconds=2).total_seconds())
    rig.step()
    assert rig.phase() == rem.RUNNING
