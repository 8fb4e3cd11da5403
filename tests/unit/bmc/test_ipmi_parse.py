"""pyghmi answers to value types."""

import pytest

from metalcubed.controllers.bmc.ipmi import parse
from metalcubed.core import bmc


def test_boot_setting_with_flags() -> None:
    assert parse.boot_setting({"bootdev": "network", "persistent": True, "uefimode": False}) == (
        bmc.BootSetting(device=bmc.BootDevice.PXE, persistence=bmc.Persistence.PERSISTENT,
                        mode=bmc.BootMode.LEGACY))


def test_default_device_means_no_override() -> None:
    assert parse.boot_setting({"bootdev": "default", "persistent": True}).device is (
        bmc.BootDevice.NONE)


def test_fru_to_hardware_details_prefers_product_area() -> None:
    fru = {"Manufacturer": "ACME", "Product name": "X1", "Serial Number": "S1",
           "Board manufacturer": "Board Co", "firmware_version": "5.10"}
    details = parse.hardware_details(fru)
    assert details.system_vendor.manufacturer == "ACME"
    assert details.system_vendor.serial_number == "S1"
    assert parse.firmware_components(fru)[0].version == "5.10"


def test_bad_power_answer() -> None:
    with pytest.raises(parse.PayloadError):
        parse.power_state({"powerstate": "maybe"})
