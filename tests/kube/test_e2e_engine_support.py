"""Harness for the engine end-to-end tests: emulated BMCs in processes of their own, the OS
image, `metalcubed manager --provisioner engine` as a subprocess, and what the hardware saw.

(No tests in this module; test_e2e_engine.py and benchmarks/kube_engine_scale.py use it.)

- `BmcShards`: the devenv BMC shards (simulators/devenv/shard.py: emulated servers behind
  sushy-tools Redfish and pyghmi IPMI BMCs, with their deploy agents) in child processes, with
  one more request on the shard protocol: `disks` answers, per host, what its disk and
  firmware saw (images written, wipes, boots by device, power, virtual media). That is the
  hardware's own record, independent of the manager: "was this host imaged twice" is read
  from the disk, not from the controller's status.
- `EngineManager`: `metalcubed manager --provisioner engine` with the flags a deployment uses
  (agent API and boot server listen and external URLs, DEPLOY_ISO_URL), on fixed ports so a
  restarted manager is found by agents at the same URL.
- `Images`: a loopback HTTP server with the OS image (and its checksum files) and a deploy ISO,
  as a deployment's image httpd serves them.

Every process started here is stopped by PID by whoever started it.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from metalcubed.simulators import hostmodel, imageserver
from metalcubed.simulators.devenv import config as lab_config
from metalcubed.simulators.devenv import image, shard
from tests.kube import test_e2e_support as e2e

REPO = e2e.REPO
DEPLOY_ISO = "ipa.iso"

TIMING = lab_config.HardwareTiming(
    power_on_s=0.3, soft_off_s=0.2, hard_off_s=0.05, agent_boot_s=0.3, heartbeat_s=1.0,
    clean_s=0.1, poll_s=0.5, short_poll_s=0.2, busy_retry_s=0.5,
)
"""The emulated hardware's speed: fast, but every transition still takes real time (a kill
lands between a power on and the boot it causes)."""


# --- the BMC shards ------------------------------------------------------------------------------


def disk_report(one: shard.Shard) -> dict[str, dict[str, Any]]:
    """Per host of `one`: what its disk holds and what its firmware did (see the docstring)."""
    report: dict[str, dict[str, Any]] = {}
    for model in one.models:
        disk = one.agents.disk(model)
        cd = model.media(hostmodel.MediaSlot.CD)
        report[model.name] = {
            "writes": disk.writes,
            "wipes": disk.wipes,
            "os_boots": disk.os_boots,
            "image_url": disk.image_url,
            "checksum": disk.checksum,
            "boots": [b.device.value for b in list(model.boots)],
            "power": model.power.value,
            "media_inserted": cd.inserted,
            "media_url": cd.image_url,
            "agent": one.agents.current(model) is not None,
            # the firmware's own record (servicing): BIOS values and component versions
            "bios": {name: str(value) for name, value in model.bios().items()},
            "firmware": model.firmware(),
        }
    return report


def shard_main() -> int:
    """The child: shard.main's protocol plus `disks` (one JSON line per request)."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    first = sys.stdin.readline()
    if not first:
        return 1
    one = shard.Shard(shard.ShardSpec.from_json(first))
    try:
        info = one.start()
        sys.stdout.write(info.to_json() + "\n")
        sys.stdout.flush()
        for line in sys.stdin:
            request = line.strip()
            if request == "stats":
                answer: object = one.stats()
            elif request == "disks":
                answer = disk_report(one)
            else:
                answer = {"error": f"unknown request {request!r}"}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        one.stop()
    return 0


class ShardChild(shard.ShardProcess):
    """A `shard.ShardProcess` running `shard_main` (this module) instead of shard.main."""

    def launch(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.kube.test_e2e_engine_support"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True,
            bufsize=1, cwd=REPO,
        )
        assert self._proc.stdin is not None
        self._proc.stdin.write(self.spec.to_json() + "\n")
        self._proc.stdin.flush()

    def request(self, what: str, timeout_s: float = 20.0) -> Any:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.poll() is not None:
            raise shard.ShardError("BMC shard process is not running")
        with self._lock:
            proc.stdin.write(what + "\n")
            proc.stdin.flush()
            return json.loads(self._read_line(timeout_s))


