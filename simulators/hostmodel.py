"""An emulated bare-metal server: the one state the Redfish and IPMI emulators both serve.

A `HostModel` is what a BMC manages: power (with transition timing), the boot override and boot
mode, virtual media slots, BIOS attributes with their registry (changes staged until the next
boot, as on real firmware), the hardware inventory and firmware versions, and firmware updates
(a task that flashes for `PowerTiming.firmware_update_s`, then reboots the host, or the BMC
for a BMC update). The emulators only
translate protocol requests into calls on it, so a Redfish client and an IPMI client looking at
the same host see the same machine.

Time: transitions complete `PowerTiming` seconds after they start (default: instantly, for
tests). They are resolved lazily under the lock whenever the host is looked at, and by a timer
when the delay is non-zero, so that `on_boot` hooks fire on time even when nobody polls. An
agent emulator hooks `on_boot` to come up when the host boots the deploy ramdisk.

Faults (`Faults`) are the one BMC fault model of the project: the Redfish and IPMI emulators,
the in-process Sim BMCs (hostmodel_bmc.py) and the fleet model's BMCs (fleet/bmc.py) all ask
`Faults.draw` what to answer: latency, a concurrent-session cap (503 with Retry-After), 409
on power and boot writes for a window after a power off, a 5xx rate, a rate of requests that
hang until the client gives up, an unreachable switch (the BMC stops answering), and what
happens to firmware updates (`draw_update`: a rate of failed flashes, a rate of BMCs that
reboot during the update). Tests flip them at run time.

Thread-safe: emulators serve requests from many threads; every method takes the host's lock.
"""

import collections
import dataclasses
import enum
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

# --- Faults -------------------------------------------------------------------------------------

LatencyFn = Callable[[random.Random], float]


def no_latency(rng: random.Random) -> float:
    return 0.0


def fixed_latency(seconds: float) -> LatencyFn:
    return lambda rng: seconds


def uniform_latency(low_s: float, high_s: float) -> LatencyFn:
    return lambda rng: rng.uniform(low_s, high_s)


def lognormal_latency(median_s: float, sigma: float) -> LatencyFn:
    """Long-tailed, like real BMC response times: half the answers take under `median_s`."""
    mu = math.log(median_s)
    return lambda rng: rng.lognormvariate(mu, sigma)


class Reply(enum.IntEnum):
    """What a BMC answers to one request (HTTP status for Redfish; IPMI maps them)."""

    OK = 200
    CONFLICT = 409
    SERVER_ERROR = 500
    UNAVAILABLE = 503
    TIMEOUT = 0
    """No answer within the client's timeout."""

    def describe(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    Reply.OK: "HTTP 200 OK",
    Reply.CONFLICT: "HTTP 409 Conflict",
    Reply.SERVER_ERROR: "HTTP 500 Internal Server Error",
    Reply.UNAVAILABLE: "HTTP 503 Service Unavailable: maximum number of sessions reached",
    Reply.TIMEOUT: "timed out waiting for a response",
}


