"""The ports: everything core/ needs from the world, as typing.Protocols.

core/ decides, adapters act. Time, storage, events and hardware reach the reconcilers only
through these Protocols, so the same reconciler runs in the fleet model (simulated clock,
memory store), in the lab (real clock, emulated BMCs) and in production (API server, real BMCs).
Every adapter passes the same contract suite (core/testing).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from metalcubed.core.api import meta

if TYPE_CHECKING:
    from metalcubed.core.api import baremetalhost as bmh
    from metalcubed.core.api import firmwareschema
    from metalcubed.core.api import hardwaredata as hwd
    from metalcubed.core.api import hostfirmwarecomponents as hfc

R = TypeVar("R", bound=meta.Resource)
R_co = TypeVar("R_co", bound=meta.Resource, covariant=True)


# --- Clock -----------------------------------------------------------------------------------


class Clock(Protocol):
    """The current time. Simulated in the fleet model, the wall clock elsewhere."""

    def now(self) -> datetime:
        """Timezone-aware UTC now. Never blocks; thread-safe in real runtimes."""
        ...


# --- Store -----------------------------------------------------------------------------------


class WatchEventType(StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(frozen=True, slots=True)
class WatchEvent(Generic[R_co]):
    type: WatchEventType
    object: R_co


class Watch(Protocol):
    def stop(self) -> None:
        """Stop delivering events. Idempotent."""
        ...


class Store(Protocol):
    """Kubernetes object storage with API-server semantics.

    - `create` sets uid, resourceVersion, generation=1, creationTimestamp; 409 `Conflict` if
      the name exists.
    - `update` writes metadata and spec (never status for kinds with a status subresource);
      409 `Conflict` when `metadata.resource_version` is stale; generation is bumped only when
      the spec changed. Removing the last finalizer of an object with a deletionTimestamp
      deletes it.
    - `update_status` writes only status (409 on stale resourceVersion as well).
    - `add_owner` puts `owner` among the object's ownerReferences (replacing a reference of
      the same kind and name, as controllerutil.SetOwnerReference does) with no
      resourceVersion precondition on `obj`, which may be a stale copy (only its key is
      read): writers adding different owners to one object do not fail each other. Why: a
      FirmwareSchema is shared by every HostFirmwareSettings of one hardware model, and
      1,000 of them adding themselves with checked updates is a 409 storm.
    - `delete` sets deletionTimestamp when finalizers remain, else removes the object;
      dependents (ownerReferences) are garbage-collected. `NotFound` if absent.
    - `watch` calls `handler` for every change after `resource_version` (all current objects
      as ADDED when it is None); `Gone` when that version is too old. Handlers run on the
      store's delivery thread (real stores) or synchronously (memory store); they must not
      block.
      With `label_selector` it sees only matching objects, as the API server's watch does: an
      object that comes to match arrives as ADDED, one that stops matching leaves as DELETED.
    Errors: `NotFound`, `Conflict`, `Invalid` (schema/admission), `Gone`, `TransientError`.
    """

    def get(self, kind: type[R], key: meta.ObjectKey) -> R: ...

    def list(
        self, kind: type[R], *, namespace: str | None = None, label_selector: str | None = None
    ) -> list[R]: ...

    def create(self, obj: R) -> R: ...

    def update(self, obj: R) -> R: ...

    def update_status(self, obj: R) -> R: ...

    def add_owner(self, obj: R, owner: meta.OwnerReference) -> R: ...

    def delete(self, kind: type[R], key: meta.ObjectKey) -> None: ...

    def watch(
        self,
        kind: type[R],
        handler: Callable[[WatchEvent[R]], None],
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
    ) -> Watch: ...


# --- Events ----------------------------------------------------------------------------------


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class EventRecorder(Protocol):
    """Kubernetes Events about an object. Best effort: never raises, never blocks long."""

    def record(self, obj: meta.Resource, *, type: EventType, reason: str, message: str) -> None: ...


# --- Provisioner (bmo.md section 4) -----------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvisionResult:
    """What one provisioner step reports (upstream `provisioner.Result`).

    dirty: an operation is in progress; call again after `requeue_after_s`.
    error_message: the operation failed for good; the reconciler records it on status.
    A raised `MetalcubedError` is transient (rate-limited retry).
    """

    dirty: bool = False
    requeue_after_s: float = 0.0
    error_message: str = ""

    @staticmethod
    def complete() -> "ProvisionResult":
        return _COMPLETE

    @staticmethod
    def continuing(delay_s: float) -> "ProvisionResult":
        return ProvisionResult(dirty=True, requeue_after_s=delay_s)

    @staticmethod
    def failed(message: str) -> "ProvisionResult":
        return ProvisionResult(error_message=message)


_COMPLETE = ProvisionResult()
"""The one `complete` result (frozen, so shared: steady hosts report it on every pass)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """BMC username and password, read from the host's Secret. Never logged (repr hides it)."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class HostData:
    """What a provisioner is built from (upstream `provisioner.HostData`)."""

    key: meta.ObjectKey
    bmc_address: str
    bmc_credentials: Credentials
    disable_certificate_verification: bool
    boot_mac_address: str
    provisioner_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagementAccessData:
    boot_mode: "bmh.BootMode"
    automated_cleaning_mode: "bmh.AutomatedCleaningMode"
    state: "bmh.ProvisioningState"
    operational_status: "bmh.OperationalStatus"
    current_image: "bmh.Image | None"
    has_custom_deploy: bool
    disable_power_off: bool
    cpu_architecture: str
    disable_inspection: bool
    inspection_mode: "bmh.InspectionMode | None"


@dataclass(frozen=True, slots=True, kw_only=True)
class InspectData:
    boot_mode: "bmh.BootMode"
    cpu_architecture: str
    inspection_mode: "bmh.InspectionMode | None"


@dataclass(frozen=True, slots=True, kw_only=True)
class PrepareData:
    target_raid_config: "bmh.RAIDConfig | None"
    actual_raid_config: "bmh.RAIDConfig | None"
    root_device_hints: "bmh.RootDeviceHints | None"
    target_firmware_settings: dict[str, str] = field(default_factory=dict)
    actual_firmware_settings: dict[str, str] = field(default_factory=dict)
    target_firmware_components: tuple["hfc.FirmwareUpdate", ...] = ()
    """Firmware updates not applied yet (upstream getUpdatesDifference)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServicingData:
    """What servicing a provisioned host applies (upstream `provisioner.ServicingData`)."""

    target_firmware_settings: dict[str, str] = field(default_factory=dict)
    actual_firmware_settings: dict[str, str] = field(default_factory=dict)
    target_firmware_components: tuple["hfc.FirmwareUpdate", ...] = ()
    has_firmware_spec: bool = False
    """Any firmware spec exists (settings or updates): tells "nothing new" from "the user
    cleared the spec" (which aborts a failed servicing)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FirmwareSettings:
    """The BIOS settings a host reports, and its attribute registry when asked for."""

    settings: Mapping[str, str]
    schema: "Mapping[str, firmwareschema.SettingSchema] | None" = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HostConfig:
    """Config-drive contents, already read from the host's Secrets."""

    user_data: str | None = None
    network_data: str | None = None
    meta_data: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvisionData:
    image: "bmh.Image | None"
    host_config: HostConfig
    boot_mode: "bmh.BootMode"
    hardware_profile: str
    root_device_hints: "bmh.RootDeviceHints | None"
    custom_deploy: "bmh.CustomDeploy | None"


