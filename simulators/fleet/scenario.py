"""Scenario files: what fleet to simulate, how its hardware behaves, and what to do with it.

A scenario is a YAML mapping (docs/scenarios.md is the reference) with these sections:

- `controller`: BMO's settings (concurrency, PROVISIONING_LIMIT, retry limit, client QPS/burst),
  the Kubernetes API latencies;
- `provisioner`: the provisioning engine's settings (poll delays, ramdisk timeout, power sync
  interval, fast track) and the simulated driver's BMC timeout and retries;
- `profiles`: hardware profiles (timing distributions of power, POST, boot, inspection,
  cleaning, disk write), added to the shipped library in scenarios/profiles/;
- `groups`: the fleet, as groups of identical hosts (count, profile, BMC scheme, boot method);
- `images`, `firmware` (firmware images a service step may flash), `faults`, `workload`
  (enroll, provision, service, deprovision, delete; at a time or once the hosts have settled in
  a state), `slos` (targets on the report's figures), `time_limit`.

Parsing is strict and happens before anything runs: unknown keys, wrong types, negative
durations, a p99 below its median, unknown profiles/groups/images/states, and a boot method the
BMC scheme cannot do are all reported as `SpecError`s naming the field path
(`groups[1].profile: unknown profile 'foo'; known: ...`), gathered into one `ScenarioError`.
"""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import yaml

from metalcubed.core import bmcaddress, controllerset, outcome, yamlinput
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.simulators import firmwareimage
from metalcubed.simulators.fleet import clusterspec, quantity
from metalcubed.simulators.fleet import distribution as dist

T = TypeVar("T")

DEFAULT_SCENARIO = "quickstart"
"""The scenario `metalcubed sim` runs when given none (shipped as package data)."""


class ScenarioError(outcome.MetalcubedError):
    """A scenario that cannot run; `errors` name every offending field."""

    def __init__(self, source: str, errors: list[outcome.SpecError]) -> None:
        lines = "\n".join(f"  {err.field}: {err.message}" for err in errors)
        super().__init__(f"invalid scenario {source}:\n{lines}")
        self.source = source
        self.errors = errors


# --- The model ---------------------------------------------------------------------------------


class BootMethod(StrEnum):
    """How a host boots the deploy ramdisk; fixed by the BMC scheme's boot interface."""

    PXE = "pxe"
    VIRTUAL_MEDIA = "virtual-media"
    UEFI_HTTP = "uefi-http"


class Action(StrEnum):
    ENROLL = "enroll"
    """Create the hosts' BMC Secrets and BareMetalHosts."""
    PROVISION = "provision"
    """Set spec.image (and online: true) on the hosts."""
    DEPROVISION = "deprovision"
    """Clear spec.image (and set online: false)."""
    DELETE = "delete"
    """Delete the BareMetalHosts."""
    SERVICE = "service"
    """Change firmware on provisioned hosts as a user does: a HostUpdatePolicy allowing it,
    the BIOS settings into HostFirmwareSettings spec.settings, the firmware images into
    HostFirmwareComponents spec.updates, then the reboot annotation (servicing runs while the
    host is off)."""


class UpdatePolicy(StrEnum):
    """What the service step writes into the host's HostUpdatePolicy (both fields)."""

    ON_REBOOT = "onReboot"
    """Servicing allowed when the provisioned host reboots (what a live update needs)."""
    ON_PREPARING = "onPreparing"
    """Changes wait for the next preparing: a provisioned host is not serviced."""
    NONE = "none"
    """No HostUpdatePolicy at all: a provisioned host is not serviced (upstream's default)."""


class ProvisionerBackend(StrEnum):
    """What sits behind the Provisioner port in the fleet model: the engine that ships."""

    ENGINE = "engine"
    """metalcubed's own engine (core/provisioning) over the fleet's BMCs and agents
    (fleet/engine.py), as `metalcubed manager` runs it."""


class SloOp(StrEnum):
    MAX = "max"
    MIN = "min"


