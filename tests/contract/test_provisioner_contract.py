"""The Provisioner contract (core/testing/provisioner_contract.py) over every implementation:

- fixture: upstream's fixture provisioner (core/provisioning/fixture.py); it talks to no BMC;
- engine-sim-vmedia / engine-sim-pxe: the engine over the Sim BMC capabilities and the agent
  emulator run in-process (commands inline), on a manual clock: a virtual-media host and a
  network-boot (IPMI-addressed) host that shares the provisioning limit; engine-sim-no-fast-track
  is the virtual-media host with fast track off (every operation boots the ramdisk anew);
- engine-fleet: the engine over the fleet model's adapters (simulated machine, BMC endpoint
  and agent) in simpy time, as `metalcubed sim` runs it;
- engine-redfish / engine-ipmi: the engine over the real drivers against the BMC emulators
  (sushy against the sushy-tools-based Redfish emulator, pyghmi against the IPMI emulator)
  with the agent emulator over HTTP and the lookup service (simulators/agent/lab.py), all on
  127.0.0.1, on the wall clock: requeue delays are slept (capped), every step is bounded.
"""

import hashlib
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass

import pytest

from metalcubed.core import clock, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta
from metalcubed.core.provisioning import context, engine, fixture
from metalcubed.core.testing import provisioner_contract
from metalcubed.simulators import hostmodel, hostmodel_bmc
from metalcubed.simulators.agent import emulator, inprocess, lab, lookup
from metalcubed.simulators.ipmi import emulator as ipmi_emulator
from metalcubed.simulators.redfish import emulator as redfish_emulator
from tests.contract import bmcs, fleet

NS = "contract"
KEY = meta.ObjectKey(NS, "host-0")
DEPLOY_ISO = "http://images.test/ipa.iso"
IMAGE_URL = "http://images.test/os.raw"
IMAGE = b"an operating system image " * 1000
MAX_SLEEP_S = 0.25
"""Longest sleep between two calls on the wall clock (the emulators' hosts are quick)."""


def _host_data(address: str, mac: str) -> ports.HostData:
    return ports.HostData(key=KEY, bmc_address=address, bmc_credentials=bmcs.CREDS,
                          disable_certificate_verification=False, boot_mac_address=mac,
                          provisioner_id="")


def _busy_keys(n: int) -> set[meta.ObjectKey]:
    return {meta.ObjectKey(NS, f"busy-{i}") for i in range(n)}


def _sha256_image(url: str, data: bytes) -> bmh.Image:
    return bmh.Image(url=url, checksum=hashlib.sha256(data).hexdigest(),
                     checksum_type=bmh.ChecksumType.SHA256, format=bmh.ImageFormat.RAW)


def _host_fingerprint(host: hostmodel.HostModel, agents: emulator.AgentEmulator
                      ) -> Callable[[], Hashable]:
    def fingerprint() -> Hashable:
        disk = agents.disk(host)
        return (host.power, len(host.boots), disk.image_url, disk.writes, disk.wipes)

    return fingerprint


def _answers(host: hostmodel.HostModel) -> Callable[[bool], None]:
    """Switch the host's BMC off and on (the host model's `unreachable` fault, which the Sim
    capabilities and both emulators obey)."""

    def answers(up: bool) -> None:
        host.faults.unreachable = not up

    return answers


# --- fixture -------------------------------------------------------------------------------------


@pytest.fixture
def fixture_harness() -> provisioner_contract.ProvisionerHarness:
    backend = fixture.FixtureBackend()

    def fingerprint() -> Hashable:
        node = backend.node(KEY)
        return (node.powered_on, node.image_url, node.custom_deploy, node.reboot_called)

    def full() -> None:
        backend.capacity = False

    return provisioner_contract.ProvisionerHarness(
        factory=backend,
        host=_host_data("redfish-virtualmedia://192.0.2.1/redfish/v1/Systems/1",
                        "52:54:00:00:00:01"),
        image=_sha256_image(IMAGE_URL, IMAGE),
        advance=lambda seconds: None,  # the fixture's delays are only requeue hints
        fingerprint=fingerprint,
        not_modelled=bmcs.not_modelled,
        reaches_bmc=False,
        fill_capacity=full,
    )


