"""The Store contract: one suite every `ports.Store` implementation must pass unchanged.

DESIGN rule 3: the memory store (fleet model, embedded default) and the Kubernetes store behave
the same, so a reconciler that works on one works on the other. This module is that promise as
executable checks. It assumes nothing a real API server would not give:

- watch delivery may be asynchronous: every check on watch events goes through
  `harness.wait_until(predicate, timeout_s)`, which the implementation's fixture provides (the
  memory store's checks the predicate once; a kube fixture polls);
- objects may already exist in the namespace (other tests, other runs): every test makes its
  own names with `harness.name(...)` and only looks at those;
- resourceVersions are opaque strings: only equality and event order are checked;
- garbage collection needs kube-controller-manager and "too old" resourceVersions need
  compaction, so both are opt-in (`garbage_collection`, `gone_after_writes`);
- reads see the store's own writes at once (read-your-writes), with one declared exception:
  a store that reads from a watch-fed cache (controllers/kube/informer.py `CachedStore`) caches
  what create and update return, but `delete` returns nothing to cache, so its reads show a
  deletion only once the watch delivers it. Such a store sets `delete_read_at_once=False` and
  the deletion checks wait for the read (`harness.read_deleting`) instead of reading at once;
  everything else about the deletion is checked the same.

Use it from a test module (pytest collects the inherited `test_*` methods):

    class TestMyStoreContract(store_contract.StoreContract):
        @pytest.fixture
        def harness(self) -> store_contract.StoreHarness:
            return store_contract.StoreHarness(
                store=MyStore(...), namespace="contract-1",
                kind=store_contract.baremetalhost_kind(), wait_until=poll)

The kind under test must be a custom resource with a `spec` and a status subresource
(BareMetalHost by default, imported lazily); Secrets cover the built-in kind rules.
This module imports no test framework, so core/ stays free of it.
"""

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from metalcubed.core import outcome, ports
from metalcubed.core.api import meta

R = TypeVar("R", bound=meta.Resource)
E = TypeVar("E", bound=BaseException)

WaitUntil = Callable[[Callable[[], bool], float], None]
"""wait_until(predicate, timeout_s): return once predicate() is true, raise AssertionError
when it is still false after timeout_s."""

