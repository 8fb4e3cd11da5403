"""The Metal3Machine controller: claim a BareMetalHost safely, render its data, provision it,
give the workload Node its providerID, pause it for clusterctl move, release it.

Upstream (CAPM3 2f6d76b8 controllers/metal3machine_controller.go, baremetal/
metal3machine_manager.go) guards its host claim with a process-wide mutex and uncached reads,
and patches the host without a resourceVersion; its open bug #3516 re-writes a consumerRef onto
a host someone else has claimed since ("stealing"). Here the claim is safe by construction:

- the Metal3Machine first names its choice (annotation `metal3.io/BareMetalHost`, an update at
  its own resourceVersion, as OpenShift's fix for CAPBM #275 does): a stale copy of the machine
  (a lagging cache; found by the property test, where it let one machine take two hosts) fails
  there and claims nothing;
- then the host is claimed with an `update` carrying the resourceVersion it was read at: a 409
  means another machine (or anyone) changed it first, and the pass ends to choose again;
- a host is only ever written while its `consumerRef` is this Metal3Machine or empty (or the
  machine's node-reuse booking); a host that names another consumer is never touched;
- the association is found again from the hosts' consumerRef when the annotation was not
  written (a crash between the two writes leaks no host).

A pass, level-triggered, one side effect at a time (what is written on the host:
capm3host.py; the Node: capm3node.py; the data claim: capm3data.py):
1. no Metal3Machine: done. Deleting: `_delete` (below). No owner Machine, no Cluster, Cluster
   infrastructure not ready (v1beta1 condition InfrastructureReady), no bootstrap data:
   condition AssociateBareMetalHost False with upstream's reason; watches bring it back.
2. pause and move: an associated host carries `clusterctl.cluster.x-k8s.io/block-move`; when
   the Cluster is paused the host is paused for the move (with its status saved), and unpaused
   (only CAPM3's own pause) when the Cluster is not. Paused Cluster or `cluster.x-k8s.io/paused`
   on the machine: nothing else, look again in 30 s.
3. finalizer; `spec.failureDomain` follows the Machine's; `status.userData` the bootstrap data.
4. no host: choose one (`hostselection`: hostSelector, failure domain, a node-reuse booking
   first), name it, claim it in one write. None: condition "No available host found" and a
   Warning Event once; the machine is queued again when any host of its namespace becomes free
   (index `metal3machine-waiting`), and every 30 s. A failure domain nobody free is in: the
   host comes from elsewhere and the condition says so.
5. `spec.dataTemplate`: the Metal3DataClaim named after the machine (owned by it); once its
   Metal3Data is ready, `status.renderedData/metaData/networkData` (condition
   AssociateMetal3MachineMetaData); the Data's error is the condition's message.
6. the host's spec follows (`capm3host.synced`): image, userData, metaData, networkData while the
   host has neither image nor customDeploy; `online` and `automatedCleaningMode` always.
7. the host is provisioned: `spec.providerID = metal3://<ns>/<host>/<m3m>`,
   `status.initialization.provisioned`, `status.addresses`; the host's Node (label
   `metal3.io/uuid=<host uid>`, else its hostname) gets the same providerID. Two Nodes for one
   host, or a Node with another providerID: condition Ready False
   `SettingProviderIDOnNodeFailed` and an Event.

Deletion, upstream's order: the Metal3DataClaim goes (its deletion removes the Metal3Data, its
Secrets and IP claims); the host is deprovisioned (no image, data, powered off) and, back in a
free state, released: no consumer, no cluster label, no pause of ours, or booked for the
machine's MachineDeployment / control plane when its Metal3MachineTemplate has `nodeReuse` (found
through CAPI's `cluster.x-k8s.io/cloned-from-name` annotation) and the Cluster is not being
deleted. Then the finalizer goes.
"""

import random

from metalcubed.core import hostselection, outcome, ports, wiring
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import capi, meta, node
from metalcubed.core.api.capm3 import v1beta2 as v2
from metalcubed.core.reconcilers import capm3data, capm3host, capm3node, capm3status

