"""The Metal3Data controller: a machine's addresses claimed, its template rendered into Secrets.

Upstream: CAPM3 2f6d76b8 controllers/metal3data_controller.go + baremetal/metal3data_manager.go.
The Metal3DataTemplate controller creates one Metal3Data per Metal3DataClaim; this controller:
0. paused (the annotation `cluster.x-k8s.io/paused`, or its Cluster paused): nothing, look again
   in 30 s (upstream; clusterctl move);
1. deleting, once its claim is gone or going (the machine may still use the Secrets, as
   upstream): deletes what the Data made (its IPClaims and IPAddressClaims, `<data>-<pool>`, our
   finalizer first, and its rendered Secrets), then drops its finalizer. Upstream leaves the
   Secrets to the garbage collector; deleting them here means nothing is left even where no
   collector runs;
2. otherwise: our finalizer; the template (spec.template), the claim and its Metal3Machine (the
   claim's Metal3Machine ownerRef); the Secret names (spec.metaData / spec.networkData, default
   `<m3m>-metadata` / `<m3m>-networkdata`); both Secrets there -> ready (upstream never re-renders
   an existing Secret: a host reprovisions in the same state);
3. the CAPI Machine (the Metal3Machine's owner) and the BareMetalHost (its `metal3.io/
   BareMetalHost` annotation) -> waiting until both are known;
4. (core/reconcilers/metal3data_ip.py) a claim per referenced pool: an IPClaim for a Metal3
   IPPool, a CAPI IPAddressClaim for any other kind; each owned by the Data (controller) with
   our finalizer. Their addresses are read back; a claim with no address yet is waited for,
   with the cause shown: the IPPool does not exist ("IPPool X not found") or the pool could
   not give one ("IP Allocation for X failed : Exhausted IP Pools"). A claim of the same name
   owned by an older Metal3Data is waited out (upstream #680). IPClaims are named
   `<data>-<pool>`, or `<host>-<pool>` with `host_named_claims` (upstream's
   --enable-bmh-name-based-preallocation, for preAllocations that follow the host);
5. both documents rendered (core/datatemplate.py) and written as Secrets (type
   `infrastructure.cluster.x-k8s.io/secret`, label cluster-name, controller ownerRef the Data);
   `status.ready` true.
What the user must fix (a missing template or pool, an exhausted pool, a template that cannot
be rendered for this host) is set on `status.errorMessage` and, when it changes, recorded as a
Warning Event on the Metal3Data and on its Metal3Machine, naming the pool or the template field.
The Data is looked at again when one of its claims changes (watch) and every 30 s while it
waits; a wait that is no one's fault (the host not chosen yet, an address on its way) leaves
`ready` false without an error.
"""

import base64
import contextlib

from metalcubed.core import datatemplate, outcome, ports, wiring
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import capi, capiipam, ipam, meta
from metalcubed.core.api.capm3 import v1beta2 as v2
from metalcubed.core.reconcilers import metal3data_ip

DATA_FINALIZER = metal3data_ip.DATA_FINALIZER
DATA_LABEL = metal3data_ip.DATA_LABEL
POOL_LABEL = metal3data_ip.POOL_LABEL
ADDRESSES_ANNOTATION = metal3data_ip.ADDRESSES_ANNOTATION
claim_name = metal3data_ip.claim_name
Waiting = metal3data_ip.Waiting
M3M_CLAIM_FINALIZER = "metal3machine.infrastructure.cluster.x-k8s.io"
"""The Metal3Machine's finalizer on its Metal3DataClaim (set by the Metal3Machine controller)."""
HOST_ANNOTATION = "metal3.io/BareMetalHost"
SECRET_TYPE = "infrastructure.cluster.x-k8s.io/secret"
REQUEUE_S = 30.0


def secret_names(m3m_name: str) -> tuple[str, str]:
    """Upstream's default names of the rendered metaData and networkData Secrets."""
    return f"{m3m_name}-metadata", f"{m3m_name}-networkdata"


def _host_of(m3m: v2.Metal3Machine) -> str | None:
    """The host a Metal3Machine names (its `metal3.io/BareMetalHost` annotation)."""
    return m3m.metadata.annotations.get(HOST_ANNOTATION, "").rpartition("/")[2] or None


