"""Cluster API core's MachineDeployment, MachineSet and MachineHealthCheck controllers, modelled.

Read from Cluster API v1.13 (core/reconcilers/{machinedeployment,machineset,machinehealthcheck})
and kept to scaling and remediation (no template rollouts, no in-place updates, no preflight
checks: the model has no control plane to be ahead of).

MachineDeployment: one MachineSet (`<md>-ms`, owned by it) whose replicas and remediation
settings follow the deployment's; status replicas/ready from it.

MachineSet (machineset_controller.go):
1. remediation (reconcileUnhealthyMachines): a Machine whose HealthCheckSucceeded is True again
   loses OwnerRemediated; Machines with HealthCheckSucceeded False and OwnerRemediated False are
   deleted, oldest name first, at most `remediation.maxInFlight` at a time (counting those
   already deleting for remediation, reason MachineDeleting), the rest told to wait;
2. replicas (syncReplicas): Machines being deleted still count, so a replacement is created only
   once its predecessor is gone (its host deprovisioned and released). Too few: create the
   missing ones, each a Metal3Machine cloned from the Metal3MachineTemplate (owned by the
   MachineSet until the Machine adopts it) and a Machine of the same name. Too many: delete by
   the Random deletion order (being deleted, then annotated `cluster.x-k8s.io/delete-machine`,
   then unhealthy, then by name);
3. status: replicas, ready (Running with a Ready Node).

MachineHealthCheck (machinehealthcheck_controller.go, _targets.go): its targets are the cluster's
Machines matching the selector (not being deleted). A target is unhealthy when its Node was
deleted, when it has no Node `nodeStartupTimeout` after the later of its creation and its
infrastructure becoming ready, or when a Node condition has matched an unhealthy condition for
longer than its timeout. With more unhealthy targets than `maxUnhealthy` (an int, or a
percentage of the targets rounded down) nothing is remediated (TooManyUnhealthy, the
short-circuit); otherwise each unhealthy Machine gets HealthCheckSucceeded False and
OwnerRemediated False, which its MachineSet acts on. Healthy ones get HealthCheckSucceeded True.
The next pass comes when a timeout would expire.
"""

import math
import random
from collections.abc import Iterable
from datetime import datetime

from metalcubed.core import outcome, ports, wiring
from metalcubed.core.api import capi, meta, node
from metalcubed.core.api.capm3 import v1beta2 as v2
from metalcubed.simulators.fleet import capikinds as ck
from metalcubed.simulators.fleet import capimachine

_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
"""apimachinery's name generator alphabet (Cluster API names Machines client-side)."""


def _owners(obj: meta.Resource, kind: str, _lookup: wiring.IndexLookup
            ) -> Iterable[meta.ObjectKey]:
    return [meta.ObjectKey(obj.metadata.namespace, ref.name)
            for ref in obj.metadata.owner_references if ref.kind == kind]


def _deployment_of_set(ms: ck.MachineSet, lookup: wiring.IndexLookup
                       ) -> Iterable[meta.ObjectKey]:
    return _owners(ms, "MachineDeployment", lookup)


def _set_of_machine(machine: capi.Machine, _lookup: wiring.IndexLookup
                    ) -> Iterable[meta.ObjectKey]:
    name = machine.metadata.labels.get(ck.SET_NAME_LABEL)
    return (meta.ObjectKey(machine.metadata.namespace, name),) if name else ()


DEPLOYMENT_WIRING = wiring.Wiring(
    name="capi-machinedeployment",
    kind=ck.MachineDeployment,
    watches=(wiring.Watch(ck.MachineDeployment, wiring.own_key),
             wiring.Watch(ck.MachineSet, _deployment_of_set)),
    indexes=(),
)

SET_WIRING = wiring.Wiring(
    name="capi-machineset",
    kind=ck.MachineSet,
    watches=(wiring.Watch(ck.MachineSet, wiring.own_key),
             wiring.Watch(capi.Machine, _set_of_machine)),
    indexes=(),
)


