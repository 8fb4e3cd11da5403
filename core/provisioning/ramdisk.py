"""Getting a deploy agent up on a host: boot the ramdisk, then wait for its heartbeat.

Virtual-media hosts boot the deploy ISO from the virtual CD; the others boot over the network
(PXE, modelled by the emulators: a network boot brings the agent up). One step:

1. an agent heartbeats and answers: use it when the engine booted it for this purpose, or,
   with fast track on, when an earlier operation left it running and its last heartbeat is
   younger than `fast_track_timeout_s` (Ironic's fast track: no second ramdisk boot between
   inspection or cleaning and deployment);
2. the node record says the engine booted the ramdisk for this purpose: wait, boot it again if
   the host is off (a host found on was switched off first; BMC reads only until that power
   change settles, not one per poll), and fail once the timeout has passed;
3. otherwise, once no power change is under way, power off a host that is on (step 2 boots
   it once it is off), or boot one that is off: deploy ISO into the CD (virtual media), boot
   mode, one-time boot override, then power on (or, if it turned out to be on after all,
   power it off for step 2); record the wait.

Each part is idempotent; if the BMC refuses part-way (busy, 409), the next call starts over
and repeats only what is still missing.
"""

from dataclasses import dataclass

from metalcubed.core import agent, bmc, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.provisioning import nodes
from metalcubed.core.provisioning.context import Ctx, StepFailed


@dataclass(frozen=True, slots=True)
class AgentUp:
    endpoint: agent.AgentEndpoint
    status: agent.AgentStatus


@dataclass(frozen=True, slots=True)
class Booting:
    result: ports.ProvisionResult
    started: bool
    """This call started the boot (upstream's `started`: annotations may be cleared)."""


def ensure_agent(
    ctx: Ctx, purpose: nodes.Purpose, *, boot_mode: bmh.BootMode, force_reboot: bool = False
) -> AgentUp | Booting:
    wait = ctx.node().wait
    booted_for_this = wait is not None and wait.purpose == purpose
    if not force_reboot:
        live = ctx.live_agent(fast_track=not booted_for_this)
        if live is not None:
            return AgentUp(*live)
    if wait is not None and booted_for_this and not force_reboot:
        waited = ctx.waited_s(wait)
        if waited > ctx.cfg.ramdisk_timeout_s:
            ctx.set_wait(None)
            raise StepFailed(timeout_message(purpose, ctx.node_id))
        # Off (the power-off of a host found on has finished, or it was switched off): boot
        # the ramdisk again. Read only until the engine's own power change has settled: Ironic
        # does not sync a node's power at all while it waits for the agent's call-back.
        if ctx.power_settled() == bmc.PowerState.OFF:
            boot(ctx, boot_mode=boot_mode)
        return Booting(ports.ProvisionResult.continuing(ctx.cfg.poll_s), started=False)
    state = ctx.power_synced()
    if state in _SETTLING:
        # A power change is still under way (e.g. the power-on that followed inspection): a
        # one-time boot override set now would be used up by that boot, and the reboot after
        # it would then boot the disk. Let it settle first.
        return Booting(ports.ProvisionResult.continuing(ctx.cfg.poll_s), started=False)
    if state == bmc.PowerState.ON:
        # Switch it off first (its agent, if any, goes with it); the wait above boots it into
        # the ramdisk once it is off. The boot settings are made then, once, not twice.
        ctx.nodes.forget_agent(ctx.node_id)
        ctx.power_off(ports.RebootMode.HARD)
    else:
        boot(ctx, boot_mode=boot_mode)  # a host found on after all is only switched off
    ctx.wait_for(purpose)
    return Booting(ports.ProvisionResult.continuing(ctx.cfg.poll_s), started=True)


def timeout_message(purpose: nodes.Purpose, node_id: str) -> str:
    """Ironic's last_error when no agent called back in time, per operation (what BMO shows
    as the host's errorMessage, and what users search for)."""
    if purpose == nodes.Purpose.INSPECT:
        return "timeout reached while inspecting the node"
    if purpose == nodes.Purpose.CLEAN:
        return (
            "Timeout reached while cleaning the node. Please check if the ramdisk responsible "
            "for the cleaning is running on the node."
        )
    return f"Timeout reached while waiting for callback for node {node_id}"


_SETTLING = frozenset({bmc.PowerState.POWERING_ON, bmc.PowerState.POWERING_OFF})


def _device(ctx: Ctx) -> bmc.BootDevice:
    return bmc.BootDevice.CDROM if ctx.virtual_media else bmc.BootDevice.PXE


def boot(ctx: Ctx, *, boot_mode: bmh.BootMode) -> bool:
    """Boot the host into the deploy ramdisk once (media, boot mode, override, power).

    The one-time override is set first and the power state read after it: a host seen off
    (or powering on) boots after the override was set, so it boots the ramdisk. A host seen on
    may have booted just before the override was set (a power-on the BMC reported as off, as
    IPMI does), so it is powered off and booted by a later call (the wait is recorded, and a
    host found off while waiting is booted), rather than rebooted into an override that may
    already be used up. Returns whether it booted.
    """
    # The agent now running (if any) goes away: its token and URL are forgotten first, as
    # Ironic wipes them before a power action, so the next agent's lookup gets a fresh token.
    ctx.nodes.forget_agent(ctx.node_id)
    if ctx.virtual_media:
        if not ctx.cfg.deploy_iso_url:
            raise StepFailed(
                f"no deploy ISO configured (DEPLOY_ISO_URL) to boot virtual-media host "
                f"{ctx.access.display}"
            )
        # A `{node_id}` in the URL names the host's own ISO (carrying its agent's parameters).
        ctx.ensure_media(ctx.cfg.deploy_iso_url.replace("{node_id}", ctx.node_id))
    ctx.ensure_boot_mode(boot_mode)
    ctx.set_boot(_device(ctx), bmc.Persistence.ONCE)
    state = ctx.power()
    if state in (bmc.PowerState.OFF, bmc.PowerState.POWERING_OFF):
        ctx.power_on()
        return True
    if state == bmc.PowerState.POWERING_ON:
        return True  # that boot completes after the override was set
    ctx.power_off(ports.RebootMode.HARD)
    return False
