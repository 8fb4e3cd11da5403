"""The Agent port's contract, run against every implementation; port conformance for mypy.

The same behaviours are checked over the in-process adapter (commands inline, no sockets) and
over HTTP (the agent emulator's server, the HTTP client, commands on threads). An adapter for
another runtime (the fleet model's machines) can join by providing a `Harness`.
"""

import dataclasses
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from metalcubed.controllers import agent_client, memory
from metalcubed.core import agent, bmc, clock, ports
from metalcubed.core.provisioning import engine, nodes
from metalcubed.simulators import hostmodel, hostmodel_bmc, imageserver
from metalcubed.simulators.agent import emulator, inprocess, lookup, server

# --- conformance (checked by mypy) ---------------------------------------------------------------

_bmcs = hostmodel_bmc.SimBmcs()
_http_agent: agent.Agent = agent_client.HttpAgent()
_inproc_agent: agent.Agent = inprocess.InProcessAgent(
    emulator.AgentEmulator(conductor=lookup.DirectConductor(
        lookup.LockedNodeTable(clock=clock.ManualClock())))
)
_table: nodes.Nodes = nodes.NodeTable(clock=clock.ManualClock())
_locked: nodes.Nodes = lookup.LockedNodeTable(clock=clock.ManualClock())
_conductor: emulator.Conductor = lookup.HttpConductor("http://127.0.0.1:1")
_power: bmc.Power = hostmodel_bmc.SimPower(_bmcs)
_management: bmc.Management = hostmodel_bmc.SimManagement(_bmcs)
_virtual_media: bmc.Boot = hostmodel_bmc.SimBoot(_bmcs)
_inspect: bmc.Inspect = hostmodel_bmc.SimInspect(_bmcs)
_bios: bmc.Bios = hostmodel_bmc.SimBios(_bmcs)
_firmware: bmc.Firmware = hostmodel_bmc.SimFirmware(_bmcs)
_events: bmc.Events = hostmodel_bmc.SimEvents(_bmcs)
_factory: ports.ProvisionerFactory = engine.Engine(
    drivers=hostmodel_bmc.driver_for(_bmcs), agents=_http_agent, nodes_port=_table,
    clock=clock.ManualClock(),
)


# --- the contract --------------------------------------------------------------------------------

IMAGE = imageserver.random_image(256 * 1024, seed=7)


@dataclass
class Harness:
    port: agent.Agent
    host: hostmodel.HostModel
    boot: Callable[[], agent.AgentEndpoint]
    """Boot the host into the ramdisk; the endpoint of its agent once it heartbeats."""
    image_url: str
    agents: emulator.AgentEmulator


def _wait(port: agent.Agent, endpoint: agent.AgentEndpoint, *, timeout_s: float = 10.0
          ) -> agent.CommandStatus:
    deadline = time.monotonic() + timeout_s
    while True:
        command = port.status(endpoint).command
        assert command is not None
        if command.state is not agent.CommandState.RUNNING or time.monotonic() > deadline:
            return command
        time.sleep(0.02)


def _boot(host: hostmodel.HostModel, table: lookup.LockedNodeTable,
          agents: emulator.AgentEmulator, *, timeout_s: float = 10.0) -> agent.AgentEndpoint:
    table.forget_agent("node-0")  # as the engine does before it boots the ramdisk
    host.set_boot_device(hostmodel.BootDevice.PXE, persistent=False)
    if host.power is hostmodel.Power.ON:
        host.reboot(hard=True)
    else:
        host.power_on()
    running = agents.current(host)
    assert running is not None
    deadline = time.monotonic() + timeout_s
    while True:
        endpoint = table.agent("node-0")
        if endpoint is not None and endpoint.url == running.url:
            assert endpoint.token == running.token and len(running.token) >= 32
            return endpoint
        assert time.monotonic() < deadline, "the agent did not heartbeat"
        time.sleep(0.02)


def _register(table: lookup.LockedNodeTable, host: hostmodel.HostModel) -> None:
    table.put(nodes.Node(node_id="node-0", name="metal3~node-0", bmc_address="127.0.0.1:623",
                         macs=(host.inventory.nics[0].mac,)))


def _fetch(wanted: str, url: str) -> Iterator[bytes]:
    if wanted != url:
        raise OSError("HTTP Error 404: Not Found")
    return iter([IMAGE])


@pytest.fixture
def inproc_harness() -> Iterator[Harness]:
    table = lookup.LockedNodeTable(clock=memory.WallClock())
    url = "http://images.test/os.raw"
    agents = emulator.AgentEmulator(
        conductor=lookup.DirectConductor(table), run=emulator.run_inline,
        fetch=lambda u: _fetch(u, url),
    )
    host = hostmodel.HostModel(name="node-0", inventory=hostmodel.make_inventory(0))
    agents.attach(host, bmc_address="ipmi://127.0.0.1")
    _register(table, host)
    yield Harness(inprocess.InProcessAgent(agents), host, lambda: _boot(host, table, agents), url,
                  agents)


