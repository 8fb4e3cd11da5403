"""The agent protocol over real HTTP on 127.0.0.1: lookup service, agent API, image server.

The BMC side is in-process (Sim capabilities over the host model); everything the agent does
goes over sockets: it looks its node up and heartbeats to the lookup service, the engine talks
to it with the HTTP client, and it downloads the image from the image server.
"""

import dataclasses
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from metalcubed.controllers import agent_client, httpserve, memory
from metalcubed.core import agent, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta
from metalcubed.core.provisioning import context, engine, nodes
from metalcubed.simulators import hostmodel, hostmodel_bmc, imageserver
from metalcubed.simulators.agent import emulator, lookup, server
from tests.hardware import world

pytestmark = [pytest.mark.hardware]

CREDS = ports.Credentials(username="admin", password="password")
_ADDRESSES: dict[str, hostmodel.HostModel] = {}
IMAGE = imageserver.random_image(3 * 1024 * 1024)


@dataclass
class Lab:
    images: imageserver.ImageServer
    service: lookup.LookupService
    agents: emulator.AgentEmulator
    api: server.AgentServer
    table: lookup.LockedNodeTable
    bmcs: hostmodel_bmc.SimBmcs
    engine: engine.Engine
    iso_url: str
    image_url: str


@pytest.fixture
def lab() -> Iterator[Lab]:
    images = imageserver.ImageServer()
    images.start()
    iso_url = images.add("ipa.iso", b"deploy ramdisk ISO")
    image_url = images.add("os.raw", IMAGE)
    table = lookup.LockedNodeTable(clock=memory.WallClock(), agent_timeout_s=30)
    service = lookup.LookupService(table, heartbeat_timeout_s=30)
    service.start()
    agents = emulator.AgentEmulator(
        conductor=lookup.HttpConductor(service.url),
        deploy_iso_urls={iso_url},
        timing=emulator.AgentTiming(heartbeat_s=0.2),
    )
    api = server.AgentServer(agents)
    api.start()
    agents.start()
    bmcs = hostmodel_bmc.SimBmcs(credentials=CREDS)
    eng = engine.Engine(
        drivers=hostmodel_bmc.driver_for(bmcs),
        agents=agent_client.HttpAgent(timeout_s=5),
        nodes_port=table,
        clock=memory.WallClock(),
        config=context.EngineConfig(deploy_iso_url=iso_url, poll_s=0.05, short_poll_s=0.05),
    )
    try:
        yield Lab(images, service, agents, api, table, bmcs, eng, iso_url, image_url)
    finally:
        agents.stop()
        api.stop()
        service.stop()
        images.stop()


def add_host(lab: Lab, index: int, *, scheme: str = "redfish-virtualmedia+http"
             ) -> tuple[hostmodel.HostModel, engine.EngineProvisioner]:
    model = hostmodel.HostModel(name=f"host-{index}", inventory=hostmodel.make_inventory(index))
    address = (f"ipmi://127.0.0.1:{6300 + index}" if scheme == "ipmi"
               else f"{scheme}://127.0.0.1:8000/redfish/v1/Systems/{model.uuid}")
    lab.bmcs.add(address, model)
    _ADDRESSES[address] = model
    lab.agents.attach(model, bmc_address=address)
    prov = lab.engine.new_provisioner(prov_host(model), lambda reason, message: None)
    result, _ = prov.register(_access(), credentials_changed=True, restart_on_failure=False)
    assert result == ports.ProvisionResult.complete()
    return model, prov


def prov_host(model: hostmodel.HostModel) -> ports.HostData:
    address = next(a for a, m in _ADDRESSES.items() if m is model)
    return ports.HostData(
        key=meta.ObjectKey("metal3", model.name), bmc_address=address, bmc_credentials=CREDS,
        disable_certificate_verification=False, boot_mac_address="", provisioner_id="",
    )


