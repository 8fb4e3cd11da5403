"""The fleet's BMC, agent and node-table adapters for core/provisioning's engine."""

import random

import pytest
import simpy

from metalcubed.core import agent, bmc, memory_store, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta
from metalcubed.core.provisioning import nodes
from metalcubed.simulators import hostmodel
from metalcubed.simulators.fleet import cost, scenario
from metalcubed.simulators.fleet import distribution as dist
from metalcubed.simulators.fleet import engine as fleet_engine
from metalcubed.simulators.fleet.bmc import Bmc, BmcStats
from metalcubed.simulators.fleet.machine import BootDevice, HostFaultPlan, Machine, Stage
from metalcubed.simulators.fleet.runtime import EPOCH, SimClock

ADDRESS = "redfish-virtualmedia://10.0.0.1/redfish/v1/Systems/m0"
URL = "http://images.example.com/os.raw"
CHECKSUM = "a" * 64
PROFILE = scenario.HardwareProfile(
    name="t",
    power_on=dist.Fixed(value=2.0),
    power_off=dist.Fixed(value=2.0),
    post=dist.Fixed(value=10.0),
    vmedia_boot=dist.Fixed(value=20.0),
    pxe_boot=dist.Fixed(value=20.0),
    inspection=dist.Fixed(value=5.0),
    cleaning=dist.Fixed(value=5.0),
    disk_write_mbps=dist.Fixed(value=100.0),
    os_boot=dist.Fixed(value=10.0),
)


class World:
    def __init__(self, faults: hostmodel.Faults | None = None, *, session_cap: int = 8,
                 settings: scenario.ProvisionerSettings | None = None) -> None:
        env = self.env = simpy.Environment()
        clock = SimClock(env, EPOCH)
        self.meter = cost.Meter(random.Random(1))
        self.stats = BmcStats()
        self.machine = Machine(env, name="m0", boot_mac="52:54:00:00:00:01", profile=PROFILE,
                               faults=HostFaultPlan(), rng=random.Random(2))
        faults = faults or hostmodel.Faults()
        faults.latency = dist.Fixed(value=0.5).draw
        faults.session_cap = session_cap
        endpoint = Bmc(env, address="10.0.0.1", faults=faults, timeout_s=60.0,
                       rng=random.Random(3), stats=self.stats)
        self.settings = settings or scenario.ProvisionerSettings(
            api_latency=dist.Fixed(value=0.01))
        self.fleet = fleet_engine.FleetEngine(
            env,
            clock=clock,
            store=memory_store.MemoryStore(clock=clock),
            targets={ADDRESS: fleet_engine.Target(machine=self.machine, endpoint=endpoint,
                                                  virtual_media=True)},
            images={"os": scenario.Image(name="os", url=URL, checksum=CHECKSUM,
                                         format=bmh.ImageFormat.RAW,
                                         size_bytes=1_000_000_000)},
            settings=self.settings,
            provisioning_limit=20,
            meter=self.meter,
            rng=random.Random(4),
        )
        self.access = bmc.BmcAccess.of(ADDRESS, ports.Credentials(username="u", password="p"))
        self.driver = self.fleet.driver_for(self.access)
        self.node_id = nodes.node_id_for(meta.ObjectKey(namespace="ns", name="m0"))
        self.fleet.table.put(nodes.Node(node_id=self.node_id, name="ns~m0",
                                        bmc_address="10.0.0.1:443", macs=("52:54:00:00:00:01",)))

    def boot_ramdisk(self) -> agent.AgentEndpoint:
        self.driver.boot.insert_media(self.access, "http://x/ipa.iso", device=bmc.MediaDevice.CD)
        self.driver.management.set_boot_device(self.access, bmc.BootDevice.CDROM,
                                               persistence=bmc.Persistence.ONCE)
        self.driver.power.start_power_on(self.access)
        self.env.run(until=self.env.now + 40.0)
        endpoint = self.fleet.table.agent(self.node_id)
        assert endpoint is not None
        return endpoint


def test_a_call_charges_its_latency_to_the_pass() -> None:
    w = World()
    assert w.driver.power.power_state(w.access) == bmc.PowerState.OFF
    assert w.meter.bill_s == pytest.approx(0.5)
    assert w.fleet.stats.bmc_calls["get power state"] == 1


def test_a_hung_bmc_is_unreachable_after_the_drivers_retries() -> None:
    w = World(hostmodel.Faults(timeout_rate=1.0))
    with pytest.raises(bmc.BmcUnreachable, match="during get power state: timed out"):
        w.driver.power.power_state(w.access)
    retries = w.settings.bmc_retries
    assert w.stats.requests["get_power_state"] == retries
    assert w.meter.bill_s == pytest.approx(retries * 60.0 + (retries - 1) * 4.0)


