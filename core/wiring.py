"""The BareMetalHost controller's wiring, written once for every runtime (STYLE 2 and 5).

What a controller watches, how a change of a watched object becomes workqueue keys, and how
the result of a pass becomes a queue action are data and pure functions here. The kube runtime
(controllers/manager.py over informers and controllers/kube/worker.py) and the fleet model
(simulators/fleet/runtime.py over the memory store's watch) both consume them, so the event
mapping that ships is the one the fleet model simulates.

The BareMetalHost controller, as upstream BMO's `SetupWithManager` wires it:
- BareMetalHost, for itself, with upstream's update filter (`host_update_matters`): an update
  reconciles only when the generation (spec), annotations, finalizers or deletion timestamp
  changed; status-only updates, most of them written by the controller itself, do not;
- Secret: a changed Secret reconciles the hosts that read it (BMC credentials and config-drive
  references), found through the host index `SECRETS_INDEX` (`secrets_of`). Only Secrets
  labelled `SECRET_LABEL` are watched (upstream's `environment.metal3.io: baremetal`): the
  production runtime labels a referenced Secret the first time a host reads it
  (controllers/kube/secrets.py), so unrelated Secrets are never cached; no owner references
  are put on users' Secrets. The fleet model, whose Secrets are all hosts', watches them all;
- HardwareData: a change reconciles its owner host (`owner_host`).

A pass ends in one of five queue actions (`action_for`), controller-runtime's reconcileHandler:

    Outcome.done()             DONE           forget
    Outcome.after(s)           REQUEUE_AFTER  forget, add_after(s)
    a permanent error          STOP           forget, no retry until the object changes
      (not `outcome.is_retryable`: PermanentError, SpecError, Invalid, IllegalTransition)
    TransientError(retry_after_s=s)
                               RETRY_AFTER    add_after(s)   (failure count kept)
    other retryable error      RETRY          add_rate_limited
    any other exception        RETRY          add_rate_limited, flagged `unexpected` (a bug)
"""

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from metalcubed.core import outcome
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import hardwaredata as hwd
from metalcubed.core.api import hostfirmwarecomponents as hfc
from metalcubed.core.api import hostfirmwaresettings as hfs
from metalcubed.core.api import meta

R = TypeVar("R", bound=meta.Resource)
K = TypeVar("K", bound=Hashable)
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)

CONTROLLER_NAME = "baremetalhost"
SECRETS_INDEX = "secrets"
"""Host index: "namespace/name" of every Secret a host reads."""
SECRET_LABEL = ("environment.metal3.io", "baremetal")
"""Upstream BMO's label on the Secrets it uses (secretutils.LabelEnvironmentName/Value)."""
SECRET_SELECTOR = f"{SECRET_LABEL[0]}={SECRET_LABEL[1]}"

IndexLookup = Callable[[str, str], Iterable[meta.ObjectKey]]
"""(index name, value) -> keys of the reconciled kind's objects with that index value."""


# --- filters, indexes, mappers -------------------------------------------------------------------


def host_update_matters(old: bmh.BareMetalHost, new: bmh.BareMetalHost) -> bool:
    """Upstream's updateEventHandler: generation, annotations or finalizers changed (plus the
    deletion timestamp, which the API server also marks with a generation bump)."""
    a, b = old.metadata, new.metadata
    return (
        a.generation != b.generation
        or a.annotations != b.annotations
        or a.finalizers != b.finalizers
        or a.deletion_timestamp != b.deletion_timestamp
    )


def secrets_of(host: bmh.BareMetalHost) -> Iterable[str]:
    """"namespace/name" of every Secret the host reads (the values of `SECRETS_INDEX`)."""
    ns = host.metadata.namespace
    spec = host.spec
    if spec.bmc.credentials_name:
        yield f"{ns}/{spec.bmc.credentials_name}"
    for ref in (spec.user_data, spec.network_data, spec.meta_data):
        if ref is not None and ref.name:
            yield f"{ref.namespace or ns}/{ref.name}"
    if spec.preprovisioning_network_data_name:
        yield f"{ns}/{spec.preprovisioning_network_data_name}"


def owner_host(data: hwd.HardwareData) -> Iterable[meta.ObjectKey]:
    """The BareMetalHost a HardwareData belongs to: its owner, else the host of the same name."""
    owners = [o.name for o in data.metadata.owner_references if o.kind == bmh.BareMetalHost.KIND]
    for name in owners or [data.metadata.name]:
        yield meta.ObjectKey(data.metadata.namespace, name)


def own_key(obj: meta.Resource, lookup: IndexLookup) -> Iterable[meta.ObjectKey]:
    """controller-runtime's EnqueueRequestForObject: the object's own key."""
    return (obj.key,)


