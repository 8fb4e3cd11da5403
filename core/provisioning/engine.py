"""The provisioning engine: upstream's Provisioner port over the BMC and Agent ports.

BMO hands hardware work to Ironic; metalcubed does it itself, as pure logic (DESIGN, "The
provisioning engine"). Every Provisioner call is one idempotent step decided from what the
engine observes now (DESIGN rule 5): the BMC's power state, boot override and virtual media,
the deploy agent's heartbeat and latest command, and the small node record (nodes.py) of facts
hardware cannot report. A provisioner is built per reconcile and keeps nothing between calls.

What each call does (Ironic's equivalent in bmo.md 11):

- register: validate the address and driver (no I/O); when the node is new, its credentials
  changed or registration failed before, read the power state to prove access and record the
  node (Ironic's enroll and manage);
- inspect_hardware: `fast` reads the BMC's out-of-band inventory; otherwise boot the ramdisk
  and read the agent's inventory; with fast track (the default, as Metal3's Ironic) the agent
  keeps running for the next operation, else the host is powered off;
- prepare: stage BIOS settings, reboot to apply them, check they stuck, then flash firmware
  updates (manual cleaning; a job in the node record, firmware.py);
- service: the same job on a provisioned host (Ironic's servicing), aborted when the user
  removes the firmware spec after a failure;
- get_firmware_settings / get_firmware_components: the BIOS settings and registry, the firmware
  inventory (HostFirmwareSettings, FirmwareSchema, HostFirmwareComponents);
- provision / deprovision: deploy.py (ramdisk, image write with checksum and config drive,
  boot from disk; `live-iso` boots the ISO; metadata cleaning, power off);
- adopt: record the host as deployed without touching it (a no-op while deprovisioning);
- power_on / power_off: soft, then hard (a soft power off that times out fails, and the
  reconciler retries it hard);
- update_hardware_state: the power state as Ironic's periodic sync knows it: read from the
  BMC at most once per `power_sync_interval_s` (60 s), the last read in between (powersync.py);
- detach / delete: forget the node record (the host is left as it is);
- has_capacity: always for virtual media, else fewer busy PXE hosts than PROVISIONING_LIMIT.

Restart-safety: the only memory is the injected `Nodes` port (and the hardware itself); the
power-state cache costs one BMC read per host when lost.
Concurrency: one provisioner per host per reconcile (the workqueue serialises a host).
"""

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from metalcubed.core import agent, bmc, outcome, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import firmwareschema, meta
from metalcubed.core.api import hardwaredata as hwd
from metalcubed.core.api import hostfirmwarecomponents as hfc
from metalcubed.core.provisioning import (
    bmcevents,
    dataimage,
    deploy,
    firmware,
    nodes,
    powersync,
    raid,
    ramdisk,
)
from metalcubed.core.provisioning.context import (
    Ctx,
    EngineConfig,
    FirmwareReads,
    StepFailed,
    guarded,
)

DriverFor = Callable[[bmc.BmcAccess], bmc.Driver]
"""Picks the capability implementations for a BMC (e.g. `HardwareType.compose()` of the
hardware type its scheme names). Raises SpecError for an address no driver serves."""

BusyHosts = Callable[[], Collection[meta.ObjectKey]]
"""The hosts busy on a PXE boot interface now (see capacity.py)."""

_RESOLVED_MAX = 65_536
"""Parsed BMC accesses kept (one per host and credentials); the cache starts over past this."""


@dataclass(frozen=True, slots=True)
class _Resolved:
    """A host's BMC address parsed, its driver composed and validated (no I/O in any of it)."""

    access: bmc.BmcAccess
    driver: bmc.Driver
    identity: str
    """`nodes.bmc_identity` of the address."""


_RAID_DONE = ports.ProvisionResult()
"""raid.step had nothing (more) to do (a distinct instance: compared by identity)."""

_POWERED_ON = {bmc.PowerState.ON: True, bmc.PowerState.OFF: False}
"""status.poweredOn for a settled power state (None: changing or unknown)."""


