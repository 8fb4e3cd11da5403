"""The Metal3DataTemplate reconciler: indexes and Metal3Data per claim (memory store), plus a
stateful hypothesis test of claims created, deleted, force-deleted, and clusters paused."""

import contextlib

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from metalcubed.core import outcome
from metalcubed.core.api import capi, meta
from metalcubed.core.api.capm3 import v1beta2 as v2
from metalcubed.core.clock import ManualClock
from metalcubed.core.memory_store import MemoryStore
from metalcubed.core.reconcilers import metal3datatemplate as m3dt
from metalcubed.core.testing.fakes import RecordingEventRecorder

NS = "lab"
KEY = meta.ObjectKey(NS, "tpl")


class Lab:
    def __init__(self) -> None:
        self.clock = ManualClock()
        self.store = MemoryStore(clock=self.clock)
        self.reconciler = m3dt.Metal3DataTemplateReconciler(store=self.store, clock=self.clock)
        self.store.create(v2.Metal3DataTemplate(metadata=meta.ObjectMeta(name="tpl", namespace=NS),
                                                spec=v2.Metal3DataTemplateSpec()))
        self.cluster = self.store.create(capi.Cluster(
            metadata=meta.ObjectMeta(name="c1", namespace=NS)))

    def claim(self, name: str) -> None:
        self.store.create(v2.Metal3DataClaim(
            metadata=meta.ObjectMeta(name=name, namespace=NS,
                                     labels={capi.CLUSTER_NAME_LABEL: "c1"}),
            spec=v2.Metal3DataClaimSpec(template=v2.ObjectRef(name="tpl"))))

    def pause(self, paused: bool) -> None:
        cluster = self.store.get(capi.Cluster, self.cluster.key)
        self.store.update(cluster.model_copy(update={"spec": capi.ClusterSpec(paused=paused)}))

    def settle(self) -> None:
        for _ in range(4):
            self.reconciler.reconcile(KEY)

    def rendered(self, claim: str) -> str | None:
        got = self.store.get(v2.Metal3DataClaim, meta.ObjectKey(NS, claim))
        ref = got.status.rendered_data if got.status else None
        return ref.name if ref else None

    def datas(self) -> dict[str, v2.Metal3Data]:
        return {d.metadata.name: d for d in self.store.list(v2.Metal3Data, namespace=NS)}


def test_claims_get_the_lowest_free_index_and_a_metal3data_named_after_it() -> None:
    lab = Lab()
    for name in ("a", "b", "c"):
        lab.claim(name)
    lab.settle()
    assert [lab.rendered(n) for n in ("a", "b", "c")] == ["tpl-0", "tpl-1", "tpl-2"]
    data = lab.datas()["tpl-1"]
    assert data.spec is not None and (data.spec.index, data.spec.claim) == (
        1, v2.ObjectRef(name="b", namespace=NS))
    assert [(r.kind, r.controller) for r in data.metadata.owner_references] == [
        ("Metal3DataClaim", True)]
    lab.store.delete(v2.Metal3DataClaim, meta.ObjectKey(NS, "b"))
    lab.settle()
    assert set(lab.datas()) == {"tpl-0", "tpl-2"}
    lab.claim("d")
    lab.settle()
    assert lab.rendered("d") == "tpl-1"  # the gap is filled first
    template = lab.store.get(v2.Metal3DataTemplate, KEY)
    assert template.status is not None and template.status.indexes == (
        v2.IndexEntry(name="a", index=0), v2.IndexEntry(name="d", index=1),
        v2.IndexEntry(name="c", index=2))


def test_a_paused_cluster_gets_no_fresh_index_until_unpaused() -> None:
    """Upstream #3603: on the target of a move, fresh indexes collide with the moved data."""
    lab = Lab()
    lab.pause(True)
    lab.claim("a")
    assert lab.reconciler.reconcile(KEY) == outcome.Outcome.after(m3dt.REQUEUE_S)
    assert lab.rendered("a") is None and lab.datas() == {}
    lab.pause(False)
    lab.settle()
    assert lab.rendered("a") == "tpl-0"


def test_deleting_the_template_waits_for_its_claims() -> None:
    lab = Lab()
    lab.claim("a")
    lab.settle()
    lab.store.delete(v2.Metal3DataTemplate, KEY)
    lab.settle()
    assert lab.store.get(v2.Metal3DataTemplate, KEY).metadata.deletion_timestamp is not None
    lab.store.delete(v2.Metal3DataClaim, meta.ObjectKey(NS, "a"))
    lab.settle()
    assert lab.datas() == {}
    assert lab.store.list(v2.Metal3DataTemplate, namespace=NS) == []


NAMES = [f"c{i}" for i in range(6)]


