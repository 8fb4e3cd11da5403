"""RAID while preparing: spec.raid hardware volumes through the BMC, as Ironic's RAID clean steps.

Upstream BMO (pkg/provisioner/ironic/raid.go, baremetal-operator 02aa5059e) turns spec.raid into
Ironic's target RAID config and the manual clean steps `delete_configuration` then
`create_configuration`, run by the node's RAID interface (`redfish`, `idrac-redfish`) or, for
software RAID, by the agent. Here the engine does the hardware work itself, level-triggered:

- `check` is upstream's CheckRAIDInterface and the checks of BuildTargetRAIDCfg: hardware
  volumes on a driver whose RAID interface is `no-raid` (IPMI, libvirt) or software and
  hardware volumes together are refused;
- `plan` resolves every wanted volume against the controllers the BMC reports, the way Ironic's
  RAID logic picks: the named controller (else the first that supports the level and has enough
  free drives), the named physical disks (else `numberOfPhysicalDisks`, or the level's minimum,
  of the free drives, of the asked rotational kind), the size (`sizeGibibytes`, 0 or absent =
  the largest). Whatever cannot be met is a `StepFailed` naming the spec field: a level the
  controller lacks, a drive it does not have, too few drives, a repeated volume name;
- `step` makes one BMC change per call until the controllers hold exactly the plan: it deletes a
  volume that is not in the plan (Ironic's delete_configuration: nothing else stays), then
  creates a planned volume that is missing; a volume already matching the plan (same name,
  controller, level and drives) is kept rather than rebuilt (Ironic rebuilds it and loses its
  data for nothing);
- spec.raid set to `hardwareRAIDVolumes: []` deletes every volume; no spec.raid, or no
  hardwareRAIDVolumes key, leaves the volumes alone (upstream: "keep old configuration").

Software RAID (softwareRAIDVolumes) is built by the deploy agent, as Ironic has IPA do it:
`software` boots the ramdisk (or reuses a running agent) and runs the clean steps
`raid.delete_configuration`, `deploy.erase_devices_metadata`, `raid.create_configuration` with
spec.raid as the node's target RAID config (Ironic's logical disks, controller "software",
the physical disks as root-device hint maps); the agent builds the md devices.
"""

from dataclasses import dataclass

from metalcubed.core import agent, bmc, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.provisioning import nodes, ramdisk
from metalcubed.core.provisioning.context import Ctx, StepFailed

GIB = 1024**3
FIELD = "spec.raid.hardwareRAIDVolumes"


@dataclass(frozen=True, slots=True, kw_only=True)
class Planned:
    """A wanted volume resolved to a controller and drives."""

    index: int
    request: bmc.VolumeRequest


def check(raid_interface: str, target: bmh.RAIDConfig) -> None:
    """Upstream CheckRAIDInterface and BuildTargetRAIDCfg's checks (StepFailed)."""
    hardware = target.hardware_raid_volumes or ()
    software = target.software_raid_volumes or ()
    if hardware and software:
        raise StepFailed("spec.raid: hardwareRAIDVolumes and softwareRAIDVolumes can not be "
                         "set at the same time")
    if hardware and raid_interface == "no-raid":
        raise StepFailed(f"{FIELD}: RAID settings are defined, but the node's driver "
                         f"{raid_interface} does not support RAID")
    if software and software[0].level != "1":
        raise StepFailed("spec.raid.softwareRAIDVolumes[0].level: the level in first volume "
                         "of software raid must be RAID1")
    seen: dict[str, int] = {}
    for index, volume in enumerate(hardware):
        if volume.name and volume.name in seen:
            raise StepFailed(f"{FIELD}[{index}].name: the names({volume.name}) of "
                             f"volume[{index}] and volume[{seen[volume.name]}] are repeated")
        if volume.name:
            seen[volume.name] = index


