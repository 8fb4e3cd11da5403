"""The IPPool controller: IPClaims of a pool get IPAddresses, and give them back.

One pass handles every claim of one pool (upstream's shape, ip-address-manager 1f5fa681
ipam/ippool_manager.go), so a pool's allocations are serialised by the workqueue; the IPAddress
name `<namePrefix>-<ip>` is the lock between anything else that writes addresses (a 409 on
create means someone else took it: the pass ends and is retried at once).

1. No pool: done. Deleting: claims are released as they go; the pool's finalizer goes when no
   IPAddress of it is left. Otherwise the finalizer is added first.
2. The addresses of the pool are read back from the IPAddress objects (the truth; the pool's
   `status.indexes` is rebuilt from them each pass, as upstream).
3. An IPAddress whose claim no longer exists, or no longer names this pool, is deleted: a claim
   removed right after its address was created (before it was linked) leaks nothing (upstream
   #694). An IPAddress being deleted loses our finalizer.
4. Each claim of the pool, in name order: deleting -> its addresses are deleted, then its
   finalizer goes; otherwise it gets our finalizer, then its address: the existing one (status
   relinked, a stale error cleared) or a new one from `ipallocator`. No address free: the claim's
   `status.errorMessage` says why and a Warning Event is recorded; it is tried again on every
   pass (a freed address requeues the pool through the IPAddress watch), where upstream never
   retries a claim with an error (#1537).
5. `status.indexes` (claim -> address) and `lastUpdated` are written when they changed.

Claims are matched by `spec.pool.name` in the pool's namespace (an empty or equal
`spec.pool.namespace`), as upstream.
6. Cluster API IPAddressClaims whose poolRef names this pool are served in the same pass
   (`ippool_capi`): both kinds' addresses count as in use, held by "<kind>/<claim>".
0. As upstream: a pool with `spec.clusterName` gets the cluster-name label and an owner reference
   to that Cluster (garbage-collected with it); the Cluster missing (a Warning Event), paused,
   or the pool annotated `cluster.x-k8s.io/paused`: nothing is done, looked at again in 30 s
   (a pool being moved by clusterctl hands out nothing).
"""

import contextlib
import random
from collections.abc import Callable, Iterable
from typing import TypeVar

from metalcubed.core import ipallocator, outcome, ports, wiring
from metalcubed.core.api import capi, capiipam, ipam, meta
from metalcubed.core.reconcilers import ippool_capi

REQUEUE_S = 0.0
"""After a lost race on an IPAddress name (409): look again at once, as upstream."""
PAUSED_ANNOTATION = capi.PAUSED_ANNOTATION
PAUSE_S = 30.0
"""A paused pool (or one whose Cluster is paused or missing) is looked at again this late."""


def _pool_of_claim(claim: ipam.IPClaim, _lookup: wiring.IndexLookup) -> list[meta.ObjectKey]:
    return pool_key_of_claim(claim)


def _pool_of_address(address: ipam.IPAddress, _lookup: wiring.IndexLookup
                     ) -> list[meta.ObjectKey]:
    return pool_key_of_address(address)


def _pool_of_capi(obj: capiipam.IPAddressClaim | capiipam.IPAddress,
                  _lookup: wiring.IndexLookup) -> list[meta.ObjectKey]:
    """A CAPI claim or address naming a Metal3 IPPool queues that pool."""
    ref = obj.spec.pool_ref
    if not ref.name or ref.kind not in ("", "IPPool") or ref.api_group not in (
            "", ippool_capi.POOL_GROUP):
        return []
    return [meta.ObjectKey(obj.metadata.namespace, ref.name)]


def pool_key_of_claim(claim: ipam.IPClaim) -> list[meta.ObjectKey]:
    """Watch mapper: an IPClaim change queues its pool (in the claim's namespace)."""
    namespace = claim.spec.pool.namespace or claim.metadata.namespace
    if not claim.spec.pool.name or namespace != claim.metadata.namespace:
        return []
    return [meta.ObjectKey(claim.metadata.namespace, claim.spec.pool.name)]


def pool_key_of_address(address: ipam.IPAddress) -> list[meta.ObjectKey]:
    """Watch mapper: an IPAddress change (a freed address above all) queues its pool."""
    if not address.spec.pool.name:
        return []
    return [meta.ObjectKey(address.metadata.namespace, address.spec.pool.name)]


