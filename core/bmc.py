"""The BMC port: what the provisioning engine may ask of a host's baseboard management controller.

Ironic's composition model (STYLE 6): a driver is not one class that does everything. Each
capability (power, boot device and mode, virtual media, out-of-band inspection, BIOS, firmware
inventory and updates, hardware RAID, event subscriptions) is its own small Protocol; a
`HardwareType` lists, per capability, an ordered tuple of implementations (the first is the
default, a host may pick another by name) and `HardwareType.compose` turns that table into a
`Driver`, the one implementation per capability a host uses. The Redfish (sushy) and IPMI
(pyghmi) implementations live in controllers/bmc; the fleet model brings simulated ones.

Every capability method takes a `BmcAccess` (where the BMC is, how to log in, whether to verify
TLS) plus its own narrow parameters, and returns one of the value types below: no library type
(sushy resource, pyghmi dict) ever crosses this boundary. Every capability has a `validate`
that is cheap, makes no network call and changes nothing, so a bad spec is rejected before any
BMC is touched.

Long hardware operations are started, never waited on (DESIGN rule 5): `start_power_on`
returns as soon as the BMC accepted the request, and the engine observes `power_state` later;
`Firmware.start_update` returns the BMC's task, and the engine observes `update_tasks` later
(the BMC keeps the tasks, so the engine needs no memory of its own to find one again).

Errors all belong to the `DriverError` family; each carries the BMC address (any password
redacted) and the operation, and builds its message from them. Drivers translate library
exceptions into it at the boundary, chained with `raise ... from`.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, NoReturn, Protocol, TypeVar

from metalcubed.core import bmcaddress, outcome, ports

if TYPE_CHECKING:
    from metalcubed.core.api import hardwaredata as hwd


# --- Where the BMC is ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BmcAccess:
    """Everything a capability needs to reach one BMC: the parsed address, credentials, TLS flag.

    Built once per host from `spec.bmc.address` (`bmcaddress.parse`), the credentials Secret
    and `spec.bmc.disableCertificateVerification`.
    """

    address: bmcaddress.BMCAccess
    credentials: ports.Credentials
    verify_tls: bool = True
    """False only when the host's spec disables certificate verification."""

    @property
    def display(self) -> str:
        """The address for messages: as the user wrote it, any password redacted."""
        return bmcaddress.redact(self.address.address)

    @staticmethod
    def of(address: str, credentials: ports.Credentials, *, verify_tls: bool = True) -> "BmcAccess":
        """Parse `address` (raises `SpecError` subclasses, see `bmcaddress.parse`)."""
        return BmcAccess(
            address=bmcaddress.parse(address), credentials=credentials, verify_tls=verify_tls
        )


# --- Value types --------------------------------------------------------------------------------


class PowerState(StrEnum):
    ON = "on"
    OFF = "off"
    POWERING_ON = "powering on"
    POWERING_OFF = "powering off"
    UNKNOWN = "unknown"
    """The BMC did not say (missing or unrecognised value)."""


class BootDevice(StrEnum):
    PXE = "pxe"
    DISK = "disk"
    CDROM = "cdrom"
    """Also where virtual media shows up."""
    BIOS = "bios"
    """Firmware setup."""
    UEFI_HTTP = "uefi-http"
    NONE = "none"
    """No override: the firmware's own boot order."""


class BootMode(StrEnum):
    """Firmware boot mode; values match BareMetalHost's bootMode (secure boot is separate)."""

    UEFI = "UEFI"
    LEGACY = "legacy"


class Persistence(StrEnum):
    """How long a boot device override lasts."""

    ONCE = "once"
    """The next boot only."""
    PERSISTENT = "persistent"


@dataclass(frozen=True, slots=True, kw_only=True)
class BootSetting:
    """The boot override the BMC reports."""

    device: BootDevice
    persistence: Persistence
    mode: BootMode | None = None
    """None: the BMC does not report a boot mode."""