@dataclass(slots=True, kw_only=True)
class Faults:
    """What goes wrong, and how often. Mutable: tests change knobs while the emulator runs."""

    latency: LatencyFn = no_latency
    """Extra delay before each answer, drawn per request."""
    error_rate: float = 0.0
    """Fraction of requests answered with a 500 (IPMI: completion code 0xFF)."""
    timeout_rate: float = 0.0
    """Fraction of requests that hang until the client's timeout (a BMC that stalls)."""
    session_cap: int | None = None
    """Concurrent requests (Redfish: also sessions) beyond this are answered 503 + Retry-After
    (IPMI: 0xC0 node busy). None: no cap."""
    retry_after_s: float = 1.0
    """The Retry-After the 503s carry."""
    conflict_after_power_off_s: float = 0.0
    """For this long after a power off, power and boot writes are answered 409 (IPMI: 0xC0),
    as some BMCs do while the host settles (iDRAC for up to about a minute)."""
    unreachable: bool = False
    """The BMC stops answering: Redfish requests hang until the client times out, IPMI packets
    are dropped."""
    ignore_soft_power_off: bool = False
    """The OS ignores a graceful shutdown (the caller must escalate to a hard power off)."""
    update_failure_rate: float = 0.0
    """Fraction of firmware updates whose task ends in Exception (a bad flash: the component
    keeps its old version)."""
    bmc_reboot_rate: float = 0.0
    """Fraction of firmware updates during which the BMC itself reboots: it does not answer
    for `bmc_reboot_s`, starting partway through the update (the update goes on)."""
    bmc_reboot_s: float = 90.0
    """How long a rebooting BMC does not answer."""

    def draw_update(self, rng: random.Random) -> "UpdateFate":
        """The fate of one firmware update. Draws from `rng` only for the rates that are set,
        so a fault-free BMC consumes no randomness."""
        fails = self.update_failure_rate > 0.0 and rng.random() < self.update_failure_rate
        if self.bmc_reboot_rate > 0.0 and rng.random() < self.bmc_reboot_rate:
            return UpdateFate(fails=fails, bmc_reboots=True, reboot_at=rng.uniform(0.1, 0.9))
        return UpdateFate(fails=fails) if fails else _UPDATE_OK

    def draw(
        self,
        rng: random.Random,
        *,
        in_flight: int = 0,
        write: bool = False,
        since_power_off_s: float | None = None,
    ) -> Reply:
        """The answer to one request, in order: unreachable, over the session cap, a hang, a
        500, a 409 (a power or boot `write` within the window after the power off that ended
        `since_power_off_s` ago), else OK. `in_flight`: other requests the BMC is serving.
        Draws from `rng` only when a rate is set, so a fault-free BMC consumes no randomness.
        """
        if self.unreachable:
            return Reply.TIMEOUT
        cap = self.session_cap
        if cap is not None and in_flight >= cap:
            return Reply.UNAVAILABLE
        timeouts = self.timeout_rate
        rates = timeouts + self.error_rate
        if rates > 0.0:
            draw = rng.random()
            if draw < timeouts:
                return Reply.TIMEOUT
            if draw < rates:
                return Reply.SERVER_ERROR
        if (
            write
            and since_power_off_s is not None
            and since_power_off_s < self.conflict_after_power_off_s
        ):
            return Reply.CONFLICT
        return Reply.OK


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateFate:
    """What `Faults.draw_update` decided for one firmware update."""

    fails: bool = False
    bmc_reboots: bool = False
    reboot_at: float = 0.0
    """When the BMC reboot starts, as a fraction of the update's duration."""


_UPDATE_OK = UpdateFate()

UPDATE_FAILED_MESSAGE = "firmware update failed: image verification failed on the device"
"""The task message of an update `Faults.update_failure_rate` made fail (every model uses it)."""


# --- Inventory ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Processor:
    socket: str
    vendor: str = "GenuineIntel"
    model: str = "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"
    arch: str = "x86_64"
    cores: int = 32
    threads: int = 64
    max_speed_mhz: int = 3200


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryModule:
    id: str
    size_mib: int = 32768
    speed_mhz: int = 3200
    memory_type: str = "DDR4"


@dataclass(frozen=True, slots=True, kw_only=True)
class Nic:
    id: str
    mac: str
    speed_gbps: int = 25
    model: str = "0x8086 0x158b"
    pxe: bool = False


class DiskType(StrEnum):
    HDD = "HDD"
    SSD = "SSD"
    NVME = "NVME"


@dataclass(frozen=True, slots=True, kw_only=True)
class Disk:
    id: str
    name: str
    size_bytes: int
    type: DiskType = DiskType.SSD
    vendor: str = "ACME"
    model: str = "ACME SSD 960"
    serial: str = ""

    @property
    def rotational(self) -> bool:
        return self.type is DiskType.HDD


@dataclass(frozen=True, slots=True, kw_only=True)
class Inventory:
    manufacturer: str = "Metalcubed"
    model: str = "Emulated Server M3"
    serial: str = ""
    sku: str = ""
    bios_vendor: str = "Metalcubed Firmware"
    bios_date: str = "2026-01-15"
    processors: tuple[Processor, ...] = ()
    memory: tuple[MemoryModule, ...] = ()
    nics: tuple[Nic, ...] = ()
    disks: tuple[Disk, ...] = ()

    @property
    def ram_mib(self) -> int:
        return sum(m.size_mib for m in self.memory)


# --- BIOS ---------------------------------------------------------------------------------------


