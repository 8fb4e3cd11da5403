"""The physical model and the Ironic-like conductor, driven directly in simulated time."""

import random

import pytest
import simpy

from metalcubed.simulators.fleet import distribution as dist
from metalcubed.simulators.fleet import scenario
from metalcubed.simulators.fleet.bmc import Bmc, BmcStats, Reply
from metalcubed.simulators.fleet.conductor import (
    INSPECT_TIMEOUT_MESSAGE,
    ConcurrencyLimit,
    Conductor,
    Node,
    NodeLocked,
    NodeState,
)
from metalcubed.simulators.fleet.machine import BootDevice, HostFaultPlan, Machine, Stage

PROFILE = scenario.HardwareProfile(
    name="fixed",
    power_on=dist.Fixed(value=2.0),
    power_off=dist.Fixed(value=3.0),
    post=dist.Fixed(value=100.0),
    pxe_boot=dist.Fixed(value=40.0),
    vmedia_boot=dist.Fixed(value=60.0),
    inspection=dist.Fixed(value=30.0),
    cleaning=dist.Fixed(value=20.0),
    disk_write_mbps=dist.Fixed(value=100.0),
    os_boot=dist.Fixed(value=50.0),
    bmc_latency=dist.Fixed(value=0.5),
)


def world(
    *, faults: HostFaultPlan | None = None, bmc_faults: scenario.BmcFaults | None = None,
    settings: scenario.ProvisionerSettings | None = None, session_cap: int = 8,
) -> tuple[simpy.Environment, Machine, Bmc, Conductor, BmcStats]:
    env = simpy.Environment()
    rng = random.Random(1)
    machine = Machine(env, name="m0", boot_mac="52:54:00:00:00:01", profile=PROFILE,
                      faults=faults or HostFaultPlan(), rng=rng)
    stats = BmcStats()
    bmc = Bmc(env, address="10.0.0.1", latency=PROFILE.bmc_latency, session_cap=session_cap,
              faults=bmc_faults or scenario.BmcFaults(), timeout_s=60.0, rng=rng, stats=stats)
    conductor = Conductor(env, settings or scenario.ProvisionerSettings(), rng=rng)
    return env, machine, bmc, conductor, stats


def test_machine_boots_the_ramdisk_after_power_post_and_pxe() -> None:
    env, machine, *_ = world()
    machine.boot_device = BootDevice.NETWORK
    machine.power_on()
    env.run(until=141.0)
    assert machine.stage == Stage.POST
    env.run(until=143.0)
    assert machine.stage == Stage.RAMDISK and machine.agent_ready.triggered


def test_machine_that_hangs_in_post_never_boots() -> None:
    env, machine, *_ = world(faults=HostFaultPlan(hangs_in_post=True))
    machine.boot_device = BootDevice.NETWORK
    machine.power_on()
    env.run(until=10_000.0)
    assert machine.stage == Stage.HUNG and not machine.agent_ready.triggered


def test_power_cycle_cancels_the_previous_boot() -> None:
    env, machine, *_ = world()
    machine.boot_device = BootDevice.NETWORK
    machine.power_on()
    env.run(until=50.0)
    machine.power_off()
    env.run(until=500.0)
    assert machine.stage == Stage.OFF and not machine.powered


def test_bmc_answers_503_past_its_session_cap() -> None:
    env, machine, bmc, _, stats = world(
        bmc_faults=scenario.BmcFaults(timeout_rate=1.0), session_cap=2
    )
    replies: list[Reply] = []

    def ask() -> simpy.events.ProcessGenerator:
        replies.append((yield from bmc.request("get_power_state", machine)))

    for _ in range(3):
        env.process(ask())
    env.run()
    assert sorted(replies) == [Reply.TIMEOUT, Reply.TIMEOUT, Reply.UNAVAILABLE]
    assert stats.peak_sessions == 2


def test_bmc_refuses_power_on_inside_the_conflict_window() -> None:
    env, machine, bmc, *_ = world(
        bmc_faults=scenario.BmcFaults(conflict_after_power_off_s=30.0)
    )
    replies: list[Reply] = []

    def ask(at: float) -> simpy.events.ProcessGenerator:
        yield env.timeout(at)
        replies.append((yield from bmc.request("power_on", machine)))

    machine.power_changed_at = 0.0  # just powered off
    env.process(ask(10.0))
    env.process(ask(40.0))
    env.run()
    assert replies == [Reply.CONFLICT, Reply.OK]


def _node(conductor: Conductor, machine: Machine, bmc: Bmc, *, vmedia: bool = False) -> Node:
    return conductor.create(name="ns~m0", address="redfish://10.0.0.1/x", machine=machine,
                            bmc=bmc, virtual_media=vmedia)