def _owner_data(obj: meta.Resource, _lookup: wiring.IndexLookup) -> list[meta.ObjectKey]:
    """A claim or Secret change queues the Metal3Data that controls it."""
    return [meta.ObjectKey(obj.metadata.namespace, r.name) for r in obj.metadata.owner_references
            if r.kind == "Metal3Data" and r.controller]


def _data_of_claim(claim: v2.Metal3DataClaim, _lookup: wiring.IndexLookup
                   ) -> list[meta.ObjectKey]:
    """A claim change (its deletion above all) queues the Metal3Data rendered for it."""
    ref = claim.status.rendered_data if claim.status else None
    if ref is None or not ref.name:
        return []
    return [meta.ObjectKey(ref.namespace or claim.metadata.namespace, ref.name)]


def machine_of_data(data: v2.Metal3Data, _lookup: wiring.IndexLookup) -> list[meta.ObjectKey]:
    """For the Metal3Machine controller's wiring: a Metal3Data change queues its Metal3Machine."""
    return [meta.ObjectKey(data.metadata.namespace, r.name)
            for r in data.metadata.owner_references if r.kind == "Metal3Machine"]


WIRING = wiring.Wiring(
    name="metal3data",
    kind=v2.Metal3Data,
    watches=(wiring.Watch(v2.Metal3Data, wiring.own_key),
             wiring.Watch(v2.Metal3DataClaim, _data_of_claim),
             wiring.Watch(ipam.IPClaim, _owner_data),
             wiring.Watch(capiipam.IPAddressClaim, _owner_data)),
    indexes=(),
)
"""Upstream's watches: the Data, and the IP claims it owns (an address given, or an error)."""


