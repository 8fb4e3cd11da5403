"""The stock Ironic Python Agent 13.0.0 (from PyPI) against the manager's engine services.

What `metalcubed manager --provisioner engine` serves (EngineServices: the Ironic v1 agent API
and the boot server, with the engine) runs on 127.0.0.1; IPA runs as a process with the
parameters of the per-host deploy ISO the boot server built for the host (`ipa-api-url`, the
pre-generated `ipa-agent-token`, read from the ISO as the host's bootloader would pass them),
and a hardware manager of the test's (tests/ipa/hwm: disks are files, NICs fixed). The first
test drives it through the engine's Agent port (controllers/agent_client.py) call by call:
status, inventory, metadata cleaning, image write with checksum verification and the config
drive; the last runs the engine's own steps (register, inspect, provision, deprovision) over a
simulated BMC whose virtual-CD boots start the agent.

IPA runs unmodified. Two things stand in for a real machine: the hardware manager plugin,
and small stand-ins (tests/ipa/blockshim.py) for the block-device tools that need a kernel
block device (lsblk, partprobe, blockdev, udevadm, mount of the config drive), first on
IPA's PATH, acting on the disk files only; partitions appear as files beside the disk file
(the config drive lands in `<disk>2`). parted is the real one. The test never sends
standby.power_off or run_image: IPA would run the machine's poweroff.
"""

import dataclasses
import hashlib
import json
import logging
import pathlib
import subprocess
import time
import urllib.request
from collections.abc import Callable

import pytest

from metalcubed.controllers import agent_client, bootiso
from metalcubed.core import agent, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.provisioning import configdrive
from metalcubed.simulators import hostmodel
from tests.ipa.rig import CREDS, KEY, MAC, MIB, Ipa, World, disk_image

pytestmark = pytest.mark.ipa

def _wait_command(port: agent.Agent, endpoint: agent.AgentEndpoint, world: World, ipa: Ipa,
                  name: agent.CommandName) -> agent.CommandStatus:
    latest: list[agent.CommandStatus] = []

    def finished() -> bool:
        command = port.status(endpoint).command
        latest[:] = [command] if command is not None else []
        return (command is not None and command.name is name
                and command.state is not agent.CommandState.RUNNING)

    world.until(ipa, f"end of {name.value}", finished)
    return latest[0]


