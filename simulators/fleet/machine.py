"""The physical life of one simulated server: power, POST, what it boots, the agent, its disk.

This is hardware, not management software: it knows nothing of Ironic states or BareMetalHosts.
Its inventory is a `hostmodel.Inventory`, rendered for inspection by the same function as the
emulated servers' (hostmodel_bmc.inventory_details); its BMC's faults are `hostmodel.Faults`
(fleet/bmc.py). What stays its own is the timing: simpy events drawn from the profile, where
the emulators' `HostModel` runs on the wall clock.
Whoever drives it (the provisioning engine, through the BMC) powers it on or off and sets the
boot device;
the machine then takes its time, drawn from its hardware profile: the chassis power transition,
POST, then either the deploy ramdisk (over PXE/HTTP or from virtual media) up to the agent's
first heartbeat, or the installed OS from disk. The agent then runs steps (inspection, cleaning,
image write) that take profile-drawn durations, or fail (a bad disk), or never finish (the agent
crashed). A machine that hangs in POST never boots anything.

Timing is event-driven: every transition is one scheduled simpy timeout with a callback, never a
tick, so a thousand idle machines cost nothing. A power cycle bumps `generation`, which cancels
whatever the previous boot had scheduled.
"""

import random
from dataclasses import dataclass
from enum import StrEnum

import simpy

from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import hardwaredata as hwd
from metalcubed.simulators import hostmodel, hostmodel_bmc
from metalcubed.simulators.fleet import scenario


class BootDevice(StrEnum):
    NETWORK = "network"
    """PXE or UEFI HTTP: the deploy ramdisk from the provisioning network."""
    CD = "cd"
    """Virtual media: the deploy ISO inserted through the BMC."""
    DISK = "disk"
    """The installed OS."""


class Stage(StrEnum):
    OFF = "off"
    POST = "post"
    HUNG = "hung"
    """Stuck in POST for good (a dead host)."""
    RAMDISK = "ramdisk"
    """The deploy agent is up."""
    OS = "os"
    NOTHING = "nothing to boot"
    """POST finished but the boot device had nothing bootable (no image, no media)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StepResult:
    """How an agent step ended: ok, or failed with the agent's message."""

    error: str = ""


_OK = StepResult()


@dataclass(frozen=True, slots=True, kw_only=True)
class HostFaultPlan:
    """The faults this machine was dealt when the fleet was built (fixed for the run)."""

    hangs_in_post: bool = False
    disk_fails: bool = False
    agent_crash_rate: float = 0.0