class Metal3DataReconciler:
    def __init__(self, *, store: ports.Store, clock: ports.Clock,
                 events: ports.EventRecorder, host_named_claims: bool = False) -> None:
        """`host_named_claims`: upstream's --enable-bmh-name-based-preallocation: IPClaims are
        named `<host>-<pool>`, so a pool's preAllocations can pin each host's address across
        machine replacements (upstream docs/ip_reuse.md)."""
        self._store = store
        self._clock = clock
        self._events = events
        self._claims = metal3data_ip.DataClaims(store=store, host_named=host_named_claims)

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        try:
            data = self._store.get(v2.Metal3Data, key)
        except outcome.NotFound:
            return outcome.Outcome.done()
        if self._paused(data):
            return outcome.Outcome.after(REQUEUE_S)
        if data.metadata.deletion_timestamp is not None:
            if self._claim_alive(data):
                return outcome.Outcome.after(REQUEUE_S)  # the claim's deletion brings us back
            self._release(data)
            return outcome.Outcome.done()
        if DATA_FINALIZER not in data.metadata.finalizers:
            data = self._store.update(data.with_meta(
                finalizers=(*data.metadata.finalizers, DATA_FINALIZER)))
        m3m: v2.Metal3Machine | None = None
        try:
            template, m3m = self._inputs(data)
            data = self._name_secrets(data, template, m3m)
            data = self._render(data, template, m3m)
            lost = self._claims.keep(data, _host_of(m3m))
        except Waiting as wait:
            self._report(data, m3m, wait.message, warn=wait.warn)
            return outcome.Outcome.after(REQUEUE_S)
        except datatemplate.RenderError as err:
            self._report(data, m3m, str(err), warn="RenderFailed")
            return outcome.Outcome.after(REQUEUE_S)
        if lost:
            self._report(data, m3m, lost, warn="IPAddressLost", ready=True)
            return outcome.Outcome.after(REQUEUE_S)
        self._set_status(data, ready=True, error=None)
        return outcome.Outcome.done()

    # --- inputs --------------------------------------------------------------------------------

    def _paused(self, data: v2.Metal3Data) -> bool:
        """Upstream: nothing is done for a paused Metal3Data or one of a paused Cluster (the
        objects are being moved by clusterctl)."""
        if capi.PAUSED_ANNOTATION in data.metadata.annotations:
            return True
        name = data.metadata.labels.get(capi.CLUSTER_NAME_LABEL)
        cluster = self._get(capi.Cluster, data.metadata.namespace, name) if name else None
        return bool(cluster is not None and cluster.spec.paused)

    def _claim_alive(self, data: v2.Metal3Data) -> bool:
        """Upstream releases a deleted Metal3Data's addresses only once its claim is gone: the
        machine may still be using the Secrets."""
        ref = data.spec.claim if data.spec else None
        if ref is None or not ref.name:
            return False
        claim = self._get(v2.Metal3DataClaim, ref.namespace or data.metadata.namespace,
                          ref.name)
        if claim is None or claim.metadata.deletion_timestamp is not None:
            return False
        # A new claim of the same name (the machine re-created) is not ours: the owner uid,
        # else (the owner reference gone with the old claim) the Data the claim names.
        uids = {r.uid for r in data.metadata.owner_references
                if r.kind == "Metal3DataClaim" and r.uid}
        if uids:
            return claim.metadata.uid in uids
        rendered = claim.status.rendered_data if claim.status else None
        return rendered is not None and rendered.name == data.metadata.name

    def _get(self, kind: type[ports.R], namespace: str, name: str) -> ports.R | None:
        try:
            return self._store.get(kind, meta.ObjectKey(namespace, name))
        except outcome.NotFound:
            return None

    def _inputs(self, data: v2.Metal3Data) -> tuple[v2.Metal3DataTemplate, v2.Metal3Machine]:
        namespace = data.metadata.namespace
        ref = data.spec.template if data.spec else None
        if ref is None or not ref.name:
            raise Waiting("spec.template is not set")
        template = self._get(v2.Metal3DataTemplate, namespace, ref.name)
        if template is None:
            raise Waiting(f"Metal3DataTemplate {ref.name} not found", warn="TemplateNotFound")
        claim_ref = data.spec.claim if data.spec else None
        if claim_ref is None or not claim_ref.name:
            raise Waiting("spec.claim is not set")
        claim = self._get(v2.Metal3DataClaim, namespace, claim_ref.name)
        if claim is None:
            raise Waiting(f"Metal3DataClaim {claim_ref.name} not found")
        owner = next((r.name for r in claim.metadata.owner_references
                      if r.kind == "Metal3Machine"
                      and r.api_version.startswith("infrastructure.cluster.x-k8s.io/")), None)
        if owner is None:
            raise Waiting(f"Metal3DataClaim {claim_ref.name} has no Metal3Machine owner")
        m3m = self._get(v2.Metal3Machine, namespace, owner)
        if m3m is None:
            raise Waiting(f"Metal3Machine {owner} not found")
        return template, m3m

    def _name_secrets(self, data: v2.Metal3Data, template: v2.Metal3DataTemplate,
                      m3m: v2.Metal3Machine) -> v2.Metal3Data:
        """Fill spec.metaData / spec.networkData with the default names (persisted once)."""
        spec = data.spec or v2.Metal3DataSpec()
        tspec = template.spec or v2.Metal3DataTemplateSpec()
        meta_name, network_name = secret_names(m3m.metadata.name)
        update = {}
        ns = data.metadata.namespace
        if tspec.meta_data is not None and not (spec.meta_data and spec.meta_data.name):
            update["meta_data"] = v2.ObjectRef(name=meta_name, namespace=ns)
        if tspec.network_data is not None and not (spec.network_data and spec.network_data.name):
            update["network_data"] = v2.ObjectRef(name=network_name, namespace=ns)
        if not update:
            return data
        return self._store.update(data.model_copy(update={"spec": spec.model_copy(
            update=update)}))

    def _machine_and_host(self, m3m: v2.Metal3Machine) -> tuple[capi.Machine,
                                                                 bmh.BareMetalHost]:
        namespace = m3m.metadata.namespace
        owner = next((r.name for r in m3m.metadata.owner_references if r.kind == "Machine"),
                     None)
        machine = self._get(capi.Machine, namespace, owner) if owner else None
        if machine is None:
            raise Waiting("waiting for Machine Controller to set OwnerRef on Metal3Machine")
        host_ref = m3m.metadata.annotations.get(HOST_ANNOTATION, "")
        host_ns, _, host_name = host_ref.rpartition("/")
        host = self._get(bmh.BareMetalHost, host_ns or namespace, host_name) if host_name else None
        if host is None:
            raise Waiting("waiting for BareMetalHost to become available")
        return machine, host

    # --- rendering -----------------------------------------------------------------------------

    def _render(self, data: v2.Metal3Data, template: v2.Metal3DataTemplate,
                m3m: v2.Metal3Machine) -> v2.Metal3Data:
        spec = data.spec or v2.Metal3DataSpec()
        tspec = template.spec or v2.Metal3DataTemplateSpec()
        namespace = data.metadata.namespace
        wanted = [(ref.name, key, doc) for ref, key, doc in (
            (spec.meta_data, "metaData", tspec.meta_data),
            (spec.network_data, "networkData", tspec.network_data))
            if doc is not None and ref is not None and ref.name
            and self._get(meta.Secret, namespace, ref.name) is None]
        if not wanted:
            return data
        machine, host = self._machine_and_host(m3m)
        objs = datatemplate.Objects(namespace=namespace, index=spec.index or 0,
                                    metal3machine=m3m, machine=machine, host=host)
        pools = datatemplate.referenced_pools(tspec, objs)
        addresses = self._claims.addresses(data, pools, host.metadata.name)
        record = metal3data_ip.record(addresses, pools)
        if data.metadata.annotations.get(ADDRESSES_ANNOTATION) != record:
            data = self._store.update(data.with_meta(annotations={
                **data.metadata.annotations, ADDRESSES_ANNOTATION: record}))
        cluster = machine.spec.cluster_name or machine.metadata.labels.get(
            capi.CLUSTER_NAME_LABEL, "")
        for name, key, _doc in wanted:
            document = (datatemplate.meta_data(tspec, objs, addresses) if key == "metaData"
                        else datatemplate.network_data(tspec, objs, addresses))
            assert document is not None  # the template has this document (`wanted`)
            self._write_secret(data, name, key, datatemplate.to_yaml(document), cluster)
        return data

    def _write_secret(self, data: v2.Metal3Data, name: str, key: str, text: str,
                      cluster: str) -> None:
        owner = meta.OwnerReference(api_version=v2.API_VERSION, kind="Metal3Data",
                                    name=data.metadata.name, uid=data.metadata.uid or "",
                                    controller=True)
        secret = meta.Secret(
            metadata=meta.ObjectMeta(name=name, namespace=data.metadata.namespace,
                                     labels={capi.CLUSTER_NAME_LABEL: cluster},
                                     owner_references=(owner,)),
            type=SECRET_TYPE, data={key: base64.b64encode(text.encode()).decode()})
        with contextlib.suppress(outcome.Conflict):  # written by a pass before us: keep it
            self._store.create(secret)

    # --- release -------------------------------------------------------------------------------

    def _release(self, data: v2.Metal3Data) -> None:
        """Delete the claims and Secrets this Data made, then let it go."""
        self._claims.release(data)
        for ref in (data.spec.meta_data, data.spec.network_data) if data.spec else ():
            secret = (self._get(meta.Secret, data.metadata.namespace, ref.name)
                      if ref and ref.name else None)
            if secret is not None and self._claims.owned(secret, data):
                with contextlib.suppress(outcome.NotFound):
                    self._store.delete(meta.Secret, secret.key)
        self._claims.drop_finalizer(data)

    # --- status --------------------------------------------------------------------------------

    def _report(self, data: v2.Metal3Data, m3m: v2.Metal3Machine | None, message: str, *,
                warn: str, ready: bool = False) -> None:
        old = data.status.error_message if data.status else None
        if warn and old != message:
            for obj in (data, m3m):
                if obj is not None:
                    self._events.record(obj, type=ports.EventType.WARNING, reason=warn,
                                        message=f"Metal3Data {data.metadata.name}: {message}")
        self._set_status(data, ready=ready, error=message if warn else None)

    def _set_status(self, data: v2.Metal3Data, *, ready: bool, error: str | None) -> None:
        status = v2.Metal3DataStatus(ready=ready, error_message=error)
        if data.status == status:
            return
        current = self._store.get(v2.Metal3Data, data.key)
        with contextlib.suppress(outcome.NotFound):
            self._store.update_status(current.model_copy(update={"status": status}))
