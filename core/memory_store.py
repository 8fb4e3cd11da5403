"""An in-memory `ports.Store` with the semantics of a real kube-apiserver.

Why it exists: the fleet model runs thousands of hosts through it in simulated time, the lab
and the embedded default run on it, and the unit tests use it. A reconciler that works against
it must work against the API server, so it implements the server's rules (generic registry
store + custom-resource strategy, Kubernetes 1.3x), not a convenient approximation. It is pure
and single-threaded (controllers/memory.py has a locked wrapper), keeps the frozen models it is
given as they are (no deep copy, no re-validation: a write costs a few `model_copy` calls), and
takes time from an injected Clock and randomness from an injected `random.Random`.

Semantics, write by write (every "Invalid" is HTTP 422, "Conflict" 409, "NotFound" 404):

Identity and versions
  - `uid`: a UUID4 drawn from the injected `random.Random` (deterministic for a seed).
  - `creationTimestamp`, `deletionTimestamp`: `clock.now()` truncated to whole seconds, as
    metav1.Time stores them.
  - `resourceVersion`: one counter for the whole store (etcd's revision), a decimal string,
    bumped by every write that changes something, delete included. Clients must treat it as
    opaque; only equality is part of the contract.
  - A write that changes nothing (same metadata, content and status) is a no-op: no new
    resourceVersion, no watch event, the stored object is returned (etcd's GuaranteedUpdate
    skips identical bytes).

Custom resources and built-in kinds
  A kind is a *custom resource* when its API group contains a dot and is not a `*.k8s.io` group
  (metal3.io, infrastructure.cluster.x-k8s.io, ipam.metal3.io, test groups); otherwise it is
  built in (core `v1` Secret, `apps`, ...). The two differ as on the server:
  - generation: a custom resource gets `generation=1` on create; an update bumps it when
    anything but metadata (and status, for kinds with a status subresource) changed, i.e. the
    spec. `update_status` never bumps it. Built-in kinds here (Secret) carry no generation.
  - PUT without resourceVersion: custom resources reject it (Invalid
    `metadata.resourceVersion: must be specified for an update`; the CR strategy's
    AllowUnconditionalUpdate is false); built-in kinds (Secret) treat it as an unconditional
    update over whatever is stored.

create
  - Conflict (reason AlreadyExists) when the name is taken.
  - `generateName` with an empty name: the name is the prefix plus 5 random characters from
    the API server's alphabet; a collision is retried (8 tries, as the server's
    RetryGenerateName does), then Conflict.
  - Invalid when the name is missing or not a DNS-1123 subdomain, when a namespaced kind has
    no namespace, when `resourceVersion` is set (the real server answers 500 "resourceVersion
    should not be set on objects to be created"; it can never succeed, hence Invalid here), or
    when an ownerReference lacks apiVersion/kind/name/uid or more than one is a controller.
  - Cluster-scoped kinds get their namespace cleared. Client-supplied uid, generation,
    timestamps are replaced. Kinds with a status subresource have status reset to the model
    default (a create cannot set status; write it with `update_status` afterwards).
  - Secret: `stringData` is merged into `data` (base64) and dropped, as the server stores it.
  - Namespaces need not exist (there is no NamespaceLifecycle admission).

update (PUT of metadata + everything but status)
  - NotFound when absent; Conflict when `metadata.uid` is set and differs (UID precondition)
    or `metadata.resourceVersion` is set and differs from the stored one.
  - Server-managed metadata (uid, resourceVersion, generation, creationTimestamp,
    deletionTimestamp, name, namespace) is taken from the stored object, whatever the client
    sent; labels, annotations, finalizers, ownerReferences, generateName come from the client.
  - Kinds with a status subresource (`HAS_STATUS`): the stored status is kept.
  - On an object with a deletionTimestamp, *adding* a finalizer is Invalid (`metadata.
    finalizers: no new finalizers can be added if the object is being deleted`); removing
    finalizers, and any other change, is allowed. When the last finalizer goes, the object is
    deleted: one DELETED event whose object is the last stored state (finalizers included)
    with the deletion's resourceVersion, which `update` also returns.

update_status (PUT of the status subresource)
  - Same NotFound/Conflict rules; only `status` is taken from the argument, everything else
    (metadata included: labels, finalizers...) is kept; generation is never bumped.
  - NotFound on kinds without a status subresource (the server has no such endpoint).

delete (background propagation, the server default for these kinds)
  - NotFound when absent.
  - With finalizers: the object stays; `deletionTimestamp` is set and, for custom resources,
    `generation` is bumped (registry `markAsDeleting`); one MODIFIED event. Deleting it again
    changes nothing (no new resourceVersion, no event).
  - Without finalizers: removed now; DELETED event with a new resourceVersion.
  - Garbage collection (`garbage_collection=True`, the default; the kube-controller-manager's
    GC, done synchronously before the call returns): when an object is removed, each dependent
    that lists it in ownerReferences is examined. An owner reference resolves when an object
    with that uid exists with the same name, kind and API group, in the dependent's namespace
    (or cluster-scoped). A dependent none of whose owners resolve is deleted (same rules:
    finalizers first); one with some resolving and some dangling owners has the dangling
    references removed (a MODIFIED write). Objects created or updated with only dangling owner
    references are collected the same way. Foreground/orphan propagation and
    blockOwnerDeletion are not modelled.

list
  - By namespace (None: all namespaces), sorted by namespace then name (etcd key order).
  - Label selectors, upstream's labels.Parse grammar and messages (core/labels.py): `a=b`,
    `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x,y)`, `a>1`, `a<1`, comma-separated and
    ANDed. `!=` and `notin` match objects without the label. A malformed selector is Invalid
    (the server's 400), with the parser's message.

watch
  - `resource_version=None` or "0": ADDED for every current object (sorted as `list`), then
    every change. Otherwise: every change after that version, replayed from a bounded per-kind
    history (`history_size` events); Gone when events after it have been evicted. A version
    ahead of the store is accepted (the server would wait, then time out).
  - Events are ADDED (create), MODIFIED (update, update_status, delete that only sets the
    deletionTimestamp, GC patches), DELETED (removal; the object carries the deletion's
    resourceVersion), filtered by namespace, each delivered exactly once and in
    resourceVersion order to every watch.
  - Delivery is synchronous: every event reaches every handler before the mutating call
    returns. A handler may write to the store; the events it causes are queued and delivered
    after the current event has reached all handlers, so every watch still sees one global
    order. A handler that raises does not lose the remaining events (they are delivered
    first); the exception then propagates out of the mutating call, whose write is
    committed.
  - `Watch.stop()` is idempotent; no event reaches a stopped watch.

Admission and validation (plug-ins, all optional)
  - `validate`: called with every object about to be stored by create/update/update_status
    (server fields filled in); raises Invalid to reject (the CRD schema step).
  - `add_admission(kind, hook)`: a validating admission webhook: called with an
    `AdmissionRequest` for CREATE, UPDATE (subresource "" or "status") and DELETE of `kind`
    after `validate`; raises Invalid to reject. GC deletions bypass admission.
"""