# Defaults of the settings below (module constants: the distributions are frozen values).
_DEFAULT_API_LATENCY = dist.LogNormal(median=0.008, p99=0.08)
_DEFAULT_WATCH_LATENCY = dist.LogNormal(median=0.015, p99=0.15)
_DEFAULT_RECONCILE_CPU = dist.Fixed(value=0.002)
_DEFAULT_API_LATENCY_2 = dist.LogNormal(median=0.01, p99=0.1)
_DEFAULT_POWER_ON = dist.Uniform(low=1.0, high=5.0)
_DEFAULT_POWER_OFF = dist.Uniform(low=2.0, high=10.0)
_DEFAULT_POST = dist.LogNormal(median=150.0, p99=420.0)
_DEFAULT_PXE_BOOT = dist.LogNormal(median=45.0, p99=150.0)
_DEFAULT_VMEDIA_BOOT = dist.LogNormal(median=70.0, p99=200.0)
_DEFAULT_INSPECTION = dist.LogNormal(median=40.0, p99=120.0)
_DEFAULT_CLEANING = dist.LogNormal(median=30.0, p99=90.0)
_DEFAULT_DISK_WRITE_MBPS = dist.Normal(mean=150.0, stddev=30.0)
_DEFAULT_OS_BOOT = dist.LogNormal(median=60.0, p99=180.0)
_DEFAULT_BMC_LATENCY = dist.LogNormal(median=0.3, p99=3.0)
_DEFAULT_FIRMWARE_UPDATE = dist.LogNormal(median=300.0, p99=900.0)
_DEFAULT_BMC_REBOOT = dist.LogNormal(median=90.0, p99=240.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class ControllerSettings:
    """BMO and its Kubernetes client (bmo.md 6.1 defaults)."""

    concurrency: int = 8
    """MaxConcurrentReconciles: workers of the BareMetalHost controller (upstream min(CPUs, 8))."""
    provisioning_limit: int = 20
    """PROVISIONING_LIMIT: hosts busy in the provisioner at once (virtual media exempt)."""
    max_provisioning_retries: int = 5
    """--max-provisioning-retries (0: unlimited)."""
    kube_api_qps: float = 20.0
    kube_api_burst: int = 30
    api_latency: dist.Distribution = _DEFAULT_API_LATENCY
    """Round trip of one API write (create, update, status update, delete)."""
    watch_latency: dist.Distribution = _DEFAULT_WATCH_LATENCY
    """From a write landing to the watch event reaching the workqueue."""
    reconcile_cpu: dist.Distribution = _DEFAULT_RECONCILE_CPU
    """CPU time of one reconcile pass, besides the calls it makes."""
    provisioner: ProvisionerBackend = ProvisionerBackend.ENGINE
    """The backend behind the Provisioner port: `engine` (the only one; the Ironic-like
    comparison model was removed)."""
    controllers: tuple[str, ...] = ()
    """The controllers to run, by name (core/controllerset); empty: every one the manager
    runs. The BareMetalHost controller is always needed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvisionerSettings:
    """The provisioning engine's settings (core EngineConfig) and how the simulated BMC
    driver and agent client behave (timeouts, retries, request latency)."""

    api_latency: dist.Distribution = _DEFAULT_API_LATENCY_2
    """One deploy-agent API request (status, command, inventory)."""
    poll_s: float = 10.0
    """EngineConfig.poll_s: requeue delay while a slow operation runs (ramdisk boot,
    inspection, cleaning, image write; upstream's longRetryDelay)."""
    quick_poll_s: float = 3.0
    """EngineConfig.short_poll_s: requeue delay while a quick operation runs (power, media)."""
    ramdisk_timeout_s: float = 1800.0
    """EngineConfig.ramdisk_timeout_s: how long to wait for the deploy agent after booting the
    ramdisk (Ironic's inspect, deploy and clean callback timeouts, 30 min)."""
    power_sync_interval_s: float = 60.0
    """EngineConfig.power_sync_interval_s: Ironic's sync_power_state_interval."""
    fast_track: bool = True
    """EngineConfig.fast_track: keep a running agent between operations (inspection or
    cleaning, then deployment) instead of booting a fresh ramdisk: Metal3's ironic-image
    enables it by default (IRONIC_FAST_TRACK=true); plain Ironic does not."""
    fast_track_timeout_s: float = 300.0
    """EngineConfig.fast_track_timeout_s: Ironic's [deploy]fast_track_timeout."""
    bmc_timeout_s: float = 60.0
    """Client timeout of one BMC request (what a hung request costs)."""
    bmc_retries: int = 5
    """Attempts of a BMC request that timed out (or, for a read, got 5xx/503), as a driver
    retries (sushy's and Ironic's connection_attempts)."""
    bmc_retry_interval_s: float = 4.0
    """Wait between those attempts; also the engine's delay after a busy BMC or a 409
    (EngineConfig.busy_retry_s)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HardwareProfile:
    """How one kind of server behaves: every physical step is a distribution (seconds)."""

    name: str
    vendor: str = "Generic"
    model: str = "Server"
    cpu_count: int = 32
    ram_gib: int = 256
    disk_gib: int = 960
    power_on: dist.Distribution = _DEFAULT_POWER_ON
    """Chassis power-on after the BMC accepted the request."""
    power_off: dist.Distribution = _DEFAULT_POWER_OFF
    post: dist.Distribution = _DEFAULT_POST
    """Power-on self test, from power-on to the boot loader."""
    pxe_boot: dist.Distribution = _DEFAULT_PXE_BOOT
    """DHCP, iPXE, kernel and ramdisk over the network, until the agent's first heartbeat."""
    vmedia_boot: dist.Distribution = _DEFAULT_VMEDIA_BOOT
    """The same from a virtual-media ISO (no DHCP; the ISO streams over the BMC)."""
    inspection: dist.Distribution = _DEFAULT_INSPECTION
    """The agent collecting and posting the inventory."""
    cleaning: dist.Distribution = _DEFAULT_CLEANING
    """Metadata cleaning (wipe partition tables)."""
    disk_write_mbps: dist.Distribution = _DEFAULT_DISK_WRITE_MBPS
    """Image write throughput in MB/s (raw stream; qcow2 converts first)."""
    qcow2_convert_mbps: float = 400.0
    """Conversion throughput for qcow2 images, added to the write."""
    os_boot: dist.Distribution = _DEFAULT_OS_BOOT
    """From the boot loader to the installed OS being up."""
    bmc_latency: dist.Distribution = _DEFAULT_BMC_LATENCY
    """One BMC request's round trip."""
    bmc_session_cap: int = 8
    """Concurrent sessions the BMC serves; a request past the cap gets HTTP 503."""
    firmware_update: dist.Distribution = _DEFAULT_FIRMWARE_UPDATE
    """A firmware update's flash, from the accepted SimpleUpdate to the reboot applying it."""
    bmc_reboot: dist.Distribution = _DEFAULT_BMC_REBOOT
    """A BMC's restart (after a BMC update, or a fault during an update): it answers nothing."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Group:
    """Identical hosts."""

    name: str
    count: int
    profile: str
    bmc_scheme: str
    boot: BootMethod
    hosts_per_bmc: int = 1
    """>1: hosts share one BMC endpoint (a chassis manager), and so its session cap."""
    namespace: str = "metal3"
    automated_cleaning_mode: bmh.AutomatedCleaningMode = bmh.AutomatedCleaningMode.METADATA


@dataclass(frozen=True, slots=True, kw_only=True)
class Image:
    name: str
    url: str
    checksum: str
    format: bmh.ImageFormat
    size_bytes: int


FIRMWARE_COMPONENTS = ("bios", "bmc")
"""Components a firmware image may target (HostFirmwareComponents: bios, bmc; nic:* is not
modelled in the fleet's machines)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FirmwareImage:
    """A firmware image a service step flashes (HostFirmwareComponents spec.updates[])."""

    name: str
    component: str
    url: str
    version: str
    """The version the component reports once the image is applied (by default the one the
    URL's file name carries, `<component>-<version>.fwimg`, as the emulators read it)."""
    served: bool = True
    """False: the URL answers 404 (a bad URL a user wrote): the update must fail visibly."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BmcFaults:
    error_rate: float = 0.0
    """Fraction of BMC requests answered HTTP 500."""
    timeout_rate: float = 0.0
    """Fraction of BMC requests that hang until the client times out."""
    conflict_after_power_off_s: float = 0.0
    """Power and boot writes within this window after a power-off get HTTP 409."""
    session_cap: int | None = None
    """Overrides every profile's bmc_session_cap (503 past it)."""
    update_failure: float = 0.0
    """Fraction of firmware updates whose flash fails (the task ends in Exception)."""
    reboot_during_update: float = 0.0
    """Fraction of firmware updates during which the BMC reboots (profile's bmc_reboot)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HostFaults:
    post_hang: float = 0.0
    """Fraction of hosts that never finish POST."""
    disk_failure: float = 0.0
    """Fraction of hosts whose disk fails every image write."""
    agent_crash: float = 0.0
    """Chance that a booted deploy agent crashes (per boot) before finishing its step."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Faults:
    bmc: BmcFaults = BmcFaults()
    hosts: HostFaults = HostFaults()
    groups: tuple[str, ...] = ()
    """Groups the faults apply to; empty: all."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One workload step: an action on a set of hosts, at a time or after a condition."""

    name: str
    action: Action
    groups: tuple[str, ...] = ()
    """Empty: every group."""
    at_s: float | None = None
    """Fire at this simulated time."""
    when_state: str | None = None
    """Fire once every selected host has settled in this state (a provisioning state's value,
    or `deleted`), or in error."""
    delay_s: float = 0.0
    """Extra wait after the condition holds."""
    image: str = ""
    batch_size: int = 0
    """>0: act on this many hosts at a time ..."""
    batch_interval_s: float = 0.0
    """... every this many seconds."""
    per_host: bool = False
    """Act on each host as soon as it settles in `when` (after the previous step acted on it),
    instead of once for all hosts: a rolling pipeline, like CAPM3 taking hosts as they
    become available."""
    settings: tuple[tuple[str, str | int], ...] = ()
    """service: BIOS settings to set (HostFirmwareSettings spec.settings), in file order."""
    firmware: tuple[str, ...] = ()
    """service: names of `firmware` images to flash (HostFirmwareComponents spec.updates)."""
    policy: UpdatePolicy = UpdatePolicy.ON_REBOOT
    """service: the HostUpdatePolicy written first."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Slo:
    """A target on one figure of the report (`metric` is its dotted path)."""

    name: str
    metric: str
    op: SloOp
    target: float
    """For host-count metrics a fraction of hosts is written as `99%` and resolved per run."""
    target_fraction: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    name: str
    description: str = ""
    seed: int = 1
    time_limit_s: float = 24 * 3600.0
    settle_error_count: int = 3
    """A host in error counts as settled once its errorCount reaches this (retries continue)."""
    controller: ControllerSettings = ControllerSettings()
    provisioner: ProvisionerSettings = ProvisionerSettings()
    profiles: dict[str, HardwareProfile] = field(default_factory=dict)
    groups: tuple[Group, ...] = ()
    images: dict[str, Image] = field(default_factory=dict)
    faults: Faults = Faults()
    workload: tuple[Step, ...] = ()
    slos: tuple[Slo, ...] = ()
    firmware: dict[str, FirmwareImage] = field(default_factory=dict)
    clusters: "clusterspec.Clusters | None" = None
    """Cluster API clusters over the hosts (clusterspec.py); None: hosts only."""

    @property
    def services(self) -> bool:
        """Whether the workload services hosts (the firmware controllers and checks run)."""
        return any(step.action == Action.SERVICE for step in self.workload)

    @property
    def host_count(self) -> int:
        return sum(group.count for group in self.groups)

    def with_hosts(self, hosts: int) -> "Scenario":
        """The same scenario scaled to `hosts` hosts, split over the groups in proportion
        (and, with clusters, each MachineDeployment's replicas too, rounded down).

        Largest remainder keeps the total exact and the split deterministic.
        """
        total = self.host_count
        if hosts <= 0:
            raise ValueError("hosts must be positive")
        shares = [group.count * hosts / total for group in self.groups]
        counts = [math.floor(share) for share in shares]
        order = sorted(
            range(len(shares)), key=lambda i: (-(shares[i] - counts[i]), i)
        )
        for i in order[: hosts - sum(counts)]:
            counts[i] += 1
        groups = tuple(
            replace(group, count=count)
            for group, count in zip(self.groups, counts, strict=True)
            if count > 0
        )
        kept = {group.name for group in groups}
        workload = tuple(
            replace(step, groups=tuple(g for g in step.groups if g in kept))
            for step in self.workload
            if not step.groups or any(g in kept for g in step.groups)
        )
        clusters = self.clusters
        if clusters is not None:
            # Machines in proportion to the hosts, so the clusters still fit the fleet.
            def scaled(replicas: int) -> int:
                return math.floor(replicas * hosts / total)

            clusters = replace(clusters, replicas=scaled(clusters.replicas), steps=tuple(
                replace(step, replicas=scaled(step.replicas)) for step in clusters.steps))
        return replace(self, groups=groups, workload=workload, clusters=clusters)


# --- Parsing -----------------------------------------------------------------------------------


class _Invalid(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message



def _mapping(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Invalid(path, f"expected a mapping, got {_type_name(value)}")
    for key in value:
        if not isinstance(key, str):
            raise _Invalid(path, f"keys must be strings, got {key!r}")
    return value


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)


def _check_keys(data: Mapping[str, Any], path: str, allowed: tuple[str, ...]) -> None:
    for key in data:
        if key not in allowed:
            raise _Invalid(
                _join(path, key), f"unknown key; allowed here: {', '.join(sorted(allowed))}"
            )


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _Invalid(path, f"expected a string, got {_type_name(value)}")
    return value


def _int(value: Any, path: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(path, f"expected an integer, got {_type_name(value)}")
    if value < minimum:
        raise _Invalid(path, f"must be at least {minimum}, got {value}")
    return value


def _number(value: Any, path: str, *, minimum: float = 0.0, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(path, f"expected a number, got {_type_name(value)}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer beyond a float's range
        finite = False
    if not finite:  # NaN passes every < and > check below
        raise _Invalid(path, f"must be a finite number, got {_short(value)}")
    if value < minimum:
        raise _Invalid(path, f"must be at least {minimum:g}, got {value}")
    if maximum is not None and value > maximum:
        raise _Invalid(path, f"must be at most {maximum:g}, got {value}")
    return float(value)


def _rate(value: Any, path: str) -> float:
    """A probability: 0..1, or a percentage string such as `2%`."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            number = float(value.strip()[:-1]) / 100.0
        except ValueError:
            raise _Invalid(path, f"expected a fraction or a percentage, got {value!r}") from None
        return _number(number, path, maximum=1.0)
    return _number(value, path, maximum=1.0)


def _short(value: Any) -> str:
    """`value` for an error message, cut short (a 400-digit number is not worth repeating)."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _duration(value: Any, path: str) -> float:
    try:
        seconds = quantity.parse_duration_s(value)
    except (TypeError, ValueError, OverflowError) as err:
        raise _Invalid(path, str(err)) from None
    if not math.isfinite(seconds):  # `.nan`, `.inf`, `1e400s`: would never fire or compare
        raise _Invalid(path, f"must be a finite duration, got {_short(value)}")
    return seconds


MIN_POLL_S = 0.1
"""Shortest requeue delay a scenario may give the engine (provisioner.poll, quick_poll,
bmc_retry_interval): at 0 a host requeues at the same simulated instant forever, so simulated
time stops and the time limit never fires."""


def _poll(value: Any, path: str) -> float:
    seconds = _duration(value, path)
    if seconds < MIN_POLL_S:
        raise _Invalid(
            path, f"must be at least {MIN_POLL_S * 1000:.0f}ms (a requeue delay of "
            f"{seconds:g}s stops simulated time), got {_short(value)}"
        )
    return seconds


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(path, f"expected true or false, got {_type_name(value)}")
    return value


def _enum(enum: type[StrEnum], value: Any, path: str) -> Any:
    text = _str(value, path)
    try:
        return enum(text)
    except ValueError:
        choices = ", ".join(repr(member.value) for member in enum if member.value)
        raise _Invalid(path, f"unknown value {text!r}; expected one of {choices}") from None


def _distribution(
    value: Any, path: str, *, parse: Callable[[Any, str], float]
) -> dist.Distribution:
    """`30s` / a number (fixed), or {fixed|uniform|normal|lognormal: ...}."""
    if not isinstance(value, dict):
        return dist.Fixed(value=parse(value, path))
    data = _mapping(value, path)
    if len(data) != 1:
        raise _Invalid(
            path, "give exactly one of fixed, uniform, normal, lognormal"
            f" (got {', '.join(sorted(data)) or 'none'})"
        )
    kind, body = next(iter(data.items()))
    sub = _join(path, kind)
    if kind == "fixed":
        return dist.Fixed(value=parse(body, sub))
    if kind == "uniform":
        fields = _mapping(body, sub)
        _check_keys(fields, sub, ("min", "max"))
        low = parse(_required(fields, "min", sub), _join(sub, "min"))
        high = parse(_required(fields, "max", sub), _join(sub, "max"))
        if high < low:
            raise _Invalid(_join(sub, "max"), f"must not be below min ({high:g} < {low:g})")
        return dist.Uniform(low=low, high=high)
    if kind == "normal":
        fields = _mapping(body, sub)
        _check_keys(fields, sub, ("mean", "stddev"))
        mean = parse(_required(fields, "mean", sub), _join(sub, "mean"))
        stddev = parse(_required(fields, "stddev", sub), _join(sub, "stddev"))
        return dist.Normal(mean=mean, stddev=stddev)
    if kind == "lognormal":
        fields = _mapping(body, sub)
        _check_keys(fields, sub, ("median", "p99"))
        median = parse(_required(fields, "median", sub), _join(sub, "median"))
        p99 = parse(_required(fields, "p99", sub), _join(sub, "p99"))
        if median <= 0:
            raise _Invalid(_join(sub, "median"), "must be positive")
        if p99 < median:
            raise _Invalid(
                _join(sub, "p99"), f"must not be below the median ({p99:g} < {median:g})"
            )
        return dist.LogNormal(median=median, p99=p99)
    raise _Invalid(sub, "unknown distribution; expected one of fixed, uniform, normal, lognormal")


def _duration_dist(value: Any, path: str) -> dist.Distribution:
    return _distribution(value, path, parse=_duration)


def _number_dist(value: Any, path: str) -> dist.Distribution:
    return _distribution(value, path, parse=lambda v, p: _number(v, p))


def _required(data: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in data:
        raise _Invalid(_join(path, key), "required")
    return data[key]


_Converter = Callable[[Any, str], Any]


def _fields(
    data: Mapping[str, Any], path: str, spec: Mapping[str, _Converter]
) -> dict[str, Any]:
    """Convert the keys of `data` with `spec` (key -> converter); unknown keys are errors.

    YAML keys use dashes or underscores alike (`time-limit` or `time_limit`); the result is
    keyed by the underscore form.
    """
    out: dict[str, Any] = {}
    allowed = tuple(spec)
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in spec:
            raise _Invalid(
                _join(path, key), f"unknown key; allowed here: {', '.join(sorted(allowed))}"
            )
        out[name] = spec[name](value, _join(path, key))
    return out


def _int_at_least(minimum: int) -> _Converter:
    return lambda value, path: _int(value, path, minimum=minimum)


def _positive_number(value: Any, path: str) -> float:
    number = _number(value, path)
    if number <= 0:
        raise _Invalid(path, f"must be positive, got {value}")
    return number


_CONTROLLER_FIELDS: dict[str, _Converter] = {
    "concurrency": _int_at_least(1),
    "provisioning_limit": _int_at_least(1),
    "max_provisioning_retries": _int_at_least(0),
    "kube_api_qps": _positive_number,
    "kube_api_burst": _int_at_least(1),
    "api_latency": _duration_dist,
    "watch_latency": _duration_dist,
    "reconcile_cpu": _duration_dist,
    "provisioner": lambda v, p: _backend(v, p),
    "controllers": lambda v, p: _controllers(v, p),
}


def _controllers(value: Any, path: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise _Invalid(path, "expected a non-empty list of controller names")
    known = [c.name for c in controllerset.CONTROLLERS]
    names: list[str] = []
    for i, item in enumerate(value):
        name = _str(item, _join(path, i))
        if name not in known:
            raise _Invalid(_join(path, i),
                           f"unknown controller {name!r}; known: {', '.join(known)}")
        names.append(name)
    if controllerset.BAREMETALHOST.name not in names:
        raise _Invalid(path, f"must include {controllerset.BAREMETALHOST.name!r} (every other "
                             "controller works on what it does)")
    return tuple(names)

def _backend(value: Any, path: str) -> ProvisionerBackend:
    if value == "ironic":
        raise _Invalid(
            path,
            "'ironic' is no longer supported: the Ironic-like comparison model was removed and "
            "the fleet model runs the provisioning engine that `metalcubed manager` ships "
            "(the only value is 'engine'; the key may be left out)",
        )
    return _enum(ProvisionerBackend, value, path)


def _removed(reason: str) -> _Converter:
    """A key of the removed Ironic-like model: refused, naming the key and what to do."""

    def refuse(value: Any, path: str) -> Any:
        raise _Invalid(path, f"no longer supported: {reason}")

    return refuse


_CONDUCTOR_LIMIT = (
    "it configured the Ironic-like conductor, which was removed (the fleet model runs the "
    "provisioning engine, which has no conductor limits; PROVISIONING_LIMIT is "
    "controller.provisioning_limit)"
)
_PROVISIONER_FIELDS: dict[str, _Converter] = {
    "api_latency": _duration_dist,
    "poll": _poll,
    "quick_poll": _poll,
    "ramdisk_timeout": _duration,
    "power_sync_interval": _duration,
    "fast_track": _bool,
    "fast_track_timeout": _duration,
    "bmc_timeout": _duration,
    "bmc_retries": _int_at_least(1),
    "bmc_retry_interval": _poll,
    # Keys of the removed Ironic-like conductor: refused with the reason, never ignored.
    "list_cost_per_node": _removed(
        "the engine lists no nodes (HasCapacity counts busy hosts from the watch cache)"
    ),
    "poll_jitter": _removed("the provisioning engine requeues without jitter"),
    "inspect_timeout": _removed(
        "the engine waits the same time for every ramdisk boot: use provisioner.ramdisk_timeout"
    ),
    "deploy_timeout": _removed(
        "the engine waits the same time for every ramdisk boot: use provisioner.ramdisk_timeout"
    ),
    "clean_timeout": _removed(
        "the engine waits the same time for every ramdisk boot: use provisioner.ramdisk_timeout"
    ),
    "power_timeout": _removed(
        "the engine polls a power change itself (provisioner.quick_poll) instead of waiting"
    ),
    "power_conflict_retries": _removed(
        "the engine retries a 409 on the next pass, after provisioner.bmc_retry_interval"
    ),
    "power_conflict_interval": _removed(
        "the engine retries a 409 on the next pass, after provisioner.bmc_retry_interval"
    ),
    "max_concurrent_deploy": _removed(_CONDUCTOR_LIMIT),
    "max_concurrent_clean": _removed(_CONDUCTOR_LIMIT),
}
_PROVISIONER_RENAMES = {
    "poll": "poll_s",
    "quick_poll": "quick_poll_s",
    "ramdisk_timeout": "ramdisk_timeout_s",
    "power_sync_interval": "power_sync_interval_s",
    "fast_track_timeout": "fast_track_timeout_s",
    "bmc_timeout": "bmc_timeout_s",
    "bmc_retry_interval": "bmc_retry_interval_s",
}

_PROFILE_FIELDS: dict[str, _Converter] = {
    "vendor": _str,
    "model": _str,
    "cpu_count": _int_at_least(1),
    "ram_gib": _int_at_least(1),
    "disk_gib": _int_at_least(1),
    "power_on": _duration_dist,
    "power_off": _duration_dist,
    "post": _duration_dist,
    "pxe_boot": _duration_dist,
    "vmedia_boot": _duration_dist,
    "inspection": _duration_dist,
    "cleaning": _duration_dist,
    "disk_write_mbps": _number_dist,
    "qcow2_convert_mbps": _positive_number,
    "os_boot": _duration_dist,
    "bmc_latency": _duration_dist,
    "bmc_session_cap": _int_at_least(1),
    "firmware_update": _duration_dist,
    "bmc_reboot": _duration_dist,
}


def _profile(name: str, data: Any, path: str) -> HardwareProfile:
    values = _fields(_mapping(data, path), path, _PROFILE_FIELDS)
    if "disk_write_mbps" in values and values["disk_write_mbps"].median <= 0:
        raise _Invalid(_join(path, "disk_write_mbps"), "throughput must be positive")
    return HardwareProfile(name=name, **values)


def shipped_profiles() -> dict[str, HardwareProfile]:
    """The hardware profile library: scenarios/profiles/*.yaml, one profile per file."""
    profiles: dict[str, HardwareProfile] = {}
    for directory in _scenario_dirs():
        folder = directory / "profiles"
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.yaml")):
            name = path.stem
            if name in profiles:
                continue
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            try:
                profiles[name] = _profile(name, data, f"profiles/{path.name}")
            except _Invalid as err:  # a broken shipped file is a bug: fail loudly
                raise ScenarioError(str(path), [outcome.SpecError(err.path, err.message)]) from err
    return profiles


def _scenario_dirs() -> list[Path]:
    """Where the shipped scenarios live (the metalcubed.scenarios package's directories)."""
    from metalcubed import scenarios

    return [Path(entry) for entry in scenarios.__path__ if Path(entry).is_dir()]


def shipped_scenario_path(name: str) -> Path | None:
    """The shipped scenario file called `name` (without .yaml), if any."""
    for directory in _scenario_dirs():
        candidate = directory / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    return None


def _group(data: Any, path: str, profiles: Mapping[str, HardwareProfile]) -> Group:
    fields = _mapping(data, path)
    spec: dict[str, _Converter] = {
        "name": _str,
        "count": _int_at_least(1),
        "profile": _str,
        "bmc": _str,
        "boot": lambda v, p: _enum(BootMethod, v, p),
        "hosts_per_bmc": _int_at_least(1),
        "namespace": _str,
        "automated_cleaning_mode": lambda v, p: _enum(bmh.AutomatedCleaningMode, v, p),
    }
    values = _fields(fields, path, spec)
    for key in ("name", "count", "profile", "bmc"):
        if key not in values:
            raise _Invalid(_join(path, key), "required")
    if values["profile"] not in profiles:
        raise _Invalid(
            _join(path, "profile"),
            f"unknown profile {values['profile']!r}; known: {', '.join(sorted(profiles))}",
        )
    scheme = values.pop("bmc")
    try:
        bmc_type, _ = bmcaddress.lookup(scheme, f"{scheme}://bmc")
    except outcome.SpecError as err:
        raise _Invalid(_join(path, "bmc"), err.message) from None
    native = _boot_method(bmc_type)
    boot = values.pop("boot", native)
    if boot != native:
        raise _Invalid(
            _join(path, "boot"),
            f"BMC scheme {scheme!r} boots the ramdisk over {native.value}, not {boot.value}",
        )
    return Group(bmc_scheme=scheme, boot=boot, **values)


def _boot_method(bmc_type: bmcaddress.BMCType) -> BootMethod:
    if bmc_type.boot_interface == "redfish-https":
        return BootMethod.UEFI_HTTP
    if bmc_type.supports_iso_preprovisioning_image:
        return BootMethod.VIRTUAL_MEDIA
    return BootMethod.PXE


def _image(name: str, data: Any, path: str) -> Image:
    spec: dict[str, _Converter] = {
        "url": _str,
        "checksum": _str,
        "format": lambda v, p: _enum(bmh.ImageFormat, v, p),
        "size": lambda v, p: _size(v, p),
    }
    values = _fields(_mapping(data, path), path, spec)
    for key in ("url", "size"):
        if key not in values:
            raise _Invalid(_join(path, key), "required")
    image_format = values.get("format", bmh.ImageFormat.RAW)
    if not values.get("checksum") and image_format != bmh.ImageFormat.LIVE_ISO:
        raise _Invalid(
            _join(path, "checksum"),
            "required: the provisioning engine, like Ironic, verifies every image it writes "
            "(a checksum, or the URL of a checksum file; only live-iso images need none)",
        )
    return Image(
        name=name,
        url=values["url"],
        checksum=values.get("checksum", ""),
        format=values.get("format", bmh.ImageFormat.RAW),
        size_bytes=values["size"],
    )


def _size(value: Any, path: str) -> int:
    try:
        return quantity.parse_size_bytes(value)
    except OverflowError:  # `.inf` or `1e400B`: int() of an infinite float
        raise _Invalid(path, f"must be a finite size, got {_short(value)}") from None
    except (TypeError, ValueError) as err:
        if isinstance(value, float) and math.isnan(value):
            raise _Invalid(path, f"must be a finite size, got {value!r}") from None
        raise _Invalid(path, str(err)) from None


def _faults(data: Any, path: str, group_names: set[str]) -> Faults:
    fields = _mapping(data, path)
    _check_keys(fields, path, ("bmc", "hosts", "groups"))
    bmc_path = _join(path, "bmc")
    bmc_values = _fields(
        _mapping(fields.get("bmc"), bmc_path),
        bmc_path,
        {
            "error_rate": _rate,
            "timeout_rate": _rate,
            "conflict_after_power_off": _duration,
            "session_cap": _int_at_least(1),
            "update_failure": _rate,
            "reboot_during_update": _rate,
        },
    )
    if "conflict_after_power_off" in bmc_values:
        bmc_values["conflict_after_power_off_s"] = bmc_values.pop("conflict_after_power_off")
    hosts_path = _join(path, "hosts")
    host_values = _fields(
        _mapping(fields.get("hosts"), hosts_path),
        hosts_path,
        {"post_hang": _rate, "disk_failure": _rate, "agent_crash": _rate},
    )
    groups = _group_list(fields.get("groups", []), _join(path, "groups"), group_names)
    return Faults(bmc=BmcFaults(**bmc_values), hosts=HostFaults(**host_values), groups=groups)


def _group_list(value: Any, path: str, group_names: set[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise _Invalid(path, f"expected a list of group names, got {_type_name(value)}")
    names: list[str] = []
    for i, item in enumerate(value):
        name = _str(item, _join(path, i))
        if name not in group_names:
            raise _Invalid(
                _join(path, i), f"unknown group {name!r}; known: {', '.join(sorted(group_names))}"
            )
        names.append(name)
    return tuple(names)


DELETED = "deleted"
"""The state label of a host that is gone from the store (in `when` and in final_states)."""
_STEP_STATES = frozenset(
    {state.value for state in bmh.ProvisioningState if state.value} | {DELETED}
)


def _settings(value: Any, path: str) -> tuple[tuple[str, str | int], ...]:
    """BIOS settings as a user writes them into HostFirmwareSettings: name -> string or
    integer (the API's IntOrString). Names and values are not checked against any registry
    here: a setting the host's schema refuses is for the system under test to report, on the
    object."""
    fields = _mapping(value, path)
    if not fields:
        raise _Invalid(path, "give at least one setting (name: value)")
    out: list[tuple[str, str | int]] = []
    for name, setting in fields.items():
        if not name:
            raise _Invalid(path, "a setting name must not be empty")
        if isinstance(setting, bool):
            raise _Invalid(
                _join(path, name),
                "HostFirmwareSettings values are strings or integers: quote it ('true')",
            )
        if not isinstance(setting, str | int):
            raise _Invalid(
                _join(path, name), f"expected a string or an integer, got {_type_name(setting)}"
            )
        out.append((name, setting))
    return tuple(out)


def _firmware_list(value: Any, path: str, catalog: Mapping[str, FirmwareImage]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _Invalid(path, "expected a non-empty list of firmware image names")
    names: list[str] = []
    components: set[str] = set()
    for i, item in enumerate(value):
        name = _str(item, _join(path, i))
        image = catalog.get(name)
        if image is None:
            raise _Invalid(
                _join(path, i),
                f"unknown firmware image {name!r}; known: {', '.join(sorted(catalog)) or 'none'}",
            )
        if image.component in components:
            raise _Invalid(_join(path, i), f"a second image for component {image.component!r}")
        components.add(image.component)
        names.append(name)
    return tuple(names)


def _version(value: Any, path: str) -> str:
    """A version string; YAML reads `2.4` as a number, which is taken as written."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return _str(value, path)


def _firmware_image(name: str, data: Any, path: str) -> FirmwareImage:
    spec: dict[str, _Converter] = {
        "component": _str,
        "url": _str,
        "version": _version,
        "served": _bool,
    }
    values = _fields(_mapping(data, path), path, spec)
    for key in ("component", "url"):
        if key not in values:
            raise _Invalid(_join(path, key), "required")
    if values["component"] not in FIRMWARE_COMPONENTS:
        raise _Invalid(
            _join(path, "component"),
            f"unknown component {values['component']!r}; expected one of "
            f"{', '.join(FIRMWARE_COMPONENTS)}",
        )
    if not values["url"].startswith(("http://", "https://")):
        raise _Invalid(_join(path, "url"), "expected an http:// or https:// URL")
    if "version" not in values:
        try:
            values["version"] = firmwareimage.version_from_url(
                values["url"], component=values["component"])
        except firmwareimage.ImageError as err:
            raise _Invalid(_join(path, "version"),
                           f"required when the URL does not name it: {err}") from None
    if not values["version"]:
        raise _Invalid(_join(path, "version"), "must not be empty")
    return FirmwareImage(name=name, **values)


def _step(
    data: Any, path: str, index: int, group_names: set[str], images: Mapping[str, Image],
    firmware: Mapping[str, FirmwareImage] | None = None,
) -> Step:
    spec: dict[str, _Converter] = {
        "name": _str,
        "action": lambda v, p: _enum(Action, v, p),
        "groups": lambda v, p: _group_list(v, p, group_names),
        "at": _duration,
        "when": _str,
        "delay": _duration,
        "image": _str,
        "batch_size": _int_at_least(1),
        "batch_interval": _duration,
        "per_host": _bool,
        "settings": _settings,
        "firmware": lambda v, p: _firmware_list(v, p, firmware or {}),
        "policy": lambda v, p: _enum(UpdatePolicy, v, p),
    }
    values = _fields(_mapping(data, path), path, spec)
    if "action" not in values:
        raise _Invalid(_join(path, "action"), "required")
    action: Action = values["action"]
    if ("at" in values) == ("when" in values):
        raise _Invalid(path, "give exactly one of `at` (a time) or `when` (a state)")
    when_state = None
    if "when" in values:
        when = values["when"]
        if when not in _STEP_STATES:
            raise _Invalid(
                _join(path, "when"),
                f"unknown state {when!r}; expected one of {', '.join(sorted(_STEP_STATES))}",
            )
        when_state = when
    image = values.get("image", "")
    if action == Action.PROVISION:
        if not image:
            raise _Invalid(_join(path, "image"), "required for a provision step")
        if image not in images:
            raise _Invalid(
                _join(path, "image"),
                f"unknown image {image!r}; known: {', '.join(sorted(images)) or 'none'}",
            )
    elif image:
        raise _Invalid(_join(path, "image"), f"only a provision step takes an image, not {action}")
    if action == Action.SERVICE:
        if "settings" not in values and "firmware" not in values:
            raise _Invalid(path, "a service step changes `settings`, `firmware` or both")
    else:
        for key in ("settings", "firmware", "policy"):
            if key in values:
                raise _Invalid(_join(path, key), f"only a service step takes {key}, not {action}")
    if ("batch_size" in values) != ("batch_interval" in values):
        raise _Invalid(path, "batch_size and batch_interval go together")
    per_host = values.get("per_host", False)
    if per_host and "when" not in values:
        raise _Invalid(_join(path, "per_host"), "a per-host step needs `when` (the host's state)")
    if per_host and "batch_size" in values:
        raise _Invalid(_join(path, "per_host"), "a per-host step cannot also be batched")
    if per_host and action == Action.ENROLL:
        raise _Invalid(_join(path, "per_host"), "hosts are enrolled all at once or in batches")
    if per_host and "delay" in values:
        raise _Invalid(_join(path, "delay"), "a per-host step acts as soon as its host is ready")
    return Step(
        name=values.get("name", f"{index}-{action.value}"),
        action=action,
        groups=values.get("groups", ()),
        at_s=values.get("at"),
        when_state=when_state,
        delay_s=values.get("delay", 0.0),
        image=image,
        batch_size=values.get("batch_size", 0),
        batch_interval_s=values.get("batch_interval", 0.0),
        per_host=per_host,
        settings=values.get("settings", ()),
        firmware=values.get("firmware", ()),
        policy=values.get("policy", UpdatePolicy.ON_REBOOT),
    )


SLO_METRICS = (
    "makespan_s",
    "hosts_in_error",
    "invariant_violations",
    "final_states.<state>",
    "errors_by_type.<error type>",
    "state_durations_s.<state>.<p50|p95|p99|max>",
    "peak.<workers_busy|pxe_busy|provisioner_busy|bmc_sessions>",
    "bmc.requests",
    "bmc.errors",
    "bmc.per_host",
    "bmc.operation_requests_per_host",
    "servicing.<requested|serviced|failed|unserviced>",
    "servicing.durations_s.<p50|p95|p99|max>",
    "servicing.<updates_failed|bmc_reboots>",
    "clusters.<figure> (clusterspec.METRICS)",
)
"""The report figures an SLO may name (docs/scenarios.md lists them)."""

SERVICING_HOST_COUNTS = ("requested", "serviced", "failed", "unserviced")
"""servicing.<x> figures that count hosts (a target may be a percentage of hosts)."""
SERVICING_COUNTS = ("updates_failed", "bmc_reboots")

_PEAKS = ("workers_busy", "pxe_busy", "provisioner_busy", "bmc_sessions")
_HOST_COUNT_METRICS = ("hosts_in_error", "final_states.",
                       *(f"servicing.{name}" for name in SERVICING_HOST_COUNTS),
                       # Machines: replicas scale with the hosts (`with_hosts`).
                       "clusters.remediated", "clusters.machines_created")
_ERROR_TYPES = {t.value for t in bmh.ErrorType if t.value}


def _check_metric(metric: str, path: str) -> bool:
    """Whether `metric` names a report figure; returns True for time (seconds) metrics."""
    parts = metric.split(".")
    if metric in ("makespan_s",):
        return True
    if metric in ("hosts_in_error", "invariant_violations", "bmc.requests", "bmc.errors",
                  "bmc.per_host", "bmc.operation_requests_per_host"):
        return False
    if parts[0] == "final_states" and len(parts) == 2:
        if parts[1] not in _STEP_STATES:
            raise _Invalid(path, f"unknown state {parts[1]!r} in {metric!r}")
        return False
    if parts[0] == "errors_by_type" and len(parts) == 2:
        if parts[1] not in _ERROR_TYPES:
            raise _Invalid(path, f"unknown error type {parts[1]!r} in {metric!r}")
        return False
    if parts[0] == "state_durations_s" and len(parts) == 3:
        if parts[1] not in _STEP_STATES or parts[1] == "deleted":
            raise _Invalid(path, f"unknown state {parts[1]!r} in {metric!r}")
        if parts[2] not in ("p50", "p95", "p99", "max"):
            raise _Invalid(path, f"unknown statistic {parts[2]!r}; expected p50, p95, p99 or max")
        return True
    if parts[0] == "peak" and len(parts) == 2 and parts[1] in _PEAKS:
        return False
    if parts[0] == "clusters":
        try:
            return clusterspec.check_metric(metric, None)
        except ValueError as err:
            raise _Invalid(path, str(err)) from None
    if parts[0] == "servicing":
        if len(parts) == 2 and parts[1] in SERVICING_HOST_COUNTS + SERVICING_COUNTS:
            return False
        if len(parts) == 3 and parts[1] == "durations_s":
            if parts[2] not in ("p50", "p95", "p99", "max"):
                raise _Invalid(
                    path, f"unknown statistic {parts[2]!r}; expected p50, p95, p99 or max"
                )
            return True
    raise _Invalid(path, f"unknown metric {metric!r}; expected one of: {', '.join(SLO_METRICS)}")


def _slo(name: str, data: Any, path: str) -> Slo:
    fields = _mapping(data, path)
    _check_keys(fields, path, ("metric", "max", "min"))
    metric = _str(_required(fields, "metric", path), _join(path, "metric"))
    is_time = _check_metric(metric, _join(path, "metric"))
    ops = [op for op in ("max", "min") if op in fields]
    if len(ops) != 1:
        raise _Invalid(path, "give exactly one of max, min")
    op = SloOp(ops[0])
    raw = fields[op.value]
    target_path = _join(path, op.value)
    fraction = None
    target = 0.0
    if isinstance(raw, str) and raw.strip().endswith("%"):
        if not metric.startswith(_HOST_COUNT_METRICS):
            raise _Invalid(target_path, "a percentage of hosts only fits host-count metrics")
        fraction = _rate(raw, target_path)
    elif raw == "all":
        if not metric.startswith(_HOST_COUNT_METRICS):
            raise _Invalid(target_path, "`all` hosts only fits host-count metrics")
        fraction = 1.0
    elif is_time:
        target = _duration(raw, target_path)
    else:
        target = _number(raw, target_path)
    return Slo(name=name, metric=metric, op=op, target=target, target_fraction=fraction)


_TOP_KEYS = (
    "name",
    "description",
    "seed",
    "time_limit",
    "settle_error_count",
    "controller",
    "provisioner",
    "profiles",
    "groups",
    "images",
    "faults",
    "workload",
    "slos",
    "firmware",
    "clusters",
)


def parse(data: Any, *, source: str = "<scenario>") -> Scenario:
    """A Scenario from parsed YAML; raises ScenarioError naming every bad field."""
    errors: list[outcome.SpecError] = []

    def attempt(fn: Callable[..., T], fallback: T, *args: Any) -> T:
        try:
            return fn(*args)
        except _Invalid as err:
            errors.append(outcome.SpecError(err.path, err.message))
            return fallback

    if not isinstance(data, dict):
        raise ScenarioError(
            source, [outcome.SpecError("(top)", f"expected a mapping, got {_type_name(data)}")]
        )
    for key in data:
        if str(key).replace("-", "_") not in _TOP_KEYS:
            errors.append(
                outcome.SpecError(str(key), f"unknown key; allowed: {', '.join(_TOP_KEYS)}")
            )
    top = {str(k).replace("-", "_"): v for k, v in data.items()}

    name = attempt(lambda: _str(_required(top, "name", ""), "name"), "")
    description = attempt(lambda: _str(top.get("description", ""), "description"), "")
    seed = attempt(lambda: _int(top.get("seed", 1), "seed"), 1)
    time_limit = attempt(lambda: _duration(top.get("time_limit", "24h"), "time_limit"), 86400.0)
    if time_limit <= 0:
        errors.append(outcome.SpecError("time_limit", "must be positive"))
    settle = attempt(
        lambda: _int(top.get("settle_error_count", 3), "settle_error_count", minimum=1), 3
    )
    controller = attempt(
        lambda: ControllerSettings(
            **_fields(_mapping(top.get("controller"), "controller"), "controller",
                      _CONTROLLER_FIELDS)
        ),
        ControllerSettings(),
    )

    def provisioner_settings() -> ProvisionerSettings:
        values = _fields(
            _mapping(top.get("provisioner"), "provisioner"), "provisioner", _PROVISIONER_FIELDS
        )
        return ProvisionerSettings(
            **{_PROVISIONER_RENAMES.get(k, k): v for k, v in values.items()}
        )

    provisioner = attempt(provisioner_settings, ProvisionerSettings())

    profiles = dict(shipped_profiles())
    inline: dict[str, Any] = attempt(lambda: _mapping(top.get("profiles"), "profiles"), {})
    for pname, body in inline.items():
        profile = attempt(_profile, None, pname, body, _join("profiles", pname))
        if profile is not None:
            profiles[pname] = profile

    groups: list[Group] = []
    raw_groups = top.get("groups")
    if not isinstance(raw_groups, list) or not raw_groups:
        errors.append(outcome.SpecError("groups", "required: a non-empty list of host groups"))
        raw_groups = []
    seen_groups: set[str] = set()
    for i, body in enumerate(raw_groups):
        group = attempt(_group, None, body, _join("groups", i), profiles)
        if group is None:
            continue
        if group.name in seen_groups:
            errors.append(
                outcome.SpecError(_join(_join("groups", i), "name"), f"duplicate {group.name!r}")
            )
        seen_groups.add(group.name)
        groups.append(group)

    images: dict[str, Image] = {}
    raw_images: dict[str, Any] = attempt(lambda: _mapping(top.get("images"), "images"), {})
    for iname, body in raw_images.items():
        image = attempt(_image, None, iname, body, _join("images", iname))
        if image is not None:
            images[iname] = image

    catalog: dict[str, FirmwareImage] = {}
    raw_firmware: dict[str, Any] = attempt(lambda: _mapping(top.get("firmware"), "firmware"), {})
    for fname, body in raw_firmware.items():
        image_ = attempt(_firmware_image, None, fname, body, _join("firmware", fname))
        if image_ is not None:
            catalog[fname] = image_

    faults = attempt(lambda: _faults(top.get("faults"), "faults", seen_groups), Faults())

    clusters = None
    if top.get("clusters") is not None:
        clusters = attempt(lambda: clusterspec.parse(
            top["clusters"], "clusters", images=images,
            namespaces=tuple(group.namespace for group in groups)), None)

    steps: list[Step] = []
    raw_steps = top.get("workload")
    if not isinstance(raw_steps, list) or not raw_steps:
        errors.append(outcome.SpecError("workload", "required: a non-empty list of steps"))
        raw_steps = []
    for i, body in enumerate(raw_steps):
        step = attempt(_step, None, body, _join("workload", i), i, seen_groups, images, catalog)
        if step is not None:
            steps.append(step)
    if steps and steps[0].action != Action.ENROLL:
        errors.append(outcome.SpecError("workload[0].action", "the first step must enroll hosts"))
    if steps and steps[0].per_host:
        errors.append(outcome.SpecError("workload[0].per_host", "the first step is a bulk step"))

    slos: list[Slo] = []
    raw_slos: dict[str, Any] = attempt(lambda: _mapping(top.get("slos"), "slos"), {})
    for sname, body in raw_slos.items():
        slo = attempt(_slo, None, sname, body, _join("slos", sname))
        if slo is not None:
            slos.append(slo)

    if not any(step.action == Action.SERVICE for step in steps):
        for slo in slos:
            if slo.metric.startswith("servicing."):
                errors.append(outcome.SpecError(
                    _join(_join("slos", slo.name), "metric"),
                    "a servicing figure needs a workload step with action: service"))
    for slo in slos:
        if not slo.metric.startswith("clusters."):
            continue
        where = _join(_join("slos", slo.name), "metric")
        if clusters is None:
            if top.get("clusters") is None:
                errors.append(outcome.SpecError(where, "a cluster figure needs a `clusters` "
                                                       "section"))
            continue
        try:
            clusterspec.check_metric(slo.metric, clusters.steps)
        except ValueError as err:
            errors.append(outcome.SpecError(where, str(err)))
    if errors:
        raise ScenarioError(source, errors)
    return Scenario(
        name=name,
        description=description,
        seed=seed,
        time_limit_s=time_limit,
        settle_error_count=settle,
        controller=controller,
        provisioner=provisioner,
        profiles=profiles,
        groups=tuple(groups),
        images=images,
        faults=faults,
        workload=tuple(steps),
        slos=tuple(slos),
        firmware=catalog,
        clusters=clusters,
    )


def load(path: str | Path) -> Scenario:
    """Read and validate a scenario file; raises ScenarioError (also for unreadable YAML)."""
    source = str(path)
    try:
        with Path(path).open("rb") as stream:
            # One byte past the limit tells "too large" apart without reading /dev/zero whole.
            raw = stream.read(yamlinput.MAX_BYTES + 1)
    except OSError as err:
        problem = outcome.SpecError("(file)", err.strerror or str(err))
        raise ScenarioError(source, [problem]) from err
    try:
        text = yamlinput.decode(raw, source)
    except ValueError as err:  # too large, or not UTF-8 (a Latin-1 file)
        message = str(err).removeprefix(f"{source}: ")
        raise ScenarioError(source, [outcome.SpecError("(file)", message)]) from None
    return loads(text, source=source)


def loads(text: str, *, source: str = "<scenario>") -> Scenario:
    """Parse and validate scenario text, read within core/yamlinput.py's limits (depth,
    nodes with aliases expanded, integer digits)."""
    try:
        data = yamlinput.load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(yaml)"
        raise ScenarioError(source, [outcome.SpecError(where, f"not valid YAML: {err}")]) from err
    return parse(data, source=source)


def load_default() -> Scenario:
    """The embedded default scenario (quickstart), shipped as package data."""
    path = shipped_scenario_path(DEFAULT_SCENARIO)
    if path is None:
        raise ScenarioError(DEFAULT_SCENARIO, [outcome.SpecError("(file)", "not installed")])
    return load(path)