class MachineDeploymentReconciler:
    def __init__(self, *, store: ports.Store) -> None:
        self._store = store

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        store = self._store
        try:
            md = store.get(ck.MachineDeployment, key)
        except outcome.NotFound:
            return outcome.Outcome.done()
        if md.metadata.deletion_timestamp is not None:
            return outcome.Outcome.done()
        name = f"{md.metadata.name}-ms"
        spec = ck.MachineSetSpec(cluster_name=md.spec.cluster_name, replicas=md.spec.replicas,
                                 template=md.spec.template,
                                 remediation_max_in_flight=md.spec.remediation_max_in_flight)
        try:
            try:
                ms = store.get(ck.MachineSet, meta.ObjectKey(md.metadata.namespace, name))
            except outcome.NotFound:
                ms = store.create(ck.MachineSet(
                    metadata=meta.ObjectMeta(
                        name=name, namespace=md.metadata.namespace,
                        labels={capi.CLUSTER_NAME_LABEL: md.spec.cluster_name,
                                ck.DEPLOYMENT_NAME_LABEL: md.metadata.name},
                        owner_references=(meta.OwnerReference(
                            api_version=ck.API_VERSION, kind="MachineDeployment",
                            name=md.metadata.name, uid=md.metadata.uid or "",
                            controller=True, block_owner_deletion=True),)),
                    spec=spec))
            if ms.spec != spec:
                ms = store.update(ms.model_copy(update={"spec": spec}))
            if md.status != ms.status:
                store.update_status(md.model_copy(update={"status": ms.status}))
        except (outcome.Conflict, outcome.NotFound):
            return outcome.Outcome.after(0.0)
        return outcome.Outcome.done()


def _healthy(machine: capi.Machine) -> bool:
    """machineset's isMachineHealthy: neither NodeHealthy nor HealthCheckSucceeded False."""
    return not (ck.is_false(machine, ck.NODE_HEALTHY)
                or ck.is_false(machine, ck.HEALTH_CHECK_SUCCEEDED))


def _delete_priority(machine: capi.Machine) -> float:
    """randomDeletionOrder (the default deletion order)."""
    if machine.metadata.deletion_timestamp is not None:
        return 100.0
    if ck.DELETE_MACHINE_ANNOTATION in machine.metadata.annotations:
        return 80.0
    if not _healthy(machine):
        return 50.0
    return 20.0


