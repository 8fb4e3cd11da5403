"""HPE iLO 5/6 (Manufacturer "HPE" or "Hewlett Packard Enterprise").

The BIOS is called "System ROM" (and a "Redundant System ROM" is listed beside it, skipped);
the BMC is "iLO 5"/"iLO 6". iLO serves VirtualMedia under the Manager only.
"""

from collections.abc import Mapping
from typing import Any

from metalcubed.controllers.bmc.redfish.vendors import base


def classify_firmware(item: Mapping[str, Any]) -> str | None:
    name = str(item.get("Name", "")).lower()
    if name.startswith("redundant"):
        return None
    if "system rom" in name:
        return "bios"
    if name.startswith("ilo"):
        return "bmc"
    return None


VENDOR = base.Vendor(
    name="hpe",
    manufacturers=("hpe", "hewlett packard enterprise", "hp"),
    classify_firmware=classify_firmware,
    virtual_media_on_system=False,
)
