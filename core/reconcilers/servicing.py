"""The host controller's side of firmware: sub-resources, preparing and servicing.

Upstream BMO's baremetalhost_controller.go, the parts that read HostFirmwareSettings (HFS),
HostFirmwareComponents (HFC) and HostUpdatePolicy (HUP), all named like the host:

- `ensure_subresources` (registration): create the HFS (always) and the HFC (when the BMC
  reports firmware components), owned by the host; add the host as owner of an existing HUP;
- `pending_settings` / `pending_updates` (upstream getHostFirmwareSettings/Components): a
  sub-resource's changes count only when its controller has seen the current generation and
  found it Valid with ChangeDetected; a condition of an older generation means "not ready yet";
- `prepare_targets` / `after_prepare`: what preparing applies, and the HFC status it records;
- `service_if_needed` (upstream doServiceIfNeeded): called by power management when a
  provisioned host is off and should be on (a reboot), or is already servicing. Opt-in per
  host: HUP `firmwareSettings: onReboot` lets HFS changes through, `firmwareUpdates: onReboot`
  HFC updates. With changes the host goes `operationalStatus: servicing` (one pass to write
  it), the provisioner applies them (BIOS settings, firmware updates; the disk is never
  touched), and the host returns to OK, or records `servicing error`. With the error set, the
  next reboot retries; removing the firmware spec aborts the failed servicing.
"""

import contextlib
import dataclasses
from dataclasses import dataclass

from metalcubed.core import outcome, ports
from metalcubed.core.api import change, meta
from metalcubed.core.api import hostfirmwarecomponents as hfc_api
from metalcubed.core.api import hostfirmwaresettings as hfs_api
from metalcubed.core.api import hostupdatepolicy as hup_api
from metalcubed.core.reconcilers import hostsub
from metalcubed.core.reconcilers.hostwork import ET, OS, HostWork

SUBRESOURCE_NOT_READY_RETRY_DELAY_S = 60.0
"""upstream subResourceNotReadyRetryDelay."""


class NotReady(outcome.TransientError):
    """A sub-resource's controller has not caught up with its spec yet."""


# --- registration -----------------------------------------------------------------------------


def ensure_subresources(w: HostWork, store: ports.Store) -> None:
    """Create the host's HFS and (when the BMC has components) HFC, owned by the host, and
    own its HUP; never for a host being deleted."""
    host = w.host
    if not host.metadata.name or w.deleting:
        return
    try:
        components = w.provisioner().get_firmware_components()
    except outcome.MetalcubedError:
        components = ()  # upstream: defer HostFirmwareComponents creation
    _ensure(store, host, hfs_api.HostFirmwareSettings(
        metadata=meta.ObjectMeta(name=host.metadata.name, namespace=host.metadata.namespace),
        spec=hfs_api.HostFirmwareSettingsSpec(settings={}),
    ))
    if components:
        _ensure(store, host, hfc_api.HostFirmwareComponents(
            metadata=meta.ObjectMeta(name=host.metadata.name, namespace=host.metadata.namespace),
            spec=hfc_api.HostFirmwareComponentsSpec(updates=()),
        ))
    acquire_policy(w, store)


def _ensure(store: ports.Store, owner: meta.Resource, obj: meta.Resource) -> None:
    try:
        found = store.get(type(obj), obj.key)
    except outcome.NotFound:
        # Created meanwhile (e.g. by the user): owned on the next registration.
        with contextlib.suppress(outcome.Conflict):
            store.create(obj.with_meta(owner_references=(hostsub.owner_reference(owner),)))
        return
    owners = hostsub.with_owner(found.metadata.owner_references, owner)
    if owners is not None:
        store.update(found.with_meta(owner_references=owners))


def acquire_policy(w: HostWork, store: ports.Store) -> hup_api.HostUpdatePolicy | None:
    """upstream acquireHostUpdatePolicy: the host's HUP (None without one), owned by the host."""
    try:
        hup = store.get(hup_api.HostUpdatePolicy, w.host.key)
    except outcome.NotFound:
        return None
    owners = hostsub.with_owner(hup.metadata.owner_references, w.host)
    if owners is not None:
        hup = store.update(hup.with_meta(owner_references=owners))
    return hup


# --- what is pending --------------------------------------------------------------------------


def _changes(conditions: tuple[meta.Condition, ...], changed_type: str, valid_type: str,
             generation: int | None) -> tuple[bool, bool]:
    """upstream hostObjectHasChanges: (changed, valid); NotReady while the sub-resource's
    controller has not seen this generation."""
    found = hostsub.find(conditions, changed_type)
    if found is None:
        return False, False
    if found.observed_generation != generation:
        raise NotReady(f"generation {generation} != observed generation "
                       f"{found.observed_generation}")
    if not hostsub.is_true(conditions, valid_type):
        return False, False
    return found.status == "True", True