class Indexes(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.lab = Lab()

    def _claims(self) -> list[v2.Metal3DataClaim]:
        return self.lab.store.list(v2.Metal3DataClaim, namespace=NS)

    @rule(name=st.sampled_from(NAMES))
    def create(self, name: str) -> None:
        with contextlib.suppress(outcome.Conflict):
            self.lab.claim(name)

    @precondition(lambda self: bool(self._claims()))
    @rule(data=st.data(), force=st.booleans())
    def delete(self, data: st.DataObject, force: bool) -> None:
        claim = data.draw(st.sampled_from(self._claims()))
        try:
            if force:
                claim = self.lab.store.update(claim.with_meta(finalizers=()))
            self.lab.store.delete(v2.Metal3DataClaim, claim.key)
        except outcome.NotFound:
            pass

    @rule(paused=st.booleans())
    def pause(self, paused: bool) -> None:
        self.lab.pause(paused)

    @rule()
    def reconcile(self) -> None:
        self.lab.reconciler.reconcile(KEY)

    @invariant()
    def one_data_per_claim_and_links_agree(self) -> None:
        datas = self.lab.datas()
        owners = [d.spec.claim.name for d in datas.values() if d.spec and d.spec.claim]
        assert len(owners) == len(set(owners)), owners
        for name, data in datas.items():
            assert data.spec is not None and name == f"tpl-{data.spec.index}"
        for claim in self._claims():
            ref = claim.status.rendered_data if claim.status else None
            if ref is not None and claim.metadata.deletion_timestamp is None:
                data = datas.get(str(ref.name))
                assert data is not None and data.spec is not None and data.spec.claim is not None
                assert data.spec.claim.name == claim.metadata.name

    def teardown(self) -> None:
        self.lab.pause(False)
        self.lab.settle()
        live = {c.metadata.name for c in self._claims()}
        assert not [c for c in self._claims() if c.metadata.deletion_timestamp is not None]
        datas = self.lab.datas()
        assert {d.spec.claim.name for d in datas.values() if d.spec and d.spec.claim} == live
        assert all(self.lab.rendered(n) is not None for n in live)
        template = self.lab.store.get(v2.Metal3DataTemplate, KEY)
        entries = (template.status.indexes if template.status else None) or ()
        assert {(e.name, e.index) for e in entries} == {
            (d.spec.claim.name, d.spec.index) for d in datas.values()
            if d.spec and d.spec.claim}


TestIndexes = Indexes.TestCase
TestIndexes.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)


def test_wiring_maps_claims_and_data_to_their_template() -> None:
    lab = Lab()
    lab.claim("a")
    lab.settle()
    claim = lab.store.get(v2.Metal3DataClaim, meta.ObjectKey(NS, "a"))
    for kind, obj in ((v2.Metal3DataClaim, claim), (v2.Metal3Data, lab.datas()["tpl-0"])):
        watch = next(w for w in m3dt.WIRING.watches if w.kind is kind)
        assert list(watch.keys(obj, lambda _n, _v: [])) == [KEY]


def test_a_claim_of_a_missing_template_says_so_and_is_served_once_it_exists() -> None:
    lab = Lab()
    events = RecordingEventRecorder()
    reconciler = m3dt.Metal3DataTemplateReconciler(store=lab.store, clock=lab.clock,
                                                   events=events)
    lab.store.create(v2.Metal3DataClaim(
        metadata=meta.ObjectMeta(name="lost", namespace=NS),
        spec=v2.Metal3DataClaimSpec(template=v2.ObjectRef(name="later"))))
    key = meta.ObjectKey(NS, "later")
    for _ in range(3):
        reconciler.reconcile(key)
    claim = lab.store.get(v2.Metal3DataClaim, meta.ObjectKey(NS, "lost"))
    assert claim.status == v2.Metal3DataClaimStatus(
        error_message="Metal3DataTemplate later not found")
    assert events.reasons(claim.key) == ["TemplateNotFound"]  # once, not every pass
    lab.store.create(v2.Metal3DataTemplate(metadata=meta.ObjectMeta(name="later", namespace=NS),
                                           spec=v2.Metal3DataTemplateSpec()))
    for _ in range(3):
        reconciler.reconcile(key)
    claim = lab.store.get(v2.Metal3DataClaim, claim.key)
    assert claim.status is not None and claim.status.error_message is None
    assert claim.status.rendered_data is not None
    assert claim.status.rendered_data.name == "later-0"


def test_a_force_deleted_template_leaks_no_metal3data() -> None:
    lab = Lab()
    lab.claim("a")
    lab.settle()
    template = lab.store.get(v2.Metal3DataTemplate, KEY)
    lab.store.update(template.with_meta(finalizers=()))
    lab.store.delete(v2.Metal3DataTemplate, KEY)
    lab.store.delete(v2.Metal3DataClaim, meta.ObjectKey(NS, "a"))
    lab.settle()
    assert lab.datas() == {}
    assert lab.store.list(v2.Metal3DataClaim, namespace=NS) == []
