"""Cluster API core's Cluster and Machine controllers, modelled for the fleet.

Read from Cluster API v1.13 (internal/controllers, now core/reconcilers/{cluster,machine}) and
kept to what CAPM3 and the scenario's figures depend on. They run in the fleet's runtime as
every controller does (workqueue, workers, watch latency, a rate-limited client of their own:
Cluster API's manager is another Deployment), over core/api/capi's Cluster and Machine.

Machine (machine_controller.go, machine_controller_phases.go, machine_controller_noderef.go):
- finalizer `machine.cluster.x-k8s.io`; the infrastructure machine (Metal3Machine, named as the
  Machine) is adopted: its controller ownerReference becomes the Machine (the MachineSet
  created it owned by itself);
- once the Metal3Machine is provisioned its `spec.providerID` is copied to the Machine; the Node
  whose `spec.providerID` matches (set by CAPM3) becomes `status.nodeRef`, and the Node gets
  Cluster API's cluster-name/namespace/machine annotations;
- phase Pending -> Provisioning -> Provisioned -> Running, conditions InfrastructureReady and
  NodeHealthy (the Node's Ready);
- deletion: the Metal3Machine is deleted and waited for (CAPM3 deprovisions and releases the
  host meanwhile), then the Node is deleted, then the finalizer goes. No pods are modelled, so
  the drain before it is immediate.

Cluster (cluster_controller.go, cluster_controller_phases.go): the Metal3Cluster is adopted
(owner reference); its `status.initialization.provisioned` becomes the Cluster's
InfrastructureReady (the v1beta1 condition CAPM3 gates on) and infrastructureProvisioned. No
control plane Machines are modelled: ControlPlaneInitialized is set with InfrastructureReady,
which is what the MachineHealthCheck waits for. Deletion deletes the descendants
(MachineDeployments, MachineSets, MachineHealthChecks, Machines), waits for the Machines to be
gone, then deletes the Metal3Cluster, waits, and drops the finalizer.
"""

import contextlib
from collections.abc import Iterable

from metalcubed.core import outcome, ports, wiring
from metalcubed.core.api import capi, meta, node
from metalcubed.core.api.capm3 import v1beta2 as v2
from metalcubed.simulators.fleet import capikinds as ck

INFRA_GROUP = "infrastructure.cluster.x-k8s.io"


class NodeIndex:
    """Nodes by `spec.providerID`: the index Cluster API's cluster cache keeps on a workload
    cluster's Nodes. Fed by a watch on the Node kind."""

    def __init__(self) -> None:
        self._by_id: dict[str, str] = {}
        self._ids: dict[str, str] = {}

    def on_watch(self, event: ports.WatchEvent[node.Node]) -> None:
        name = event.object.metadata.name
        old = self._ids.pop(name, None)
        if old is not None and self._by_id.get(old) == name:
            del self._by_id[old]
        if event.type == ports.WatchEventType.DELETED:
            return
        provider_id = event.object.spec.provider_id
        if provider_id:
            self._by_id[provider_id] = name
            self._ids[name] = provider_id

    def node_name(self, provider_id: str) -> str | None:
        return self._by_id.get(provider_id)


def _owner_keys(obj: meta.Resource, kind: str) -> list[meta.ObjectKey]:
    return [meta.ObjectKey(obj.metadata.namespace, ref.name)
            for ref in obj.metadata.owner_references if ref.kind == kind]


def _machine_of_infra(m3m: v2.Metal3Machine, _lookup: wiring.IndexLookup
                      ) -> Iterable[meta.ObjectKey]:
    """An infrastructure machine change queues the Machine of the same name (the name the
    MachineSet gave both), owner or not yet."""
    return (m3m.key,)