def plan(volumes: tuple[bmh.HardwareRAIDVolume, ...],
         controllers: tuple[bmc.StorageController, ...]) -> tuple[Planned, ...]:
    """Resolve each wanted volume to a controller and free drives (StepFailed naming the field)."""
    if volumes and not controllers:
        raise StepFailed(f"{FIELD}: the BMC reports no RAID controller")
    used: set[tuple[str, str]] = set()
    planned = []
    for index, volume in enumerate(volumes):
        field = f"{FIELD}[{index}]"
        level = bmc.RaidLevel(volume.level)
        candidates = [c for c in controllers if not volume.controller or c.id == volume.controller]
        if not candidates:
            known = ", ".join(c.id for c in controllers)
            raise StepFailed(f"{field}.controller: no RAID controller {volume.controller!r} "
                             f"(the BMC has: {known})")
        problems = []
        for controller in candidates:
            if level not in controller.raid_levels:
                levels = ", ".join(sorted(lv.value for lv in controller.raid_levels))
                problems.append((f"{field}.level", f"RAID level {level.value} is not supported "
                                 f"by controller {controller.id} (it supports {levels})"))
                continue
            try:
                drives = _drives(volume, controller, level, used, field)
            except StepFailed as err:
                problems.append(("", err.message))
                continue
            used.update((controller.id, d) for d in drives)
            size = volume.size_gibibytes * GIB if volume.size_gibibytes else None
            planned.append(Planned(index=index, request=bmc.VolumeRequest(
                name=volume.name or f"volume{index}", level=level, controller=controller.id,
                drives=drives, size_bytes=size)))
            break
        else:
            where, message = problems[0]
            raise StepFailed(f"{where}: {message}" if where else message)
    return tuple(planned)


def _drives(volume: bmh.HardwareRAIDVolume, controller: bmc.StorageController,
            level: bmc.RaidLevel, used: set[tuple[str, str]], field: str) -> tuple[str, ...]:
    by_id = {d.id: d for d in controller.drives}
    if volume.physical_disks:
        for disk in volume.physical_disks:
            if disk not in by_id:
                raise StepFailed(f"{field}.physicalDisks: controller {controller.id} has no "
                                 f"drive {disk!r} (it has: {', '.join(by_id)})")
            if (controller.id, disk) in used:
                raise StepFailed(f"{field}.physicalDisks: drive {disk!r} is already used by "
                                 "another volume")
        chosen = tuple(volume.physical_disks)
    else:
        free = [d for d in controller.drives if (controller.id, d.id) not in used
                and (volume.rotational is None or d.rotational == volume.rotational)]
        count = volume.number_of_physical_disks or bmc.RAID_MIN_DRIVES[level]
        if len(free) < count:
            kind = "" if volume.rotational is None else (
                " rotational" if volume.rotational else " non-rotational")
            raise StepFailed(f"{field}.numberOfPhysicalDisks: RAID level {level.value} needs "
                             f"{count}{kind} drives; controller {controller.id} has "
                             f"{len(free)} free")
        chosen = tuple(d.id for d in free[:count])
    if len(chosen) < bmc.RAID_MIN_DRIVES[level]:
        raise StepFailed(f"{field}.physicalDisks: RAID level {level.value} needs at least "
                         f"{bmc.RAID_MIN_DRIVES[level]} drives, not {len(chosen)}")
    return chosen


def _matches(volume: bmc.Volume, request: bmc.VolumeRequest) -> bool:
    return (volume.name == request.name and volume.controller == request.controller
            and volume.level == request.level and set(volume.drives) == set(request.drives)
            and (request.size_bytes is None or volume.size_bytes == request.size_bytes))


def step(ctx: Ctx, data: ports.PrepareData) -> ports.ProvisionResult | None:
    """One RAID step of preparing: None when the BMC holds what spec.raid asks (or it asks
    nothing). Decided from the BMC's volumes on every call, not from status.provisioning.raid:
    the host controller records spec.raid there as soon as preparing starts, and a manager
    restarted half-way must finish the job."""
    target = data.target_raid_config
    if target is None:
        return None
    raid = ctx.driver.raid
    check(raid.name, target)
    done_by_agent = software(ctx, target, data.actual_raid_config)
    if done_by_agent is not None:
        return done_by_agent
    wanted = target.hardware_raid_volumes
    if wanted is None or (not wanted and raid.name == "no-raid"):
        return None  # hardware volumes not mentioned: left as they are
    planned = plan(wanted, raid.controllers(ctx.access))
    existing = raid.volumes(ctx.access)
    keep = {v.id for v in existing if any(_matches(v, p.request) for p in planned)}
    for volume in existing:
        if volume.id not in keep:
            raid.delete_volume(ctx.access, volume.controller, volume.id)
            ctx.publish("RAIDVolumeDeleted", f"Deleted volume {volume.name or volume.id} on "
                        f"controller {volume.controller}")
            return ports.ProvisionResult.continuing(ctx.cfg.short_poll_s)
    for item in planned:
        if not any(_matches(v, item.request) for v in existing):
            raid.create_volume(ctx.access, item.request)
            ctx.publish("RAIDVolumeCreated", f"Created RAID-{item.request.level.value} volume "
                        f"{item.request.name} on controller {item.request.controller}")
            return ports.ProvisionResult.continuing(ctx.cfg.short_poll_s)
    return None