class BiosType(StrEnum):
    ENUMERATION = "Enumeration"
    STRING = "String"
    INTEGER = "Integer"
    BOOLEAN = "Boolean"


BiosValue = str | int | bool


@dataclass(frozen=True, slots=True, kw_only=True)
class BiosAttribute:
    """One entry of the emulated BIOS attribute registry."""

    name: str
    type: BiosType
    default: BiosValue
    values: tuple[str, ...] = ()
    lower: int | None = None
    upper: int | None = None
    max_length: int | None = None
    read_only: bool = False
    reset_required: bool = True

    def check(self, value: object) -> str | None:
        """Why `value` is not acceptable, or None when it is."""
        if self.read_only:
            return f"{self.name} is read-only"
        if self.type is BiosType.ENUMERATION:
            if not isinstance(value, str) or value not in self.values:
                return f"{self.name} must be one of {', '.join(self.values)}"
        elif self.type is BiosType.INTEGER:
            if isinstance(value, bool) or not isinstance(value, int):
                return f"{self.name} must be an integer"
            if self.lower is not None and value < self.lower:
                return f"{self.name} must be >= {self.lower}"
            if self.upper is not None and value > self.upper:
                return f"{self.name} must be <= {self.upper}"
        elif self.type is BiosType.BOOLEAN:
            if not isinstance(value, bool):
                return f"{self.name} must be a boolean"
        elif not isinstance(value, str) or (
            self.max_length is not None and len(value) > self.max_length
        ):
            return f"{self.name} must be a string of at most {self.max_length} characters"
        return None


DEFAULT_BIOS_REGISTRY: tuple[BiosAttribute, ...] = (
    BiosAttribute(name="BootMode", type=BiosType.ENUMERATION, default="Uefi",
                  values=("Uefi", "Bios")),
    BiosAttribute(name="ProcVirtualization", type=BiosType.ENUMERATION, default="Enabled",
                  values=("Enabled", "Disabled")),
    BiosAttribute(name="ProcHyperthreading", type=BiosType.ENUMERATION, default="Enabled",
                  values=("Enabled", "Disabled")),
    BiosAttribute(name="SriovGlobalEnable", type=BiosType.ENUMERATION, default="Disabled",
                  values=("Enabled", "Disabled")),
    BiosAttribute(name="PxeRetryCount", type=BiosType.INTEGER, default=3, lower=0, upper=10),
    BiosAttribute(name="SecureBoot", type=BiosType.BOOLEAN, default=False),
    BiosAttribute(name="AssetTag", type=BiosType.STRING, default="", max_length=32),
    BiosAttribute(name="SystemServiceTag", type=BiosType.STRING, default="M3SVC01",
                  read_only=True, reset_required=False),
)


class TaskState(StrEnum):
    """A firmware update task's state (Redfish TaskState values)."""

    RUNNING = "Running"
    COMPLETED = "Completed"
    EXCEPTION = "Exception"


@dataclass(frozen=True, slots=True, kw_only=True)
class FirmwareTask:
    """One firmware update (Redfish UpdateService.SimpleUpdate and its task)."""

    id: str
    component: str
    image_url: str
    version: str
    """The version `image_url` holds (what the component reports once it is applied)."""
    state: TaskState = TaskState.RUNNING
    message: str = ""
    """Why it failed (Exception), else ""."""
    started_at: float
    completes_at: float


DEFAULT_FIRMWARE: Mapping[str, str] = {"bios": "2.1.7", "bmc": "5.10.00"}
"""The firmware versions a host starts with (component -> version)."""


class HostModelError(ValueError):
    """A request the emulated server refuses (unknown BIOS attribute, bad value, bad device)."""


# --- Power and boot -----------------------------------------------------------------------------


class Power(StrEnum):
    ON = "On"
    OFF = "Off"
    POWERING_ON = "PoweringOn"
    POWERING_OFF = "PoweringOff"


class BootDevice(StrEnum):
    """Redfish BootSourceOverrideTarget names, which the IPMI emulator maps to its own."""

    NONE = "None"
    PXE = "Pxe"
    HDD = "Hdd"
    CD = "Cd"
    BIOS_SETUP = "BiosSetup"
    UEFI_HTTP = "UefiHttp"
    USB = "Usb"


class BootMode(StrEnum):
    UEFI = "UEFI"
    LEGACY = "Legacy"


