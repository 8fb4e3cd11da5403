"""core.bmc: the error family's messages and the HardwareType tables."""

import pytest

from metalcubed.controllers.bmc import hardware, unsupported
from metalcubed.core import bmc, outcome, ports

CREDS = ports.Credentials(username="admin", password="s3cret-pw")


def test_driver_error_names_address_and_operation_and_redacts_password() -> None:
    err = bmc.BmcUnreachable("redfish://admin:s3cret-pw@10.0.0.5/redfish/v1/Systems/1",
                             "power on", "timed out")
    assert "s3cret-pw" not in str(err)
    assert "10.0.0.5" in str(err) and "power on" in str(err)
    assert err.operation == "power on"


def test_busy_carries_retry_after() -> None:
    err = bmc.BmcBusy("redfish://h", "get power state", "HTTP 503", retry_after_s=2.0)
    assert err.retry_after_s == 2.0
    assert isinstance(err, outcome.MetalcubedError)


def test_rejected_carries_status() -> None:
    assert bmc.BmcRejected("ipmi://h", "power on", "conflict", status=409).status == 409


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("ipmi://10.0.0.1", "ipmi"),
        ("10.0.0.1:6230", "ipmi"),
        ("libvirt://10.0.0.1", "ipmi"),
        ("redfish://10.0.0.1/redfish/v1/Systems/1", "redfish"),
        ("ilo5-redfish://10.0.0.1", "redfish"),
        ("redfish-virtualmedia+http://10.0.0.1:8000/redfish/v1/Systems/1",
         "redfish-virtualmedia"),
        ("redfish-uefihttp://10.0.0.1", "redfish-virtualmedia"),
        ("idrac-redfish://10.0.0.1", "idrac"),
        ("idrac-virtualmedia://10.0.0.1", "idrac-virtualmedia"),
    ],
)
def test_every_scheme_has_a_hardware_type(address: str, expected: str) -> None:
    access = bmc.BmcAccess.of(address, CREDS)
    hw = hardware.for_address(access)
    assert hw.name == expected
    hw.compose().validate(access)


def test_ipmi_defaults_unsupported_for_bios_media_events() -> None:
    driver = hardware.IPMI.compose()
    access = bmc.BmcAccess.of("ipmi://10.0.0.1", CREDS)
    for call in (lambda: driver.bios.settings(access),
                 lambda: driver.boot.insert_media(access, "http://x/a.iso",
                                                  device=bmc.MediaDevice.CD),
                 lambda: driver.events.subscriptions(access)):
        with pytest.raises(bmc.UnsupportedCapability) as info:
            call()
        assert info.value.implementation == "ipmi"


def test_compose_picks_an_allowed_alternative_and_rejects_others() -> None:
    driver = hardware.REDFISH.compose({bmc.Capability.BIOS: "no-bios"})
    assert isinstance(driver.bios, unsupported.UnsupportedBios)
    assert hardware.REDFISH.allowed(bmc.Capability.BOOT) == ("no-virtual-media",
                                                              "redfish-virtual-media")
    with pytest.raises(outcome.SpecError):
        hardware.IPMI.compose({bmc.Capability.BIOS: "redfish"})


def test_redfish_validate_rejects_ipmi_address_without_io() -> None:
    access = bmc.BmcAccess.of("ipmi://10.0.0.1", CREDS)
    with pytest.raises(outcome.SpecError):
        hardware.REDFISH.compose().power.validate(access)


def test_hardware_type_needs_every_capability() -> None:
    with pytest.raises(ValueError, match="power"):
        bmc.HardwareType(name="x", power=(), management=hardware.IPMI.management,
                         boot=hardware.IPMI.boot, inspect=hardware.IPMI.inspect,
                         bios=hardware.IPMI.bios, firmware=hardware.IPMI.firmware,
                         events=hardware.IPMI.events)


def test_implementations_conform_to_the_protocols() -> None:
    power: bmc.Power = hardware.REDFISH.power[0]
    management: bmc.Management = hardware.IPMI.management[0]
    boot: bmc.Boot = hardware.REDFISH_VIRTUALMEDIA.boot[0]
    bios: bmc.Bios = unsupported.UnsupportedBios("ipmi")
    assert power.name == "redfish" and management.name == "ipmitool"
    assert boot.name == "redfish-virtual-media" and bios.name == "no-bios"
