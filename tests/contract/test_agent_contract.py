"""The Agent contract (core/testing/agent_contract.py) over every implementation:

- in-process: the agent emulator's agents in this process, commands run inline, looked up in
  the node table directly (simulators/agent/inprocess.py);
- http: the HTTP client (controllers/agent_client.py) against the agent emulator's server,
  the agents looking up and heartbeating through the Ironic v1 agent API, all on 127.0.0.1,
  commands on the emulator's threads;
- fleet: the fleet model's agent over a simulated machine booted into the ramdisk through its
  BMC, in simpy time (no agent tokens; no reboot or power off, which its engine never asks; the
  machine keeps no wipe count, so cleans started stand in for it).

A stock Ironic Python Agent joins from tests/ipa/ (it needs the IPA package and its own
process): subclass `agent_contract.AgentContract` there with a `harness` fixture that boots
IPA against the agent API and returns its endpoint; nothing here needs to change.

The host's hardware side (boots, power, disk wipes) is read from the emulated host the agent
runs on; waits poll within a bound (bmcs.poll) and fail naming what they waited for.
"""

import dataclasses
import datetime
import hashlib
from collections.abc import Callable, Iterator

import pytest

from metalcubed.controllers import agent_client, memory
from metalcubed.core import agent, bmc, ports
from metalcubed.core.api import meta
from metalcubed.core.provisioning import nodes
from metalcubed.core.testing import agent_contract
from metalcubed.simulators import hostmodel, imageserver
from metalcubed.simulators.agent import emulator, inprocess, lookup, server
from metalcubed.simulators.fleet import engine as fleet_engine
from tests.contract import bmcs, fleet

NODE = "node-0"
IMAGE = imageserver.random_image(256 * 1024, seed=7)


def _register(table: lookup.LockedNodeTable, host: hostmodel.HostModel) -> None:
    # With the wait the engine records once it booted the ramdisk: the agent API hands a
    # token out only then (Ironic's lookup-allowed states).
    table.put(nodes.Node(node_id=NODE, name="contract~node-0", bmc_address="127.0.0.1:623",
                         macs=(host.inventory.nics[0].mac,),
                         wait=nodes.Wait(purpose=nodes.Purpose.DEPLOY,
                                         since=datetime.datetime.now(datetime.UTC))))


def _booter(host: hostmodel.HostModel, table: lookup.LockedNodeTable
            ) -> Callable[[], agent.AgentEndpoint]:
    """Boot the ramdisk (one-time PXE, as the engine does for a network-boot host) and wait
    for a heartbeat from an agent of this boot."""
    seen: list[str] = []

    def boot() -> agent.AgentEndpoint:
        # As the engine does before a power action that boots the ramdisk (Ironic wipes the
        # agent's token and URL then): the next agent's lookup gets a fresh token.
        table.forget_agent(NODE)
        host.set_boot_device(hostmodel.BootDevice.PXE, persistent=False)
        if host.power is hostmodel.Power.ON:
            host.reboot(hard=True)
        else:
            host.power_on()
        found: list[agent.AgentEndpoint] = []

        def heartbeat() -> bool:
            endpoint = table.agent(NODE)
            if endpoint is None or endpoint.boot_id in seen:
                return False
            found.append(endpoint)
            return True

        bmcs.poll(heartbeat, "a heartbeat from the new agent")
        seen.append(found[-1].boot_id)
        return found[-1]

    return boot


def _nowhere(url: str) -> agent.AgentEndpoint:
    return agent.AgentEndpoint(node_id=NODE, url=url, boot_id="none",
                               heartbeat_at=datetime.datetime.now(datetime.UTC))


def _harness(port: agent.Agent, host: hostmodel.HostModel, table: lookup.LockedNodeTable,
             agents: emulator.AgentEmulator, *, image_url: str, nowhere: str
             ) -> agent_contract.AgentHarness:
    return agent_contract.AgentHarness(
        port=port,
        boot=_booter(host, table),
        reboot_to_disk=lambda: host.reboot(hard=True),
        image_url=image_url,
        checksum=(hashlib.sha512(IMAGE).hexdigest(), ""),  # the agent detects sha512
        macs=tuple(n.mac for n in host.inventory.nics),
        wipes=lambda: agents.disk(host).wipes,
        boots=lambda: len(host.boots),
        powered_off=lambda: host.power is hostmodel.Power.OFF,
        nowhere=_nowhere(nowhere),
        wait_until=bmcs.poll,
        not_modelled=bmcs.not_modelled,
    )


@pytest.fixture
def in_process_harness() -> agent_contract.AgentHarness:
    table = lookup.LockedNodeTable(clock=memory.WallClock())
    url = "http://images.test/os.raw"

    def fetch(wanted: str) -> Iterator[bytes]:
        if wanted != url:
            raise OSError(f"HTTP Error 404: Not Found ({wanted})")
        yield IMAGE

    agents = emulator.AgentEmulator(conductor=lookup.DirectConductor(table),
                                    run=emulator.run_inline, fetch=fetch)
    host = hostmodel.HostModel(name=NODE, inventory=hostmodel.make_inventory(0))
    agents.attach(host, bmc_address="ipmi://127.0.0.1")
    _register(table, host)
    return _harness(inprocess.InProcessAgent(agents), host, table, agents, image_url=url,
                    nowhere="inproc://no-such-agent")