@pytest.mark.parametrize("read", [True, False], ids=["read-retried", "write-not-retried"])
def test_a_500_is_a_server_error(read: bool) -> None:
    w = World(hostmodel.Faults(error_rate=1.0))
    with pytest.raises(bmc.BmcServerError):
        if read:
            w.driver.power.power_state(w.access)
        else:
            w.driver.power.start_power_on(w.access)
    assert sum(w.stats.requests.values()) == (w.settings.bmc_retries if read else 1)


def test_a_running_agent_keeps_heartbeating_until_its_host_reboots() -> None:
    w = World()
    endpoint = w.boot_ramdisk()
    low, high = fleet_engine.HEARTBEAT_S
    w.env.run(until=w.env.now + 3 * high)
    later = w.fleet.table.agent(w.node_id)
    assert later is not None and later.url == endpoint.url
    assert (later.heartbeat_at - endpoint.heartbeat_at).total_seconds() >= 2 * low
    beats = w.fleet.stats.heartbeats
    w.driver.power.start_power_off(w.access, mode=ports.RebootMode.HARD)
    w.env.run(until=w.env.now + 3 * high)
    assert w.fleet.stats.heartbeats == beats  # the agent went with its boot


def test_past_the_session_cap_a_write_is_busy() -> None:
    w = World(session_cap=1)
    w.driver.power.power_state(w.access)  # in flight for 0.5 s from now
    w.driver.power.power_state(w.access)  # the same pass: after the first one, no overlap
    w.meter.start()  # another worker's pass, at the same instant
    with pytest.raises(bmc.BmcBusy):
        w.driver.power.start_power_on(w.access)


def test_power_on_right_after_power_off_is_a_409() -> None:
    w = World(hostmodel.Faults(conflict_after_power_off_s=30.0))
    w.driver.power.start_power_on(w.access)
    w.env.run(until=5.0)
    w.driver.power.start_power_off(w.access, mode=ports.RebootMode.HARD)
    assert w.driver.power.power_state(w.access) == bmc.PowerState.POWERING_OFF
    w.env.run(until=10.0)
    with pytest.raises(bmc.BmcRejected) as err:
        w.driver.power.start_power_on(w.access)
    assert err.value.status == 409


def test_a_one_time_boot_override_is_used_up_by_the_boot() -> None:
    w = World()
    w.boot_ramdisk()
    assert w.machine.stage == Stage.RAMDISK
    setting = w.driver.management.boot_setting(w.access)
    assert setting.device == bmc.BootDevice.DISK
    assert setting.persistence == bmc.Persistence.PERSISTENT
    assert w.machine.boot_device == BootDevice.DISK


def test_the_agent_heartbeats_and_runs_commands_until_the_host_reboots() -> None:
    w = World()
    endpoint = w.boot_ramdisk()
    agents = w.fleet.agent
    assert agents.status(endpoint).command is None
    write = agent.ImageWrite(url=URL, checksum=CHECKSUM)
    assert agents.start_write_image(endpoint, write).state == agent.CommandState.RUNNING
    with pytest.raises(agent.AgentError, match="already running"):
        agents.start_clean(endpoint)
    w.env.run(until=w.env.now + 11.0)  # 1 GB at 100 MB/s
    command = agents.status(endpoint).command
    assert command is not None and command.state == agent.CommandState.SUCCEEDED
    assert command.image_url == URL and w.machine.disk_image == URL
    w.driver.power.start_reboot(w.access, mode=ports.RebootMode.HARD)
    with pytest.raises(agent.AgentUnavailable):
        agents.status(endpoint)


def test_a_wrong_checksum_fails_the_write_after_the_download() -> None:
    w = World()
    endpoint = w.boot_ramdisk()
    agents = w.fleet.agent
    agents.start_write_image(endpoint, agent.ImageWrite(url=URL, checksum="b" * 64))
    w.env.run(until=w.env.now + 11.0)
    command = agents.status(endpoint).command
    assert command is not None and command.state == agent.CommandState.FAILED
    assert command.error.startswith("Image failed to verify against checksum.")
    assert w.machine.disk_image == ""


def test_the_adapters_fill_the_engines_ports() -> None:
    w = World()
    target = w.fleet.targets[ADDRESS]
    # Checked by the type checker (STYLE 5): one annotated assignment per adapter.
    power: bmc.Power = fleet_engine.FleetPower(w.fleet, target)
    management: bmc.Management = fleet_engine.FleetManagement(w.fleet, target)
    boot: bmc.Boot = fleet_engine.FleetBoot(w.fleet, target)
    inspect: bmc.Inspect = fleet_engine.FleetInspect(w.fleet, target)
    agents: agent.Agent = w.fleet.agent
    table: nodes.Nodes = w.fleet.table
    factory: ports.ProvisionerFactory = w.fleet.engine
    assert {power.name, management.name, boot.name, inspect.name} == {"fleet"}
    assert agents is w.fleet.agent and table is w.fleet.table and factory is w.fleet.engine
