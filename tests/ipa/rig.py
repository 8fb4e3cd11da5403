"""The stock-IPA tests' rig: the manager's engine services, and IPA processes on loopback.

`World` holds EngineServices (the Ironic v1 agent API, the boot server and the engine over
simulated BMCs), an image server, and the IPA processes it started; `start_ipa` runs the stock
agent with given kernel parameters (as read from a deploy ISO), the test's hardware manager
(tests/ipa/hwm) describing a host whose disk is a file, and the block-device stand-ins of
blockshim.py first on its PATH. Power commands run the stand-ins too: `poweroff` and `reboot`
record themselves beside the disk and end that IPA process (nothing real is powered off).
"""

import dataclasses
import json
import os
import pathlib
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable

import pytest

from metalcubed.controllers import bootiso, engine_services
from metalcubed.core import ports
from metalcubed.core.api import meta
from metalcubed.simulators import hostmodel_bmc, imageserver

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
        for tool in ("lsblk", "partprobe", "blockdev", "udevadm", "sgdisk", "mount", "umount",
                     "poweroff", "reboot"):
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