@dataclass(frozen=True, slots=True)
class Pending:
    """A sub-resource and whether it has valid changes to apply."""

    dirty: bool
    hfs: hfs_api.HostFirmwareSettings | None = None
    hfc: hfc_api.HostFirmwareComponents | None = None


def pending_settings(store: ports.Store, key: meta.ObjectKey) -> Pending:
    """upstream getHostFirmwareSettings (raises NotReady: not caught up, or status empty)."""
    try:
        hfs = store.get(hfs_api.HostFirmwareSettings, key)
    except outcome.NotFound:
        return Pending(False)
    changed, valid = _changes(hfs.status.conditions, hfs_api.CHANGE_DETECTED, hfs_api.VALID,
                              hfs.metadata.generation)
    if not valid or not changed:
        return Pending(False, hfs=hfs)
    if not hfs.status.settings:
        raise NotReady("host firmware status settings not available")
    return Pending(True, hfs=hfs)


def pending_updates(store: ports.Store, key: meta.ObjectKey) -> Pending:
    """upstream getHostFirmwareComponents (raises NotReady when not caught up).

    Besides ChangeDetected, the spec's updates missing from status.updates count: after a
    failure this controller empties status.updates (`_drop_saved_updates`), a status write the
    HFC controller is not woken by, so its ChangeDetected still says False until its next
    resync. The failed updates the spec still asks for are pending at once; the ones the user
    removed are not (a restart then has nothing to do and completes, as upstream)."""
    try:
        hfc = store.get(hfc_api.HostFirmwareComponents, key)
    except outcome.NotFound:
        return Pending(False)
    changed, valid = _changes(hfc.status.conditions, hfc_api.CHANGE_DETECTED, hfc_api.VALID,
                              hfc.metadata.generation)
    changed = changed or bool(hfc_api.pending_updates(hfc))
    return Pending(changed and valid, hfc=hfc)


def _target_settings(hfs: hfs_api.HostFirmwareSettings) -> dict[str, str]:
    return {k: hfs_api.text(v) for k, v in hfs.spec.settings.items()}


def _save_updates(w: HostWork, store: ports.Store, hfc: hfc_api.HostFirmwareComponents) -> None:
    """upstream saveHostFirmwareComponents: the spec's updates are now the applied ones, with
    the inventory read again."""
    if hfc.status.updates == hfc.spec.updates:
        return
    components = w.provisioner().get_firmware_components()
    status = change.replace(hfc.status, {"updates": hfc.spec.updates,
                                         "components": components})
    store.update_status(change.replace(hfc, {"status": status}))


def _drop_saved_updates(store: ports.Store, hfc: hfc_api.HostFirmwareComponents) -> None:
    """After a failure the updates were not (all) applied: status.updates emptied, so they
    count as pending again. Upstream does this only on the pass that started them; the failure
    is reported on a later pass, so a failed update would then count as applied and a restart
    would complete with nothing to do."""
    if hfc.status.updates:
        store.update_status(change.replace(hfc, {"status": change.replace(
            hfc.status, {"updates": ()})}))


# --- preparing --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrepareTargets:
    settings: Pending
    updates: Pending

    @property
    def dirty(self) -> bool:
        return self.settings.dirty or self.updates.dirty

    def apply_to(self, data: ports.PrepareData) -> ports.PrepareData:
        hfs, hfc = self.settings.hfs, self.updates.hfc
        if self.settings.dirty and hfs is not None:
            data = dataclasses.replace(
                data, target_firmware_settings=_target_settings(hfs),
                actual_firmware_settings=dict(hfs.status.settings))
        if self.updates.dirty and hfc is not None:
            data = dataclasses.replace(
                data, target_firmware_components=hfc_api.pending_updates(hfc))
        return data


def prepare_targets(store: ports.Store, key: meta.ObjectKey) -> PrepareTargets | outcome.Outcome:
    """What preparing applies; an Outcome (wait a minute) while a sub-resource's controller
    has not caught up (upstream actionPreparing)."""
    try:
        return PrepareTargets(pending_settings(store, key), pending_updates(store, key))
    except NotReady:
        return outcome.Outcome.after(SUBRESOURCE_NOT_READY_RETRY_DELAY_S)


def needs_preparing(store: ports.Store, key: meta.ObjectKey) -> bool:
    """upstream handleAvailable: an available host with valid HFS or HFC changes goes back to
    preparing to apply them (TransientError while their controllers catch up)."""
    try:
        return pending_settings(store, key).dirty or pending_updates(store, key).dirty
    except NotReady as err:
        raise outcome.TransientError(f"host firmware not ready yet: {err}") from err


