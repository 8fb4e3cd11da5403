"""Firmware work for the engine: BIOS settings and registry, firmware inventory and updates.

What upstream asks Ironic for, done over the BMC port (core/bmc.py Bios and Firmware):

- `read_settings`: the BIOS attributes as text (password attributes left out) and, when asked,
  the attribute registry as FirmwareSchema entries (HostFirmwareSettings controller);
- `read_components`: the firmware inventory as HostFirmwareComponents status entries, with the
  initial version (first seen) and the last version the engine flashed from the node record;
  both read the BMC once and then serve what they read (Ironic serves them from its database,
  refreshed by its cleaning and service steps): a firmware job's every change of record drops
  it (`forget_reads`), so the read after a job is the hardware's;
- `start` / `advance`: a firmware job (Ironic's manual-cleaning steps while preparing, service
  steps on a provisioned host): first the BIOS settings (stage, reboot, check they stuck), then
  each firmware update (UpdateService.SimpleUpdate, then its task until it completes or fails;
  the BMC does the reboot an update needs). One idempotent step per call, decided from the BMC
  and the job in the node record (nodes.FirmwareJob), so a manager restart resumes it.

A job that fails keeps its message in the record (Ironic's `service failed` / `clean failed`
with last_error): asking again reports the same failure until the caller restarts or aborts it.
"""

from collections.abc import Mapping
from dataclasses import replace

from metalcubed.core import bmc, ports
from metalcubed.core.api import firmwareschema
from metalcubed.core.api import hostfirmwarecomponents as hfc
from metalcubed.core.provisioning import nodes
from metalcubed.core.provisioning.context import Ctx, FirmwareReads, StepFailed, driver_error


def text(value: bmc.BiosValue | None) -> str | None:
    """A BIOS value as the settings map spells it (booleans as true/false)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def typed(schema: bmc.BiosAttributeSchema | None, value: str) -> bmc.BiosValue:
    """A settings-map string as the BMC's attribute type wants it."""
    if schema is not None and schema.type == bmc.BiosAttributeType.INTEGER:
        try:
            return int(value)
        except ValueError:
            return value
    if schema is not None and schema.type == bmc.BiosAttributeType.BOOLEAN:
        return value.lower() == "true"
    return value


# --- reading ----------------------------------------------------------------------------------


def _setting_schema(entry: bmc.BiosAttributeSchema) -> firmwareschema.SettingSchema:
    return firmwareschema.SettingSchema(
        attribute_type=firmwareschema.AttributeType(entry.type.value),
        allowable_values=entry.allowable_values,
        lower_bound=entry.lower_bound,
        upper_bound=entry.upper_bound,
        min_length=entry.min_length,
        max_length=entry.max_length,
        read_only=entry.read_only,
        unique=entry.unique,
    )


def read_settings(ctx: Ctx, *, include_schema: bool) -> ports.FirmwareSettings:
    """The BIOS settings (and registry) of the host. A driver without BIOS support reports
    none (as Ironic's no-bios interface): empty settings, no schema."""
    reads = ctx.reads.setdefault(ctx.node_id, FirmwareReads())
    settings = reads.settings
    if settings is None:
        try:
            current = ctx.driver.bios.settings(ctx.access).current
        except bmc.UnsupportedCapability:
            return ports.FirmwareSettings(settings={}, schema=None)
        settings = reads.settings = {
            name: text(value) or ""
            for name, value in current.items()
            if "Password" not in name
        }
    schema = None
    if include_schema:
        raw = registry(ctx)
        known = ctx.schemas.get(ctx.node_id)
        if known is not None and known[0] is raw:
            schema = known[1]  # the same object while the registry is: callers may memoise
        else:
            schema = {name: _setting_schema(entry) for name, entry in raw.items()}
            ctx.schemas[ctx.node_id] = (raw, schema)
    return ports.FirmwareSettings(settings=settings, schema=schema)


def registry(ctx: Ctx) -> Mapping[str, bmc.BiosAttributeSchema]:
    """The host's BIOS attribute registry: read from the BMC, then reused for
    `bios_registry_cache_s` (it changes only with the BIOS firmware)."""
    known = ctx.registries.get(ctx.node_id)
    now = ctx.now()
    if known is not None and (now - known[0]).total_seconds() < ctx.cfg.bios_registry_cache_s:
        return known[1]
    found = ctx.driver.bios.registry(ctx.access)
    ctx.registries[ctx.node_id] = (now, found)
    return found


