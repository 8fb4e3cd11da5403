"""What one engine step works with: the host, its BMC, its agent, its node record, the settings.

A `Ctx` is built per provisioner (one per reconcile, as upstream builds one per pass) and
dropped afterwards: it caches nothing across calls. Its helpers wrap the BMC capabilities the
engine uses with the checks that make a step idempotent (insert media only when another image
is in, set the boot mode only when it differs, power on only when off), and translate the
outcomes that are not failures:

- BMC busy (503, session cap) and 409 Conflict (a BMC settling after a power change) slow a
  host down: the step reports `continuing` with the BMC's Retry-After (or the configured
  delay) and the host keeps its state and shows no error;
- 5xx: a TransientError, retried with the runtime's backoff (and counted as a reconcile error);
- anything else (authentication, unreachable after the driver's bounded retries, a malformed
  answer, an unsupported capability, a refused request): a failure whose message names the BMC
  address and the operation, recorded on the host by the reconciler.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from metalcubed.core import agent, bmc, outcome, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import firmwareschema
from metalcubed.core.provisioning import nodes, powersync


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """Engine settings (upstream's ironic provisioner env vars and Ironic's timeouts)."""

    deploy_iso_url: str = ""
    """DEPLOY_ISO_URL: the ramdisk ISO virtual-media hosts boot (PXE hosts boot over the
    network). Required for virtual-media hosts."""
    provisioning_limit: int = 20
    """PROVISIONING_LIMIT: hosts busy at once on PXE boot interfaces (bmo.md 6.1)."""
    poll_s: float = 10.0
    """Polling delay for long operations: ramdisk boot, inspection, cleaning, image write."""
    short_poll_s: float = 3.0
    """Polling delay for quick ones: power, media, BIOS staging."""
    busy_retry_s: float = 5.0
    """Delay after a busy BMC or a 409 that gave no Retry-After."""
    ramdisk_timeout_s: float = 1800.0
    """How long to wait for the agent after booting the ramdisk (Ironic's inspect, deploy and
    clean wait timeouts)."""
    soft_power_off_timeout_s: float = 180.0
    """After this, a soft power off has failed and the reconciler retries it hard."""
    bios_reboot_timeout_s: float = 900.0
    """How long staged BIOS settings may take to show up as current after the reboot."""
    firmware_job_timeout_s: float = 7200.0
    """How long a firmware job (BIOS settings and updates, while preparing or servicing) may
    take; past it an unreachable BMC fails the job instead of being waited for (a BMC reboots
    after its own update, and may reboot during another)."""
    bios_registry_cache_s: float = 3600.0
    """How long a host's BIOS attribute registry read from the BMC is reused (Ironic keeps it
    in its database; the HostFirmwareSettings controller asks for it every few minutes). A
    firmware job drops it: an update may bring a new registry."""
    power_sync_interval_s: float = 60.0
    """Ironic's sync_power_state_interval: the power state the reconciler polls is read from
    the BMC at most this often per host; in between the last read answers (powersync.py)."""
    fast_track: bool = True
    """Keep the deploy agent running after inspection, and reuse a running agent for the next
    operation instead of booting the ramdisk again (Ironic's [deploy]fast_track, which
    Metal3's ironic-image enables by default)."""
    fast_track_timeout_s: float = 300.0
    """Ironic's [deploy]fast_track_timeout: an agent whose last heartbeat is older than this
    is not reused by an operation that did not boot it."""


class StepFailed(outcome.MetalcubedError):
    """Ends a step with `ProvisionResult.failed(message)`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StepWaits(outcome.MetalcubedError):
    """Ends a step with `ProvisionResult.continuing(delay_s)` (a slow or busy BMC)."""

    def __init__(self, delay_s: float, reason: str) -> None:
        super().__init__(reason)
        self.delay_s = delay_s


def guarded(step: Callable[[], ports.ProvisionResult], cfg: EngineConfig) -> ports.ProvisionResult:
    """Run `step`, turning BMC and agent errors into results (see the module docstring)."""
    try:
        return step()
    except StepFailed as err:
        return ports.ProvisionResult.failed(err.message)
    except StepWaits as err:
        return ports.ProvisionResult.continuing(err.delay_s)
    except bmc.DriverError as err:
        return driver_error(err, cfg)
    except agent.AgentError as err:
        return ports.ProvisionResult.failed(str(err))


def driver_error(err: bmc.DriverError, cfg: EngineConfig) -> ports.ProvisionResult:
    if isinstance(err, bmc.BmcBusy):
        return ports.ProvisionResult.continuing(err.retry_after_s or cfg.busy_retry_s)
    if isinstance(err, bmc.BmcRejected) and err.status == 409:
        return ports.ProvisionResult.continuing(cfg.busy_retry_s)
    if isinstance(err, bmc.BmcServerError):
        raise outcome.TransientError(str(err), retry_after_s=cfg.busy_retry_s) from err
    return ports.ProvisionResult.failed(str(err))


_BOOT_MODES = {
    bmh.BootMode.UEFI: bmc.BootMode.UEFI,
    bmh.BootMode.UEFI_SECURE_BOOT: bmc.BootMode.UEFI,
    bmh.BootMode.LEGACY: bmc.BootMode.LEGACY,
}


@dataclass(slots=True)
class FirmwareReads:
    """What the engine last read of a host's firmware, served to the HostFirmwareSettings and
    HostFirmwareComponents controllers' periodic passes (as Ironic serves them from its
    database); dropped whenever the host's firmware job changes (firmware.forget_reads)."""

    settings: dict[str, str] | None = None
    components: tuple[bmc.FirmwareComponent, ...] | None = None


