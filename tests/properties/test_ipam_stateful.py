"""IPAM under random claims, deletions, stripped finalizers and two reconcilers (hypothesis).

Invariants after every step: no address given twice, never a gateway, network or broadcast
address, never an address outside the pool, at most one address per claim, every claim's
status names an address that names it back. Once quiet (reconciled until nothing changes): every
live claim has an address unless the pool is full, nothing is leaked (every IPAddress belongs to
a live claim), and the pool's status.indexes is exactly the addresses.
"""

import contextlib
import ipaddress
import random

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from metalcubed.core import outcome
from metalcubed.core.api import ipam, meta
from metalcubed.core.clock import ManualClock
from metalcubed.core.memory_store import MemoryStore
from metalcubed.core.reconcilers import ippool
from metalcubed.core.testing.fakes import RecordingEventRecorder

NS = "lab"
SPEC = ipam.IPPoolSpec(
    name_prefix="p", gateway="10.0.0.1",
    pools=(ipam.Pool(subnet="10.0.0.0/29"), ipam.Pool(start="10.0.1.5", end="10.0.1.7",
                                                      gateway="10.0.1.6")),
    pre_allocations={"c3": "10.0.0.5"})
USABLE = {ipaddress.ip_address(a) for a in (
    "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.1.5", "10.0.1.7")}
NAMES = [f"c{i}" for i in range(10)]


class IPAM(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.store = MemoryStore(clock=self.clock)
        self.reconcilers = [
            ippool.IPPoolReconciler(store=self.store, clock=self.clock,
                                    events=RecordingEventRecorder(), rng=random.Random(seed))
            for seed in (1, 2)]
        self.store.create(ipam.IPPool(metadata=meta.ObjectMeta(name="pool", namespace=NS),
                                      spec=SPEC))
        self.key = meta.ObjectKey(NS, "pool")

    def _claims(self) -> list[ipam.IPClaim]:
        return self.store.list(ipam.IPClaim, namespace=NS)

    @rule(name=st.sampled_from(NAMES), requested=st.sampled_from([None, "10.0.0.4", "10.0.1.7"]))
    def create_claim(self, name: str, requested: str | None) -> None:
        annotations = {ipam.IP_ADDRESS_ANNOTATION: requested} if requested else {}
        with contextlib.suppress(outcome.Conflict):
            self.store.create(ipam.IPClaim(
                metadata=meta.ObjectMeta(name=name, namespace=NS, annotations=annotations),
                spec=ipam.IPClaimSpec(pool=meta.ObjectReference(name="pool"))))

    @precondition(lambda self: bool(self._claims()))
    @rule(data=st.data(), strip=st.booleans())
    def delete_claim(self, data: st.DataObject, strip: bool) -> None:
        claim = data.draw(st.sampled_from(self._claims()))
        try:
            if strip:  # a force delete: the finalizer is removed by hand first
                claim = self.store.update(claim.with_meta(finalizers=()))
            self.store.delete(ipam.IPClaim, claim.key)
        except outcome.NotFound:
            pass  # it was being deleted already: the last finalizer going removed it

    @rule(which=st.sampled_from([0, 1]))
    def reconcile(self, which: int) -> None:
        self.reconcilers[which].reconcile(self.key)

    @invariant()
    def addresses_are_unique_usable_and_one_per_claim(self) -> None:
        addresses = self.store.list(ipam.IPAddress, namespace=NS)
        ips = [ipaddress.ip_address(a.spec.address) for a in addresses]
        assert len(ips) == len(set(ips)), ips
        assert set(ips) <= USABLE, set(ips) - USABLE
        owners = [a.spec.claim.name for a in addresses]
        assert len(owners) == len(set(owners)), owners
        by_name = {a.metadata.name: a for a in addresses}
        for claim in self._claims():
            if claim.status is not None and claim.status.address is not None:
                linked = by_name.get(str(claim.status.address.name))
                assert linked is not None, claim.metadata.name
                assert linked.spec.claim.name == claim.metadata.name
        pre = [a for a in addresses if a.spec.address == "10.0.0.5"]
        assert all(a.spec.claim.name == "c3" for a in pre)

    def teardown(self) -> None:
        for _ in range(5):
            self.reconcilers[0].reconcile(self.key)
        claims = [c for c in self._claims() if c.metadata.deletion_timestamp is None]
        addresses = self.store.list(ipam.IPAddress, namespace=NS)
        live = {c.metadata.name for c in claims}
        assert {a.spec.claim.name for a in addresses} <= live  # nothing leaked
        assert not [c for c in self._claims() if c.metadata.deletion_timestamp is not None]
        without = [c.metadata.name for c in claims
                   if c.status is None or c.status.address is None]
        # Everyone is served unless the pool is full: c3's pre-allocation is kept for c3, even
        # while a c3 asking for another address (a conflict) does not take it.
        taken = {ipaddress.ip_address(a.spec.address) for a in addresses}
        free = len(USABLE - taken - {ipaddress.ip_address("10.0.0.5")})
        assert not without or free <= 0 or all(
            c.metadata.annotations.get(ipam.IP_ADDRESS_ANNOTATION) for c in claims
            if c.metadata.name in without), (without, free)
        pool = self.store.get(ipam.IPPool, self.key)
        indexes = (pool.status.indexes if pool.status else None) or {}
        assert indexes == {a.spec.claim.name: a.spec.address for a in addresses}


TestIPAM = IPAM.TestCase
TestIPAM.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
