"""BIOS settings and their attribute registry through the Redfish driver over real HTTP: the
registry as FirmwareSchema needs it, and the BMC's refusals naming the attribute."""

import pytest

from metalcubed.controllers.bmc.redfish import capabilities as rf
from metalcubed.core import bmc, ports
from tests.hardware.conftest import redfish_access

pytestmark = pytest.mark.hardware


def test_registry_carries_types_bounds_and_flags(redfish, hosts, clients) -> None:
    registry = rf.RedfishBios(clients).registry(redfish_access(redfish, hosts[0]))
    assert registry["ProcVirtualization"] == bmc.BiosAttributeSchema(
        name="ProcVirtualization", type=bmc.BiosAttributeType.ENUMERATION,
        allowable_values=("Enabled", "Disabled"), reset_required=True)
    pxe = registry["PxeRetryCount"]
    assert (pxe.type, pxe.lower_bound, pxe.upper_bound) == (
        bmc.BiosAttributeType.INTEGER, 0, 10)
    assert registry["SecureBoot"].type is bmc.BiosAttributeType.BOOLEAN
    assert (registry["AssetTag"].max_length, registry["AssetTag"].unique) == (32, True)
    tag = registry["SystemServiceTag"]
    assert (tag.read_only, tag.unique, tag.reset_required) == (True, True, False)
    assert set(registry) == set(rf.RedfishBios(clients).settings(
        redfish_access(redfish, hosts[0])).current)


@pytest.mark.parametrize(("change", "words"), [
    ({"SystemServiceTag": "X"}, "SystemServiceTag is read-only"),
    ({"NoSuchKnob": "On"}, "unknown BIOS attribute NoSuchKnob"),
    ({"ProcVirtualization": "Maybe"}, "ProcVirtualization must be one of Enabled, Disabled"),
    ({"AssetTag": "x" * 33}, "AssetTag must be a string of at most 32"),
])
def test_bad_values_are_refused_naming_the_attribute(redfish, hosts, clients, change,
                                                     words) -> None:
    access = redfish_access(redfish, hosts[0])
    bios = rf.RedfishBios(clients)
    with pytest.raises(bmc.BmcRejected) as info:
        bios.apply_settings(access, change)
    assert info.value.status == 400 and words in str(info.value)
    assert bios.settings(access).pending == {}, "nothing staged from a refused change"


def test_staged_settings_apply_at_the_next_boot_only(redfish, hosts, clients) -> None:
    access = redfish_access(redfish, hosts[2])
    bios = rf.RedfishBios(clients)
    bios.apply_settings(access, {"SriovGlobalEnable": "Enabled"})
    staged = bios.settings(access)
    assert (staged.current["SriovGlobalEnable"], staged.pending) == (
        "Disabled", {"SriovGlobalEnable": "Enabled"})
    rf.RedfishPower(clients).start_reboot(access, mode=ports.RebootMode.HARD)
    applied = bios.settings(access)
    assert (applied.current["SriovGlobalEnable"], applied.pending) == ("Enabled", {})