def after_prepare(w: HostWork, store: ports.Store, targets: PrepareTargets,
                  result: ports.ProvisionResult, started: bool) -> None:
    """Record HFC status after a prepare step, as upstream actionPreparing does."""
    hfc = targets.updates.hfc
    if hfc is None:
        return
    if result.error_message:
        _drop_saved_updates(store, hfc)
    elif started and targets.updates.dirty:
        _save_updates(w, store, hfc)


# --- servicing --------------------------------------------------------------------------------


def name_fields(message: str, settings: Pending, updates: Pending) -> str:
    """A failure message with the sub-resource field it came from in front, so the user knows
    what to fix: `HostFirmwareComponents <name> spec.updates[i].url: ...` for a failed update,
    `HostFirmwareSettings <name> spec.settings[<attr>]: ...` for a setting that did not stick."""
    hfc = updates.hfc
    if hfc is not None:
        for index, update in enumerate(hfc.spec.updates):
            if f"from {update.url} " in message or f"from {update.url}:" in message:
                return (f"HostFirmwareComponents {hfc.metadata.name} spec.updates[{index}].url: "
                        f"{message}")
    hfs = settings.hfs
    if hfs is not None:
        named = [name for name in sorted(hfs.spec.settings) if name in message]
        if named:
            fields = ", ".join(f"spec.settings[{name}]" for name in named)
            return f"HostFirmwareSettings {hfs.metadata.name} {fields}: {message}"
    return message


def should_check(w: HostWork) -> bool:
    """upstream manageHostPower's condition: a provisioned host that is off and wanted on (a
    reboot), or one already servicing or with a servicing error."""
    provisioned = w.state in (hostsub.S.PROVISIONED, hostsub.S.EXTERNALLY_PROVISIONED)
    return (
        (provisioned and not w.status.powered_on and w.spec.online)
        or w.status.operational_status == OS.SERVICING
        or w.status.error_type == ET.SERVICING
    )


def _clear_error_with_status(w: HostWork, status: OS) -> bool:
    s = w.status
    if s.operational_status == status and s.error_type == ET.NONE and not s.error_message:
        return False
    w.set(operational_status=status, error_type=ET.NONE, error_message="")
    return True


def service_if_needed(w: HostWork, store: ports.Store) -> outcome.Outcome | None:
    """upstream doServiceIfNeeded: None hands the pass back to power management."""
    hup = acquire_policy(w, store)
    on_reboot = hup_api.UpdatePolicy.ON_REBOOT
    settings_allowed = hup is not None and hup.spec.firmware_settings == on_reboot
    updates_allowed = hup is not None and hup.spec.firmware_updates == on_reboot
    data = ports.ServicingData()
    settings = Pending(False)
    updates = Pending(False)
    try:
        if settings_allowed:
            settings = pending_settings(store, w.host.key)
            hfs = settings.hfs
            if settings.dirty and hfs is not None:
                data = dataclasses.replace(
                    data, target_firmware_settings=_target_settings(hfs),
                    actual_firmware_settings=dict(hfs.status.settings))
            data = dataclasses.replace(
                data, has_firmware_spec=hfs is not None and bool(hfs.spec.settings))
        if updates_allowed:
            updates = pending_updates(store, w.host.key)
            hfc = updates.hfc
            if updates.dirty and hfc is not None:
                data = dataclasses.replace(
                    data, target_firmware_components=hfc_api.pending_updates(hfc))
            if hfc is not None and hfc.spec.updates:
                data = dataclasses.replace(data, has_firmware_spec=True)
    except NotReady as err:
        raise outcome.TransientError(f"could not determine updated settings: {err}") from err
    has_changes = settings.dirty or updates.dirty
    status = w.status
    if not has_changes and status.operational_status != OS.SERVICING \
            and status.error_type != ET.SERVICING:
        return None
    if status.operational_status != OS.SERVICING:
        # Written first (one pass): the provisioner is asked on the next one, as upstream.
        w.set(operational_status=OS.SERVICING)
        return outcome.Outcome.after(0)
    result, started = w.provisioner().service(
        data,
        unprepared=has_changes,
        restart_on_failure=status.error_type == ET.SERVICING,
    )
    if result.error_message:
        w.set_provisioning(firmware=None)
        if updates.hfc is not None:
            _drop_saved_updates(store, updates.hfc)
        return w.record_failure(ET.SERVICING, name_fields(result.error_message, settings,
                                                          updates))
    dirty = _clear_error_with_status(w, OS.SERVICING)
    if updates.dirty and started and updates.hfc is not None:
        _save_updates(w, store, updates.hfc)
    if dirty:
        return outcome.Outcome.after(result.requeue_after_s)
    if result.dirty:
        return outcome.Outcome.after(result.requeue_after_s)
    if _clear_error_with_status(w, OS.OK):
        w.event("ServicingComplete", "Servicing completed")
        return outcome.Outcome.after(SUBRESOURCE_NOT_READY_RETRY_DELAY_S)
    return None