FINALIZER = "metal3machine.infrastructure.cluster.x-k8s.io"
HOST_ANNOTATION = "metal3.io/BareMetalHost"
CLONED_FROM_ANNOTATION = "cluster.x-k8s.io/cloned-from-name"
REQUEUE_S = 30.0
ASSOCIATE = "AssociateBareMetalHost"
METADATA = "AssociateMetal3MachineMetaData"
READY = "Ready"
NO_HOST = "No available host found"
FAILED = "AssociateBareMetalHostFailed"
WAITING_INDEX = "metal3machine-waiting"
"""Metal3Machines without a host: value = namespace."""
HOST_INDEX = "metal3machine-host"
"""Metal3Machines by their host: "namespace/host"."""
HOST_UID_INDEX = "metal3machine-host-uid"
"""BareMetalHosts by uid (a Node's `metal3.io/uuid` label names one)."""
CLUSTER_INDEX = "metal3machine-cluster"
"""Metal3Machines by "namespace/cluster" (the cluster-name label Cluster API puts on them)."""
Status = capm3status.Status


def provider_id(m3m: v2.Metal3Machine, host: bmh.BareMetalHost) -> str:
    """The only providerID format CAPM3 v1.14 supports."""
    return f"metal3://{m3m.metadata.namespace}/{host.metadata.name}/{m3m.metadata.name}"


def _domain_note(m3m: v2.Metal3Machine, host: bmh.BareMetalHost) -> str:
    """The condition message when the host is not in the failure domain asked for."""
    wanted = m3m.spec.failure_domain if m3m.spec else None
    actual = host.metadata.labels.get(hostselection.FAILURE_DOMAIN_LABEL)
    if not wanted or actual == wanted:
        return ""
    return (f"failure domain {wanted!r} has no free host: took {host.metadata.name} from "
            + (f"domain {actual!r}" if actual else "no failure domain"))


# --- wiring ---------------------------------------------------------------------------------


def _waiting(m3m: v2.Metal3Machine) -> list[str]:
    has_host = HOST_ANNOTATION in m3m.metadata.annotations
    return [] if has_host or m3m.metadata.deletion_timestamp else [m3m.metadata.namespace]


def _host_of(m3m: v2.Metal3Machine) -> list[str]:
    name = m3m.metadata.annotations.get(HOST_ANNOTATION, "").rpartition("/")[2]
    return [f"{m3m.metadata.namespace}/{name}"] if name else []


def _machines_of_host(host: bmh.BareMetalHost, lookup: wiring.IndexLookup
                      ) -> list[meta.ObjectKey]:
    """A host change queues its consumer (and the machine that named it); a free host queues
    every machine of its namespace still waiting for one."""
    ref = host.spec.consumer_ref
    if ref is not None and ref.kind == "Metal3Machine" and ref.name:
        return [meta.ObjectKey(ref.namespace or host.metadata.namespace, ref.name)]
    keys = list(lookup(HOST_INDEX, f"{host.metadata.namespace}/{host.metadata.name}"))
    if hostselection.free(host) or host.metadata.labels.get(hostselection.NODE_REUSE_LABEL):
        keys.extend(lookup(WAITING_INDEX, host.metadata.namespace))
    return list(dict.fromkeys(keys))


def _machine_of_capi_machine(machine: capi.Machine, _lookup: wiring.IndexLookup
                             ) -> list[meta.ObjectKey]:
    """A Machine change (bootstrap data, failure domain) queues its Metal3Machine."""
    ref = machine.spec.infrastructure_ref
    if ref is None or ref.kind != "Metal3Machine" or not ref.name:
        return []
    return [meta.ObjectKey(machine.metadata.namespace, ref.name)]


def _machine_of_node(found: node.Node, lookup: wiring.IndexLookup) -> list[meta.ObjectKey]:
    """A Node change queues the machine of its host (`metal3.io/uuid` -> host -> machine)."""
    uid = found.metadata.labels.get(node.UUID_LABEL)
    if not uid:
        return []
    return [key for host in lookup(HOST_UID_INDEX, uid)
            for key in lookup(HOST_INDEX, f"{host.namespace}/{host.name}")]


def _machines_of_cluster(cluster: capi.Cluster, lookup: wiring.IndexLookup
                         ) -> list[meta.ObjectKey]:
    """A Cluster change (paused, infrastructure ready) queues its machines."""
    return list(lookup(CLUSTER_INDEX, f"{cluster.metadata.namespace}/{cluster.metadata.name}"))


def _machine_change_matters(old: capi.Machine, new: capi.Machine) -> bool:
    """What a Metal3Machine reads of its Machine: the spec (bootstrap data, failure domain),
    labels and owners (node reuse), deletion; not the status, which Cluster API rewrites as
    each condition moves."""
    a, b = old.metadata, new.metadata
    return (old.spec != new.spec or a.labels != b.labels
            or a.owner_references != b.owner_references
            or a.deletion_timestamp != b.deletion_timestamp)