class Engine:
    """The engine's ProvisionerFactory: shared ports and settings, one provisioner per pass."""

    def __init__(
        self,
        *,
        drivers: DriverFor,
        agents: agent.Agent,
        nodes_port: nodes.Nodes,
        clock: ports.Clock,
        busy_hosts: BusyHosts | None = None,
        config: EngineConfig | None = None,
    ) -> None:
        self._drivers = drivers
        self._agents = agents
        self._nodes = nodes_port
        self._clock = clock
        self._busy_hosts = busy_hosts
        self.config = config or EngineConfig()
        self.power_sync = powersync.PowerSync(interval_s=self.config.power_sync_interval_s)
        self.registries: dict[str, tuple[datetime, Mapping[str, bmc.BiosAttributeSchema]]] = {}
        """BIOS attribute registries per node id (firmware.registry: reused for a while)."""
        self.schemas: dict[str, tuple[object, Mapping[str, firmwareschema.SettingSchema]]] = {}
        """Per node id, a registry and its FirmwareSchema entries (firmware.read_settings)."""
        self.reads: dict[str, FirmwareReads] = {}
        """Per node id, the firmware last read (firmware.read_settings/read_components)."""
        """The last power state read per host (Ironic's synced node.power_state)."""
        self._resolved: dict[tuple[str, str, str, bool], _Resolved] = {}
        """BMO registers every host on every pass: parsing its address, composing and
        validating its driver each time is pure and repeats itself, so it is done once per
        (address, credentials, TLS flag). A bad address is not cached (it raises again)."""

    def resolve(self, host: ports.HostData) -> _Resolved:
        """The host's parsed access, driver and identity (raises SpecError for a bad address or
        one no driver serves, and what the driver's `validate` raises)."""
        creds = host.bmc_credentials
        key = (host.bmc_address, creds.username, creds.password,
               host.disable_certificate_verification)
        got = self._resolved.get(key)
        if got is None:
            access = bmc.BmcAccess.of(
                host.bmc_address,
                host.bmc_credentials,
                verify_tls=not host.disable_certificate_verification,
            )
            driver = self._drivers(access)
            driver.validate(access)
            if len(self._resolved) >= _RESOLVED_MAX:
                self._resolved.clear()
            got = self._resolved[key] = _Resolved(
                access=access, driver=driver, identity=nodes.bmc_identity(host.bmc_address)
            )
        return got

    def new_provisioner(
        self, host: ports.HostData, publish: Callable[[str, str], None]
    ) -> "EngineProvisioner":
        return EngineProvisioner(self, host, publish)

    def ctx(self, host: ports.HostData, publish: Callable[[str, str], None]) -> Ctx:
        """Build the step context (the resolved access and driver: no I/O)."""
        resolved = self.resolve(host)
        return Ctx(
            host=host,
            node_id=host.provisioner_id or nodes.node_id_for(host.key),
            access=resolved.access,
            driver=resolved.driver,
            agents=self._agents,
            nodes_port=self._nodes,
            clock=self._clock,
            cfg=self.config,
            publish=publish,
            power_sync=self.power_sync,
            registries=self.registries,
            schemas=self.schemas,
            reads=self.reads,
        )

    def node(self, node_id: str) -> nodes.Node | None:
        """The node record, without building a step context (no BMC involved)."""
        return self._nodes.get(node_id)

    def forget(self, node_id: str) -> None:
        self._nodes.delete(node_id)
        self.power_sync.forget(node_id)
        self.registries.pop(node_id, None)
        self.schemas.pop(node_id, None)
        self.reads.pop(node_id, None)

    def busy_hosts(self) -> Collection[meta.ObjectKey]:
        return self._busy_hosts() if self._busy_hosts is not None else ()


