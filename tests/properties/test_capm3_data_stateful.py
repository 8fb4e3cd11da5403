"""The data chain under races and crashes (hypothesis): Metal3DataTemplate -> Metal3Data ->
IPClaim -> IPAddress -> rendered Secrets, with machines coming and going, claims force-deleted,
an IPPool reconciler reading a lagging cache, and passes cut short after any write (a controller
that crashes mid-pass and starts again).

After every step: never one address given twice (across both IPAddress kinds), never a gateway,
network or broadcast address, never two Metal3Data for one claim, and a rendered metaData Secret
always names its own machine. Once quiet (every controller run until nothing changes): nothing
is left of a released machine (no Metal3Data, IPClaim, IPAddress or Secret), every live machine
has its Secrets while the pool has addresses to give, and each Secret's address is the one its
IPClaim holds, held by no other machine; unless its IPClaim was force-deleted and the address
given to another claim before the Data could claim it again, which its Metal3Data then says.
"""

import contextlib
import ipaddress
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from metalcubed.core import outcome
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import capi, ipam, meta
from metalcubed.core.api.capm3 import v1beta2 as v2
from metalcubed.core.reconcilers import ippool, metal3data, metal3datatemplate
from metalcubed.core.testing.fakes import RecordingEventRecorder
from tests.properties.test_capm3_claims_stateful import StaleStore
from tests.unit.reconcilers.data_lab import NS, DataLab

MACHINES = [f"m{i}" for i in range(7)]
USABLE = {ipaddress.ip_address(f"10.0.0.{i}") for i in range(2, 7)}
"""10.0.0.0/29: .0 network, .1 gateway, .7 broadcast."""


class Crash(Exception):
    """The process died: the rest of the pass never happens."""


class CrashingStore:
    """The live store, whose `budget`-th write raises Crash before it is made."""

    def __init__(self, live: Any, budget: int) -> None:
        self.live = live
        self.budget = budget

    def _write(self, name: str, *args: Any) -> Any:
        if self.budget <= 0:
            raise Crash(name)
        self.budget -= 1
        return getattr(self.live, name)(*args)

    def create(self, obj: Any) -> Any:
        return self._write("create", obj)

    def update(self, obj: Any) -> Any:
        return self._write("update", obj)

    def update_status(self, obj: Any) -> Any:
        return self._write("update_status", obj)

    def delete(self, kind: Any, key: meta.ObjectKey) -> None:
        self._write("delete", kind, key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.live, name)