class MachineSetReconciler:
    def __init__(self, *, store: ports.Store, clock: ports.Clock, events: ports.EventRecorder,
                 rng: random.Random) -> None:
        self._store = store
        self._clock = clock
        self._events = events
        self._rng = rng
        self.remediated = 0
        """Machines deleted for remediation (the report's figure)."""

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        store = self._store
        try:
            ms = store.get(ck.MachineSet, key)
        except outcome.NotFound:
            return outcome.Outcome.done()
        if ms.metadata.deletion_timestamp is not None:
            return outcome.Outcome.done()  # its Machines go by garbage collection
        try:
            selector = f"{ck.SET_NAME_LABEL}={ms.metadata.name}"
            ns = ms.metadata.namespace
            machines = store.list(capi.Machine, namespace=ns, label_selector=selector)
            if self._remediate(ms, machines):
                machines = store.list(capi.Machine, namespace=ns, label_selector=selector)
            if self._sync_replicas(ms, machines):
                machines = store.list(capi.Machine, namespace=ns, label_selector=selector)
            ready = sum(1 for m in machines if m.metadata.deletion_timestamp is None
                        and m.status.phase == "Running" and ck.is_true(m, ck.NODE_HEALTHY))
            status = ck.ReplicaStatus(replicas=len(machines), ready_replicas=ready)
            if status != ms.status:
                store.update_status(ms.model_copy(update={"status": status}))
        except (outcome.Conflict, outcome.NotFound):
            return outcome.Outcome.after(0.0)
        return outcome.Outcome.done()

    # --- remediation ---------------------------------------------------------------------------

    def _remediate(self, ms: ck.MachineSet, machines: list[capi.Machine]) -> bool:
        """Whether anything was written."""
        store = self._store
        wrote = False
        now = self._clock.now()
        pending: list[capi.Machine] = []
        in_flight = 0
        for m in machines:
            remediated = ck.condition(m, ck.OWNER_REMEDIATED)
            if remediated is not None and remediated.status == "False":
                if ck.is_true(m, ck.HEALTH_CHECK_SUCCEEDED):
                    wrote = True
                    store.update_status(m.model_copy(update={"status": ck.with_conditions(
                        m, now, {ck.OWNER_REMEDIATED: None})}))
                elif m.metadata.deletion_timestamp is not None:
                    in_flight += remediated.reason == ck.REMEDIATION_DELETING
                elif ck.is_false(m, ck.HEALTH_CHECK_SUCCEEDED):
                    pending.append(m)
        if not pending:
            return wrote
        limit = math.inf
        if ms.spec.remediation_max_in_flight is not None:
            limit = ck.scaled(ms.spec.remediation_max_in_flight, ms.spec.replicas, round_up=True)
        allowed = max(0, int(min(limit - in_flight, len(pending))))
        pending.sort(key=lambda m: m.metadata.name)
        for m in pending[:allowed]:
            store.update_status(m.model_copy(update={"status": ck.with_conditions(
                m, now, {ck.OWNER_REMEDIATED: (
                    "False", ck.REMEDIATION_DELETING, "Machine is deleting")})}))
            store.delete(capi.Machine, m.key)
            self._events.record(ms, type=ports.EventType.NORMAL, reason="MachineRemediated",
                                message=f"Deleted unhealthy Machine {m.metadata.name}")
            self.remediated += 1
        for m in pending[allowed:]:
            waiting = ck.with_conditions(m, now, {ck.OWNER_REMEDIATED: (
                "False", "WaitingForRemediation",
                "Waiting because there are already too many remediations in progress")})
            if waiting != m.status:  # the patch helper writes only a difference
                store.update_status(m.model_copy(update={"status": waiting}))
        return allowed > 0 or wrote

    # --- replicas ------------------------------------------------------------------------------

    def _sync_replicas(self, ms: ck.MachineSet, machines: list[capi.Machine]) -> bool:
        """Create or delete Machines toward the replicas; whether anything was written."""
        diff = len(machines) - ms.spec.replicas
        wrote = False
        if diff < 0:
            for _ in range(-diff):
                self._create(ms)
            wrote = True
        elif diff > 0:
            ordered = sorted(machines, key=lambda m: (-_delete_priority(m), m.metadata.name))
            for m in ordered[:diff]:
                if m.metadata.deletion_timestamp is None:
                    self._store.delete(capi.Machine, m.key)
                    wrote = True
        return wrote

    def _create(self, ms: ck.MachineSet) -> None:
        store = self._store
        ns = ms.metadata.namespace
        template = ms.spec.template
        source = store.get(v2.Metal3MachineTemplate,
                           meta.ObjectKey(ns, template.infrastructure_template))
        name = f"{ms.metadata.name}-" + "".join(self._rng.choice(_ALPHABET) for _ in range(5))
        labels = {**template.labels, capi.CLUSTER_NAME_LABEL: ms.spec.cluster_name,
                  ck.SET_NAME_LABEL: ms.metadata.name}
        deployment = ms.metadata.labels.get(ck.DEPLOYMENT_NAME_LABEL)
        if deployment:
            labels[ck.DEPLOYMENT_NAME_LABEL] = deployment
        owner = meta.OwnerReference(api_version=ck.API_VERSION, kind="MachineSet",
                                    name=ms.metadata.name, uid=ms.metadata.uid or "",
                                    controller=True, block_owner_deletion=True)
        store.create(v2.Metal3Machine(
            metadata=meta.ObjectMeta(name=name, namespace=ns, labels=labels,
                                     owner_references=(owner,)),
            spec=source.spec.template.spec))
        store.create(capi.Machine(
            metadata=meta.ObjectMeta(name=name, namespace=ns, labels=labels,
                                     owner_references=(owner,)),
            spec=capi.MachineSpec(
                cluster_name=ms.spec.cluster_name,
                bootstrap=capi.Bootstrap(data_secret_name=template.bootstrap_data_secret),
                infrastructure_ref=capi.ContractVersionedObjectReference(
                    api_group=capimachine.INFRA_GROUP, kind="Metal3Machine", name=name),
                failure_domain=template.failure_domain)))


# --- MachineHealthCheck ----------------------------------------------------------------------

HEALTHCHECK_INDEX = "capi-mhc-cluster"


def _cluster_of_mhc(mhc: ck.MachineHealthCheck) -> Iterable[str]:
    yield f"{mhc.metadata.namespace}/{mhc.spec.cluster_name}"


def _mhcs_of_machine(machine: capi.Machine, lookup: wiring.IndexLookup
                     ) -> Iterable[meta.ObjectKey]:
    cluster = machine.metadata.labels.get(capi.CLUSTER_NAME_LABEL)
    return lookup(HEALTHCHECK_INDEX, f"{machine.metadata.namespace}/{cluster}") if cluster else ()