def test_inspection_walks_ironic_states_and_ends_powered_off() -> None:
    env, machine, bmc, conductor, _ = world(
        settings=scenario.ProvisionerSettings(fast_track=False)
    )
    node = _node(conductor, machine, bmc)
    conductor.manage(node)
    env.run(until=5.0)
    assert node.state == NodeState.MANAGEABLE
    conductor.inspect(node)
    assert node.state == NodeState.INSPECTING
    env.run(until=60.0)
    assert node.state == NodeState.INSPECT_WAIT
    assert conductor.stats.pxe_busy == 1
    env.run(until=400.0)
    assert node.state == NodeState.MANAGEABLE and node.inspected
    assert not machine.powered and conductor.stats.pxe_busy == 0


def test_fast_track_keeps_the_agent_for_the_next_operation() -> None:
    env, machine, bmc, conductor, stats = world()  # fast track: Metal3's default
    node = _node(conductor, machine, bmc)
    node.automated_clean = False
    conductor.manage(node)
    env.run(until=5.0)
    conductor.inspect(node)
    env.run(until=400.0)
    assert node.state == NodeState.MANAGEABLE and machine.stage == Stage.RAMDISK
    power_ons = stats.requests["power_on"]
    conductor.provide(node)
    conductor.deploy(node, url="http://x/os.raw", size_bytes=10**9, image_format="raw")
    env.run(until=405.0)  # no POST, no ramdisk boot: the write starts at once
    assert node.state == NodeState.DEPLOY_WAIT and machine.writing == 1
    env.run(until=1000.0)
    assert node.state == NodeState.ACTIVE
    assert stats.requests["power_on"] == power_ons + 1  # only the reboot into the OS


def test_inspecting_a_dead_host_times_out_with_ironics_message() -> None:
    env, machine, bmc, conductor, _ = world(faults=HostFaultPlan(hangs_in_post=True))
    node = _node(conductor, machine, bmc)
    conductor.manage(node)
    env.run(until=5.0)
    conductor.inspect(node)
    env.run(until=1700.0)
    assert node.state == NodeState.INSPECT_WAIT
    env.run(until=1900.0)
    assert node.state == NodeState.INSPECT_FAILED
    assert node.last_error == INSPECT_TIMEOUT_MESSAGE


def test_a_failing_disk_fails_the_deploy_with_the_agents_error() -> None:
    env, machine, bmc, conductor, _ = world(faults=HostFaultPlan(disk_fails=True))
    node = _node(conductor, machine, bmc)
    node.automated_clean = False
    conductor.manage(node)
    env.run(until=5.0)
    conductor.provide(node)
    assert node.state == NodeState.AVAILABLE
    conductor.deploy(node, url="http://x/os.raw", size_bytes=2 * 10**9, image_format="raw")
    env.run(until=2000.0)
    assert node.state == NodeState.DEPLOY_FAILED
    assert "write_image failed" in node.last_error and "Input/output error" in node.last_error
    assert machine.disk_image == ""


def test_a_deploy_writes_the_image_and_reboots_into_it() -> None:
    env, machine, bmc, conductor, _ = world()
    node = _node(conductor, machine, bmc)
    node.automated_clean = False
    conductor.manage(node)
    env.run(until=5.0)
    conductor.provide(node)
    conductor.deploy(node, url="http://x/os.raw", size_bytes=2 * 10**9, image_format="raw")
    env.run(until=1000.0)
    assert node.state == NodeState.ACTIVE and node.deployed_url == "http://x/os.raw"
    assert machine.disk_image == "http://x/os.raw" and machine.stage == Stage.OS


def test_a_running_operation_locks_the_node() -> None:
    _, machine, bmc, conductor, _ = world()
    node = _node(conductor, machine, bmc)
    conductor.manage(node)
    with pytest.raises(NodeLocked):
        conductor.set_power(node, True)


def test_clean_limit_refuses_the_next_cleaning() -> None:
    settings = scenario.ProvisionerSettings(max_concurrent_clean=1)
    env, machine, bmc, conductor, _ = world(settings=settings)
    node = _node(conductor, machine, bmc)
    other_machine = Machine(env, name="m1", boot_mac="52:54:00:00:00:02", profile=PROFILE,
                            faults=HostFaultPlan(), rng=random.Random(2))
    other = conductor.create(name="ns~m1", address="redfish://10.0.0.2/x",
                             machine=other_machine, bmc=bmc, virtual_media=True)
    for n in (node, other):
        conductor.manage(n)
    env.run(until=5.0)
    conductor.provide(node)
    with pytest.raises(ConcurrencyLimit):
        conductor.provide(other)
    assert conductor.stats.refused["clean"] == 1


def test_pxe_capacity_counts_busy_pxe_nodes_only() -> None:
    env, machine, bmc, conductor, _ = world()
    node = _node(conductor, machine, bmc)
    conductor.manage(node)
    env.run(until=5.0)
    conductor.inspect(node)
    assert not conductor.has_pxe_capacity("ns~other", 1)
    assert conductor.has_pxe_capacity("ns~m0", 1)  # already busy: its slot is its own
    assert conductor.has_pxe_capacity("ns~other", 2)
