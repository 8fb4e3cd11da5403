"""What differs between Redfish implementations, as data: one `Vendor` per manufacturer family.

The driver detects the manufacturer from the ComputerSystem and asks `vendors.for_manufacturer`
for the matching entry; everything vendor-specific is read from it, never decided by `if
manufacturer == ...` inside the capabilities.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from metalcubed.controllers.bmc.redfish import parse


@dataclass(frozen=True, slots=True, kw_only=True)
class Vendor:
    name: str
    manufacturers: tuple[str, ...]
    """Lower-case prefixes of ComputerSystem.Manufacturer this entry serves."""
    classify_firmware: parse.Classifier
    """Names a FirmwareInventory item's component ("bios", "bmc", "nic:...") or skips it."""
    virtual_media_on_system: bool = True
    """Look for VirtualMedia under the ComputerSystem first (newer BMCs), else the Manager."""
    eject_before_insert: bool = True
    """Eject before inserting: most BMCs refuse InsertMedia into an occupied slot."""

    def matches(self, manufacturer: str) -> bool:
        lowered = manufacturer.strip().lower()
        return any(lowered.startswith(prefix) for prefix in self.manufacturers)


def related_kind(item: Mapping[str, Any]) -> str | None:
    """"bmc" or "bios" from a SoftwareInventory RelatedItem link to a Manager or System."""
    related = item.get("RelatedItem")
    if not isinstance(related, list):
        return None
    for link in related:
        target = link.get("@odata.id") if isinstance(link, Mapping) else None
        if isinstance(target, str):
            if "/Managers/" in target:
                return "bmc"
            if "/Systems/" in target:
                return "bios"
    return None
