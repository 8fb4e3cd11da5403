"""MemoryStore behaviour beyond the shared store contract (tests/contract runs that one).

These pin what is specific to the memory store or too fine for the contract: exact version
numbers, no-op writes, built-in vs custom kinds, GC details, history eviction, delivery order
with re-entrant handlers, admission plug-ins and the label selector grammar.
"""

from datetime import UTC, datetime
from random import Random
from typing import Any, ClassVar

import pytest

from metalcubed.core import clock, memory_store, outcome, ports
from metalcubed.core.api import meta


class WidgetSpec(meta.ApiModel):
    size: int = 0


class WidgetStatus(meta.ApiModel):
    phase: str = ""


class Widget(meta.Resource):
    API_VERSION: ClassVar[str] = "test.metalcubed.io/v1"
    KIND: ClassVar[str] = "Widget"
    PLURAL: ClassVar[str] = "widgets"

    spec: WidgetSpec = WidgetSpec()
    status: WidgetStatus = WidgetStatus()


class Gadget(meta.Resource):
    """Cluster-scoped custom resource without a status subresource."""

    API_VERSION: ClassVar[str] = "test.metalcubed.io/v1"
    KIND: ClassVar[str] = "Gadget"
    PLURAL: ClassVar[str] = "gadgets"
    NAMESPACED: ClassVar[bool] = False
    HAS_STATUS: ClassVar[bool] = False

    spec: WidgetSpec = WidgetSpec()
    status: WidgetStatus = WidgetStatus()


NS = "ns1"
T0 = datetime(2026, 3, 1, 12, 0, 0, 750000, tzinfo=UTC)


def widget(name: str, *, size: int = 0, ns: str = NS, **meta_fields: object) -> Widget:
    return Widget(
        metadata=meta.ObjectMeta(name=name, namespace=ns, **meta_fields),  # type: ignore[arg-type]
        spec=WidgetSpec(size=size),
    )


def owner_ref(obj: meta.Resource) -> meta.OwnerReference:
    return meta.OwnerReference(
        api_version=obj.API_VERSION, kind=obj.KIND, name=obj.metadata.name,
        uid=obj.metadata.uid or "",
    )


@pytest.fixture
def tick() -> clock.ManualClock:
    return clock.ManualClock(T0)


@pytest.fixture
def store(tick: clock.ManualClock) -> memory_store.MemoryStore:
    return memory_store.MemoryStore(clock=tick, rng=Random(7))


class Recorder:
    def __init__(self) -> None:
        self.events: list[ports.WatchEvent[meta.Resource]] = []

    def __call__(self, event: ports.WatchEvent[Any]) -> None:
        self.events.append(event)

    def summary(self) -> list[tuple[str, str, str]]:
        return [(e.type.value, e.object.metadata.name, e.object.metadata.resource_version or "")
                for e in self.events]


def test_memory_store_satisfies_the_store_port(store: memory_store.MemoryStore) -> None:
    port: ports.Store = store
    assert port is store


# --- versions, identity, timestamps --------------------------------------------------------


def test_resource_version_is_one_global_counter_across_kinds(
    store: memory_store.MemoryStore,
) -> None:
    a = store.create(widget("a"))
    s = store.create(meta.Secret(metadata=meta.ObjectMeta(name="s", namespace=NS)))
    b = store.update(a.model_copy(update={"spec": WidgetSpec(size=1)}))
    assert [a.metadata.resource_version, s.metadata.resource_version,
            b.metadata.resource_version] == ["1", "2", "3"]
    assert store.resource_version == "3"


def test_create_fills_server_fields_and_ignores_client_values(
    store: memory_store.MemoryStore,
) -> None:
    sent = widget("a", uid="forged", generation=9, creation_timestamp=datetime(2000, 1, 1,
                  tzinfo=UTC), deletion_timestamp=datetime(2000, 1, 1, tzinfo=UTC))
    got = store.create(sent)
    assert got.metadata.uid and got.metadata.uid != "forged"
    assert got.metadata.generation == 1
    assert got.metadata.creation_timestamp == T0.replace(microsecond=0)
    assert got.metadata.deletion_timestamp is None


def test_uids_are_deterministic_for_a_seed(tick: clock.ManualClock) -> None:
    def uids() -> list[str | None]:
        s = memory_store.MemoryStore(clock=tick, rng=Random(3))
        return [s.create(widget(n)).metadata.uid for n in ("a", "b")]

    first = uids()
    assert first == uids()
    assert first[0] != first[1]