@dataclass
class BmcShards:
    """`hosts` emulated servers in `processes` shard processes, agents pointed at `lookup_url`.

    `mix` is devenv's: redfish (virtual media), ipmi, or mixed (redfish-virtualmedia, ipmi,
    redfish over PXE, ipmi, ...).
    """

    hosts: int
    lookup_url: str
    deploy_iso_url: str
    """A prebuilt deploy ISO (DEPLOY_ISO_URL), when the manager is given one."""
    deploy_iso_prefix: str
    """Where the manager's boot server serves per-host deploy ISOs (`<boot url>/boot/`)."""
    log: IO[str] | None
    mix: lab_config.BmcMix = lab_config.BmcMix.MIXED
    processes: int = 2
    prefix: str = "host"
    timing: lab_config.HardwareTiming = TIMING
    username: str = "admin"
    password: str = "password"
    ready_timeout_s: float = 120.0
    children: list[ShardChild] = field(default_factory=list)

    def start(self) -> "BmcShards":
        per = max(1, -(-self.hosts // self.processes))
        config = lab_config.LabConfig(hosts=self.hosts, bmc=self.mix, hosts_per_process=per,
                                      prefix=self.prefix, username=self.username,
                                      password=self.password)
        specs = [
            shard.ShardSpec(hosts=tuple(plans), username=self.username, password=self.password,
                            lookup_url=self.lookup_url, deploy_iso_url=self.deploy_iso_url,
                            deploy_iso_prefix=self.deploy_iso_prefix, timing=self.timing)
            for plans in shard.plan(config)
        ]
        self.children = [ShardChild(spec, log=self.log) for spec in specs]
        try:
            for child in self.children:
                child.launch()
            for child in self.children:
                child.wait_ready(self.ready_timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def infos(self) -> list[shard.HostInfo]:
        return [h for c in self.children if c.info is not None for h in c.info.hosts]

    @property
    def pids(self) -> list[int]:
        return [c.pid for c in self.children if c.pid is not None]

    def disks(self) -> dict[str, dict[str, Any]]:
        """Every host's disk report (see `disk_report`), by host name."""
        report: dict[str, dict[str, Any]] = {}
        for child in self.children:
            report.update(child.request("disks"))
        return report

    def stats(self) -> list[dict[str, Any]]:
        return [child.request("stats") for child in self.children]

    def stop(self) -> None:
        for child in self.children:
            child.stop(timeout_s=10)


# --- images ---------------------------------------------------------------------------------------


@dataclass
class Images:
    """The OS image (raw disk, sha256 checksum) and a deploy ISO on a loopback HTTP server."""

    size_mib: int = 4
    server: imageserver.ImageServer = field(default_factory=imageserver.ImageServer)
    os_url: str = ""
    os_checksum: str = ""
    deploy_iso_url: str = ""
    deploy_kernel_url: str = ""
    deploy_ramdisk_url: str = ""

    def start(self) -> "Images":
        self.server.start()
        data = image.raw_disk(self.size_mib)
        self.os_url = self.server.add(image.NAME, data)
        self.os_checksum = image.sha256(data)
        self.deploy_iso_url = self.server.add(DEPLOY_ISO, b"metalcubed deploy ISO\n" * 2048)
        self.deploy_kernel_url = self.server.add("ipa.kernel", b"deploy kernel\n" * 4096)
        self.deploy_ramdisk_url = self.server.add("ipa.initramfs", b"deploy ramdisk\n" * 8192)
        return self

    def env(self) -> dict[str, str]:
        """What a Metal3 deployment sets for BMO: the deploy kernel and ramdisk (the manager
        builds each virtual-media host's ISO from them; PXE hosts boot them over the network)."""
        return {"DEPLOY_KERNEL_URL": self.deploy_kernel_url,
                "DEPLOY_RAMDISK_URL": self.deploy_ramdisk_url}

    def spec(self) -> dict[str, str]:
        """spec.image as a user writes it."""
        return {"url": self.os_url, "checksum": self.os_checksum, "checksumType": "sha256",
                "format": image.FORMAT}

    def stop(self) -> None:
        self.server.stop()


# --- the manager --------------------------------------------------------------------------------


@dataclass
class EngineManager(e2e.ManagerProcess):
    """`metalcubed manager --provisioner engine`; agent API and boot server on fixed ports.

    `engine_args` are the engine's flags (listen and external URLs); `env` carries upstream's
    environment variables (DEPLOY_ISO_URL, PROVISIONING_LIMIT).
    """

    agent_port: int = field(default_factory=e2e.free_port)
    boot_port: int = field(default_factory=e2e.free_port)

    @property
    def agent_url(self) -> str:
        """Where agents reach the manager's lookup and heartbeat API (Ironic's API URL)."""
        return f"http://127.0.0.1:{self.agent_port}"

    @property
    def boot_url(self) -> str:
        return f"http://127.0.0.1:{self.boot_port}"

    def engine_args(self) -> tuple[str, ...]:
        return (
            "--provisioner", "engine",
            "--agent-api-bind-address", f"127.0.0.1:{self.agent_port}",
            "--agent-api-url", self.agent_url,
            "--boot-server-bind-address", f"127.0.0.1:{self.boot_port}",
            "--boot-server-url", self.boot_url,
        )

    def start(self) -> "EngineManager":
        self.args = (*self.engine_args(), *self.args)
        super().start()
        self.args = self.args[len(self.engine_args()):]
        return self


def missing_engine_mode() -> str | None:
    """Why `metalcubed manager` cannot run the engine yet (None when it can): the e2e tests
    fail with this reason rather than skip."""
    result = subprocess.run(
        [sys.executable, "-m", "metalcubed.cli", "manager", "--help"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )
    text = result.stdout + result.stderr
    if "engine" not in text:
        return ("`metalcubed manager --provisioner engine` does not exist yet (issue 8: the "
                "manager provisions with the engine); `metalcubed manager --help` offers:\n"
                + text[-1500:])
    missing = [flag for flag in _ENGINE_FLAGS if flag not in text]
    if missing:
        return ("`metalcubed manager` has no flag " + ", ".join(missing)
                + " (the agent API and boot server listen and external URLs, engine timings)")
    return None


_ENGINE_FLAGS = ("--agent-api-bind-address", "--agent-api-url", "--boot-server-bind-address",
                 "--boot-server-url", "--engine-poll-seconds", "--engine-short-poll-seconds",
                 "--ramdisk-timeout-seconds")


# --- hosts ---------------------------------------------------------------------------------------


def enroll(api: Any, ns: str, infos: Sequence[shard.HostInfo], *, username: str = "admin",
           password: str = "password") -> None:
    """One Secret and one BareMetalHost per server, as a user applies them."""
    for info in infos:
        e2e.create_secret(api, ns, f"{info.name}-bmc-secret", username, password)
        e2e.hosts_api(api).create_namespaced_custom_object(
            e2e.GROUP, e2e.VERSION, ns, e2e.PLURAL, {
                "apiVersion": f"{e2e.GROUP}/{e2e.VERSION}",
                "kind": "BareMetalHost",
                "metadata": {"name": info.name},
                "spec": {"online": True, "bootMode": "UEFI", "bootMACAddress": info.boot_mac,
                         "bmc": {"address": info.bmc_address,
                                 "credentialsName": f"{info.name}-bmc-secret"}},
            })


def states(api: Any, ns: str) -> dict[str, str]:
    """Every host's provisioning state (error type appended as `state!errorType`)."""
    found = {}
    for host in e2e.list_hosts(api, ns):
        status = host.get("status") or {}
        error = status.get("errorType")
        found[host["metadata"]["name"]] = e2e.state(host) + (f"!{error}" if error else "")
    return found


def wait(predicate: Any, *, timeout_s: float, what: str, interval_s: float = 0.2) -> None:
    e2e.wait_until(predicate, timeout_s=timeout_s, interval_s=interval_s, what=what)


def stop_quietly(*stoppers: Any) -> None:
    for stop in stoppers:
        with contextlib.suppress(Exception):
            stop()


def elapsed(since: float) -> float:
    return round(time.monotonic() - since, 2)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(shard_main())