class RebootMode(StrEnum):
    SOFT = "soft"
    HARD = "hard"


@dataclass(frozen=True, slots=True, kw_only=True)
class InspectOutcome:
    result: ProvisionResult
    started: bool
    details: "hwd.HardwareDetails | None"


class Provisioner(Protocol):
    """One host's provisioning backend (upstream `provisioner.Provisioner`).

    Every method is one quick, idempotent step: it starts an operation or observes its
    progress and returns at once (`dirty` + a delay while in progress). Hardware time never
    passes inside a call. `restart_on_failure` asks to restart an operation that failed
    before instead of reporting the same failure again. Raised MetalcubedErrors are transient.
    """

    def register(
        self, data: ManagementAccessData, *, credentials_changed: bool, restart_on_failure: bool
    ) -> tuple[ProvisionResult, str]:
        """Enroll or update the node and validate BMC access; returns the provisioner ID."""
        ...

    def inspect_hardware(
        self, data: InspectData, *, restart_on_failure: bool, refresh: bool, force_reboot: bool
    ) -> InspectOutcome: ...

    def update_hardware_state(self) -> bool | None:
        """Observed power: True/False, None when unknown. Cheap (cached)."""
        ...

    def adopt(
        self, state: "bmh.ProvisioningState", *, restart_on_failure: bool
    ) -> ProvisionResult: ...

    def prepare(
        self, data: PrepareData, *, unprepared: bool, restart_on_failure: bool
    ) -> tuple[ProvisionResult, bool]: ...

    def provision(self, data: ProvisionData, *, force_reboot: bool) -> ProvisionResult: ...

    def deprovision(
        self, *, restart_on_failure: bool, automated_cleaning_mode: "bmh.AutomatedCleaningMode"
    ) -> ProvisionResult: ...

    def delete(self) -> ProvisionResult: ...

    def detach(self, *, force: bool) -> ProvisionResult: ...

    def power_on(self, *, force: bool) -> ProvisionResult: ...

    def power_off(self, mode: RebootMode, *, force: bool) -> ProvisionResult: ...

    def has_capacity(self) -> bool: ...

    def has_power_failure(self) -> bool: ...

    def get_health(self) -> str:
        """ "OK", "Warning", "Critical" or "" (unknown)."""
        ...

    # Firmware (upstream GetFirmwareSettings, GetFirmwareComponents, Service). Reads act on the
    # BMC directly; raised MetalcubedErrors: the BMC could not be read.

    def get_firmware_settings(self, *, include_schema: bool) -> FirmwareSettings:
        """The host's BIOS settings (no password attributes) and, when asked, the registry."""
        ...

    def get_firmware_components(self) -> tuple["hfc.FirmwareComponentStatus", ...]:
        """The firmware inventory (empty when the BMC has none)."""
        ...

    def service(
        self, data: ServicingData, *, unprepared: bool, restart_on_failure: bool
    ) -> tuple[ProvisionResult, bool]:
        """Apply firmware settings and updates to a provisioned host (one step per call);
        `started` is True when this call started the work."""
        ...

    # DataImage (upstream GetDataImageStatus / AttachDataImage / DetachDataImage) and BMC event
    # subscriptions (Add/RemoveBMCEventSubscriptionForNode). Need no registered node: they act
    # on the BMC directly. Raised MetalcubedErrors: the BMC could not be asked or refused.

    def get_data_image_status(self) -> bool:
        """Whether the host's virtual CD holds an image now."""
        ...

    def attach_data_image(self, url: str) -> None:
        """Insert `url` into the virtual CD (replacing another image). Idempotent."""
        ...

    def detach_data_image(self) -> None:
        """Eject the virtual CD; a no-op when it is empty."""
        ...

    def add_bmc_event_subscription(
        self, *, destination: str, context: str, http_headers: Mapping[str, str]
    ) -> tuple[ProvisionResult, str]:
        """Create a subscription on the BMC; returns the BMC's id for it ("" unless complete).
        A BMC without an event service, or one that refuses, is a failed result."""
        ...

    def remove_bmc_event_subscription(self, subscription_id: str) -> ProvisionResult:
        """Delete the subscription from the BMC; complete when it is already gone."""
        ...


class ProvisionerFactory(Protocol):
    """Builds the provisioner for one host. Raises `ProvisionerNotReady` while starting."""

    def new_provisioner(
        self, host: HostData, publish: Callable[[str, str], None]
    ) -> Provisioner: ...


# --- Metrics ---------------------------------------------------------------------------------


class Metrics(Protocol):
    """Counters and histograms under upstream BMO's metric names (bmo.md section 11).

    `name` is the full upstream name (e.g. "metal3_provisioning_state_change_total"); labels
    are the upstream label names. Never raises, never blocks.
    """

    def inc(self, name: str, labels: dict[str, str] | None = None) -> None: ...

    def observe(self, name: str, value: float, labels: dict[str, str] | None = None) -> None: ...


class NullMetrics:
    """Metrics that go nowhere (the default when a runtime exports none)."""

    def inc(self, name: str, labels: dict[str, str] | None = None) -> None:
        return None

    def observe(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        return None
