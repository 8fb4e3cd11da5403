"""The label sync controller: a BareMetalHost's labels with chosen prefixes follow it onto its
workload Node.

Upstream CAPM3 (2f6d76b8 controllers/metal3labelsync_controller.go) reconciles BareMetalHosts:
a host consumed by a Metal3Machine whose Machine has a Node (`status.nodeRef`), in a Cluster
whose Metal3Cluster carries `metal3.io/metal3-label-sync-prefixes: a.example.com,b.io`, has
every label `<prefix>/<name>` with one of those prefixes copied to the Node, and the Node loses
such labels the host does not have (capm3node.synced_labels: labels of other prefixes are
never touched). Paused hosts and paused Clusters are left alone.

Upstream also looks again every 60 s; here the Node (its labels), the host, the Machine (its
nodeRef) and the Metal3Cluster (its annotation) are watched, so a change is synced when it
happens and nothing runs on a quiet fleet. A bad prefix list is a SpecError naming the
annotation, with a Warning Event on the Metal3Cluster.
"""

from typing import TypeVar

from metalcubed.core import outcome, ports, wiring
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import capi, meta, node
from metalcubed.core.api.capm3 import v1beta2 as v2
from metalcubed.core.reconcilers import capm3host, capm3node, metal3machine

R = TypeVar("R", bound=meta.Resource)
CONSUMER_INDEX = "labelsync-consumer"
"""BareMetalHosts by their Metal3Machine consumer: "namespace/name"."""
CLUSTER_INDEX = "labelsync-cluster"
"""BareMetalHosts by their cluster label: "namespace/cluster"."""


def _consumer(host: bmh.BareMetalHost) -> list[str]:
    ref = host.spec.consumer_ref
    if ref is None or ref.kind != "Metal3Machine" or not ref.name:
        return []
    return [f"{ref.namespace or host.metadata.namespace}/{ref.name}"]


def _cluster(host: bmh.BareMetalHost) -> list[str]:
    name = host.metadata.labels.get(capi.CLUSTER_NAME_LABEL)
    return [f"{host.metadata.namespace}/{name}"] if name else []


def _hosts_of_machine(machine: capi.Machine, lookup: wiring.IndexLookup
                      ) -> list[meta.ObjectKey]:
    ref = machine.spec.infrastructure_ref
    if ref is None or ref.kind != "Metal3Machine" or not ref.name:
        return []
    return list(lookup(CONSUMER_INDEX, f"{machine.metadata.namespace}/{ref.name}"))


def _hosts_of_metal3cluster(m3c: v2.Metal3Cluster, lookup: wiring.IndexLookup
                            ) -> list[meta.ObjectKey]:
    return [key for ref in m3c.metadata.owner_references if ref.kind == "Cluster"
            for key in lookup(CLUSTER_INDEX, f"{m3c.metadata.namespace}/{ref.name}")]


def _host_of_node(found: node.Node, lookup: wiring.IndexLookup) -> list[meta.ObjectKey]:
    uid = found.metadata.labels.get(node.UUID_LABEL)
    return list(lookup(metal3machine.HOST_UID_INDEX, uid)) if uid else []


def _labels_changed(old: meta.Resource, new: meta.Resource) -> bool:
    return old.metadata.labels != new.metadata.labels


def _machine_changed(old: capi.Machine, new: capi.Machine) -> bool:
    """The Node a Machine names and its spec (cluster, infrastructure), not the rest of its
    status."""
    return old.status.node_ref != new.status.node_ref or old.spec != new.spec


def _host_changed(old: bmh.BareMetalHost, new: bmh.BareMetalHost) -> bool:
    return (old.metadata.labels != new.metadata.labels
            or old.metadata.annotations != new.metadata.annotations
            or old.spec.consumer_ref != new.spec.consumer_ref)


_HOST_UID = next(i for i in metal3machine.WIRING.indexes
                 if i.name == metal3machine.HOST_UID_INDEX)

WIRING = wiring.Wiring(
    name="metal3labelsync",
    kind=bmh.BareMetalHost,
    watches=(wiring.Watch(bmh.BareMetalHost, wiring.own_key, update_filter=_host_changed),
             wiring.Watch(capi.Machine, _hosts_of_machine, update_filter=_machine_changed),
             wiring.Watch(v2.Metal3Cluster, _hosts_of_metal3cluster),
             wiring.Watch(node.Node, _host_of_node, update_filter=_labels_changed)),
    indexes=(wiring.Index(CONSUMER_INDEX, bmh.BareMetalHost, _consumer),
             wiring.Index(CLUSTER_INDEX, bmh.BareMetalHost, _cluster),
             _HOST_UID),
)


class Metal3LabelSyncReconciler:
    def __init__(self, *, store: ports.Store, events: ports.EventRecorder,
                 node_store: ports.Store | None = None) -> None:
        self._store = store
        self._nodes = node_store or store
        self._events = events

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        try:
            return self._reconcile(key)
        except (outcome.Conflict, outcome.NotFound):
            return outcome.Outcome.after(0.0)

    def _reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        try:
            host = self._store.get(bmh.BareMetalHost, key)
        except outcome.NotFound:
            return outcome.Outcome.done()
        ref = host.spec.consumer_ref
        if bmh.PAUSED_ANNOTATION in host.metadata.annotations or ref is None or (
                ref.kind != "Metal3Machine") or (ref.api_version or "").split("/")[0] != (
                capm3host.GROUP):
            return outcome.Outcome.done()
        ns = host.metadata.namespace
        m3m = self._get(v2.Metal3Machine, meta.ObjectKey(ref.namespace or ns, ref.name or ""))
        owner = next((r for r in (m3m.metadata.owner_references if m3m else ())
                      if r.kind == "Machine"), None)
        machine = self._get(capi.Machine, meta.ObjectKey(ns, owner.name)) if owner else None
        if machine is None or machine.status.node_ref is None or not machine.status.node_ref.name:
            return outcome.Outcome.done()  # the Machine's watch brings us back with a Node
        cluster = self._get(capi.Cluster, meta.ObjectKey(ns, machine.spec.cluster_name))
        infra = cluster.spec.infrastructure_ref if cluster else None
        m3c = self._get(v2.Metal3Cluster, meta.ObjectKey(ns, infra.name)) if (
            infra is not None and infra.name) else None
        if cluster is None or m3c is None or cluster.spec.paused or any(
                capi.PAUSED_ANNOTATION in o.metadata.annotations for o in (cluster, m3c)):
            return outcome.Outcome.done()
        try:
            prefixes = capm3node.prefixes(m3c)
        except ValueError as err:
            self._events.record(m3c, type=ports.EventType.WARNING, reason="InvalidLabelPrefix",
                                message=str(err))
            raise outcome.SpecError(f"metadata.annotations[{capm3node.PREFIX_ANNOTATION}]",
                                    str(err)) from None
        if not prefixes:
            return outcome.Outcome.done()
        found = self._nodes.get(node.Node, meta.ObjectKey("", machine.status.node_ref.name))
        labels = capm3node.synced_labels(found.metadata.labels, host.metadata.labels, prefixes)
        if labels != found.metadata.labels:
            self._nodes.update(found.with_meta(labels=labels))
        return outcome.Outcome.done()

    def _get(self, kind: type[R], key: meta.ObjectKey) -> R | None:
        if not key.name:
            return None
        try:
            return self._store.get(kind, key)
        except outcome.NotFound:
            return None
