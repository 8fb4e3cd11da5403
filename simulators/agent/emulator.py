"""A deploy-agent emulator: many agents in one process, one per host that boots the ramdisk.

It hooks every attached `HostModel`'s boot: when a host boots the deploy ramdisk (over the
network, PXE or UEFI HTTP, or from the virtual CD holding one of the deploy ISO URLs), a new
agent comes up on it, with a fresh boot id; the host's next boot or power off ends it (an agent
is alive while the host is on and has not booted since). Like Ironic Python Agent, it then:

- looks its node up by the host's MACs and its BMC address, and heartbeats with the URL it
  listens on (`Conductor`: the lookup service over HTTP, or a node table in-process);
- serves its status, the latest command, and the host's inventory (IPA's document shape);
- runs one command at a time: `clean.erase_devices_metadata` (the disk's partition table is
  wiped), `standby.write_image` (download the image over HTTP, verify the md5/sha256/sha512
  checksum, which may be a URL of a checksum file, pick the root disk from the hints, write the
  image and the config drive), `standby.power_off` and `standby.reboot`.

The host's disk (what was written, the config drive with user data, wipes) is kept here per
host (`DiskContents`), so tests can check what reached the disk; booting the disk afterwards
is counted as an OS boot.

Transports: `server.AgentServer` serves the agents' API over HTTP on 127.0.0.1 and sets each
agent's URL; without it agents get `inproc://<id>` URLs for `inprocess.InProcessAgent`.
Commands run on a thread each (or inline, `run=run_inline`, for deterministic in-process use);
announcing and heartbeating happen on one background thread (`start()`), or at boot when no
thread runs.
"""

import hashlib
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from metalcubed.controllers import agent_client
from metalcubed.core import agent
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.provisioning import nodes
from metalcubed.simulators import hostmodel

VERSION = "metalcubed-agent-emulator 1.0"
CHUNK = 256 * 1024

Fetch = Callable[[str], Iterable[bytes]]
Run = Callable[[Callable[[], None]], None]


def http_fetch(url: str) -> Iterator[bytes]:
    """Stream `url` (raises OSError on any failure, with the HTTP status)."""
    with urllib.request.urlopen(url, timeout=30) as rsp:
        while True:
            chunk = rsp.read(CHUNK)
            if not chunk:
                return
            yield chunk


def run_in_thread(fn: Callable[[], None]) -> None:
    threading.Thread(target=fn, name="agent-command", daemon=True).start()


def run_inline(fn: Callable[[], None]) -> None:
    fn()


class Conductor(Protocol):
    """Where agents announce themselves (Ironic's lookup and heartbeat API)."""

    def lookup(self, macs: list[str], bmc_address: str) -> str | None: ...

    def heartbeat(self, node_id: str, *, url: str, boot_id: str) -> bool: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentTiming:
    """How long things take on an emulated host (real seconds; zero for fast tests)."""

    boot_s: float = 0.0
    """From the ramdisk boot to the agent's first lookup."""
    heartbeat_s: float = 1.0
    clean_s: float = 0.0
    write_mbps: float | None = None
    """Disk write speed; None writes as fast as the image downloads."""


@dataclass(slots=True)
class DiskContents:
    """What an emulated host's root disk holds."""

    image_url: str = ""
    checksum: str = ""
    size_bytes: int = 0
    disk_format: str = ""
    device: str = ""
    config_drive: agent.ConfigDrive | None = None
    writes: int = 0
    wipes: int = 0
    os_boots: int = 0
    """Boots from this disk with an image on it."""


