"""Dell iDRAC (Manufacturer "Dell Inc.").

Firmware inventory lists every component twice, as `Installed-<id>-<version>` and
`Previous-<id>-<version>`; only the installed ones count. The BMC is the "Integrated Dell Remote
Access Controller". iDRAC 9 serves VirtualMedia under the Manager (the System-level collection
appeared only with iDRAC firmware 6.x), so the Manager is searched first.
"""

from collections.abc import Mapping
from typing import Any

from metalcubed.controllers.bmc.redfish.vendors import base


def classify_firmware(item: Mapping[str, Any]) -> str | None:
    item_id = str(item.get("Id", ""))
    if item_id.startswith("Previous-"):
        return None
    name = str(item.get("Name", "")).lower()
    if name == "bios":
        return "bios"
    if "remote access controller" in name or "idrac" in name:
        return "bmc"
    if item_id.startswith("Installed-") and item_id.count("-") >= 2 and (
            "ethernet" in name or "nic" in name):
        return "nic:" + item_id.split("-")[1]  # the component id Dell keeps across versions
    return None


VENDOR = base.Vendor(
    name="dell",
    manufacturers=("dell",),
    classify_firmware=classify_firmware,
    virtual_media_on_system=False,
)
