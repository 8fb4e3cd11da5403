"""BIOS settings and firmware updates in the fleet model (simulators/fleet/firmware.py): the
core.bmc Bios and Firmware ports over a simulated machine, in simpy time."""

import random

import pytest
import simpy

from metalcubed.core import bmc, memory_store, ports
from metalcubed.simulators import hostmodel
from metalcubed.simulators.fleet import cost, scenario
from metalcubed.simulators.fleet import distribution as dist
from metalcubed.simulators.fleet import engine as fleet_engine
from metalcubed.simulators.fleet.bmc import Bmc, BmcStats
from metalcubed.simulators.fleet.machine import BootDevice, HostFaultPlan, Machine, Stage
from metalcubed.simulators.fleet.runtime import EPOCH, SimClock

REDFISH = "redfish-virtualmedia://10.0.0.1/redfish/v1/Systems/m0"
IPMI = "ipmi://10.0.0.2"
BIOS_URL = "https://fw.example.com/bios-2.4.1.fwimg"
BMC_URL = "https://fw.example.com/bmc-6.00.00.fwimg"
GONE_URL = "https://fw.example.com/bios-9.9.fwimg"
PROFILE = scenario.HardwareProfile(
    name="t",
    power_on=dist.Fixed(value=2.0),
    power_off=dist.Fixed(value=2.0),
    post=dist.Fixed(value=10.0),
    os_boot=dist.Fixed(value=10.0),
    firmware_update=dist.Fixed(value=300.0),
    bmc_reboot=dist.Fixed(value=60.0),
)
CATALOG = {
    "bios": scenario.FirmwareImage(name="bios", component="bios", url=BIOS_URL, version="2.4.1"),
    "bmc": scenario.FirmwareImage(name="bmc", component="bmc", url=BMC_URL, version="6.00.00"),
    "gone": scenario.FirmwareImage(name="gone", component="bios", url=GONE_URL, version="9.9",
                                   served=False),
}


class World:
    def __init__(self, **faults: float) -> None:
        env = self.env = simpy.Environment()
        clock = SimClock(env, EPOCH)
        self.meter = cost.Meter(random.Random(1))
        self.machine = Machine(env, name="m0", boot_mac="52:54:00:00:00:01", profile=PROFILE,
                               faults=HostFaultPlan(), rng=random.Random(2))
        self.endpoint = Bmc(env, address="10.0.0.1",
                            faults=hostmodel.Faults(latency=dist.Fixed(value=0.5).draw,
                                                    **faults),  # type: ignore[arg-type]
                            timeout_s=60.0, rng=random.Random(3), stats=BmcStats())
        other = Machine(env, name="m1", boot_mac="52:54:00:00:00:02", profile=PROFILE,
                        faults=HostFaultPlan(), rng=random.Random(5))
        ipmi_endpoint = Bmc(env, address="10.0.0.2", faults=hostmodel.Faults(), timeout_s=60.0,
                            rng=random.Random(6), stats=BmcStats())
        self.fleet = fleet_engine.FleetEngine(
            env,
            clock=clock,
            store=memory_store.MemoryStore(clock=clock),
            targets={
                REDFISH: fleet_engine.Target(machine=self.machine, endpoint=self.endpoint,
                                             virtual_media=True),
                IPMI: fleet_engine.Target(machine=other, endpoint=ipmi_endpoint,
                                          virtual_media=False),
            },
            images={},
            settings=scenario.ProvisionerSettings(api_latency=dist.Fixed(value=0.01),
                                                  bmc_retries=1),
            provisioning_limit=20,
            meter=self.meter,
            rng=random.Random(4),
            firmware=CATALOG,
        )
        creds = ports.Credentials(username="u", password="p")
        self.access = bmc.BmcAccess.of(REDFISH, creds)
        self.driver = self.fleet.driver_for(self.access)
        self.ipmi_access = bmc.BmcAccess.of(IPMI, creds)

    def boot_os(self) -> None:
        """The machine runs its installed OS (as a provisioned host does)."""
        self.machine.disk_image = "http://images/os.raw"
        self.machine.boot_device = BootDevice.DISK
        self.driver.power.start_power_on(self.access)
        self.run(30.0)
        assert self.machine.stage == Stage.OS

    def run(self, seconds: float) -> None:
        self.env.run(until=self.env.now + seconds)
        self.meter.start()

    def task(self, task_id: str) -> bmc.UpdateTask:
        return next(t for t in self.driver.firmware.update_tasks(self.access) if t.id == task_id)


def test_bios_changes_are_staged_until_the_next_boot() -> None:
    w = World()
    w.boot_os()
    bios = w.driver.bios
    assert bios.registry(w.access)["PxeRetryCount"].upper_bound == 10
    bios.apply_settings(w.access, {"ProcVirtualization": "Disabled"})
    settings = bios.settings(w.access)
    assert settings.pending == {"ProcVirtualization": "Disabled"}
    assert settings.current["ProcVirtualization"] == "Enabled"
    w.driver.power.start_reboot(w.access, mode=ports.RebootMode.HARD)
    w.run(30.0)
    settings = bios.settings(w.access)
    assert settings.pending == {}
    assert settings.current["ProcVirtualization"] == "Disabled"
    assert w.machine.disk_image  # a BIOS change leaves the installed OS alone