@pytest.fixture
def http_harness() -> Iterator[Harness]:
    images = imageserver.ImageServer()
    images.start()
    url = images.add("os.raw", IMAGE)
    table = lookup.LockedNodeTable(clock=memory.WallClock())
    service = lookup.LookupService(table)
    service.start()
    agents = emulator.AgentEmulator(conductor=lookup.HttpConductor(service.url),
                                    timing=emulator.AgentTiming(heartbeat_s=0.1))
    api = server.AgentServer(agents)
    api.start()
    agents.start()
    host = hostmodel.HostModel(name="node-0", inventory=hostmodel.make_inventory(0))
    agents.attach(host, bmc_address="ipmi://127.0.0.1")
    _register(table, host)
    try:
        yield Harness(agent_client.HttpAgent(timeout_s=5), host,
                      lambda: _boot(host, table, agents), url, agents)
    finally:
        agents.stop()
        api.stop()
        service.stop()
        images.stop()


@pytest.fixture(params=["in-process", "http"])
def harness(request: pytest.FixtureRequest) -> Harness:
    name = "inproc_harness" if request.param == "in-process" else "http_harness"
    found: Harness = request.getfixturevalue(name)
    return found


def test_a_fresh_agent_has_no_command(harness: Harness) -> None:
    endpoint = harness.boot()
    status = harness.port.status(endpoint)
    running = harness.agents.current(harness.host)
    assert running is not None
    assert status.command is None and status.boot_id == str(running.started_at)


def test_inventory_describes_the_host(harness: Harness) -> None:
    details = harness.port.inventory(harness.boot())
    assert [n.mac for n in details.nics] == [n.mac for n in harness.host.inventory.nics]
    assert details.storage[0].name == "/dev/sda" and details.cpu.arch == "x86_64"


def test_clean_runs_to_success(harness: Harness) -> None:
    endpoint = harness.boot()
    started = harness.port.start_clean(endpoint)
    assert started.name is agent.CommandName.CLEAN_METADATA
    assert _wait(harness.port, endpoint).state is agent.CommandState.SUCCEEDED
    assert harness.agents.disk(harness.host).wipes == 1


def test_write_image_verifies_the_checksum(harness: Harness) -> None:
    endpoint = harness.boot()
    good = hashlib.sha512(IMAGE).hexdigest()
    harness.port.start_write_image(endpoint, agent.ImageWrite(url=harness.image_url,
                                                              checksum=good))
    done = _wait(harness.port, endpoint)
    assert done.state is agent.CommandState.SUCCEEDED
    assert (done.image_url, done.image_checksum) == (harness.image_url, good)
    harness.port.start_write_image(endpoint, agent.ImageWrite(url=harness.image_url,
                                                              checksum="0" * 32))
    failed = _wait(harness.port, endpoint)
    assert failed.state is agent.CommandState.FAILED
    assert failed.error.startswith("Image failed to verify against checksum.")


def test_an_agent_is_gone_after_its_host_reboots(harness: Harness) -> None:
    endpoint = harness.boot()
    harness.host.reboot(hard=True)  # boots the disk (the one-time PXE override is used up)
    with pytest.raises(agent.AgentUnavailable):
        harness.port.status(endpoint)
    again = harness.boot()
    assert again.boot_id != endpoint.boot_id and again.token != endpoint.token
    assert harness.port.status(again).boot_id != str(endpoint.boot_id)


def test_commands_need_the_agent_token(harness: Harness) -> None:
    endpoint = harness.boot()
    for token in ("", "x" * 43):
        with pytest.raises(agent.AgentError, match="401"):
            harness.port.start_clean(dataclasses.replace(endpoint, token=token))
    assert harness.agents.disk(harness.host).wipes == 0


def test_a_write_image_failure_names_the_image(harness: Harness) -> None:
    endpoint = harness.boot()
    missing = harness.image_url.replace("os.raw", "missing.raw")
    harness.port.start_write_image(endpoint, agent.ImageWrite(url=missing, checksum="0" * 64))
    failed = _wait(harness.port, endpoint)
    assert failed.state is agent.CommandState.FAILED
    assert failed.error.startswith("Error downloading image") and missing in failed.error
    assert (failed.image_url, failed.image_checksum) == (missing, "0" * 64)


def test_reboot_from_the_agent(harness: Harness) -> None:
    endpoint = harness.boot()
    boots = len(harness.host.boots)
    command = harness.port.start_reboot(endpoint)
    assert command.name is agent.CommandName.REBOOT
    deadline = time.monotonic() + 5
    while len(harness.host.boots) == boots and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(harness.host.boots) == boots + 1


def test_power_off_from_the_agent(harness: Harness) -> None:
    endpoint = harness.boot()
    harness.port.start_power_off(endpoint)
    deadline = time.monotonic() + 5
    while harness.host.power is not hostmodel.Power.OFF and time.monotonic() < deadline:
        time.sleep(0.02)
    assert harness.host.power is hostmodel.Power.OFF
    with pytest.raises(agent.AgentUnavailable):
        harness.port.status(endpoint)
