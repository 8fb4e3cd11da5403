"""The Metal3Machine controller (first part): claim a BareMetalHost safely, provision, release.

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
- a host is only ever written while its `consumerRef` is this Metal3Machine or empty; a host
  that names another consumer is never touched (our annotation is dropped, a new host chosen);
- the association is found again from the hosts' consumerRef when the Metal3Machine's
  `metal3.io/BareMetalHost` annotation was not written (a crash between the two writes leaks
  no host).

A pass, level-triggered, one side effect at a time:
1. no Metal3Machine: done. No owner Machine, no Cluster, Cluster infrastructure not ready
   (CAPM3 reads the v1beta1 condition InfrastructureReady), no bootstrap data secret: condition
   AssociateBareMetalHost False with upstream's reason, done (their watches bring it back).
   Cluster paused or `cluster.x-k8s.io/paused` on the Metal3Machine: look again in 30 s.
2. deleting: the host is deprovisioned (image, customDeploy, userData cleared, `online` false),
   released once it is back in a free state (consumerRef and cluster label removed), then the
   finalizer goes.
3. finalizer; `spec.failureDomain` follows the Machine's;
4. no host: choose one (`hostselection`), name it, then claim it in one write (consumerRef,
   cluster label, image, userData from the bootstrap secret, automatedCleaningMode, online
   true); a 409 on either ends the pass (the next one claims the named host if still free, or
   chooses again). None free:
   condition "No available host found", Event, look again in 30 s. A failure domain nobody in it
   can serve: the host comes from elsewhere and the condition says so.
5. the host is provisioned: `spec.providerID = metal3://<ns>/<host>/<m3m>`,
   `status.initialization.provisioned`, `status.addresses` from the host's inventory.
Not yet: Metal3DataTemplate rendering (a `dataTemplate` is refused with a condition), node
reuse, pause annotations on hosts (clusterctl move), label sync, Node providerID.
"""

import random
from typing import Literal

from metalcubed.core import hostselection, outcome, ports, wiring
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import capi, meta
from metalcubed.core.api.capm3 import v1beta2 as v2

FINALIZER = "metal3machine.infrastructure.cluster.x-k8s.io"
HOST_ANNOTATION = "metal3.io/BareMetalHost"
REQUEUE_S = 30.0
ASSOCIATE = "AssociateBareMetalHost"
READY = "Ready"
NO_HOST = "No available host found"
Status = Literal["True", "False", "Unknown"]
_RELEASED_STATES = frozenset({
    bmh.ProvisioningState.REGISTERING, bmh.ProvisioningState.MATCH_PROFILE,
    bmh.ProvisioningState.INSPECTING, bmh.ProvisioningState.READY,
    bmh.ProvisioningState.AVAILABLE, bmh.ProvisioningState.NONE,
    bmh.ProvisioningState.UNMANAGED})
"""Upstream's states in which a deprovisioned host may lose its consumer."""


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


def _machine_of_host(host: bmh.BareMetalHost, _lookup: wiring.IndexLookup
                     ) -> list[meta.ObjectKey]:
    """A host change (state, above all) queues the Metal3Machine it names as consumer."""
    ref = host.spec.consumer_ref
    if ref is None or ref.kind != "Metal3Machine" or not ref.name:
        return []
    return [meta.ObjectKey(ref.namespace or host.metadata.namespace, ref.name)]


def _machine_of_capi_machine(machine: capi.Machine, _lookup: wiring.IndexLookup
                             ) -> list[meta.ObjectKey]:
    """A Machine change (bootstrap data, failure domain) queues its Metal3Machine."""
    ref = machine.spec.infrastructure_ref
    if ref is None or ref.kind != "Metal3Machine" or not ref.name:
        return []
    return [meta.ObjectKey(machine.metadata.namespace, ref.name)]


WIRING = wiring.Wiring(
    name="metal3machine",
    kind=v2.Metal3Machine,
    watches=(wiring.Watch(v2.Metal3Machine, wiring.own_key),
             wiring.Watch(capi.Machine, _machine_of_capi_machine),
             wiring.Watch(bmh.BareMetalHost, _machine_of_host)),
    indexes=(),
)
"""Upstream's watches but the Cluster and Metal3Cluster ones (a machine waiting for its Cluster,
or paused, looks again every 30 s instead). Not in controllerset.CONTROLLERS yet (the manager
would then need the CAPM3 and CAPI CRDs)."""