class EngineProvisioner:
    """One host's provisioner for one reconcile pass (implements ports.Provisioner)."""

    def __init__(
        self, engine: Engine, host: ports.HostData, publish: Callable[[str, str], None]
    ) -> None:
        self._engine = engine
        self._host = host
        self._publish = publish
        self._cfg = engine.config
        self._ctx: Ctx | None = None
        self._disable_power_off = False
        self._power_failure = False
        """This pass could not read the power state (Manageable=False PowerFailure)."""

    def _c(self) -> Ctx:
        if self._ctx is None:
            try:
                self._ctx = self._engine.ctx(self._host, self._publish)
            except outcome.SpecError as err:
                raise StepFailed(err.message) from err
        return self._ctx

    def _run(self, step: Callable[[], ports.ProvisionResult]) -> ports.ProvisionResult:
        return guarded(step, self._cfg)

    # --- registration -------------------------------------------------------------------------

    def register(
        self,
        data: ports.ManagementAccessData,
        *,
        credentials_changed: bool,
        restart_on_failure: bool,
    ) -> tuple[ports.ProvisionResult, str]:
        self._disable_power_off = data.disable_power_off
        node_id = self._host.provisioner_id or nodes.node_id_for(self._host.key)

        def step() -> ports.ProvisionResult:
            ctx = self._c()  # resolving the host's access validates its driver
            bmc_type = ctx.access.address.type
            if not self._host.boot_mac_address and (bmc_type.needs_mac or data.disable_inspection):
                raise StepFailed(f"BMC driver {bmc_type.name} requires a BootMACAddress value")
            identity = self._engine.resolve(self._host).identity
            mac = self._host.boot_mac_address
            macs: tuple[str, ...] = (nodes.normal_mac(mac),) if mac else ()
            known = ctx.nodes.get(ctx.node_id)
            if (
                known is not None
                and known.bmc_address == identity
                and (not macs or macs[0] in known.macs)  # macs holds at most one
                and not credentials_changed
                and not restart_on_failure
            ):
                return ports.ProvisionResult.complete()
            ctx.power()  # proves the address and the credentials
            if not macs:
                macs = self._discover_macs(ctx)
            ctx.nodes.put(
                nodes.Node(
                    node_id=ctx.node_id,
                    name=nodes.node_name(self._host.key),
                    bmc_address=identity,
                    macs=macs,
                    deployed=known.deployed if known else _deployed_from_status(data),
                    wait=known.wait if known else None,
                    firmware_job=known.firmware_job if known else None,
                    firmware=known.firmware if known else (),
                )
            )
            if known is None:
                self._publish("Registered", "Registered new host")
            return ports.ProvisionResult.complete()

        try:
            return self._run(step), node_id
        except outcome.SpecError as err:
            return ports.ProvisionResult.failed(err.message), node_id

    @staticmethod
    def _discover_macs(ctx: Ctx) -> tuple[str, ...]:
        """MACs from out-of-band inventory, for agent lookup when no boot MAC is given."""
        try:
            details = ctx.driver.inspect.inspect(ctx.access)
        except bmc.UnsupportedCapability:
            return ()
        return tuple(nodes.normal_mac(nic.mac) for nic in details.nics if nic.mac)

    # --- inspection and preparation ------------------------------------------------------------

    def inspect_hardware(
        self,
        data: ports.InspectData,
        *,
        restart_on_failure: bool,
        refresh: bool,
        force_reboot: bool,
    ) -> ports.InspectOutcome:
        done: ports.InspectOutcome | None = None

        def step() -> ports.ProvisionResult:
            nonlocal done
            done = self._inspect(data, force_reboot=force_reboot)
            return done.result

        result = self._run(step)
        if done is not None and done.result is result:
            return done
        return ports.InspectOutcome(result=result, started=False, details=None)

    def _inspect(self, data: ports.InspectData, *, force_reboot: bool) -> ports.InspectOutcome:
        ctx = self._c()
        if data.inspection_mode == bmh.InspectionMode.FAST:
            details = ctx.driver.inspect.inspect(ctx.access)
            return _inspected(details, started=True)
        got = ramdisk.ensure_agent(
            ctx, nodes.Purpose.INSPECT, boot_mode=data.boot_mode, force_reboot=force_reboot
        )
        if isinstance(got, ramdisk.Booting):
            return ports.InspectOutcome(result=got.result, started=got.started, details=None)
        details = ctx.agents.inventory(got.endpoint)
        if not ctx.cfg.fast_track:
            # The ramdisk goes away, as plain Ironic leaves a manageable node off.
            ctx.eject_media()
            ctx.power_off(ports.RebootMode.HARD)
        # With fast track the agent keeps running: provisioning (or cleaning) reuses it
        # within fast_track_timeout_s instead of booting the ramdisk again.
        ctx.set_wait(None)
        return _inspected(details, started=False)

    def prepare(
        self, data: ports.PrepareData, *, unprepared: bool, restart_on_failure: bool
    ) -> tuple[ports.ProvisionResult, bool]:
        """Manual cleaning's firmware steps: BIOS settings, then firmware updates, as one job
        in the node record (core/provisioning/firmware.py)."""
        if data.target_raid_config is not None:  # RAID first, as upstream's clean steps (H6)
            raid_result = self._run(lambda: raid.step(self._c(), data) or _RAID_DONE)
            if raid_result is not _RAID_DONE:
                return raid_result, True
        settings = data.target_firmware_settings
        updates = data.target_firmware_components
        if not settings and not updates and not self._has_firmware_job():
            return ports.ProvisionResult.complete(), unprepared
        started = False

        def step() -> ports.ProvisionResult:
            nonlocal started
            ctx = self._c()
            wanted = firmware.job_for(nodes.Purpose.PREPARE, settings,
                                      data.actual_firmware_settings, updates, ctx)
            result, started = firmware.run(
                ctx, nodes.Purpose.PREPARE, wanted=wanted, unprepared=unprepared,
                restart_on_failure=restart_on_failure, has_spec=True)
            return result

        result = self._run(step)
        return result, started or unprepared

    def _has_firmware_job(self) -> bool:
        node_id = self._host.provisioner_id or nodes.node_id_for(self._host.key)
        node = self._engine.node(node_id)
        return node is not None and node.firmware_job is not None

    # --- firmware (core/provisioning/firmware.py) ------------------------------------------------

    def get_firmware_settings(self, *, include_schema: bool) -> ports.FirmwareSettings:
        return firmware.read_settings(self._c(), include_schema=include_schema)

    def get_firmware_components(self) -> tuple[hfc.FirmwareComponentStatus, ...]:
        return firmware.read_components(self._c())

    def service(
        self, data: ports.ServicingData, *, unprepared: bool, restart_on_failure: bool
    ) -> tuple[ports.ProvisionResult, bool]:
        started = False

        def step() -> ports.ProvisionResult:
            nonlocal started
            ctx = self._c()
            wanted = firmware.job_for(nodes.Purpose.SERVICE, data.target_firmware_settings,
                                      data.actual_firmware_settings,
                                      data.target_firmware_components, ctx)
            result, started = firmware.run(
                ctx, nodes.Purpose.SERVICE, wanted=wanted, unprepared=unprepared,
                restart_on_failure=restart_on_failure, has_spec=data.has_firmware_spec)
            return result

        result = self._run(step)
        return result, started

    # --- deployment ------------------------------------------------------------------------------

    def provision(self, data: ports.ProvisionData, *, force_reboot: bool) -> ports.ProvisionResult:
        result = self._run(lambda: deploy.provision(self._c(), data, force_reboot=force_reboot))
        if not result.error_message:
            return result
        # The provisioner names the operation and image, as upstream's Ironic provisioner
        # does; the reconciler records the message as given.
        url = data.image.url if data.image else ""
        return ports.ProvisionResult.failed(
            f"Image provisioning failed (url: {url}): {result.error_message}"
        )

    def deprovision(
        self, *, restart_on_failure: bool, automated_cleaning_mode: bmh.AutomatedCleaningMode
    ) -> ports.ProvisionResult:
        result = self._run(
            lambda: deploy.deprovision(
                self._c(), restart_on_failure=restart_on_failure, cleaning=automated_cleaning_mode
            )
        )
        if not result.error_message:
            return result
        return ports.ProvisionResult.failed(
            f"Image deprovisioning failed: {result.error_message}"
        )

    def adopt(
        self, state: bmh.ProvisioningState, *, restart_on_failure: bool
    ) -> ports.ProvisionResult:
        def step() -> ports.ProvisionResult:
            ctx = self._c()
            node = ctx.node()
            # Deprovisioning adopts first (upstream, so Ironic accepts the undeploy); here
            # deprovision reads the hardware itself, and must not be reset mid-way.
            if state != bmh.ProvisioningState.DEPROVISIONING and node.deployed is None \
                    and node.wait is None:
                ctx.set_deployed(nodes.Deployment(image_url="", adopted=True))
            return ports.ProvisionResult.complete()

        return self._run(step)

    def detach(self, *, force: bool) -> ports.ProvisionResult:
        return self._forget()

    def delete(self) -> ports.ProvisionResult:
        return self._forget()

    def _forget(self) -> ports.ProvisionResult:
        node_id = self._host.provisioner_id or nodes.node_id_for(self._host.key)
        self._engine.forget(node_id)
        return ports.ProvisionResult.complete()

    # --- power -----------------------------------------------------------------------------------

    def update_hardware_state(self) -> bool | None:
        # As Ironic's node record: refreshed from the BMC once per sync interval, not per pass.
        try:
            state = self._c().power_synced()
        except (bmc.DriverError, StepFailed):
            self._power_failure = True
            return None
        return _POWERED_ON.get(state)

    def power_on(self, *, force: bool) -> ports.ProvisionResult:
        def step() -> ports.ProvisionResult:
            ctx = self._c()
            state = ctx.power()
            if state == bmc.PowerState.ON:
                return ports.ProvisionResult.complete()
            if state != bmc.PowerState.POWERING_ON:
                ctx.power_on()
            return ports.ProvisionResult.continuing(self._cfg.short_poll_s)

        return self._run(step)

    def power_off(self, mode: ports.RebootMode, *, force: bool) -> ports.ProvisionResult:
        return self._run(lambda: self._power_off(mode, force=force))

    def _power_off(self, mode: ports.RebootMode, *, force: bool) -> ports.ProvisionResult:
        ctx = self._c()
        if self._disable_power_off:
            ctx.reboot(mode)
            return ports.ProvisionResult.complete()
        state = ctx.power()
        wait = ctx.node().wait
        soft_wait = wait if wait is not None and wait.purpose == nodes.Purpose.SOFT_POWER_OFF \
            else None
        if state == bmc.PowerState.OFF:
            if soft_wait is not None:
                ctx.set_wait(None)
            return ports.ProvisionResult.complete()
        if mode == ports.RebootMode.HARD or force:
            ctx.power_off(ports.RebootMode.HARD)
            return ports.ProvisionResult.continuing(self._cfg.short_poll_s)
        if soft_wait is None:
            ctx.power_off(ports.RebootMode.SOFT)
            ctx.wait_for(nodes.Purpose.SOFT_POWER_OFF)
            return ports.ProvisionResult.continuing(self._cfg.short_poll_s)
        waited = ctx.waited_s(soft_wait)
        if waited > self._cfg.soft_power_off_timeout_s:
            ctx.set_wait(None)
            raise StepFailed(f"soft power off did not complete within {waited:.0f}s")
        return ports.ProvisionResult.continuing(self._cfg.short_poll_s)

    # --- capacity and health ----------------------------------------------------------------------

    def has_capacity(self) -> bool:
        try:
            address = self._c().access.address
        except (StepFailed, bmc.DriverError):
            return True  # registration reports the bad address
        if address.type.supports_iso_preprovisioning_image:
            return True
        busy = self._engine.busy_hosts()
        return self._host.key in busy or len(busy) < self._cfg.provisioning_limit

    def has_power_failure(self) -> bool:
        return self._power_failure

    def get_health(self) -> str:
        return ""

    # --- DataImage and BMC event subscriptions (core/provisioning/dataimage.py, bmcevents.py) -----

    def get_data_image_status(self) -> bool:
        return dataimage.attached(self._c())

    def attach_data_image(self, url: str) -> None:
        dataimage.attach(self._c(), url)

    def detach_data_image(self) -> None:
        dataimage.detach(self._c())

    def add_bmc_event_subscription(
        self, *, destination: str, context: str, http_headers: Mapping[str, str]
    ) -> tuple[ports.ProvisionResult, str]:
        found = ""

        def step() -> ports.ProvisionResult:
            nonlocal found
            result, found = bmcevents.subscribe(
                self._c(), destination=destination, context=context, http_headers=http_headers
            )
            return result

        result = self._run(step)
        return result, found if not result.dirty and not result.error_message else ""

    def remove_bmc_event_subscription(self, subscription_id: str) -> ports.ProvisionResult:
        return self._run(lambda: bmcevents.unsubscribe(self._c(), subscription_id))


def _deployed_from_status(data: ports.ManagementAccessData) -> nodes.Deployment | None:
    """A new record's deployment, rebuilt from the host's status (as Ironic registers a
    provisioned host with its image): after a manager restart the table is empty, and a host
    whose status still names an image (provisioned, or being deprovisioned) holds it on its
    disk, so deprovisioning must clean it, even when the host is off."""
    image = data.current_image
    if image is None or not image.url:
        return None
    return nodes.Deployment(image_url=image.url, checksum=image.checksum,
                            live_iso=image.format == bmh.ImageFormat.LIVE_ISO, adopted=True)


def _inspected(details: hwd.HardwareDetails, *, started: bool) -> ports.InspectOutcome:
    return ports.InspectOutcome(
        result=ports.ProvisionResult.complete(), started=started, details=details
    )
