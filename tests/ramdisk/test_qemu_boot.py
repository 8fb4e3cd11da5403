"""The deploy ramdisk and the tiny OS image, booted under qemu (TCG), against the engine's
real agent API (controllers/lookup.py) and driven by the engine's real agent client
(controllers/agent_client.py), all on loopback.

One VM goes through a host's life: network boot of the ramdisk (the NIC's iPXE runs the
builder's boot.ipxe: kernel and initrd over HTTP, BOOTIF) -> lookup, heartbeat -> inventory
matches the VM -> an image with a wrong checksum is refused and nothing reaches the disk ->
the image is written with its config drive -> power off -> the VM boots the written disk and
reports the hostname from the config drive's meta_data -> the ramdisk boots again from the
deploy ISO (virtual media, with an ir-vfd-dev parameters image) -> metadata cleaning leaves
the disk's and the config drive's headers zeroed.
"""

import dataclasses
import hashlib
import http.server
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from metalcubed.controllers import agent_client, bootiso, lookup, memory
from metalcubed.core import agent
from metalcubed.core.api import meta
from metalcubed.core.provisioning import configdrive, nodes
from metalcubed.ramdisk import build
from tests.ramdisk import vm as lab

pytestmark = [pytest.mark.ramdisk, pytest.mark.slow]

NODE = "0d6e4c1a-5b1e-4d0c-9a63-6a8f1e0b7c42"
KEY = meta.ObjectKey(namespace="lab", name="host-0")
API_PORT, FILES_PORT = 6385, 8080
BOOT_S = 180.0
"""Generous: TCG boots in about 6 s alone but CI shares two cores among many jobs."""


@pytest.fixture(scope="session")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> build.Artefacts:
    out = tmp_path_factory.mktemp("ramdisk")
    return build.build_all(out, api_url=f"http://{lab.GUEST_HOST}:{API_PORT}",
                           report_url=f"http://{lab.GUEST_HOST}:{FILES_PORT}/booted")


class Files(http.server.ThreadingHTTPServer):
    """The image server (GET /files/<name>) and the tiny OS's report sink (GET /booted)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.reports: list[dict[str, str]] = []
        super().__init__(("127.0.0.1", 0), _FilesHandler)


class _FilesHandler(http.server.BaseHTTPRequestHandler):
    server: Files

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        if parts.path == "/booted":
            self.server.reports.append(dict(urllib.parse.parse_qsl(parts.query)))
            body = b"ok\n"
        else:
            target = self.server.root / parts.path.removeprefix("/files/")
            if not parts.path.startswith("/files/") or not target.is_file():
                self.send_error(404)
                return
            body = target.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def files(artefacts: build.Artefacts) -> Iterator[Files]:
    server = Files(artefacts.os_image.parent)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def table() -> lookup.LockedNodeTable:
    return lookup.LockedNodeTable(clock=memory.WallClock(), agent_timeout_s=300)


@pytest.fixture
def api(table: lookup.LockedNodeTable) -> Iterator[lookup.IronicApi]:
    server = lookup.IronicApi(table)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def machine(tmp_path: Path, api: lookup.IronicApi, files: Files) -> Iterator[lab.Vm]:
    api_port = int(api.url.rsplit(":", 1)[1].rstrip("/"))
    domain = lab.Vm(tmp_path, forwards={API_PORT: api_port,
                                        FILES_PORT: files.server_address[1]})
    try:
        yield domain
    finally:
        domain.stop()


def _booting(table: lookup.LockedNodeTable, purpose: nodes.Purpose) -> None:
    """What the engine records when it boots the ramdisk: the agent is expected."""
    table.forget_agent(NODE)
    table.put(nodes.Node(node_id=NODE, name="lab~host-0", bmc_address="127.0.0.1:8000",
                         macs=(lab.MAC,),
                         wait=nodes.Wait(purpose=purpose,
                                         since=memory.WallClock().now())))


def _finished(client: agent_client.HttpAgent, endpoint: agent.AgentEndpoint,
              command_id: str) -> Callable[[], agent.CommandStatus | None]:
    def check() -> agent.CommandStatus | None:
        command = client.status(endpoint).command
        if command is not None and command.id == command_id and \
                command.state is not agent.CommandState.RUNNING:
            return command
        return None
    return check


def _read(path: Path, offset: int, length: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(length)


def _image_partitions(mbr: bytes) -> list[tuple[int, int, int]]:
    """(type, first sector, sectors) of an MBR's entries that cover sectors."""
    if mbr[510:512] != b"\x55\xaa":
        return []
    entries = []
    for i in range(4):
        entry = mbr[446 + 16 * i:462 + 16 * i]
        first, count = struct.unpack_from("<II", entry, 8)
        if count:
            entries.append((entry[4], first, count))
    return entries


