"""The fleet model's engine adapters (simulators/fleet/engine.py) for the contract runners: one
or more simulated machines behind simulated BMC endpoints, in simpy time, with the engine the
fleet model runs over them. Time moves only when a runner calls `advance`."""

import random
from collections.abc import Callable

import simpy

from metalcubed.core import bmc, memory_store, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.simulators import hostmodel
from metalcubed.simulators.fleet import bmc as fleet_bmc
from metalcubed.simulators.fleet import cost, scenario
from metalcubed.simulators.fleet import distribution as dist
from metalcubed.simulators.fleet import engine as fleet_engine
from metalcubed.simulators.fleet.machine import HostFaultPlan, Machine
from metalcubed.simulators.fleet.runtime import EPOCH, SimClock

PROFILE = scenario.HardwareProfile(
    name="contract",
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
IMAGE_URL = "http://images.fleet.sim/os.raw"
IMAGE_CHECKSUM = "c" * 64
STEP_S = 1.0
MAX_WAIT_S = 3600.0


def address(name: str) -> str:
    return f"redfish-virtualmedia://10.0.0.1/redfish/v1/Systems/{name}"


class FleetWorld:
    """Machines `m0`, `m1`... (off); `hung` names machines whose BMC never answers."""

    def __init__(self, count: int = 1, *, hung: tuple[str, ...] = ()) -> None:
        env = self.env = simpy.Environment()
        self.clock = SimClock(env, EPOCH)
        self.store = memory_store.MemoryStore(clock=self.clock)
        settings = scenario.ProvisionerSettings(api_latency=dist.Fixed(value=0.01))
        targets: dict[str, fleet_engine.Target] = {}
        self.machines: dict[str, Machine] = {}
        names = [f"m{i}" for i in range(count)] + list(hung)
        stats = fleet_bmc.BmcStats()
        for i, name in enumerate(names):
            machine = Machine(env, name=name, boot_mac=f"52:54:00:00:00:{i + 1:02x}",
                              profile=PROFILE, faults=HostFaultPlan(), rng=random.Random(i))
            faults = hostmodel.Faults(latency=hostmodel.fixed_latency(0.2), session_cap=8,
                                      unreachable=name in hung)
            endpoint = fleet_bmc.Bmc(env, address=f"10.0.0.{i + 1}", faults=faults,
                                     timeout_s=60.0, rng=random.Random(100 + i), stats=stats)
            targets[address(name)] = fleet_engine.Target(machine=machine, endpoint=endpoint,
                                                         virtual_media=True)
            self.machines[name] = machine
        self.fleet = fleet_engine.FleetEngine(
            env,
            clock=self.clock,
            store=self.store,
            targets=targets,
            images={"os": scenario.Image(name="os", url=IMAGE_URL, checksum=IMAGE_CHECKSUM,
                                         format=bmh.ImageFormat.RAW, size_bytes=100_000_000)},
            settings=settings,
            provisioning_limit=20,
            meter=cost.Meter(random.Random(1)),
            rng=random.Random(4),
        )

    def bmc_answers(self, name: str) -> Callable[[bool], None]:
        """Switch the machine's BMC off (False: every request times out) and on."""
        target = self.fleet.targets[address(name)]

        def answers(up: bool) -> None:
            target.endpoint.faults.unreachable = not up

        return answers

    def access(self, name: str, credentials: ports.Credentials) -> bmc.BmcAccess:
        return bmc.BmcAccess.of(address(name), credentials)

    def advance(self, seconds: float) -> None:
        """Let `seconds` of simulated time pass; the next calls are a new pass (fresh bill)."""
        self.env.run(until=self.env.now + seconds)
        self.fleet.meter.start()

    def wait_until(self, predicate: "object", what: str) -> None:
        """Move simulated time in STEP_S steps until predicate() holds (MAX_WAIT_S at most)."""
        assert callable(predicate)
        waited = 0.0
        while not predicate():
            if waited >= MAX_WAIT_S:
                raise AssertionError(f"not reached within {MAX_WAIT_S:.0f} simulated s: {what}")
            self.advance(STEP_S)
            waited += STEP_S