class Refused(Exception):
    """An agent API request the agent refuses (HTTP status and message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class Command:
    id: str
    name: agent.CommandName
    params: dict[str, str]
    state: agent.CommandState = agent.CommandState.RUNNING
    error: str = ""

    def document(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "command_name": self.name.value,
            "command_status": self.state.value,
            "command_error": self.error or None,
            "command_result": None,
            "command_params": self.params,
        }


class StepError(Exception):
    """A command fails with this message."""


@dataclass(slots=True, kw_only=True)
class RunningAgent:
    agent_id: str
    host: hostmodel.HostModel
    bmc_address: str
    boot_index: int
    url: str
    started_at: float
    node_id: str = ""
    next_beat: float = 0.0
    commands: list[Command] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def alive(self) -> bool:
        host = self.host
        return host.power is hostmodel.Power.ON and len(host.boots) == self.boot_index + 1

    def latest(self) -> Command | None:
        with self.lock:
            return self.commands[-1] if self.commands else None

    def status_document(self) -> dict[str, Any]:
        latest = self.latest()
        return {
            "boot_id": self.agent_id,
            "version": VERSION,
            "node_uuid": self.node_id or None,
            "started_at": self.started_at,
            "command": latest.document() if latest else None,
        }


class AgentEmulator:
    def __init__(
        self,
        *,
        conductor: Conductor,
        deploy_iso_urls: Collection[str] = (),
        fetch: Fetch = http_fetch,
        run: Run = run_in_thread,
        timing: AgentTiming | None = None,
    ) -> None:
        self.conductor = conductor
        self.deploy_iso_urls = set(deploy_iso_urls)
        self.fetch = fetch
        self.run = run
        self.timing = timing or AgentTiming()
        self.url_for: Callable[[str], str] = lambda agent_id: f"inproc://{agent_id}"
        """The callback URL of an agent (the HTTP server sets it to its own address)."""
        self._lock = threading.Lock()
        self._agents: dict[str, RunningAgent] = {}
        self._bmc_addresses: dict[str, str] = {}
        self._disks: dict[str, DiskContents] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ramdisk_boots = 0

    # --- hosts --------------------------------------------------------------------------------

    def attach(self, host: hostmodel.HostModel, *, bmc_address: str) -> None:
        """Emulate the agent of `host`, whose BMC is at `bmc_address` (as in spec.bmc.address)."""
        with self._lock:
            self._bmc_addresses[host.uuid] = nodes.bmc_identity(bmc_address)
            self._disks.setdefault(host.uuid, DiskContents())
        host.on_boot(self._on_boot)

    def disk(self, host: hostmodel.HostModel) -> DiskContents:
        with self._lock:
            return self._disks.setdefault(host.uuid, DiskContents())

    def current(self, host: hostmodel.HostModel) -> RunningAgent | None:
        """The live agent of `host`, if any."""
        with self._lock:
            candidates = [a for a in self._agents.values() if a.host is host]
        return next((a for a in candidates if a.alive()), None)

    def _on_boot(self, event: hostmodel.BootEvent) -> None:
        host = event.host
        device = event.device
        ramdisk = device in (hostmodel.BootDevice.PXE, hostmodel.BootDevice.UEFI_HTTP) or (
            device is hostmodel.BootDevice.CD and event.media_url in self.deploy_iso_urls
        )
        if device is hostmodel.BootDevice.HDD:
            disk = self.disk(host)
            if disk.image_url:
                disk.os_boots += 1
        if not ramdisk:
            return
        agent_id = uuid.uuid4().hex
        now = time.monotonic()
        with self._lock:
            self.ramdisk_boots += 1
            running = RunningAgent(
                agent_id=agent_id,
                host=host,
                bmc_address=self._bmc_addresses.get(host.uuid, ""),
                boot_index=len(host.boots) - 1,
                url=self.url_for(agent_id),
                started_at=now,
                next_beat=now + self.timing.boot_s,
            )
            # Agents of earlier boots of this host are gone.
            for old in [a for a in self._agents.values() if a.host is host]:
                del self._agents[old.agent_id]
            self._agents[agent_id] = running
            inline = self._thread is None and self.timing.boot_s <= 0
        if inline:
            self._beat(running)

    # --- announcing ------------------------------------------------------------------------------

    def start(self) -> None:
        """Announce and heartbeat from a background thread (needed with HTTP conductors)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="agent-heartbeats", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    def _loop(self) -> None:
        tick = min(0.05, self.timing.heartbeat_s)
        while not self._stop.wait(tick):
            self.tick()

    def tick(self) -> None:
        """Announce or heartbeat every live agent that is due; forget dead ones."""
        now = time.monotonic()
        with self._lock:
            agents = list(self._agents.values())
        for running in agents:
            if not running.alive():
                with self._lock:
                    self._agents.pop(running.agent_id, None)
                continue
            if running.next_beat <= now:
                self._beat(running)

    def _beat(self, running: RunningAgent) -> None:
        running.next_beat = time.monotonic() + self.timing.heartbeat_s
        try:
            if not running.node_id:
                macs = [nic.mac for nic in running.host.inventory.nics]
                running.node_id = self.conductor.lookup(macs, running.bmc_address) or ""
            if running.node_id and not self.conductor.heartbeat(
                running.node_id, url=running.url, boot_id=running.agent_id
            ):
                running.node_id = ""  # the conductor forgot the node: look up again
        except OSError:
            return  # the lookup service is down: try again at the next beat

    # --- the agent API ---------------------------------------------------------------------------

    def running(self, agent_id: str) -> RunningAgent:
        with self._lock:
            running = self._agents.get(agent_id)
        if running is None or not running.alive():
            raise Refused(404, f"agent {agent_id} is not running")
        return running

    def status(self, agent_id: str) -> dict[str, Any]:
        return self.running(agent_id).status_document()

    def commands(self, agent_id: str) -> dict[str, Any]:
        running = self.running(agent_id)
        with running.lock:
            return {"commands": [c.document() for c in running.commands]}

    def inventory(self, agent_id: str) -> dict[str, Any]:
        running = self.running(agent_id)
        return {"inventory": inventory_document(running.host, running.bmc_address)}

    def start_command(self, agent_id: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
        running = self.running(agent_id)
        try:
            command_name = agent.CommandName(name)
        except ValueError:
            raise Refused(400, f"unknown command {name!r}") from None
        image: agent.ImageWrite | None = None
        shown: dict[str, str] = {}
        if command_name is agent.CommandName.WRITE_IMAGE:
            try:
                image = agent_client.parse_write_image_params(params)
            except ValueError as err:
                raise Refused(400, f"invalid write_image params: {err}") from err
            shown = {"image_url": image.url, "image_checksum": image.checksum}
        with running.lock:
            if running.commands and running.commands[-1].state is agent.CommandState.RUNNING:
                raise Refused(409, f"command {running.commands[-1].name.value} is running")
            command = Command(id=uuid.uuid4().hex, name=command_name, params=shown)
            running.commands.append(command)

        def job() -> None:
            if image is not None:
                self._write_image(running, image)
            elif command_name is agent.CommandName.CLEAN_METADATA:
                self._clean(running)
            elif command_name is agent.CommandName.POWER_OFF:
                running.host.power_off(hard=False)
            else:
                running.host.reboot(hard=False)

        self.run(lambda: self._execute(running, command, job))
        return command.document()

    def _execute(self, running: RunningAgent, command: Command, job: Callable[[], None]) -> None:
        ends_agent = command.name in (agent.CommandName.POWER_OFF, agent.CommandName.REBOOT)
        if ends_agent:  # the agent reports success before it goes down
            command.state = agent.CommandState.SUCCEEDED
        try:
            job()
        except StepError as err:
            command.error = str(err)
            command.state = agent.CommandState.FAILED
            return
        if not ends_agent:
            command.state = agent.CommandState.SUCCEEDED

    # --- commands --------------------------------------------------------------------------------

    def _clean(self, running: RunningAgent) -> None:
        self._sleep(running, self.timing.clean_s)
        disk = self.disk(running.host)
        disk.image_url = disk.checksum = disk.disk_format = disk.device = ""
        disk.size_bytes = 0
        disk.config_drive = None
        disk.wipes += 1

    def _sleep(self, running: RunningAgent, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if not running.alive():
                raise StepError("the host rebooted")
            time.sleep(min(0.02, max(0.0, end - time.monotonic())))

    def _write_image(self, running: RunningAgent, image: agent.ImageWrite) -> None:
        device = root_device(running.host, image.root_device)
        expected = image.checksum.strip()
        if expected.startswith(("http://", "https://")):
            expected = self._checksum_from_file(expected, image.url)
        algo = (image.checksum_type or "").lower() or detect_algorithm(expected)
        if algo not in ("md5", "sha256", "sha512"):
            raise StepError(f"Unsupported checksum algorithm {algo!r}")
        digest = hashlib.new(algo)
        size = 0
        started = time.monotonic()
        try:
            for chunk in self.fetch(image.url):
                if not running.alive():
                    raise StepError("the host rebooted during the image write")
                digest.update(chunk)
                size += len(chunk)
                if self.timing.write_mbps:
                    ahead = size / (self.timing.write_mbps * 1e6) - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
        except OSError as err:
            raise StepError(f"Error downloading image {image.url}: {err}") from err
        actual = digest.hexdigest()
        if actual != expected.lower():
            raise StepError(
                f"Image failed to verify against checksum. location: {image.url}; "
                f"image checksum: {expected}; verification checksum: {actual}"
            )
        disk = self.disk(running.host)
        disk.image_url, disk.checksum, disk.size_bytes = image.url, image.checksum, size
        disk.disk_format, disk.device = image.disk_format, device
        disk.config_drive = image.config_drive
        disk.writes += 1

    def _checksum_from_file(self, checksum_url: str, image_url: str) -> str:
        try:
            text = b"".join(self.fetch(checksum_url)).decode(errors="replace")
        except OSError as err:
            raise StepError(f"Error downloading checksum file {checksum_url}: {err}") from err
        name = image_url.rsplit("/", 1)[-1]
        lines = [line.split() for line in text.splitlines() if line.strip()]
        for parts in lines:
            if len(parts) >= 2 and parts[-1].lstrip("*") == name:
                return parts[0]
        if len(lines) == 1 and lines[0]:
            return lines[0][0]
        raise StepError(f"Checksum file {checksum_url} has no checksum for {name}")


def detect_algorithm(checksum: str) -> str:
    return {32: "md5", 64: "sha256", 128: "sha512"}.get(len(checksum), "unknown")


def root_device(host: hostmodel.HostModel, hints: bmh.RootDeviceHints | None) -> str:
    """The disk the hints pick (the first disk when there are none), as the agent does."""
    disks = host.inventory.disks
    if not disks:
        raise StepError("No disks found on the host")
    if hints is None:
        return disks[0].name
    for disk in disks:
        if hints.device_name and disk.name != hints.device_name:
            continue
        if hints.serial_number and disk.serial != hints.serial_number:
            continue
        if hints.model and hints.model not in disk.model:
            continue
        if hints.vendor and hints.vendor not in disk.vendor:
            continue
        if hints.min_size_gigabytes and disk.size_bytes < hints.min_size_gigabytes * 10**9:
            continue
        if hints.rotational is not None and disk.rotational != hints.rotational:
            continue
        return disk.name
    raise StepError(f"No suitable device was found for deployment using these hints "
                    f"{hints.model_dump(mode='json', exclude_defaults=True)}")


def inventory_document(host: hostmodel.HostModel, bmc_address: str) -> dict[str, Any]:
    """The host as IPA's inventory describes it."""
    inv = host.inventory
    cpu = inv.processors[0] if inv.processors else None
    pxe = next((nic.mac for nic in inv.nics if nic.pxe), "")
    return {
        "interfaces": [
            {"name": nic.id, "mac_address": nic.mac, "ipv4_address": None, "has_carrier": True,
             "speed_mbps": nic.speed_gbps * 1000, "product": nic.model}
            for nic in inv.nics
        ],
        "cpu": {
            "model_name": cpu.model if cpu else "",
            "frequency": cpu.max_speed_mhz if cpu else 0,
            "count": sum(p.threads for p in inv.processors),
            "architecture": cpu.arch if cpu else "",
            "flags": ["fpu", "sse2", "vmx"] if cpu else [],
        },
        "memory": {"total": inv.ram_mib * 1024 * 1024, "physical_mb": inv.ram_mib},
        "disks": [
            {"name": d.name, "model": d.model, "size": d.size_bytes, "rotational": d.rotational,
             "vendor": d.vendor, "serial": d.serial, "wwn": None, "hctl": None,
             "by_path": None}
            for d in inv.disks
        ],
        "system_vendor": {
            "product_name": inv.model,
            "serial_number": inv.serial,
            "manufacturer": inv.manufacturer,
            "firmware": {"vendor": inv.bios_vendor, "version": host.firmware().get("bios", ""),
                         "build_date": inv.bios_date},
        },
        "boot": {"current_boot_mode": "uefi" if host.boot_mode is hostmodel.BootMode.UEFI
                 else "bios", "pxe_interface": pxe},
        "bmc_address": bmc_address,
        "hostname": host.name,
    }