def test_stock_ipa_is_inspected_cleaned_and_deployed(world: World) -> None:
    params = world.deploy_iso_params()
    assert params["ipa-api-url"] == world.services.lookup_url
    assert params["boot_method"] == "vmedia"
    ipa = world.start_ipa(params)
    table = world.services.table
    world.until(ipa, "heartbeat", lambda: table.agent(world.node_id) is not None)
    endpoint = table.agent(world.node_id)
    assert endpoint is not None and endpoint.token == params["ipa-agent-token"]

    # Inspection: IPA posted its inventory to /v1/continue_inspection before the lookup.
    inspection = table.inspection(world.node_id)
    assert inspection is not None
    assert [i["mac_address"] for i in inspection["inventory"]["interfaces"]] == [MAC]

    port = agent_client.HttpAgent(timeout_s=30)
    status = port.status(endpoint)
    assert status.version.startswith("13.") and status.command is None
    details = port.inventory(endpoint)
    assert [n.mac for n in details.nics] == [MAC] and details.nics[0].pxe
    assert details.storage[0].name == str(ipa.disk) and details.storage[0].serial_number == "S-0"
    assert details.cpu.count == 8 and details.ram_mebibytes == 16384
    assert details.system_vendor.manufacturer == "metalcubed"

    # A command without the agent's token is refused by IPA itself.
    with pytest.raises(agent.AgentError, match="401"):
        port.start_clean(dataclasses.replace(endpoint, token="x" * 43))

    # Cleaning: clean.get_clean_steps, then erase_devices_metadata with the clean version.
    assert ipa.disk.read_bytes()[510:512] == b"\x55\xaa"
    port.start_clean(endpoint)
    cleaned = _wait_command(port, endpoint, world, ipa, agent.CommandName.CLEAN_METADATA)
    assert cleaned.state is agent.CommandState.SUCCEEDED, cleaned.error
    assert ipa.disk.read_bytes()[:MIB] == b"\0" * MIB

    image = disk_image()
    url = world.images.add("os.raw", image)
    good = hashlib.sha256(image).hexdigest()

    # A wrong checksum: IPA downloads, verifies and refuses.
    port.start_write_image(endpoint, agent.ImageWrite(url=url, checksum="0" * 64,
                                                      checksum_type="sha256"))
    refused = _wait_command(port, endpoint, world, ipa, agent.CommandName.WRITE_IMAGE)
    assert refused.state is agent.CommandState.FAILED
    assert "checksum" in refused.error.lower() and (refused.image_url, refused.image_checksum) \
        == (url, "0" * 64)

    # The image and the config drive (the engine's, as deploy.py builds it).
    drive = configdrive.build(
        ports.HostConfig(
            user_data="#cloud-config\nhostname: ipa-host-0\n",
            network_data='{"links": [], "networks": [], "services": []}'),
        node_id=world.node_id, key=KEY)
    port.start_write_image(endpoint, agent.ImageWrite(url=url, checksum=good,
                                                      checksum_type="sha256",
                                                      config_drive=drive))
    written = _wait_command(port, endpoint, world, ipa, agent.CommandName.WRITE_IMAGE)
    assert written.state is agent.CommandState.SUCCEEDED, written.error
    assert (written.image_url, written.image_checksum) == (url, good)
    on_disk = ipa.disk.read_bytes()
    # The image as written, but for the partition entry parted added for the config drive.
    assert on_disk[512:len(image)] == image[512:] and on_disk[446:462] == image[446:462]
    assert on_disk[462:478] != b"\0" * 16 and on_disk[510:512] == b"\x55\xaa"
    partitions = subprocess.run(["parted", "-s", "-m", str(ipa.disk), "unit", "MiB", "print"],
                                capture_output=True, text=True, check=True).stdout
    assert partitions.count("\n") >= 4, partitions  # the image's partition + the config drive's
    label, files = bootiso.read_files(pathlib.Path(f"{ipa.disk}2").read_bytes())
    assert label == "config-2"
    assert files["openstack/latest/user_data"] == b"#cloud-config\nhostname: ipa-host-0\n"
    meta_data = json.loads(files["openstack/latest/meta_data.json"])
    assert meta_data["uuid"] == world.node_id and meta_data["metal3-name"] == KEY.name


