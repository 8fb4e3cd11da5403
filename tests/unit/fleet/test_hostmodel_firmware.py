"""The emulated server's firmware updates (hostmodel.HostModel): the one model the Redfish
emulator, the in-process Sim BMCs and the fleet model share. Time is a manual clock."""

import random

import pytest

from metalcubed.core import bmc, ports
from metalcubed.simulators import hostmodel, hostmodel_bmc


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _host(clock: Clock, **faults: object) -> hostmodel.HostModel:
    return hostmodel.HostModel(
        name="h0",
        clock=clock,
        timing=hostmodel.PowerTiming(firmware_update_s=300.0),
        faults=hostmodel.Faults(bmc_reboot_s=60.0, **faults),  # type: ignore[arg-type]
        power=hostmodel.Power.ON,
    )


def test_bios_update_applies_after_its_duration_with_a_reboot() -> None:
    clock = Clock()
    host = _host(clock)
    host.stage_bios({"ProcVirtualization": "Disabled"})
    task = host.start_firmware_update("bios", "http://fw/bios-2.4.1.bin", version="2.4.1")
    assert task.state is hostmodel.TaskState.RUNNING
    clock.now = 299.0
    assert host.firmware_task(task.id).state is hostmodel.TaskState.RUNNING
    assert host.firmware()["bios"] == "2.1.7"
    assert host.bios()["ProcVirtualization"] == "Enabled"  # staged, not applied yet
    clock.now = 300.0
    assert host.firmware_task(task.id).state is hostmodel.TaskState.COMPLETED
    assert host.firmware()["bios"] == "2.4.1"
    # The update's reboot is a boot: staged settings apply at it.
    assert len(host.boots) == 1
    assert host.bios()["ProcVirtualization"] == "Disabled"
    assert not host.bmc_rebooting()
    host.close()


def test_failed_update_keeps_the_old_version_and_says_why() -> None:
    clock = Clock()
    host = _host(clock, update_failure_rate=1.0)
    task = host.start_firmware_update("bios", "http://fw/bios-2.4.1.bin", version="2.4.1")
    clock.now = 400.0
    done = host.firmware_task(task.id)
    assert done.state is hostmodel.TaskState.EXCEPTION
    assert done.message == hostmodel.UPDATE_FAILED_MESSAGE
    assert host.firmware()["bios"] == "2.1.7"
    assert host.boots == []  # nothing applied, no reboot
    host.close()


def test_bmc_reboots_partway_through_when_the_fault_says_so() -> None:
    clock = Clock()
    host = _host(clock, bmc_reboot_rate=1.0)
    task = host.start_firmware_update("bios", "http://fw/bios-2.4.1.bin", version="2.4.1")
    down = []
    for t in range(0, 400, 5):
        clock.now = float(t)
        if host.bmc_rebooting():
            down.append(t)
    assert down, "the BMC never rebooted"
    assert 30 <= down[0] <= 270  # starts within the flash (10 % .. 90 %)
    assert down[-1] - down[0] <= 60  # for bmc_reboot_s
    clock.now = 400.0
    assert host.firmware_task(task.id).state is hostmodel.TaskState.COMPLETED
    host.close()


def test_bmc_update_reboots_the_bmc_not_the_host() -> None:
    clock = Clock()
    host = _host(clock)
    host.start_firmware_update("bmc", "http://fw/bmc-6.0.bin", version="6.00.00")
    clock.now = 300.0
    assert host.bmc_rebooting()
    assert host.firmware()["bmc"] == "6.00.00"
    assert host.boots == []
    clock.now = 361.0
    assert not host.bmc_rebooting()
    host.close()


def test_refused_requests() -> None:
    clock = Clock()
    host = _host(clock)
    with pytest.raises(hostmodel.HostModelError, match="unknown firmware component nic"):
        host.start_firmware_update("nic", "http://fw/nic.bin", version="1")
    host.start_firmware_update("bios", "http://fw/bios-2.4.1.bin", version="2.4.1")
    with pytest.raises(hostmodel.HostModelError, match="already running"):
        host.start_firmware_update("bios", "http://fw/bios-2.4.1.bin", version="2.4.1")
    host.close()


def test_fault_free_updates_draw_no_randomness() -> None:
    rng = random.Random(7)
    state = rng.getstate()
    assert hostmodel.Faults().draw_update(rng) == hostmodel.UpdateFate()
    assert rng.getstate() == state


def test_sim_bmc_firmware_port_over_the_host_model() -> None:
    """hostmodel_bmc.SimFirmware: the port's start_update/update_tasks on the host model."""
    clock = Clock()
    host = _host(clock)
    address = "redfish://10.0.0.1/redfish/v1/Systems/h0"
    bmcs = hostmodel_bmc.SimBmcs({address: host})
    driver = hostmodel_bmc.driver_for(bmcs)(None)  # type: ignore[arg-type]
    access = bmc.BmcAccess.of(address, ports.Credentials(username="u", password="p"))
    task = driver.firmware.start_update(access, "bios", "http://fw/bios-2.4.1.fwimg")
    assert task.state is bmc.TaskState.RUNNING
    assert driver.firmware.start_update(access, "bios", "http://fw/bios-2.4.1.fwimg") == task
    bad = driver.firmware.start_update(access, "bmc", "http://fw/not-an-image.bin")
    assert bad.state is bmc.TaskState.FAILED and "not-an-image.bin" in bad.message
    clock.now = 300.0
    tasks = {t.id: t for t in driver.firmware.update_tasks(access)}
    assert tasks[task.id].state is bmc.TaskState.COMPLETED
    versions = {c.component: c.version for c in driver.firmware.components(access)}
    assert versions["bios"] == "2.4.1"
    with pytest.raises(bmc.BmcRejected, match="no firmware component nic"):
        driver.firmware.start_update(access, "nic", "http://fw/nic-1.fwimg")
    host.close()
