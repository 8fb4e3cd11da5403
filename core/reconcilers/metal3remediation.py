"""The Metal3Remediation controller: reboot an unhealthy Machine's BareMetalHost, and give up
visibly.

Cluster API core's MachineHealthCheck (with `remediation.templateRef` naming a
Metal3RemediationTemplate) creates a Metal3Remediation named after the unhealthy Machine and
owned by it; it deletes it once the Node is healthy again. As upstream (CAPM3 2f6d76b8
controllers/metal3remediation_controller.go, baremetal/metal3remediation_manager.go), with the
Reboot strategy, one side effect per pass:

  ""        -> phase Running, lastRemediated = now                                      (1 s)
  Running   finalizer (1 s); power-off annotation `reboot.metal3.io/metal3-remediation-<uid>`
            = {"mode":"hard"} on the host, BMO holds it off (5 s); wait `status.poweredOn`
            false (5 s); then the Node: out-of-service taint `node.kubernetes.io/
            out-of-service=nodeshutdown:NoExecute` (1 s) or, in legacy mode, back up the
            Node's labels and annotations on the remediation and delete the Node (5 s);
            -> Waiting                                                                  (5 s)
  Waiting   remove the power-off annotation (BMO powers on); wait `poweredOn` (5 s); Node
            there: remove the taint (or restore labels/annotations), drop the backups and
            the finalizer: done, MachineHealthCheck deletes the remediation once the Node is
            healthy. Not healthy by lastRemediated + timeoutSeconds (default 600): while
            retryCount < retryLimit -> Running again with retryCount + 1; else give up:
            Machine condition OwnerRemediated False, host annotation
            `capm3.metal3.io/unhealthy` (never chosen again until removed), phase
            `Deleting machine`.
  A host with `online: false` is not remediated: phase Failed. A strategy other than Reboot is
  ignored.

Where metalcubed differs, and why:
- Giving up sets OwnerRemediated False in the Machine's v1beta2 `status.conditions` as well
  as the deprecated v1beta1 one. Upstream sets only the v1beta1 condition, but Cluster API
  v1.13's MachineSet chooses the Machines to delete by the v1beta2 condition
  (`collections.IsUnhealthyAndOwnerRemediated`), so upstream's give-up never replaces the
  Machine there.
- A Machine without `status.nodeRef` means no Node (upstream fails the pass with an error
  every time, so a Machine whose Node never registered is never rebooted).
- A remediation being deleted whose Machine, Metal3Machine or host is gone loses its finalizer
  (upstream errors forever and the object never goes).
- The drain wait of the out-of-service mode (no terminating Pods, no VolumeAttachments on the
  Node) is not done: metalcubed has no Pod model; the taint is followed by Waiting at once.
Nodes are read and written through `node_store`: the workload cluster (in the lab, the same
API server as the management cluster).
"""

import datetime
import json

from metalcubed.core import outcome, ports, wiring
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import capi, meta, node
from metalcubed.core.api.capm3 import v1beta2 as v2
from metalcubed.core.reconcilers import metal3machine

FINALIZER = "metal3remediation.infrastructure.cluster.x-k8s.io"
POWER_OFF_PREFIX = "reboot.metal3.io/metal3-remediation-"
NODE_ANNOTATIONS_BACKUP = "remediation.metal3.io/node-annotations-backup"
NODE_LABELS_BACKUP = "remediation.metal3.io/node-labels-backup"
UNHEALTHY_ANNOTATION = "capm3.metal3.io/unhealthy"
UNHEALTHY_VALUE = "capm3/UnhealthyNode"
OWNER_REMEDIATED = "OwnerRemediated"
WAITING_FOR_REMEDIATION = "WaitingForRemediation"
DEFAULT_TIMEOUT_S = 600
STEP_S = 1.0
POLL_S = 5.0
"""Upstream's requeues: 1 s after a write it must see, 5 s while waiting on the host or Node."""

RUNNING, WAITING, DELETING, FAILED = "Running", "Waiting", "Deleting machine", "Failed"


def power_off_annotation(m3r: v2.Metal3Remediation) -> str:
    return POWER_OFF_PREFIX + (m3r.metadata.uid or "")


