"""The provisioning engine in the fleet model: core/provisioning over simulated BMCs and agents.

`metalcubed sim` runs metalcubed's own engine (core/provisioning/engine.py), unchanged, the
code `metalcubed manager` runs, over the fleet's physical model. This module supplies the
engine's three ports:

- BMC: `core.bmc` capabilities (power, boot device and mode, virtual media, out-of-band
  inventory; BIOS settings and firmware updates in firmware.py) over a `Machine` behind a
  fleet `Bmc` (bmc.py: answers at once, latency billed to the pass, the one fault model
  `hostmodel.Faults`; link.py holds what the capabilities share). The capabilities retry as a driver
  would (a hung request, or a 5xx or 503 on a read, up to `provisioner.bmc_retries` times,
  each wait charged). What still fails is raised as core's `DriverError` family
  (`hostmodel_bmc.reply_error`: `BmcUnreachable`, `BmcServerError`, `BmcBusy`,
  `BmcRejected(409)`), exactly as the in-process Sim BMCs raise them.
- Agent: `core.agent.Agent` over the machine's ramdisk. When a machine boots into the ramdisk
  its agent looks its node up by MAC in the engine's node table and heartbeats (after
  collecting the inventory when the engine booted it to inspect), then heartbeats again every
  90-180 s while it runs (IPA: its heartbeat timeout of 300 s times 0.3-0.6), which is what
  keeps it usable for fast track; commands (clean, write image) are the machine's agent
  steps, RUNNING until the step's event fires. The write checks the requested checksum
  against the scenario's image and fails like the agent does. Every request charges
  `provisioner.api_latency`. An agent that crashed, or a machine that rebooted, does not
  answer (`AgentUnavailable`).
- Nodes: `core.provisioning.nodes.NodeTable` on the simulated clock.

Effects apply at the instant of the pass (power transitions start then; the machine takes its
profile's time); the worker stays busy for the bill afterwards, as for every other port call.
"""

import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import simpy

from metalcubed.controllers.bmc import unsupported
from metalcubed.core import agent, bmc, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import hardwaredata as hwd
from metalcubed.core.api import meta
from metalcubed.core.provisioning import capacity, context, nodes
from metalcubed.core.provisioning import engine as core_engine
from metalcubed.simulators.fleet import cost, link, scenario
from metalcubed.simulators.fleet import firmware as fleet_firmware
from metalcubed.simulators.fleet.machine import BootDevice, Machine, Stage, StepResult

HARDWARE_TYPE = "fleet"
DEPLOY_ISO_URL = "http://boot.metalcubed.sim/ipa.iso"
"""The deploy ISO virtual-media hosts boot (any inserted ISO boots the ramdisk here)."""

_STEADY = frozenset({bmh.ProvisioningState.AVAILABLE, bmh.ProvisioningState.PROVISIONED,
                     bmh.ProvisioningState.EXTERNALLY_PROVISIONED})

HEARTBEAT_S = (90.0, 180.0)
"""How often a running agent heartbeats: IPA waits its heartbeat timeout (Ironic's
ramdisk_heartbeat_timeout, 300 s) times 0.3 to 0.6 between heartbeats."""


Target = link.Target
"""A host as the fleet's BMC capabilities see it (link.py)."""


class EngineStats:
    """What the engine asked of the fleet: BMC calls by operation, agent calls, outcomes."""

    __slots__ = (
        "agent_calls",
        "bmc_calls",
        "bmc_reboots",
        "checksum_failures",
        "cleans",
        "config_drives",
        "firmware_updates",
        "heartbeats",
        "image_writes",
        "inventories",
        "peak_busy",
        "peak_pxe_busy",
        "power_sync_reads",
        "updates_failed",
    )

    def __init__(self) -> None:
        self.bmc_calls: Counter[str] = Counter()
        self.agent_calls: Counter[str] = Counter()
        self.heartbeats = 0
        self.inventories = 0
        self.cleans = 0
        self.image_writes = 0
        self.config_drives = 0
        self.checksum_failures = 0
        self.peak_busy = 0
        """Most hosts in inspecting, preparing, provisioning or deprovisioning at once."""
        self.peak_pxe_busy = 0
        """... of which boot over the network (what PROVISIONING_LIMIT caps)."""
        self.power_sync_reads = 0
        """Power-state reads of hosts in a steady state: the periodic power sync, which Ironic
        does as well (every sync_power_state_interval per node); the rest are operations'."""
        self.firmware_updates = 0
        """Firmware updates the BMCs accepted (firmware.py), ..."""
        self.updates_failed = 0
        """... of which failed (flash fault, image not served)."""
        self.bmc_reboots = 0
        """BMC restarts: after a BMC update, or a fault during an update."""

    def as_dict(self) -> dict[str, object]:
        return {
            "bmc_calls": dict(sorted(self.bmc_calls.items())),
            "agent_calls": dict(sorted(self.agent_calls.items())),
            "heartbeats": self.heartbeats,
            "inventories": self.inventories,
            "cleans": self.cleans,
            "image_writes": self.image_writes,
            "config_drives": self.config_drives,
            "checksum_failures": self.checksum_failures,
            "peak_busy": self.peak_busy,
            "peak_pxe_busy": self.peak_pxe_busy,
            "power_sync_reads": self.power_sync_reads,
            "firmware_updates": self.firmware_updates,
            "updates_failed": self.updates_failed,
            "bmc_reboots": self.bmc_reboots,
        }


