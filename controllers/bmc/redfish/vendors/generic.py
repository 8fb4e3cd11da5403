"""Standard Redfish: no known quirks. Used when the manufacturer matches no other entry."""

from collections.abc import Mapping
from typing import Any

from metalcubed.controllers.bmc.redfish.vendors import base


def classify_firmware(item: Mapping[str, Any]) -> str | None:
    name = f"{item.get('Id', '')} {item.get('Name', '')}".lower()
    if "bios" in name or "system rom" in name:
        return "bios"
    if "bmc" in name or "manager" in name:
        return "bmc"
    return base.related_kind(item)


VENDOR = base.Vendor(name="generic", manufacturers=(), classify_firmware=classify_firmware)