WIRING = wiring.Wiring(
    name="ippool",
    kind=ipam.IPPool,
    watches=(
        wiring.Watch(ipam.IPPool, wiring.own_key),
        wiring.Watch(ipam.IPClaim, _pool_of_claim),
        wiring.Watch(ipam.IPAddress, _pool_of_address),
        wiring.Watch(capiipam.IPAddressClaim, _pool_of_capi),
        wiring.Watch(capiipam.IPAddress, _pool_of_capi),
    ),
    indexes=(),
)
"""Upstream's IPPool controllers' watches (its two, for IPClaim and for IPAddressClaim, are one
here): the pool, its claims, its addresses (a freed address requeues the pool, so exhausted
claims get it)."""


A = TypeVar("A")


def _by_claim(addresses: Iterable[A], claim_of: Callable[[A], str]) -> dict[str, list[A]]:
    out: dict[str, list[A]] = {}
    for address in addresses:
        out.setdefault(claim_of(address), []).append(address)
    return out


class IPPoolReconciler:
    def __init__(self, *, store: ports.Store, clock: ports.Clock, events: ports.EventRecorder,
                 rng: random.Random | None = None) -> None:
        self._store = store
        self._clock = clock
        self._events = events
        self._rng = rng or random.Random(0)
        self._capi = ippool_capi.CapiClaims(store=store, events=events, rng=self._rng,
                                            now=clock.now)

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        try:
            pool = self._store.get(ipam.IPPool, key)
        except outcome.NotFound:
            return outcome.Outcome.done()
        if pool.spec.cluster_name:
            pool, cluster = self._cluster(pool)
            if cluster is None:
                # Upstream ignores a missing Cluster once the pool is being deleted (garbage
                # collection after the Cluster went): else its finalizer would never go.
                if pool.metadata.deletion_timestamp is None:
                    return outcome.Outcome.after(PAUSE_S)
            elif cluster.spec.paused:
                return outcome.Outcome.after(PAUSE_S)
        if PAUSED_ANNOTATION in pool.metadata.annotations:
            return outcome.Outcome.after(PAUSE_S)
        deleting = pool.metadata.deletion_timestamp is not None
        if not deleting and ipam.POOL_FINALIZER not in pool.metadata.finalizers:
            pool = self._store.update(pool.with_meta(
                finalizers=(*pool.metadata.finalizers, ipam.POOL_FINALIZER)))
        addresses, foreign = self._addresses(pool)
        claims = self._claims(pool)
        addresses = self._drop_orphans(pool, addresses, claims)
        capi_addresses = ippool_capi.addresses(self._store, pool)
        capi_claims = ippool_capi.claims(self._store, pool)
        capi_addresses = ippool_capi.drop_orphans(self._store, capi_addresses, capi_claims)
        in_use = self._in_use(addresses, capi_addresses)
        if foreign:
            others = sorted({o.removeprefix("IPPool/") for o in foreign.values()})
            self._events.record(pool, type=ports.EventType.WARNING, reason="NamePrefixShared",
                                message=f"spec.namePrefix {pool.spec.name_prefix!r} is also "
                                        f"used by IPPool {', '.join(others)}: addresses whose "
                                        "IPAddress name the other pool holds are skipped")
            in_use = {**foreign, **in_use}
        by_claim = _by_claim(addresses.values(), lambda a: a.spec.claim.name or "")
        capi_by_claim = _by_claim(capi_addresses.values(), lambda a: a.spec.claim_ref.name)
        try:
            for claim in claims:
                self._claim(pool, claim, addresses, by_claim.get(claim.metadata.name, []),
                            in_use, allocate=not deleting)
            for capi_claim in capi_claims:
                self._capi.handle(pool, capi_claim, capi_addresses,
                                  capi_by_claim.get(capi_claim.metadata.name, []), in_use,
                                  allocate=not deleting)
        except outcome.Conflict:
            return outcome.Outcome.after(REQUEUE_S)
        if deleting:
            if not addresses and not capi_addresses and (
                    ipam.POOL_FINALIZER in pool.metadata.finalizers):
                self._store.update(pool.with_meta(finalizers=tuple(
                    f for f in pool.metadata.finalizers if f != ipam.POOL_FINALIZER)))
            return outcome.Outcome.done()
        self._write_status(pool, addresses, capi_addresses)
        return outcome.Outcome.done()

    @staticmethod
    def _in_use(addresses: dict[str, ipam.IPAddress],
                capi_addresses: dict[str, capiipam.IPAddress]) -> dict[ipam.IP, str]:
        """Every address taken in the pool, by holder ("<kind>/<claim>")."""
        out: dict[ipam.IP, str] = {}
        for a in addresses.values():
            if (ip := ipam.parse_ip(a.spec.address)) is not None:
                out[ip] = ippool_capi.holder(ipam.IPClaim.KIND, a.spec.claim.name)
        for c in capi_addresses.values():
            if (ip := ipam.parse_ip(c.spec.address)) is not None:
                out[ip] = ippool_capi.holder(capiipam.IPAddressClaim.KIND, c.spec.claim_ref.name)
        return out

    def _cluster(self, pool: ipam.IPPool) -> tuple[ipam.IPPool, capi.Cluster | None]:
        """Upstream: a pool of a cluster carries its cluster-name label and a (non-controller)
        owner reference to the Cluster, so it is garbage-collected with it (IPAM #134). A
        missing Cluster is reported once and looked for again."""
        name = pool.spec.cluster_name or ""
        try:
            cluster = self._store.get(capi.Cluster, meta.ObjectKey(pool.metadata.namespace,
                                                                  name))
        except outcome.NotFound:
            self._events.record(pool, type=ports.EventType.WARNING, reason="ClusterNotFound",
                                message=f"spec.clusterName: Cluster {name} not found; the pool "
                                        "hands out nothing until it exists")
            return pool, None
        owner = meta.OwnerReference(api_version=capi.API_VERSION, kind=capi.Cluster.KIND,
                                    name=name, uid=cluster.metadata.uid or "")
        labels = {**pool.metadata.labels, capi.CLUSTER_NAME_LABEL: name}
        owners = pool.metadata.owner_references
        if not any(r.kind == owner.kind and r.name == name for r in owners):
            owners = (*owners, owner)
        if labels != pool.metadata.labels or owners != pool.metadata.owner_references:
            pool = self._store.update(pool.with_meta(labels=labels, owner_references=owners))
        return pool, cluster

    # --- reading ----------------------------------------------------------------------------

    def _addresses(self, pool: ipam.IPPool
                   ) -> tuple[dict[str, ipam.IPAddress], dict[ipam.IP, str]]:
        """Live IPAddresses of the pool by name (those being deleted lose our finalizer), and
        the addresses whose IPAddress name another pool holds (a shared namePrefix, upstream
        #1437: never chosen, or the create would fail forever)."""
        out = {}
        foreign: dict[ipam.IP, str] = {}
        for address in self._store.list(ipam.IPAddress, namespace=pool.metadata.namespace):
            if address.spec.pool.name != pool.metadata.name:
                ip = ipam.parse_ip(address.spec.address)
                if ip is not None and address.metadata.name == ipam.address_name(
                        pool.spec.name_prefix, address.spec.address):
                    foreign[ip] = f"IPPool/{address.spec.pool.name}"
                continue
            if address.metadata.deletion_timestamp is not None:
                self._release_finalizer(address)
                continue
            out[address.metadata.name] = address
        return out, foreign

    def _claims(self, pool: ipam.IPPool) -> list[ipam.IPClaim]:
        namespace = pool.metadata.namespace
        return sorted(
            (c for c in self._store.list(ipam.IPClaim, namespace=namespace)
             if c.spec.pool.name == pool.metadata.name
             and (c.spec.pool.namespace or namespace) == namespace),
            key=lambda c: c.metadata.name)

    # --- writing ----------------------------------------------------------------------------

    def _release_finalizer(self, address: ipam.IPAddress) -> None:
        if ipam.ADDRESS_FINALIZER in address.metadata.finalizers:
            with contextlib.suppress(outcome.NotFound):
                self._store.update(address.with_meta(finalizers=tuple(
                    f for f in address.metadata.finalizers if f != ipam.ADDRESS_FINALIZER)))

    def _delete_address(self, address: ipam.IPAddress) -> None:
        self._release_finalizer(address)
        with contextlib.suppress(outcome.NotFound):
            self._store.delete(ipam.IPAddress, address.key)

    def _drop_orphans(self, pool: ipam.IPPool, addresses: dict[str, ipam.IPAddress],
                      claims: list[ipam.IPClaim]) -> dict[str, ipam.IPAddress]:
        live = {c.metadata.name for c in claims}
        kept = {}
        for name, address in addresses.items():
            if address.spec.claim.name in live:
                kept[name] = address
            else:
                self._delete_address(address)
        return kept

    def _claim(self, pool: ipam.IPPool, claim: ipam.IPClaim,
               addresses: dict[str, ipam.IPAddress], mine: list[ipam.IPAddress],
               in_use: dict[ipam.IP, str], *, allocate: bool) -> None:
        """Serve or release one claim (`mine`: its addresses); `addresses` and `in_use` are
        kept up to date in place (a pass over N claims stays O(N))."""
        if claim.metadata.deletion_timestamp is not None:
            for address in mine:
                self._delete_address(address)
                addresses.pop(address.metadata.name, None)
                if (ip := ipam.parse_ip(address.spec.address)) is not None:
                    in_use.pop(ip, None)
            if ipam.CLAIM_FINALIZER in claim.metadata.finalizers:
                with contextlib.suppress(outcome.NotFound):
                    self._store.update(claim.with_meta(finalizers=tuple(
                        f for f in claim.metadata.finalizers if f != ipam.CLAIM_FINALIZER)))
            return
        if ipam.CLAIM_FINALIZER not in claim.metadata.finalizers:
            claim = self._store.update(claim.with_meta(
                finalizers=(*claim.metadata.finalizers, ipam.CLAIM_FINALIZER)))
        if mine:
            keep, *extra = sorted(mine, key=lambda a: a.metadata.name)
            for address in extra:  # never two addresses for one claim
                self._delete_address(address)
                addresses.pop(address.metadata.name, None)
            self._link(claim, keep.metadata.name, error=None)
            return
        if not allocate:  # the pool is being deleted: nothing new is handed out
            return
        owner = ippool_capi.holder(ipam.IPClaim.KIND, claim.metadata.name)
        try:
            got = ipallocator.allocate(
                pool.spec, claim=claim.metadata.name,
                requested=claim.metadata.annotations.get(ipam.IP_ADDRESS_ANNOTATION),
                in_use=in_use, rng=self._rng, owner=owner)
        except ipallocator.AllocationError as err:
            if (claim.status.error_message if claim.status else None) != err.message:
                self._events.record(claim, type=ports.EventType.WARNING,
                                    reason="IPAllocationFailed",
                                    message=f"pool {pool.metadata.name}: {err.message}")
            self._link(claim, None, error=err.message)
            return
        created = self._store.create(self._address(pool, claim, got))
        in_use[got.address] = owner
        addresses[created.metadata.name] = created
        self._link(claim, created.metadata.name, error=None)

    def _address(self, pool: ipam.IPPool, claim: ipam.IPClaim,
                 got: ipallocator.Allocation) -> ipam.IPAddress:
        def ref(obj: meta.Resource) -> meta.ObjectReference:
            return meta.ObjectReference(name=obj.metadata.name, namespace=obj.metadata.namespace,
                                        kind=obj.KIND, api_version=obj.API_VERSION)

        def owner(obj: meta.Resource) -> meta.OwnerReference:
            return meta.OwnerReference(api_version=obj.API_VERSION, kind=obj.KIND,
                                       name=obj.metadata.name, uid=obj.metadata.uid or "")

        text = str(got.address)
        return ipam.IPAddress(
            metadata=meta.ObjectMeta(
                name=ipam.address_name(pool.spec.name_prefix, text),
                namespace=pool.metadata.namespace,
                labels=dict(claim.metadata.labels),
                finalizers=(ipam.ADDRESS_FINALIZER,),
                owner_references=(owner(pool), owner(claim)),
            ),
            spec=ipam.IPAddressSpec(claim=ref(claim), pool=ref(pool), address=text,
                                    prefix=got.prefix, gateway=got.gateway,
                                    dns_servers=got.dns_servers),
        )

    def _link(self, claim: ipam.IPClaim, address_name: str | None, *, error: str | None) -> None:
        status = ipam.IPClaimStatus(
            address=meta.ObjectReference(name=address_name, namespace=claim.metadata.namespace)
            if address_name else None,
            error_message=error)
        if claim.status != status:
            with contextlib.suppress(outcome.NotFound):
                self._store.update_status(claim.model_copy(update={"status": status}))

    def _write_status(self, pool: ipam.IPPool, addresses: dict[str, ipam.IPAddress],
                      capi_addresses: dict[str, capiipam.IPAddress]) -> None:
        indexes = {a.spec.claim.name or "": a.spec.address for a in addresses.values()}
        for c in capi_addresses.values():  # an IPClaim of the same name keeps its entry
            indexes.setdefault(c.spec.claim_ref.name, c.spec.address)
        current = pool.status.indexes if pool.status else None
        if (current or {}) == indexes and pool.status is not None:
            return
        status = ipam.IPPoolStatus(indexes=indexes or None,
                                   last_updated=meta.format_time(self._clock.now()))
        self._store.update_status(pool.model_copy(update={"status": status}))