import base64
import re
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from random import Random
from typing import Any, Generic, TypeVar, cast

from pydantic_core import PydanticUndefined

from metalcubed.core import labels, outcome, ports
from metalcubed.core.api import change, meta

R = TypeVar("R", bound=meta.Resource)

_ADDED = ports.WatchEventType.ADDED
_MODIFIED = ports.WatchEventType.MODIFIED
_DELETED = ports.WatchEventType.DELETED

_GENERATE_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
"""k8s.io/apimachinery/pkg/util/rand: consonants and digits that cannot spell words."""
_GENERATE_NAME_TRIES = 8
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_STATUS = "status"
_SERVER_META_FIELDS = (
    "name",
    "namespace",
    "uid",
    "resource_version",
    "generation",
    "creation_timestamp",
    "deletion_timestamp",
)


class Operation(StrEnum):
    """The admission operation, as in an AdmissionReview."""

    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True, kw_only=True)
class AdmissionRequest(Generic[R]):
    """What a validating admission hook is shown (AdmissionReview.request, reduced)."""

    operation: Operation
    subresource: str
    """"" for the object itself, "status" for update_status."""
    old: R | None
    """The stored object (UPDATE, DELETE); None on CREATE."""
    new: R | None
    """The object about to be stored (CREATE, UPDATE); None on DELETE."""


AdmissionHook = Callable[[AdmissionRequest[R]], None]
"""Raises outcome.Invalid to reject the request; returns None to admit it."""


# --- the store -------------------------------------------------------------------------------


def _api_group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def is_custom_resource(kind: type[meta.Resource]) -> bool:
    """True for CRD-served kinds: a dotted API group outside `*.k8s.io`."""
    group = _api_group(kind.API_VERSION)
    return "." in group and not group.endswith(".k8s.io")