class MediaSlot(StrEnum):
    CD = "Cd"
    USB = "Floppy"


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerTiming:
    """How long transitions take (seconds). All zero: instant, the default for tests."""

    power_on_s: float = 0.0
    soft_off_s: float = 0.0
    hard_off_s: float = 0.0
    firmware_update_s: float = 0.0
    """A firmware update's flash, from the accepted request to the reboot that applies it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Media:
    image_url: str = ""
    inserted: bool = False
    write_protected: bool = True
    size_bytes: int = 0
    """Bytes the BMC fetched from image_url when it was inserted."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BootEvent:
    """What a host booted from, passed to `on_boot` hooks."""

    host: "HostModel"
    device: BootDevice
    mode: BootMode
    media_url: str
    """The inserted virtual CD's URL when booting from CD, else ""."""


BootHook = Callable[[BootEvent], None]


@dataclass(slots=True)
class _Pending:
    target: Power
    completes_at: float
    timer: threading.Timer | None


class HostModel:
    """One emulated server. See the module docstring for the model; every method is thread-safe."""

    def __init__(
        self,
        *,
        name: str,
        system_uuid: str | None = None,
        inventory: Inventory | None = None,
        bios_registry: tuple[BiosAttribute, ...] = DEFAULT_BIOS_REGISTRY,
        firmware: Mapping[str, str] | None = None,
        timing: PowerTiming | None = None,
        faults: Faults | None = None,
        power: Power = Power.OFF,
        boot_mode: BootMode = BootMode.UEFI,
        clock: Callable[[], float] = time.monotonic,
        seed: int = 0,
    ) -> None:
        self.name = name
        self.uuid = system_uuid or str(uuid.uuid5(uuid.NAMESPACE_URL, f"metalcubed:{name}"))
        self.inventory = inventory or Inventory()
        self.registry = {attr.name: attr for attr in bios_registry}
        self.timing = timing or PowerTiming()
        self.faults = faults or Faults()
        self.rng = random.Random(seed)
        """Per-host randomness for fault draws (seeded: the same run injects the same faults)."""
        self._clock = clock
        self._lock = threading.RLock()
        self._power = power
        self._pending: _Pending | None = None
        self._last_power_off_at: float | None = None
        self._boot_device = BootDevice.NONE
        self._boot_persistent = False
        self._boot_mode = boot_mode
        self._media: dict[MediaSlot, Media] = {slot: Media() for slot in MediaSlot}
        self._bios: dict[str, BiosValue] = {a.name: a.default for a in bios_registry}
        self._bios_pending: dict[str, BiosValue] = {}
        self._firmware = dict(firmware or DEFAULT_FIRMWARE)
        self._tasks: dict[str, FirmwareTask] = {}
        self._running: dict[str, UpdateFate] = {}
        """Task id -> its fate, for the updates not finished yet."""
        self._bmc_down: list[tuple[float, float]] = []
        self._task_timers: list[threading.Timer] = []
        """(from, until) clock times when the BMC reboots and does not answer."""
        self._hooks: list[BootHook] = []
        self.boots: list[BootEvent] = []
        """Every boot so far, oldest first (for tests and the agent emulator)."""
        self.history: collections.deque[tuple[float, str]] = collections.deque(maxlen=256)
        """Recent power requests and transitions (clock time, what), for explaining a run."""

    # -- hooks ------------------------------------------------------------------------------------

    def on_boot(self, hook: BootHook) -> None:
        """Call `hook` every time the host finishes powering on (from the resolving thread)."""
        with self._lock:
            self._hooks.append(hook)

    # -- power ------------------------------------------------------------------------------------

    @property
    def power(self) -> Power:
        with self._lock:
            events = self._resolve()
        self._fire(events)
        return self._power

    def power_on(self) -> None:
        """Start powering on; a no-op when on or already powering on."""
        with self._lock:
            events = self._resolve()
            self._note(f"power on requested ({self._power.value})")
            if self._power in (Power.OFF, Power.POWERING_OFF):
                self._cancel_pending()
                events += self._start(Power.ON, self.timing.power_on_s)
        self._fire(events)

    def power_off(self, *, hard: bool) -> None:
        """Start a graceful (soft) or immediate (hard) power off; a no-op when off."""
        with self._lock:
            events = self._resolve()
            self._note(f"power off {'hard' if hard else 'soft'} requested ({self._power.value})")
            if self._power in (Power.ON, Power.POWERING_ON):
                if not hard and self.faults.ignore_soft_power_off:
                    return
                self._cancel_pending()
                delay = self.timing.hard_off_s if hard else self.timing.soft_off_s
                events += self._start(Power.OFF, delay)
        self._fire(events)

    def reboot(self, *, hard: bool) -> None:
        """Power cycle: off at once (hard) or after the soft-off time, then on; on if off."""
        with self._lock:
            events = self._resolve()
            self._note(f"reboot {'hard' if hard else 'soft'} requested ({self._power.value})")
            self._cancel_pending()
            if self._power is not Power.OFF:
                self._power = Power.OFF
                self._last_power_off_at = self._clock()
            delay = (0.0 if hard else self.timing.soft_off_s) + self.timing.power_on_s
            events += self._start(Power.ON, delay)
        self._fire(events)

    def since_power_off_s(self) -> float | None:
        """Seconds since the last power off completed (None: never powered off)."""
        with self._lock:
            events = self._resolve()
            off_at = self._last_power_off_at
        self._fire(events)
        return None if off_at is None else self._clock() - off_at

    def in_conflict_window(self) -> bool:
        """True during `faults.conflict_after_power_off_s` after the last power off."""
        since = self.since_power_off_s()
        return since is not None and since < self.faults.conflict_after_power_off_s

    def _start(self, target: Power, delay_s: float) -> list[BootEvent]:
        if delay_s <= 0:
            return self._complete(target)
        self._power = Power.POWERING_ON if target is Power.ON else Power.POWERING_OFF
        timer = threading.Timer(delay_s, self._on_timer)
        timer.daemon = True
        self._pending = _Pending(target, self._clock() + delay_s, timer)
        timer.start()
        return []

    def _on_timer(self) -> None:
        with self._lock:
            events = self._resolve(force=True)
        self._fire(events)

    def _cancel_pending(self) -> None:
        if self._pending is not None and self._pending.timer is not None:
            self._pending.timer.cancel()
        self._pending = None

    def _resolve(self, *, force: bool = False) -> list[BootEvent]:
        events = self._resolve_tasks() if self._running else []
        pending = self._pending
        if pending is None or (not force and self._clock() < pending.completes_at):
            return events
        self._pending = None
        return events + self._complete(pending.target)

    def _note(self, what: str) -> None:
        self.history.append((self._clock(), what))

    def _complete(self, target: Power) -> list[BootEvent]:
        self._note(f"now {target.value}")
        self._power = target
        if target is Power.OFF:
            self._last_power_off_at = self._clock()
            return []
        return [self._boot()]

    def _boot(self) -> BootEvent:
        # Firmware applies staged BIOS settings, then consumes a one-time boot override.
        self._bios.update(self._bios_pending)
        self._bios_pending.clear()
        device = self._boot_device if self._boot_device is not BootDevice.NONE else BootDevice.HDD
        if not self._boot_persistent:
            self._boot_device = BootDevice.NONE
        cd = self._media[MediaSlot.CD]
        url = cd.image_url if device is BootDevice.CD and cd.inserted else ""
        event = BootEvent(host=self, device=device, mode=self._boot_mode, media_url=url)
        self.boots.append(event)
        return event

    def _fire(self, events: list[BootEvent]) -> None:
        if not events:
            return
        with self._lock:
            hooks = list(self._hooks)
        for event in events:
            for hook in hooks:
                hook(event)

    # -- boot override and mode --------------------------------------------------------------------

    def boot_override(self) -> tuple[BootDevice, bool]:
        """(device, persistent); device NONE when no override is set."""
        with self._lock:
            return self._boot_device, self._boot_persistent

    def set_boot_device(self, device: BootDevice, *, persistent: bool) -> None:
        with self._lock:
            self._boot_device = device
            self._boot_persistent = persistent

    @property
    def boot_mode(self) -> BootMode:
        with self._lock:
            return self._boot_mode

    def set_boot_mode(self, mode: BootMode) -> None:
        with self._lock:
            self._boot_mode = mode
            self._bios["BootMode"] = "Uefi" if mode is BootMode.UEFI else "Bios"

    # -- virtual media -----------------------------------------------------------------------------

    def media(self, slot: MediaSlot) -> Media:
        with self._lock:
            return self._media[slot]

    def insert_media(self, slot: MediaSlot, image_url: str, *, size_bytes: int = 0,
                     write_protected: bool = True) -> None:
        with self._lock:
            self._media[slot] = Media(image_url=image_url, inserted=True,
                                      write_protected=write_protected, size_bytes=size_bytes)

    def eject_media(self, slot: MediaSlot) -> None:
        with self._lock:
            self._media[slot] = Media()

    # -- BIOS -------------------------------------------------------------------------------------

    def bios(self) -> dict[str, BiosValue]:
        """Current attribute values (a copy)."""
        with self._lock:
            return dict(self._bios)

    def bios_pending(self) -> dict[str, BiosValue]:
        with self._lock:
            return dict(self._bios_pending)

    def stage_bios(self, changes: Mapping[str, object]) -> None:
        """Validate `changes` against the registry and stage them for the next boot.

        Raises HostModelError naming the first bad attribute; nothing is staged then.
        """
        staged: dict[str, BiosValue] = {}
        for name, value in changes.items():
            attr = self.registry.get(name)
            if attr is None:
                raise HostModelError(f"unknown BIOS attribute {name}")
            problem = attr.check(value)
            if problem is not None:
                raise HostModelError(problem)
            assert isinstance(value, str | int | bool)
            staged[name] = value
        with self._lock:
            self._bios_pending.update(staged)

    def reset_bios(self) -> None:
        with self._lock:
            self._bios_pending = {a.name: a.default for a in self.registry.values()}

    # -- firmware ---------------------------------------------------------------------------------

    def firmware(self) -> dict[str, str]:
        with self._lock:
            events = self._resolve()
            versions = dict(self._firmware)
        self._fire(events)
        return versions

    def start_firmware_update(self, component: str, image_url: str, *,
                              version: str) -> FirmwareTask:
        """Start flashing `component` from `image_url` (which holds `version`); returns the task.

        The flash takes `timing.firmware_update_s`. Then the component reports `version` (or the
        task ends in Exception when `faults.update_failure_rate` drew a failure, and the old
        version stays), and the update is applied as real firmware does: a BMC update reboots
        the BMC (it does not answer for `faults.bmc_reboot_s`), any other component's update
        power-cycles a host that is on (staged BIOS settings apply at that boot too).
        `faults.bmc_reboot_rate` makes the BMC reboot partway through the flash as well.
        Raises HostModelError for an unknown component or one already being flashed.
        """
        with self._lock:
            events = self._resolve()
            if component not in self._firmware:
                raise HostModelError(
                    f"unknown firmware component {component}; known: "
                    f"{', '.join(sorted(self._firmware))}"
                )
            for task_id in self._running:
                if self._tasks[task_id].component == component:
                    raise HostModelError(f"an update of {component} is already running")
            fate = self.faults.draw_update(self.rng)
            now = self._clock()
            duration = self.timing.firmware_update_s
            task = FirmwareTask(
                id=f"task-{len(self._tasks) + 1}", component=component, image_url=image_url,
                version=version, started_at=now, completes_at=now + duration,
            )
            self._tasks[task.id] = task
            self._running[task.id] = fate
            self._note(f"firmware update of {component} to {version} started")
            if fate.bmc_reboots:
                down = now + duration * fate.reboot_at
                self._bmc_down.append((down, down + self.faults.bmc_reboot_s))
            if duration > 0:
                timer = threading.Timer(duration, self._on_task_timer)
                timer.daemon = True
                self._task_timers = [t for t in self._task_timers if t.is_alive()] + [timer]
                timer.start()
            else:
                events += self._resolve_tasks()
        self._fire(events)
        return self.firmware_task(task.id)

    def fail_firmware_update(self, component: str, image_url: str, message: str) -> FirmwareTask:
        """Record an update that failed before any flash (the BMC could not fetch or use the
        image): a task already in Exception with `message`, kept with the others."""
        with self._lock:
            now = self._clock()
            task = FirmwareTask(
                id=f"task-{len(self._tasks) + 1}", component=component, image_url=image_url,
                version="", state=TaskState.EXCEPTION, message=message, started_at=now,
                completes_at=now,
            )
            self._tasks[task.id] = task
            self._note(f"firmware update of {component} failed: {message}")
        return task

    def firmware_task(self, task_id: str) -> FirmwareTask:
        """The task as it stands now; KeyError when there is no such task."""
        with self._lock:
            events = self._resolve()
            task = self._tasks[task_id]
        self._fire(events)
        return task

    def firmware_tasks(self) -> tuple[FirmwareTask, ...]:
        """Every update task so far, oldest first."""
        with self._lock:
            events = self._resolve()
            tasks = tuple(self._tasks.values())
        self._fire(events)
        return tasks

    def bmc_rebooting(self) -> bool:
        """True while the BMC reboots (after a BMC update, or a fault): it does not answer."""
        with self._lock:
            events = self._resolve()
            now = self._clock()
            self._bmc_down = [w for w in self._bmc_down if w[1] > now]
            down = any(start <= now for start, _ in self._bmc_down)
        self._fire(events)
        return down

    def _on_task_timer(self) -> None:
        with self._lock:
            events = self._resolve()
        self._fire(events)

    def _resolve_tasks(self) -> list[BootEvent]:
        """Finish the updates that are due (under the lock)."""
        now = self._clock()
        events: list[BootEvent] = []
        for task_id, fate in list(self._running.items()):
            task = self._tasks[task_id]
            if task.completes_at > now:
                continue
            del self._running[task_id]
            if fate.fails:
                self._tasks[task_id] = dataclasses.replace(
                    task, state=TaskState.EXCEPTION, message=UPDATE_FAILED_MESSAGE
                )
                self._note(f"firmware update of {task.component} failed")
                continue
            self._firmware[task.component] = task.version
            self._tasks[task_id] = dataclasses.replace(task, state=TaskState.COMPLETED)
            self._note(f"firmware update of {task.component} to {task.version} applied")
            if task.component == "bmc":
                self._bmc_down.append((task.completes_at,
                                       task.completes_at + self.faults.bmc_reboot_s))
            elif self._power is Power.ON and self._pending is None:
                self._power = Power.OFF
                self._last_power_off_at = now
                events += self._start(Power.ON, self.timing.power_on_s)
        return events

    def set_firmware(self, component: str, version: str) -> None:
        with self._lock:
            self._firmware[component] = version

    def close(self) -> None:
        """Cancel pending transition and update timers (the state stays as it is)."""
        with self._lock:
            if self._pending is not None and self._pending.timer is not None:
                self._pending.timer.cancel()
            for timer in self._task_timers:
                timer.cancel()