class DataChain(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.lab = DataLab()
        self.lab.pool()
        self.stale = StaleStore(self.lab.store)
        self.stale_pools = ippool.IPPoolReconciler(store=self.stale,  # type: ignore[arg-type]
                                                   clock=self.lab.clock,
                                                   events=RecordingEventRecorder())
        self.released: set[str] = set()

    # --- what users and controllers do --------------------------------------------------------

    def _live(self) -> list[str]:
        return sorted(c.metadata.name for c in self.lab.store.list(v2.Metal3DataClaim,
                                                                   namespace=NS)
                      if c.metadata.deletion_timestamp is None)

    @rule(name=st.sampled_from(MACHINES))
    def add_machine(self, name: str) -> None:
        if any(o.metadata.name == name for o in self.lab.store.list(v2.Metal3DataClaim,
                                                                     namespace=NS)):
            return
        if name in self.released:
            self._clear_machine(name)
        self.lab.machine(name)
        self.released.discard(name)

    def _clear_machine(self, name: str) -> None:
        for kind, obj_name in ((v2.Metal3Machine, name), (capi.Machine, name),
                               (bmh.BareMetalHost, f"host-{name}")):
            with contextlib.suppress(outcome.NotFound):
                self.lab.store.delete(kind, meta.ObjectKey(NS, obj_name))

    @precondition(lambda self: bool(self._live()))
    @rule(data=st.data())
    def release_machine(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(self._live()))
        self.lab.release(name)
        self.released.add(name)

    @precondition(lambda self: bool(self.lab.store.list(ipam.IPClaim, namespace=NS)))
    @rule(data=st.data())
    def force_delete_an_ipclaim(self, data: st.DataObject) -> None:
        """Someone strips every finalizer and deletes an IPClaim (upstream #694's leak)."""
        claim = data.draw(st.sampled_from(self.lab.store.list(ipam.IPClaim, namespace=NS)))
        with contextlib.suppress(outcome.NotFound, outcome.Conflict):
            claim = self.lab.store.update(claim.with_meta(finalizers=()))
            self.lab.store.delete(ipam.IPClaim, claim.key)

    @rule(which=st.sampled_from(["template", "data", "pool", "stale-pool"]),
          budget=st.one_of(st.none(), st.integers(min_value=0, max_value=4)),
          pick=st.integers(min_value=0, max_value=10))
    def reconcile(self, which: str, budget: int | None, pick: int) -> None:
        store: Any = self.lab.store if budget is None else CrashingStore(self.lab.store, budget)
        if which == "template":
            rec: Any = metal3datatemplate.Metal3DataTemplateReconciler(store=store,
                                                                       clock=self.lab.clock)
            key = meta.ObjectKey(NS, "tpl")
        elif which == "data":
            datas = self.lab.store.list(v2.Metal3Data, namespace=NS)
            if not datas:
                return
            rec = metal3data.Metal3DataReconciler(store=store, clock=self.lab.clock,
                                                  events=self.lab.events)
            key = datas[pick % len(datas)].key
        elif which == "pool":
            rec = ippool.IPPoolReconciler(store=store, clock=self.lab.clock,
                                          events=self.lab.events)
            key = meta.ObjectKey(NS, "pool1")
        else:
            if pick % 3 == 0:
                self.stale.refresh()  # the cache lags, then catches up
            rec, key = self.stale_pools, meta.ObjectKey(NS, "pool1")
        # a crash, or a write based on a stale read refused: retried later
        with contextlib.suppress(Crash, outcome.Conflict, outcome.NotFound):
            rec.reconcile(key)

    @rule()
    def every_controller_once(self) -> None:
        """A quiet moment: each controller gets one pass over everything."""
        self.lab.settle(rounds=1)

    # --- always -------------------------------------------------------------------------------

    @invariant()
    def one_address_one_claim_never_reserved(self) -> None:
        ips = [ipaddress.ip_address(a.spec.address)
               for a in self.lab.store.list(ipam.IPAddress, namespace=NS)]
        assert len(ips) == len(set(ips)), ips
        assert set(ips) <= USABLE, set(ips) - USABLE

    @invariant()
    def one_data_per_claim(self) -> None:
        # A Data being deleted may outlive its claim while a re-created machine's claim of
        # the same name gets a new one: only live Data count.
        owners = [d.spec.claim.name for d in self.lab.store.list(v2.Metal3Data, namespace=NS)
                  if d.spec is not None and d.spec.claim is not None
                  and d.metadata.deletion_timestamp is None]
        assert len(owners) == len(set(owners)), owners

    @invariant()
    def a_secret_names_its_own_machine(self) -> None:
        for secret in self.lab.store.list(meta.Secret, namespace=NS):
            if secret.metadata.name.endswith("-metadata"):
                machine = secret.metadata.name.removesuffix("-metadata")
                assert self.lab.secret(secret.metadata.name)["name"] == machine

    # --- once quiet ---------------------------------------------------------------------------

    def teardown(self) -> None:
        self.lab.settle(rounds=12)
        live = self._live()
        left = self.lab.leftovers()
        for name in self.released - set(live):
            assert f"{name}-metadata" not in left.get("Secret", []), left
        claims = {c.metadata.name for c in self.lab.store.list(ipam.IPClaim, namespace=NS)}
        datas = {d.metadata.name: d for d in self.lab.store.list(v2.Metal3Data, namespace=NS)}
        assert len(datas) == len(live), (datas.keys(), live)
        assert all(c.removeprefix("tpl-").split("-pool1")[0].isdigit() for c in claims)
        assert {f"{d}-pool1" for d in datas} >= claims  # no claim of a gone Metal3Data
        addresses = {a.spec.claim.name: a.spec.address
                     for a in self.lab.store.list(ipam.IPAddress, namespace=NS)}
        assert set(addresses) <= claims, (addresses, claims)
        ready = 0
        rendered: dict[object, str] = {}
        for name in live:
            data = self.lab.data_of(name)
            if data.status is None or not data.status.ready:
                continue
            ready += 1
            ip = self.lab.secret(f"{name}-metadata")["ip"]
            lost = data.status.error_message
            if lost is None:
                # the address it was rendered with is still claimed by it, by it alone
                assert addresses.get(f"{data.metadata.name}-pool1") == ip, (name, addresses)
                assert ip not in rendered, (name, rendered)
                rendered[ip] = name
            else:  # its claim was force-deleted and the address taken meanwhile: said so
                assert str(ip) in lost and "not given back" in lost, lost
        assert ready == min(len(live), len(USABLE)), (ready, live)


DataChain.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
TestDataChain = DataChain.TestCase