def _machine_of_node(n: node.Node, _lookup: wiring.IndexLookup) -> Iterable[meta.ObjectKey]:
    """A Node change queues its Machine: from Cluster API's annotations once set, else from
    the providerID CAPM3 wrote (metal3://<ns>/<host>/<metal3machine>, and the Metal3Machine is
    named as its Machine)."""
    annotations = n.metadata.annotations
    name = annotations.get(ck.NODE_MACHINE_ANNOTATION)
    namespace = annotations.get(ck.NODE_NAMESPACE_ANNOTATION)
    if name and namespace:
        return (meta.ObjectKey(namespace, name),)
    provider_id = n.spec.provider_id or ""
    if provider_id.startswith("metal3://"):
        parts = provider_id.removeprefix("metal3://").split("/")
        if len(parts) == 3:
            return (meta.ObjectKey(parts[0], parts[2]),)
    return ()


MACHINE_WIRING = wiring.Wiring(
    name="capi-machine",
    kind=capi.Machine,
    watches=(wiring.Watch(capi.Machine, wiring.own_key),
             wiring.Watch(v2.Metal3Machine, _machine_of_infra),
             wiring.Watch(node.Node, _machine_of_node)),
    indexes=(),
)


def node_ready(n: node.Node) -> str:
    """The Node's Ready condition status ("Unknown" when it reports none)."""
    for c in n.status.conditions:
        if c.type == "Ready":
            return c.status
    return "Unknown"


