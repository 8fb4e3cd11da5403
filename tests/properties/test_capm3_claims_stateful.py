"""Host claims under races (hypothesis): two Metal3Machine reconcilers, one reading a stale
snapshot (an informer cache that lags), machines deleted, hosts provisioning and deprovisioning.

Never a host with two consumers, never a consumer that does not exist, never a machine that
reports a host (providerID) it does not hold, and, once quiet, as many machines hold a host as
hosts allow. Upstream needed a mutex, uncached reads and still has #3516 (stealing); here a
resourceVersion-guarded claim is the whole defence.
"""

import copy
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from metalcubed.core import labels, outcome
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta
from metalcubed.core.api.capm3 import v1beta2 as v2
from metalcubed.core.memory_store import MemoryStore
from tests.unit.reconcilers.capm3_lab import NS, Lab

P = bmh.ProvisioningState
MACHINES = [f"m{i}" for i in range(5)]
HOSTS = [f"h{i}" for i in range(4)]


class StaleStore:
    """Reads from a snapshot taken at `refresh()`; writes go to the live store (so a write
    based on a stale read carries a stale resourceVersion: 409, as with a lagging cache)."""

    def __init__(self, live: MemoryStore) -> None:
        self.live = live
        self._snapshot: dict[type[Any], list[Any]] = {}

    def refresh(self) -> None:
        self._snapshot = {}

    def _all(self, kind: type[Any]) -> list[Any]:
        if kind not in self._snapshot:
            self._snapshot[kind] = copy.deepcopy(self.live.list(kind))
        return self._snapshot[kind]

    def get(self, kind: type[Any], key: meta.ObjectKey) -> Any:
        for obj in self._all(kind):
            if obj.key == key:
                return obj
        raise outcome.NotFound(kind.KIND, str(key))

    def list(self, kind: type[Any], *, namespace: str | None = None,
             label_selector: str | None = None) -> list[Any]:
        wanted = labels.parse(label_selector or "")
        return [o for o in self._all(kind)
                if (namespace is None or o.metadata.namespace == namespace)
                and wanted.matches(o.metadata.labels)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.live, name)  # create, update, update_status, delete, watch


class Claims(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.lab = Lab(seed=1)
        for name in HOSTS:
            self.lab.host(name)
        self.keys = {name: self.lab.machine(name) for name in MACHINES}
        self.stale = StaleStore(self.lab.store)
        self.reconcilers = [self.lab.reconciler, self.lab.new_reconciler(self.stale, seed=2)]

    def _live_machines(self) -> list[str]:
        return [m.metadata.name for m in self.lab.store.list(v2.Metal3Machine, namespace=NS)]

    @rule(name=st.sampled_from(MACHINES), which=st.sampled_from([0, 1]))
    def reconcile(self, name: str, which: int) -> None:
        self.reconcilers[which].reconcile(self.keys[name])

    @rule()
    def cache_catches_up(self) -> None:
        self.stale.refresh()

    @rule(name=st.sampled_from(HOSTS))
    def host_moves_on(self, name: str) -> None:
        """What BMO would do next: provision a claimed host with an image, or finish a
        deprovision (image gone) back to available."""
        host = self.lab.get_host(name)
        state = host.status.provisioning.state
        if host.spec.image is not None and state == P.AVAILABLE:
            self.lab.set_state(name, P.PROVISIONED)
        elif host.spec.image is None and state == P.PROVISIONED:
            self.lab.set_state(name, P.AVAILABLE)

    @precondition(lambda self: bool(self._live_machines()))
    @rule(data=st.data())
    def delete_machine(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(self._live_machines()))
        self.lab.store.delete(v2.Metal3Machine, self.keys[name])

    @invariant()
    def one_consumer_per_host_and_no_false_claims(self) -> None:
        machines = {m.metadata.name: m for m in self.lab.store.list(v2.Metal3Machine,
                                                                    namespace=NS)}
        holders: dict[str, str] = {}
        for name in HOSTS:
            ref = self.lab.get_host(name).spec.consumer_ref
            if ref is not None:
                assert ref.name in machines, f"{name} held by a machine that is gone"
                assert ref.name not in holders.values(), f"{ref.name} holds two hosts"
                holders[name] = ref.name
        for name, m3m in machines.items():
            provider = m3m.spec.provider_id if m3m.spec else None
            if provider:
                host = provider.split("/")[-2]
                assert holders.get(host) == name, f"{name} reports {host} it does not hold"

    def teardown(self) -> None:
        for _ in range(4):
            for name in self._live_machines():
                for _ in range(4):
                    self.reconcilers[0].reconcile(self.keys[name])
            for name in HOSTS:
                self.host_moves_on(name)
        live = self._live_machines()
        holding = [n for n in HOSTS if self.lab.get_host(n).spec.consumer_ref is not None]
        assert len(holding) == min(len(live), len(HOSTS)), (live, holding)


TestClaims = Claims.TestCase
TestClaims.settings = settings(max_examples=50, stateful_step_count=40, deadline=None)
