"""The IPPool reconciler on the memory store: allocation, release, and upstream's bugs not had."""

import ipaddress
import random

import pytest

from metalcubed.core import ipallocator
from metalcubed.core.api import capi, capiipam, ipam, meta
from metalcubed.core.clock import ManualClock
from metalcubed.core.memory_store import MemoryStore
from metalcubed.core.reconcilers import ippool
from metalcubed.core.testing.fakes import RecordingEventRecorder

NS = "lab"


class Lab:
    def __init__(self, spec: ipam.IPPoolSpec, *, seed: int = 0) -> None:
        self.clock = ManualClock()
        self.store = MemoryStore(clock=self.clock)
        self.events = RecordingEventRecorder()
        self.reconciler = ippool.IPPoolReconciler(store=self.store, clock=self.clock,
                                                  events=self.events, rng=random.Random(seed))
        self.store.create(ipam.IPPool(metadata=meta.ObjectMeta(name="pool", namespace=NS),
                                      spec=spec))
        self.key = meta.ObjectKey(NS, "pool")

    def claim(self, name: str, *, requested: str | None = None) -> None:
        annotations = {ipam.IP_ADDRESS_ANNOTATION: requested} if requested else {}
        self.store.create(ipam.IPClaim(
            metadata=meta.ObjectMeta(name=name, namespace=NS, annotations=annotations),
            spec=ipam.IPClaimSpec(pool=meta.ObjectReference(name="pool"))))

    def settle(self) -> None:
        for _ in range(10):
            self.reconciler.reconcile(self.key)

    def address_of(self, claim: str) -> str | None:
        got = self.store.get(ipam.IPClaim, meta.ObjectKey(NS, claim))
        if got.status is None or got.status.address is None:
            return None
        address = self.store.get(ipam.IPAddress, meta.ObjectKey(NS, str(got.status.address.name)))
        return address.spec.address

    def error_of(self, claim: str) -> str | None:
        got = self.store.get(ipam.IPClaim, meta.ObjectKey(NS, claim))
        return got.status.error_message if got.status else None

    def addresses(self) -> list[str]:
        return sorted(a.spec.address for a in self.store.list(ipam.IPAddress, namespace=NS))


SMALL = ipam.IPPoolSpec(name_prefix="p", gateway="10.0.0.1",
                        pools=(ipam.Pool(subnet="10.0.0.0/29"),))
"""10.0.0.0/29: .1 is the gateway, .0 and .7 network/broadcast: five addresses to give."""


