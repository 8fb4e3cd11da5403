"""The IPPool controller's second loop: Cluster API IPAddressClaims served from a Metal3 IPPool.

Upstream IPAM (1f5fa681 ipam/ippool_manager.go `capiUpdateAddresses`) serves an
ipam.cluster.x-k8s.io IPAddressClaim whose `spec.poolRef` is {apiGroup ipam.metal3.io, kind
IPPool, name}: a CAPI IPAddress `<namePrefix>-<ip>` (ownerRefs pool + claim, finalizer
`ipam.metal3.io/ipaddress`), `status.addressRef`, and the Ready condition (True, or False with
reason PoolExhausted / AllocationFailed and the allocator's message).

Differences from upstream, all about never giving an address twice or losing one:
- one pass of one controller handles both loops (upstream runs two controllers per pool, whose
  passes can overlap); the addresses in use are both kinds' IPAddresses, held by
  "<kind>/<claim>", so an IPClaim and an IPAddressClaim of the same name never share one;
- a claim whose allocation failed is tried again on every pass (#1537);
- a CAPI IPAddress whose claim is gone is deleted (#694).
"""

import contextlib
import random
from collections.abc import Callable
from datetime import datetime

from metalcubed.core import ipallocator, outcome, ports
from metalcubed.core.api import capiipam, ipam, meta

POOL_GROUP = "ipam.metal3.io"


def serves(ref: capiipam.IPPoolReference, pool: ipam.IPPool) -> bool:
    """Whether a claim's poolRef names this Metal3 pool."""
    return ref.name == pool.metadata.name and ref.kind in ("", "IPPool") and (
        ref.api_group in ("", POOL_GROUP))


def holder(kind: str, name: str | None) -> str:
    """Who holds an address, for the allocator's `in_use` (kind-qualified)."""
    return f"{kind}/{name or ''}"


def addresses(store: ports.Store, pool: ipam.IPPool) -> dict[str, capiipam.IPAddress]:
    """The pool's live CAPI IPAddresses by name; those being deleted lose IPAM's finalizer."""
    out = {}
    for address in store.list(capiipam.IPAddress, namespace=pool.metadata.namespace):
        if not serves(address.spec.pool_ref, pool):
            continue
        if address.metadata.deletion_timestamp is not None:
            _drop(store, address, capiipam.ADDRESS_FINALIZER)
            continue
        out[address.metadata.name] = address
    return out


def claims(store: ports.Store, pool: ipam.IPPool) -> list[capiipam.IPAddressClaim]:
    return sorted((c for c in store.list(capiipam.IPAddressClaim,
                                         namespace=pool.metadata.namespace)
                   if serves(c.spec.pool_ref, pool)), key=lambda c: c.metadata.name)


def _drop(store: ports.Store, obj: meta.Resource, finalizer: str) -> None:
    if finalizer in obj.metadata.finalizers:
        with contextlib.suppress(outcome.NotFound):
            store.update(obj.with_meta(finalizers=tuple(
                f for f in obj.metadata.finalizers if f != finalizer)))


def delete_address(store: ports.Store, address: capiipam.IPAddress) -> None:
    _drop(store, address, capiipam.ADDRESS_FINALIZER)
    with contextlib.suppress(outcome.NotFound):
        store.delete(capiipam.IPAddress, address.key)


def drop_orphans(store: ports.Store, found: dict[str, capiipam.IPAddress],
                 live: list[capiipam.IPAddressClaim]) -> dict[str, capiipam.IPAddress]:
    names = {c.metadata.name for c in live}
    kept = {}
    for name, address in found.items():
        if address.spec.claim_ref.name in names:
            kept[name] = address
        else:
            delete_address(store, address)
    return kept


