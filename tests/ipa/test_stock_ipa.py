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
import os
import pathlib
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from metalcubed.controllers import agent_client, bootiso, engine_services, memory
from metalcubed.core import agent, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta
from metalcubed.core.provisioning import configdrive, context, nodes
from metalcubed.simulators import hostmodel, hostmodel_bmc, imageserver

pytestmark = pytest.mark.ipa

HERE = pathlib.Path(__file__).parent
KEY = meta.ObjectKey("metal3", "ipa-host-0")
MAC = "52:54:00:12:34:56"
MIB = 1024 * 1024
DISK_SIZE = 96 * MIB
CREDS = ports.Credentials(username="admin", password="password")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def disk_image() -> bytes:
    """An 80 MiB raw disk image: an MBR with one Linux partition (1..7 MiB) holding data."""
    mbr = bytearray(512)
    mbr[446:462] = struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x83, b"\0\0\0", 2048, 12288)
    mbr[510:512] = b"\x55\xaa"
    payload = imageserver.random_image(6 * MIB, seed=11)
    image = bytes(mbr) + b"\0" * (MIB - 512) + payload
    return image + b"\0" * (80 * MIB - len(image))


@dataclasses.dataclass
class Ipa:
    process: subprocess.Popen[bytes]
    log: pathlib.Path
    disk: pathlib.Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@dataclasses.dataclass
class World:
    services: engine_services.EngineServices
    images: imageserver.ImageServer
    node_id: str
    tmp: pathlib.Path
    venv: pathlib.Path
    started: list[Ipa]
    bmcs: hostmodel_bmc.SimBmcs

    def deploy_iso_params(self) -> dict[str, str]:
        """What the host boots: its deploy ISO from the boot server, and the kernel command line
        in it."""
        url = self.services.engine.config.deploy_iso_url.replace("{node_id}", self.node_id)
        with urllib.request.urlopen(url, timeout=10) as rsp:
            return bootiso.read_agent_params(rsp.read())

    def new_disk(self, name: str) -> pathlib.Path:
        disks = self.tmp / name / "disks"
        disks.mkdir(parents=True)
        disk = disks / "sda"
        with disk.open("wb") as f:  # an old partition table, for cleaning to wipe
            f.write(disk_image()[:512])
            f.truncate(DISK_SIZE)
        return disk

    def start_ipa(self, params: dict[str, str], *, name: str = "ipa",
                  disk: pathlib.Path | None = None) -> Ipa:
        folder = self.tmp / name
        if disk is None:
            disk = self.new_disk(name)
        folder.mkdir(parents=True, exist_ok=True)
        disks = disk.parent
        host = {
            "nics": [{"name": "eth0", "mac": MAC, "ip": "192.0.2.10", "speed_mbps": 25000,
                      "product": "0x8086 0x158b"}],
            "cpu": {"model": "Test CPU", "mhz": 3200, "count": 8, "arch": "x86_64",
                    "flags": ["vmx"]},
            "memory_mb": 16384,
            "disks": [{"path": str(disk), "model": "FILEDISK", "size": DISK_SIZE,
                       "rotational": False, "serial": "S-0"}],
            "vendor": {"product": "Test Machine", "serial": "TM-0", "manufacturer": "metalcubed",
                       "bios_vendor": "TestBIOS", "bios_version": "1.0", "bios_date": "2026"},
            "bmc_address": "192.0.2.1",
        }
        (folder / "host.json").write_text(json.dumps(host))
        shims = folder / "bin"
        shims.mkdir()
        shim = folder / "blockshim.py"
        shim.write_text(f"#!{sys.executable}\n" + (HERE / "blockshim.py").read_text())
        shim.chmod(0o755)
        for tool in ("lsblk", "partprobe", "blockdev", "udevadm", "sgdisk", "mount", "umount"):
            (shims / tool).symlink_to(shim)
        port = _free_port()
        conf = folder / "ipa.conf"
        conf.write_text("\n".join([
            "[DEFAULT]",
            f"api_url = {params['ipa-api-url']}",
            f"agent_token = {params['ipa-agent-token']}",
            f"inspection_collectors = {params.get('ipa-inspection-collectors', 'default')}",
            "inspection_dhcp_wait_timeout = 0",
            "listen_host = 127.0.0.1", f"listen_port = {port}",
            "advertise_host = 127.0.0.1", f"advertise_port = {port}",
            "lookup_timeout = 120", "lookup_interval = 1",
            "disk_wait_attempts = 0", "hardware_initialization_delay = 0",
            # IPA retries a failed download (a checksum mismatch too) 10 times, 10 s apart.
            "image_download_connection_retries = 0",
            "debug = True", "",
        ]))
        env = {**os.environ,
               "PATH": f"{shims}{os.pathsep}{self.venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
               "METALCUBED_IPA_HOST": str(folder / "host.json"),
               "METALCUBED_IPA_DISKS": str(disks)}
        log = folder / "ipa.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(self.venv / "bin" / "ironic-python-agent"), "--config-file", str(conf)],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folder,
                start_new_session=True)
        ipa = Ipa(process, log, disk)
        self.started.append(ipa)
        return ipa

    def until(self, ipa: Ipa, what: str, done: Callable[[], bool], timeout_s: float = 120.0
              ) -> None:
        """Poll `done` (the agent works on its own schedule); fail with IPA's log."""
        deadline = time.monotonic() + timeout_s
        while not done():
            if ipa.process.poll() is not None:
                pytest.fail(f"IPA exited ({ipa.process.returncode}) before {what}:\n"
                            f"{ipa.log_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout_s:.0f}s; IPA's log:\n{ipa.log_tail()}")
            time.sleep(0.1)


@pytest.fixture
def world(ipa_venv: pathlib.Path, tmp_path: pathlib.Path) -> Iterator[World]:
    images = imageserver.ImageServer()
    images.start()
    kernel = images.add("ipa.kernel", b"deploy kernel")
    ramdisk = images.add("ipa.initramfs", b"deploy ramdisk")

    bmcs = hostmodel_bmc.SimBmcs(credentials=CREDS)
    services = engine_services.EngineServices(
        clock=memory.WallClock(), drivers=hostmodel_bmc.driver_for(bmcs), store_hosts=None,
        config=engine_services.EngineServiceConfig(
            deploy_kernel_url=kernel, deploy_ramdisk_url=ramdisk, agent_timeout_s=300.0,
            engine=context.EngineConfig(poll_s=0.2, short_poll_s=0.1, busy_retry_s=0.2,
                                        ramdisk_timeout_s=120.0)),
    )
    services.start()
    node_id = nodes.node_id_for(KEY)
    # What the engine's register records for the host.
    services.table.put(nodes.Node(node_id=node_id, name=nodes.node_name(KEY),
                                  bmc_address="192.0.2.1:623", macs=(MAC,)))
    w = World(services, images, node_id, tmp_path, ipa_venv, [], bmcs)
    try:
        yield w
    finally:
        for ipa in w.started:
            if ipa.process.poll() is None:
                ipa.process.terminate()
                try:
                    ipa.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    ipa.process.kill()
                    ipa.process.wait()
        services.stop()
        images.stop()


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
