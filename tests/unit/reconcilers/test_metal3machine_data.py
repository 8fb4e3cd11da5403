"""A Metal3Machine with a dataTemplate, with the real Metal3DataTemplate, Metal3Data and IPPool
controllers on one memory store: the claim, the rendered Secrets reaching the host, a missing
pool named on the machine, and nothing left after deletion."""

import random

from metalcubed.core import controllerset, outcome
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import ipam, meta
from metalcubed.core.api.capm3 import v1beta2 as v2
from metalcubed.core.provisioning import fixture
from metalcubed.core.reconcilers import ippool, metal3data, metal3datatemplate, metal3machine
from tests.unit.reconcilers.capm3_lab import IMAGE, NS, Lab

P = bmh.ProvisioningState
TEMPLATE = {"metaData": {"objectNames": [{"key": "name", "object": "machine"}],
                         "ipAddressesFromPool": [{"key": "ip", "name": "pool1"}]},
            "networkData": {"networks": {"ipv4DHCP": [{"id": "dhcp", "link": "eth0"}]},
                            "links": {"ethernets": [{"type": "phy", "id": "eth0",
                                                     "macAddress": {"string":
                                                                    "52:54:00:00:00:01"}}]}}}


class ChainLab(Lab):
    def __init__(self, *, host_named_claims: bool = False) -> None:
        super().__init__()
        deps = controllerset.Deps(  # the Metal3Data controller as the manager builds it
            store=self.store, provisioner_factory=fixture.FixtureBackend(), clock=self.clock,
            events=self.events, rng=random.Random(0), host_named_claims=host_named_claims)
        self.others = [
            metal3datatemplate.Metal3DataTemplateReconciler(store=self.store, clock=self.clock),
            controllerset.METAL3DATA.new_reconciler(deps),
        ]
        self.pools = ippool.IPPoolReconciler(store=self.store, clock=self.clock,
                                             events=self.events, rng=random.Random(0))
        self.store.create(v2.Metal3DataTemplate(
            metadata=meta.ObjectMeta(name="tpl", namespace=NS),
            spec=v2.Metal3DataTemplateSpec.model_validate(TEMPLATE)))

    def pool(self) -> None:
        self.store.create(ipam.IPPool(
            metadata=meta.ObjectMeta(name="pool1", namespace=NS),
            spec=ipam.IPPoolSpec(name_prefix="pool1", gateway="10.0.0.1",
                                 pools=(ipam.Pool(subnet="10.0.0.0/29"),))))

    def run(self, key: meta.ObjectKey, rounds: int = 8) -> None:
        """Every controller over every object of its kind, until quiet enough."""
        for _ in range(rounds):
            self.reconciler.reconcile(key)
            for t in self.store.list(v2.Metal3DataTemplate, namespace=NS):
                self.others[0].reconcile(t.key)
            for d in self.store.list(v2.Metal3Data, namespace=NS):
                self.others[1].reconcile(d.key)
            for p in self.store.list(ipam.IPPool, namespace=NS):
                self.pools.reconcile(p.key)


def _machine(lab: ChainLab) -> meta.ObjectKey:
    lab.host("h0")
    return lab.machine("m0", spec={"image": IMAGE, "dataTemplate": {"name": "tpl"}})


def _conditions(m3m: v2.Metal3Machine) -> dict[str, tuple[str, str, str]]:
    assert m3m.status is not None
    return {c.type: (c.status, c.reason, c.message) for c in m3m.status.conditions or ()}


def test_the_rendered_data_reaches_the_host_and_nothing_is_left_after_deletion() -> None:
    lab = ChainLab()
    lab.pool()
    key = _machine(lab)
    lab.run(key)
    claim = lab.store.get(v2.Metal3DataClaim, key)
    (owner,) = claim.metadata.owner_references
    assert (owner.kind, owner.name, owner.controller) == ("Metal3Machine", "m0", True)
    assert metal3machine.FINALIZER in claim.metadata.finalizers
    m3m = lab.m3m(key)
    assert m3m.status is not None and m3m.status.rendered_data is not None
    meta_name, network_name = metal3data.secret_names("m0")
    assert m3m.status.meta_data is not None and m3m.status.meta_data.name == meta_name
    host = lab.get_host("h0")
    assert host.spec.meta_data is not None and host.spec.meta_data.name == meta_name
    assert host.spec.network_data is not None and host.spec.network_data.name == network_name
    assert host.spec.image is not None  # provisioned only once the data is there
    assert _conditions(m3m)[metal3machine.METADATA][0] == "True"
    lab.set_state("h0", P.PROVISIONED)
    lab.run(key)
    assert lab.m3m(key).spec.provider_id == f"metal3://{NS}/h0/m0"  # type: ignore[union-attr]
    lab.store.delete(v2.Metal3Machine, key)
    lab.run(key)
    lab.set_state("h0", P.AVAILABLE)
    lab.run(key)
    assert lab.consumer("h0") is None
    for kind in (v2.Metal3Machine, v2.Metal3DataClaim, v2.Metal3Data, ipam.IPClaim,
                 ipam.IPAddress):
        assert lab.store.list(kind, namespace=NS) == [], kind.KIND
    secrets = {s.metadata.name for s in lab.store.list(meta.Secret, namespace=NS)}
    assert not secrets & {meta_name, network_name}


def test_a_missing_pool_is_named_on_the_machine_and_the_host_waits() -> None:
    lab = ChainLab()
    key = _machine(lab)
    lab.run(key)
    status, reason, message = _conditions(lab.m3m(key))[metal3machine.METADATA]
    assert (status, reason) == ("False", "WaitingForMetal3Data")
    assert "pool1" in message
    host = lab.get_host("h0")
    assert lab.consumer("h0") == "m0" and host.spec.image is None  # claimed, not provisioned
    assert lab.reconciler.reconcile(key) == outcome.Outcome.after(metal3machine.REQUEUE_S)
    lab.pool()  # the pool appears: rendering goes on, the host gets its data
    lab.run(key)
    assert lab.get_host("h0").spec.image is not None
    assert _conditions(lab.m3m(key))[metal3machine.METADATA][0] == "True"


def test_bmh_name_based_preallocation_names_the_ip_claim_after_the_host() -> None:
    for host_named, expected in ((False, "tpl-0-pool1"), (True, "h0-pool1")):
        lab = ChainLab(host_named_claims=host_named)
        lab.pool()
        key = _machine(lab)
        lab.run(key)
        assert [c.metadata.name for c in lab.store.list(ipam.IPClaim, namespace=NS)] == [
            expected]