class CapiClaims:
    """One pass over the pool's IPAddressClaims (called by the IPPool reconciler)."""

    def __init__(self, *, store: ports.Store, events: ports.EventRecorder, rng: random.Random,
                 now: Callable[[], datetime]) -> None:
        self._store = store
        self._events = events
        self._rng = rng
        self._now = now

    def handle(self, pool: ipam.IPPool, claim: capiipam.IPAddressClaim,
               found: dict[str, capiipam.IPAddress], mine: list[capiipam.IPAddress],
               in_use: dict[ipam.IP, str], *, allocate: bool) -> None:
        """Serve or release one claim (`mine`: its addresses); the pool's CAPI addresses
        (`found`) and `in_use` are updated in place. Raises outcome.Conflict when another
        writer took the address name."""
        if claim.metadata.deletion_timestamp is not None:
            others = [f for f in claim.metadata.finalizers if f != capiipam.CLAIM_FINALIZER]
            if others:
                return  # still in use by whoever holds the other finalizers (upstream)
            for address in mine:
                delete_address(self._store, address)
                found.pop(address.metadata.name, None)
                ip = ipam.parse_ip(address.spec.address)
                if ip is not None:
                    in_use.pop(ip, None)
            _drop(self._store, claim, capiipam.CLAIM_FINALIZER)
            return
        if capiipam.CLAIM_FINALIZER not in claim.metadata.finalizers:
            claim = self._store.update(claim.with_meta(
                finalizers=(*claim.metadata.finalizers, capiipam.CLAIM_FINALIZER)))
        if mine:
            keep, *extra = sorted(mine, key=lambda a: a.metadata.name)
            for address in extra:
                delete_address(self._store, address)
                found.pop(address.metadata.name, None)
            self._status(claim, keep.metadata.name, reason=None, message="")
            return
        if not allocate:
            return
        try:
            got = ipallocator.allocate(
                pool.spec, claim=claim.metadata.name,
                requested=claim.metadata.annotations.get(ipam.IP_ADDRESS_ANNOTATION),
                in_use=in_use, rng=self._rng,
                owner=holder(capiipam.IPAddressClaim.KIND, claim.metadata.name))
        except ipallocator.AllocationError as err:
            reason = (capiipam.POOL_EXHAUSTED if err.message == ipallocator.EXHAUSTED
                      else capiipam.ALLOCATION_FAILED)
            if claim.failure() != err.message:
                self._events.record(claim, type=ports.EventType.WARNING,
                                    reason="IPAllocationFailed",
                                    message=f"pool {pool.metadata.name}: {err.message}")
            self._status(claim, None, reason=reason, message=err.message)
            return
        created = self._store.create(self._address(pool, claim, got))
        in_use[got.address] = holder(capiipam.IPAddressClaim.KIND, claim.metadata.name)
        found[created.metadata.name] = created
        self._status(claim, created.metadata.name, reason=None, message="")

    def _address(self, pool: ipam.IPPool, claim: capiipam.IPAddressClaim,
                 got: ipallocator.Allocation) -> capiipam.IPAddress:
        def owner(obj: meta.Resource) -> meta.OwnerReference:
            return meta.OwnerReference(api_version=obj.API_VERSION, kind=obj.KIND,
                                       name=obj.metadata.name, uid=obj.metadata.uid or "")

        text = str(got.address)
        return capiipam.IPAddress(
            metadata=meta.ObjectMeta(name=ipam.address_name(pool.spec.name_prefix, text),
                                     namespace=pool.metadata.namespace,
                                     labels=dict(claim.metadata.labels),
                                     finalizers=(capiipam.ADDRESS_FINALIZER,),
                                     owner_references=(owner(pool), owner(claim))),
            spec=capiipam.IPAddressSpec(
                claim_ref=capiipam.IPAddressClaimReference(name=claim.metadata.name),
                pool_ref=capiipam.IPPoolReference(name=pool.metadata.name, kind=pool.KIND,
                                                  api_group=POOL_GROUP),
                address=text, prefix=got.prefix or 0, gateway=got.gateway))

    def _status(self, claim: capiipam.IPAddressClaim, address: str | None, *,
                reason: str | None, message: str) -> None:
        old = claim.status or capiipam.IPAddressClaimStatus()
        ready = "True" if address else "False"
        previous = next((c for c in old.conditions or () if c.type == capiipam.READY), None)
        if previous is not None and (previous.status, previous.reason, previous.message) == (
                ready, reason or capiipam.ALLOCATED, message):
            condition = previous
        else:
            condition = meta.Condition(type=capiipam.READY, status=ready,
                                       reason=reason or capiipam.ALLOCATED,
                                       message=message, last_transition_time=self._now())
        status = old.model_copy(update={
            "address_ref": capiipam.IPAddressReference(name=address) if address else None,
            "conditions": (condition,)})
        if status != claim.status:
            with contextlib.suppress(outcome.NotFound):
                self._store.update_status(claim.model_copy(update={"status": status}))