Handler = Callable[[ports.WatchEvent[meta.Resource]], None]


@dataclass(slots=True, eq=False)
class _Watcher:
    bucket: "_Bucket"
    handler: Handler
    namespace: str | None
    start_rv: int
    """Broadcast events at or below this version are not for this watch (it got them as its
    initial state or replay)."""
    active: bool = True
    selector: labels.Selector | None = None
    """A label-selected watch: only matching objects, as the API server does."""
    matched: set[meta.ObjectKey] = field(default_factory=set)
    """Keys this selected watch has told its handler about (and not deleted since)."""

    def selected(
        self, event: ports.WatchEvent[meta.Resource]
    ) -> ports.WatchEvent[meta.Resource] | None:
        """The event as this watch sees it: an object that comes to match arrives as ADDED,
        one that stops matching leaves as DELETED, others are not seen (the API server's
        semantics for a watch with a labelSelector)."""
        selector = self.selector
        if selector is None:
            return event
        obj = event.object
        key = obj.key
        seen = self.matched
        if event.type is _DELETED:
            if key in seen:
                seen.discard(key)
                return event
            return None
        if selector.matches(obj.metadata.labels):
            if key in seen:
                return event
            seen.add(key)
            return event if event.type is _ADDED else ports.WatchEvent(_ADDED, obj)
        if key in seen:
            seen.discard(key)
            return ports.WatchEvent(_DELETED, obj)
        return None


class _MemoryWatch:
    """The handle `watch` returns."""

    __slots__ = ("_watcher",)

    def __init__(self, watcher: _Watcher) -> None:
        self._watcher = watcher

    def stop(self) -> None:
        watcher = self._watcher
        if watcher.active:
            watcher.active = False
            watcher.bucket.watchers.remove(watcher)


@dataclass(slots=True, eq=False)
class _Bucket:
    """Everything the store keeps for one kind."""

    kind: type[meta.Resource]
    custom: bool
    has_status: bool
    content_fields: tuple[str, ...]
    """Top-level fields whose change bumps generation (all but apiVersion/kind/metadata/status)."""
    default_status: object
    by_namespace: dict[str, dict[str, meta.Resource]] = field(default_factory=dict)
    sorted_names: dict[str, list[str]] = field(default_factory=dict)
    """Per-namespace sorted names, dropped on create/delete and rebuilt by the next list."""
    by_label: dict[tuple[str, str], set[tuple[str, str]]] = field(default_factory=dict)
    """(label key, value) -> (namespace, name) of the objects carrying it: a `k=v` list reads
    these instead of every object (hosts of a cluster, the Node of a host uid)."""
    history: deque[tuple[int, ports.WatchEvent[meta.Resource]]] = field(default_factory=deque)
    evicted_rv: int = 0
    """The newest resourceVersion evicted from history: resuming below it is Gone."""
    watchers: list[_Watcher] = field(default_factory=list)
    admission: list[Callable[[AdmissionRequest[Any]], None]] = field(default_factory=list)


def _indexed_pair(selector: labels.Selector) -> tuple[str, str] | None:
    """A (key, value) every selected object must carry (`k=v`, `k==v`, `k in (v)`), if any."""
    for req in selector.requirements:
        if len(req.values) == 1 and req.operator in (
                labels.Operator.EQUALS, labels.Operator.DOUBLE_EQUALS, labels.Operator.IN):
            return req.key, req.values[0]
    return None


def _unindex_labels(bucket: _Bucket, obj: meta.Resource) -> None:
    m = obj.metadata
    where = (m.namespace, m.name)
    for pair in m.labels.items():
        holders = bucket.by_label.get(pair)
        if holders is not None:
            holders.discard(where)
            if not holders:
                del bucket.by_label[pair]


def _listed_by_label(bucket: _Bucket, pair: tuple[str, str], namespaces: Iterable[str],
                     selector: labels.Selector) -> list[R]:
    """`list` through the label index: the holders of `pair` in `namespaces` that match."""
    wanted = set(namespaces)
    found = sorted(where for where in bucket.by_label.get(pair, ()) if where[0] in wanted)
    result: list[R] = []
    for ns, name in found:
        obj = bucket.by_namespace[ns][name]
        if selector.matches(obj.metadata.labels):
            result.append(cast(R, obj))
    return result