class Metal3MachineReconciler:
    def __init__(self, *, store: ports.Store, clock: ports.Clock, events: ports.EventRecorder,
                 rng: random.Random | None = None) -> None:
        self._store = store
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
        deleting = m3m.metadata.deletion_timestamp is not None
        if deleting:
            return self._delete(m3m)
        machine = self._owner_machine(m3m)
        if machine is None:
            return self._wait(m3m, "WaitingForMetal3MachineOwnerRef")
        cluster = self._cluster(machine)
        if cluster is None:
            self._wait(m3m, "WaitingForCluster")
            return outcome.Outcome.after(REQUEUE_S)
        if cluster.spec.paused or capi.PAUSED_ANNOTATION in m3m.metadata.annotations:
            return outcome.Outcome.after(REQUEUE_S)
        if not cluster.infrastructure_ready():
            # Nothing of ours changes when the Cluster does (WIRING does not watch Clusters).
            self._wait(m3m, "WaitingForClusterInfrastructureReady")
            return outcome.Outcome.after(REQUEUE_S)
        spec = m3m.spec or v2.Metal3MachineSpec()
        if FINALIZER not in m3m.metadata.finalizers or (
                spec.failure_domain != machine.spec.failure_domain):
            m3m = self._store.update(m3m.with_meta(
                finalizers=tuple(dict.fromkeys((*m3m.metadata.finalizers, FINALIZER))))
                .model_copy(update={"spec": spec.model_copy(
                    update={"failure_domain": machine.spec.failure_domain})}))
            return outcome.Outcome.after(0.0)
        if spec.data_template is not None:
            return self._wait(m3m, "InvalidConfiguration",
                              "spec.dataTemplate: not supported by metalcubed yet")
        secret = machine.spec.bootstrap.data_secret_name
        if not secret:
            return self._wait(m3m, "WaitingForBootstrapData")
        host = self._host(m3m)
        if host is None:
            return self._associate(m3m, machine, cluster, secret)
        if host.status.provisioning.state != bmh.ProvisioningState.PROVISIONED:
            self._set_status(m3m, {ASSOCIATE: ("True", "AssociateBareMetalHostSuccess",
                                               _domain_note(m3m, host))}, user_data=secret)
            return outcome.Outcome.done()  # the host's watch brings us back
        return self._provisioned(m3m, host, secret)

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

    def _host(self, m3m: v2.Metal3Machine) -> bmh.BareMetalHost | None:
        """Our host: the annotated one if it still names us, else any host that names us."""
        name = m3m.metadata.annotations.get(HOST_ANNOTATION, "").rpartition("/")[2]
        if name:
            try:
                host = self._store.get(bmh.BareMetalHost,
                                       meta.ObjectKey(m3m.metadata.namespace, name))
                if self._ours(host, m3m):
                    return host
            except outcome.NotFound:
                pass
        for host in self._store.list(bmh.BareMetalHost, namespace=m3m.metadata.namespace):
            if self._ours(host, m3m):
                return host
        return None

    @staticmethod
    def _ours(host: bmh.BareMetalHost, m3m: v2.Metal3Machine) -> bool:
        ref = host.spec.consumer_ref
        return ref is not None and ref.kind == "Metal3Machine" and (
            ref.name == m3m.metadata.name) and (ref.namespace or host.metadata.namespace) == (
            m3m.metadata.namespace)

    # --- claiming ---------------------------------------------------------------------------

    def _associate(self, m3m: v2.Metal3Machine, machine: capi.Machine, cluster: capi.Cluster,
                   secret: str) -> outcome.Outcome:
        """Two guarded steps. First the Metal3Machine names its choice (an update at its own
        resourceVersion: a stale copy of the machine, e.g. from a lagging cache, fails here and
        claims nothing). Then the host is claimed (an update at the host's resourceVersion: a
        host someone changed since fails here). A machine therefore never holds two hosts."""
        spec = m3m.spec or v2.Metal3MachineSpec()
        named = m3m.metadata.annotations.get(HOST_ANNOTATION, "").rpartition("/")[2]
        if named:
            try:
                host = self._store.get(bmh.BareMetalHost,
                                       meta.ObjectKey(m3m.metadata.namespace, named))
            except outcome.NotFound:
                host = None
            if host is not None and hostselection.free(host) and hostselection.matches(
                    spec.host_selector, host.metadata.labels):
                return self._claim(m3m, host, cluster, secret)
            annotations = dict(m3m.metadata.annotations)  # taken or gone: choose again
            del annotations[HOST_ANNOTATION]
            self._store.update(m3m.with_meta(annotations=annotations))
            return outcome.Outcome.after(0.0)
        hosts = self._store.list(bmh.BareMetalHost, namespace=m3m.metadata.namespace)
        try:
            choice = hostselection.choose(hosts, selector=spec.host_selector,
                                          failure_domain=spec.failure_domain, rng=self._rng)
        except hostselection.SelectorError as err:
            return self._wait(m3m, "InvalidConfiguration", str(err))
        if choice is None:
            if self._condition_reason(m3m, ASSOCIATE) != "AssociateBareMetalHostFailed":
                self._events.record(m3m, type=ports.EventType.WARNING,
                                    reason="NoAvailableHost", message=NO_HOST)
            self._set_status(m3m, {ASSOCIATE: ("False", "AssociateBareMetalHostFailed",
                                               NO_HOST)})
            return outcome.Outcome.after(REQUEUE_S)
        host = choice.host
        m3m = self._store.update(m3m.with_meta(annotations={
            **m3m.metadata.annotations,
            HOST_ANNOTATION: f"{host.metadata.namespace}/{host.metadata.name}"}))
        # Named at our current resourceVersion: our view of the machine was fresh, claim now.
        return self._claim(m3m, host, cluster, secret)

    def _claim(self, m3m: v2.Metal3Machine, host: bmh.BareMetalHost, cluster: capi.Cluster,
               secret: str) -> outcome.Outcome:
        spec = m3m.spec or v2.Metal3MachineSpec()
        claimed = host.with_meta(labels={**host.metadata.labels,
                                         capi.CLUSTER_NAME_LABEL: cluster.metadata.name})
        image = spec.image
        host_spec = host.spec.model_copy(update={
            "consumer_ref": meta.ObjectReference(
                api_version=v2.API_VERSION, kind="Metal3Machine", name=m3m.metadata.name,
                namespace=m3m.metadata.namespace),
            "online": True,
            "image": bmh.Image.model_validate({
                "url": image.url, "checksum": image.checksum or "",
                "checksumType": image.checksum_type, "format": image.disk_format,
            }) if image is not None and host.spec.image is None else host.spec.image,
            "user_data": meta.SecretReference(name=secret, namespace=m3m.metadata.namespace),
            **({"automated_cleaning_mode": bmh.AutomatedCleaningMode(
                spec.automated_cleaning_mode)} if spec.automated_cleaning_mode else {}),
        })
        # The claim: one update at the resourceVersion the host was read at (409: lost).
        self._store.update(claimed.model_copy(update={"spec": host_spec}))
        self._set_status(m3m, {ASSOCIATE: ("True", "AssociateBareMetalHostSuccess",
                                           _domain_note(m3m, host))}, user_data=secret)
        return outcome.Outcome.done()

    def _provisioned(self, m3m: v2.Metal3Machine, host: bmh.BareMetalHost, secret: str
                     ) -> outcome.Outcome:
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
        self._set_status(m3m, {ASSOCIATE: ("True", "AssociateBareMetalHostSuccess",
                                           _domain_note(m3m, host)),
                               READY: ("True", "Ready", "")},
                         user_data=secret, provisioned=True, addresses=tuple(addresses))
        return outcome.Outcome.done()

    # --- releasing --------------------------------------------------------------------------

    def _delete(self, m3m: v2.Metal3Machine) -> outcome.Outcome:
        self._set_status(m3m, {READY: ("False", "Deleting", "")})
        host = self._host(m3m)
        if host is not None:
            spec = host.spec
            deprovisioned = spec.model_copy(update={
                "image": None, "custom_deploy": None, "user_data": None, "online": False})
            if deprovisioned != spec:
                self._store.update(host.model_copy(update={"spec": deprovisioned}))
                return outcome.Outcome.done()  # the host's watch brings us back
            if host.status.provisioning.state not in _RELEASED_STATES:
                return outcome.Outcome.after(REQUEUE_S)
            labels = {k: v for k, v in host.metadata.labels.items()
                      if k != capi.CLUSTER_NAME_LABEL}
            self._store.update(host.with_meta(labels=labels).model_copy(
                update={"spec": spec.model_copy(update={"consumer_ref": None})}))
        if FINALIZER in m3m.metadata.finalizers:
            current = self._store.get(v2.Metal3Machine, m3m.key)
            self._store.update(current.with_meta(finalizers=tuple(
                f for f in current.metadata.finalizers if f != FINALIZER)))
        return outcome.Outcome.done()

    # --- status -----------------------------------------------------------------------------

    def _wait(self, m3m: v2.Metal3Machine, reason: str, message: str = "") -> outcome.Outcome:
        self._set_status(m3m, {ASSOCIATE: ("False", reason, message)})
        return outcome.Outcome.done()

    @staticmethod
    def _condition_reason(m3m: v2.Metal3Machine, kind: str) -> str | None:
        conditions = m3m.status.conditions if m3m.status else None
        return next((c.reason for c in conditions or () if c.type == kind), None)

    def _set_status(self, m3m: v2.Metal3Machine, changes: dict[str, tuple[Status, str, str]], *,
                    user_data: str | None = None, provisioned: bool | None = None,
                    addresses: tuple[v2.MachineAddress, ...] | None = None) -> None:
        status = m3m.status or v2.Metal3MachineStatus()
        current = {c.type: c for c in status.conditions or ()}
        now = meta.format_time(self._clock.now())
        for kind, (value, reason, message) in changes.items():
            old = current.get(kind)
            if old is not None and (old.status, old.reason, old.message) == (
                    value, reason, message):
                continue
            current[kind] = v2.Condition(
                type=kind, status=value, reason=reason, message=message,
                last_transition_time=old.last_transition_time
                if old is not None and old.status == value else now)
        update: dict[str, object] = {
            "conditions": tuple(sorted(current.values(), key=lambda c: c.type))}
        if user_data is not None:
            update["user_data"] = v2.ObjectRef(name=user_data, namespace=m3m.metadata.namespace)
        if provisioned is not None:
            update["initialization"] = v2.Metal3MachineInitializationStatus(
                provisioned=provisioned)
        if addresses is not None:
            update["addresses"] = addresses or None
        new = status.model_copy(update=update)
        if new == status:
            return
        new = new.model_copy(update={"last_updated": now})
        current_obj = self._store.get(v2.Metal3Machine, m3m.key)
        self._store.update_status(current_obj.model_copy(update={"status": new}))