def _remediation_of_host(host: bmh.BareMetalHost, _lookup: wiring.IndexLookup
                         ) -> list[meta.ObjectKey]:
    """A host change (power state, above all) queues the remediation of its consumer's Machine:
    Cluster API names a Metal3Machine after its Machine, and MachineHealthCheck names the
    remediation after the Machine. (Upstream watches only remediations and polls every 5 s; a
    key that names no remediation costs one cache miss.)"""
    ref = host.spec.consumer_ref
    if ref is None or ref.kind != "Metal3Machine" or not ref.name:
        return []
    if not any(a.startswith(POWER_OFF_PREFIX) for a in host.metadata.annotations):
        return []
    return [meta.ObjectKey(ref.namespace or host.metadata.namespace, ref.name)]


WIRING = wiring.Wiring(
    name="metal3remediation",
    kind=v2.Metal3Remediation,
    watches=(wiring.Watch(v2.Metal3Remediation, wiring.own_key),
             wiring.Watch(bmh.BareMetalHost, _remediation_of_host)),
    indexes=(),
)
"""Upstream's watch (the remediation) plus hosts under a remediation's power-off annotation."""


class Metal3RemediationReconciler:
    def __init__(self, *, store: ports.Store, clock: ports.Clock, events: ports.EventRecorder,
                 node_store: ports.Store | None = None, out_of_service_taint: bool = True
                 ) -> None:
        """`out_of_service_taint`: taint the Node instead of deleting it (upstream enables it
        when the management cluster runs Kubernetes >= 1.28)."""
        self._store = store
        self._nodes = node_store or store
        self._clock = clock
        self._events = events
        self._taint = out_of_service_taint

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        try:
            m3r = self._store.get(v2.Metal3Remediation, key)
        except outcome.NotFound:
            return outcome.Outcome.done()
        try:
            return self._reconcile(m3r)
        except outcome.Conflict:
            return outcome.Outcome.after(0.0)  # someone wrote first: look again

    def _reconcile(self, m3r: v2.Metal3Remediation) -> outcome.Outcome:
        found = self._targets(m3r)
        if isinstance(found, str):
            if m3r.metadata.deletion_timestamp is not None:
                self._drop_finalizer(m3r)
                return outcome.Outcome.done()
            raise outcome.TransientError(f"Metal3Remediation {m3r.key}: {found}")
        machine, host = found
        spec = m3r.spec or v2.Metal3RemediationSpec()
        strategy = spec.strategy or v2.RemediationStrategy()
        status = m3r.status or v2.Metal3RemediationStatus()
        if not host.spec.online:
            self._set_status(m3r, phase=FAILED)
            return outcome.Outcome.done()
        if strategy.type != "Reboot":
            return outcome.Outcome.done()
        if not status.phase:
            self._set_status(m3r, phase=RUNNING, last_remediated=self._now())
            return outcome.Outcome.after(STEP_S)
        found_node = self._node(machine)
        if status.phase == RUNNING:
            return self._running(m3r, host, found_node)
        if status.phase == WAITING:
            return self._waiting(m3r, machine, host, found_node, strategy)
        return outcome.Outcome.done()  # Deleting machine, Failed: nothing left to do

    # --- reading ----------------------------------------------------------------------------

    def _targets(self, m3r: v2.Metal3Remediation
                 ) -> tuple[capi.Machine, bmh.BareMetalHost] | str:
        """The owner Machine and the host of its Metal3Machine, or why they cannot be found."""
        ns = m3r.metadata.namespace
        owner = next((r for r in m3r.metadata.owner_references if r.kind == "Machine"
                      and r.api_version.startswith("cluster.x-k8s.io/")), None)
        if owner is None:
            return "owner Machine not set"
        try:
            machine = self._store.get(capi.Machine, meta.ObjectKey(ns, owner.name))
        except outcome.NotFound:
            return f"owner Machine {owner.name} not found"
        ref = machine.spec.infrastructure_ref
        if ref is None or not ref.name:
            return f"Machine {owner.name} has no infrastructureRef"
        try:
            m3m = self._store.get(v2.Metal3Machine, meta.ObjectKey(ns, ref.name))
        except outcome.NotFound:
            return f"Metal3Machine {ref.name} not found"
        named = m3m.metadata.annotations.get(metal3machine.HOST_ANNOTATION, "")
        if not named:
            return f"Metal3Machine {ref.name} has no {metal3machine.HOST_ANNOTATION} annotation"
        try:
            host = self._store.get(bmh.BareMetalHost,
                                   meta.ObjectKey(ns, named.rpartition("/")[2]))
        except outcome.NotFound:
            return f"BareMetalHost {named} not found"
        return machine, host

    def _node(self, machine: capi.Machine) -> node.Node | None:
        ref = machine.status.node_ref
        if ref is None or not ref.name:
            return None
        try:
            return self._nodes.get(node.Node, meta.ObjectKey("", ref.name))
        except outcome.NotFound:
            return None

    # --- phases -----------------------------------------------------------------------------

    def _running(self, m3r: v2.Metal3Remediation, host: bmh.BareMetalHost,
                 found: node.Node | None) -> outcome.Outcome:
        if FINALIZER not in m3r.metadata.finalizers:
            self._store.update(m3r.with_meta(finalizers=(*m3r.metadata.finalizers, FINALIZER)))
            return outcome.Outcome.after(STEP_S)
        key = power_off_annotation(m3r)
        if key not in host.metadata.annotations:
            self._store.update(host.with_meta(annotations={
                **host.metadata.annotations, key: json.dumps({"mode": "hard"})}))
            self._events.record(m3r, type=ports.EventType.NORMAL, reason="PoweringOff",
                                message=f"powering off BareMetalHost {host.metadata.name}")
            return outcome.Outcome.after(POLL_S)
        if host.status.powered_on:
            return outcome.Outcome.after(POLL_S)
        if found is not None:
            if self._taint:
                if not found.has_taint(node.OUT_OF_SERVICE_TAINT):
                    taint = node.OUT_OF_SERVICE_TAINT.model_copy(
                        update={"time_added": self._clock.now()})
                    self._nodes.update(found.model_copy(update={"spec": found.spec.model_copy(
                        update={"taints": (*found.spec.taints, taint)})}))
                    return outcome.Outcome.after(STEP_S)
            else:
                backup = {NODE_ANNOTATIONS_BACKUP: _marshal(found.metadata.annotations),
                          NODE_LABELS_BACKUP: _marshal(found.metadata.labels)}
                if any(m3r.metadata.annotations.get(k) != v for k, v in backup.items()):
                    self._store.update(m3r.with_meta(
                        annotations={**m3r.metadata.annotations, **backup}))
                    return outcome.Outcome.after(STEP_S)
                if found.metadata.deletion_timestamp is None:
                    self._nodes.delete(node.Node, found.key)
                return outcome.Outcome.after(POLL_S)  # until the Node is gone
        self._set_status(m3r, phase=WAITING)
        return outcome.Outcome.after(POLL_S)

    def _waiting(self, m3r: v2.Metal3Remediation, machine: capi.Machine,
                 host: bmh.BareMetalHost, found: node.Node | None,
                 strategy: v2.RemediationStrategy) -> outcome.Outcome:
        key = power_off_annotation(m3r)
        if key in host.metadata.annotations:
            annotations = {k: v for k, v in host.metadata.annotations.items() if k != key}
            host = self._store.update(host.with_meta(annotations=annotations))
            self._events.record(m3r, type=ports.EventType.NORMAL, reason="PoweringOn",
                                message=f"powering on BareMetalHost {host.metadata.name}")
        if not host.status.powered_on:
            return outcome.Outcome.after(POLL_S)
        if FINALIZER in m3r.metadata.finalizers and found is not None:
            if self._taint:
                if found.has_taint(node.OUT_OF_SERVICE_TAINT):
                    taints = tuple(t for t in found.spec.taints
                                   if not t.matches(node.OUT_OF_SERVICE_TAINT))
                    self._nodes.update(found.model_copy(update={
                        "spec": found.spec.model_copy(update={"taints": taints})}))
            else:
                self._restore(m3r, found)
            annotations = {k: v for k, v in m3r.metadata.annotations.items()
                           if k not in (NODE_ANNOTATIONS_BACKUP, NODE_LABELS_BACKUP)}
            self._store.update(m3r.with_meta(annotations=annotations, finalizers=tuple(
                f for f in m3r.metadata.finalizers if f != FINALIZER)))
            return outcome.Outcome.after(POLL_S)
        status = m3r.status or v2.Metal3RemediationStatus()
        timeout_s = strategy.timeout_seconds or DEFAULT_TIMEOUT_S
        last = _parse_time(status.last_remediated)
        now = self._clock.now()
        if last is None or (now - last).total_seconds() <= timeout_s:
            return outcome.Outcome.after(POLL_S)
        limit = strategy.retry_limit or 0
        count = status.retry_count or 0
        if limit > 0 and count != limit:
            self._set_status(m3r, phase=RUNNING, last_remediated=self._now(),
                             retry_count=count + 1)
            return outcome.Outcome.after(STEP_S)
        self._owner_remediated_false(machine)
        if host.metadata.annotations.get(UNHEALTHY_ANNOTATION) != UNHEALTHY_VALUE:
            self._store.update(host.with_meta(annotations={
                **host.metadata.annotations, UNHEALTHY_ANNOTATION: UNHEALTHY_VALUE}))
        self._events.record(m3r, type=ports.EventType.WARNING, reason="RemediationFailed",
                            message=f"Node not healthy {timeout_s} s after {count + 1} "
                                    f"reboot(s) of BareMetalHost {host.metadata.name}: "
                                    "its Machine is handed back to its owner for deletion")
        self._set_status(m3r, phase=DELETING)
        return outcome.Outcome.done()

    # --- writes -----------------------------------------------------------------------------

    def _restore(self, m3r: v2.Metal3Remediation, found: node.Node) -> None:
        annotations = _unmarshal(m3r.metadata.annotations.get(NODE_ANNOTATIONS_BACKUP, ""))
        labels = _unmarshal(m3r.metadata.annotations.get(NODE_LABELS_BACKUP, ""))
        if not annotations and not labels:
            return
        restored = found.with_meta(
            annotations={**found.metadata.annotations, **annotations},
            labels={**found.metadata.labels, **labels})
        if restored != found:
            self._nodes.update(restored)

    def _owner_remediated_false(self, machine: capi.Machine) -> None:
        """OwnerRemediated False (reason WaitingForRemediation) on the Machine, in the v1beta1
        conditions CAPM3 writes and the v1beta2 ones Cluster API v1.13's MachineSet reads."""
        now = self._clock.now()
        status = machine.status
        legacy = (status.deprecated.v1beta1 if status.deprecated else None) or \
            capi.V1Beta1Deprecated()
        old = [c for c in legacy.conditions if c.type != OWNER_REMEDIATED]
        legacy = legacy.model_copy(update={"conditions": (*old, capi.V1Beta1Condition(
            type=OWNER_REMEDIATED, status="False", severity="Warning",
            reason=WAITING_FOR_REMEDIATION, last_transition_time=now))})
        deprecated = (status.deprecated or capi.Deprecated()).model_copy(
            update={"v1beta1": legacy})
        current = [c for c in status.conditions or () if c.type != OWNER_REMEDIATED]
        conditions = (*current, capi.Condition(
            type=OWNER_REMEDIATED, status="False", reason=WAITING_FOR_REMEDIATION,
            message="Waiting for remediation", last_transition_time=now,
            observed_generation=machine.metadata.generation))
        self._store.update_status(machine.model_copy(update={"status": status.model_copy(
            update={"deprecated": deprecated, "conditions": conditions})}))

    def _drop_finalizer(self, m3r: v2.Metal3Remediation) -> None:
        if FINALIZER in m3r.metadata.finalizers:
            self._store.update(m3r.with_meta(finalizers=tuple(
                f for f in m3r.metadata.finalizers if f != FINALIZER)))

    def _now(self) -> str:
        return meta.format_time(self._clock.now())

    def _set_status(self, m3r: v2.Metal3Remediation, **changes: object) -> None:
        status = m3r.status or v2.Metal3RemediationStatus()
        new = status.model_copy(update=changes)
        if new != status:
            self._store.update_status(m3r.model_copy(update={"status": new}))


def _marshal(values: dict[str, str]) -> str:
    """Go's json.Marshal of a map (sorted keys, no spaces)."""
    return json.dumps(values, sort_keys=True, separators=(",", ":")) if values else ""


def _unmarshal(text: str) -> dict[str, str]:
    """The backup back to a map; a value that does not parse restores nothing (as upstream,
    which logs and goes on: the error would not go away on retry)."""
    if not text:
        return {}
    try:
        parsed = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    return {str(k): str(v) for k, v in parsed.items()}


def _parse_time(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