# --- Generating hosts ---------------------------------------------------------------------------


def _mac(index: int, port: int) -> str:
    value = (index << 4) | port
    return "52:54:00:" + ":".join(f"{(value >> s) & 0xFF:02x}" for s in (16, 8, 0))


def make_inventory(index: int, *, manufacturer: str = "Metalcubed") -> Inventory:
    """A plausible two-socket server with two NICs and two disks, distinct per `index`."""
    return Inventory(
        manufacturer=manufacturer,
        serial=f"M3-{index:06d}",
        sku=f"SKU-{index % 7}",
        processors=(Processor(socket="CPU1"), Processor(socket="CPU2")),
        memory=tuple(MemoryModule(id=f"DIMM{i}") for i in range(4)),
        nics=(
            Nic(id="NIC.1", mac=_mac(index, 1), pxe=True),
            Nic(id="NIC.2", mac=_mac(index, 2)),
        ),
        disks=(
            Disk(id="Disk.0", name="/dev/sda", size_bytes=480 * 10**9,
                 serial=f"S{index:06d}A"),
            Disk(id="Disk.1", name="/dev/nvme0n1", size_bytes=1920 * 10**9,
                 type=DiskType.NVME, model="ACME NVMe 1920", serial=f"S{index:06d}B"),
        ),
    )


def make_hosts(count: int, *, prefix: str = "host", timing: PowerTiming | None = None,
               manufacturer: str = "Metalcubed", seed: int = 0) -> list[HostModel]:
    """`count` hosts named `<prefix>-<i>`, each with its own inventory and fault RNG."""
    return [
        HostModel(name=f"{prefix}-{i}", inventory=make_inventory(i, manufacturer=manufacturer),
                  timing=timing, seed=seed + i)
        for i in range(count)
    ]