class Machine:
    """One server. Mutated only by its own callbacks and by the engine through the BMC."""

    __slots__ = (
        "_details",
        "_env",
        "_rng",
        "agent_crashed",
        "agent_ready",
        "bios",
        "bios_pending",
        "boot_device",
        "boot_mac",
        "boots",
        "disk_image",
        "double_writes",
        "faults",
        "firmware",
        "generation",
        "name",
        "power_changed_at",
        "powered",
        "profile",
        "stage",
        "vmedia_inserted",
        "writes",
        "writing",
    )

    def __init__(
        self,
        env: simpy.Environment,
        *,
        name: str,
        boot_mac: str,
        profile: scenario.HardwareProfile,
        faults: HostFaultPlan,
        rng: random.Random,
    ) -> None:
        self._env = env
        self._rng = rng
        self._details: hwd.HardwareDetails | None = None
        self.name = name
        self.boot_mac = boot_mac
        self.profile = profile
        self.faults = faults
        self.powered = False
        self.power_changed_at = -1e18
        """When the last power transition completed (simulated seconds)."""
        self.stage = Stage.OFF
        self.boot_device = BootDevice.DISK
        self.vmedia_inserted = False
        self.disk_image = ""
        self.generation = 0
        self.agent_ready: simpy.Event = env.event()
        """Succeeds when the deploy agent of the current boot heartbeats; new every power-on."""
        self.agent_crashed = False
        self.writing = 0
        """Image writes in progress (more than one at a time would be a double claim)."""
        self.writes = 0
        self.double_writes = 0
        """Writes started while another was in progress (a machine claimed twice)."""
        self.bios: dict[str, hostmodel.BiosValue] = dict(BIOS_DEFAULTS)
        """Current BIOS attribute values (the emulated server's registry, hostmodel's)."""
        self.bios_pending: dict[str, hostmodel.BiosValue] = {}
        """Staged BIOS changes: the firmware applies them at the next boot (POST)."""
        self.firmware: dict[str, str] = dict(hostmodel.DEFAULT_FIRMWARE)
        """Firmware version per component ("bios", "bmc"): what is really flashed."""
        self.boots = 0
        """Power-ons completed (every one runs POST)."""

    # --- power ---------------------------------------------------------------------------------

    def power_on(self) -> simpy.Event:
        """Start the chassis power-on; the returned event fires when power is on."""
        self.generation += 1
        generation = self.generation
        done = self._env.timeout(self.profile.power_on.draw(self._rng))
        done.callbacks.append(lambda _event: self._powered_on(generation))
        return done

    def power_off(self) -> simpy.Event:
        """Start the chassis power-off; the returned event fires when power is off."""
        self.generation += 1
        generation = self.generation
        self._reset_boot()
        done = self._env.timeout(self.profile.power_off.draw(self._rng))
        done.callbacks.append(lambda _event: self._powered_off(generation))
        return done

    def _reset_boot(self) -> None:
        self.stage = Stage.OFF
        # A fresh event per boot: waiters on the previous boot's agent simply time out.
        self.agent_ready = self._env.event()
        self.agent_crashed = False

    def _powered_off(self, generation: int) -> None:
        if generation != self.generation:
            return
        self.powered = False
        self.power_changed_at = self._env.now

    def _powered_on(self, generation: int) -> None:
        if generation != self.generation:
            return
        self.powered = True
        self.power_changed_at = self._env.now
        self.boots += 1
        self._reset_boot()
        self.stage = Stage.POST
        if self.bios_pending:  # the firmware applies staged settings during POST
            self.bios.update(self.bios_pending)
            self.bios_pending.clear()
        if self.faults.hangs_in_post:
            self.stage = Stage.HUNG
            return
        profile = self.profile
        duration = profile.post.draw(self._rng)
        if self.boot_device == BootDevice.DISK:
            if not self.disk_image:
                self._after(duration, generation, Stage.NOTHING)
                return
            self._after(duration + profile.os_boot.draw(self._rng), generation, Stage.OS)
            return
        if self.boot_device == BootDevice.CD:
            if not self.vmedia_inserted:
                self._after(duration, generation, Stage.NOTHING)
                return
            duration += profile.vmedia_boot.draw(self._rng)
        else:
            duration += profile.pxe_boot.draw(self._rng)
        self._after(duration, generation, Stage.RAMDISK)

    def _after(self, delay: float, generation: int, stage: Stage) -> None:
        event = self._env.timeout(delay)
        event.callbacks.append(lambda _event: self._booted(generation, stage))

    def _booted(self, generation: int, stage: Stage) -> None:
        if generation != self.generation:
            return
        self.stage = stage
        if stage == Stage.RAMDISK:
            self.agent_crashed = self._rng.random() < self.faults.agent_crash_rate
            self.agent_ready.succeed()

    # --- the deploy agent ------------------------------------------------------------------------

    def agent_step(self, duration: float) -> simpy.Event:
        """Run an agent step of `duration`; the event's value is a StepResult.

        A crashed agent never answers (the event never fires); a power cycle also leaves it
        unanswered (the agent is gone).
        """
        event = self._env.event()
        if self.stage != Stage.RAMDISK or self.agent_crashed:
            return event
        generation = self.generation
        timer = self._env.timeout(duration)
        timer.callbacks.append(lambda _t: self._step_done(generation, event, _OK))
        return event

    def _step_done(self, generation: int, event: simpy.Event, result: StepResult) -> None:
        if generation == self.generation and not event.triggered:
            event.succeed(result)

    def inspect(self) -> simpy.Event:
        return self.agent_step(self.profile.inspection.draw(self._rng))

    def clean(self) -> simpy.Event:
        return self.agent_step(self.profile.cleaning.draw(self._rng))

    def write_image(self, *, url: str, size_bytes: int, image_format: str) -> simpy.Event:
        """Stream the image to disk (size / throughput, plus conversion for qcow2)."""
        profile = self.profile
        mbps = max(profile.disk_write_mbps.draw(self._rng), 1.0)
        megabytes = size_bytes / 1e6
        duration = megabytes / mbps
        if image_format == bmh.ImageFormat.QCOW2:
            duration += megabytes / profile.qcow2_convert_mbps
        event = self._env.event()
        if self.stage != Stage.RAMDISK or self.agent_crashed:
            return event
        generation = self.generation
        self.writing += 1
        self.writes += 1
        if self.writing > 1:
            self.double_writes += 1
        if self.faults.disk_fails:
            at = duration * self._rng.uniform(0.05, 0.6)
            result = StepResult(
                error=f"Error writing image to disk: [Errno 5] Input/output error: "
                f"'/dev/sda' after {at * mbps:.0f} MB"
            )
        else:
            at, result = duration, _OK

        def finish(_event: simpy.Event) -> None:
            self.writing -= 1
            if generation == self.generation and not event.triggered:
                if not result.error:
                    self.disk_image = url
                event.succeed(result)

        self._env.timeout(at).callbacks.append(finish)
        return event

    def wipe(self) -> None:
        """Cleaning removed the partition table: nothing bootable on disk any more."""
        self.disk_image = ""

    # --- inventory -------------------------------------------------------------------------------

    def hardware_details(self) -> hwd.HardwareDetails:
        """What inspection reports for this machine (built once), rendered from its
        `hostmodel.Inventory` as the Sim BMCs and the emulators render theirs."""
        if self._details is None:
            self._details = hostmodel_bmc.inventory_details(
                inventory(self.name, self.boot_mac, self.profile), hostname=self.name
            )
        return self._details