def _access() -> ports.ManagementAccessData:
    return ports.ManagementAccessData(
        boot_mode=bmh.BootMode.UEFI, automated_cleaning_mode=bmh.AutomatedCleaningMode.METADATA,
        state=bmh.ProvisioningState.REGISTERING, operational_status=bmh.OperationalStatus.OK,
        current_image=None, has_custom_deploy=False, disable_power_off=False,
        cpu_architecture="", disable_inspection=False, inspection_mode=None,
    )


def until_done(step: Callable[[], ports.ProvisionResult], *, timeout_s: float = 20.0
               ) -> ports.ProvisionResult:
    deadline = time.monotonic() + timeout_s
    while True:
        result = step()
        if not result.dirty or time.monotonic() > deadline:
            return result
        time.sleep(min(result.requeue_after_s, 0.05))


def provision_data(lab: Lab, checksum: str) -> ports.ProvisionData:
    return ports.ProvisionData(
        image=bmh.Image(url=lab.image_url, checksum=checksum),
        host_config=ports.HostConfig(user_data="#cloud-config\nfqdn: h.example\n"),
        boot_mode=bmh.BootMode.UEFI, hardware_profile="unknown", root_device_hints=None,
        custom_deploy=None,
    )


def test_inspect_provision_deprovision_over_http(lab: Lab) -> None:
    model, prov = add_host(lab, 0)

    def inspect() -> ports.ProvisionResult:
        got = prov.inspect_hardware(
            ports.InspectData(boot_mode=bmh.BootMode.UEFI, cpu_architecture="",
                              inspection_mode=None),
            restart_on_failure=False, refresh=False, force_reboot=False,
        )
        found.append(got)
        return got.result

    found: list[ports.InspectOutcome] = []
    assert until_done(inspect) == ports.ProvisionResult.complete()
    details = found[-1].details
    assert details is not None and details.system_vendor.serial_number == "M3-000000"
    assert lab.service.lookups >= 1 and lab.service.heartbeats >= 1
    assert lab.images.hits["ipa.iso"] == 0  # the Sim BMC does not fetch; Redfish's does

    data = provision_data(lab, lab.images.checksum("os.raw", "sha256"))
    assert until_done(lambda: prov.provision(data, force_reboot=False)) == \
        ports.ProvisionResult.complete()
    disk = lab.agents.disk(model)
    assert disk.size_bytes == len(IMAGE) and lab.images.hits["os.raw"] == 1
    assert disk.config_drive is not None and "fqdn: h.example" in disk.config_drive.user_data
    assert disk.os_boots == 1

    result = until_done(lambda: prov.deprovision(
        restart_on_failure=False, automated_cleaning_mode=bmh.AutomatedCleaningMode.METADATA))
    assert result == ports.ProvisionResult.complete()
    assert disk.wipes == 1 and disk.image_url == "" and model.power is hostmodel.Power.OFF


def test_bad_checksum_over_http_is_a_provisioning_failure(lab: Lab) -> None:
    model, prov = add_host(lab, 1, scheme="ipmi")
    data = provision_data(lab, "d41d8cd98f00b204e9800998ecf8427e")  # md5 of nothing
    result = until_done(lambda: prov.provision(data, force_reboot=False))
    # The engine prefixes upstream's "Image provisioning failed (url: ...): " (Ironic's wording).
    assert result.error_message.startswith(f"Image provisioning failed (url: {data.image.url}): ")
    assert "Image failed to verify against checksum." in result.error_message
    assert "d41d8cd98f00b204e9800998ecf8427e" in result.error_message
    assert model.boots[0].device is hostmodel.BootDevice.PXE
    assert lab.agents.disk(model).image_url == ""


def test_checksum_file_url_over_http(lab: Lab) -> None:
    _, prov = add_host(lab, 2)
    data = provision_data(lab, lab.image_url + ".sha512sum")
    assert until_done(lambda: prov.provision(data, force_reboot=False)) == \
        ports.ProvisionResult.complete()