def _make_bucket(kind: type[meta.Resource]) -> _Bucket:
    fields = kind.model_fields
    has_status = kind.HAS_STATUS and "status" in fields
    default_status: object = None
    if has_status:
        default_status = fields["status"].get_default(call_default_factory=True)
        if default_status is PydanticUndefined:
            default_status = None
    skip = {"api_version", "kind", "metadata"} | ({"status"} if has_status else set())
    return _Bucket(
        kind=kind,
        custom=is_custom_resource(kind),
        has_status=has_status,
        content_fields=tuple(name for name in fields if name not in skip),
        default_status=default_status,
    )


_Ref = tuple[type[meta.Resource], str, str]
"""Where an object lives: (kind, namespace, name)."""


class MemoryStore:
    """`ports.Store` in memory, with kube-apiserver semantics (see the module docstring).

    Not thread-safe: wrap it in controllers.memory.LockedStore for threaded runtimes.
    """

    def __init__(
        self,
        *,
        clock: ports.Clock,
        rng: Random | None = None,
        history_size: int = 1024,
        garbage_collection: bool = True,
        validate: Callable[[meta.Resource], None] | None = None,
    ) -> None:
        """Args:
        clock: the source of creation and deletion timestamps.
        rng: the source of uids and generated names (default: `Random(0)`).
        history_size: watch events kept per kind for resuming; older versions are Gone.
        garbage_collection: collect dependents whose owners are gone (see module docstring).
        validate: schema check run on every object about to be stored; raises Invalid.
        """
        if history_size < 1:
            raise ValueError(f"history_size must be >= 1, got {history_size}")
        self._clock = clock
        self._rng = rng if rng is not None else Random(0)
        self._history_size = history_size
        self._gc = garbage_collection
        self._validate = validate
        self._rv = 0
        self._buckets: dict[type[meta.Resource], _Bucket] = {}
        self._by_uid: dict[str, _Ref] = {}
        self._dependents: dict[str, dict[_Ref, None]] = {}
        """owner uid -> objects that list it in ownerReferences, in the order they came (a set
        of refs would iterate by the hash of their kind, a class: the garbage collector's order,
        and with it a seeded run, would change from one process to the next)."""
        self._pending: deque[tuple[_Watcher | None, _Bucket, int, ports.WatchEvent[Any]]] = (
            deque()
        )
        self._delivering = False
        self._gc_candidates: deque[_Ref] = deque()
        self._collecting = False
        self._selectors: dict[str, labels.Selector] = {}

    # --- plug-ins --------------------------------------------------------------------------

    def add_admission(self, kind: type[R], hook: AdmissionHook[R]) -> None:
        """Register a validating admission hook for `kind` (run in registration order)."""
        self._bucket(kind).admission.append(cast(Callable[[AdmissionRequest[Any]], None], hook))

    @property
    def resource_version(self) -> str:
        """The store's current resourceVersion (the last write's)."""
        return str(self._rv)

    # --- reads -----------------------------------------------------------------------------

    def get(self, kind: type[R], key: meta.ObjectKey) -> R:
        bucket = self._buckets.get(kind)
        if bucket is not None:
            names = bucket.by_namespace.get(key.namespace if kind.NAMESPACED else "")
            if names is not None:
                obj = names.get(key.name)
                if obj is not None:
                    return cast(R, obj)
        raise outcome.NotFound(kind.KIND, str(key))

    def list(
        self, kind: type[R], *, namespace: str | None = None, label_selector: str | None = None
    ) -> list[R]:
        bucket = self._buckets.get(kind)
        selector = self._selector(kind, label_selector) if label_selector else None
        if bucket is None:
            return []
        if namespace is None or not kind.NAMESPACED:
            namespaces: Iterable[str] = sorted(bucket.by_namespace)
        else:
            namespaces = (namespace,)
        if selector is not None:
            indexed = _indexed_pair(selector)
            if indexed is not None:
                return _listed_by_label(bucket, indexed, namespaces, selector)
        result: list[R] = []
        for ns in namespaces:
            names = bucket.by_namespace.get(ns)
            if not names:
                continue
            order = bucket.sorted_names.get(ns)
            if order is None:
                order = bucket.sorted_names[ns] = sorted(names)
            if selector is None:
                result.extend(cast(R, names[name]) for name in order)
            else:
                for name in order:
                    obj = names[name]
                    if selector.matches(obj.metadata.labels):
                        result.append(cast(R, obj))
        return result

    def _selector(self, kind: type[meta.Resource], text: str) -> labels.Selector:
        selector = self._selectors.get(text)
        if selector is None:
            try:
                selector = labels.parse(text)
            except labels.SelectorError as error:
                raise outcome.Invalid(
                    kind.KIND, "labelSelector", [("labelSelector", str(error))]
                ) from None
            if len(self._selectors) > 256:
                self._selectors.clear()
            self._selectors[text] = selector
        return selector

    # --- writes ----------------------------------------------------------------------------

    def create(self, obj: R) -> R:
        kind = type(obj)
        bucket = self._bucket(kind)
        m = obj.metadata
        namespace = m.namespace if kind.NAMESPACED else ""
        key_text = f"{namespace}/{m.name or m.generate_name or ''}"
        causes: list[tuple[str, str]] = []
        if m.resource_version:
            causes.append(("metadata.resourceVersion", "must not be set on create"))
        if kind.NAMESPACED and not namespace:
            causes.append(("metadata.namespace", "Required value"))
        causes.extend(_owner_reference_causes(m.owner_references))
        name = m.name
        names = bucket.by_namespace.get(namespace)
        if not name:
            if not m.generate_name:
                causes.append(("metadata.name", "Required value: name or generateName is required"))
            else:
                for _ in range(_GENERATE_NAME_TRIES):
                    name = m.generate_name + "".join(
                        self._rng.choice(_GENERATE_NAME_ALPHABET) for _ in range(5)
                    )
                    if names is None or name not in names:
                        break
        if name:
            causes.extend(_name_causes(name))
        if causes:
            raise outcome.Invalid(kind.KIND, key_text, causes)
        if names is not None and name in names:
            reason = "AlreadyExists" if m.name else "AlreadyExists (generateName exhausted)"
            raise outcome.Conflict(kind.KIND, f"{namespace}/{name}", reason)

        rv = self._rv + 1
        new_meta = m.model_copy(
            update={
                "name": name,
                "namespace": namespace,
                "uid": str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
                "resource_version": str(rv),
                "generation": 1 if bucket.custom else None,
                "creation_timestamp": self._clock.now().replace(microsecond=0),
                "deletion_timestamp": None,
            }
        )
        update: dict[str, object] = {"metadata": new_meta}
        if bucket.has_status:
            update["status"] = bucket.default_status
        if isinstance(obj, meta.Secret) and obj.string_data:
            update.update(_merged_secret_data(obj))
        new = change.replace(obj, update)
        self._admit(bucket, Operation.CREATE, "", None, new)
        self._rv = rv
        self._store(bucket, new)
        self._record(bucket, _ADDED, new, self._rv)
        if new_meta.owner_references:
            self._gc_candidates.append((kind, namespace, name))
        self._settle()
        return new

    def update(self, obj: R) -> R:
        kind = type(obj)
        bucket = self._bucket(kind)
        old = self._existing(bucket, obj)
        om, nm = old.metadata, obj.metadata
        causes: list[tuple[str, str]] = []
        if om.deletion_timestamp is not None:
            added = [f for f in nm.finalizers if f not in om.finalizers]
            if added:
                causes.append(
                    (
                        "metadata.finalizers",
                        (
                            "no new finalizers can be added if the object is being deleted, "
                            f"found new finalizers {added}"
                        ),
                    )
                )
        if nm.owner_references != om.owner_references:
            causes.extend(_owner_reference_causes(nm.owner_references))
        if causes:
            raise outcome.Invalid(kind.KIND, str(old.key), causes)

        if nm is om or (
            nm.resource_version == om.resource_version
            and nm.uid == om.uid
            and nm.generation == om.generation
            and nm.creation_timestamp == om.creation_timestamp
            and nm.deletion_timestamp == om.deletion_timestamp
            and nm.name == om.name
            and nm.namespace == om.namespace
        ):
            merged_meta = nm
        else:
            merged_meta = change.replace(nm, {f: getattr(om, f) for f in _SERVER_META_FIELDS})
        meta_changed = merged_meta is not om and merged_meta != om
        secret_update: dict[str, object] = {}
        if isinstance(obj, meta.Secret) and obj.string_data:
            secret_update = _merged_secret_data(obj)
            obj = change.replace(obj, secret_update)
        content_changed = any(
            (a := getattr(obj, f)) is not (b := getattr(old, f)) and a != b
            for f in bucket.content_fields
        )
        status_differs = bucket.has_status and getattr(obj, _STATUS) is not getattr(old, _STATUS)
        if not meta_changed and not content_changed:
            return old

        rv = self._rv + 1
        generation = om.generation
        if content_changed and bucket.custom and generation is not None:
            generation += 1
        new_meta = change.replace(
            merged_meta, {"resource_version": str(rv), "generation": generation}
        )
        update: dict[str, object] = {"metadata": new_meta}
        if status_differs:
            update[_STATUS] = getattr(old, _STATUS)
        new = change.replace(obj, update)
        if self._validate is not None or bucket.admission:
            self._admit(bucket, Operation.UPDATE, "", old, new)
        self._rv = rv
        if om.deletion_timestamp is not None and not merged_meta.finalizers:
            gone = old.with_meta(resource_version=str(self._rv))
            self._remove(bucket, gone)
            self._settle()
            return gone
        self._store(bucket, new)
        self._record(bucket, _MODIFIED, new, self._rv)
        if merged_meta.owner_references != om.owner_references:
            self._reindex_owners(old, new)
            if merged_meta.owner_references:
                self._gc_candidates.append((kind, new.metadata.namespace, new.metadata.name))
        self._settle()
        return new

    def add_owner(self, obj: R, owner: meta.OwnerReference) -> R:
        current = self.get(type(obj), obj.key)  # no resourceVersion precondition
        refs = meta.with_owner_reference(current.metadata.owner_references, owner)
        if refs is None:
            return current
        return self.update(current.with_meta(owner_references=refs))

    def update_status(self, obj: R) -> R:
        kind = type(obj)
        bucket = self._bucket(kind)
        if not bucket.has_status:
            raise outcome.NotFound(kind.KIND, f"{obj.key}/status")
        old = self._existing(bucket, obj)
        status = getattr(obj, _STATUS)
        if status is getattr(old, _STATUS) or status == getattr(old, _STATUS):
            return old
        rv = self._rv + 1
        new_meta = change.replace(old.metadata, {"resource_version": str(rv)})
        new = change.replace(old, {"metadata": new_meta, _STATUS: status})
        if self._validate is not None or bucket.admission:
            self._admit(bucket, Operation.UPDATE, "status", old, new)
        self._rv = rv
        self._store(bucket, new)
        self._record(bucket, _MODIFIED, new, self._rv)
        self._settle()
        return new

    def delete(self, kind: type[R], key: meta.ObjectKey) -> None:
        old = self.get(kind, key)
        bucket = self._buckets[kind]
        for hook in bucket.admission:
            hook(AdmissionRequest(operation=Operation.DELETE, subresource="", old=old, new=None))
        self._delete(bucket, old)
        self._settle()

    def _delete(self, bucket: _Bucket, old: meta.Resource) -> None:
        om = old.metadata
        if om.finalizers:
            if om.deletion_timestamp is not None:
                return  # already deleting: markAsDeleting changes nothing
            self._rv += 1
            generation = om.generation
            if bucket.custom and generation:
                generation += 1
            new = old.with_meta(
                deletion_timestamp=self._clock.now().replace(microsecond=0),
                generation=generation,
                resource_version=str(self._rv),
            )
            self._store(bucket, new)
            self._record(bucket, _MODIFIED, new, self._rv)
            return
        self._rv += 1
        self._remove(bucket, old.with_meta(resource_version=str(self._rv)))

    # --- watch -----------------------------------------------------------------------------

    def watch(
        self,
        kind: type[R],
        handler: Callable[[ports.WatchEvent[R]], None],
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
    ) -> ports.Watch:
        bucket = self._bucket(kind)
        if not kind.NAMESPACED:
            namespace = None
        watcher = _Watcher(bucket, cast(Handler, handler), namespace, self._rv)
        if label_selector:
            watcher.selector = self._selector(kind, label_selector)
        if resource_version is None or resource_version in ("", "0"):
            for obj in self.list(kind, namespace=namespace, label_selector=label_selector):
                self._pending.append((watcher, bucket, 0, ports.WatchEvent(_ADDED, obj)))
        else:
            try:
                since = int(resource_version)
            except ValueError:
                raise outcome.Invalid(
                    kind.KIND, "watch", [("resourceVersion", f"invalid: {resource_version!r}")]
                ) from None
            if since < bucket.evicted_rv:
                raise outcome.Gone(resource_version)
            for rv, event in bucket.history:
                if rv > since and namespace in (None, event.object.metadata.namespace):
                    self._pending.append((watcher, bucket, rv, event))
            watcher.start_rv = max(since, self._rv)
        bucket.watchers.append(watcher)
        self._deliver()
        return _MemoryWatch(watcher)

    # --- internals -------------------------------------------------------------------------

    def _bucket(self, kind: type[meta.Resource]) -> _Bucket:
        bucket = self._buckets.get(kind)
        if bucket is None:
            bucket = self._buckets[kind] = _make_bucket(kind)
        return bucket

    def _existing(self, bucket: _Bucket, obj: R) -> R:
        """The stored object `obj` replaces, after the UID and resourceVersion preconditions."""
        kind = bucket.kind
        m = obj.metadata
        namespace = m.namespace if kind.NAMESPACED else ""
        names = bucket.by_namespace.get(namespace)
        old = names.get(m.name) if names is not None else None
        if old is not None:
            om = old.metadata
            rv = m.resource_version
            if rv and rv == om.resource_version and (not m.uid or m.uid == om.uid):
                return cast(R, old)  # the usual case, checked first
        key_text = f"{namespace}/{m.name}" if namespace else m.name
        if old is None:
            raise outcome.NotFound(kind.KIND, key_text)
        om = old.metadata
        if m.uid and m.uid != om.uid:
            raise outcome.Conflict(
                kind.KIND, key_text, f"UID precondition failed: {m.uid} != {om.uid}"
            )
        if m.resource_version:
            if m.resource_version != om.resource_version:
                raise outcome.Conflict(
                    kind.KIND,
                    key_text,
                    "the object has been modified; please apply your changes to the latest "
                    "version and try again",
                )
        elif bucket.custom:
            cause = ("metadata.resourceVersion", "must be specified for an update")
            raise outcome.Invalid(kind.KIND, key_text, [cause])
        return cast(R, old)

    def _admit(
        self,
        bucket: _Bucket,
        operation: Operation,
        subresource: str,
        old: meta.Resource | None,
        new: meta.Resource,
    ) -> None:
        if self._validate is not None:
            self._validate(new)
        for hook in bucket.admission:
            hook(AdmissionRequest(operation=operation, subresource=subresource, old=old, new=new))

    def _store(self, bucket: _Bucket, obj: meta.Resource) -> None:
        m = obj.metadata
        names = bucket.by_namespace.get(m.namespace)
        if names is None:
            names = bucket.by_namespace[m.namespace] = {}
        old = names.get(m.name)
        if old is None:
            bucket.sorted_names.pop(m.namespace, None)
            uid = cast(str, m.uid)
            self._by_uid[uid] = (bucket.kind, m.namespace, m.name)
            for ref in m.owner_references:
                self._dependents.setdefault(ref.uid, {})[(bucket.kind, m.namespace, m.name)] = None
        if old is None or (old.metadata.labels is not m.labels and old.metadata.labels != m.labels):
            if old is not None:
                _unindex_labels(bucket, old)
            where = (m.namespace, m.name)
            for pair in m.labels.items():
                bucket.by_label.setdefault(pair, set()).add(where)
        names[m.name] = obj

    def _remove(self, bucket: _Bucket, last: meta.Resource) -> None:
        """Drop `last` (already carrying the deletion's resourceVersion) and queue its GC."""
        m = last.metadata
        names = bucket.by_namespace[m.namespace]
        del names[m.name]
        _unindex_labels(bucket, last)
        if not names:
            del bucket.by_namespace[m.namespace]
        bucket.sorted_names.pop(m.namespace, None)
        uid = cast(str, m.uid)
        del self._by_uid[uid]
        ref_here = (bucket.kind, m.namespace, m.name)
        for ref in m.owner_references:
            dependents = self._dependents.get(ref.uid)
            if dependents is not None:
                dependents.pop(ref_here, None)
                if not dependents:
                    del self._dependents[ref.uid]
        self._record(bucket, _DELETED, last, self._rv)
        if self._gc:
            self._gc_candidates.extend(self._dependents.pop(uid, ()))

    def _reindex_owners(self, old: meta.Resource, new: meta.Resource) -> None:
        ref_here = (type(new), new.metadata.namespace, new.metadata.name)
        for ref in old.metadata.owner_references:
            dependents = self._dependents.get(ref.uid)
            if dependents is not None:
                dependents.pop(ref_here, None)
                if not dependents:
                    del self._dependents[ref.uid]
        for ref in new.metadata.owner_references:
            self._dependents.setdefault(ref.uid, {})[ref_here] = None

    def _record(
        self, bucket: _Bucket, type_: ports.WatchEventType, obj: meta.Resource, rv: int
    ) -> None:
        event: ports.WatchEvent[meta.Resource] = ports.WatchEvent(type_, obj)
        history = bucket.history
        if len(history) >= self._history_size:
            bucket.evicted_rv = history.popleft()[0]
        history.append((rv, event))
        if bucket.watchers:
            self._pending.append((None, bucket, rv, event))

    def _settle(self) -> None:
        """Finish a write: collect garbage, then deliver the queued watch events."""
        if self._gc and self._gc_candidates and not self._collecting:
            self._collecting = True
            try:
                while self._gc_candidates:
                    self._collect(self._gc_candidates.popleft())
            finally:
                self._collecting = False
        self._deliver()

    def _collect(self, where: _Ref) -> None:
        kind, namespace, name = where
        bucket = self._buckets[kind]
        names = bucket.by_namespace.get(namespace)
        obj = names.get(name) if names is not None else None
        if obj is None or not obj.metadata.owner_references:
            return
        refs = obj.metadata.owner_references
        solid = tuple(ref for ref in refs if self._resolves(ref, namespace))
        if len(solid) == len(refs):
            return
        if not solid:
            self._delete(bucket, obj)
            return
        self._rv += 1
        new = obj.with_meta(owner_references=solid, resource_version=str(self._rv))
        self._store(bucket, new)
        self._record(bucket, _MODIFIED, new, self._rv)
        self._reindex_owners(obj, new)

    def _resolves(self, ref: meta.OwnerReference, namespace: str) -> bool:
        where = self._by_uid.get(ref.uid)
        if where is None:
            return False
        kind, owner_namespace, owner_name = where
        return (
            owner_name == ref.name
            and ref.kind == kind.KIND
            and _api_group(kind.API_VERSION) == _api_group(ref.api_version)
            and (owner_namespace == namespace or not kind.NAMESPACED)
        )

    def _deliver(self) -> None:
        """Hand queued events to their watches, in order; re-entrant writes append to the queue."""
        if self._delivering:
            return
        self._delivering = True
        try:
            pending = self._pending
            while pending:
                target, bucket, rv, event = pending.popleft()
                if target is not None:
                    if target.active:
                        seen = target.selected(event)
                        if seen is not None:
                            target.handler(seen)
                    continue
                namespace = event.object.metadata.namespace
                targets = [
                    w
                    for w in bucket.watchers
                    if rv > w.start_rv and (w.namespace is None or w.namespace == namespace)
                ]
                for index, watcher in enumerate(targets):
                    if not watcher.active:
                        continue
                    try:
                        # The selector check only for selected watches (the fleet's hot path).
                        seen = event if watcher.selector is None else watcher.selected(event)
                        if seen is not None:
                            watcher.handler(seen)
                    except BaseException:
                        # The other watches get this event before the error propagates.
                        for rest in reversed(targets[index + 1 :]):
                            pending.appendleft((rest, bucket, rv, event))
                        raise
        finally:
            self._delivering = False
            if self._pending:
                # A handler raised: deliver what is left before the exception propagates.
                self._deliver()


