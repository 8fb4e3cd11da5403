"""Provisioning and deprovisioning, one observed step per call.

Provision (a disk image), from what the engine sees:

- the node record says this image is deployed: complete;
- no agent: boot the ramdisk, or wait for it (ramdisk.ensure_agent);
- the agent's latest command is not a write of this image: start the write (URL, checksum,
  config drive);
- the write is RUNNING: wait; FAILED (bad checksum, download or disk error): fail with the
  agent's message;
- the write SUCCEEDED: boot override to disk (persistent), eject the ISO, hard reboot, record
  the deployment: complete.

A `live-iso` image is not written: it is inserted into the virtual CD, which the host then
boots every time (persistent override). PXE hosts cannot boot an ISO.

Deprovision (automated cleaning `metadata`): boot the ramdisk (or, with fast track, use an
agent still running), have the agent wipe the disks' metadata, then eject, forget the
deployment and power off. With cleaning disabled it only
ejects, powers off and forgets. A host that is off, has no agent, no deployment and no wait is
already clean (the last deprovision ended that way), so a repeated call completes at once.
"""

from metalcubed.core import agent, bmc, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.provisioning import configdrive, nodes, ramdisk
from metalcubed.core.provisioning.context import Ctx, StepFailed

A = agent.CommandState


def wanted(image: bmh.Image) -> nodes.Deployment:
    return nodes.Deployment(
        image_url=image.url,
        checksum=image.checksum,
        live_iso=image.format == bmh.ImageFormat.LIVE_ISO,
    )


def provision(ctx: Ctx, data: ports.ProvisionData, *, force_reboot: bool) -> ports.ProvisionResult:
    image = data.image
    if image is None or not image.url:
        if data.custom_deploy is not None:
            raise StepFailed(
                f"custom deploy method {data.custom_deploy.method!r} is not supported by the "
                "metalcubed engine"
            )
        raise StepFailed("no image to provision")
    want = wanted(image)
    if ctx.node().deployed == want:
        return ports.ProvisionResult.complete()
    if want.live_iso:
        return _live_iso(ctx, want, data.boot_mode)
    if not image.checksum:
        raise StepFailed(f"image {image.url} has no checksum")
    got = ramdisk.ensure_agent(
        ctx, nodes.Purpose.DEPLOY, boot_mode=data.boot_mode, force_reboot=force_reboot
    )
    if isinstance(got, ramdisk.Booting):
        return got.result
    command = got.status.command
    ours = (
        command is not None
        and command.name == agent.CommandName.WRITE_IMAGE
        and (command.image_url, command.image_checksum) == (image.url, image.checksum)
    )
    if command is None or not ours:
        ctx.agents.start_write_image(got.endpoint, _image_write(ctx, data, image))
        ctx.publish("ProvisioningStarted", f"Writing image {image.url}")
        return ports.ProvisionResult.continuing(ctx.cfg.poll_s)
    if command.state == A.RUNNING:
        return ports.ProvisionResult.continuing(ctx.cfg.poll_s)
    if command.state == A.FAILED:
        raise StepFailed(command.error or "the deploy agent failed to write the image")
    # Written: boot the disk from now on.
    ctx.set_boot(bmc.BootDevice.DISK, bmc.Persistence.PERSISTENT)
    ctx.eject_media()
    ctx.reboot(ports.RebootMode.HARD)
    ctx.set_deployed(want)
    return ports.ProvisionResult.complete()


def _image_write(ctx: Ctx, data: ports.ProvisionData, image: bmh.Image) -> agent.ImageWrite:
    checksum_type = image.checksum_type.value if image.checksum_type else ""
    return agent.ImageWrite(
        url=image.url,
        checksum=image.checksum,
        checksum_type="" if checksum_type == bmh.ChecksumType.AUTO else checksum_type,
        disk_format=image.format.value if image.format else "raw",
        root_device=data.root_device_hints,
        config_drive=configdrive.build(data.host_config, node_id=ctx.node_id, key=ctx.host.key),
    )


def _live_iso(ctx: Ctx, want: nodes.Deployment, boot_mode: bmh.BootMode) -> ports.ProvisionResult:
    if not ctx.virtual_media:
        raise StepFailed(
            f"live-iso images boot from virtual media; BMC scheme "
            f"{ctx.access.address.scheme!r} boots over the network"
        )
    ctx.ensure_media(want.image_url)
    ctx.ensure_boot_mode(boot_mode)
    ctx.set_boot(bmc.BootDevice.CDROM, bmc.Persistence.PERSISTENT)
    ctx.power_cycle_or_on()
    ctx.set_deployed(want)
    return ports.ProvisionResult.complete()


def deprovision(
    ctx: Ctx, *, restart_on_failure: bool, cleaning: bmh.AutomatedCleaningMode
) -> ports.ProvisionResult:
    node = ctx.node()
    if node.wait is not None and node.wait.purpose == nodes.Purpose.TEAR_DOWN:
        return _tear_down(ctx)
    if cleaning == bmh.AutomatedCleaningMode.DISABLED:
        return _start_tear_down(ctx)
    # An agent the engine booted to clean, or (fast track) one still running, e.g. the one
    # that failed an image write.
    cleaning_boot = node.wait is not None and node.wait.purpose == nodes.Purpose.CLEAN
    live = ctx.live_agent(fast_track=not cleaning_boot)
    idle = live is None and node.deployed is None and node.wait is None
    if idle and ctx.power_synced() == bmc.PowerState.OFF:
        return ports.ProvisionResult.complete()  # already clean
    if node.deployed is not None and node.deployed.live_iso:
        # The live ISO is what boots from the CD: take it out before booting the ramdisk.
        ctx.eject_media()
        ctx.set_deployed(None)
    got = (
        ramdisk.AgentUp(*live)
        if live is not None
        else ramdisk.ensure_agent(ctx, nodes.Purpose.CLEAN, boot_mode=bmh.DEFAULT_BOOT_MODE)
    )
    if isinstance(got, ramdisk.Booting):
        return got.result
    command = got.status.command
    cleaning_now = (command is not None and command.name == agent.CommandName.CLEAN_METADATA
                    and command.clean_step in ("", "erase_devices_metadata"))
    if command is None or not cleaning_now or (command.state == A.FAILED and restart_on_failure):
        ctx.agents.start_clean(got.endpoint)
        ctx.publish("CleaningStarted", "Wiping disk metadata")
        return ports.ProvisionResult.continuing(ctx.cfg.poll_s)
    if command.state == A.RUNNING:
        return ports.ProvisionResult.continuing(ctx.cfg.poll_s)
    if command.state == A.FAILED:
        raise StepFailed(f"cleaning failed: {command.error}")
    return _start_tear_down(ctx)


def _start_tear_down(ctx: Ctx) -> ports.ProvisionResult:
    """Eject, forget the deployment and record that the host is being switched off for good."""
    ctx.eject_media()
    ctx.set_deployed(None)
    ctx.wait_for(nodes.Purpose.TEAR_DOWN)
    return _tear_down(ctx)


def _tear_down(ctx: Ctx) -> ports.ProvisionResult:
    """Power off (hard); complete once the host is seen off (the media went at the start).

    The last settled state the engine saw decides whether to switch it off (a power off of a
    host already off is harmless); after the power-off the BMC is read until it is off."""
    state = ctx.power_settled()
    if state == bmc.PowerState.OFF:
        ctx.set_wait(None)
        return ports.ProvisionResult.complete()
    if state != bmc.PowerState.POWERING_OFF:
        ctx.power_off(ports.RebootMode.HARD)
    return ports.ProvisionResult.continuing(ctx.cfg.short_poll_s)