@pytest.fixture
def http_harness() -> Iterator[agent_contract.AgentHarness]:
    images = imageserver.ImageServer()
    images.start()
    table = lookup.LockedNodeTable(clock=memory.WallClock())
    service = lookup.LookupService(table)
    service.start()
    agents = emulator.AgentEmulator(conductor=lookup.HttpConductor(service.url),
                                    timing=emulator.AgentTiming(heartbeat_s=0.1))
    api = server.AgentServer(agents)
    api.start()
    agents.start()
    host = hostmodel.HostModel(name=NODE, inventory=hostmodel.make_inventory(0))
    agents.attach(host, bmc_address="ipmi://127.0.0.1")
    _register(table, host)
    try:
        yield _harness(agent_client.HttpAgent(timeout_s=5), host, table, agents,
                       image_url=images.add("os.raw", IMAGE),
                       nowhere=f"http://127.0.0.1:{bmcs.closed_port()}/agents/none")
    finally:
        agents.stop()
        api.stop()
        service.stop()
        images.stop()


@pytest.fixture
def fleet_harness() -> agent_contract.AgentHarness:
    world = fleet.FleetWorld()
    machine = world.machines["m0"]
    access = world.access("m0", bmcs.CREDS)
    driver = world.fleet.driver_for(access)
    table = world.fleet.table
    node_id = nodes.node_id_for(meta.ObjectKey("contract", "m0"))
    table.put(nodes.Node(node_id=node_id, name="contract~m0", bmc_address="10.0.0.1:443",
                         macs=(machine.boot_mac,)))
    seen: list[str] = []

    def boot() -> agent.AgentEndpoint:
        table.forget_agent(node_id)
        driver.boot.insert_media(access, fleet_engine.DEPLOY_ISO_URL, device=bmc.MediaDevice.CD)
        driver.management.set_boot_device(access, bmc.BootDevice.CDROM,
                                          persistence=bmc.Persistence.ONCE)
        if machine.powered:
            driver.power.start_reboot(access, mode=ports.RebootMode.HARD)
        else:
            driver.power.start_power_on(access)
        found: list[agent.AgentEndpoint] = []

        def heartbeat() -> bool:
            endpoint = table.agent(node_id)
            if endpoint is None or endpoint.boot_id in seen:
                return False
            found.append(endpoint)
            return True

        world.wait_until(heartbeat, "a heartbeat from the new agent")
        seen.append(found[-1].boot_id)
        return found[-1]

    def reboot_to_disk() -> None:
        driver.boot.eject_media(access, device=bmc.MediaDevice.CD)
        driver.power.start_reboot(access, mode=ports.RebootMode.HARD)
        world.advance(60.0)

    return agent_contract.AgentHarness(
        port=world.fleet.agent,
        boot=boot,
        reboot_to_disk=reboot_to_disk,
        image_url=fleet.IMAGE_URL,
        checksum=(fleet.IMAGE_CHECKSUM, "sha256"),
        macs=(machine.boot_mac,),
        wipes=lambda: world.fleet.stats.cleans,
        boots=lambda: machine.generation,
        powered_off=lambda: not machine.powered,
        nowhere=_nowhere("fleet://no-such-machine/1"),
        wait_until=world.wait_until,
        not_modelled=bmcs.not_modelled,
        offers_power_commands=False,
        checks_token=False,
    )


IMPLEMENTATIONS = ["in-process", "http", "fleet"]


class TestAgentContract(agent_contract.AgentContract):
    @pytest.fixture(params=IMPLEMENTATIONS)
    def harness(self, request: pytest.FixtureRequest) -> agent_contract.AgentHarness:
        found: agent_contract.AgentHarness = request.getfixturevalue(
            f"{request.param.replace('-', '_')}_harness")
        return found


# --- the emulator speaks IPA's words (not the port's contract: what a stock IPA says) ------------


@pytest.fixture(params=["in-process", "http"])
def emulated(request: pytest.FixtureRequest) -> agent_contract.AgentHarness:
    found: agent_contract.AgentHarness = request.getfixturevalue(
        f"{request.param.replace('-', '_')}_harness")
    return found


def _failed_write(h: agent_contract.AgentHarness, image: agent.ImageWrite) -> agent.CommandStatus:
    endpoint = h.boot()
    started = h.port.start_write_image(endpoint, image)
    finished: list[agent.CommandStatus] = []

    def done() -> bool:
        command = h.port.status(endpoint).command
        if command is None or command.id != started.id or \
                command.state is agent.CommandState.RUNNING:
            return False
        finished.append(command)
        return True

    h.wait_until(done, "the write finished")
    assert finished[-1].state is agent.CommandState.FAILED
    return finished[-1]


def test_emulator_words_a_checksum_mismatch_as_ipa(emulated: agent_contract.AgentHarness) -> None:
    failed = _failed_write(emulated, agent.ImageWrite(url=emulated.image_url, checksum="0" * 32))
    assert failed.error.startswith("Image failed to verify against checksum."), failed.error


def test_emulator_words_a_download_failure_as_ipa(emulated: agent_contract.AgentHarness) -> None:
    missing = emulated.image_url.rsplit("/", 1)[0] + "/missing.raw"
    failed = _failed_write(emulated, agent.ImageWrite(url=missing, checksum="0" * 64))
    assert failed.error.startswith("Error downloading image"), failed.error


def test_emulator_refuses_a_wrong_token_with_401(emulated: agent_contract.AgentHarness) -> None:
    endpoint = emulated.boot()
    assert len(endpoint.token) >= 32
    with pytest.raises(agent.AgentError, match="401"):
        emulated.port.start_clean(dataclasses.replace(endpoint, token="x" * 43))