def _agent_endpoint(lab: Lab, model: hostmodel.HostModel) -> agent.AgentEndpoint:
    """The agent's endpoint once its first heartbeat landed (the lookup alone, which sets
    `node_id`, comes before it)."""
    running = lab.agents.current(model)
    assert running is not None
    deadline = time.monotonic() + 5
    while True:
        endpoint = lab.table.agent(running.node_id) if running.node_id else None
        if endpoint is not None:
            return endpoint
        assert time.monotonic() < deadline, "the agent did not heartbeat within 5 s"
        time.sleep(0.02)


def test_agent_api_refusals(lab: Lab) -> None:
    model, prov = add_host(lab, 3)
    lab.agents.timing = emulator.AgentTiming(heartbeat_s=0.2, clean_s=1.0)
    prov.inspect_hardware(
        ports.InspectData(boot_mode=bmh.BootMode.UEFI, cpu_architecture="", inspection_mode=None),
        restart_on_failure=False, refresh=False, force_reboot=False,
    )
    endpoint = _agent_endpoint(lab, model)
    client = agent_client.HttpAgent(timeout_s=5)
    started = client.start_clean(endpoint)
    assert started.state is agent.CommandState.RUNNING
    with pytest.raises(agent.AgentError, match="HTTP 409"):
        client.start_clean(endpoint)
    request = urllib.request.Request(
        endpoint.url + "/v1/commands", method="POST",
        data=json.dumps({"name": "standby.prepare_image", "params": {}}).encode(),
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 401  # no agent token
    model.power_off(hard=True)  # the agent goes away with its host
    with pytest.raises(agent.AgentUnavailable):
        client.status(endpoint)


@pytest.mark.timeout(30)  # a guard against a hang, not a speed check
def test_unreachable_agent_is_unavailable() -> None:
    client = agent_client.HttpAgent(timeout_s=1)
    endpoint = agent.AgentEndpoint(node_id="n", url="http://127.0.0.1:9/agents/x", boot_id="x",
                                   heartbeat_at=memory.WallClock().now())
    with pytest.raises(agent.AgentUnavailable):
        client.status(endpoint)


def test_lookup_service_answers(lab: Lab) -> None:
    base = lab.service.url
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{base}/v1/lookup?addresses=00:00:00:00:00:01", timeout=5)
    assert missing.value.code == 404
    lab.table.put(nodes.Node(node_id="n1", name="ns~n1", bmc_address="127.0.0.1:623",
                             macs=("00:00:00:00:00:01",),
                             wait=nodes.Wait(purpose=nodes.Purpose.INSPECT,
                                             since=memory.WallClock().now())))
    with urllib.request.urlopen(f"{base}/v1/lookup?addresses=00:00:00:00:00:01",
                                timeout=5) as rsp:
        assert json.loads(rsp.read())["node"]["uuid"] == "n1"
    bad = urllib.request.Request(f"{base}/v1/heartbeat/n1", method="POST",
                                 data=json.dumps({"callback_url": "file:///etc/passwd"}).encode())
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bad, timeout=5)
    assert refused.value.code == 400
    junk = urllib.request.Request(f"{base}/v1/heartbeat/n1", method="POST", data=b"{not json")
    with pytest.raises(urllib.error.HTTPError) as not_json:
        urllib.request.urlopen(junk, timeout=5)
    assert not_json.value.code == 400


# --- bad input: what reaches the BareMetalHost --------------------------------------------------


