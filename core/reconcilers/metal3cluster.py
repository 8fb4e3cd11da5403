"""The Metal3Cluster controller: tells Cluster API core the cluster's infrastructure is ready.

CAPM3 creates no load balancer: a Metal3Cluster is provisioned once its `controlPlaneEndpoint`
names a host and a port, and Cluster API core then copies the endpoint and marks the Cluster's
infrastructure provisioned (contract v1beta2: `status.initialization.provisioned`). As upstream
(CAPM3 2f6d76b8 controllers/metal3cluster_controller.go, baremetal/metal3cluster_manager.go):

1. no Metal3Cluster: done. `status.failureDomains` follows `spec.failureDomains`;
2. no owner Cluster yet (Cluster API core sets the ownerReference): wait for the change. An owner
   reference to a Cluster that does not exist: Ready False `FailedToGetOwnerCluster`, retried;
3. paused (Cluster `spec.paused`, or `cluster.x-k8s.io/paused` on either object): condition
   Paused True, nothing else, look again after 30 s (upstream's requeueAfter); else Paused False;
4. deleting: Ready False `Deleting`; while Machines labelled with the cluster's name exist, look
   again after 30 s; then the finalizer goes;
5. otherwise the finalizer is added, and the endpoint decides: host and port set ->
   `initialization.provisioned` true, BaremetalInfrastructureReady and Ready True; else false,
   `ControlPlaneEndpointFailed`, and the v1beta1 failure reason/message upstream writes.
Status is written only when it changed (lastUpdated moves with it), so a pass on an unchanged
world writes nothing. Conditions keep their lastTransitionTime while their status holds.
"""

from typing import Literal

from metalcubed.core import outcome, ports, wiring
from metalcubed.core.api import capi, meta
from metalcubed.core.api.capm3 import v1beta2 as v2

FINALIZER = "metal3cluster.infrastructure.cluster.x-k8s.io"
REQUEUE_S = 30.0
"""Upstream's requeueAfter."""
READY = "Ready"
INFRA_READY = "BaremetalInfrastructureReady"
PAUSED = "Paused"
INVALID_ENDPOINT = "Invalid ControlPlaneEndpoint values"
Status = Literal["True", "False", "Unknown"]


def metal3cluster_of(cluster: capi.Cluster, _lookup: wiring.IndexLookup) -> list[meta.ObjectKey]:
    """Watch mapper: a Cluster change (paused, ownership) queues its Metal3Cluster."""
    ref = cluster.spec.infrastructure_ref
    if ref is None or ref.kind != "Metal3Cluster" or not ref.name:
        return []
    return [meta.ObjectKey(cluster.metadata.namespace, ref.name)]


WIRING = wiring.Wiring(
    name="metal3cluster",
    kind=v2.Metal3Cluster,
    watches=(wiring.Watch(v2.Metal3Cluster, wiring.own_key),
             wiring.Watch(capi.Cluster, metal3cluster_of)),
    indexes=(),
)
"""Upstream's watches (the Metal3Cluster, its Cluster). Not in controllerset.CONTROLLERS yet:
the manager would then need the CAPM3 and CAPI CRDs installed to start."""