BIOS_REGISTRY: dict[str, hostmodel.BiosAttribute] = {
    attr.name: attr for attr in hostmodel.DEFAULT_BIOS_REGISTRY
}
"""Every machine's BIOS attribute registry: the emulated server's (hostmodel), one model."""
BIOS_DEFAULTS: dict[str, hostmodel.BiosValue] = {
    name: attr.default for name, attr in BIOS_REGISTRY.items()
}


def inventory(name: str, boot_mac: str, profile: scenario.HardwareProfile) -> hostmodel.Inventory:
    """A machine of `profile` as a `hostmodel.Inventory`: the emulated server's hardware model,
    sized by the profile (one socket of `cpu_count` threads, one DIMM, one PXE NIC, one SSD)."""
    return hostmodel.Inventory(
        manufacturer=profile.vendor,
        model=profile.model,
        serial=f"SN-{name}",
        processors=(
            hostmodel.Processor(socket="CPU1", model=f"{profile.vendor} CPU",
                                cores=profile.cpu_count, threads=profile.cpu_count,
                                max_speed_mhz=2400),
        ),
        memory=(hostmodel.MemoryModule(id="DIMM1", size_mib=profile.ram_gib * 1024),),
        nics=(hostmodel.Nic(id="eno1", mac=boot_mac, pxe=True, speed_gbps=25),),
        disks=(
            hostmodel.Disk(id="Disk.0", name="/dev/sda", size_bytes=profile.disk_gib * 2**30,
                           type=hostmodel.DiskType.SSD, vendor=profile.vendor,
                           model=f"{profile.vendor} SSD", serial=f"DISK-{name}"),
        ),
    )
