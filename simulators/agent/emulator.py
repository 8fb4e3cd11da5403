"""A deploy-agent emulator: many agents in one process, one per host that boots the ramdisk.

It hooks every attached `HostModel`'s boot: when a host boots the deploy ramdisk (over the
network, PXE or UEFI HTTP, or from the virtual CD holding a deploy ISO), a new agent comes up
on it; the host's next boot or power off ends it (an agent is alive while the host is on and
has not booted since). It behaves as Ironic Python Agent 13 does on the wire (docs/agent.md):

- a host booted from a per-host deploy ISO reads its parameters from the ISO
  (`ipa-agent-token`; controllers/bootiso.py), as IPA reads its kernel command line;
- it looks its node up by the host's MACs (`Conductor`: the Ironic API over HTTP, or a node
  table in-process) and takes the agent token the lookup hands out (a "******" answer keeps
  the token it has; with none, the agent locks itself down, as IPA does), then heartbeats
  with its callback URL and token;
- it serves IPA's command API: status (`started_at`, `version`), the commands of this boot,
  and the commands Ironic sends: `poll.get_hardware_info` (IPA's inventory),
  `clean.get_clean_steps` / `clean.execute_clean_step` (`erase_devices_metadata`: the disk's
  partition table is wiped), `standby.prepare_image` (download the image over HTTP, verify
  the md5/sha256/sha512 checksum, which may be a URL of a checksum file, pick the root disk
  from the hints, write the image and the config drive ISO), `standby.power_off` and
  `standby.run_image` (reboot). Every command needs the agent's token (401 otherwise).

The host's disk (what was written, the config drive, wipes) is kept here per host
(`DiskContents`), so tests can check what reached the disk; booting the disk afterwards is
counted as an OS boot.

Transports: `server.AgentServer` serves the agents' API over HTTP on 127.0.0.1 and sets each
agent's URL; without it agents get `inproc://<id>` URLs for `inprocess.InProcessAgent`, which
goes through the same routes (`server.route`). Commands run on a thread each (or inline,
`run=run_inline`, for deterministic in-process use); announcing and heartbeating happen on
one background thread (`start()`), or at boot when no thread runs.
"""

import hashlib
import hmac
import itertools
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from metalcubed.controllers import agent_client, bootiso
from metalcubed.core import agent
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.provisioning import nodes
from metalcubed.simulators import hostmodel

VERSION = "13.0.0-metalcubed-emulator"
CHUNK = 256 * 1024
HIDDEN_TOKEN = "******"
HARDWARE_MANAGER_VERSIONS = {"generic_hardware_manager": "1.2"}
"""What `clean.get_clean_steps` reports and `execute_clean_step` checks (clean_version)."""
CLEAN_STEPS = {
    "deploy": [dict(agent_client.CLEAN_STEP)],
    "raid": [{"step": step, "interface": "raid", "priority": 0, "reboot_requested": False,
              "abortable": False, "requires_ramdisk": True}
             for step in agent_client.RAID_STEPS],
}

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


@dataclass(frozen=True, slots=True)
class Lookup:
    node_id: str
    token: str
    """The token the lookup handed out, "******" when it was handed out before, "" for none."""


class TokenRefused(Exception):
    """The conductor refused a heartbeat's token (HTTP 401)."""