class Metal3ClusterReconciler:
    def __init__(self, *, store: ports.Store, clock: ports.Clock) -> None:
        self._store = store
        self._clock = clock

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        try:
            m3c = self._store.get(v2.Metal3Cluster, key)
        except outcome.NotFound:
            return outcome.Outcome.done()
        status = m3c.status or v2.Metal3ClusterStatus()
        spec = m3c.spec or v2.Metal3ClusterSpec()
        status = status.model_copy(update={"failure_domains": spec.failure_domains})
        owner = next((r for r in m3c.metadata.owner_references
                      if r.kind == "Cluster" and r.api_version.startswith("cluster.x-k8s.io/")),
                     None)
        if owner is None:
            self._write(m3c, status)
            return outcome.Outcome.done()
        try:
            cluster = self._store.get(capi.Cluster, meta.ObjectKey(key.namespace, owner.name))
        except outcome.NotFound:
            self._write(m3c, self._conditions(status, {READY: ("False",
                                                               "FailedToGetOwnerCluster")}))
            raise outcome.TransientError(f"owner Cluster {key.namespace}/{owner.name} not found"
                                         ) from None
        paused = bool(cluster.spec.paused) or any(
            capi.PAUSED_ANNOTATION in o.metadata.annotations for o in (cluster, m3c))
        status = self._conditions(status, {PAUSED: ("True" if paused else "False",
                                                    "Paused" if paused else "NotPaused")})
        if paused:
            self._write(m3c, status)
            return outcome.Outcome.after(REQUEUE_S)
        if m3c.metadata.deletion_timestamp is not None:
            return self._delete(m3c, cluster, status)
        if FINALIZER not in m3c.metadata.finalizers:
            m3c = self._store.update(m3c.with_meta(finalizers=(*m3c.metadata.finalizers,
                                                               FINALIZER)))
        self._write(m3c, self._provisioning(spec, status))
        return outcome.Outcome.done()

    def _delete(self, m3c: v2.Metal3Cluster, cluster: capi.Cluster,
                status: v2.Metal3ClusterStatus) -> outcome.Outcome:
        self._write(m3c, self._conditions(status, {READY: ("False", "Deleting")}))
        machines = self._store.list(
            capi.Machine, namespace=m3c.metadata.namespace,
            label_selector=f"{capi.CLUSTER_NAME_LABEL}={cluster.metadata.name}")
        if machines:
            return outcome.Outcome.after(REQUEUE_S)
        if FINALIZER in m3c.metadata.finalizers:
            current = self._store.get(v2.Metal3Cluster, m3c.key)
            self._store.update(current.with_meta(finalizers=tuple(
                f for f in current.metadata.finalizers if f != FINALIZER)))
        return outcome.Outcome.done()

    def _provisioning(self, spec: v2.Metal3ClusterSpec, status: v2.Metal3ClusterStatus
                      ) -> v2.Metal3ClusterStatus:
        endpoint = spec.control_plane_endpoint
        valid = endpoint is not None and bool(endpoint.host) and bool(endpoint.port)
        changes: dict[str, tuple[Status, str]]
        if valid:
            legacy = None
            changes = {INFRA_READY: ("True", "Ready"), READY: ("True", "Ready")}
        else:
            legacy = v2.Metal3ClusterV1Beta1DeprecatedStatus(
                failure_reason="InvalidConfiguration", failure_message=INVALID_ENDPOINT)
            changes = {INFRA_READY: ("False", "ControlPlaneEndpointFailed"),
                       READY: ("False", "NotReady")}
        status = self._conditions(status, changes).model_copy(update={
            "initialization": v2.Metal3ClusterInitializationStatus(provisioned=valid),
            "deprecated": v2.Metal3ClusterDeprecatedStatus(v1beta1=legacy) if legacy else None,
        })
        return status

    def _conditions(self, status: v2.Metal3ClusterStatus,
                    changes: dict[str, tuple[Status, str]]) -> v2.Metal3ClusterStatus:
        current = {c.type: c for c in status.conditions or ()}
        now = meta.format_time(self._clock.now())
        for kind, (value, reason) in changes.items():
            old = current.get(kind)
            if old is not None and (old.status, old.reason) == (value, reason):
                continue
            current[kind] = v2.Condition(
                type=kind, status=value, reason=reason, message="",
                last_transition_time=old.last_transition_time
                if old is not None and old.status == value else now)
        ordered = tuple(sorted(current.values(), key=lambda c: c.type))
        return status.model_copy(update={"conditions": ordered})

    def _write(self, m3c: v2.Metal3Cluster, status: v2.Metal3ClusterStatus) -> None:
        before = m3c.status or v2.Metal3ClusterStatus()
        unchanged = status.model_copy(update={"last_updated": before.last_updated})
        if unchanged == before:
            return
        stamped = status.model_copy(update={"last_updated": meta.format_time(self._clock.now())})
        current = self._store.get(v2.Metal3Cluster, m3c.key)
        self._store.update_status(current.model_copy(update={"status": stamped}))