class MachineReconciler:
    def __init__(self, *, store: ports.Store, clock: ports.Clock, nodes: NodeIndex) -> None:
        self._store = store
        self._clock = clock
        self._nodes = nodes

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        try:
            machine = self._store.get(capi.Machine, key)
        except outcome.NotFound:
            return outcome.Outcome.done()
        try:
            if machine.metadata.deletion_timestamp is not None:
                return self._delete(machine)
            return self._reconcile(machine)
        except (outcome.Conflict, outcome.NotFound):
            return outcome.Outcome.after(0.0)

    def _infra(self, machine: capi.Machine) -> v2.Metal3Machine | None:
        ref = machine.spec.infrastructure_ref
        if ref is None or not ref.name:
            return None
        try:
            return self._store.get(v2.Metal3Machine,
                                   meta.ObjectKey(machine.metadata.namespace, ref.name))
        except outcome.NotFound:
            return None

    def _reconcile(self, machine: capi.Machine) -> outcome.Outcome:
        store = self._store
        if ck.MACHINE_FINALIZER not in machine.metadata.finalizers:
            machine = store.update(machine.with_meta(
                finalizers=(*machine.metadata.finalizers, ck.MACHINE_FINALIZER)))
        m3m = self._infra(machine)
        if m3m is not None and m3m.metadata.deletion_timestamp is None:
            self._adopt(machine, m3m)
        provisioned = bool(m3m is not None and m3m.status is not None
                           and m3m.status.initialization is not None
                           and m3m.status.initialization.provisioned)
        provider_id = machine.spec.provider_id
        if provisioned and m3m is not None and m3m.spec is not None and m3m.spec.provider_id \
                and provider_id != m3m.spec.provider_id:
            provider_id = m3m.spec.provider_id
            machine = store.update(machine.model_copy(update={
                "spec": machine.spec.model_copy(update={"provider_id": provider_id})}))
        the_node = self._node(machine, provider_id)
        node_ref = machine.status.node_ref
        if the_node is not None:
            node_ref = capi.MachineNodeReference(name=the_node.metadata.name)
            self._annotate(machine, the_node)
        if node_ref is not None:
            phase = "Running"
        elif provider_id:
            phase = "Provisioned"
        elif m3m is not None:
            phase = "Provisioning"
        else:
            phase = "Pending"
        if the_node is not None:
            ready = node_ready(the_node)
            healthy = ("True", "NodeReady", "") if ready == "True" else (
                "False", "NodeNotReady", f"Node Ready condition is {ready}")
        elif node_ref is not None:
            healthy = ("False", "NodeDeleted", f"Node {node_ref.name} has been deleted")
        else:
            healthy = ("Unknown", "NodeDoesNotExist", "")
        changes: dict[str, tuple[str, str, str] | None] = {
            ck.INFRASTRUCTURE_READY: ("True", "Ready", "") if provisioned else (
                "False", "NotReady", ""),
            ck.NODE_HEALTHY: healthy,
        }
        status = ck.with_conditions(machine, self._clock.now(), changes).model_copy(
            update={"phase": phase, "node_ref": node_ref})
        if status != machine.status:
            store.update_status(machine.model_copy(update={"status": status}))
        return outcome.Outcome.done()

    def _adopt(self, machine: capi.Machine, m3m: v2.Metal3Machine) -> None:
        refs = m3m.metadata.owner_references
        if any(r.kind == "Machine" and r.uid == machine.metadata.uid and r.controller
               for r in refs):
            return
        owner = meta.OwnerReference(api_version=capi.API_VERSION, kind="Machine",
                                    name=machine.metadata.name, uid=machine.metadata.uid or "",
                                    controller=True, block_owner_deletion=True)
        kept = tuple(r for r in refs if r.kind not in ("Machine", "MachineSet"))
        self._store.update(m3m.with_meta(owner_references=(*kept, owner)))

    def _node(self, machine: capi.Machine, provider_id: str | None) -> node.Node | None:
        name = self._nodes.node_name(provider_id) if provider_id else None
        if name is None and machine.status.node_ref is not None:
            name = machine.status.node_ref.name
        if not name:
            return None
        try:
            found = self._store.get(node.Node, meta.ObjectKey("", name))
        except outcome.NotFound:
            return None
        return found if provider_id and found.spec.provider_id == provider_id else None

    def _annotate(self, machine: capi.Machine, n: node.Node) -> None:
        wanted = {ck.NODE_CLUSTER_ANNOTATION: machine.spec.cluster_name,
                  ck.NODE_NAMESPACE_ANNOTATION: machine.metadata.namespace,
                  ck.NODE_MACHINE_ANNOTATION: machine.metadata.name}
        if any(n.metadata.annotations.get(k) != v for k, v in wanted.items()):
            self._store.update(n.with_meta(annotations={**n.metadata.annotations, **wanted}))

    def _delete(self, machine: capi.Machine) -> outcome.Outcome:
        store = self._store
        if machine.status.phase != "Deleting":
            machine = store.update_status(machine.model_copy(update={
                "status": machine.status.model_copy(update={"phase": "Deleting"})}))
        m3m = self._infra(machine)
        if m3m is not None:
            if m3m.metadata.deletion_timestamp is None:
                store.delete(v2.Metal3Machine, m3m.key)
            return outcome.Outcome.done()  # the Metal3Machine's deletion brings us back
        if machine.status.node_ref is not None:
            with contextlib.suppress(outcome.NotFound):
                store.delete(node.Node, meta.ObjectKey("", machine.status.node_ref.name))
        if ck.MACHINE_FINALIZER in machine.metadata.finalizers:
            store.update(machine.with_meta(finalizers=tuple(
                f for f in machine.metadata.finalizers if f != ck.MACHINE_FINALIZER)))
        return outcome.Outcome.done()


# --- Cluster ---------------------------------------------------------------------------------


def _cluster_of_infra(m3c: v2.Metal3Cluster, _lookup: wiring.IndexLookup
                      ) -> Iterable[meta.ObjectKey]:
    return _owner_keys(m3c, "Cluster") or (m3c.key,)


def _cluster_of_machine(machine: capi.Machine, _lookup: wiring.IndexLookup
                        ) -> Iterable[meta.ObjectKey]:
    """Machines matter to a Cluster only while it deletes them (the filter below)."""
    name = machine.metadata.labels.get(capi.CLUSTER_NAME_LABEL)
    return (meta.ObjectKey(machine.metadata.namespace, name),) if name else ()


def _machine_gone_or_deleting(old: capi.Machine, new: capi.Machine) -> bool:
    return (old.metadata.deletion_timestamp is None) != (new.metadata.deletion_timestamp is None)