_TO_MACHINE = {
    bmc.BootDevice.PXE: BootDevice.NETWORK,
    bmc.BootDevice.UEFI_HTTP: BootDevice.NETWORK,
    bmc.BootDevice.CDROM: BootDevice.CD,
    bmc.BootDevice.DISK: BootDevice.DISK,
    bmc.BootDevice.NONE: BootDevice.DISK,
}
_FROM_MACHINE = {
    BootDevice.NETWORK: bmc.BootDevice.PXE,
    BootDevice.CD: bmc.BootDevice.CDROM,
    BootDevice.DISK: bmc.BootDevice.DISK,
}


class FleetPower(link.Link):
    def power_state(self, access: bmc.BmcAccess) -> bmc.PowerState:
        if self._t.steady:
            self._fleet.stats.power_sync_reads += 1
        machine = self._call(access, "get_power_state", "get power state")
        if self._settling():
            return bmc.PowerState.POWERING_ON if self._t.pending_on else bmc.PowerState.POWERING_OFF
        return bmc.PowerState.ON if machine.powered else bmc.PowerState.OFF

    def start_power_on(self, access: bmc.BmcAccess) -> None:
        machine = self._call(access, "power_on", "power on")
        if self._settling() and self._t.pending_on:
            return
        if machine.powered and not self._settling():
            return
        self._on()

    def start_power_off(self, access: bmc.BmcAccess, *, mode: ports.RebootMode) -> None:
        machine = self._call(access, "power_off", "power off")
        if self._settling() and not self._t.pending_on:
            return
        if not machine.powered and not self._settling():
            return
        self._off()

    def start_reboot(self, access: bmc.BmcAccess, *, mode: ports.RebootMode) -> None:
        machine = self._call(access, "reboot", "reboot")
        if not machine.powered and not self._settling():
            self._on()
            return
        self._cycle()


class FleetManagement(link.Link):
    def boot_setting(self, access: bmc.BmcAccess) -> bmc.BootSetting:
        self._call(access, "get_boot", "get boot setting")
        target = self._t
        once = target.once
        return bmc.BootSetting(
            device=_FROM_MACHINE[once if once is not None else target.persistent],
            persistence=bmc.Persistence.ONCE if once is not None else bmc.Persistence.PERSISTENT,
            mode=target.boot_mode,
        )

    def set_boot_device(
        self, access: bmc.BmcAccess, device: bmc.BootDevice, *, persistence: bmc.Persistence
    ) -> None:
        machine = self._call(access, "set_boot_device", "set boot device")
        wanted = _TO_MACHINE.get(device)
        if wanted is None:
            raise bmc.BmcRejected(access.display, "set boot device",
                                  f"boot device {device.value} is not supported", status=400)
        target = self._t
        if persistence == bmc.Persistence.ONCE:
            target.once = wanted
        else:
            target.persistent, target.once = wanted, None
        machine.boot_device = wanted

    def set_boot_mode(self, access: bmc.BmcAccess, mode: bmc.BootMode) -> None:
        self._call(access, "set_boot_mode", "set boot mode")
        self._t.boot_mode = mode


