"""pyghmi's answers (plain dicts) to core.bmc value types. Pure, tested without a BMC."""

from collections.abc import Mapping
from typing import Any

from metalcubed.core import bmc
from metalcubed.core.api import hardwaredata as hwd


class PayloadError(ValueError):
    """An answer without the fields pyghmi promises."""


_DEVICES = {
    "network": bmc.BootDevice.PXE,
    "hd": bmc.BootDevice.DISK,
    "optical": bmc.BootDevice.CDROM,
    "setup": bmc.BootDevice.BIOS,
    "default": bmc.BootDevice.NONE,
}
DEVICE_NAMES: Mapping[bmc.BootDevice, str] = {
    bmc.BootDevice.PXE: "network",
    bmc.BootDevice.DISK: "hd",
    bmc.BootDevice.CDROM: "optical",
    bmc.BootDevice.BIOS: "setup",
    bmc.BootDevice.NONE: "default",
}
"""Our devices in pyghmi's set_bootdev vocabulary (no UEFI HTTP boot over IPMI)."""


def power_state(answer: Mapping[str, Any]) -> bmc.PowerState:
    state = answer.get("powerstate")
    if state == "on":
        return bmc.PowerState.ON
    if state == "off":
        return bmc.PowerState.OFF
    raise PayloadError(f"unexpected power state {state!r}")


def boot_setting(answer: Mapping[str, Any]) -> bmc.BootSetting:
    if "bootdev" not in answer:
        raise PayloadError("boot options answer without a device")
    device = _DEVICES.get(str(answer["bootdev"]), bmc.BootDevice.NONE)
    persistence = bmc.Persistence.PERSISTENT if answer.get("persistent") else bmc.Persistence.ONCE
    mode = None
    if "uefimode" in answer:
        mode = bmc.BootMode.UEFI if answer["uefimode"] else bmc.BootMode.LEGACY
    return bmc.BootSetting(device=device, persistence=persistence, mode=mode)


def _text(fru: Mapping[str, Any], *keys: str) -> str:
    for key in keys:
        value = fru.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def hardware_details(fru: Mapping[str, Any]) -> hwd.HardwareDetails:
    """What FRU 0 (plus Get Device ID) says: vendor, product, serial. IPMI has no reliable
    CPU, RAM, NIC or disk inventory; those fields stay empty (in-band inspection fills them)."""
    return hwd.HardwareDetails(
        system_vendor=hwd.HardwareSystemVendor(
            manufacturer=_text(fru, "Manufacturer", "Board manufacturer"),
            product_name=_text(fru, "Product name", "Board product name"),
            serial_number=_text(fru, "Serial Number", "Board serial number"),
        ),
    )


def firmware_components(fru: Mapping[str, Any]) -> tuple[bmc.FirmwareComponent, ...]:
    version = fru.get("firmware_version")
    if not isinstance(version, str) or not version:
        return ()
    return (bmc.FirmwareComponent(component="bmc", version=version),)