@pytest.mark.parametrize(("change", "words"), [
    ({"NoSuchSetting": "x"}, "unknown BIOS attribute NoSuchSetting"),
    ({"PxeRetryCount": 99}, "PxeRetryCount must be <= 10"),
    ({"SystemServiceTag": "X"}, "SystemServiceTag is read-only"),
])
def test_bad_bios_values_are_refused_naming_the_attribute(change: dict[str, bmc.BiosValue],
                                                          words: str) -> None:
    w = World()
    with pytest.raises(bmc.BmcRejected, match=words) as caught:
        w.driver.bios.apply_settings(w.access, change)
    assert caught.value.status == 400
    assert w.machine.bios_pending == {}


def test_a_bios_update_flashes_then_reboots_the_host() -> None:
    w = World()
    w.boot_os()
    firmware = w.driver.firmware
    task = firmware.start_update(w.access, "bios", BIOS_URL)
    assert task.state == bmc.TaskState.RUNNING
    assert firmware.start_update(w.access, "bios", BIOS_URL) == task  # no second flash
    boots = w.machine.boots
    w.run(299.0)
    assert w.task(task.id).state == bmc.TaskState.RUNNING
    assert dict((c.component, c.version) for c in firmware.components(w.access))["bios"] == "2.1.7"
    w.run(2.0)
    assert w.task(task.id).state == bmc.TaskState.COMPLETED
    assert w.machine.firmware["bios"] == "2.4.1"
    w.run(30.0)
    assert w.machine.boots == boots + 1  # the reboot that applies it
    assert w.machine.stage == Stage.OS and w.machine.disk_image


def test_a_bmc_update_restarts_the_bmc_which_answers_nothing_meanwhile() -> None:
    w = World()
    w.boot_os()
    task = w.driver.firmware.start_update(w.access, "bmc", BMC_URL)
    w.run(301.0)
    with pytest.raises(bmc.BmcUnreachable):
        w.driver.power.power_state(w.access)
    w.run(60.0)
    assert w.task(task.id).state == bmc.TaskState.COMPLETED
    assert w.machine.firmware["bmc"] == "6.00.00"
    assert w.fleet.stats.bmc_reboots == 1


def test_a_failed_flash_is_a_failed_task_and_the_old_version_stays() -> None:
    w = World(update_failure_rate=1.0)
    w.boot_os()
    task = w.driver.firmware.start_update(w.access, "bios", BIOS_URL)
    w.run(400.0)
    done = w.task(task.id)
    assert done.state == bmc.TaskState.FAILED
    assert done.message == hostmodel.UPDATE_FAILED_MESSAGE
    assert w.machine.firmware["bios"] == "2.1.7"
    assert w.fleet.stats.updates_failed == 1


def test_an_image_the_scenario_does_not_serve_fails_with_404() -> None:
    w = World()
    task = w.driver.firmware.start_update(w.access, "bios", GONE_URL)
    assert task.state == bmc.TaskState.FAILED
    assert "HTTP 404" in task.message and GONE_URL in task.message
    unknown = w.driver.firmware.start_update(w.access, "bios", "https://elsewhere/x.bin")
    assert unknown.state == bmc.TaskState.FAILED


def test_a_bmc_that_reboots_during_the_update_times_out_for_a_while() -> None:
    w = World(bmc_reboot_rate=1.0)
    w.boot_os()
    task = w.driver.firmware.start_update(w.access, "bios", BIOS_URL)
    down = []
    for _ in range(40):
        w.run(10.0)
        try:
            w.driver.power.power_state(w.access)
        except bmc.BmcUnreachable:
            down.append(w.env.now)
    assert down and down[-1] - down[0] <= 60.0 + 10.0
    assert w.task(task.id).state == bmc.TaskState.COMPLETED  # the flash went on


def test_ipmi_hosts_have_neither() -> None:
    w = World()
    driver = w.fleet.driver_for(w.ipmi_access)
    with pytest.raises(bmc.UnsupportedCapability):
        driver.bios.settings(w.ipmi_access)
    with pytest.raises(bmc.UnsupportedCapability):
        driver.firmware.start_update(w.ipmi_access, "bios", BIOS_URL)


def test_unknown_component_is_refused() -> None:
    w = World()
    with pytest.raises(bmc.BmcRejected, match="no firmware component nic"):
        w.driver.firmware.start_update(w.access, "nic", BIOS_URL)


def test_bmc_restarts_that_overlap_are_one_outage() -> None:
    """A chassis BMC shared by several hosts: restarts asked for by two updates merge."""
    w = World()
    endpoint = w.endpoint
    endpoint.reboot(100.0, 60.0)
    endpoint.reboot(130.0, 60.0)
    assert (endpoint.down_from, endpoint.down_until) == (100.0, 190.0)
    w.run(200.0)
    endpoint.reboot(300.0, 10.0)  # the earlier outage is over: a new one
    assert (endpoint.down_from, endpoint.down_until) == (300.0, 310.0)
    assert endpoint.reboots == 3