class MediaDevice(StrEnum):
    """A virtual media slot."""

    CD = "cd"
    USB = "usb"
    """Removable disk / USB stick / floppy slot."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaState:
    device: MediaDevice
    inserted: bool
    image_url: str = ""
    """"" when nothing is inserted."""


BiosValue = str | int | bool
"""A BIOS attribute value as the BMC types it."""


class BiosAttributeType(StrEnum):
    ENUMERATION = "Enumeration"
    STRING = "String"
    INTEGER = "Integer"
    BOOLEAN = "Boolean"
    PASSWORD = "Password"


@dataclass(frozen=True, slots=True, kw_only=True)
class BiosAttributeSchema:
    """One entry of the BIOS attribute registry (what FirmwareSchema exposes)."""

    name: str
    type: BiosAttributeType
    allowable_values: tuple[str, ...] = ()
    lower_bound: int | None = None
    upper_bound: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    read_only: bool = False
    reset_required: bool = False
    unique: bool = False
    """The value must be unique across systems (FirmwareSchema's `unique`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BiosSettings:
    """Current BIOS attributes, and what is staged for the next reboot."""

    current: Mapping[str, BiosValue] = field(default_factory=dict)
    pending: Mapping[str, BiosValue] = field(default_factory=dict)
    """Staged but not yet applied (most BMCs apply BIOS changes at the next reboot)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FirmwareComponent:
    """One firmware inventory item (upstream HostFirmwareComponents: bios, bmc, nic:...)."""

    component: str
    """"bios", "bmc" or a vendor-specific name such as "nic:NIC.Slot.1"."""
    version: str
    updateable: bool = False


class TaskState(StrEnum):
    """Where a BMC task (a firmware update) stands; values are ours, drivers map the BMC's."""

    RUNNING = "running"
    """Accepted, downloading or flashing (Redfish New, Starting, Running, Pending...)."""
    COMPLETED = "completed"
    """Done: the component runs the new version (the BMC did any reboot the update needs)."""
    FAILED = "failed"
    """Ended without applying: `message` says why (image not found, bad image, flash error)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateTask:
    """One firmware update the BMC runs (Redfish UpdateService.SimpleUpdate and its Task)."""

    id: str
    """The BMC's task id: opaque, stable while the BMC keeps the task."""
    component: str
    """The component being updated, as `FirmwareComponent.component` names it ("bios", "bmc")."""
    image_url: str
    state: TaskState
    percent: int | None = None
    """0-100 when the BMC reports progress."""
    message: str = ""
    """The BMC's own words on failure (and progress notes while running); "" when silent."""


class RaidLevel(StrEnum):
    """Hardware RAID levels; values are BareMetalHost spec.raid's `level` strings."""

    RAID0 = "0"
    RAID1 = "1"
    RAID2 = "2"
    RAID5 = "5"
    RAID6 = "6"
    RAID10 = "1+0"
    RAID50 = "5+0"
    RAID60 = "6+0"


@dataclass(frozen=True, slots=True, kw_only=True)
class PhysicalDrive:
    """A drive a storage controller can put into volumes."""

    id: str
    """The BMC's drive id (what `VolumeRequest.drives` lists)."""
    name: str
    size_bytes: int
    rotational: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageController:
    """A RAID-capable storage controller and the drives behind it."""

    id: str
    """The BMC's id for it (what spec.raid's `controller` names)."""
    name: str
    raid_levels: frozenset[RaidLevel]
    """The levels it can build; a request for another is refused before any BMC call."""
    drives: tuple[PhysicalDrive, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Volume:
    """A logical volume (virtual disk) that exists on a controller."""

    id: str
    controller: str
    name: str
    level: RaidLevel | None
    """None for a volume the BMC reports without a RAID type (e.g. a pass-through disk)."""
    size_bytes: int
    drives: tuple[str, ...] = ()
    """The ids of the physical drives it spans."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeRequest:
    """One volume to create: already resolved to a controller and drives by the caller
    (core/provisioning picks them from `controllers()`, as Ironic's RAID logic does)."""

    name: str
    level: RaidLevel
    controller: str
    drives: tuple[str, ...]
    """Physical drive ids on `controller`; at least the level's minimum."""
    size_bytes: int | None = None
    """None: the largest the drives allow (spec.raid sizeGibibytes 0 or absent)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventSubscription:
    """A Redfish event subscription on the BMC (BMCEventSubscription)."""

    id: str
    destination: str
    context: str = ""
    event_types: tuple[str, ...] = ()


# --- Errors -------------------------------------------------------------------------------------


class DriverError(outcome.MetalcubedError):
    """A BMC call failed. Carries the BMC address (any password redacted) and the operation.

    Retried with backoff by default (`retryable`), except where a subclass says otherwise.
    """

    kind = "BMC error"

    def __init__(self, address: str, operation: str, message: str) -> None:
        self.address = bmcaddress.redact(address)
        self.operation = operation
        self.detail = message
        super().__init__(f"{self.kind} at {self.address} during {operation}: {message}")


class BmcUnreachable(DriverError):
    """No answer: connection refused, timed out, DNS failure, TLS handshake failure."""

    kind = "BMC unreachable"


class BmcAuthFailed(DriverError):
    """The BMC refused the credentials (HTTP 401/403, IPMI RAKP failure)."""

    kind = "BMC authentication failed"


class BmcRejected(DriverError):
    """The BMC understood and refused the request (HTTP 4xx other than auth, IPMI completion code).

    `status` is the HTTP status or IPMI completion code; 409 means the resource is busy in a
    state that forbids the request (typically right after a power change) and is worth retrying.
    """

    kind = "BMC rejected the request"

    def __init__(self, address: str, operation: str, message: str, *, status: int) -> None:
        self.status = status
        super().__init__(address, operation, f"{message} (status {status})")


class BmcBusy(DriverError):
    """The BMC is overloaded (HTTP 503, session limit reached): try again after `retry_after_s`."""

    kind = "BMC busy"

    def __init__(
        self, address: str, operation: str, message: str, *, retry_after_s: float | None = None
    ) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(address, operation, message)


class BmcServerError(DriverError):
    """The BMC failed internally (HTTP 5xx other than 503)."""

    kind = "BMC internal error"

    def __init__(self, address: str, operation: str, message: str, *, status: int) -> None:
        self.status = status
        super().__init__(address, operation, f"{message} (status {status})")


class BmcBadResponse(DriverError):
    """The BMC answered with something we cannot use: not JSON, missing or mistyped fields,
    a body over the size limit, an HTML error page."""

    kind = "BMC sent a bad response"


class UnsupportedCapability(DriverError):
    """The host's driver does not implement this capability (e.g. BIOS settings over IPMI).

    Permanent: retrying cannot help until the host's spec picks another driver. The message
    follows upstream's wording ("BMC driver ipmi does not support configuring RAID").
    """

    kind = "BMC capability not supported"
    retryable = False

    def __init__(self, address: str, operation: str, *, capability: str, implementation: str):
        self.capability = capability
        self.implementation = implementation
        what = UNSUPPORTED_WORDING.get(capability, capability)
        super().__init__(address, operation, f"BMC driver {implementation} does not support {what}")


UNSUPPORTED_WORDING: Mapping[str, str] = {
    "raid": "configuring RAID",
    "inspect": "fast (out-of-band) inspection",
    "bios": "firmware settings",
    "firmware": "firmware updates",
    "events": "BMC event subscriptions",
    "virtual-media": "virtual media",
}
"""What an `UnsupportedCapability` message says the driver cannot do, by capability name
(upstream BMO's phrases where it has one: RAID, inspection)."""


# --- Capabilities -------------------------------------------------------------------------------
#
# Common contract for every method below: `access` says which BMC; calls make at most a few BMC
# requests and return; they are safe to call from several threads; they raise only the
# DriverError family. Reads are side-effect free. Writes are idempotent where the hardware allows
# (powering on a host that is on is a no-op), and stated otherwise.


class Power(Protocol):
    """Power state and power actions."""

    @property
    def name(self) -> str:
        """The implementation's name in a HardwareType table, e.g. "redfish", "ipmitool"."""
        ...

    def validate(self, access: BmcAccess) -> None:
        """Reject an access this implementation cannot use. No I/O. Raises `SpecError`."""
        ...

    def power_state(self, access: BmcAccess) -> PowerState:
        """The power state the BMC reports now."""
        ...

    def start_power_on(self, access: BmcAccess) -> None:
        """Ask for power on and return; a no-op when already on."""
        ...

    def start_power_off(self, access: BmcAccess, *, mode: ports.RebootMode) -> None:
        """Ask for a graceful shutdown (SOFT) or an immediate power cut (HARD) and return.

        A no-op when already off. A soft power off may be ignored by the OS: the caller observes
        `power_state` and escalates to HARD after its own timeout.
        """
        ...

    def start_reboot(self, access: BmcAccess, *, mode: ports.RebootMode) -> None:
        """Restart (graceful for SOFT, reset for HARD); powers on a host that is off."""
        ...


class Management(Protocol):
    """Boot device override and boot mode."""

    @property
    def name(self) -> str: ...

    def validate(self, access: BmcAccess) -> None: ...

    def boot_setting(self, access: BmcAccess) -> BootSetting:
        """The boot override (device, once/persistent, mode) the BMC reports."""
        ...

    def set_boot_device(
        self, access: BmcAccess, device: BootDevice, *, persistence: Persistence
    ) -> None:
        """Boot from `device` at the next boot (ONCE) or every boot (PERSISTENT). Idempotent."""
        ...

    def set_boot_mode(self, access: BmcAccess, mode: BootMode) -> None:
        """Switch the firmware boot mode (takes effect at the next boot). Idempotent."""
        ...


class Boot(Protocol):
    """Virtual media: attach an ISO or disk image the BMC fetches from a URL."""

    @property
    def name(self) -> str: ...

    def validate(self, access: BmcAccess) -> None: ...

    def media_state(self, access: BmcAccess, *, device: MediaDevice) -> MediaState: ...

    def insert_media(self, access: BmcAccess, image_url: str, *, device: MediaDevice) -> None:
        """Insert the image at `image_url` into `device`. Replaces what is inserted (eject first
        when the BMC requires it). The BMC, not the caller, fetches the image."""
        ...

    def eject_media(self, access: BmcAccess, *, device: MediaDevice) -> None:
        """Eject whatever is in `device`; a no-op when it is empty."""
        ...


class Inspect(Protocol):
    """Out-of-band inventory (what the BMC knows without booting the host)."""

    @property
    def name(self) -> str: ...

    def validate(self, access: BmcAccess) -> None: ...

    def inspect(self, access: BmcAccess) -> "hwd.HardwareDetails":
        """System vendor, firmware, CPU, RAM, NICs and disks as far as the BMC reports them.
        Fields the BMC does not expose are left at their zero value."""
        ...


class Bios(Protocol):
    """BIOS attributes and their registry (HostFirmwareSettings / FirmwareSchema)."""

    @property
    def name(self) -> str: ...

    def validate(self, access: BmcAccess) -> None: ...

    def settings(self, access: BmcAccess) -> BiosSettings: ...

    def registry(self, access: BmcAccess) -> Mapping[str, BiosAttributeSchema]:
        """The attribute registry by attribute name; empty when the BMC publishes none."""
        ...

    def apply_settings(self, access: BmcAccess, changes: Mapping[str, BiosValue]) -> None:
        """Stage `changes`; most BMCs apply them at the next reboot. Idempotent."""
        ...


class Firmware(Protocol):
    """Firmware inventory and updates (HostFirmwareComponents)."""

    @property
    def name(self) -> str: ...

    def validate(self, access: BmcAccess) -> None: ...

    def components(self, access: BmcAccess) -> tuple[FirmwareComponent, ...]: ...

    def start_update(self, access: BmcAccess, component: str, image_url: str) -> UpdateTask:
        """Ask the BMC to fetch `image_url` and flash `component` with it; return its task.

        Returns at once (the BMC downloads and flashes in the background, then does whatever
        reboot applies it). While a task for the same component and URL is still RUNNING, that
        task is returned instead of starting another. An image the BMC cannot fetch or use is
        reported by the task ending FAILED with the BMC's message, not raised here (the BMC
        only finds out later). Raises `BmcRejected` for a component the BMC does not have.
        """
        ...

    def update_tasks(self, access: BmcAccess) -> tuple[UpdateTask, ...]:
        """The firmware update tasks the BMC still knows, oldest first (finished ones too, as
        long as the BMC keeps them). Side-effect free."""
        ...


class Events(Protocol):
    """BMC event subscriptions (BMCEventSubscription)."""

    @property
    def name(self) -> str: ...

    def validate(self, access: BmcAccess) -> None: ...

    def subscriptions(self, access: BmcAccess) -> tuple[EventSubscription, ...]: ...

    def subscribe(
        self,
        access: BmcAccess,
        destination: str,
        *,
        context: str = "",
        http_headers: Mapping[str, str] | None = None,
    ) -> EventSubscription:
        """Create a subscription sending events to `destination`; returns it with its id.

        Not idempotent: each call creates one (the caller keeps the id, as
        BMCEventSubscription's status.subscriptionID does). The BMC sends `http_headers` with
        every event it POSTs and never shows them back (Redfish), so `subscriptions` cannot
        tell whether they changed. A destination the BMC refuses is `BmcRejected`.
        """
        ...

    def unsubscribe(self, access: BmcAccess, subscription_id: str) -> None:
        """Delete the subscription; a no-op when it is already gone."""
        ...


class Raid(Protocol):
    """Hardware RAID: storage controllers and their volumes (spec.raid hardwareRAIDVolumes)."""

    @property
    def name(self) -> str:
        """"redfish", or "no-raid" for hardware without it (upstream's RAID interface names)."""
        ...

    def validate(self, access: BmcAccess) -> None: ...

    def controllers(self, access: BmcAccess) -> tuple[StorageController, ...]:
        """The RAID-capable controllers and their drives; () when the system has none."""
        ...

    def volumes(self, access: BmcAccess) -> tuple[Volume, ...]:
        """Every volume on every controller."""
        ...

    def create_volume(self, access: BmcAccess, request: VolumeRequest) -> None:
        """Create the volume; a no-op when a volume of that name exists on the controller.

        Raises `BmcRejected` naming what the BMC refused (level, size, drives in use).
        """
        ...

    def delete_volume(self, access: BmcAccess, controller: str, volume_id: str) -> None:
        """Delete the volume; a no-op when it is already gone."""
        ...


RAID_MIN_DRIVES: Mapping[RaidLevel, int] = {
    RaidLevel.RAID0: 1, RaidLevel.RAID1: 2, RaidLevel.RAID2: 3, RaidLevel.RAID5: 3,
    RaidLevel.RAID6: 4, RaidLevel.RAID10: 4, RaidLevel.RAID50: 6, RaidLevel.RAID60: 8,
}
"""The fewest physical drives each level needs (Ironic's RAID_LEVEL_MIN_DISKS)."""


@dataclass(frozen=True, slots=True)
class NoRaid:
    """The RAID implementation of hardware without hardware RAID (upstream's "no-raid").

    Every call raises `UnsupportedCapability` ("BMC driver ipmi does not support configuring
    RAID"). It lives in core, not controllers/bmc/unsupported.py, because it is the default of
    every `HardwareType` and `Driver` that lists no RAID implementation.
    """

    hardware_type: str = ""

    @property
    def name(self) -> str:
        return "no-raid"

    def validate(self, access: BmcAccess) -> None:
        return None

    def _fail(self, access: BmcAccess, operation: str) -> NoReturn:
        raise UnsupportedCapability(access.address.address, operation, capability="raid",
                                    implementation=self.hardware_type or "unknown")

    def controllers(self, access: BmcAccess) -> tuple[StorageController, ...]:
        self._fail(access, "list storage controllers")

    def volumes(self, access: BmcAccess) -> tuple[Volume, ...]:
        self._fail(access, "list volumes")

    def create_volume(self, access: BmcAccess, request: VolumeRequest) -> None:
        self._fail(access, "create volume")

    def delete_volume(self, access: BmcAccess, controller: str, volume_id: str) -> None:
        self._fail(access, "delete volume")


# --- Hardware types -----------------------------------------------------------------------------


class Capability(StrEnum):
    POWER = "power"
    MANAGEMENT = "management"
    BOOT = "boot"
    INSPECT = "inspect"
    BIOS = "bios"
    FIRMWARE = "firmware"
    EVENTS = "events"
    RAID = "raid"


@dataclass(frozen=True, slots=True, kw_only=True)
class Driver:
    """The implementations one host uses, one per capability."""

    hardware_type: str
    power: Power
    management: Management
    boot: Boot
    inspect: Inspect
    bios: Bios
    firmware: Firmware
    events: Events
    raid: Raid = NoRaid()
    """Default: no hardware RAID (`NoRaid` naming this driver's hardware type)."""

    def __post_init__(self) -> None:
        if isinstance(self.raid, NoRaid) and not self.raid.hardware_type:
            object.__setattr__(self, "raid", NoRaid(self.hardware_type))

    def validate(self, access: BmcAccess) -> None:
        """Run every capability's `validate`. No I/O. Raises `SpecError`."""
        for cap in Capability:
            getattr(self, cap.value).validate(access)


@dataclass(frozen=True, slots=True, kw_only=True)
class HardwareType:
    """Per capability, the implementations a host of this type may use; the first is the default.

    A capability the hardware type cannot do lists only its `Unsupported<X>` implementation,
    which raises `UnsupportedCapability` when used (never a silent success). RAID may be left
    out: `()` means `NoRaid` only, as upstream's drivers without a RAID interface.
    """

    name: str
    power: tuple[Power, ...]
    management: tuple[Management, ...]
    boot: tuple[Boot, ...]
    inspect: tuple[Inspect, ...]
    bios: tuple[Bios, ...]
    firmware: tuple[Firmware, ...]
    events: tuple[Events, ...]
    raid: tuple[Raid, ...] = ()

    def __post_init__(self) -> None:
        if not self.raid:
            object.__setattr__(self, "raid", (NoRaid(self.name),))
        for cap in Capability:
            if not getattr(self, cap.value):
                raise ValueError(f"hardware type {self.name}: no {cap.value} implementation")

    def allowed(self, capability: Capability) -> tuple[str, ...]:
        """Names of the implementations allowed for `capability`, default first."""
        impls: tuple[_Named, ...] = getattr(self, capability.value)
        return tuple(impl.name for impl in impls)

    def compose(self, choices: Mapping[Capability, str] | None = None) -> Driver:
        """The defaults, with the implementations named in `choices` instead.

        Raises `SpecError` naming the capability when a choice is not in the table.
        """
        pick = _Picker(self, choices or {})
        return Driver(
            hardware_type=self.name,
            power=pick(Capability.POWER, self.power),
            management=pick(Capability.MANAGEMENT, self.management),
            boot=pick(Capability.BOOT, self.boot),
            inspect=pick(Capability.INSPECT, self.inspect),
            bios=pick(Capability.BIOS, self.bios),
            firmware=pick(Capability.FIRMWARE, self.firmware),
            events=pick(Capability.EVENTS, self.events),
            raid=pick(Capability.RAID, self.raid),
        )


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_Impl = TypeVar("_Impl", bound=_Named)


@dataclass(frozen=True, slots=True)
class _Picker:
    hardware_type: HardwareType
    choices: Mapping[Capability, str]

    def __call__(self, capability: Capability, impls: tuple[_Impl, ...]) -> _Impl:
        wanted = self.choices.get(capability)
        if wanted is None:
            return impls[0]
        for impl in impls:
            if impl.name == wanted:
                return impl
        raise outcome.SpecError(
            f"{capability.value}_interface",
            f"{wanted!r} is not allowed for hardware type {self.hardware_type.name}; "
            f"allowed: {', '.join(self.hardware_type.allowed(capability))}",
        )