class FleetBoot(link.Link):
    def media_state(self, access: bmc.BmcAccess, *, device: bmc.MediaDevice) -> bmc.MediaState:
        machine = self._call(access, "get_media", f"get {device.value} media")
        inserted = device == bmc.MediaDevice.CD and machine.vmedia_inserted
        return bmc.MediaState(device=device, inserted=inserted,
                              image_url=self._t.media_url if inserted else "")

    def insert_media(self, access: bmc.BmcAccess, image_url: str, *,
                     device: bmc.MediaDevice) -> None:
        machine = self._call(access, "insert_media", f"insert {device.value} media")
        if device == bmc.MediaDevice.CD:
            machine.vmedia_inserted = True
            self._t.media_url = image_url

    def eject_media(self, access: bmc.BmcAccess, *, device: bmc.MediaDevice) -> None:
        machine = self._call(access, "eject_media", f"eject {device.value} media")
        if device == bmc.MediaDevice.CD:
            machine.vmedia_inserted = False
            self._t.media_url = ""


class FleetInspect(link.Link):
    def inspect(self, access: bmc.BmcAccess) -> hwd.HardwareDetails:
        return self._call(access, "inspect", "inspect").hardware_details()


@dataclass(slots=True, eq=False)
class _Command:
    generation: int
    status: agent.CommandStatus
    event: simpy.Event


class FleetAgent:
    """`core.agent.Agent` over the machines' ramdisks (endpoint URLs `fleet://<name>/<boot>`)."""

    def __init__(self, fleet: "FleetEngine") -> None:
        self._fleet = fleet
        self._commands: dict[str, _Command] = {}
        self._serial = 0

    def _machine(self, endpoint: agent.AgentEndpoint, operation: str) -> Machine:
        fleet = self._fleet
        fleet.stats.agent_calls[operation] += 1
        meter = fleet.meter
        meter.charge(fleet.settings.api_latency.draw(meter.rng))
        name, _, generation = endpoint.url.removeprefix("fleet://").partition("/")
        machine = fleet.machines.get(name)
        if (
            machine is None
            or str(machine.generation) != generation
            or machine.stage != Stage.RAMDISK
            or machine.agent_crashed
        ):
            raise agent.AgentUnavailable(endpoint.url, operation, "connection timed out")
        return machine

    def _command(self, machine: Machine) -> _Command | None:
        command = self._commands.get(machine.name)
        if command is None or command.generation != machine.generation:
            return None
        return command

    def status(self, endpoint: agent.AgentEndpoint) -> agent.AgentStatus:
        machine = self._machine(endpoint, "get status")
        command = self._command(machine)
        current = None
        if command is not None:
            current = command.status
            if command.event.triggered:
                result = command.event.value
                assert isinstance(result, StepResult)
                state = agent.CommandState.FAILED if result.error else agent.CommandState.SUCCEEDED
                current = _replace_state(current, state, result.error)
        return agent.AgentStatus(boot_id=endpoint.boot_id, version="fleet", command=current)

    def inventory(self, endpoint: agent.AgentEndpoint) -> hwd.HardwareDetails:
        machine = self._machine(endpoint, "get inventory")
        self._fleet.stats.inventories += 1
        return machine.hardware_details()

    def _start(self, endpoint: agent.AgentEndpoint, machine: Machine, name: agent.CommandName,
               event: simpy.Event, image: agent.ImageWrite | None = None) -> agent.CommandStatus:
        self._serial += 1
        status = agent.CommandStatus(
            id=f"cmd-{self._serial}",
            name=name,
            state=agent.CommandState.RUNNING,
            image_url=image.url if image is not None else "",
            image_checksum=image.checksum if image is not None else "",
        )
        self._commands[machine.name] = _Command(machine.generation, status, event)
        return status

    def _idle(self, endpoint: agent.AgentEndpoint, machine: Machine, operation: str) -> None:
        command = self._command(machine)
        if command is not None and not command.event.triggered:
            raise agent.AgentError(endpoint.url, operation, "a command is already running")

    def start_clean(self, endpoint: agent.AgentEndpoint) -> agent.CommandStatus:
        operation = f"start {agent.CommandName.CLEAN_METADATA.value}"
        machine = self._machine(endpoint, operation)
        self._idle(endpoint, machine, operation)
        self._fleet.stats.cleans += 1
        event = machine.clean()
        generation = machine.generation

        def wiped(done: simpy.Event) -> None:
            if machine.generation == generation:
                machine.wipe()

        event.callbacks.append(wiped)
        return self._start(endpoint, machine, agent.CommandName.CLEAN_METADATA, event)

    def start_clean_step(self, endpoint: agent.AgentEndpoint,
                         step: agent.CleanStep) -> agent.CommandStatus:
        """Software RAID is not in the fleet's hardware model: refused, as an agent whose
        hardware manager lacks the step refuses it (no scenario asks for spec.raid)."""
        raise agent.AgentError(endpoint.url, f"start {step.interface}.{step.step}",
                               "software RAID is not modelled in the fleet")

    def start_write_image(self, endpoint: agent.AgentEndpoint,
                          image: agent.ImageWrite) -> agent.CommandStatus:
        operation = f"start {agent.CommandName.WRITE_IMAGE.value}"
        machine = self._machine(endpoint, operation)
        self._idle(endpoint, machine, operation)
        fleet = self._fleet
        fleet.stats.image_writes += 1
        if image.config_drive is not None:
            fleet.stats.config_drives += 1
        served = fleet.images.get(image.url)
        env = fleet.env
        if served is None:
            event = env.event()
            event.succeed(StepResult(error=f"Error downloading image {image.url}: HTTP 404"))
        elif image.checksum != served.checksum:
            # The agent downloads the whole image, then the digest does not match.
            fleet.stats.checksum_failures += 1
            rate = max(machine.profile.disk_write_mbps.draw(fleet.rng), 1.0)
            event = env.timeout(
                served.size_bytes / 1e6 / rate,
                value=StepResult(
                    error=f"Image failed to verify against checksum. location: {image.url}; "
                    f"image checksum: {image.checksum}; verification checksum: {served.checksum}"
                ),
            )
        else:
            event = machine.write_image(url=image.url, size_bytes=served.size_bytes,
                                        image_format=image.disk_format)
        return self._start(endpoint, machine, agent.CommandName.WRITE_IMAGE, event, image)

    def start_power_off(self, endpoint: agent.AgentEndpoint) -> agent.CommandStatus:
        operation = f"start {agent.CommandName.POWER_OFF.value}"
        raise agent.AgentError(endpoint.url, operation, "not offered by the fleet model's agent")

    def start_reboot(self, endpoint: agent.AgentEndpoint) -> agent.CommandStatus:
        operation = f"start {agent.CommandName.REBOOT.value}"
        raise agent.AgentError(endpoint.url, operation, "not offered by the fleet model's agent")