def test_create_resets_status_of_a_status_subresource_kind(
    store: memory_store.MemoryStore,
) -> None:
    got = store.create(widget("a").model_copy(update={"status": WidgetStatus(phase="x")}))
    assert got.status == WidgetStatus()


def test_create_with_resource_version_is_invalid(store: memory_store.MemoryStore) -> None:
    with pytest.raises(outcome.Invalid) as err:
        store.create(widget("a", resource_version="5"))
    assert err.value.causes[0][0] == "metadata.resourceVersion"
    assert store.resource_version == "0"


@pytest.mark.parametrize("name", ["Upper", "under_score", "-lead", "trail-", "a" * 254],
                         ids=["upper", "underscore", "leading-dash", "trailing-dash", "too-long"])
def test_create_rejects_names_that_are_not_dns_subdomains(
    store: memory_store.MemoryStore, name: str
) -> None:
    with pytest.raises(outcome.Invalid):
        store.create(widget(name))


def test_create_of_namespaced_kind_without_namespace_is_invalid(
    store: memory_store.MemoryStore,
) -> None:
    with pytest.raises(outcome.Invalid):
        store.create(widget("a", ns=""))


def test_cluster_scoped_kind_drops_namespace_and_is_found_by_name(
    store: memory_store.MemoryStore,
) -> None:
    store.create(Gadget(metadata=meta.ObjectMeta(name="g", namespace="ignored")))
    got = store.get(Gadget, meta.ObjectKey("", "g"))
    assert got.metadata.namespace == ""
    assert [g.metadata.name for g in store.list(Gadget, namespace="whatever")] == ["g"]


def test_generate_name_appends_five_chars_and_retries_collisions(
    tick: clock.ManualClock,
) -> None:
    names = [memory_store.MemoryStore(clock=tick, rng=Random(1)).create(
        widget("", generate_name="w-")).metadata.name]
    store = memory_store.MemoryStore(clock=tick, rng=Random(1))
    store.create(widget(names[0]))  # the name the same seed generates first is taken
    got = store.create(widget("", generate_name="w-"))
    assert got.metadata.name.startswith("w-") and len(got.metadata.name) == 7
    assert got.metadata.name != names[0]
    assert set(got.metadata.name[2:]) <= set("bcdfghjklmnpqrstvwxz2456789")


# --- update --------------------------------------------------------------------------------


def test_identical_update_is_a_no_op_without_new_version_or_event(
    store: memory_store.MemoryStore,
) -> None:
    a = store.create(widget("a"))
    rec = Recorder()
    store.watch(Widget, rec, resource_version=a.metadata.resource_version)
    again = store.update(a)
    status_again = store.update_status(a)
    assert again is a and status_again is a
    assert store.resource_version == a.metadata.resource_version
    assert rec.events == []


def test_metadata_only_update_bumps_version_not_generation(
    store: memory_store.MemoryStore,
) -> None:
    a = store.create(widget("a"))
    b = store.update(a.with_meta(labels={"x": "1"}))
    assert b.metadata.generation == 1
    assert b.metadata.resource_version != a.metadata.resource_version


def test_update_ignores_client_generation_and_timestamps(
    store: memory_store.MemoryStore,
) -> None:
    a = store.create(widget("a"))
    b = store.update(a.with_meta(generation=50, creation_timestamp=datetime(2001, 1, 1,
                                 tzinfo=UTC), labels={"x": "1"}))
    assert b.metadata.generation == 1
    assert b.metadata.creation_timestamp == a.metadata.creation_timestamp


def test_update_with_other_uid_conflicts(store: memory_store.MemoryStore) -> None:
    a = store.create(widget("a"))
    with pytest.raises(outcome.Conflict):
        store.update(a.with_meta(uid="someone-else", labels={"x": "1"}))


def test_custom_resource_update_without_resource_version_is_invalid(
    store: memory_store.MemoryStore,
) -> None:
    a = store.create(widget("a"))
    with pytest.raises(outcome.Invalid) as err:
        store.update(a.with_meta(resource_version=None, labels={"x": "1"}))
    assert err.value.causes == [("metadata.resourceVersion", "must be specified for an update")]


