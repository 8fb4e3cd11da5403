"""Redfish payloads (JSON documents already fetched) to core.bmc value types. Pure.

Kept apart from fetching (STYLE 6) so that every rule is tested against recorded payloads
(tests/data/redfish) without a network, and so that a hostile or broken BMC can only make a
parser raise `PayloadError`, which the driver turns into `BmcBadResponse` with the BMC address
and operation. A document that is not an object, a required field that is missing, or a field
of the wrong type is a `PayloadError`; an unknown *value* of a known field (a PowerState of
"Paused", a boot target we have no name for) is mapped to the neutral value instead, because
the Redfish schema lets BMCs grow new values.
"""

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from metalcubed.core import bmc
from metalcubed.core.api import hardwaredata as hwd

Doc = Mapping[str, Any]


class PayloadError(ValueError):
    """The document cannot be used; `message` says which field and why."""


def require_doc(doc: object, what: str) -> Doc:
    if not isinstance(doc, Mapping):
        raise PayloadError(f"{what} is not a JSON object (got {type(doc).__name__})")
    return doc


def _opt(doc: Doc, key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise PayloadError(f"{what}.{key} must be a number, got a boolean")
    if not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise PayloadError(f"{what}.{key} must be {name}, got {type(value).__name__}")
    return value


def _str(doc: Doc, key: str, what: str) -> str:
    value = _opt(doc, key, str, what)
    return value if value is not None else ""


def _num(doc: Doc, key: str, what: str) -> float | None:
    value = _opt(doc, key, (int, float), what)
    return float(value) if value is not None else None


def _obj(doc: Doc, key: str, what: str) -> Doc:
    value = _opt(doc, key, Mapping, what)
    return value if value is not None else {}


def _list(doc: Doc, key: str, what: str) -> Sequence[Any]:
    value = _opt(doc, key, list, what)
    return value if value is not None else []


# --- Power and boot -----------------------------------------------------------------------------

_POWER = {
    "On": bmc.PowerState.ON,
    "Off": bmc.PowerState.OFF,
    "PoweringOn": bmc.PowerState.POWERING_ON,
    "PoweringOff": bmc.PowerState.POWERING_OFF,
}


def power_state(system: object) -> bmc.PowerState:
    doc = require_doc(system, "ComputerSystem")
    if "PowerState" not in doc:
        raise PayloadError("ComputerSystem.PowerState is missing")
    value = _opt(doc, "PowerState", str, "ComputerSystem")
    return _POWER.get(value or "", bmc.PowerState.UNKNOWN)


BOOT_TARGETS: Mapping[str, bmc.BootDevice] = {
    "None": bmc.BootDevice.NONE,
    "Pxe": bmc.BootDevice.PXE,
    "Hdd": bmc.BootDevice.DISK,
    "Cd": bmc.BootDevice.CDROM,
    "UsbCd": bmc.BootDevice.CDROM,
    "BiosSetup": bmc.BootDevice.BIOS,
    "UefiHttp": bmc.BootDevice.UEFI_HTTP,
}
"""Redfish BootSourceOverrideTarget -> our device ("UsbCd": Supermicro's virtual CD)."""

TARGET_OF: Mapping[bmc.BootDevice, str] = {
    bmc.BootDevice.NONE: "None",
    bmc.BootDevice.PXE: "Pxe",
    bmc.BootDevice.DISK: "Hdd",
    bmc.BootDevice.CDROM: "Cd",
    bmc.BootDevice.BIOS: "BiosSetup",
    bmc.BootDevice.UEFI_HTTP: "UefiHttp",
}

BOOT_MODES: Mapping[str, bmc.BootMode] = {"UEFI": bmc.BootMode.UEFI, "Legacy": bmc.BootMode.LEGACY}
MODE_OF: Mapping[bmc.BootMode, str] = {v: k for k, v in BOOT_MODES.items()}


def boot_setting(system: object) -> bmc.BootSetting:
    doc = require_doc(system, "ComputerSystem")
    boot = _obj(doc, "Boot", "ComputerSystem")
    target = _str(boot, "BootSourceOverrideTarget", "ComputerSystem.Boot")
    enabled = _str(boot, "BootSourceOverrideEnabled", "ComputerSystem.Boot")
    mode = _str(boot, "BootSourceOverrideMode", "ComputerSystem.Boot")
    device = BOOT_TARGETS.get(target, bmc.BootDevice.NONE)
    if enabled == "Disabled":
        device = bmc.BootDevice.NONE
    persistence = bmc.Persistence.PERSISTENT if enabled == "Continuous" else bmc.Persistence.ONCE
    return bmc.BootSetting(device=device, persistence=persistence, mode=BOOT_MODES.get(mode))


def allowed_boot_targets(system: object) -> frozenset[str]:
    """The targets the BMC advertises; empty when it does not say."""
    boot = _obj(require_doc(system, "ComputerSystem"), "Boot", "ComputerSystem")
    values = _list(boot, "BootSourceOverrideTarget@Redfish.AllowableValues", "ComputerSystem.Boot")
    return frozenset(v for v in values if isinstance(v, str))


def manufacturer(system: object) -> str:
    return _str(require_doc(system, "ComputerSystem"), "Manufacturer", "ComputerSystem")


# --- Inventory ----------------------------------------------------------------------------------

_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_ARCH = {"x86-64": "x86_64", "x86": "x86_64", "ARM-A64": "aarch64", "ARM": "aarch64",
         "PowerISA": "ppc64le", "IA-64": "ia64"}


def _cpu(system: Doc, processors: Sequence[object]) -> hwd.CPU:
    cpus = [require_doc(p, "Processor") for p in processors]
    cpus = [p for p in cpus if _str(p, "ProcessorType", "Processor") in ("", "CPU")]
    summary = _obj(system, "ProcessorSummary", "ComputerSystem")
    threads = sum(int(_num(p, "TotalThreads", "Processor") or 0) for p in cpus)
    count = threads or int(_num(summary, "LogicalProcessorCount", "ProcessorSummary") or 0) \
        or int(_num(summary, "Count", "ProcessorSummary") or 0)
    first = cpus[0] if cpus else {}
    arch = _ARCH.get(_str(first, "InstructionSet", "Processor")) or _ARCH.get(
        _str(first, "ProcessorArchitecture", "Processor"), "")
    model = _str(first, "Model", "Processor") or _str(summary, "Model", "ProcessorSummary")
    return hwd.CPU(arch=arch, model=model, count=count,
                   clock_megahertz=_num(first, "MaxSpeedMHz", "Processor") or 0.0)


def _ram_mib(system: Doc, memory: Sequence[object]) -> int:
    summary = _obj(system, "MemorySummary", "ComputerSystem")
    gib = _num(summary, "TotalSystemMemoryGiB", "MemorySummary")
    if gib:
        return int(gib * 1024)
    return sum(int(_num(require_doc(m, "Memory"), "CapacityMiB", "Memory") or 0) for m in memory)


def _nic(doc: object) -> hwd.NIC | None:
    nic = require_doc(doc, "EthernetInterface")
    mac = _str(nic, "MACAddress", "EthernetInterface") or _str(
        nic, "PermanentMACAddress", "EthernetInterface")
    if not _MAC.match(mac):
        return None  # disabled ports report no (or a placeholder) MAC
    speed = _num(nic, "SpeedMbps", "EthernetInterface") or 0.0
    return hwd.NIC(name=_str(nic, "Id", "EthernetInterface") or mac, mac=mac.lower(),
                   speed_gbps=int(speed // 1000))


def _disk(doc: object) -> hwd.Storage:
    drive = require_doc(doc, "Drive")
    media = _str(drive, "MediaType", "Drive")
    protocol = _str(drive, "Protocol", "Drive")
    kind = (hwd.DiskType.NVME if protocol == "NVMe"
            else hwd.DiskType.HDD if media == "HDD"
            else hwd.DiskType.SSD if media == "SSD" else None)
    size = _num(drive, "CapacityBytes", "Drive") or 0.0
    return hwd.Storage(
        name=_str(drive, "Name", "Drive") or _str(drive, "Id", "Drive"),
        rotational=media == "HDD",
        type=kind,
        size_bytes=int(size),
        vendor=_str(drive, "Manufacturer", "Drive"),
        model=_str(drive, "Model", "Drive"),
        serial_number=_str(drive, "SerialNumber", "Drive"),
    )


def _simple_disks(doc: object) -> list[hwd.Storage]:
    simple = require_doc(doc, "SimpleStorage")
    disks = []
    for device in _list(simple, "Devices", "SimpleStorage"):
        dev = require_doc(device, "SimpleStorage.Devices[]")
        size = _num(dev, "CapacityBytes", "SimpleStorage.Devices[]")
        if size:
            disks.append(hwd.Storage(name=_str(dev, "Name", "SimpleStorage.Devices[]"),
                                     size_bytes=int(size)))
    return disks


def hardware_details(
    system: object,
    *,
    processors: Sequence[object] = (),
    memory: Sequence[object] = (),
    nics: Sequence[object] = (),
    drives: Sequence[object] = (),
    simple_storage: Sequence[object] = (),
) -> hwd.HardwareDetails:
    """Inspection result from a ComputerSystem and its sub-resources' documents.

    Disks come from Storage drives when there are any, else from SimpleStorage devices.
    """
    doc = require_doc(system, "ComputerSystem")
    storage = [_disk(d) for d in drives] or [
        disk for s in simple_storage for disk in _simple_disks(s)]
    return hwd.HardwareDetails(
        system_vendor=hwd.HardwareSystemVendor(
            manufacturer=_str(doc, "Manufacturer", "ComputerSystem"),
            product_name=_str(doc, "Model", "ComputerSystem"),
            serial_number=_str(doc, "SerialNumber", "ComputerSystem"),
        ),
        firmware=hwd.Firmware(bios=hwd.BIOS(version=_str(doc, "BiosVersion", "ComputerSystem"))),
        ram_mebibytes=_ram_mib(doc, memory),
        cpu=_cpu(doc, processors),
        nics=tuple(nic for nic in (_nic(n) for n in nics) if nic is not None),
        storage=tuple(storage),
        hostname=_str(doc, "HostName", "ComputerSystem"),
    )


# --- BIOS ---------------------------------------------------------------------------------------


def _bios_values(doc: Doc, what: str) -> dict[str, bmc.BiosValue]:
    attributes = _obj(doc, "Attributes", what)
    values: dict[str, bmc.BiosValue] = {}
    for name, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, str | int | bool):
            raise PayloadError(f"{what}.Attributes.{name} has unsupported type "
                               f"{type(value).__name__}")
        values[str(name)] = value
    return values


def bios_settings(current: object, pending: object | None = None) -> bmc.BiosSettings:
    cur = require_doc(current, "Bios")
    if "Attributes" not in cur:
        raise PayloadError("Bios.Attributes is missing")
    staged = _bios_values(require_doc(pending, "Bios settings"), "Bios settings") \
        if pending is not None else {}
    return bmc.BiosSettings(current=_bios_values(cur, "Bios"), pending=staged)


def _bound(entry: Doc, key: str) -> int | None:
    value = _num(entry, key, "AttributeRegistry.Attributes[]")
    return int(value) if value is not None else None


def bios_registry(registry: object) -> dict[str, bmc.BiosAttributeSchema]:
    doc = require_doc(registry, "AttributeRegistry")
    entries = _obj(doc, "RegistryEntries", "AttributeRegistry")
    result = {}
    for raw in _list(entries, "Attributes", "AttributeRegistry.RegistryEntries"):
        entry = require_doc(raw, "AttributeRegistry.Attributes[]")
        name = _str(entry, "AttributeName", "AttributeRegistry.Attributes[]")
        if not name:
            raise PayloadError("AttributeRegistry.Attributes[].AttributeName is missing")
        try:
            kind = bmc.BiosAttributeType(_str(entry, "Type", name))
        except ValueError:
            kind = bmc.BiosAttributeType.STRING
        values = tuple(
            _str(require_doc(v, f"{name}.Value[]"), "ValueName", f"{name}.Value[]")
            for v in _list(entry, "Value", name)
        )
        result[name] = bmc.BiosAttributeSchema(
            name=name,
            type=kind,
            allowable_values=values,
            lower_bound=_bound(entry, "LowerBound"),
            upper_bound=_bound(entry, "UpperBound"),
            min_length=_bound(entry, "MinLength"),
            max_length=_bound(entry, "MaxLength"),
            read_only=bool(_opt(entry, "ReadOnly", bool, name)),
            reset_required=bool(_opt(entry, "ResetRequired", bool, name)),
            unique=bool(_opt(entry, "IsSystemUniqueProperty", bool, name)),
        )
    return result


# --- Firmware, virtual media, events ------------------------------------------------------------

Classifier = Callable[[Doc], str | None]
"""Vendor rule naming a SoftwareInventory item's component ("bios", "bmc", ...) or None (skip)."""


def firmware_components(items: Sequence[object], classify: Classifier
                        ) -> tuple[bmc.FirmwareComponent, ...]:
    found: dict[str, bmc.FirmwareComponent] = {}
    for raw in items:
        item = require_doc(raw, "SoftwareInventory")
        component = classify(item)
        if component is None or component in found:
            continue
        found[component] = bmc.FirmwareComponent(
            component=component,
            version=_str(item, "Version", "SoftwareInventory"),
            updateable=bool(_opt(item, "Updateable", bool, "SoftwareInventory")),
        )
    return tuple(found[name] for name in sorted(found))


_MEDIA_TYPES = {
    bmc.MediaDevice.CD: frozenset({"CD", "DVD"}),
    bmc.MediaDevice.USB: frozenset({"USBStick", "Floppy"}),
}


def media_devices(virtual_media: object) -> frozenset[bmc.MediaDevice]:
    """Which of our slots a VirtualMedia resource can serve, from its MediaTypes."""
    doc = require_doc(virtual_media, "VirtualMedia")
    types = {t for t in _list(doc, "MediaTypes", "VirtualMedia") if isinstance(t, str)}
    return frozenset(dev for dev, wanted in _MEDIA_TYPES.items() if types & wanted)


def media_state(virtual_media: object, device: bmc.MediaDevice) -> bmc.MediaState:
    doc = require_doc(virtual_media, "VirtualMedia")
    inserted = bool(_opt(doc, "Inserted", bool, "VirtualMedia"))
    image = _str(doc, "Image", "VirtualMedia")
    return bmc.MediaState(device=device, inserted=inserted and bool(image),
                          image_url=image if inserted else "")


def subscription(destination: object) -> bmc.EventSubscription:
    doc = require_doc(destination, "EventDestination")
    sub_id = _str(doc, "Id", "EventDestination")
    if not sub_id:
        raise PayloadError("EventDestination.Id is missing")
    return bmc.EventSubscription(
        id=sub_id,
        destination=_str(doc, "Destination", "EventDestination"),
        context=_str(doc, "Context", "EventDestination"),
        event_types=tuple(t for t in _list(doc, "EventTypes", "EventDestination")
                          if isinstance(t, str)),
    )


# --- Firmware update tasks ----------------------------------------------------------------------

_TASK_STATE = {
    "Completed": bmc.TaskState.COMPLETED,
    "Exception": bmc.TaskState.FAILED,
    "Killed": bmc.TaskState.FAILED,
    "Cancelled": bmc.TaskState.FAILED,
}
"""Redfish TaskState -> ours; every other value (New, Starting, Running, Pending, Suspended,
Interrupted, Stopping, Service, Cancelling...) is RUNNING: the task has not ended."""


def simple_update_request(task: object) -> tuple[str, tuple[str, ...]] | None:
    """(ImageURI, Targets) of the SimpleUpdate a Task runs, from its Payload; None for a task
    that is not a SimpleUpdate (or that the BMC does not describe)."""
    doc = require_doc(task, "Task")
    payload = _obj(doc, "Payload", "Task")
    if not _str(payload, "TargetUri", "Task.Payload").endswith("UpdateService.SimpleUpdate"):
        return None
    raw = payload.get("JsonBody")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as err:
            raise PayloadError("Task.Payload.JsonBody is not JSON") from err
    body = require_doc(raw, "Task.Payload.JsonBody")
    targets = tuple(t for t in _list(body, "Targets", "Task.Payload.JsonBody")
                    if isinstance(t, str))
    return _str(body, "ImageURI", "Task.Payload.JsonBody"), targets


def update_task(task: object, component: str, image_url: str) -> bmc.UpdateTask:
    """A SimpleUpdate Task as an UpdateTask of `component` (the caller resolved the target)."""
    doc = require_doc(task, "Task")
    task_id = _str(doc, "Id", "Task")
    if not task_id:
        raise PayloadError("Task.Id is missing")
    state = _TASK_STATE.get(_str(doc, "TaskState", "Task"), bmc.TaskState.RUNNING)
    if state is bmc.TaskState.COMPLETED and _str(doc, "TaskStatus", "Task") == "Critical":
        state = bmc.TaskState.FAILED
    percent = _num(doc, "PercentComplete", "Task")
    messages = [require_doc(m, "Task.Messages[]") for m in _list(doc, "Messages", "Task")]
    text = "; ".join(m for m in (_str(m, "Message", "Task.Messages[]") for m in messages) if m)
    return bmc.UpdateTask(
        id=task_id, component=component, image_url=image_url, state=state,
        percent=int(max(0.0, min(100.0, percent))) if percent is not None else None,
        message=text[:1000],
    )


# --- Storage ------------------------------------------------------------------------------------

_RAID_LEVEL = {
    "RAID0": bmc.RaidLevel.RAID0, "RAID1": bmc.RaidLevel.RAID1, "RAID2": bmc.RaidLevel.RAID2,
    "RAID5": bmc.RaidLevel.RAID5, "RAID6": bmc.RaidLevel.RAID6, "RAID10": bmc.RaidLevel.RAID10,
    "RAID50": bmc.RaidLevel.RAID50, "RAID60": bmc.RaidLevel.RAID60,
}
RAID_TYPE = {level: name for name, level in _RAID_LEVEL.items()}
"""Our level -> Redfish RAIDType (what a Volume create sends)."""


def _drive(raw: object) -> bmc.PhysicalDrive:
    doc = require_doc(raw, "Drive")
    drive_id = _str(doc, "Id", "Drive")
    if not drive_id:
        raise PayloadError("Drive.Id is missing")
    capacity = _num(doc, "CapacityBytes", "Drive")
    return bmc.PhysicalDrive(
        id=drive_id, name=_str(doc, "Name", "Drive") or drive_id,
        size_bytes=int(capacity) if capacity is not None else 0,
        rotational=_str(doc, "MediaType", "Drive") == "HDD")


def storage_controller(storage: object, drives: Sequence[object]) -> bmc.StorageController | None:
    """A Storage resource as a RAID controller (its first StorageControllers entry's RAID
    types, the resource's drives); None when it can build no RAID level."""
    doc = require_doc(storage, "Storage")
    storage_id = _str(doc, "Id", "Storage")
    if not storage_id:
        raise PayloadError("Storage.Id is missing")
    levels: set[bmc.RaidLevel] = set()
    name = _str(doc, "Name", "Storage")
    for raw in _list(doc, "StorageControllers", "Storage"):
        ctrl = require_doc(raw, "Storage.StorageControllers[]")
        name = _str(ctrl, "Name", "Storage.StorageControllers[]") or name
        levels.update(_RAID_LEVEL[t] for t in _list(ctrl, "SupportedRAIDTypes", name or "Storage")
                      if isinstance(t, str) and t in _RAID_LEVEL)
    if not levels:
        return None
    return bmc.StorageController(id=storage_id, name=name or storage_id,
                                 raid_levels=frozenset(levels),
                                 drives=tuple(_drive(d) for d in drives))


def volume(raw: object, controller: str) -> bmc.Volume:
    doc = require_doc(raw, "Volume")
    volume_id = _str(doc, "Id", "Volume")
    if not volume_id:
        raise PayloadError("Volume.Id is missing")
    capacity = _num(doc, "CapacityBytes", "Volume")
    links = _obj(doc, "Links", "Volume")
    drives = []
    for link in _list(links, "Drives", "Volume.Links"):
        path = _str(require_doc(link, "Volume.Links.Drives[]"), "@odata.id",
                    "Volume.Links.Drives[]")
        if path:
            drives.append(path.rstrip("/").rsplit("/", 1)[-1])
    return bmc.Volume(
        id=volume_id, controller=controller, name=_str(doc, "Name", "Volume"),
        level=_RAID_LEVEL.get(_str(doc, "RAIDType", "Volume")),
        size_bytes=int(capacity) if capacity is not None else 0, drives=tuple(drives))