def _replace_state(status: agent.CommandStatus, state: agent.CommandState,
                   error: str) -> agent.CommandStatus:
    return agent.CommandStatus(id=status.id, name=status.name, state=state, error=error,
                               image_url=status.image_url, image_checksum=status.image_checksum)


class FleetEngine:
    """core/provisioning's `Engine` wired over the fleet: the ProvisionerFactory, its node
    table, its agent and BMC adapters, and what they counted."""

    def __init__(
        self,
        env: simpy.Environment,
        *,
        clock: ports.Clock,
        store: ports.Store,
        targets: Mapping[str, Target],
        images: Mapping[str, scenario.Image],
        settings: scenario.ProvisionerSettings,
        provisioning_limit: int,
        meter: cost.Meter,
        rng: random.Random,
        firmware: Mapping[str, scenario.FirmwareImage] | None = None,
    ) -> None:
        self.env = env
        self.targets = dict(targets)
        self.machines = {t.machine.name: t.machine for t in self.targets.values()}
        self.images = {image.url: image for image in images.values()}
        self.firmware = {image.url: image for image in (firmware or {}).values()}
        """The firmware images the scenario serves, by URL (firmware.py)."""
        self.settings = settings
        self.meter = meter
        self.rng = rng
        self.stats = EngineStats()
        self.table = nodes.NodeTable(clock=clock)
        self.agent = FleetAgent(self)
        self._drivers: dict[str, bmc.Driver] = {}
        self._busy: set[meta.ObjectKey] = set()
        self._pxe_busy: set[meta.ObjectKey] = set()
        store.watch(bmh.BareMetalHost, self._host_changed)
        self.engine = core_engine.Engine(
            drivers=self.driver_for,
            agents=self.agent,
            nodes_port=self.table,
            clock=clock,
            busy_hosts=lambda: self._pxe_busy,
            config=context.EngineConfig(
                deploy_iso_url=DEPLOY_ISO_URL,
                provisioning_limit=provisioning_limit,
                poll_s=settings.poll_s,
                short_poll_s=settings.quick_poll_s,
                busy_retry_s=settings.bmc_retry_interval_s,
                ramdisk_timeout_s=settings.ramdisk_timeout_s,
                power_sync_interval_s=settings.power_sync_interval_s,
                fast_track=settings.fast_track,
                fast_track_timeout_s=settings.fast_track_timeout_s,
            ),
        )

    def driver_for(self, access: bmc.BmcAccess) -> bmc.Driver:
        """The engine's `DriverFor`: the fleet capabilities of the machine at this address."""
        address = access.address.address
        driver = self._drivers.get(address)
        if driver is not None:
            return driver
        target = self.targets.get(address)
        if target is None:
            raise bmc.BmcUnreachable(access.display, "connect", "no BMC at this address")
        bios: bmc.Bios
        firmware: bmc.Firmware
        if access.address.type.http_transports:  # the Redfish family: Bios, UpdateService
            bios = fleet_firmware.FleetBios(self, target)
            firmware = fleet_firmware.FleetFirmware(self, target)
        else:  # IPMI has neither, as its real driver
            kind = access.address.type.driver
            bios = unsupported.UnsupportedBios(kind)
            firmware = unsupported.UnsupportedFirmware(kind)
        driver = self._drivers[address] = bmc.Driver(
            hardware_type=HARDWARE_TYPE,
            power=FleetPower(self, target),
            management=FleetManagement(self, target),
            boot=FleetBoot(self, target),
            inspect=FleetInspect(self, target),
            bios=bios,
            firmware=firmware,
            events=unsupported.UnsupportedEvents(HARDWARE_TYPE),
        )
        return driver

    def _host_changed(self, event: ports.WatchEvent[bmh.BareMetalHost]) -> None:
        """Keep the busy hosts from the watch (the informer cache), not a list per call."""
        host = event.object
        key = host.key
        gone = event.type == ports.WatchEventType.DELETED
        state = host.status.provisioning.state
        target = self.targets.get(host.spec.bmc.address)
        if target is not None:
            target.steady = not gone and state in _STEADY
        busy = not gone and state in capacity.BUSY_STATES
        stats = self.stats
        if busy:
            self._busy.add(key)
            if capacity.boots_over_network(host.spec.bmc.address):
                self._pxe_busy.add(key)
        else:
            self._busy.discard(key)
            self._pxe_busy.discard(key)
        stats.peak_busy = max(stats.peak_busy, len(self._busy))
        stats.peak_pxe_busy = max(stats.peak_pxe_busy, len(self._pxe_busy))

    def booted(self, target: Target, generation: int) -> None:
        """A power-on finished: a one-time override is used up; hear the ramdisk's agent."""
        machine = target.machine
        if machine.generation != generation:
            return
        if target.once is not None:
            target.once = None
            machine.boot_device = target.persistent
        machine.agent_ready.callbacks.append(lambda _e: self._agent_up(machine, generation))

    def _agent_up(self, machine: Machine, generation: int) -> None:
        """The agent looks its node up by MAC and heartbeats (inventory collected first when
        the engine booted the ramdisk to inspect, as an inspection ramdisk does)."""
        node_id = self.table.lookup([machine.boot_mac])
        if node_id is None or machine.generation != generation:
            return
        node = self.table.get(node_id)
        if node is not None and node.wait is not None and \
                node.wait.purpose == nodes.Purpose.INSPECT:
            collect = self.env.timeout(machine.profile.inspection.draw(self.rng))
            collect.callbacks.append(lambda _e: self._heartbeat(machine, generation, node_id))
            return
        self._heartbeat(machine, generation, node_id)

    def _heartbeat(self, machine: Machine, generation: int, node_id: str) -> None:
        """Heartbeat now and, while this boot's agent runs, again every HEARTBEAT_S."""
        if machine.generation != generation or machine.agent_crashed:
            return
        if not self.table.heartbeat(node_id, url=f"fleet://{machine.name}/{generation}",
                                    boot_id=f"{machine.name}-{generation}"):
            return  # the node is gone (deleted): the agent looks up again no more
        self.stats.heartbeats += 1
        low, high = HEARTBEAT_S
        again = self.env.timeout(self.rng.uniform(low, high))
        again.callbacks.append(lambda _e: self._heartbeat(machine, generation, node_id))