def test_secret_update_without_resource_version_is_unconditional(
    store: memory_store.MemoryStore,
) -> None:
    s = store.create(meta.Secret(metadata=meta.ObjectMeta(name="s", namespace=NS)))
    store.update(s.with_meta(labels={"first": "1"}))
    got = store.update(s.model_copy(update={"data": {"k": "dg=="}}).with_meta(
        resource_version=None))
    assert got.data == {"k": "dg=="}
    assert got.metadata.generation is None


def test_secret_string_data_is_stored_as_base64_data(store: memory_store.MemoryStore) -> None:
    s = store.create(meta.Secret(metadata=meta.ObjectMeta(name="s", namespace=NS),
                                 data={"a": "eA=="}, string_data={"password": "pw"}))
    assert s.string_data is None
    assert s.data == {"a": "eA==", "password": "cHc="}
    assert s.value("password") == "pw"


def test_custom_resource_without_status_subresource_updates_status_and_bumps_generation(
    store: memory_store.MemoryStore,
) -> None:
    g = store.create(Gadget(metadata=meta.ObjectMeta(name="g")))
    got = store.update(g.model_copy(update={"status": WidgetStatus(phase="p")}))
    assert got.status.phase == "p"
    assert got.metadata.generation == 2
    with pytest.raises(outcome.NotFound):
        store.update_status(got)


def test_update_status_keeps_metadata_changes_out(store: memory_store.MemoryStore) -> None:
    a = store.create(widget("a", finalizers=("f",)))
    got = store.update_status(a.model_copy(update={"status": WidgetStatus(phase="p")})
                              .with_meta(finalizers=(), labels={"x": "y"}))
    assert got.metadata.finalizers == ("f",) and got.metadata.labels == {}
    assert got.status.phase == "p"


def test_rejected_write_does_not_consume_a_version(store: memory_store.MemoryStore) -> None:
    def reject(request: memory_store.AdmissionRequest[Widget]) -> None:
        if request.new is not None and request.new.spec.size > 5:
            raise outcome.Invalid("Widget", "x", [("spec.size", "too big")])

    store.add_admission(Widget, reject)
    a = store.create(widget("a"))
    with pytest.raises(outcome.Invalid):
        store.update(a.model_copy(update={"spec": WidgetSpec(size=6)}))
    b = store.update(a.model_copy(update={"spec": WidgetSpec(size=2)}))
    assert int(b.metadata.resource_version or 0) == int(a.metadata.resource_version or 0) + 1
    assert store.get(Widget, a.key).spec.size == 2


# --- deletion, finalizers, GC --------------------------------------------------------------


def test_delete_with_finalizers_sets_timestamp_once_and_bumps_generation_once(
    store: memory_store.MemoryStore, tick: clock.ManualClock
) -> None:
    a = store.create(widget("a", finalizers=("f",)))
    store.delete(Widget, a.key)
    first = store.get(Widget, a.key)
    tick.advance(30)
    store.delete(Widget, a.key)
    second = store.get(Widget, a.key)
    assert first.metadata.deletion_timestamp == T0.replace(microsecond=0)
    assert first.metadata.generation == 2
    assert second is first


def test_last_finalizer_removal_emits_one_deleted_event_with_last_state(
    store: memory_store.MemoryStore,
) -> None:
    a = store.create(widget("a", finalizers=("f",)))
    store.delete(Widget, a.key)
    deleting = store.get(Widget, a.key)
    rec = Recorder()
    store.watch(Widget, rec, resource_version=store.resource_version)
    returned = store.update(deleting.with_meta(finalizers=()))
    assert [e.type for e in rec.events] == [ports.WatchEventType.DELETED]
    assert rec.events[0].object is returned
    assert returned.metadata.finalizers == ("f",)
    assert returned.metadata.resource_version == store.resource_version
    with pytest.raises(outcome.NotFound):
        store.get(Widget, a.key)


def test_gc_cascades_through_a_chain(store: memory_store.MemoryStore) -> None:
    a = store.create(widget("a"))
    b = store.create(widget("b", owner_references=(owner_ref(a),)))
    store.create(widget("c", owner_references=(owner_ref(b),)))
    store.delete(Widget, a.key)
    assert store.list(Widget) == []


def test_gc_waits_for_owner_finalizers(store: memory_store.MemoryStore) -> None:
    a = store.create(widget("a", finalizers=("f",)))
    store.create(widget("b", owner_references=(owner_ref(a),)))
    store.delete(Widget, a.key)
    assert [w.metadata.name for w in store.list(Widget)] == ["a", "b"]
    store.update(store.get(Widget, a.key).with_meta(finalizers=()))
    assert store.list(Widget) == []