def _node_change_matters(old: node.Node, new: node.Node) -> bool:
    """A Node's labels (the host's uid) and spec (providerID), not its status heartbeats."""
    return old.metadata.labels != new.metadata.labels or old.spec != new.spec


def _cluster_change_matters(old: capi.Cluster, new: capi.Cluster) -> bool:
    """What a Metal3Machine reads of its Cluster: paused, infrastructure ready, being deleted.
    Cluster API rewrites the Cluster's status as each of its Machines moves, and every rewrite
    would queue every machine of the cluster (upstream's mapping does): at 1,000 Machines that
    was 37 passes per machine while they came up and 113 while they were deleted."""
    return (bool(old.spec.paused) != bool(new.spec.paused)
            or old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
            or old.infrastructure_ready() != new.infrastructure_ready())


def _cluster_of(m3m: v2.Metal3Machine) -> list[str]:
    name = m3m.metadata.labels.get(capi.CLUSTER_NAME_LABEL)
    return [f"{m3m.metadata.namespace}/{name}"] if name else []


def _machine_of_owned(obj: meta.Resource, _lookup: wiring.IndexLookup) -> list[meta.ObjectKey]:
    """A Metal3DataClaim or Metal3Data change queues the Metal3Machine owning it."""
    return [meta.ObjectKey(obj.metadata.namespace, r.name) for r in obj.metadata.owner_references
            if r.kind == "Metal3Machine" and r.api_version.startswith(capm3host.GROUP + "/")]


WIRING = wiring.Wiring(
    name="metal3machine",
    kind=v2.Metal3Machine,
    watches=(wiring.Watch(v2.Metal3Machine, wiring.own_key),
             wiring.Watch(capi.Machine, _machine_of_capi_machine,
                          update_filter=_machine_change_matters),
             wiring.Watch(bmh.BareMetalHost, _machines_of_host),
             wiring.Watch(v2.Metal3DataClaim, _machine_of_owned),
             wiring.Watch(v2.Metal3Data, _machine_of_owned),
             wiring.Watch(node.Node, _machine_of_node, update_filter=_node_change_matters),
             wiring.Watch(capi.Cluster, _machines_of_cluster,
                          update_filter=_cluster_change_matters)),
    indexes=(wiring.Index(WAITING_INDEX, v2.Metal3Machine, _waiting),
             wiring.Index(CLUSTER_INDEX, v2.Metal3Machine, _cluster_of),
             wiring.Index(HOST_INDEX, v2.Metal3Machine, _host_of),
             wiring.Index(HOST_UID_INDEX, bmh.BareMetalHost,
                          lambda h: [h.metadata.uid] if h.metadata.uid else [])),
)
"""Upstream's watches but the Metal3Cluster one; the Cluster through the cluster-name label
Cluster API puts on its machines (a machine without it, waiting for its Cluster or paused, also
looks again every 30 s); plus Nodes (their providerID) and free hosts (for machines waiting for
one)."""