def read_components(ctx: Ctx) -> tuple[hfc.FirmwareComponentStatus, ...]:
    """The firmware inventory with what the engine remembers of each component: the first
    version it read (recorded now if new) and the last one it flashed."""
    reads = ctx.reads.setdefault(ctx.node_id, FirmwareReads())
    found = reads.components
    if found is None:
        try:
            found = reads.components = tuple(ctx.driver.firmware.components(ctx.access))
        except bmc.UnsupportedCapability:
            return ()
    node = ctx.nodes.get(ctx.node_id)
    known = {c.component: c for c in node.firmware} if node is not None else {}
    records = dict(known)
    for item in found:
        if item.component not in records:
            records[item.component] = nodes.ComponentVersions(
                component=item.component, initial_version=item.version)
    if node is not None and records != known:
        ctx.nodes.put(replace(node, firmware=tuple(records.values())))
    return tuple(
        hfc.FirmwareComponentStatus(
            component=item.component,
            initial_version=records[item.component].initial_version,
            current_version=item.version,
            last_version_flashed=records[item.component].last_version_flashed,
            updated_at=records[item.component].updated_at,
        )
        for item in found
    )


# --- jobs -------------------------------------------------------------------------------------


def job_for(
    purpose: nodes.Purpose,
    settings: dict[str, str],
    actual: dict[str, str],
    updates: tuple[hfc.FirmwareUpdate, ...],
    ctx: Ctx,
) -> nodes.FirmwareJob | None:
    """The job for these targets (None: nothing to do). Settings whose actual value is
    already the target are left out, as upstream's getNewFirmwareSettings."""
    wanted = tuple(sorted((k, v) for k, v in settings.items() if actual.get(k) != v))
    flash = tuple((u.component, u.url) for u in updates)
    if not wanted and not flash:
        return None
    return nodes.FirmwareJob(purpose=purpose, settings=wanted, updates=flash, since=ctx.now())


def forget_reads(ctx: Ctx) -> None:
    """The job changed something (or may have): the next read goes to the BMC."""
    ctx.reads.pop(ctx.node_id, None)


def start(ctx: Ctx, job: nodes.FirmwareJob) -> None:
    forget_reads(ctx)
    ctx.nodes.put(replace(ctx.node(), firmware_job=job, wait=None))


def clear(ctx: Ctx) -> None:
    forget_reads(ctx)
    ctx.registries.pop(ctx.node_id, None)  # a BIOS update may have brought a new registry
    ctx.schemas.pop(ctx.node_id, None)
    node = ctx.node()
    if node.firmware_job is not None:
        ctx.nodes.put(replace(node, firmware_job=None))


def _save(ctx: Ctx, job: nodes.FirmwareJob) -> None:
    forget_reads(ctx)
    node = ctx.node()
    if node.firmware_job != job:
        ctx.nodes.put(replace(node, firmware_job=job))


def fail(ctx: Ctx, job: nodes.FirmwareJob, message: str) -> ports.ProvisionResult:
    """Record the failure on the job and report it."""
    forget_reads(ctx)
    node = ctx.node()
    ctx.nodes.put(replace(node, firmware_job=replace(job, failed=message, task_id=""),
                          wait=None))
    return ports.ProvisionResult.failed(message)


def advance(ctx: Ctx, job: nodes.FirmwareJob) -> ports.ProvisionResult:
    """One step of a running job; complete (and the job removed) when all of it is done."""
    try:
        if not job.settings_done:
            result = apply_settings(ctx, dict(job.settings))
            if result.dirty:
                return result
            job = replace(job, settings_done=True)
            _save(ctx, job)
        while job.updates_done < len(job.updates):
            result, job = _update_step(ctx, job)
            if result.dirty:
                return result
    except StepFailed as err:
        return fail(ctx, job, err.message)
    except bmc.BmcUnreachable as err:
        # A BMC reboots after its own update (and some during another): wait for it, within
        # the job's time.
        if ctx.waited_s(nodes.Wait(purpose=job.purpose, since=job.since)) \
                > ctx.cfg.firmware_job_timeout_s:
            return fail(ctx, job, f"{err} (firmware job running for more than "
                                  f"{ctx.cfg.firmware_job_timeout_s:.0f}s)")
        return ports.ProvisionResult.continuing(ctx.cfg.poll_s)
    except bmc.DriverError as err:
        result = driver_error(err, ctx.cfg)  # raises TransientError on a BMC 5xx
        if result.error_message:  # refused, unsupported, unreachable: the job failed
            return fail(ctx, job, result.error_message)
        return result  # busy: try again later
    clear(ctx)
    return ports.ProvisionResult.complete()


def apply_settings(ctx: Ctx, target: dict[str, str]) -> ports.ProvisionResult:
    """Stage the BIOS values that differ, reboot so that firmware applies them, and check they
    stuck (raises StepFailed when they did not within bios_reboot_timeout_s)."""
    if not target:
        return ports.ProvisionResult.complete()
    bios = ctx.driver.bios
    settings = bios.settings(ctx.access)
    diff = {k: v for k, v in target.items() if text(settings.current.get(k)) != v}
    node = ctx.node()
    waiting = node.wait is not None and node.wait.purpose == nodes.Purpose.BIOS
    if not diff:
        if waiting:
            ctx.set_wait(None)
        return ports.ProvisionResult.complete()
    staged = all(text(settings.pending.get(k)) == v for k, v in diff.items())
    if not staged:
        types = registry(ctx)
        bios.apply_settings(ctx.access, {k: typed(types.get(k), v) for k, v in diff.items()})
        return ports.ProvisionResult.continuing(ctx.cfg.short_poll_s)
    if waiting and node.wait is not None:
        if ctx.waited_s(node.wait) > ctx.cfg.bios_reboot_timeout_s:
            ctx.set_wait(None)
            raise StepFailed(
                f"BIOS settings {', '.join(sorted(diff))} were not applied after a reboot"
            )
        return ports.ProvisionResult.continuing(ctx.cfg.poll_s)
    ctx.power_cycle_or_on()  # firmware applies staged settings while it boots
    ctx.wait_for(nodes.Purpose.BIOS)
    return ports.ProvisionResult.continuing(ctx.cfg.poll_s)