def test_claims_get_sequential_addresses_never_the_gateway_or_broadcast() -> None:
    lab = Lab(SMALL)
    for i in range(6):
        lab.claim(f"c{i}")
    lab.settle()
    assert [lab.address_of(f"c{i}") for i in range(5)] == [
        "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
    assert lab.address_of("c5") is None
    assert lab.error_of("c5") == ipallocator.EXHAUSTED
    assert lab.events.reasons(meta.ObjectKey(NS, "c5")) == ["IPAllocationFailed"]
    address = lab.store.get(ipam.IPAddress, meta.ObjectKey(NS, "p-10-0-0-2"))
    assert address.spec.gateway == "10.0.0.1"
    assert {r.kind for r in address.metadata.owner_references} == {"IPPool", "IPClaim"}
    pool = lab.store.get(ipam.IPPool, lab.key)
    assert pool.status is not None and pool.status.indexes == {
        f"c{i}": f"10.0.0.{i + 2}" for i in range(5)}


def test_an_exhausted_claim_gets_the_address_a_deleted_claim_frees() -> None:
    """Upstream never retries a claim stamped "Exhausted IP Pools" (IPAM #1537)."""
    lab = Lab(SMALL)
    for i in range(6):
        lab.claim(f"c{i}")
    lab.settle()
    lab.store.delete(ipam.IPClaim, meta.ObjectKey(NS, "c2"))
    lab.settle()
    assert lab.address_of("c5") == "10.0.0.4"
    assert lab.error_of("c5") is None
    with pytest.raises(Exception, match="not found"):
        lab.store.get(ipam.IPClaim, meta.ObjectKey(NS, "c2"))


def test_a_claim_deleted_before_it_was_linked_leaks_no_address() -> None:
    """Upstream #694: the IPAddress was created, the claim went away before status was set."""
    lab = Lab(SMALL)
    lab.claim("c0")
    lab.settle()
    claim = lab.store.get(ipam.IPClaim, meta.ObjectKey(NS, "c0"))
    lab.store.update(claim.with_meta(finalizers=()))  # someone strips the finalizer
    lab.store.delete(ipam.IPClaim, claim.key)
    lab.settle()
    assert lab.addresses() == []


def test_requested_and_preallocated_addresses() -> None:
    spec = SMALL.model_copy(update={"pre_allocations": {"fixed": "10.0.0.6"}})
    lab = Lab(spec)
    lab.claim("a")
    lab.claim("fixed")
    lab.claim("wants", requested="10.0.0.4")
    lab.claim("greedy", requested="10.0.0.6")  # someone else's pre-allocation
    lab.settle()
    assert lab.address_of("fixed") == "10.0.0.6"
    assert lab.address_of("wants") == "10.0.0.4"
    assert lab.address_of("a") == "10.0.0.2"
    assert lab.error_of("greedy") == ipallocator.REQUESTED_NOT_AVAILABLE


def test_random_strategy_stays_in_range_and_is_seeded() -> None:
    spec = ipam.IPPoolSpec(name_prefix="r", allocation_strategy=ipam.AllocationStrategy.RANDOM,
                           pools=(ipam.Pool(start="192.168.0.10", end="192.168.0.200"),))
    first, second = Lab(spec, seed=3), Lab(spec, seed=3)
    for lab in (first, second):
        for i in range(5):
            lab.claim(f"c{i}")
        lab.settle()
    assert first.addresses() == second.addresses()
    assert all(ipaddress.ip_address("192.168.0.10") <= ipaddress.ip_address(a)
               <= ipaddress.ip_address("192.168.0.200") for a in first.addresses())


def test_an_address_another_writer_took_is_respected_not_doubled() -> None:
    lab = Lab(SMALL)
    lab.claim("c0")
    # Another writer took .2 first (same name lock, another claim).
    lab.claim("other")
    lab.store.create(ipam.IPAddress(
        metadata=meta.ObjectMeta(name="p-10-0-0-2", namespace=NS),
        spec=ipam.IPAddressSpec(address="10.0.0.2", pool=meta.ObjectReference(name="pool"),
                                claim=meta.ObjectReference(name="other"))))
    lab.settle()
    assert lab.address_of("c0") == "10.0.0.3"
    assert lab.address_of("other") == "10.0.0.2"


def test_deleting_the_pool_waits_for_its_addresses() -> None:
    lab = Lab(SMALL)
    lab.claim("c0")
    lab.settle()
    lab.store.delete(ipam.IPPool, lab.key)
    lab.settle()
    assert lab.store.get(ipam.IPPool, lab.key).metadata.deletion_timestamp is not None
    lab.store.delete(ipam.IPClaim, meta.ObjectKey(NS, "c0"))
    lab.settle()
    assert lab.addresses() == []
    with pytest.raises(Exception, match="not found"):
        lab.store.get(ipam.IPPool, lab.key)


def test_wiring_maps_claims_and_addresses_to_their_pool() -> None:
    claim = ipam.IPClaim(metadata=meta.ObjectMeta(name="c", namespace=NS),
                         spec=ipam.IPClaimSpec(pool=meta.ObjectReference(name="pool")))
    elsewhere = ipam.IPClaim(metadata=meta.ObjectMeta(name="c", namespace=NS),
                             spec=ipam.IPClaimSpec(pool=meta.ObjectReference(
                                 name="pool", namespace="other")))
    address = ipam.IPAddress(metadata=meta.ObjectMeta(name="p-1", namespace=NS),
                             spec=ipam.IPAddressSpec(address="10.0.0.2",
                                                     pool=meta.ObjectReference(name="pool"),
                                                     claim=meta.ObjectReference(name="c")))
    assert ippool.pool_key_of_claim(claim) == [meta.ObjectKey(NS, "pool")]
    assert ippool.pool_key_of_claim(elsewhere) == []  # as upstream: never allocated
    assert ippool.pool_key_of_address(address) == [meta.ObjectKey(NS, "pool")]
    assert {w.kind for w in ippool.WIRING.watches} == {
        ipam.IPPool, ipam.IPClaim, ipam.IPAddress, capiipam.IPAddressClaim, capiipam.IPAddress}


# --- Cluster API IPAddressClaims served from the pool ------------------------------------------


def _capi_claim(lab: Lab, name: str, *, kind: str = "IPPool") -> None:
    lab.store.create(capiipam.IPAddressClaim(
        metadata=meta.ObjectMeta(name=name, namespace=NS),
        spec=capiipam.IPAddressClaimSpec(pool_ref=capiipam.IPPoolReference(
            name="pool", kind=kind, api_group="ipam.metal3.io"))))


def _capi_address(lab: Lab, name: str) -> str | None:
    claim = lab.store.get(capiipam.IPAddressClaim, meta.ObjectKey(NS, name))
    ref = claim.status.address_ref if claim.status else None
    if ref is None:
        return None
    return lab.store.get(capiipam.IPAddress, meta.ObjectKey(NS, ref.name)).spec.address


def test_a_capi_claim_gets_an_address_and_a_ready_condition() -> None:
    lab = Lab(SMALL)
    _capi_claim(lab, "k0")
    lab.settle()
    assert _capi_address(lab, "k0") == "10.0.0.2"
    claim = lab.store.get(capiipam.IPAddressClaim, meta.ObjectKey(NS, "k0"))
    assert claim.status is not None and claim.status.conditions is not None
    assert [(c.type, c.status) for c in claim.status.conditions] == [("Ready", "True")]
    assert capiipam.CLAIM_FINALIZER in claim.metadata.finalizers
    address = lab.store.get(capiipam.IPAddress, meta.ObjectKey(NS, "p-10-0-0-2"))
    assert (address.spec.prefix, address.spec.gateway) == (29, "10.0.0.1")  # from the subnet
    assert address.spec.pool_ref.kind == "IPPool"
    pool = lab.store.get(ipam.IPPool, lab.key)
    assert pool.status is not None and pool.status.indexes == {"k0": "10.0.0.2"}


def test_an_ipclaim_and_a_capi_claim_of_one_name_never_share_an_address() -> None:
    """Upstream keys allocations by claim name alone, so these two alias each other."""
    lab = Lab(SMALL)
    lab.claim("same")
    _capi_claim(lab, "same")
    lab.settle()
    assert {lab.address_of("same"), _capi_address(lab, "same")} == {"10.0.0.2", "10.0.0.3"}


def test_a_capi_claim_of_another_pool_kind_is_not_served() -> None:
    lab = Lab(SMALL)
    _capi_claim(lab, "k0", kind="InClusterIPPool")
    lab.settle()
    assert _capi_address(lab, "k0") is None
    assert lab.store.list(capiipam.IPAddress, namespace=NS) == []


def test_an_exhausted_capi_claim_says_so_and_gets_a_freed_address() -> None:
    lab = Lab(SMALL)
    for i in range(5):
        lab.claim(f"c{i}")
    _capi_claim(lab, "late")
    lab.settle()
    claim = lab.store.get(capiipam.IPAddressClaim, meta.ObjectKey(NS, "late"))
    assert claim.failure() == ipallocator.EXHAUSTED
    assert claim.status is not None and claim.status.conditions is not None
    assert claim.status.conditions[0].reason == capiipam.POOL_EXHAUSTED
    assert lab.events.reasons(meta.ObjectKey(NS, "late")) == ["IPAllocationFailed"]
    lab.store.delete(ipam.IPClaim, meta.ObjectKey(NS, "c1"))
    lab.settle()
    assert _capi_address(lab, "late") == "10.0.0.3"
    after = lab.store.get(capiipam.IPAddressClaim, meta.ObjectKey(NS, "late"))
    assert after.failure() is None


def test_deleting_a_capi_claim_frees_its_address_and_an_orphan_address_goes() -> None:
    lab = Lab(SMALL)
    _capi_claim(lab, "k0")
    _capi_claim(lab, "k1")
    lab.settle()
    lab.store.delete(capiipam.IPAddressClaim, meta.ObjectKey(NS, "k0"))
    claim = lab.store.get(capiipam.IPAddressClaim, meta.ObjectKey(NS, "k1"))
    lab.store.update(claim.with_meta(finalizers=()))  # force delete: #694 for CAPI claims
    lab.store.delete(capiipam.IPAddressClaim, claim.key)
    lab.settle()
    assert lab.store.list(capiipam.IPAddressClaim, namespace=NS) == []
    assert lab.store.list(capiipam.IPAddress, namespace=NS) == []


# --- clusterName and pause -------------------------------------------------------------------


def test_a_pool_of_a_cluster_is_owned_by_it_and_idle_while_it_is_paused() -> None:
    lab = Lab(SMALL.model_copy(update={"cluster_name": "c1"}))
    lab.claim("c0")
    lab.settle()
    assert lab.address_of("c0") is None
    assert lab.events.reasons(lab.key) == ["ClusterNotFound"] * 10
    cluster = lab.store.create(capi.Cluster(metadata=meta.ObjectMeta(name="c1", namespace=NS),
                                            spec=capi.ClusterSpec(paused=True)))
    assert lab.reconciler.reconcile(lab.key).requeue_after_s == ippool.PAUSE_S
    assert lab.address_of("c0") is None
    pool = lab.store.get(ipam.IPPool, lab.key)
    assert pool.metadata.labels == {capi.CLUSTER_NAME_LABEL: "c1"}
    assert [(r.kind, r.name, r.uid, r.controller) for r in pool.metadata.owner_references] == [
        ("Cluster", "c1", cluster.metadata.uid, None)]
    lab.store.update(lab.store.get(capi.Cluster, cluster.key).model_copy(
        update={"spec": capi.ClusterSpec(paused=False)}))
    lab.settle()
    assert lab.address_of("c0") == "10.0.0.2"


def test_a_pool_annotated_paused_hands_out_nothing() -> None:
    lab = Lab(SMALL)
    pool = lab.store.get(ipam.IPPool, lab.key)
    lab.store.update(pool.with_meta(annotations={capi.PAUSED_ANNOTATION: ""}))
    lab.claim("c0")
    lab.settle()
    assert lab.address_of("c0") is None
    pool = lab.store.get(ipam.IPPool, lab.key)
    lab.store.update(pool.with_meta(annotations={}))
    lab.settle()
    assert lab.address_of("c0") == "10.0.0.2"


def test_a_pool_sharing_a_name_prefix_skips_the_names_the_other_holds_and_says_so() -> None:
    """Admission refuses the shared prefix; a pool that got past it (created before the webhook
    ran) still serves its claims instead of requeueing forever on a 409 (upstream #1437)."""
    lab = Lab(SMALL)
    lab.store.create(ipam.IPPool(metadata=meta.ObjectMeta(name="twin", namespace=NS),
                                 spec=SMALL))
    lab.store.create(ipam.IPClaim(metadata=meta.ObjectMeta(name="t0", namespace=NS),
                                  spec=ipam.IPClaimSpec(pool=meta.ObjectReference(name="twin"))))
    lab.reconciler.reconcile(meta.ObjectKey(NS, "twin"))  # twin takes p-10-0-0-2
    lab.claim("c0")
    lab.settle()
    assert lab.address_of("c0") == "10.0.0.3"
    assert "NamePrefixShared" in lab.events.reasons(lab.key)