TIMEOUT_S = 10.0
"""How long a check waits for asynchronous effects (watch events, GC)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractKind(Generic[R]):
    """How the suite builds and changes objects of the kind under test."""

    kind: type[R]
    new: Callable[[meta.ObjectMeta], R]
    """A valid object with this metadata (spec filled, status default)."""
    with_spec: Callable[[R, int], R]
    """A copy whose spec is distinct for every n (and different from `new`'s for n >= 1)."""
    with_status: Callable[[R, int], R]
    """A copy whose status is distinct for every n (and different from the default for n >= 1)."""


def baremetalhost_kind() -> ContractKind[Any]:
    """The default kind: BareMetalHost (spec.description and status.errorCount are varied)."""
    from metalcubed.core.api import baremetalhost as bmh

    def new(metadata: meta.ObjectMeta) -> bmh.BareMetalHost:
        return bmh.BareMetalHost(metadata=metadata, spec=bmh.BareMetalHostSpec(online=False))

    def with_spec(host: bmh.BareMetalHost, n: int) -> bmh.BareMetalHost:
        spec = host.spec.model_copy(update={"description": f"contract revision {n}"})
        return host.model_copy(update={"spec": spec})

    def with_status(host: bmh.BareMetalHost, n: int) -> bmh.BareMetalHost:
        status = host.status.model_copy(update={"error_count": n})
        return host.model_copy(update={"status": status})

    return ContractKind(kind=bmh.BareMetalHost, new=new, with_spec=with_spec,
                        with_status=with_status)


@dataclass(kw_only=True)
class StoreHarness:
    """What an implementation's fixture hands the suite."""

    store: ports.Store
    namespace: str
    """An existing namespace the test may write to."""
    kind: ContractKind[Any]
    wait_until: WaitUntil
    garbage_collection: bool = True
    """Whether dependents are garbage-collected (false for an API server without a GC)."""
    gone_after_writes: int | None = None
    """After this many further writes of the kind, a watch resumed from an earlier version is
    Gone; None skips that check."""
    delete_read_at_once: bool = True
    """Whether a read right after `delete` shows the deletion (module docstring). False for a
    cache fed by an asynchronous watch: the suite then waits for the read."""
    prefix: str = "contract"
    _counter: Iterator[int] = field(default_factory=itertools.count)

    def name(self, what: str) -> str:
        """A name no other object of this run uses."""
        return f"{self.prefix}-{what}-{next(self._counter)}"

    def object_meta(self, what: str, **fields: Any) -> meta.ObjectMeta:
        return meta.ObjectMeta(name=self.name(what), namespace=self.namespace, **fields)

    def create(self, what: str, **fields: Any) -> Any:
        """Create an object of the kind under test with fresh name and these metadata fields."""
        return self.store.create(self.kind.new(self.object_meta(what, **fields)))

    def secret(self, what: str, **fields: Any) -> meta.Secret:
        return meta.Secret(metadata=self.object_meta(what, **fields), data={"k": "dg=="})

    def read_deleting(self, key: meta.ObjectKey) -> Any:
        """The object as read after `delete` marked it, with its deletionTimestamp: at once, or
        (delete_read_at_once False) once the store's reads show it."""
        if not self.delete_read_at_once:
            self.wait_until(lambda: self.store.get(self.kind.kind, key).metadata
                            .deletion_timestamp is not None, TIMEOUT_S)
        return self.store.get(self.kind.kind, key)


class Events:
    """A watch handler that keeps what it is given (list.append is thread-safe)."""

    def __init__(self) -> None:
        self.received: list[ports.WatchEvent[meta.Resource]] = []

    def __call__(self, event: ports.WatchEvent[Any]) -> None:
        self.received.append(event)

    def about(self, *names: str) -> list[tuple[ports.WatchEventType, str]]:
        """(type, name) of the events about these names, in arrival order."""
        return [(e.type, e.object.metadata.name) for e in self.received
                if e.object.metadata.name in names]

    def versions(self, name: str) -> list[str | None]:
        return [e.object.metadata.resource_version for e in self.received
                if e.object.metadata.name == name]


@contextmanager
def raises(error: type[E]) -> Iterator[list[E]]:
    """Like pytest.raises without pytest: the list holds the exception afterwards."""
    caught: list[E] = []
    try:
        yield caught
    except error as exc:
        caught.append(exc)
        return
    raise AssertionError(f"{error.__name__} was not raised")


def _missing(h: StoreHarness, kind: type[meta.Resource], name: str) -> Callable[[], bool]:
    def gone() -> bool:
        try:
            h.store.get(kind, meta.ObjectKey(h.namespace, name))
        except outcome.NotFound:
            return True
        return False

    return gone


def _owner(obj: meta.Resource) -> meta.OwnerReference:
    return meta.OwnerReference(api_version=obj.API_VERSION, kind=obj.KIND,
                               name=obj.metadata.name, uid=obj.metadata.uid or "")


class StoreContract:
    """The contract as pytest test methods; a subclass provides the `harness` fixture."""

    # --- create, get, list -----------------------------------------------------------------

    def test_create_sets_server_fields(self, harness: StoreHarness) -> None:
        h = harness
        created = h.create("server-fields")
        m = created.metadata
        assert m.uid and m.resource_version and m.creation_timestamp is not None
        assert m.generation == 1
        assert m.deletion_timestamp is None
        assert h.store.get(h.kind.kind, created.key) == created

    def test_create_of_existing_name_conflicts(self, harness: StoreHarness) -> None:
        h = harness
        created = h.create("duplicate")
        with raises(outcome.Conflict):
            h.store.create(h.kind.new(meta.ObjectMeta(name=created.metadata.name,
                                                      namespace=h.namespace)))

    def test_generate_name_makes_a_fresh_name(self, harness: StoreHarness) -> None:
        h = harness
        prefix = h.name("gen") + "-"
        first = h.store.create(h.kind.new(meta.ObjectMeta(generate_name=prefix,
                                                          namespace=h.namespace)))
        second = h.store.create(h.kind.new(meta.ObjectMeta(generate_name=prefix,
                                                           namespace=h.namespace)))
        for obj in (first, second):
            assert obj.metadata.name.startswith(prefix)
            assert len(obj.metadata.name) == len(prefix) + 5
        assert first.metadata.name != second.metadata.name

    def test_list_by_namespace_returns_created_objects(self, harness: StoreHarness) -> None:
        h = harness
        names = {h.create("list").metadata.name for _ in range(3)}
        in_namespace = h.store.list(h.kind.kind, namespace=h.namespace)
        everywhere = h.store.list(h.kind.kind)
        assert names <= {o.metadata.name for o in in_namespace}
        assert all(o.metadata.namespace == h.namespace for o in in_namespace)
        assert names <= {o.metadata.name for o in everywhere
                         if o.metadata.namespace == h.namespace}

    def test_missing_object_is_not_found(self, harness: StoreHarness) -> None:
        h = harness
        key = meta.ObjectKey(h.namespace, h.name("missing"))
        with raises(outcome.NotFound):
            h.store.get(h.kind.kind, key)
        with raises(outcome.NotFound):
            h.store.delete(h.kind.kind, key)
        ghost = h.kind.new(meta.ObjectMeta(name=key.name, namespace=h.namespace,
                                           resource_version="1"))
        with raises(outcome.NotFound):
            h.store.update(ghost)
        with raises(outcome.NotFound):
            h.store.update_status(ghost)

    # --- update, resourceVersion, generation ------------------------------------------------

    def test_update_changes_resource_version(self, harness: StoreHarness) -> None:
        h = harness
        created = h.create("rv")
        updated = h.store.update(created.with_meta(labels={"touched": "yes"}))
        assert updated.metadata.resource_version != created.metadata.resource_version
        assert updated.metadata.labels == {"touched": "yes"}
        assert h.store.get(h.kind.kind, created.key) == updated

    def test_stale_update_conflicts(self, harness: StoreHarness) -> None:
        h = harness
        created = h.create("stale")
        h.store.update(h.kind.with_spec(created, 1))
        with raises(outcome.Conflict):
            h.store.update(h.kind.with_spec(created, 2))
        with raises(outcome.Conflict):
            h.store.update_status(h.kind.with_status(created, 1))
        assert h.store.get(h.kind.kind, created.key).spec == h.kind.with_spec(created, 1).spec

    def test_custom_resource_update_needs_resource_version(self, harness: StoreHarness) -> None:
        h = harness
        created = h.create("no-rv")
        with raises(outcome.Invalid):
            h.store.update(h.kind.with_spec(created, 1).with_meta(resource_version=None))

    def test_secret_update_without_resource_version_is_unconditional(
        self, harness: StoreHarness
    ) -> None:
        h = harness
        created = h.store.create(h.secret("unconditional"))
        h.store.update(created.with_meta(labels={"first": "writer"}))
        blind = created.model_copy(update={"data": {"k": "Yg=="}}).with_meta(
            resource_version=None)
        got = h.store.update(blind)
        assert got.data == {"k": "Yg=="}
        assert h.store.get(meta.Secret, created.key).data == {"k": "Yg=="}

    def test_generation_bumps_on_spec_change_only(self, harness: StoreHarness) -> None:
        h = harness
        created = h.create("generation")
        relabelled = h.store.update(created.with_meta(labels={"a": "b"}))
        assert relabelled.metadata.generation == 1
        respecced = h.store.update(h.kind.with_spec(relabelled, 1))
        assert respecced.metadata.generation == 2
        restatused = h.store.update_status(h.kind.with_status(respecced, 1))
        assert restatused.metadata.generation == 2
        assert restatused.metadata.resource_version != respecced.metadata.resource_version

    def test_update_does_not_write_status(self, harness: StoreHarness) -> None:
        h = harness
        created = h.create("status-kept")
        default_status = created.status
        got = h.store.update(h.kind.with_status(h.kind.with_spec(created, 1), 1))
        assert got.status == default_status
        assert got.spec == h.kind.with_spec(created, 1).spec
        assert h.store.get(h.kind.kind, created.key).status == default_status

    def test_update_status_writes_only_status(self, harness: StoreHarness) -> None:
        h = harness
        created = h.create("status-only")
        wanted = h.kind.with_status(created, 1)
        sneaky = h.kind.with_spec(wanted, 1).with_meta(labels={"sneaky": "yes"})
        got = h.store.update_status(sneaky)
        assert got.status == wanted.status
        assert got.spec == created.spec
        assert got.metadata.labels == {}
        assert got.metadata.generation == 1
        assert h.store.get(h.kind.kind, created.key) == got

    def test_create_does_not_write_status(self, harness: StoreHarness) -> None:
        h = harness
        wanted = h.kind.with_status(h.kind.new(h.object_meta("create-status")), 1)
        got = h.store.create(wanted)
        assert got.status != wanted.status

    # --- deletion and finalizers -------------------------------------------------------------

    def test_delete_without_finalizers_removes(self, harness: StoreHarness) -> None:
        h = harness
        created = h.create("delete")
        h.store.delete(h.kind.kind, created.key)
        h.wait_until(_missing(h, h.kind.kind, created.metadata.name), TIMEOUT_S)

    def test_delete_with_finalizer_marks_deleting(self, harness: StoreHarness) -> None:
        h = harness
        created = h.create("finalizer", finalizers=("contract.metalcubed.io/hold",))
        h.store.delete(h.kind.kind, created.key)
        deleting = h.read_deleting(created.key)
        assert deleting.metadata.deletion_timestamp is not None
        assert deleting.metadata.finalizers == ("contract.metalcubed.io/hold",)
        assert deleting.metadata.generation == 2
        h.store.delete(h.kind.kind, created.key)  # again: still there, nothing changes
        assert h.store.get(h.kind.kind, created.key) == deleting

    def test_no_new_finalizer_on_deleting_object(self, harness: StoreHarness) -> None:
        h = harness
        created = h.create("late-finalizer", finalizers=("contract.metalcubed.io/hold",))
        h.store.delete(h.kind.kind, created.key)
        deleting = h.read_deleting(created.key)
        more = (*deleting.metadata.finalizers, "contract.metalcubed.io/late")
        with raises(outcome.Invalid):
            h.store.update(deleting.with_meta(finalizers=more))

    def test_removing_last_finalizer_deletes(self, harness: StoreHarness) -> None:
        h = harness
        created = h.create("release", finalizers=("contract.metalcubed.io/a",
                                                   "contract.metalcubed.io/b"))
        h.store.delete(h.kind.kind, created.key)
        deleting = h.read_deleting(created.key)
        one_left = h.store.update(deleting.with_meta(finalizers=("contract.metalcubed.io/b",)))
        assert one_left.metadata.deletion_timestamp == deleting.metadata.deletion_timestamp
        h.store.update(one_left.with_meta(finalizers=()))
        h.wait_until(_missing(h, h.kind.kind, created.metadata.name), TIMEOUT_S)

    def test_dependents_are_garbage_collected(self, harness: StoreHarness) -> None:
        h = harness
        if not h.garbage_collection:
            return
        owner = h.create("owner")
        child = h.create("child", owner_references=(_owner(owner),))
        secret = h.store.create(h.secret("child-secret", owner_references=(_owner(owner),)))
        h.store.delete(h.kind.kind, owner.key)
        h.wait_until(_missing(h, h.kind.kind, child.metadata.name), TIMEOUT_S)
        h.wait_until(_missing(h, meta.Secret, secret.metadata.name), TIMEOUT_S)

    # --- add_owner: shared objects, many owners ------------------------------------------------

    def test_add_owner_from_a_stale_copy_never_conflicts(self, harness: StoreHarness) -> None:
        h = harness
        owners = [h.create(f"co-owner{i}") for i in range(4)]
        shared = h.store.create(h.secret("shared", owner_references=(_owner(owners[0]),)))
        for owner in owners[1:]:  # every writer holds the copy read before the others wrote
            got = h.store.add_owner(shared, _owner(owner))
            assert _owner(owner) in got.metadata.owner_references
        refs = h.store.get(meta.Secret, shared.key).metadata.owner_references
        assert [r.uid for r in refs] == [o.metadata.uid for o in owners]

    def test_add_owner_twice_keeps_one_reference(self, harness: StoreHarness) -> None:
        h = harness
        first, second = h.create("twice-a"), h.create("twice-b")
        shared = h.store.create(h.secret("twice", owner_references=(_owner(first),)))
        h.store.add_owner(shared, _owner(second))
        again = h.store.add_owner(shared, _owner(second))  # a retry with the same stale copy
        assert [r.uid for r in again.metadata.owner_references] == \
            [first.metadata.uid, second.metadata.uid]
        current = h.store.get(meta.Secret, shared.key)
        assert h.store.add_owner(current, _owner(second)) == current  # nothing to write

    def test_add_owner_starts_the_list_and_replaces_a_re_created_owner(
        self, harness: StoreHarness,
    ) -> None:
        h = harness
        keep, owner = h.create("kept-owner"), h.create("first-owner")
        lone = h.store.create(h.secret("lone"))
        got = h.store.add_owner(lone, _owner(keep))
        assert got.metadata.owner_references == (_owner(keep),)
        got = h.store.add_owner(got, _owner(owner))
        h.store.delete(h.kind.kind, owner.key)
        h.wait_until(_missing(h, h.kind.kind, owner.metadata.name), TIMEOUT_S)
        renewed = _owner(h.store.create(h.kind.new(meta.ObjectMeta(
            name=owner.metadata.name, namespace=h.namespace))))  # same name, another uid
        h.store.add_owner(got, renewed)
        assert h.store.get(meta.Secret, lone.key).metadata.owner_references == \
            (_owner(keep), renewed)

    def test_add_owner_of_a_missing_object_is_not_found(self, harness: StoreHarness) -> None:
        h = harness
        owner = h.create("orphan-owner")
        with raises(outcome.NotFound):
            h.store.add_owner(h.secret("never-created"), _owner(owner))

    # --- label selectors ----------------------------------------------------------------------

    def test_label_selectors(self, harness: StoreHarness) -> None:
        h = harness
        run = h.name("sel")
        objects = {
            "prod-web": {"env": "prod", "tier": "web"},
            "dev-web": {"env": "dev", "tier": "web"},
            "db": {"tier": "db"},
        }
        names = {}
        for what, labels in objects.items():
            names[h.create(what, labels={"run": run, **labels}).metadata.name] = what
        cases = {
            "env=prod": {"prod-web"},
            "env==dev": {"dev-web"},
            "env!=prod": {"dev-web", "db"},
            "env": {"prod-web", "dev-web"},
            "!env": {"db"},
            "env in (prod,dev)": {"prod-web", "dev-web"},
            "tier notin (web)": {"db"},
            "env=prod,tier=web": {"prod-web"},
        }
        for selector, expected in cases.items():
            found = h.store.list(h.kind.kind, namespace=h.namespace,
                                 label_selector=f"run={run},{selector}")
            assert {names[o.metadata.name] for o in found} == expected, selector

    # --- watch ---------------------------------------------------------------------------------

    def test_watch_sees_added_modified_deleted_in_order(self, harness: StoreHarness) -> None:
        h = harness
        events = Events()
        watch = h.store.watch(h.kind.kind, events, namespace=h.namespace)
        try:
            created = h.create("watched")
            name = created.metadata.name
            updated = h.store.update(h.kind.with_spec(created, 1))
            h.store.delete(h.kind.kind, created.key)
            h.wait_until(lambda: len(events.about(name)) >= 3, TIMEOUT_S)
            types = ports.WatchEventType
            assert events.about(name) == [(types.ADDED, name), (types.MODIFIED, name),
                                          (types.DELETED, name)]
            versions = events.versions(name)
            assert versions[:2] == [created.metadata.resource_version,
                                    updated.metadata.resource_version]
            assert versions[2] not in versions[:2]
        finally:
            watch.stop()

    def test_watch_without_version_starts_with_existing_objects(
        self, harness: StoreHarness
    ) -> None:
        h = harness
        existing = h.create("existing")
        name = existing.metadata.name
        events = Events()
        watch = h.store.watch(h.kind.kind, events, namespace=h.namespace)
        try:
            h.wait_until(lambda: len(events.about(name)) >= 1, TIMEOUT_S)
            assert events.about(name) == [(ports.WatchEventType.ADDED, name)]
        finally:
            watch.stop()

    def test_watch_sees_finalizer_lifecycle(self, harness: StoreHarness) -> None:
        h = harness
        events = Events()
        watch = h.store.watch(h.kind.kind, events, namespace=h.namespace)
        try:
            created = h.create("lifecycle", finalizers=("contract.metalcubed.io/hold",))
            name = created.metadata.name
            h.store.delete(h.kind.kind, created.key)
            deleting = h.read_deleting(created.key)
            h.store.update(deleting.with_meta(finalizers=()))
            h.wait_until(lambda: len(events.about(name)) >= 3, TIMEOUT_S)
            types = ports.WatchEventType
            assert events.about(name) == [(types.ADDED, name), (types.MODIFIED, name),
                                          (types.DELETED, name)]
            marked = [e.object for e in events.received
                      if e.object.metadata.name == name][1]
            assert marked.metadata.deletion_timestamp is not None
        finally:
            watch.stop()

    def test_watch_resumes_after_resource_version(self, harness: StoreHarness) -> None:
        h = harness
        created = h.create("resume")
        name = created.metadata.name
        first = h.store.update(h.kind.with_spec(created, 1))
        second = h.store.update_status(h.kind.with_status(first, 1))
        events = Events()
        watch = h.store.watch(h.kind.kind, events, namespace=h.namespace,
                              resource_version=created.metadata.resource_version)
        try:
            h.wait_until(lambda: len(events.about(name)) >= 2, TIMEOUT_S)
            assert events.about(name) == [(ports.WatchEventType.MODIFIED, name)] * 2
            assert events.versions(name) == [first.metadata.resource_version,
                                             second.metadata.resource_version]
        finally:
            watch.stop()

    def test_watch_from_compacted_version_is_gone(self, harness: StoreHarness) -> None:
        h = harness
        if h.gone_after_writes is None:
            return
        created = h.create("compacted")
        obj = created
        for n in range(1, h.gone_after_writes + 1):
            obj = h.store.update(h.kind.with_spec(obj, n))
        with raises(outcome.Gone):
            h.store.watch(h.kind.kind, Events(), namespace=h.namespace,
                          resource_version=created.metadata.resource_version)

    def test_label_selected_watch_starts_with_matching_objects_only(
        self, harness: StoreHarness
    ) -> None:
        h = harness
        run = h.name("sel-watch")
        matching = h.create("matching", labels={"run": run}).metadata.name
        other = h.create("other", labels={"run": run + "-not"}).metadata.name
        events = Events()
        watch = h.store.watch(h.kind.kind, events, namespace=h.namespace,
                              label_selector=f"run={run}")
        try:
            marker = h.create("marker", labels={"run": run}).metadata.name
            h.wait_until(lambda: len(events.about(marker)) >= 1, TIMEOUT_S)
            assert events.about(matching, other) == [(ports.WatchEventType.ADDED, matching)]
        finally:
            watch.stop()

    def test_label_selected_watch_follows_objects_in_and_out_of_the_selection(
        self, harness: StoreHarness
    ) -> None:
        """An object that comes to match arrives as ADDED, one that stops matching leaves as
        DELETED (the API server's watch with a label selector)."""
        h = harness
        run = h.name("sel-transition")
        events = Events()
        watch = h.store.watch(h.kind.kind, events, namespace=h.namespace,
                              label_selector=f"run={run}")
        try:
            first = h.create("first", labels={"run": run})
            second = h.create("second")
            a, b = first.metadata.name, second.metadata.name
            h.store.update(second.with_meta(labels={"run": run}))  # comes to match
            h.store.update(first.with_meta(labels={}))  # stops matching
            h.store.delete(h.kind.kind, second.key)
            h.wait_until(lambda: len(events.about(a, b)) >= 4, TIMEOUT_S)
            types = ports.WatchEventType
            assert events.about(a, b) == [(types.ADDED, a), (types.ADDED, b),
                                          (types.DELETED, a), (types.DELETED, b)]
        finally:
            watch.stop()

    def test_stopped_watch_receives_nothing_more(self, harness: StoreHarness) -> None:
        h = harness
        stopped, running = Events(), Events()
        watch = h.store.watch(h.kind.kind, stopped, namespace=h.namespace)
        watch.stop()
        watch.stop()
        control = h.store.watch(h.kind.kind, running, namespace=h.namespace)
        try:
            name = h.create("after-stop").metadata.name
            h.wait_until(lambda: len(running.about(name)) >= 1, TIMEOUT_S)
            assert stopped.about(name) == []
        finally:
            control.stop()