class Conductor(Protocol):
    """Where agents announce themselves (Ironic's lookup and heartbeat API)."""

    def lookup(self, macs: list[str], bmc_address: str) -> Lookup | None: ...

    def heartbeat(self, node_id: str, *, url: str, boot_id: str, token: str) -> bool:
        """False: unknown node (look up again). Raises TokenRefused, or OSError when the
        conductor cannot be reached."""
        ...


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
    software_raid: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Software RAID devices built by `raid.create_configuration`: (level, member disks)."""


class Refused(Exception):
    """An agent API request the agent refuses (HTTP status and message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class StepError(Exception):
    """A command fails with this error (IPA's error type, message and details)."""

    def __init__(self, details: str, *, kind: str = "CommandExecutionError",
                 message: str = "Command execution failed") -> None:
        super().__init__(details)
        self.details = details
        self.kind = kind
        self.message = message

    def document(self) -> dict[str, Any]:
        return {"type": self.kind, "code": 500, "message": self.message,
                "details": self.details}


@dataclass(slots=True)
class Command:
    """One command result, as IPA keeps it (`command_name` without the extension)."""

    id: str
    name: str
    status: str = "RUNNING"
    error: dict[str, Any] | None = None
    result: Any = None
    done: threading.Event = field(default_factory=threading.Event)

    def document(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "command_name": self.name.split(".", 1)[-1],
            "command_status": self.status,
            "command_error": self.error,
            "command_result": self.result,
        }

    def finish(self, status: str, *, result: Any = None,
               error: dict[str, Any] | None = None) -> None:
        self.result, self.error, self.status = result, error, status
        self.done.set()


_started = itertools.count()


@dataclass(slots=True, kw_only=True)
class RunningAgent:
    agent_id: str
    host: hostmodel.HostModel
    bmc_address: str
    boot_index: int
    url: str
    started_at: float
    media_url: str = ""
    """The per-host deploy ISO it booted from ("" for a network boot or a prebuilt ISO)."""
    params_read: bool = False
    token: str = ""
    node_id: str = ""
    next_beat: float = 0.0
    locked_down: bool = False
    """A lookup said "******" and the agent had no token: it stops serving (IPA's lockdown)."""
    refused_heartbeats: int = 0
    commands: list[Command] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def alive(self) -> bool:
        host = self.host
        return (not self.locked_down and host.power is hostmodel.Power.ON
                and len(host.boots) == self.boot_index + 1)

    def latest(self) -> Command | None:
        with self.lock:
            return self.commands[-1] if self.commands else None

    def status_document(self) -> dict[str, Any]:
        return {"started_at": self.started_at, "version": VERSION}


class AgentEmulator:
    def __init__(
        self,
        *,
        conductor: Conductor,
        deploy_iso_urls: Collection[str] = (),
        deploy_iso_prefix: str = "",
        fetch: Fetch = http_fetch,
        run: Run = run_in_thread,
        timing: AgentTiming | None = None,
    ) -> None:
        self.conductor = conductor
        self.deploy_iso_urls = set(deploy_iso_urls)
        self.deploy_iso_prefix = deploy_iso_prefix
        """URLs starting with this are per-host deploy ISOs carrying the agent's parameters
        (EngineServices' boot server)."""
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
        self.refused_heartbeats = 0

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

    def _per_host_iso(self, url: str) -> bool:
        return bool(self.deploy_iso_prefix) and url.startswith(self.deploy_iso_prefix)

    def _on_boot(self, event: hostmodel.BootEvent) -> None:
        host = event.host
        device = event.device
        from_cd = device is hostmodel.BootDevice.CD and (
            event.media_url in self.deploy_iso_urls or self._per_host_iso(event.media_url))
        ramdisk = device in (hostmodel.BootDevice.PXE, hostmodel.BootDevice.UEFI_HTTP) or from_cd
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
                # IPA's started_at is time.time(); a counter keeps two boots apart.
                started_at=round(time.time(), 3) + next(_started) * 1e-6,
                media_url=event.media_url if from_cd and self._per_host_iso(event.media_url)
                else "",
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

    def _read_params(self, running: RunningAgent) -> None:
        """The ISO's kernel parameters, as IPA reads /proc/cmdline (once per boot)."""
        running.params_read = True
        try:
            data = b"".join(self.fetch(running.media_url))
            params = bootiso.read_agent_params(data)
        except (OSError, bootiso.IsoError):
            return  # no parameters: the lookup hands the token out
        running.token = params.get("ipa-agent-token", "")

    def _beat(self, running: RunningAgent) -> None:
        running.next_beat = time.monotonic() + self.timing.heartbeat_s
        try:
            if running.media_url and not running.params_read:
                self._read_params(running)
            if not running.node_id:
                macs = [nic.mac for nic in running.host.inventory.nics]
                found = self.conductor.lookup(macs, running.bmc_address)
                if found is None:
                    return
                if found.token == HIDDEN_TOKEN:
                    if not running.token:
                        running.locked_down = True  # IPA: "This is **FATAL**"
                        return
                elif len(found.token) >= 32:
                    running.token = found.token
                running.node_id = found.node_id
            if not self.conductor.heartbeat(running.node_id, url=running.url,
                                            boot_id=running.agent_id, token=running.token):
                running.node_id = ""  # the conductor forgot the node: look up again
        except TokenRefused:
            running.refused_heartbeats += 1
            with self._lock:
                self.refused_heartbeats += 1
        except OSError:
            return  # the lookup service is down: try again at the next beat

    # --- the agent API ---------------------------------------------------------------------------

    def running(self, agent_id: str) -> RunningAgent:
        with self._lock:
            running = self._agents.get(agent_id)
        if running is None or not running.alive():
            raise Refused(404, f"agent {agent_id} is not running")
        return running

    def _authorized(self, agent_id: str, token: str | None) -> RunningAgent:
        running = self.running(agent_id)
        held = running.token
        if not token or not held or not hmac.compare_digest(held.encode(), token.encode()):
            raise Refused(401, "Token invalid.")
        return running

    def status(self, agent_id: str) -> dict[str, Any]:
        return self.running(agent_id).status_document()

    def commands(self, agent_id: str, token: str | None) -> dict[str, Any]:
        running = self._authorized(agent_id, token)
        with running.lock:
            return {"commands": [c.document() for c in running.commands]}

    def command(self, agent_id: str, command_id: str, token: str | None, *,
                wait: bool = False) -> dict[str, Any]:
        running = self._authorized(agent_id, token)
        with running.lock:
            found = next((c for c in running.commands if c.id == command_id), None)
        if found is None:
            raise Refused(404, f"Command Result with id {command_id} was not found")
        if wait:
            found.done.wait(timeout=60)
        return found.document()

    def inventory(self, agent_id: str) -> dict[str, Any]:
        """IPA's hardware info of the agent's host (what poll.get_hardware_info returns)."""
        running = self.running(agent_id)
        return inventory_document(running.host, running.bmc_address)

    def start_command(self, agent_id: str, name: str, params: dict[str, Any],
                      token: str | None, *, wait: bool = False) -> dict[str, Any]:
        running = self._authorized(agent_id, token)
        extension, _, short = name.partition(".")
        if not short:
            raise Refused(400, "Command name must be of the form <extension>.<name>")
        if extension not in ("clean", "poll", "standby"):
            raise Refused(404, f"Extension with id {extension} was not found")
        job: Callable[[Command], None]
        if name == "poll.get_hardware_info":
            job = lambda c: c.finish(  # noqa: E731
                "SUCCEEDED", result=inventory_document(running.host, running.bmc_address))
            return self._sync(running, name, job)
        if name == "clean.get_clean_steps":
            return self._sync(running, name, lambda c: c.finish("SUCCEEDED", result={
                "clean_steps": CLEAN_STEPS,
                "hardware_manager_version": dict(HARDWARE_MANAGER_VERSIONS)}))
        if name == "clean.execute_clean_step":
            step = params.get("step")
            if not isinstance(step, dict) or "step" not in step:
                raise Refused(400, 'Malformed clean_step, no "step" key: '
                                   f"{step!r}")
            node = params.get("node") if isinstance(params.get("node"), dict) else {}
            job = lambda c: self._clean(running, c, step, params.get("clean_version"),  # noqa: E731
                                        node)
        elif name == "standby.prepare_image":
            try:
                image = agent_client.parse_prepare_image_params(params)
            except ValueError as err:
                raise Refused(400, f"Invalid command parameters: {err}") from err
            image_id = str(params["image_info"]["id"])
            job = lambda c: self._write_image(running, c, image, image_id)  # noqa: E731
        elif name == "standby.power_off":
            job = lambda c: self._going_down(c, lambda: running.host.power_off(hard=False))  # noqa: E731
        elif name == "standby.run_image":
            job = lambda c: self._going_down(c, lambda: running.host.reboot(hard=False))  # noqa: E731
        else:
            raise Refused(400, f"Unknown command: {name}")
        command = self._add(running, name)
        self.run(lambda: self._execute(command, job))
        if wait:
            command.done.wait(timeout=60)
        return command.document()

    def _add(self, running: RunningAgent, name: str) -> Command:
        with running.lock:
            if running.commands and running.commands[-1].status == "RUNNING":
                raise Refused(409, "Agent is busy: executing command "
                                   f"{running.commands[-1].name.split('.', 1)[-1]}")
            command = Command(id=str(uuid.uuid4()), name=name)
            running.commands.append(command)
        return command

    def _sync(self, running: RunningAgent, name: str,
              job: Callable[[Command], None]) -> dict[str, Any]:
        command = self._add(running, name)
        self._execute(command, job)
        return command.document()

    def _execute(self, command: Command, job: Callable[[Command], None]) -> None:
        try:
            job(command)
        except StepError as err:
            command.finish("FAILED", error=err.document())
        except Exception as err:  # a bug must not leave the command RUNNING forever
            command.finish("FAILED", error=StepError(str(err)).document())

    @staticmethod
    def _going_down(command: Command, act: Callable[[], None]) -> None:
        command.finish("SUCCEEDED", result=None)  # the agent reports success, then goes down
        act()

    # --- commands --------------------------------------------------------------------------------

    def _clean(self, running: RunningAgent, command: Command, step: dict[str, Any],
               clean_version: object, node: dict[str, Any] | None = None) -> None:
        if clean_version is not None and clean_version != HARDWARE_MANAGER_VERSIONS:
            command.finish("VERSION_MISMATCH", error={
                "type": "VersionMismatch", "code": 409,
                "message": "Hardware managers version mismatch, reload agent with correct "
                           "version",
                "details": f"Current state is {HARDWARE_MANAGER_VERSIONS}, provided state is "
                           f"{clean_version}"})
            return
        if step.get("interface") == "raid" and step.get("step") in agent_client.RAID_STEPS:
            self._sleep(running, self.timing.clean_s)
            disk = self.disk(running.host)
            if step["step"] == "delete_configuration":
                disk.software_raid = ()
            else:
                disk.software_raid = software_raid(running.host, node or {})
            command.finish("SUCCEEDED", result={"clean_result": None, "clean_step": step})
            return
        if step.get("step") != "erase_devices_metadata":
            raise StepError(f"No HardwareManager found to handle method: {step.get('step')}",
                            kind="HardwareManagerMethodNotFound",
                            message="No HardwareManager found to handle method")
        self._sleep(running, self.timing.clean_s)
        disk = self.disk(running.host)
        disk.image_url = disk.checksum = disk.disk_format = disk.device = ""
        disk.size_bytes = 0
        disk.config_drive = None
        disk.wipes += 1
        command.finish("SUCCEEDED", result={"clean_result": None, "clean_step": step})

    def _sleep(self, running: RunningAgent, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if not running.alive():
                raise StepError("the host rebooted")
            time.sleep(min(0.02, max(0.0, end - time.monotonic())))

    def _write_image(self, running: RunningAgent, command: Command, image: agent.ImageWrite,
                     image_id: str) -> None:
        device = root_device(running.host, image.root_device)
        expected = image.checksum.strip()
        if expected.startswith(("http://", "https://")):
            expected = self._checksum_from_file(expected, image.url)
        algo = (image.checksum_type or "").lower() or detect_algorithm(expected)
        if algo not in ("md5", "sha256", "sha512"):
            raise StepError(f"Unsupported checksum algorithm {algo!r}",
                            kind="ImageChecksumError", message="Error verifying image checksum")
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
            raise StepError(f"Error downloading image {image.url}: {err}",
                            kind="ImageDownloadError", message="Error downloading image") from err
        actual = digest.hexdigest()
        if actual != expected.lower():
            raise StepError(
                f"Image failed to verify against checksum. location: {image.url}; "
                f"image checksum: {expected}; verification checksum: {actual}",
                kind="ImageChecksumError", message="Error verifying image checksum",
            )
        disk = self.disk(running.host)
        disk.image_url, disk.checksum, disk.size_bytes = image.url, image.checksum, size
        disk.disk_format, disk.device = image.disk_format, device
        disk.config_drive = image.config_drive
        disk.writes += 1
        command.finish("SUCCEEDED", result={
            "result": f"prepare_image: image ({image_id}) written to device {device} "
                      "root_uuid=None"})

    def _checksum_from_file(self, checksum_url: str, image_url: str) -> str:
        try:
            text = b"".join(self.fetch(checksum_url)).decode(errors="replace")
        except OSError as err:
            raise StepError(f"Error downloading checksum file {checksum_url}: {err}",
                            kind="ImageDownloadError",
                            message="Error downloading image") from err
        name = image_url.rsplit("/", 1)[-1]
        lines = [line.split() for line in text.splitlines() if line.strip()]
        for parts in lines:
            if len(parts) >= 2 and parts[-1].lstrip("*") == name:
                return parts[0]
        if len(lines) == 1 and lines[0]:
            return lines[0][0]
        raise StepError(f"Checksum file {checksum_url} has no checksum for {name}",
                        kind="ImageChecksumError", message="Error verifying image checksum")


def detect_algorithm(checksum: str) -> str:
    return {32: "md5", 64: "sha256", 128: "sha512"}.get(len(checksum), "unknown")


_RAID_MIN_MEMBERS = {"0": 2, "1": 2, "1+0": 4}
"""IPA's software RAID: at least two member disks (four for RAID-1+0)."""


def software_raid(host: hostmodel.HostModel,
                  node: dict[str, Any]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """IPA's software RAID create_configuration, as the devices it would build: each logical
    disk over the disks its physical_disks hints pick (all disks without hints)."""
    target = node.get("target_raid_config")
    logical = target.get("logical_disks") if isinstance(target, dict) else None
    if not isinstance(logical, list) or not logical:
        raise StepError("No target_raid_config with logical_disks on the node",
                        kind="InvalidParameterValue", message="Invalid parameter value")
    built = []
    for index, volume in enumerate(logical):
        if not isinstance(volume, dict) or volume.get("controller") != "software":
            raise StepError(f"logical disk {index} is not for controller 'software'",
                            kind="SoftwareRAIDError", message="Software RAID failed")
        level = str(volume.get("raid_level"))
        hints = volume.get("physical_disks") or []
        if hints:
            try:
                members = tuple(root_device(host, agent_client.parse_root_hint(h))
                                for h in hints)
            except ValueError as err:
                raise StepError(f"logical disk {index}: {err}", kind="SoftwareRAIDError",
                                message="Software RAID failed") from err
        else:
            members = tuple(d.name for d in host.inventory.disks)
        wanted = _RAID_MIN_MEMBERS.get(level)
        if wanted is None:
            raise StepError(f"RAID level {level} is not supported by software RAID",
                            kind="SoftwareRAIDError", message="Software RAID failed")
        if len(set(members)) < wanted:
            raise StepError(f"Software RAID-{level} needs at least {wanted} different disks, "
                            f"the hints of logical disk {index} found {sorted(set(members))}",
                            kind="SoftwareRAIDError", message="Software RAID failed")
        built.append((level, members))
    return tuple(built)


def root_device(host: hostmodel.HostModel, hints: bmh.RootDeviceHints | None) -> str:
    """The disk the hints pick (the first disk when there are none), as the agent does."""
    disks = host.inventory.disks
    if not disks:
        raise StepError("No disks found on the host", kind="DeviceNotFound",
                        message="Error finding the disk or partition device")
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
                    f"{hints.model_dump(mode='json', exclude_defaults=True)}",
                    kind="DeviceNotFound", message="Error finding the disk or partition device")


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