def _partitions(disk: Path) -> list[tuple[int, int, int]]:
    return _image_partitions(_read(disk, 0, 512))


def _config_partition(disk: Path) -> list[tuple[int, int]]:
    """(first sector, sectors) of the Linux partitions the agent added (type 0x83)."""
    return [(first, count) for kind, first, count in _partitions(disk) if kind == 0x83]


def test_a_vm_boots_the_ramdisk_writes_the_image_and_boots_it(
        artefacts: build.Artefacts, table: lookup.LockedNodeTable, files: Files,
        machine: lab.Vm) -> None:
    client = agent_client.HttpAgent(timeout_s=60)
    figures: dict[str, float] = {}  # printed for docs/ramdisk.md; nothing asserts on time
    mark = time.monotonic()

    def phase(name: str) -> None:
        nonlocal mark
        figures[name + " s"] = round(time.monotonic() - mark, 1)
        mark = time.monotonic()

    image_url = f"http://{lab.GUEST_HOST}:{FILES_PORT}/files/os.img"
    mib = 1024 * 1024

    # Network boot: the NIC's iPXE runs the builder's script, which fetches kernel and
    # initrd over HTTP and passes BOOTIF.
    _booting(table, nodes.Purpose.DEPLOY)
    advertise = f"ipa-advertise-host=127.0.0.1 ipa-advertise-port={machine.agent_port}"
    tftp = machine.workdir / "tftp"
    tftp.mkdir()
    (tftp / "boot.ipxe").write_text(build.ipxe_script(
        f"http://{lab.GUEST_HOST}:{FILES_PORT}/files",
        build.deploy_params(f"http://{lab.GUEST_HOST}:{API_PORT}", advertise)))
    machine.start(boot="n", tftp=tftp)
    endpoint = lab.wait_for("the agent's heartbeat", lambda: table.agent(NODE), BOOT_S, machine)
    figures["PXE boot CPU s"] = round(machine.cpu_s(), 1)
    phase("PXE (iPXE, HTTP) boot to heartbeat")
    assert endpoint.url == f"http://127.0.0.1:{machine.agent_port}" and endpoint.token

    details = client.inventory(endpoint)
    assert details.cpu.count == 1 and details.cpu.arch == "x86_64"
    assert details.ram_mebibytes == 256
    [nic] = details.nics
    assert (nic.mac, nic.ip, nic.pxe) == (lab.MAC, "10.0.2.15", True)
    [disk] = details.storage
    assert (disk.name, disk.size_bytes, disk.serial_number) == ("/dev/sda", 1 << 30,
                                                                "MC-DISK-0")
    assert "QEMU" in disk.model
    assert details.system_vendor.manufacturer == "QEMU"
    phase("inventory")

    drive = agent.ConfigDrive(meta_data=configdrive.default_meta_data(NODE, KEY))
    bad = agent.ImageWrite(url=image_url, checksum="0" * 64, checksum_type="sha256",
                           config_drive=drive)
    started = client.start_write_image(endpoint, bad)
    failed = lab.wait_for("the refused write", _finished(client, endpoint, started.id), 120,
                          machine)
    assert failed.state is agent.CommandState.FAILED
    assert "Image failed to verify against checksum" in failed.error
    assert artefacts.os_sha256 in failed.error
    assert _read(machine.disk, 0, mib) == bytes(mib), "a refused image reached the disk"
    phase("refused write")

    good = dataclasses.replace(bad, checksum=artefacts.os_sha256)
    started = client.start_write_image(endpoint, good)
    written = lab.wait_for("the image write", _finished(client, endpoint, started.id), 120,
                           machine)
    assert written.state is agent.CommandState.SUCCEEDED, written.error
    phase("image + config drive write")
    assert (written.image_url, written.image_checksum) == (image_url, artefacts.os_sha256)
    image = artefacts.os_image.read_bytes()
    on_disk = _read(machine.disk, 0, len(image))
    # The image as written, but for the MBR entry of the config drive partition added to it.
    assert on_disk[:462] == image[:462] and on_disk[512:] == image[512:]
    assert hashlib.sha256(image).hexdigest() == artefacts.os_sha256
    image_parts, [(start, sectors)] = _image_partitions(image), _config_partition(machine.disk)
    assert set(image_parts) <= set(_partitions(machine.disk))  # the image's own are kept
    assert (start + sectors) * 512 < 1 << 30
    pvd = _read(machine.disk, start * 512 + 32768, 2048)
    assert pvd[1:6] == b"CD001"
    config_iso = _read(machine.disk, start * 512, struct.unpack_from("<I", pvd, 80)[0] * 2048)
    assert agent_client.read_config_drive(config_iso).meta_data["local-hostname"] == "host-0"

    client.start_power_off(endpoint)
    assert machine.wait_exit(120) == 0
    phase("power off")

    # The VM boots its disk: the tiny OS reads the config drive and reports.
    table.put(dataclasses.replace(table.get(NODE), wait=None))  # type: ignore[arg-type]
    machine.start(boot="c")
    [report] = lab.wait_for("the tiny OS's report", lambda: files.reports[:1], BOOT_S, machine)
    figures["disk boot CPU s"] = round(machine.cpu_s(), 1)
    phase("disk boot to report")
    assert (report["hostname"], report["uuid"], report["mac"]) == ("host-0", NODE, lab.MAC)
    assert f"METALCUBED-OS: hostname=host-0 uuid={NODE}" in machine.console()
    machine.stop()

    # Deprovision: the ramdisk from the deploy ISO (virtual media) with its parameters
    # image, as the engine inserts it; metadata cleaning.
    _booting(table, nodes.Purpose.CLEAN)
    params = machine.workdir / "parameters.img"
    params.write_bytes(bootiso.parameters_image({"ipa-advertise-host": "127.0.0.1",
                                                 "ipa-advertise-port": str(machine.agent_port)}))
    machine.start(cdroms=(artefacts.iso, params), boot="d")
    again = lab.wait_for("the agent's heartbeat from the ISO", lambda: table.agent(NODE),
                         BOOT_S, machine)
    figures["ISO boot CPU s"] = round(machine.cpu_s(), 1)
    phase("ISO boot to heartbeat")
    assert again.token != endpoint.token  # a fresh token for the new boot
    details = client.inventory(again)
    assert details.nics[0].pxe is False  # booted from the CD, not the network
    started = client.start_clean(again)
    cleaned = lab.wait_for("metadata cleaning", _finished(client, again, started.id), 120,
                           machine)
    assert cleaned.state is agent.CommandState.SUCCEEDED, cleaned.error
    phase("metadata cleaning")
    print("ramdisk lifecycle figures:", figures)
    assert _read(machine.disk, 0, mib) == bytes(mib)
    assert _read(machine.disk, (1 << 30) - mib, mib) == bytes(mib)
    assert _read(machine.disk, start * 512, mib) == bytes(mib), "config drive still there"