def test_stock_ipa_with_a_wrong_token_is_refused_and_the_token_is_not_logged(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    params = world.deploy_iso_params()  # the node's token now is the ISO's
    wrong = "w" * 43
    ipa = world.start_ipa({**params, "ipa-agent-token": wrong}, name="impostor")
    api = world.services.api
    world.until(ipa, "a refused heartbeat", lambda: api.refused >= 1)
    assert world.services.table.agent(world.node_id) is None
    assert f"refused heartbeat for node {world.node_id}" in caplog.text
    assert wrong not in caplog.text and params["ipa-agent-token"] not in caplog.text
    world.until(ipa, "IPA's report of the refusal",
                lambda: "Invalid or missing agent token received" in ipa.log_tail())


def _stop(ipa: Ipa) -> None:
    if ipa.process.poll() is None:
        ipa.process.terminate()
        ipa.process.wait(timeout=10)


def test_the_engine_provisions_and_cleans_a_host_running_stock_ipa(world: World) -> None:
    """The engine's own steps (register, inspect, provision, deprovision) over a host whose
    ramdisk is the stock agent: a boot from the virtual CD starts IPA with the parameters of
    the per-host ISO in the CD, any boot or power-off ends the running one."""
    model = hostmodel.HostModel(name=KEY.name, inventory=hostmodel.make_inventory(0))
    address = f"redfish-virtualmedia+http://127.0.0.1:8000/redfish/v1/Systems/{model.uuid}"
    world.bmcs.add(address, model)
    disk = world.new_disk("host")
    running: list[Ipa] = []

    def on_boot(event: hostmodel.BootEvent) -> None:
        for ipa in running:
            _stop(ipa)  # the host rebooted: its agent is gone
        running.clear()
        if event.device is hostmodel.BootDevice.CD:
            with urllib.request.urlopen(event.media_url, timeout=10) as rsp:
                params = bootiso.read_agent_params(rsp.read())
            running.append(world.start_ipa(params, name=f"boot-{len(model.boots)}", disk=disk))

    model.on_boot(on_boot)
    host = ports.HostData(key=KEY, bmc_address=address, bmc_credentials=CREDS,
                          disable_certificate_verification=False, boot_mac_address=MAC,
                          provisioner_id="")
    events: list[tuple[str, str]] = []
    prov = world.services.engine.new_provisioner(host, lambda r, m: events.append((r, m)))

    def until_done(step: Callable[[], ports.ProvisionResult], what: str
                   ) -> ports.ProvisionResult:
        deadline = time.monotonic() + 120
        while True:
            result = step()
            if not result.dirty:
                return result
            if time.monotonic() > deadline:
                logs = "\n".join(i.log_tail()[-1500:] for i in world.started)
                pytest.fail(f"{what} did not finish: {result}; events {events}\n{logs}")
            time.sleep(min(result.requeue_after_s, 0.1))

    access = ports.ManagementAccessData(
        boot_mode=bmh.BootMode.UEFI, automated_cleaning_mode=bmh.AutomatedCleaningMode.METADATA,
        state=bmh.ProvisioningState.REGISTERING, operational_status=bmh.OperationalStatus.OK,
        current_image=None, has_custom_deploy=False, disable_power_off=False,
        cpu_architecture="", disable_inspection=False, inspection_mode=None)
    result = until_done(lambda: prov.register(access, credentials_changed=True,
                                              restart_on_failure=False)[0], "register")
    assert result == ports.ProvisionResult.complete()

    found: list[ports.InspectOutcome] = []

    def inspect() -> ports.ProvisionResult:
        got = prov.inspect_hardware(
            ports.InspectData(boot_mode=bmh.BootMode.UEFI, cpu_architecture="",
                              inspection_mode=None),
            restart_on_failure=False, refresh=False, force_reboot=False)
        found.append(got)
        return got.result

    assert until_done(inspect, "inspection") == ports.ProvisionResult.complete()
    details = found[-1].details
    assert details is not None and [n.mac for n in details.nics] == [MAC]
    assert details.storage[0].name == str(disk)
    assert [b.device for b in model.boots] == [hostmodel.BootDevice.CD]

    image = disk_image()
    url = world.images.add("os.raw", image)
    data = ports.ProvisionData(
        image=bmh.Image(url=url, checksum=hashlib.sha256(image).hexdigest(),
                        checksum_type=bmh.ChecksumType.SHA256, format=bmh.ImageFormat.RAW),
        host_config=ports.HostConfig(user_data="#cloud-config\nfqdn: ipa-host-0.example\n"),
        boot_mode=bmh.BootMode.UEFI, hardware_profile="unknown", root_device_hints=None,
        custom_deploy=None)
    result = until_done(lambda: prov.provision(data, force_reboot=False), "provisioning")
    assert result == ports.ProvisionResult.complete(), result
    assert disk.read_bytes()[512:len(image)] == image[512:]
    _, files = bootiso.read_files(pathlib.Path(f"{disk}2").read_bytes())
    assert b"fqdn: ipa-host-0.example" in files["openstack/latest/user_data"]
    assert model.boots[-1].device is hostmodel.BootDevice.HDD and not running

    result = until_done(lambda: prov.deprovision(
        restart_on_failure=False, automated_cleaning_mode=bmh.AutomatedCleaningMode.METADATA),
        "deprovisioning")
    assert result == ports.ProvisionResult.complete(), result
    assert disk.read_bytes()[:MIB] == b"\0" * MIB  # the second agent wiped the metadata
    assert model.power is hostmodel.Power.OFF
    assert [b.device for b in model.boots].count(hostmodel.BootDevice.CD) == 2