def test_gc_visits_dependents_in_the_order_they_were_created(
    store: memory_store.MemoryStore,
) -> None:
    """A seeded fleet run repeats only if the collector's order does not come from hashing
    (a set of (kind, namespace, name): the kind's hash is its address, new each process)."""
    a = store.create(widget("a"))
    names = [f"d{i:02d}-{chr(ord('z') - i)}" for i in range(16)]
    for name in names:
        store.create(widget(name, finalizers=("keep",), owner_references=(owner_ref(a),)))
    rec = Recorder()
    store.watch(Widget, rec, resource_version=store.resource_version)
    store.delete(Widget, a.key)
    marked = [e.object.metadata.name for e in rec.events
              if e.type is ports.WatchEventType.MODIFIED]
    assert marked == names


def test_gc_marks_dependent_with_finalizer_as_deleting(store: memory_store.MemoryStore) -> None:
    a = store.create(widget("a"))
    b = store.create(widget("b", finalizers=("keep",), owner_references=(owner_ref(a),)))
    store.delete(Widget, a.key)
    assert store.get(Widget, b.key).metadata.deletion_timestamp is not None


def test_gc_removes_dangling_reference_when_another_owner_remains(
    store: memory_store.MemoryStore,
) -> None:
    a = store.create(widget("a"))
    o = store.create(widget("o"))
    store.create(widget("b", owner_references=(owner_ref(a), owner_ref(o))))
    store.delete(Widget, a.key)
    refs = store.get(Widget, meta.ObjectKey(NS, "b")).metadata.owner_references
    assert [r.name for r in refs] == ["o"]


def test_gc_collects_object_created_with_only_dangling_owners(
    store: memory_store.MemoryStore,
) -> None:
    ghost = meta.OwnerReference(api_version=Widget.API_VERSION, kind="Widget", name="ghost",
                                uid="00000000-0000-4000-8000-000000000000")
    store.create(widget("b", owner_references=(ghost,)))
    with pytest.raises(outcome.NotFound):
        store.get(Widget, meta.ObjectKey(NS, "b"))


def test_owner_in_another_namespace_does_not_count(store: memory_store.MemoryStore) -> None:
    a = store.create(widget("a", ns="other"))
    store.create(widget("b", owner_references=(owner_ref(a),)))
    with pytest.raises(outcome.NotFound):
        store.get(Widget, meta.ObjectKey(NS, "b"))


def test_cluster_scoped_owner_keeps_namespaced_dependent(store: memory_store.MemoryStore) -> None:
    g = store.create(Gadget(metadata=meta.ObjectMeta(name="g")))
    store.create(widget("b", owner_references=(owner_ref(g),)))
    assert store.get(Widget, meta.ObjectKey(NS, "b"))
    store.delete(Gadget, g.key)
    with pytest.raises(outcome.NotFound):
        store.get(Widget, meta.ObjectKey(NS, "b"))


def test_garbage_collection_can_be_switched_off(tick: clock.ManualClock) -> None:
    store = memory_store.MemoryStore(clock=tick, garbage_collection=False)
    a = store.create(widget("a"))
    store.create(widget("b", owner_references=(owner_ref(a),)))
    store.delete(Widget, a.key)
    assert [w.metadata.name for w in store.list(Widget)] == ["b"]


def test_two_controller_owner_references_are_invalid(store: memory_store.MemoryStore) -> None:
    a = store.create(widget("a"))
    o = store.create(widget("o"))
    refs = tuple(owner_ref(x).model_copy(update={"controller": True}) for x in (a, o))
    with pytest.raises(outcome.Invalid):
        store.create(widget("b", owner_references=refs))


# --- watch ---------------------------------------------------------------------------------


def test_resume_older_than_history_is_gone(tick: clock.ManualClock) -> None:
    store = memory_store.MemoryStore(clock=tick, history_size=3)
    a = store.create(widget("a"))
    for size in range(1, 4):
        a = store.update(a.model_copy(update={"spec": WidgetSpec(size=size)}))
    # history holds versions 2..4: resuming at 1 still needs 2.. (ok); at 0 needs 1 (evicted).
    rec = Recorder()
    store.watch(Widget, rec, resource_version="1")
    assert [e.object.metadata.resource_version for e in rec.events] == ["2", "3", "4"]
    store.create(widget("b"))
    with pytest.raises(outcome.Gone):
        store.watch(Widget, Recorder(), resource_version="1")