def _mhcs_of_node(n: node.Node, lookup: wiring.IndexLookup) -> Iterable[meta.ObjectKey]:
    cluster = n.metadata.annotations.get(ck.NODE_CLUSTER_ANNOTATION)
    namespace = n.metadata.annotations.get(ck.NODE_NAMESPACE_ANNOTATION)
    if not cluster or namespace is None:
        return ()
    return lookup(HEALTHCHECK_INDEX, f"{namespace}/{cluster}")


def _mhcs_of_cluster(cluster: capi.Cluster, lookup: wiring.IndexLookup
                     ) -> Iterable[meta.ObjectKey]:
    return lookup(HEALTHCHECK_INDEX, f"{cluster.metadata.namespace}/{cluster.metadata.name}")


def _node_conditions_changed(old: node.Node, new: node.Node) -> bool:
    """nodeIsChangedPredicate: the Node's conditions (or annotations, which map it) changed."""
    return (old.status.conditions != new.status.conditions
            or old.metadata.annotations != new.metadata.annotations)


HEALTHCHECK_WIRING = wiring.Wiring(
    name="capi-machinehealthcheck",
    kind=ck.MachineHealthCheck,
    watches=(wiring.Watch(ck.MachineHealthCheck, wiring.own_key),
             wiring.Watch(capi.Cluster, _mhcs_of_cluster),
             wiring.Watch(capi.Machine, _mhcs_of_machine),
             wiring.Watch(node.Node, _mhcs_of_node, update_filter=_node_conditions_changed)),
    indexes=(wiring.Index(HEALTHCHECK_INDEX, ck.MachineHealthCheck, _cluster_of_mhc),),
)


def _seconds(a: datetime, b: datetime) -> float:
    return (a - b).total_seconds()