def _name_causes(name: str) -> list[tuple[str, str]]:
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(name):
        return [
            (
                "metadata.name",
                (
                    f"Invalid value: {name!r}: a lowercase RFC 1123 subdomain must consist of "
                    "lower case alphanumeric characters, '-' or '.', and must start and end "
                    "with an alphanumeric character"
                ),
            )
        ]
    return []


def _owner_reference_causes(refs: tuple[meta.OwnerReference, ...]) -> list[tuple[str, str]]:
    causes: list[tuple[str, str]] = []
    for index, ref in enumerate(refs):
        for attr, wire in (("api_version", "apiVersion"), ("kind", "kind"), ("name", "name"),
                           ("uid", "uid")):
            if not getattr(ref, attr):
                causes.append((f"metadata.ownerReferences[{index}].{wire}", "Required value"))
    if sum(1 for ref in refs if ref.controller) > 1:
        causes.append(("metadata.ownerReferences", "Only one reference can have Controller set"))
    return causes


def _merged_secret_data(secret: meta.Secret) -> dict[str, object]:
    """stringData folded into data, as the API server stores a Secret."""
    data = dict(secret.data)
    for key, value in (secret.string_data or {}).items():
        data[key] = base64.b64encode(value.encode("utf-8")).decode("ascii")
    return {"data": data, "string_data": None}