def test_history_is_per_kind(tick: clock.ManualClock) -> None:
    store = memory_store.MemoryStore(clock=tick, history_size=2)
    store.create(widget("a"))
    for i in range(5):
        store.create(meta.Secret(metadata=meta.ObjectMeta(name=f"s{i}", namespace=NS)))
    rec = Recorder()
    store.watch(Widget, rec, resource_version="0")
    store.watch(Widget, Recorder(), resource_version="1")  # Secrets did not evict Widgets
    assert [e.object.metadata.name for e in rec.events] == ["a"]


def test_handler_writes_are_delivered_after_the_current_event_everywhere(
    store: memory_store.MemoryStore,
) -> None:
    first, second = Recorder(), Recorder()

    def echo(event: ports.WatchEvent[Widget]) -> None:
        first(event)
        if event.type is ports.WatchEventType.ADDED and event.object.metadata.name == "a":
            store.create(widget("b"))

    store.watch(Widget, echo)
    store.watch(Widget, second)
    store.create(widget("a"))
    assert first.summary() == second.summary() == [("ADDED", "a", "1"), ("ADDED", "b", "2")]


def test_watch_started_in_a_handler_sees_each_event_once(store: memory_store.MemoryStore) -> None:
    late = Recorder()

    def start_late(event: ports.WatchEvent[Widget]) -> None:
        if event.object.metadata.name == "a":
            store.watch(Widget, late)
            store.create(widget("c"))

    store.watch(Widget, start_late)
    store.create(widget("a"))
    assert late.summary() == [("ADDED", "a", "1"), ("ADDED", "c", "2")]


def test_handler_error_propagates_after_everyone_got_the_event(
    store: memory_store.MemoryStore,
) -> None:
    rec = Recorder()

    def boom(event: ports.WatchEvent[Widget]) -> None:
        raise RuntimeError("handler failed")

    store.watch(Widget, boom)
    store.watch(Widget, rec)
    with pytest.raises(RuntimeError):
        store.create(widget("a"))
    assert store.get(Widget, meta.ObjectKey(NS, "a"))
    assert rec.summary() == [("ADDED", "a", "1")]


def test_stopped_watch_gets_nothing_and_stop_is_idempotent(
    store: memory_store.MemoryStore,
) -> None:
    rec = Recorder()
    w = store.watch(Widget, rec)
    w.stop()
    w.stop()
    store.create(widget("a"))
    assert rec.events == []


def test_watch_namespace_filter(store: memory_store.MemoryStore) -> None:
    rec = Recorder()
    store.create(widget("old", ns="other"))
    store.watch(Widget, rec, namespace=NS)
    store.create(widget("a", ns="other"))
    store.create(widget("b"))
    assert [n for _, n, _ in rec.summary()] == ["b"]


def test_watch_with_malformed_version_is_invalid(store: memory_store.MemoryStore) -> None:
    with pytest.raises(outcome.Invalid):
        store.watch(Widget, Recorder(), resource_version="abc")


# --- admission and validation --------------------------------------------------------------


def test_admission_sees_operation_subresource_and_objects(
    store: memory_store.MemoryStore,
) -> None:
    seen: list[tuple[str, str, bool, bool]] = []

    def hook(req: memory_store.AdmissionRequest[Widget]) -> None:
        seen.append((req.operation.value, req.subresource, req.old is not None,
                     req.new is not None))

    store.add_admission(Widget, hook)
    a = store.create(widget("a"))
    a = store.update(a.with_meta(labels={"x": "1"}))
    store.update_status(a.model_copy(update={"status": WidgetStatus(phase="p")}))
    store.delete(Widget, a.key)
    assert seen == [("CREATE", "", False, True), ("UPDATE", "", True, True),
                    ("UPDATE", "status", True, True), ("DELETE", "", True, False)]


def test_validate_hook_rejects_before_anything_is_stored(tick: clock.ManualClock) -> None:
    def no_big(obj: meta.Resource) -> None:
        if isinstance(obj, Widget) and obj.spec.size > 3:
            raise outcome.Invalid("Widget", str(obj.key), [("spec.size", "must be <= 3")])

    store = memory_store.MemoryStore(clock=tick, validate=no_big)
    rec = Recorder()
    store.watch(Widget, rec)
    with pytest.raises(outcome.Invalid):
        store.create(widget("a", size=4))
    assert store.list(Widget) == [] and rec.events == []