def hosts_using_secret(secret: meta.Secret, lookup: IndexLookup) -> Iterable[meta.ObjectKey]:
    """The hosts whose `secrets_of` names this Secret."""
    return lookup(SECRETS_INDEX, f"{secret.metadata.namespace}/{secret.metadata.name}")


def hardware_data_owner(data: hwd.HardwareData, lookup: IndexLookup) -> Iterable[meta.ObjectKey]:
    return owner_host(data)


# --- the wiring as data --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Index(Generic[R]):
    """An index on the cache of `kind`: `values(obj)` are the values it is found under."""

    name: str
    kind: type[R]
    values: Callable[[R], Iterable[str]]


@dataclass(frozen=True, slots=True)
class Watch(Generic[R]):
    """One watched kind: which keys a change of an object asks for, and which updates count."""

    kind: type[R]
    keys: Callable[[R, IndexLookup], Iterable[meta.ObjectKey]]
    update_filter: Callable[[R, R], bool] | None = None
    """(old, new) -> whether an update is worth a pass (adds and deletes always are)."""
    label_selector: str | None = None
    """Watch (and cache) only the objects of `kind` with these labels."""


@dataclass(frozen=True, slots=True)
class Wiring:
    """A controller: the kind it reconciles, what it watches and the indexes its mappers use."""

    name: str
    kind: type[meta.Resource]
    watches: tuple[Watch[Any], ...]
    indexes: tuple[Index[Any], ...]

    @property
    def kinds(self) -> tuple[type[meta.Resource], ...]:
        """Every kind whose cache the controller needs (watched or indexed)."""
        found: dict[type[meta.Resource], None] = {}
        for w in self.watches:
            found[w.kind] = None
        for i in self.indexes:
            found[i.kind] = None
        return tuple(found)


BAREMETALHOST = Wiring(
    name=CONTROLLER_NAME,
    kind=bmh.BareMetalHost,
    watches=(
        Watch(bmh.BareMetalHost, own_key, update_filter=host_update_matters),
        Watch(meta.Secret, hosts_using_secret, label_selector=SECRET_SELECTOR),
        Watch(hwd.HardwareData, hardware_data_owner),
    ),
    indexes=(Index(SECRETS_INDEX, bmh.BareMetalHost, secrets_of),),
)
"""The BareMetalHost controller (see the module docstring)."""


def generation_or_owners_changed(old: meta.Resource, new: meta.Resource) -> bool:
    """The HostFirmwareSettings/Components controllers' event filter (upstream's
    updateEventHandler, applied to every watch of those controllers): the generation changed
    (spec), or the owner references did (a sub-resource adopted by a host created later)."""
    a, b = old.metadata, new.metadata
    return a.generation != b.generation or a.owner_references != b.owner_references


HOSTFIRMWARESETTINGS = Wiring(
    name="hostfirmwaresettings",
    kind=hfs.HostFirmwareSettings,
    watches=(
        Watch(hfs.HostFirmwareSettings, own_key, update_filter=generation_or_owners_changed),
        Watch(bmh.BareMetalHost, own_key, update_filter=generation_or_owners_changed),
    ),
    indexes=(),
)
"""Upstream: For(HostFirmwareSettings), Watches(BareMetalHost, EnqueueRequestForObject): a
host's change reconciles the HostFirmwareSettings of the same name."""

HOSTFIRMWARECOMPONENTS = Wiring(
    name="hostfirmwarecomponents",
    kind=hfc.HostFirmwareComponents,
    watches=(
        Watch(hfc.HostFirmwareComponents, own_key, update_filter=generation_or_owners_changed),
        Watch(bmh.BareMetalHost, own_key, update_filter=generation_or_owners_changed),
    ),
    indexes=(),
)
"""As HOSTFIRMWARESETTINGS, for HostFirmwareComponents."""


def keys_for_change(
    watch: Watch[R], old: R | None, new: R | None, lookup: IndexLookup
) -> list[meta.ObjectKey]:
    """The keys one change asks for: (None, new) add, (old, new) update, (old, None) delete.

    An update the watch's filter rejects asks for none. Otherwise the old and the new copy
    are both mapped (controller-runtime's EnqueueRequestsFromMapFunc), so a reference that
    moved from one object to another reconciles both; each key appears once.
    """
    if (
        old is not None
        and new is not None
        and watch.update_filter is not None
        and not watch.update_filter(old, new)
    ):
        return []
    keys: dict[meta.ObjectKey, None] = {}
    for obj in (old, new):
        if obj is not None:
            keys.update(dict.fromkeys(watch.keys(obj, lookup)))
    return list(keys)


