"""A memory-store lab for the CAPM3 machine reconciler: a ready Cluster, Machines with
bootstrap data, Metal3Machines they own, and BareMetalHosts in a chosen state."""

import random

from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import capi, hardwaredata, meta
from metalcubed.core.api.capm3 import v1beta2 as v2
from metalcubed.core.clock import ManualClock
from metalcubed.core.memory_store import MemoryStore
from metalcubed.core.reconcilers import metal3machine
from metalcubed.core.testing.fakes import RecordingEventRecorder

NS = "lab"
IMAGE = {"url": "http://172.22.0.1/node.qcow2", "checksum": "abc", "checksumType": "sha256",
         "diskFormat": "qcow2"}


class Lab:
    def __init__(self, *, seed: int = 0, ready: bool = True) -> None:
        self.clock = ManualClock()
        self.store = MemoryStore(clock=self.clock)
        self.events = RecordingEventRecorder()
        self.reconciler = self.new_reconciler(self.store, seed=seed)
        conditions = [{"type": "InfrastructureReady", "status": "True" if ready else "False",
                       "lastTransitionTime": "2026-01-01T00:00:00Z"}]
        cluster = self.store.create(capi.Cluster.model_validate({
            "metadata": {"name": "c1", "namespace": NS}}))
        self.cluster = self.store.update_status(cluster.model_copy(update={
            "status": capi.ClusterStatus.model_validate(
                {"deprecated": {"v1beta1": {"conditions": conditions}}})}))

    def new_reconciler(self, store: object, *, seed: int) -> metal3machine.Metal3MachineReconciler:
        return metal3machine.Metal3MachineReconciler(
            store=store, clock=self.clock, events=self.events,  # type: ignore[arg-type]
            rng=random.Random(seed))

    def host(self, name: str, *, state: bmh.ProvisioningState = bmh.ProvisioningState.AVAILABLE,
             labels: dict[str, str] | None = None) -> None:
        host = self.store.create(bmh.BareMetalHost(
            metadata=meta.ObjectMeta(name=name, namespace=NS, labels=labels or {}),
            spec=bmh.BareMetalHostSpec(online=False)))
        status = host.status.model_copy(update={
            "provisioning": host.status.provisioning.model_copy(update={"state": state}),
            "hardware": hardwaredata.HardwareDetails(
                hostname=name, nics=(hardwaredata.NIC(name="eth0", ip="192.168.111.20"),))})
        self.store.update_status(host.model_copy(update={"status": status}))

    def machine(self, name: str, *, secret: str | None = "boot", spec: dict[str, object] | None
                = None, failure_domain: str | None = None, deployment: str | None = None,
                cloned_from: str | None = None) -> meta.ObjectKey:
        """A Machine of cluster c1 (of MachineDeployment `deployment`) and its Metal3Machine
        (cloned from the Metal3MachineTemplate `cloned_from`, as CAPI annotates it)."""
        labels = {capi.CLUSTER_NAME_LABEL: "c1"}
        if deployment:
            labels["cluster.x-k8s.io/deployment-name"] = deployment
        machine = self.store.create(capi.Machine.model_validate({
            "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": {"clusterName": "c1", "bootstrap": {"dataSecretName": secret},
                     "failureDomain": failure_domain}}))
        owner = meta.OwnerReference(api_version=capi.API_VERSION, kind="Machine", name=name,
                                    uid=machine.metadata.uid or "")
        annotations = {"cluster.x-k8s.io/cloned-from-name": cloned_from} if cloned_from else {}
        m3m = self.store.create(v2.Metal3Machine(
            metadata=meta.ObjectMeta(name=name, namespace=NS, owner_references=(owner,),
                                     annotations=annotations),
            spec=v2.Metal3MachineSpec.model_validate(spec if spec is not None
                                                     else {"image": IMAGE})))
        return m3m.key

    def settle(self, key: meta.ObjectKey, passes: int = 6) -> None:
        for _ in range(passes):
            self.reconciler.reconcile(key)

    def m3m(self, key: meta.ObjectKey) -> v2.Metal3Machine:
        return self.store.get(v2.Metal3Machine, key)

    def get_host(self, name: str) -> bmh.BareMetalHost:
        return self.store.get(bmh.BareMetalHost, meta.ObjectKey(NS, name))

    def set_state(self, name: str, state: bmh.ProvisioningState) -> None:
        host = self.get_host(name)
        status = host.status.model_copy(update={
            "provisioning": host.status.provisioning.model_copy(update={"state": state})})
        self.store.update_status(host.model_copy(update={"status": status}))

    def consumer(self, name: str) -> str | None:
        ref = self.get_host(name).spec.consumer_ref
        return ref.name if ref else None