def _update_step(
    ctx: Ctx, job: nodes.FirmwareJob
) -> tuple[ports.ProvisionResult, nodes.FirmwareJob]:
    """Start or follow `job`'s next update; complete (with the job moved on) when flashed."""
    component, url = job.updates[job.updates_done]
    firmware = ctx.driver.firmware
    if not job.task_id:
        read_components(ctx)  # the initial versions recorded before anything is flashed
        task = firmware.start_update(ctx.access, component, url)
        job = replace(job, task_id=task.id)
        _save(ctx, job)
        return ports.ProvisionResult.continuing(ctx.cfg.poll_s), job
    found = next((t for t in firmware.update_tasks(ctx.access) if t.id == job.task_id), None)
    if found is None:
        raise StepFailed(f"firmware update of {component} from {url}: the BMC lost its task "
                         f"{job.task_id}")
    if found.state == bmc.TaskState.RUNNING:
        return ports.ProvisionResult.continuing(ctx.cfg.poll_s), job
    if found.state == bmc.TaskState.FAILED:
        raise StepFailed(f"firmware update of {component} from {url} failed: "
                         f"{found.message or 'the BMC gave no reason'}")
    _record_flashed(ctx, component)
    job = replace(job, updates_done=job.updates_done + 1, task_id="")
    _save(ctx, job)
    ctx.publish("FirmwareUpdated", f"Firmware component {component} updated from {url}")
    return ports.ProvisionResult.complete(), job


def _record_flashed(ctx: Ctx, component: str) -> None:
    """Remember the version the update left (HostFirmwareComponents lastVersionFlashed)."""
    version = next((c.version for c in ctx.driver.firmware.components(ctx.access)
                    if c.component == component), "")
    node = ctx.node()
    records = {c.component: c for c in node.firmware}
    old = records.get(component)
    records[component] = nodes.ComponentVersions(
        component=component,
        initial_version=old.initial_version if old is not None else version,
        last_version_flashed=version,
        updated_at=ctx.now(),
    )
    ctx.nodes.put(replace(node, firmware=tuple(records.values())))


def _flashing(ctx: Ctx) -> bool:
    """The BMC runs a firmware update task now."""
    try:
        tasks = ctx.driver.firmware.update_tasks(ctx.access)
    except bmc.UnsupportedCapability:
        return False
    return any(t.state == bmc.TaskState.RUNNING for t in tasks)


def run(
    ctx: Ctx,
    purpose: nodes.Purpose,
    *,
    wanted: nodes.FirmwareJob | None,
    unprepared: bool,
    restart_on_failure: bool,
    has_spec: bool,
) -> tuple[ports.ProvisionResult, bool]:
    """Upstream's Service (and the firmware part of Prepare) over the node's job: returns the
    result and whether a job was started by this call.

    - a failed job: aborted when the user removed every firmware spec (`has_spec` false);
      reported again unless `restart_on_failure`; else replaced by the job asked for now (the
      caller still asks for the failed work while its spec does), or, when nothing is asked
      (the user backed the failed part out), complete, as upstream's restart with no steps;
    - a running job: advanced (a change of spec meanwhile waits for the next job);
    - no job: started when `unprepared` and there is something to do, else complete.
    """
    job = ctx.node().firmware_job
    if job is not None and job.purpose != purpose:
        job = None  # a job of the other operation (e.g. a prepare left by a restart): replaced
        clear(ctx)
    if job is not None and job.failed:
        if not has_spec:
            clear(ctx)
            ctx.publish("ServicingAborted", "firmware job aborted: the firmware spec was removed")
            return ports.ProvisionResult.continuing(ctx.cfg.short_poll_s), True
        if not restart_on_failure:
            return ports.ProvisionResult.failed(job.failed), False
        clear(ctx)
        job = None
        unprepared = True
    if job is not None:
        return advance(ctx, job), False
    if not unprepared:
        if purpose == nodes.Purpose.SERVICE and _flashing(ctx):
            # No job, yet the BMC still flashes: a manager restart lost the record (the node
            # table is in memory). Wait for the BMC rather than call the servicing done.
            return ports.ProvisionResult.continuing(ctx.cfg.poll_s), False
        return ports.ProvisionResult.complete(), False
    if wanted is None:
        return ports.ProvisionResult.complete(), True
    start(ctx, wanted)
    return advance(ctx, wanted), True