# --- the engine in-process over Sim BMCs ------------------------------------------------------


def _engine_sim(*, pxe: bool, fast_track: bool = True) -> provisioner_contract.ProvisionerHarness:
    tick = clock.ManualClock()
    table = lookup.LockedNodeTable(clock=tick)
    files = {IMAGE_URL: IMAGE}

    def fetch(url: str) -> Iterator[bytes]:
        data = files.get(url)
        if data is None:
            raise OSError(f"HTTP Error 404: Not Found ({url})")
        yield data

    agents = emulator.AgentEmulator(conductor=lookup.DirectConductor(table),
                                    deploy_iso_urls={DEPLOY_ISO}, fetch=fetch,
                                    run=emulator.run_inline)
    sims = hostmodel_bmc.SimBmcs(credentials=bmcs.CREDS)
    busy: set[meta.ObjectKey] = set()
    config = context.EngineConfig(deploy_iso_url=DEPLOY_ISO, provisioning_limit=4,
                                  fast_track=fast_track)
    factory = engine.Engine(drivers=hostmodel_bmc.driver_for(sims),
                            agents=inprocess.InProcessAgent(agents), nodes_port=table,
                            clock=tick, busy_hosts=lambda: busy, config=config)
    host = hostmodel.HostModel(name="host-0", inventory=hostmodel.make_inventory(0))
    address = ("ipmi://192.0.2.1:623" if pxe
               else f"redfish-virtualmedia://192.0.2.1/redfish/v1/Systems/{host.uuid}")
    sims.add(address, host)
    agents.attach(host, bmc_address=address)
    unreachable = "ipmi://192.0.2.99:623" if pxe else \
        "redfish-virtualmedia://192.0.2.99/redfish/v1/Systems/none"

    def full() -> None:
        busy.update(_busy_keys(config.provisioning_limit))

    return provisioner_contract.ProvisionerHarness(
        factory=factory,
        host=_host_data(address, host.inventory.nics[0].mac),
        image=_sha256_image(IMAGE_URL, IMAGE),
        advance=tick.advance,
        fingerprint=_host_fingerprint(host, agents),
        not_modelled=bmcs.not_modelled,
        unreachable_address=unreachable,
        missing_image=_sha256_image("http://images.test/missing.raw", IMAGE),
        bmc_answers=_answers(host),
        fill_capacity=full if pxe else None,
    )


@pytest.fixture
def engine_sim_vmedia_harness() -> provisioner_contract.ProvisionerHarness:
    return _engine_sim(pxe=False)


@pytest.fixture
def engine_sim_pxe_harness() -> provisioner_contract.ProvisionerHarness:
    return _engine_sim(pxe=True)


@pytest.fixture
def engine_sim_no_fast_track_harness() -> provisioner_contract.ProvisionerHarness:
    return _engine_sim(pxe=False, fast_track=False)


# --- the engine in the fleet model ---------------------------------------------------------------


@pytest.fixture
def engine_fleet_harness() -> provisioner_contract.ProvisionerHarness:
    world = fleet.FleetWorld(hung=("hung",))
    machine = world.machines["m0"]

    def fingerprint() -> Hashable:
        return (machine.powered, machine.generation, machine.disk_image, machine.writes)

    image = bmh.Image(url=fleet.IMAGE_URL, checksum=fleet.IMAGE_CHECKSUM,
                      checksum_type=bmh.ChecksumType.SHA256, format=bmh.ImageFormat.RAW)
    return provisioner_contract.ProvisionerHarness(
        factory=world.fleet.engine,
        host=_host_data(fleet.address("m0"), machine.boot_mac),
        image=image,
        advance=world.advance,
        fingerprint=fingerprint,
        not_modelled=bmcs.not_modelled,
        unreachable_address=fleet.address("hung"),
        missing_image=image.model_copy(update={"url": fleet.IMAGE_URL + ".missing"}),
        bmc_answers=world.bmc_answers("m0"),
        checks_credentials=False,
    )