def test_uefi_a_vm_boots_the_deploy_iso_writes_the_image_and_boots_it(
        artefacts: build.Artefacts, table: lookup.LockedNodeTable, files: Files,
        tmp_path: Path, api: lookup.IronicApi) -> None:
    """The same images on UEFI firmware (OVMF; Metal3's default boot mode): the deploy ISO's
    El Torito EFI image (systemd-boot) and the disk image's EFI partition."""
    api_port = int(api.url.rsplit(":", 1)[1].rstrip("/"))
    machine = lab.Vm(tmp_path, forwards={API_PORT: api_port, FILES_PORT: files.server_address[1]},
                     memory_mib=512, uefi=True)
    try:
        client = agent_client.HttpAgent(timeout_s=60)
        _booting(table, nodes.Purpose.DEPLOY)
        params = machine.workdir / "parameters.img"
        params.write_bytes(bootiso.parameters_image({
            "ipa-advertise-host": "127.0.0.1", "ipa-advertise-port": str(machine.agent_port)}))
        machine.start(cdroms=(artefacts.iso, params), boot="d")
        endpoint = lab.wait_for("the agent's heartbeat (UEFI)", lambda: table.agent(NODE),
                                BOOT_S, machine)
        assert client.inventory(endpoint).ram_mebibytes == 512
        write = agent.ImageWrite(
            url=f"http://{lab.GUEST_HOST}:{FILES_PORT}/files/os.img",
            checksum=f"http://{lab.GUEST_HOST}:{FILES_PORT}/files/os.img.sha256sum",
            config_drive=agent.ConfigDrive(meta_data=configdrive.default_meta_data(NODE, KEY)))
        started = client.start_write_image(endpoint, write)
        written = lab.wait_for("the image write (UEFI)", _finished(client, endpoint, started.id),
                               120, machine)
        assert written.state is agent.CommandState.SUCCEEDED, written.error
        assert len(_config_partition(machine.disk)) == 1
        client.start_power_off(endpoint)
        assert machine.wait_exit(120) == 0

        table.put(dataclasses.replace(table.get(NODE), wait=None))  # type: ignore[arg-type]
        machine.start(boot="c")
        [report] = lab.wait_for("the tiny OS's report (UEFI)", lambda: files.reports[:1],
                                BOOT_S, machine)
        assert (report["hostname"], report["uuid"]) == ("host-0", NODE)
        assert "EFI stub" in machine.console()  # booted through the firmware's EFI loader
    finally:
        machine.stop()