CLUSTER_WIRING = wiring.Wiring(
    name="capi-cluster",
    kind=capi.Cluster,
    watches=(wiring.Watch(capi.Cluster, wiring.own_key),
             wiring.Watch(v2.Metal3Cluster, _cluster_of_infra),
             wiring.Watch(capi.Machine, _cluster_of_machine,
                          update_filter=_machine_gone_or_deleting)),
    indexes=(),
)


class ClusterReconciler:
    def __init__(self, *, store: ports.Store, clock: ports.Clock) -> None:
        self._store = store
        self._clock = clock

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        try:
            cluster = self._store.get(capi.Cluster, key)
        except outcome.NotFound:
            return outcome.Outcome.done()
        try:
            if cluster.metadata.deletion_timestamp is not None:
                return self._delete(cluster)
            return self._reconcile(cluster)
        except (outcome.Conflict, outcome.NotFound):
            return outcome.Outcome.after(0.0)

    def _infra(self, cluster: capi.Cluster) -> v2.Metal3Cluster | None:
        ref = cluster.spec.infrastructure_ref
        if ref is None or not ref.name:
            return None
        try:
            return self._store.get(v2.Metal3Cluster,
                                   meta.ObjectKey(cluster.metadata.namespace, ref.name))
        except outcome.NotFound:
            return None

    def _reconcile(self, cluster: capi.Cluster) -> outcome.Outcome:
        store = self._store
        if ck.CLUSTER_FINALIZER not in cluster.metadata.finalizers:
            cluster = store.update(cluster.with_meta(
                finalizers=(*cluster.metadata.finalizers, ck.CLUSTER_FINALIZER)))
        m3c = self._infra(cluster)
        if m3c is None:
            return outcome.Outcome.done()
        if not any(r.kind == "Cluster" and r.uid == cluster.metadata.uid
                   for r in m3c.metadata.owner_references):
            m3c = store.update(m3c.with_meta(owner_references=(
                *m3c.metadata.owner_references,
                meta.OwnerReference(api_version=capi.API_VERSION, kind="Cluster",
                                    name=cluster.metadata.name,
                                    uid=cluster.metadata.uid or ""))))
        init = m3c.status.initialization if m3c.status is not None else None
        ready = bool(init is not None and init.provisioned)
        value = "True" if ready else "False"
        status = cluster.status.model_copy(update={
            "initialization": capi.ClusterInitialization(infrastructure_provisioned=ready),
            "deprecated": capi.Deprecated(v1beta1=capi.V1Beta1Deprecated(conditions=(
                capi.V1Beta1Condition(type="ControlPlaneInitialized", status=value),
                capi.V1Beta1Condition(type="InfrastructureReady", status=value))))})
        if status != cluster.status:
            store.update_status(cluster.model_copy(update={"status": status}))
        return outcome.Outcome.done()

    def _delete(self, cluster: capi.Cluster) -> outcome.Outcome:
        store = self._store
        ns = cluster.metadata.namespace
        selector = f"{capi.CLUSTER_NAME_LABEL}={cluster.metadata.name}"
        for kind in (ck.MachineDeployment, ck.MachineSet, ck.MachineHealthCheck):
            for obj in store.list(kind, namespace=ns, label_selector=selector):
                if obj.metadata.deletion_timestamp is None:
                    store.delete(kind, obj.key)
        machines = store.list(capi.Machine, namespace=ns, label_selector=selector)
        for machine in machines:
            if machine.metadata.deletion_timestamp is None:
                store.delete(capi.Machine, machine.key)
        if machines:
            return outcome.Outcome.done()  # each Machine's deletion brings us back
        m3c = self._infra(cluster)
        if m3c is not None:
            if m3c.metadata.deletion_timestamp is None:
                store.delete(v2.Metal3Cluster, m3c.key)
            return outcome.Outcome.done()
        if ck.CLUSTER_FINALIZER in cluster.metadata.finalizers:
            store.update(cluster.with_meta(finalizers=tuple(
                f for f in cluster.metadata.finalizers if f != ck.CLUSTER_FINALIZER)))
        return outcome.Outcome.done()
