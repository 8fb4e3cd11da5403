"""The Redfish payload parsers against recorded payloads (tests/data/redfish) and hostile ones."""

import json
import pathlib
from typing import Any

import pytest

from metalcubed.controllers.bmc.redfish import parse, vendors
from metalcubed.core import bmc

DATA = pathlib.Path(__file__).resolve().parents[2] / "data" / "redfish"


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def test_emulator_system_power_and_boot() -> None:
    system = load("emulator/system.json")
    assert parse.power_state(system) is bmc.PowerState.OFF
    assert parse.boot_setting(system) == bmc.BootSetting(
        device=bmc.BootDevice.NONE, persistence=bmc.Persistence.ONCE, mode=bmc.BootMode.UEFI)
    assert "BiosSetup" in parse.allowed_boot_targets(system)


def test_dell_system_boot_once_pxe_legacy() -> None:
    system = load("dell/system.json")
    assert parse.power_state(system) is bmc.PowerState.ON
    assert parse.boot_setting(system) == bmc.BootSetting(
        device=bmc.BootDevice.PXE, persistence=bmc.Persistence.ONCE, mode=bmc.BootMode.LEGACY)
    assert vendors.for_manufacturer(parse.manufacturer(system)).name == "dell"


def test_hardware_details_from_recorded_emulator_payloads() -> None:
    details = parse.hardware_details(
        load("emulator/system.json"),
        processors=[load("emulator/processor.json")] * 2,
        nics=[load("emulator/nic.json")],
        drives=[load("emulator/drive_nvme.json")],
    )
    assert details.system_vendor.manufacturer == "Metalcubed"
    assert details.system_vendor.serial_number == "M3-000000"
    assert details.firmware.bios.version == "2.1.7"
    assert details.ram_mebibytes == 128 * 1024
    assert details.cpu.arch == "x86_64"
    assert details.cpu.count == 128
    assert details.cpu.clock_megahertz == 3200.0
    assert [n.mac for n in details.nics] == ["52:54:00:00:00:01"]
    assert details.nics[0].speed_gbps == 25
    (disk,) = details.storage
    assert disk.type is not None and disk.type.value == "NVME"
    assert disk.size_bytes == 1920 * 10**9 and not disk.rotational


def test_hardware_details_fall_back_to_simple_storage_and_memory_modules() -> None:
    system = dict(load("emulator/system.json"))
    system["MemorySummary"] = {}
    details = parse.hardware_details(system, memory=[load("emulator/memory.json")] * 4,
                                     simple_storage=[load("emulator/simple_storage.json")])
    assert details.ram_mebibytes == 4 * 32768
    assert [d.name for d in details.storage] == ["/dev/sda", "/dev/nvme0n1"]


def test_dell_summary_counts_when_no_processor_documents() -> None:
    details = parse.hardware_details(load("dell/system.json"))
    assert details.cpu.count == 64
    assert details.ram_mebibytes == 256 * 1024
    assert details.hostname == "node-17"


def test_bios_settings_and_registry() -> None:
    settings = parse.bios_settings(load("emulator/bios.json"), {"Attributes": {"AssetTag": "x"}})
    assert settings.current["PxeRetryCount"] == 3
    assert settings.current["SecureBoot"] is False
    assert settings.pending == {"AssetTag": "x"}
    registry = parse.bios_registry(load("emulator/bios_registry.json"))
    assert registry["ProcVirtualization"].allowable_values == ("Enabled", "Disabled")
    assert registry["PxeRetryCount"].type is bmc.BiosAttributeType.INTEGER
    assert registry["PxeRetryCount"].upper_bound == 10
    assert registry["SystemServiceTag"].read_only


@pytest.mark.parametrize(
    ("vendor", "expected"),
    [
        ("dell", {"bios": "1.13.2", "bmc": "7.00.00.171", "nic:101548": "22.5.7"}),
        ("hpe", {"bios": "U46 v2.76 (02/09/2023)", "bmc": "2.78 Jan 27 2023"}),
    ],
    ids=["dell-installed-only", "hpe-system-rom-and-ilo"],
)
def test_firmware_inventory_by_vendor(vendor: str, expected: dict[str, str]) -> None:
    quirks = {"dell": vendors.dell.VENDOR, "hpe": vendors.hpe.VENDOR}[vendor]
    found = parse.firmware_components(load(f"{vendor}/firmware_inventory.json"),
                                      quirks.classify_firmware)
    assert {c.component: c.version for c in found} == expected


def test_vendor_selection_by_manufacturer() -> None:
    assert vendors.for_manufacturer("Dell Inc.").name == "dell"
    assert vendors.for_manufacturer("HPE").name == "hpe"
    assert vendors.for_manufacturer("Hewlett Packard Enterprise").name == "hpe"
    assert vendors.for_manufacturer("Supermicro").name == "generic"
    assert vendors.for_manufacturer("").name == "generic"


def test_virtual_media_slot_and_state() -> None:
    cd = load("emulator/virtual_media_cd.json")
    assert parse.media_devices(cd) == {bmc.MediaDevice.CD}
    assert parse.media_state(cd, bmc.MediaDevice.CD) == bmc.MediaState(
        device=bmc.MediaDevice.CD, inserted=False)


def test_unknown_power_value_is_unknown_not_an_error() -> None:
    assert parse.power_state({"PowerState": "Paused"}) is bmc.PowerState.UNKNOWN


@pytest.mark.parametrize(
    ("call", "payload"),
    [
        (parse.power_state, {}),
        (parse.power_state, {"PowerState": 1}),
        (parse.power_state, "<html><body>502 Bad Gateway</body></html>"),
        (parse.power_state, ["On"]),
        (parse.boot_setting, {"Boot": "Pxe"}),
        (parse.boot_setting, {"Boot": {"BootSourceOverrideTarget": ["Pxe"]}}),
        (parse.bios_settings, {"Attributes": {"X": {"nested": 1}}}),
        (parse.bios_settings, {"Id": "BIOS"}),
        (parse.bios_registry, {"RegistryEntries": {"Attributes": [{"Type": "String"}]}}),
        (parse.subscription, {"Destination": "http://x"}),
        (lambda doc: parse.hardware_details(doc), {"MemorySummary": {"TotalSystemMemoryGiB": "a"}}),
        (lambda doc: parse.hardware_details({}, nics=[doc]), {"MACAddress": 42}),
        (lambda doc: parse.hardware_details({}, drives=[doc]), {"CapacityBytes": True}),
    ],
    ids=["power-missing", "power-int", "html-page", "list", "boot-string", "target-list",
         "bios-nested", "bios-missing", "registry-no-name", "subscription-no-id",
         "memory-string", "mac-int", "capacity-bool"],
)
def test_hostile_payloads_raise_payload_error(call: Any, payload: Any) -> None:
    with pytest.raises(parse.PayloadError):
        call(payload)


def test_nic_with_placeholder_mac_is_skipped() -> None:
    details = parse.hardware_details({}, nics=[{"Id": "1", "MACAddress": ""},
                                               {"Id": "2", "MACAddress": "not-a-mac"}])
    assert details.nics == ()