class MachineHealthCheckReconciler:
    def __init__(self, *, store: ports.Store, clock: ports.Clock,
                 events: ports.EventRecorder) -> None:
        self._store = store
        self._clock = clock
        self._events = events
        self.short_circuits = 0
        """Passes that found more unhealthy targets than maxUnhealthy and remediated none."""
        self.marked = 0
        """Machines marked for remediation (OwnerRemediated False set, or an external
        remediation request created)."""
        self.requests = 0
        """Metal3Remediations created (external remediation)."""

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        store = self._store
        try:
            mhc = store.get(ck.MachineHealthCheck, key)
        except outcome.NotFound:
            return outcome.Outcome.done()
        if mhc.metadata.deletion_timestamp is not None:
            return outcome.Outcome.done()
        try:
            return self._reconcile(mhc)
        except (outcome.Conflict, outcome.NotFound):
            return outcome.Outcome.after(0.0)

    def _reconcile(self, mhc: ck.MachineHealthCheck) -> outcome.Outcome:
        store = self._store
        ns = mhc.metadata.namespace
        try:
            cluster = store.get(capi.Cluster, meta.ObjectKey(ns, mhc.spec.cluster_name))
        except outcome.NotFound:
            return outcome.Outcome.done()
        if not cluster.infrastructure_ready():
            return outcome.Outcome.done()  # not penalised yet; the Cluster's change brings us back
        selector = ",".join(f"{k}={v}" for k, v in sorted(
            {**mhc.spec.selector, capi.CLUSTER_NAME_LABEL: mhc.spec.cluster_name}.items()))
        targets = [m for m in store.list(capi.Machine, namespace=ns, label_selector=selector)
                   if m.metadata.deletion_timestamp is None]
        now = self._clock.now()
        unhealthy: list[tuple[capi.Machine, str]] = []
        healthy: list[capi.Machine] = []
        next_check = math.inf
        for machine in targets:
            message, wait = self._check(mhc, machine, now)
            if message:
                unhealthy.append((machine, message))
            else:
                healthy.append(machine)
                next_check = min(next_check, wait)
        expected = len(targets)
        limit = ck.scaled(mhc.spec.max_unhealthy, expected, round_up=False)
        allowed = len(unhealthy) <= limit
        template = mhc.spec.remediation_template
        for machine in healthy:
            self._mark(machine, now, {ck.HEALTH_CHECK_SUCCEEDED: ("True", "Healthy", "")})
            if template is not None:  # the Node is healthy again: the request goes
                self._delete_request(machine)
        for machine, message in unhealthy:
            changes: dict[str, tuple[str, str, str] | None] = {
                ck.HEALTH_CHECK_SUCCEEDED: ("False", "UnhealthyNode", message)}
            if allowed and template is not None:
                if self._request(mhc, machine, template):
                    changes[ck.EXTERNALLY_REMEDIATED] = ("False", "WaitingForRemediation", "")
                    self.marked += 1
            elif allowed:
                remediated = ck.condition(machine, ck.OWNER_REMEDIATED)
                if remediated is None or remediated.status == "True":
                    changes[ck.OWNER_REMEDIATED] = ("False", "WaitingForRemediation",
                                                    "Waiting for remediation")
                    self.marked += 1
            self._mark(machine, now, changes)
        status = ck.HealthCheckStatus(
            expected_machines=expected, current_healthy=len(healthy),
            remediations_allowed=max(0, limit - len(unhealthy)) if allowed else 0,
            short_circuited=not allowed)
        if not allowed:
            self.short_circuits += 1
            if not mhc.status.short_circuited:
                self._events.record(
                    mhc, type=ports.EventType.WARNING, reason="RemediationRestricted",
                    message=f"Remediation restricted due to exceeded number of unhealthy "
                            f"machines (total: {expected}, unhealthy: {len(unhealthy)}, "
                            f"maxUnhealthy: {mhc.spec.max_unhealthy})")
        if status != mhc.status:
            store.update_status(mhc.model_copy(update={"status": status}))
        if unhealthy and not allowed:
            next_check = min(next_check, 30.0)
        return outcome.Outcome.after(next_check) if next_check < math.inf else \
            outcome.Outcome.done()

    def _request(self, mhc: ck.MachineHealthCheck, machine: capi.Machine, template: str
                 ) -> bool:
        """External remediation: a Metal3Remediation named after the Machine, owned by it,
        from the template (external.GenerateTemplate); False when one exists already."""
        store = self._store
        ns = machine.metadata.namespace
        try:
            store.get(v2.Metal3Remediation, machine.key)
            return False
        except outcome.NotFound:
            pass
        source = store.get(v2.Metal3RemediationTemplate, meta.ObjectKey(ns, template))
        spec = source.spec.template.spec if source.spec is not None else None
        store.create(v2.Metal3Remediation(
            metadata=meta.ObjectMeta(
                name=machine.metadata.name, namespace=ns,
                labels={capi.CLUSTER_NAME_LABEL: mhc.spec.cluster_name},
                owner_references=(meta.OwnerReference(
                    api_version=capi.API_VERSION, kind="Machine", name=machine.metadata.name,
                    uid=machine.metadata.uid or ""),)),
            spec=spec))
        self.requests += 1
        return True

    def _delete_request(self, machine: capi.Machine) -> None:
        try:
            request = self._store.get(v2.Metal3Remediation, machine.key)
        except outcome.NotFound:
            return
        if request.metadata.deletion_timestamp is None:
            self._store.delete(v2.Metal3Remediation, request.key)

    def _mark(self, machine: capi.Machine, now: datetime,
              changes: dict[str, tuple[str, str, str] | None]) -> None:
        status = ck.with_conditions(machine, now, changes)
        if status != machine.status:
            self._store.update_status(machine.model_copy(update={"status": status}))

    def _check(self, mhc: ck.MachineHealthCheck, machine: capi.Machine, now: datetime
               ) -> tuple[str, float]:
        """(why the target is unhealthy, or "" and the seconds until it could become so)."""
        node_ref = machine.status.node_ref
        n: node.Node | None = None
        if node_ref is not None:
            try:
                n = self._store.get(node.Node, meta.ObjectKey("", node_ref.name))
            except outcome.NotFound:
                return f"Node {node_ref.name} has been deleted", 0.0
        if n is None:
            timeout = mhc.spec.node_startup_timeout_s
            if timeout <= 0:
                return "", math.inf
            since = machine.metadata.creation_timestamp or now
            infra = ck.condition(machine, ck.INFRASTRUCTURE_READY)
            if infra is not None and infra.status == "True" and infra.last_transition_time \
                    and infra.last_transition_time > since:
                since = infra.last_transition_time
            waited = _seconds(now, since)
            if waited > timeout:
                return f"Node failed to report startup in {timeout:g}s", 0.0
            return "", timeout - waited + 1.0
        wait = math.inf
        for check in mhc.spec.unhealthy_node_conditions:
            c = next((c for c in n.status.conditions if c.type == check.type), None)
            if c is None or c.status != check.status:
                continue
            since = c.last_transition_time or now
            waited = _seconds(now, since)
            if waited > check.timeout_s:
                return (f"Condition {check.type} on Node is reporting status {check.status} "
                        f"for more than {check.timeout_s:g}s"), 0.0
            wait = min(wait, check.timeout_s - waited + 1.0)
        return "", wait