def test_an_agent_that_sends_garbage_fails_the_step_naming_it(lab: Lab) -> None:
    """A process that looked its node up and heartbeats (with the token it got) but answers
    garbage: the engine's step fails naming the agent's URL and what it was doing."""
    model, prov = add_host(lab, 3)
    garbage = httpserve.HttpServer(
        lambda request: httpserve.Response(200, b"<html>not an agent</html>", "text/html"),
        name="garbage-agent")
    callback = garbage.start()
    try:
        mac = model.inventory.nics[0].mac
        lookup_url = f"{lab.service.url}/v1/lookup?addresses={mac}"
        with pytest.raises(urllib.error.HTTPError) as not_yet:
            urllib.request.urlopen(lookup_url, timeout=5)
        assert not_yet.value.code == 404  # no token while the engine expects no agent
        node_id = nodes.node_id_for(meta.ObjectKey("metal3", model.name))
        node = lab.table.get(node_id)
        assert node is not None  # the engine booted the ramdisk to deploy (say)
        lab.table.put(dataclasses.replace(node, wait=nodes.Wait(
            purpose=nodes.Purpose.DEPLOY, since=memory.WallClock().now())))
        with urllib.request.urlopen(lookup_url, timeout=5) as rsp:
            found = json.loads(rsp.read())
        beat = urllib.request.Request(
            f"{lab.service.url}/v1/heartbeat/{found['node']['uuid']}", method="POST",
            data=json.dumps({"callback_url": callback,
                             "agent_token": found["config"]["agent_token"]}).encode())
        with urllib.request.urlopen(beat, timeout=5) as rsp:
            assert rsp.status == 202
        data = provision_data(lab, lab.images.checksum("os.raw", "sha256"))
        result = prov.provision(data, force_reboot=False)
        assert not result.dirty
        assert result.error_message.endswith(
            f": deploy agent at {callback} failed during get status: response is not JSON")
        assert result.error_message.startswith("Image provisioning failed (url: ")
        assert model.power is hostmodel.Power.OFF  # nothing was booted on its word
    finally:
        garbage.stop()


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_agents_that_cannot_reach_the_lookup_url_time_the_step_out(lab: Lab) -> None:
    lab.agents.conductor = lookup.HttpConductor(f"http://127.0.0.1:{_closed_port()}")
    model, prov = add_host(lab, 4)
    slow = engine.Engine(
        drivers=hostmodel_bmc.driver_for(lab.bmcs), agents=agent_client.HttpAgent(timeout_s=5),
        nodes_port=lab.table, clock=memory.WallClock(),
        config=context.EngineConfig(deploy_iso_url=lab.iso_url, poll_s=0.05, short_poll_s=0.05,
                                    ramdisk_timeout_s=1.0),
    )
    prov = slow.new_provisioner(prov_host(model), lambda reason, message: None)
    data = provision_data(lab, lab.images.checksum("os.raw", "sha256"))
    result = until_done(lambda: prov.provision(data, force_reboot=False))
    # Ironic's words (the engine's wording of the ramdisk timeout is H4's to choose).
    assert "timeout reached while waiting for" in result.error_message.lower()
    running = lab.agents.current(model)
    assert running is not None and running.node_id == ""  # it booted, but never found its node


def test_a_deploy_iso_that_cannot_be_built_is_a_host_error(
        caplog: pytest.LogCaptureFixture) -> None:
    """The boot server cannot fetch the deploy ramdisk: the BMC's fetch of the host's ISO fails
    (424), the host shows the virtual-media error, and the boot server's log names the URL."""
    caplog.set_level(logging.WARNING, logger="metalcubed.controllers.bootserver")
    hosts = hostmodel.make_hosts(1, prefix="noiso")
    with world.HardwareWorld(redfish_hosts=hosts, ipmi_hosts=[]) as w:
        assert w.lab.services is not None
        missing = f"http://127.0.0.1:{_closed_port()}/ipa.initramfs"
        w.lab.services.boot.deploy_ramdisk_url = missing
        key = w.enroll(hosts[0], "redfish-virtualmedia")
        w.loop.run_until(lambda: w.loop.host(key).status.error_message != "", timeout_s=60)
        status = w.loop.host(key).status
        assert status.error_type == bmh.ErrorType.INSPECTION
        assert "during insert cd media" in status.error_message
        assert "Cannot download virtual media: got error 424" in status.error_message
        assert hosts[0].boots == []
        assert f"cannot fetch the deploy kernel, ramdisk or bootloader: GET {missing}" \
            in caplog.text