def watch_for(wiring: Wiring, kind: type[meta.Resource]) -> Watch[Any] | None:
    """The watch of `kind` in `wiring`, if it watches that kind."""
    for w in wiring.watches:
        if w.kind is kind:
            return w
    return None


class IndexTable:
    """An index over objects kept by a runtime without informers (the fleet model): object
    key -> values, value -> keys. Pure; fed with every add, update and delete of its kind."""

    def __init__(self, index: Index[Any]) -> None:
        self.index = index
        self._values: dict[meta.ObjectKey, tuple[str, ...]] = {}
        self._keys: dict[str, set[meta.ObjectKey]] = {}

    def put(self, obj: meta.Resource) -> None:
        key = obj.key
        values = tuple(dict.fromkeys(self.index.values(obj)))
        old = self._values.get(key, ())
        if values == old:
            return
        self._drop(key, old)
        self._values[key] = values
        for value in values:
            self._keys.setdefault(value, set()).add(key)

    def delete(self, key: meta.ObjectKey) -> None:
        self._drop(key, self._values.pop(key, ()))

    def keys(self, value: str) -> list[meta.ObjectKey]:
        return sorted(self._keys.get(value, ()), key=lambda k: (k.namespace, k.name))

    def _drop(self, key: meta.ObjectKey, values: tuple[str, ...]) -> None:
        for value in values:
            keys = self._keys.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._keys[value]


# --- the outcome of a pass -> a queue action -----------------------------------------------------


class Verdict(StrEnum):
    DONE = "done"
    """Forget the key until a watch event asks again."""
    REQUEUE_AFTER = "requeue_after"
    """Forget the failure count, then add the key back after `delay_s`."""
    RETRY_AFTER = "retry_after"
    """A transient error that named its delay: add after `delay_s`, failure count kept."""
    RETRY = "retry"
    """Add rate-limited (per-key exponential backoff and the overall bucket)."""
    STOP = "stop"
    """A permanent error (`outcome.is_retryable` false): forget, no retry until the object
    changes."""


@dataclass(frozen=True, slots=True)
class QueueAction:
    """What a runtime does with a key after a pass (see the module docstring's table)."""

    verdict: Verdict
    delay_s: float | None = None
    error: BaseException | None = None
    unexpected: bool = False
    """The pass raised something that is not a MetalcubedError: a bug, logged with its trace."""

    @property
    def is_error(self) -> bool:
        return self.error is not None

    @property
    def result(self) -> str:
        """controller-runtime's reconcile_total `result` label."""
        if self.error is not None:
            return "error"
        if self.verdict is Verdict.REQUEUE_AFTER:
            return "requeue_after" if (self.delay_s or 0.0) > 0 else "requeue"
        return "success"


def action_for(result: outcome.Outcome | BaseException) -> QueueAction:
    """The one outcome-to-queue switch: the pass's Outcome, or what it raised."""
    if isinstance(result, outcome.Outcome):
        if result.requeue_after_s is None:
            return _DONE
        return QueueAction(Verdict.REQUEUE_AFTER, delay_s=result.requeue_after_s)
    if not outcome.is_retryable(result):
        return QueueAction(Verdict.STOP, error=result)
    if isinstance(result, outcome.TransientError) and result.retry_after_s is not None:
        return QueueAction(Verdict.RETRY_AFTER, delay_s=result.retry_after_s, error=result)
    if isinstance(result, outcome.MetalcubedError):
        return QueueAction(Verdict.RETRY, error=result)
    return QueueAction(Verdict.RETRY, error=result, unexpected=True)


_DONE = QueueAction(Verdict.DONE)


class Queue(Protocol[K_contra]):
    """What `apply` needs of a workqueue (core/queue.WorkQueue and the kube SharedQueue)."""

    def forget(self, key: K_contra) -> None: ...

    def add_after(self, key: K_contra, delay_s: float) -> None: ...

    def add_rate_limited(self, key: K_contra) -> None: ...


def apply(action: QueueAction, queue: Queue[K], key: K) -> None:
    """Do `action` to `key` (the caller marks the key done afterwards, whatever happened)."""
    verdict = action.verdict
    if verdict is Verdict.DONE or verdict is Verdict.STOP:
        queue.forget(key)
    elif verdict is Verdict.REQUEUE_AFTER:
        queue.forget(key)
        queue.add_after(key, action.delay_s or 0.0)
    elif verdict is Verdict.RETRY_AFTER:
        queue.add_after(key, action.delay_s or 0.0)
    else:
        queue.add_rate_limited(key)