class Metal3MachineReconciler:
    def __init__(self, *, store: ports.Store, clock: ports.Clock, events: ports.EventRecorder,
                 rng: random.Random | None = None, node_store: ports.Store | None = None,
                 ) -> None:
        self._store = store
        self._nodes = node_store or store
        """The workload cluster's API (the same API server in the lab)."""
        self._clock = clock
        self._events = events
        self._rng = rng or random.Random(0)

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        try:
            m3m = self._store.get(v2.Metal3Machine, key)
        except outcome.NotFound:
            return outcome.Outcome.done()
        try:
            return self._reconcile(m3m)
        except (outcome.Conflict, outcome.NotFound):
            # Someone else wrote first, or what we read (a cache) is gone: look again.
            return outcome.Outcome.after(0.0)

    def _reconcile(self, m3m: v2.Metal3Machine) -> outcome.Outcome:
        machine = self._owner_machine(m3m)
        cluster = self._cluster(machine) if machine is not None else None
        if m3m.metadata.deletion_timestamp is not None:
            return self._delete(m3m, machine, cluster)
        if machine is None:
            # No write: Cluster API sets the owner right after creating us, with an update
            # whose resourceVersion a status write would beat (409 stalls its MachineSet's
            # serial creation loop); that update brings us back.
            return outcome.Outcome.done()
        if cluster is None:
            self._wait(m3m, "WaitingForCluster")
            return outcome.Outcome.after(REQUEUE_S)
        host = self._host(m3m, cluster.metadata.name)
        paused = bool(cluster.spec.paused) or capi.PAUSED_ANNOTATION in m3m.metadata.annotations
        if host is not None:
            step = (capm3host.pause_step(host) if cluster.spec.paused else capm3host.block_move(
                capm3host.unpause(host, cluster=cluster.metadata.name)))
            if step is not host:
                self._store.update(step)
                return outcome.Outcome.done()  # the host's watch brings us back
        if paused:
            return outcome.Outcome.after(REQUEUE_S)
        if not cluster.infrastructure_ready():
            self._wait(m3m, "WaitingForClusterInfrastructureReady")
            return outcome.Outcome.after(REQUEUE_S)
        spec = m3m.spec or v2.Metal3MachineSpec()
        if FINALIZER not in m3m.metadata.finalizers or (
                spec.failure_domain != machine.spec.failure_domain):
            self._store.update(m3m.with_meta(
                finalizers=tuple(dict.fromkeys((*m3m.metadata.finalizers, FINALIZER))))
                .model_copy(update={"spec": spec.model_copy(
                    update={"failure_domain": machine.spec.failure_domain})}))
            return outcome.Outcome.after(0.0)
        secret = spec.user_data.name if spec.user_data else machine.spec.bootstrap.data_secret_name
        if not secret:
            return self._wait(m3m, "WaitingForBootstrapData")
        status = m3m.status or v2.Metal3MachineStatus()
        if status.user_data is None or status.user_data.name != secret:
            self._set_status(m3m, {}, user_data=secret)
            return outcome.Outcome.after(0.0)
        if host is None:
            return self._associate(m3m, machine, cluster)
        if spec.data_template is not None:
            waiting = self._metadata(m3m, spec.data_template)
            if waiting is not None:
                return waiting
        elif not (status.meta_data == spec.meta_data and status.network_data == spec.network_data):
            self._set_status(m3m, {}, meta_data=spec.meta_data, network_data=spec.network_data)
            return outcome.Outcome.after(0.0)
        synced = capm3host.synced(host, m3m)
        if synced is not host:
            self._store.update(synced)
            return outcome.Outcome.done()  # the host's watch brings us back
        if host.status.provisioning.state != bmh.ProvisioningState.PROVISIONED:
            self._set_status(m3m, {ASSOCIATE: ("True", "AssociateBareMetalHostSuccess",
                                               _domain_note(m3m, host))})
            return outcome.Outcome.done()  # the host's watch brings us back
        return self._provisioned(m3m, host)

    # --- reading ----------------------------------------------------------------------------

    def _owner_machine(self, m3m: v2.Metal3Machine) -> capi.Machine | None:
        ref = next((r for r in m3m.metadata.owner_references if r.kind == "Machine"
                    and r.api_version.startswith("cluster.x-k8s.io/")), None)
        if ref is None:
            return None
        try:
            return self._store.get(capi.Machine, meta.ObjectKey(m3m.metadata.namespace, ref.name))
        except outcome.NotFound:
            return None

    def _cluster(self, machine: capi.Machine) -> capi.Cluster | None:
        name = machine.metadata.labels.get(capi.CLUSTER_NAME_LABEL) or machine.spec.cluster_name
        if not name:
            return None
        try:
            return self._store.get(capi.Cluster, meta.ObjectKey(machine.metadata.namespace, name))
        except outcome.NotFound:
            return None

    def _host(self, m3m: v2.Metal3Machine, cluster: str = "") -> bmh.BareMetalHost | None:
        """Our host: the annotated one if it still names us, else any host that names us
        (a claim whose annotation was never written: among the hosts labelled with the
        cluster, which every claim labels; all hosts when the cluster is not known)."""
        name = m3m.metadata.annotations.get(HOST_ANNOTATION, "").rpartition("/")[2]
        if name:
            try:
                host = self._store.get(bmh.BareMetalHost,
                                       meta.ObjectKey(m3m.metadata.namespace, name))
                if capm3host.is_consumer(host, m3m):
                    return host
            except outcome.NotFound:
                pass
        selector = f"{capi.CLUSTER_NAME_LABEL}={cluster}" if cluster else None
        for host in self._store.list(bmh.BareMetalHost, namespace=m3m.metadata.namespace,
                                     label_selector=selector):
            if capm3host.is_consumer(host, m3m):
                return host
        return None

    # --- claiming ---------------------------------------------------------------------------

    def _associate(self, m3m: v2.Metal3Machine, machine: capi.Machine, cluster: capi.Cluster
                   ) -> outcome.Outcome:
        """Two guarded steps. First the Metal3Machine names its choice (an update at its own
        resourceVersion: a stale copy of the machine, e.g. from a lagging cache, fails here and
        claims nothing). Then the host is claimed (an update at the host's resourceVersion: a
        host someone changed since fails here). A machine therefore never holds two hosts."""
        spec = m3m.spec or v2.Metal3MachineSpec()
        reuse = capm3host.reuse_label(machine)
        named = m3m.metadata.annotations.get(HOST_ANNOTATION, "").rpartition("/")[2]
        if named:
            try:
                host = self._store.get(bmh.BareMetalHost,
                                       meta.ObjectKey(m3m.metadata.namespace, named))
            except outcome.NotFound:
                host = None
            if host is not None and hostselection.free(host, reuse) and hostselection.matches(
                    spec.host_selector, host.metadata.labels):
                return self._claim(m3m, host, cluster)
            annotations = dict(m3m.metadata.annotations)  # taken or gone: choose again
            del annotations[HOST_ANNOTATION]
            self._store.update(m3m.with_meta(annotations=annotations))
            return outcome.Outcome.after(0.0)
        hosts = self._store.list(bmh.BareMetalHost, namespace=m3m.metadata.namespace)
        try:
            choice = hostselection.choose(hosts, selector=spec.host_selector,
                                          failure_domain=spec.failure_domain, rng=self._rng,
                                          reuse=reuse)
        except hostselection.SelectorError as err:
            return self._wait(m3m, "InvalidConfiguration", str(err))
        if choice.host is None:
            message = (f"waiting for host {choice.wait}, kept for this machine's {reuse} (node "
                       "reuse)" if choice.wait else f"{NO_HOST}: {choice.why}")
            if not self._failed(m3m):  # one Event per wait, not one per retry
                self._events.record(m3m, type=ports.EventType.WARNING,
                                    reason="NoAvailableHost", message=message)
            self._set_status(m3m, {ASSOCIATE: ("False", FAILED, message)})
            return outcome.Outcome.after(REQUEUE_S)
        host = choice.host
        m3m = self._store.update(m3m.with_meta(annotations={
            **m3m.metadata.annotations,
            HOST_ANNOTATION: f"{host.metadata.namespace}/{host.metadata.name}"}))
        # Named at our current resourceVersion: our view of the machine was fresh, claim now.
        return self._claim(m3m, host, cluster)

    def _claim(self, m3m: v2.Metal3Machine, host: bmh.BareMetalHost, cluster: capi.Cluster
               ) -> outcome.Outcome:
        # The claim: one update at the resourceVersion the host was read at (409: lost).
        self._store.update(capm3host.claimed(host, m3m, cluster=cluster.metadata.name))
        self._set_status(m3m, {ASSOCIATE: ("True", "AssociateBareMetalHostSuccess",
                                           _domain_note(m3m, host))})
        return outcome.Outcome.done()

    # --- data -------------------------------------------------------------------------------

    def _metadata(self, m3m: v2.Metal3Machine, template: v2.ObjectRef) -> outcome.Outcome | None:
        """None once the machine's status has its rendered data, else what to wait for."""
        claim = capm3data.claim(self._store, m3m, finalizer=FINALIZER, template=template)
        if claim is None:
            return outcome.Outcome.done()  # the claim's watch brings us back
        state = capm3data.rendered(self._store, claim, template)
        if state.data is None:
            self._set_status(m3m, {METADATA: ("False", "WaitingForMetal3Data", state.waiting)})
            return outcome.Outcome.after(REQUEUE_S)
        spec = state.data.spec or v2.Metal3DataSpec()
        self._set_status(m3m, {METADATA: ("True", "AssociateMetal3MachineMetaDataSuccess", "")},
                         rendered_data=(claim.status or v2.Metal3DataClaimStatus()).rendered_data,
                         meta_data=spec.meta_data, network_data=spec.network_data)
        return None

    # --- provisioned ------------------------------------------------------------------------

    def _provisioned(self, m3m: v2.Metal3Machine, host: bmh.BareMetalHost) -> outcome.Outcome:
        spec = m3m.spec or v2.Metal3MachineSpec()
        wanted = provider_id(m3m, host)
        if spec.provider_id != wanted:
            m3m = self._store.update(m3m.model_copy(
                update={"spec": spec.model_copy(update={"provider_id": wanted})}))
        addresses: list[v2.MachineAddress] = []
        hardware = host.status.hardware
        for nic in (hardware.nics if hardware else ()):
            if nic.ip:
                addresses.append(v2.MachineAddress(address=nic.ip, type="InternalIP"))
        if hardware and hardware.hostname:
            addresses.append(v2.MachineAddress(address=hardware.hostname, type="Hostname"))
            addresses.append(v2.MachineAddress(address=hardware.hostname, type="InternalDNS"))
        ready: tuple[Status, str, str] = ("True", "Ready", "")
        try:
            found = capm3node.find(self._nodes, host, [a.address for a in addresses
                                                       if a.type == "Hostname"])
            if found is not None:
                given = capm3node.with_provider_id(found, wanted)
                if given is not found:
                    self._nodes.update(given)
        except capm3node.NodeError as err:
            ready = ("False", "SettingProviderIDOnNodeFailed", str(err))
            if self._condition(m3m, READY) != ready[::2]:
                self._events.record(m3m, type=ports.EventType.WARNING,
                                    reason="SettingProviderIDOnNodeFailed", message=str(err))
        self._set_status(m3m, {ASSOCIATE: ("True", "AssociateBareMetalHostSuccess",
                                           _domain_note(m3m, host)), READY: ready},
                         provisioned=True, addresses=tuple(addresses))
        return outcome.Outcome.done()

    # --- releasing --------------------------------------------------------------------------

    def _delete(self, m3m: v2.Metal3Machine, machine: capi.Machine | None,
                cluster: capi.Cluster | None) -> outcome.Outcome:
        m3m = self._set_status(m3m, {READY: ("False", "Deleting", "")})
        capm3data.release(self._store, m3m, finalizer=FINALIZER)  # first the data
        host = self._host(m3m, cluster.metadata.name if cluster is not None else "")
        if host is not None:
            off = capm3host.deprovisioned(host, m3m)
            if off is not host:
                self._store.update(off)
                return outcome.Outcome.done()  # the host's watch brings us back
            if host.status.provisioning.state not in capm3host.RELEASED_STATES:
                return outcome.Outcome.after(REQUEUE_S)
            reuse = ""
            if machine is not None and cluster is not None and (
                    cluster.metadata.deletion_timestamp is None) and self._node_reuse(m3m):
                reuse = capm3host.reuse_label(machine)
            self._store.update(capm3host.released(host, cluster=cluster, reuse=reuse or None))
        if FINALIZER in m3m.metadata.finalizers:
            current = self._store.get(v2.Metal3Machine, m3m.key)
            self._store.update(current.with_meta(finalizers=tuple(
                f for f in current.metadata.finalizers if f != FINALIZER)))
        return outcome.Outcome.done()

    def _node_reuse(self, m3m: v2.Metal3Machine) -> bool:
        """The machine's Metal3MachineTemplate (CAPI's cloned-from annotation) asks for reuse."""
        name = m3m.metadata.annotations.get(CLONED_FROM_ANNOTATION)
        if not name:
            return False
        try:
            template = self._store.get(v2.Metal3MachineTemplate,
                                       meta.ObjectKey(m3m.metadata.namespace, name))
        except outcome.NotFound:
            return False  # upstream: a template already deleted means a normal release
        return bool(template.spec.node_reuse)

    # --- status -----------------------------------------------------------------------------

    def _wait(self, m3m: v2.Metal3Machine, reason: str, message: str = "") -> outcome.Outcome:
        self._set_status(m3m, {ASSOCIATE: ("False", reason, message)})
        return outcome.Outcome.done()

    @staticmethod
    def _failed(m3m: v2.Metal3Machine) -> bool:
        found = capm3status.condition(m3m, ASSOCIATE)
        return found is not None and found.reason == FAILED

    @staticmethod
    def _condition(m3m: v2.Metal3Machine, kind: str) -> tuple[str, str] | None:
        found = capm3status.condition(m3m, kind)
        return (found.status, found.message or "") if found is not None else None

    def _set_status(self, m3m: v2.Metal3Machine, changes: dict[str, tuple[Status, str, str]],
                    **fields: object) -> v2.Metal3Machine:
        return capm3status.write(self._store, self._clock, m3m, changes, **fields)
