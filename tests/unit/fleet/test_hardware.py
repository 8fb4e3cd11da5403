"""The physical model and the fleet BMC, driven directly in simulated time."""

import random

import simpy

from metalcubed.simulators import hostmodel
from metalcubed.simulators.fleet import cost, scenario
from metalcubed.simulators.fleet import distribution as dist
from metalcubed.simulators.fleet.bmc import Bmc, BmcStats, Reply
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
    *, faults: HostFaultPlan | None = None, bmc_faults: hostmodel.Faults | None = None,
) -> tuple[simpy.Environment, Machine, Bmc, BmcStats]:
    env = simpy.Environment()
    rng = random.Random(1)
    machine = Machine(env, name="m0", boot_mac="52:54:00:00:00:01", profile=PROFILE,
                      faults=faults or HostFaultPlan(), rng=rng)
    stats = BmcStats()
    bmc = Bmc(env, address="10.0.0.1",
              faults=bmc_faults or hostmodel.Faults(latency=PROFILE.bmc_latency.draw,
                                                    session_cap=8),
              timeout_s=60.0, rng=rng, stats=stats)
    return env, machine, bmc, stats


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


def test_bmc_answers_503_past_its_session_cap_and_bills_each_request() -> None:
    _, machine, bmc, stats = world(bmc_faults=hostmodel.Faults(
        latency=lambda rng: 0.5, timeout_rate=1.0, session_cap=2))
    meters = [cost.Meter(random.Random(i)) for i in range(3)]
    # Three workers ask at the same instant: two hang (holding their sessions), one is refused.
    replies = [bmc.request("get_power_state", machine, meter) for meter in meters]
    assert replies == [Reply.TIMEOUT, Reply.TIMEOUT, Reply.UNAVAILABLE]
    assert [m.bill_s for m in meters[:2]] == [60.0, 60.0] and meters[2].bill_s < 1.0
    assert stats.peak_sessions == 2


def test_a_passs_requests_follow_one_another_and_do_not_crowd_its_own_session() -> None:
    _, machine, bmc, stats = world(bmc_faults=hostmodel.Faults(
        latency=lambda rng: 0.5, session_cap=1))
    meter = cost.Meter(random.Random(1))
    replies = [bmc.request("get_power_state", machine, meter) for _ in range(3)]
    assert replies == [Reply.OK] * 3 and meter.bill_s == 1.5
    assert stats.peak_sessions == 1


def test_bmc_refuses_power_and_boot_writes_inside_the_conflict_window() -> None:
    env, machine, bmc, _ = world(bmc_faults=hostmodel.Faults(
        latency=lambda rng: 0.5, conflict_after_power_off_s=30.0))
    meter = cost.Meter(random.Random(1))
    machine.power_changed_at = 0.0  # just powered off
    env.run(until=10.0)
    assert bmc.request("power_on", machine, meter) == Reply.CONFLICT
    assert bmc.request("set_boot_device", machine, meter) == Reply.CONFLICT
    assert bmc.request("get_power_state", machine, meter) == Reply.OK  # reads are answered
    env.run(until=40.0)
    assert bmc.request("power_on", machine, meter) == Reply.OK


def test_the_fleet_and_the_emulators_share_one_fault_model() -> None:
    """The fleet BMC answers what hostmodel.Faults.draw decides, as the emulators do."""
    faults = hostmodel.Faults(latency=lambda rng: 0.1, error_rate=0.3, timeout_rate=0.2)
    env, machine, _, stats = world()
    bmc = Bmc(env, address="10.0.0.2", faults=faults, timeout_s=60.0, rng=random.Random(7),
              stats=stats)
    meter = cost.Meter(random.Random(1))
    fleet = [bmc.request("get_power_state", machine, meter) for _ in range(200)]
    rng = random.Random(7)
    direct = []
    for _ in range(200):
        reply = faults.draw(rng)
        direct.append(reply)
        if reply != Reply.UNAVAILABLE:
            faults.latency(rng)  # the fleet BMC then draws the latency from the same stream
    assert fleet == direct
    assert {Reply.OK, Reply.SERVER_ERROR, Reply.TIMEOUT} <= set(fleet)