# --- the engine over the BMC emulators --------------------------------------------------------


@dataclass
class _Wall:
    """Requeue delays on the wall clock, capped: the emulated hosts are quick."""

    def advance(self, seconds: float) -> None:
        time.sleep(min(max(seconds, 0.01), MAX_SLEEP_S))


def _emulated(pxe: bool) -> Iterator[provisioner_contract.ProvisionerHarness]:
    host = hostmodel.HostModel(name="host-0", inventory=hostmodel.make_inventory(0))
    busy: set[meta.ObjectKey] = set()
    config = context.EngineConfig(poll_s=0.2, short_poll_s=0.1, busy_retry_s=0.2,
                                  ramdisk_timeout_s=60.0, provisioning_limit=4,
                                  power_sync_interval_s=0.5)
    bmc_emulator: redfish_emulator.RedfishEmulator | ipmi_emulator.IpmiEmulator = (
        ipmi_emulator.IpmiEmulator([host]) if pxe
        else redfish_emulator.RedfishEmulator([host], hang_s=10.0))
    with bmc_emulator, lab.EngineLab(drivers=bmcs.real_drivers(), config=config,
                                     timing=emulator.AgentTiming(boot_s=0.1, heartbeat_s=0.2),
                                     busy_hosts=lambda: busy) as engine_lab:
        if isinstance(bmc_emulator, ipmi_emulator.IpmiEmulator):
            address = bmc_emulator.bmc_address(host)
            unreachable = f"ipmi://127.0.0.1:{bmcs.closed_port(bmcs.UDP)}"
        else:
            address = bmc_emulator.bmc_address(host, "redfish-virtualmedia")
            unreachable = (f"redfish-virtualmedia+http://127.0.0.1:{bmcs.closed_port()}"
                           "/redfish/v1/Systems/none")
        engine_lab.attach(host, bmc_address=address)
        image_url = engine_lab.images.add("os.raw", IMAGE)
        assert engine_lab.engine is not None and engine_lab.agents is not None

        def full() -> None:
            busy.update(_busy_keys(config.provisioning_limit))

        yield provisioner_contract.ProvisionerHarness(
            factory=engine_lab.engine,
            host=_host_data(address, host.inventory.nics[0].mac),
            image=_sha256_image(image_url, IMAGE),
            advance=_Wall().advance,
            fingerprint=_host_fingerprint(host, engine_lab.agents),
            not_modelled=bmcs.not_modelled,
            unreachable_address=unreachable,
            missing_image=_sha256_image(image_url + ".missing", IMAGE),
            bmc_answers=_answers(host),
            fill_capacity=full if pxe else None,
            transient_retry_s=0.2,
        )


@pytest.fixture
def engine_redfish_harness() -> Iterator[provisioner_contract.ProvisionerHarness]:
    yield from _emulated(pxe=False)


@pytest.fixture
def engine_ipmi_harness() -> Iterator[provisioner_contract.ProvisionerHarness]:
    yield from _emulated(pxe=True)


IMPLEMENTATIONS = ["fixture", "engine-sim-vmedia", "engine-sim-pxe", "engine-sim-no-fast-track",
                   "engine-fleet",
                   "engine-redfish", "engine-ipmi"]


class TestProvisionerContract(provisioner_contract.ProvisionerContract):
    @pytest.fixture(params=IMPLEMENTATIONS)
    def harness(self, request: pytest.FixtureRequest) -> provisioner_contract.ProvisionerHarness:
        name = f"{request.param.replace('-', '_')}_harness"
        found: provisioner_contract.ProvisionerHarness = request.getfixturevalue(name)
        return found
