"""The IPMI driver end to end against the pyghmi BMC emulator over real UDP, and ipmitool as an
independent client of the same emulator."""

import subprocess

import pytest

from metalcubed.controllers.bmc import hardware
from metalcubed.controllers.bmc.ipmi import capabilities as ip
from metalcubed.core import bmc, ports
from metalcubed.simulators import hostmodel

pytestmark = pytest.mark.hardware
CREDS = ports.Credentials(username="admin", password="password")


def _access(emulator, host, creds=CREDS) -> bmc.BmcAccess:
    return bmc.BmcAccess.of(emulator.bmc_address(host), creds)


def test_power_on_soft_and_hard_off(ipmi, hosts, sessions) -> None:
    access = _access(ipmi, hosts[0])
    power = ip.IpmiPower(sessions)
    assert power.power_state(access) is bmc.PowerState.OFF
    power.start_power_on(access)
    assert power.power_state(access) is bmc.PowerState.ON
    power.start_power_off(access, mode=ports.RebootMode.SOFT)
    assert hosts[0].power is hostmodel.Power.OFF
    power.start_reboot(access, mode=ports.RebootMode.HARD)
    assert power.power_state(access) is bmc.PowerState.ON
    power.start_power_off(access, mode=ports.RebootMode.HARD)
    power.start_power_off(access, mode=ports.RebootMode.HARD)  # already off: no-op
    assert power.power_state(access) is bmc.PowerState.OFF


def test_boot_device_and_mode_via_boot_flags(ipmi, hosts, sessions) -> None:
    access = _access(ipmi, hosts[1])
    mgmt = ip.IpmiManagement(sessions)
    mgmt.set_boot_device(access, bmc.BootDevice.PXE, persistence=bmc.Persistence.PERSISTENT)
    assert mgmt.boot_setting(access) == bmc.BootSetting(
        device=bmc.BootDevice.PXE, persistence=bmc.Persistence.PERSISTENT, mode=bmc.BootMode.UEFI)
    mgmt.set_boot_mode(access, bmc.BootMode.LEGACY)
    assert hosts[1].boot_mode is hostmodel.BootMode.LEGACY
    assert mgmt.boot_setting(access).device is bmc.BootDevice.PXE
    mgmt.set_boot_device(access, bmc.BootDevice.CDROM, persistence=bmc.Persistence.ONCE)
    assert hosts[1].boot_override() == (hostmodel.BootDevice.CD, False)
    with pytest.raises(bmc.UnsupportedCapability):
        mgmt.set_boot_device(access, bmc.BootDevice.UEFI_HTTP, persistence=bmc.Persistence.ONCE)


def test_inventory_from_fru_and_device_id(ipmi, hosts, sessions) -> None:
    access = _access(ipmi, hosts[2])
    details = ip.IpmiInspect(sessions).inspect(access)
    assert details.system_vendor.manufacturer == hosts[2].inventory.manufacturer
    assert details.system_vendor.serial_number == hosts[2].inventory.serial
    assert ip.IpmiFirmware(sessions).components(access) == (
        bmc.FirmwareComponent(component="bmc", version="5.10"),)


def test_bios_and_virtual_media_are_unsupported_over_ipmi(ipmi, hosts) -> None:
    access = _access(ipmi, hosts[0])
    driver = hardware.for_address(access).compose()
    with pytest.raises(bmc.UnsupportedCapability):
        driver.bios.apply_settings(access, {"ProcVirtualization": "Disabled"})
    with pytest.raises(bmc.UnsupportedCapability):
        driver.boot.media_state(access, device=bmc.MediaDevice.CD)


def test_wrong_password_is_auth_failed(ipmi, hosts, sessions) -> None:
    access = _access(ipmi, hosts[0], ports.Credentials(username="admin", password="nope-pw"))
    with pytest.raises(bmc.BmcAuthFailed) as info:
        ip.IpmiPower(sessions).power_state(access)
    assert "nope-pw" not in str(info.value)
    assert info.value.operation == "get power state"


def test_node_busy_after_power_off_is_retried(ipmi, hosts, sessions) -> None:
    hosts[0].faults.conflict_after_power_off_s = 0.5
    access = _access(ipmi, hosts[0])
    power = ip.IpmiPower(sessions)
    power.start_power_on(access)
    power.start_power_off(access, mode=ports.RebootMode.HARD)
    power.start_power_on(access)  # 0xC0 until the window passes
    assert power.power_state(access) is bmc.PowerState.ON


@pytest.mark.timeout(30)  # a hang guard: the call deadline shows as the errors below
def test_silent_bmc_is_unreachable_within_bounded_time(ipmi, hosts, sessions) -> None:
    access = _access(ipmi, hosts[1])
    hosts[1].faults.unreachable = True
    with pytest.raises(bmc.BmcUnreachable):
        ip.IpmiPower(sessions).power_state(access)
    with pytest.raises(bmc.BmcUnreachable, match="still unanswered"):
        ip.IpmiPower(sessions).power_state(access)  # no second thread piles up


def _ipmitool(path: str, port: int, *args: str) -> str:
    proc = subprocess.run(
        [path, "-I", "lanplus", "-H", "127.0.0.1", "-p", str(port), "-U", "admin",
         "-P", "password", *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_ipmitool_power_status_on_off(ipmi, hosts, ipmitool) -> None:
    port = ipmi.port(hosts[0])
    assert _ipmitool(ipmitool, port, "power", "status") == "Chassis Power is off"
    _ipmitool(ipmitool, port, "power", "on")
    assert hosts[0].power is hostmodel.Power.ON
    assert _ipmitool(ipmitool, port, "power", "status") == "Chassis Power is on"
    _ipmitool(ipmitool, port, "power", "off")
    assert hosts[0].power is hostmodel.Power.OFF


def test_ipmitool_sees_what_the_driver_set(ipmi, hosts, sessions, ipmitool) -> None:
    access = _access(ipmi, hosts[2])
    ip.IpmiManagement(sessions).set_boot_device(access, bmc.BootDevice.DISK,
                                                persistence=bmc.Persistence.PERSISTENT)
    out = _ipmitool(ipmitool, ipmi.port(hosts[2]), "chassis", "bootparam", "get", "5")
    assert "Force Boot from default Hard-Drive" in out
    assert "Options apply to all future boots" in out
