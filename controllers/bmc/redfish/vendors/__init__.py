"""Vendor quirk tables for the Redfish driver, chosen by ComputerSystem.Manufacturer."""

from metalcubed.controllers.bmc.redfish.vendors import base, dell, generic, hpe

Vendor = base.Vendor

KNOWN: tuple[base.Vendor, ...] = (dell.VENDOR, hpe.VENDOR)
GENERIC = generic.VENDOR


def for_manufacturer(manufacturer: str) -> base.Vendor:
    """The entry for `manufacturer`, or the generic one."""
    for vendor in KNOWN:
        if vendor.matches(manufacturer):
            return vendor
    return GENERIC