class Ctx:
    """One provisioner's view: host data, BMC driver and access, agents, node record, clock."""

    def __init__(
        self,
        *,
        host: ports.HostData,
        node_id: str,
        access: bmc.BmcAccess,
        driver: bmc.Driver,
        agents: agent.Agent,
        nodes_port: nodes.Nodes,
        clock: ports.Clock,
        cfg: EngineConfig,
        publish: Callable[[str, str], None],
        power_sync: powersync.PowerSync | None = None,
        registries: "dict[str, tuple[datetime, Mapping[str, bmc.BiosAttributeSchema]]] | None"
        = None,
        schemas: "dict[str, tuple[object, Mapping[str, firmwareschema.SettingSchema]]] | None"
        = None,
        reads: dict[str, FirmwareReads] | None = None,
    ) -> None:
        self.host = host
        self.node_id = node_id
        self.access = access
        self.driver = driver
        self.agents = agents
        self.nodes = nodes_port
        self.clock = clock
        self.cfg = cfg
        self.publish = publish
        self.power_sync = power_sync or powersync.PowerSync(interval_s=cfg.power_sync_interval_s)
        self.registries = registries if registries is not None else {}
        """BIOS registries read per node id, with when (shared by the engine's provisioners)."""
        self.schemas = schemas if schemas is not None else {}
        """Per node id, a registry and its FirmwareSchema entries (converted once)."""
        self.reads = reads if reads is not None else {}
        """Per node id, the BIOS settings and firmware inventory last read (FirmwareReads)."""
        self.virtual_media = access.address.type.supports_iso_preprovisioning_image
        """The ramdisk boots from the virtual CD (else over the network, PXE)."""

    # --- the node record ---------------------------------------------------------------------

    def node(self) -> nodes.Node:
        """The host's record. Registration (every reconcile) creates it, so it exists."""
        node = self.nodes.get(self.node_id)
        if node is None:
            raise outcome.TransientError(f"node {self.node_id} is not registered yet")
        return node

    def set_wait(self, wait: nodes.Wait | None) -> None:
        node = self.node()
        if node.wait != wait:
            self.nodes.put(replace(node, wait=wait))

    def wait_for(self, purpose: nodes.Purpose) -> None:
        """Record that the engine now waits on the hardware for `purpose`."""
        self.set_wait(nodes.Wait(purpose=purpose, since=self.now()))

    def set_deployed(self, deployed: nodes.Deployment | None) -> None:
        """Record what the host runs, and end any wait (the operation is over)."""
        node = self.node()
        if node.deployed != deployed or node.wait is not None:
            self.nodes.put(replace(node, deployed=deployed, wait=None))

    def now(self) -> datetime:
        return self.clock.now()

    def waited_s(self, wait: nodes.Wait) -> float:
        return (self.now() - wait.since).total_seconds()

    # --- BMC --------------------------------------------------------------------------------------

    def power(self) -> bmc.PowerState:
        """Read the power state from the BMC now (and record it for `power_synced`)."""
        state = self.driver.power.power_state(self.access)
        self.power_sync.record(self.node_id, state, self.now())
        return state

    def power_synced(self) -> bmc.PowerState:
        """The power state as Ironic's periodic sync knows it: the last read while younger
        than `power_sync_interval_s`, else a BMC read."""
        known = self.power_sync.fresh(self.node_id, self.now())
        return known if known is not None else self.power()

    def power_settled(self) -> bmc.PowerState:
        """The last settled power state the engine saw, however old; a BMC read only while
        none is known (after the engine's own power change, or a restart). For wait states,
        which Ironic's periodic sync skips."""
        known = self.power_sync.last(self.node_id)
        return known if known is not None else self.power()

    def power_on(self) -> None:
        self.power_sync.expect(self.node_id, bmc.PowerState.ON, self.now())
        self.driver.power.start_power_on(self.access)

    def power_off(self, mode: ports.RebootMode) -> None:
        self.power_sync.expect(self.node_id, bmc.PowerState.OFF, self.now())
        self.driver.power.start_power_off(self.access, mode=mode)

    def reboot(self, mode: ports.RebootMode) -> None:
        self.power_sync.expect(self.node_id, bmc.PowerState.ON, self.now())
        self.driver.power.start_reboot(self.access, mode=mode)

    def power_cycle_or_on(self) -> None:
        """Boot the host: power on when it is off, else a hard reboot."""
        state = self.power()
        if state in (bmc.PowerState.OFF, bmc.PowerState.POWERING_OFF):
            self.power_on()
        else:
            self.reboot(ports.RebootMode.HARD)

    def set_boot(self, device: bmc.BootDevice, persistence: bmc.Persistence) -> None:
        self.driver.management.set_boot_device(self.access, device, persistence=persistence)

    def ensure_boot_mode(self, mode: bmh.BootMode) -> None:
        """Switch the firmware boot mode when the BMC reports a different one."""
        wanted = _BOOT_MODES[mode]
        current = self.driver.management.boot_setting(self.access).mode
        if current is not None and current != wanted:
            self.driver.management.set_boot_mode(self.access, wanted)

    def ensure_media(self, url: str) -> None:
        """Have the virtual CD hold `url` (ejecting another image first)."""
        state = self.driver.boot.media_state(self.access, device=bmc.MediaDevice.CD)
        if state.inserted and state.image_url == url:
            return
        if state.inserted:
            self.driver.boot.eject_media(self.access, device=bmc.MediaDevice.CD)
        self.driver.boot.insert_media(self.access, url, device=bmc.MediaDevice.CD)

    def eject_media(self) -> None:
        """Empty the virtual CD (virtual-media hosts only; a no-op elsewhere)."""
        if not self.virtual_media:
            return
        state = self.driver.boot.media_state(self.access, device=bmc.MediaDevice.CD)
        if state.inserted:
            self.driver.boot.eject_media(self.access, device=bmc.MediaDevice.CD)

    # --- the agent --------------------------------------------------------------------------------

    def live_agent(
        self, *, fast_track: bool = False
    ) -> tuple[agent.AgentEndpoint, agent.AgentStatus] | None:
        """The host's agent and its status, when one heartbeats and answers.

        `fast_track`: the caller did not boot this agent and would reuse one left running by
        an earlier operation; that needs fast track on and a heartbeat younger than
        `fast_track_timeout_s` (Ironic's fast-track check).
        """
        endpoint = self.nodes.agent(self.node_id)
        if endpoint is None:
            return None
        if fast_track and (
            not self.cfg.fast_track
            or (self.now() - endpoint.heartbeat_at).total_seconds() > self.cfg.fast_track_timeout_s
        ):
            return None
        try:
            return endpoint, self.agents.status(endpoint)
        except agent.AgentUnavailable:
            return None