# --- software RAID: the deploy agent's clean steps ----------------------------------------------

SOFTWARE_STEPS = (
    agent.CleanStep(interface="raid", step="delete_configuration"),
    agent.CleanStep(interface="deploy", step="erase_devices_metadata"),
    agent.CleanStep(interface="raid", step="create_configuration"),
)
"""Upstream BuildRAIDCleanSteps for software RAID, in order (the last only when volumes are
wanted: an empty softwareRAIDVolumes only removes the old ones)."""


def software(ctx: Ctx, target: bmh.RAIDConfig,
             actual: bmh.RAIDConfig | None) -> ports.ProvisionResult | None:
    """One step of software RAID by the agent; None when there is nothing (more) to do.

    Started when spec.raid's software volumes differ from what status says was applied (or
    old software volumes are to go); from then on the node record's wait (purpose RAID) says a
    job is under way, since the host controller records spec.raid as applied as soon as
    preparing starts. The job boots the ramdisk (or reuses a running agent), then runs the
    steps one after the other, each started once the agent reports the previous one
    SUCCEEDED; a FAILED step fails preparing with the agent's error.
    """
    node = ctx.nodes.get(ctx.node_id)  # None: not registered, so no job of ours either
    running = node is not None and node.wait is not None and node.wait.purpose == nodes.Purpose.RAID
    volumes = target.software_raid_volumes
    if not running:
        applied = actual.software_raid_volumes if actual is not None else None
        if volumes is None or volumes == applied or (not volumes and not applied):
            return None
    steps = SOFTWARE_STEPS if volumes else SOFTWARE_STEPS[:2]
    got = ramdisk.ensure_agent(ctx, nodes.Purpose.RAID, boot_mode=bmh.DEFAULT_BOOT_MODE)
    if isinstance(got, ramdisk.Booting):
        return got.result
    if not running:
        ctx.wait_for(nodes.Purpose.RAID)  # an agent left running (fast track): ours now
        return _start(ctx, got.endpoint, steps[0], target)
    command = got.status.command
    names = [s.step for s in steps]
    ours = (command is not None and command.name == agent.CommandName.CLEAN_METADATA
            and command.clean_step in names)
    if command is None or not ours:
        return _start(ctx, got.endpoint, steps[0], target)
    if command.state == agent.CommandState.RUNNING:
        return ports.ProvisionResult.continuing(ctx.cfg.poll_s)
    if command.state == agent.CommandState.FAILED:
        ctx.set_wait(None)
        raise StepFailed(f"spec.raid.softwareRAIDVolumes: software RAID step "
                         f"{command.clean_step} failed: {command.error}")
    index = names.index(command.clean_step)
    if index + 1 < len(steps):
        return _start(ctx, got.endpoint, steps[index + 1], target)
    ctx.set_wait(None)  # built; the agent keeps running for the next operation (fast track)
    ctx.publish("SoftwareRAIDCreated" if volumes else "SoftwareRAIDDeleted",
                f"Software RAID {'built' if volumes else 'removed'} by the deploy agent")
    return None


def _start(ctx: Ctx, endpoint: agent.AgentEndpoint, step: agent.CleanStep,
           target: bmh.RAIDConfig) -> ports.ProvisionResult:
    ctx.agents.start_clean_step(endpoint, agent.CleanStep(
        interface=step.interface, step=step.step,
        target_raid_config=target if step.step == "create_configuration" else None))
    ctx.publish("CleaningStarted", f"Software RAID: {step.interface}.{step.step}")
    return ports.ProvisionResult.continuing(ctx.cfg.poll_s)
