"""Hardware types per BMC scheme family, and `for_address` to pick one.

The scheme of `spec.bmc.address` names a `bmcaddress.BMCType` (upstream's table); its `driver`
and `boot_interface` pick the hardware type here. Each type is a table (STYLE 6): per
capability, the implementations a host may use, default first, `Unsupported<X>` where the
protocol cannot do it (`bmc.NoRaid` for RAID, upstream's "no-raid").

docs/bmc.md has the table of what each scheme supports.
"""

from metalcubed.controllers.bmc import unsupported
from metalcubed.controllers.bmc.ipmi import capabilities as ipmi
from metalcubed.controllers.bmc.redfish import capabilities as redfish
from metalcubed.controllers.bmc.redfish import raid as redfish_raid
from metalcubed.core import bmc, outcome


def _redfish(name: str, *, virtual_media_boot: bool) -> bmc.HardwareType:
    vmedia: tuple[bmc.Boot, ...] = (
        redfish.RedfishVirtualMedia(), unsupported.UnsupportedBoot(name))
    if not virtual_media_boot:
        # iPXE-booted types may still attach media (DataImage), but do not boot from it.
        vmedia = vmedia[::-1]
    return bmc.HardwareType(
        name=name,
        power=(redfish.RedfishPower(),),
        management=(redfish.RedfishManagement(),),
        boot=vmedia,
        inspect=(redfish.RedfishInspect(), unsupported.UnsupportedInspect(name)),
        bios=(redfish.RedfishBios(), unsupported.UnsupportedBios(name)),
        firmware=(redfish.RedfishFirmware(), unsupported.UnsupportedFirmware(name)),
        events=(redfish.RedfishEvents(), unsupported.UnsupportedEvents(name)),
        raid=(redfish_raid.RedfishRaid(), bmc.NoRaid(name)),
    )


REDFISH = _redfish("redfish", virtual_media_boot=False)
REDFISH_VIRTUALMEDIA = _redfish("redfish-virtualmedia", virtual_media_boot=True)
IDRAC = _redfish("idrac", virtual_media_boot=False)
IDRAC_VIRTUALMEDIA = _redfish("idrac-virtualmedia", virtual_media_boot=True)
IPMI = bmc.HardwareType(
    name="ipmi",
    power=(ipmi.IpmiPower(),),
    management=(ipmi.IpmiManagement(),),
    boot=(unsupported.UnsupportedBoot("ipmi"),),
    inspect=(ipmi.IpmiInspect(), unsupported.UnsupportedInspect("ipmi")),
    bios=(unsupported.UnsupportedBios("ipmi"),),
    firmware=(ipmi.IpmiFirmware(), unsupported.UnsupportedFirmware("ipmi")),
    events=(unsupported.UnsupportedEvents("ipmi"),),
    raid=(bmc.NoRaid("ipmi"),),
)

_BY_SCHEME: dict[str, bmc.HardwareType] = {
    "ipmi": IPMI,
    "libvirt": IPMI,
    "redfish": REDFISH,
    "ilo5-redfish": REDFISH,
    "redfish-virtualmedia": REDFISH_VIRTUALMEDIA,
    "ilo5-virtualmedia": REDFISH_VIRTUALMEDIA,
    "redfish-uefihttp": REDFISH_VIRTUALMEDIA,
    "idrac-redfish": IDRAC,
    "idrac-virtualmedia": IDRAC_VIRTUALMEDIA,
}
"""Hardware type by registered scheme name (bmcaddress.BMC_TYPES keys)."""


def for_address(access: bmc.BmcAccess) -> bmc.HardwareType:
    """The hardware type serving `access`'s scheme.

    Raises `SpecError` for a scheme bmcaddress knows but no driver here serves (none today).
    """
    hardware = _BY_SCHEME.get(access.address.type.name)
    if hardware is None:
        raise outcome.SpecError(
            "spec.bmc.address", f"no driver for BMC type {access.address.type.name!r}")
    return hardware