def test_admission_rejecting_delete_keeps_the_object(store: memory_store.MemoryStore) -> None:
    def no_delete(req: memory_store.AdmissionRequest[Widget]) -> None:
        if req.operation is memory_store.Operation.DELETE:
            raise outcome.Invalid("Widget", "a", [("", "protected")])

    store.add_admission(Widget, no_delete)
    a = store.create(widget("a"))
    with pytest.raises(outcome.Invalid):
        store.delete(Widget, a.key)
    assert store.get(Widget, a.key) is a


# --- list and selectors --------------------------------------------------------------------


def test_list_is_sorted_by_namespace_then_name(store: memory_store.MemoryStore) -> None:
    for ns, name in [("b", "y"), ("a", "z"), ("b", "x"), ("a", "c")]:
        store.create(widget(name, ns=ns))
    assert [(w.metadata.namespace, w.metadata.name) for w in store.list(Widget)] == [
        ("a", "c"), ("a", "z"), ("b", "x"), ("b", "y")]
    store.create(widget("b", ns="a"))
    assert [w.metadata.name for w in store.list(Widget, namespace="a")] == ["b", "c", "z"]


LABELS = {"one": {"env": "prod", "tier": "web", "n": "3"}, "two": {"env": "dev", "n": "10"},
          "three": {"tier": "db"}}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("env=prod", {"one"}),
        ("env==prod", {"one"}),
        ("env!=prod", {"two", "three"}),
        ("env", {"one", "two"}),
        ("!env", {"three"}),
        ("env in (prod, dev)", {"one", "two"}),
        ("tier notin (web)", {"two", "three"}),
        ("env,tier", {"one"}),
        (" env = prod , tier in (web,db) ", {"one"}),
        ("n>5", {"two"}),
        ("n<5", {"one"}),
        ("", {"one", "two", "three"}),
    ],
    ids=["eq", "double-eq", "neq-includes-missing", "exists", "not-exists", "in", "notin",
         "and", "whitespace", "gt", "lt", "empty-is-everything"],
)
def test_list_filters_by_label_selector(
    store: memory_store.MemoryStore, selector: str, expected: set[str]
) -> None:
    """The grammar itself is tested in test_labels.py; here: the store applies it."""
    for name, labels in LABELS.items():
        store.create(widget(name, labels=labels))
    assert {w.metadata.name for w in store.list(Widget, label_selector=selector)} == expected


def test_list_with_malformed_selector_is_invalid_with_the_parsers_message(
    store: memory_store.MemoryStore,
) -> None:
    with pytest.raises(outcome.Invalid) as caught:
        store.list(Widget, label_selector="a b")
    assert caught.value.causes == [
        ("labelSelector",
         "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt")]


def test_is_custom_resource_by_group() -> None:
    assert memory_store.is_custom_resource(Widget)
    assert not memory_store.is_custom_resource(meta.Secret)


def test_equality_selected_lists_follow_label_changes_and_deletes(
    store: memory_store.MemoryStore,
) -> None:
    """`k=v` lists read a label index: they must answer exactly what a scan would, in the
    same (namespace, name) order, as labels come, change and go."""
    for ns in ("b", "a"):
        for name in ("z", "m", "c"):
            store.create(widget(name, ns=ns, labels={"cluster": "c1", "role": name}))
    store.create(widget("other", labels={"cluster": "c2"}))

    def names(selector: str, namespace: str | None = None) -> list[str]:
        return [f"{w.metadata.namespace}/{w.metadata.name}"
                for w in store.list(Widget, namespace=namespace, label_selector=selector)]

    assert names("cluster=c1") == ["a/c", "a/m", "a/z", "b/c", "b/m", "b/z"]
    assert names("cluster==c1", namespace="b") == ["b/c", "b/m", "b/z"]
    assert names("cluster in (c1),role!=m") == ["a/c", "a/z", "b/c", "b/z"]
    moved = store.get(Widget, meta.ObjectKey("a", "m"))
    store.update(moved.with_meta(labels={"cluster": "c2"}))
    store.delete(Widget, meta.ObjectKey("b", "z"))
    assert names("cluster=c1") == ["a/c", "a/z", "b/c", "b/m"]
    assert names("cluster=c2") == ["a/m", f"{NS}/other"]
    assert names("cluster=c3") == []
