"""The BareMetalHost state handlers (bmo.md 2.3), one function per provisioning state.

Each handler does at most one side-effecting provisioner step and returns; the next pass
sees its result. States change only through `HostWork.transition` (the lifecycle table).
"""

from collections.abc import Callable
from dataclasses import dataclass

from metalcubed.core import annotations, backoff, fsm, outcome, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import change, meta
from metalcubed.core.api import hardwaredata as hwd
from metalcubed.core.reconcilers import host_power, servicing
from metalcubed.core.reconcilers.hostwork import (
    ET,
    OS,
    UNMANAGED_RETRY_DELAY_S,
    HostReconcilerConfig,
    HostWork,
    S,
)

E = fsm.Event

HARDWARE_DATA_FINALIZER = "baremetalhost.metal3.io/hardwareData"

# Hardware profiles: root device hints applied when the host sets none (bmo.md 1.1).
PROFILE_HINTS: dict[str, bmh.RootDeviceHints] = {
    "unknown": bmh.RootDeviceHints(device_name="/dev/sda"),
    "libvirt": bmh.RootDeviceHints(device_name="/dev/vda"),
    "dell": bmh.RootDeviceHints(hctl="0:0:0:0"),
    "dell-raid": bmh.RootDeviceHints(hctl="0:2:0:0"),
    "openstack": bmh.RootDeviceHints(device_name="/dev/vdb"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Deps:
    """What the handlers need besides the host: the store (HardwareData, config-drive Secrets)."""

    store: ports.Store
    config: HostReconcilerConfig


Handler = Callable[[HostWork, Deps], outcome.Outcome]


def handle_none(w: HostWork, deps: Deps) -> outcome.Outcome:
    if w.spec.has_bmc_details():
        return w.transition(E.MANAGE)
    w.set(operational_status=OS.DISCOVERED)
    w.event("Discovered", "Discovered host with no BMC details")
    w.metrics.inc("metal3_host_unmanaged_total")
    return w.transition(E.DISCOVER)


def handle_unmanaged(w: HostWork, deps: Deps) -> outcome.Outcome:
    if w.spec.has_bmc_details():
        if w.status.operational_status == OS.DISCOVERED:
            w.set(operational_status=OS.OK)
        return w.transition(E.MANAGE)
    return outcome.Outcome.after(UNMANAGED_RETRY_DELAY_S)


def handle_registering(w: HostWork, deps: Deps) -> outcome.Outcome:
    # ensure_registered (run by the pipeline) has succeeded when we get here.
    servicing.ensure_subresources(w, deps.store)  # HFS/HFC created, HUP owned (H5)
    profile = w.spec.hardware_profile or ("libvirt" if _is_libvirt(w) else "unknown")
    hints = w.spec.root_device_hints or PROFILE_HINTS.get(profile)
    w.set(hardware_profile=profile)
    w.set_provisioning(root_device_hints=hints)
    w.clear_error_and_count()
    if w.spec.externally_provisioned:
        return w.transition(E.ADOPT_EXTERNAL)
    if w.host.inspection_disabled():
        w.event("InspectionSkipped", "Hardware inspection disabled")
        return w.transition(E.SKIP_INSPECTION)
    return w.transition(E.INSPECT)


def _is_libvirt(w: HostWork) -> bool:
    return w.spec.bmc.address.startswith("libvirt")


def handle_match_profile(w: HostWork, deps: Deps) -> outcome.Outcome:
    """Legacy state: straight on to preparing, with the error count reset (upstream
    handleMatchProfile)."""
    next_pass = w.transition(E.PREPARE)
    if w.status.error_count:
        w.set(error_count=0)
    return next_pass


def check_delayed_host(w: HostWork) -> outcome.Outcome | None:
    """Upstream checkDelayedHost, first step of the state pass: a host left `delayed` waits
    (counted on every such pass) until a slot is free, then the pass that finds one only
    clears the delay; the state handler runs on the next pass."""
    if w.status.operational_status != OS.DELAYED:
        return None
    if not w.provisioner().has_capacity():
        return w.delay(w.state)
    w.clear_error()
    return outcome.Outcome.after(0)


def check_delayed(w: HostWork) -> outcome.Outcome | None:
    """Upstream checkDelayedHost: start nothing without a provisioning slot (bmo.md 6.1).

    Runs on every pass in inspecting, provisioning and deprovisioning, in the same pass as the
    provisioner call it guards, so concurrent hosts cannot all pass the transition-time check
    and then start together.
    """
    if not w.provisioner().has_capacity():
        return w.delay(w.state)
    if w.status.operational_status == OS.DELAYED:
        w.set(operational_status=OS.OK)
    return None


def handle_inspecting(w: HostWork, deps: Deps) -> outcome.Outcome:
    delayed = check_delayed(w)
    if delayed is not None:
        return delayed
    refresh = annotations.inspection_requested(w.annotations)
    reboot = annotations.reboot_request(w.annotations)
    result = w.provisioner().inspect_hardware(
        ports.InspectData(
            boot_mode=w.spec.boot_mode or bmh.DEFAULT_BOOT_MODE,
            cpu_architecture=w.spec.architecture,
            inspection_mode=w.spec.inspection_mode,
        ),
        restart_on_failure=w.restart_on_failure(ET.INSPECTION),
        refresh=refresh,
        force_reboot=reboot is not None and reboot.force,
    )
    if result.started:
        if refresh:
            w.annotations.pop(bmh.INSPECT_ANNOTATION, None)
        if reboot is not None and reboot.force:
            for key in annotations.reboot_keys(w.annotations):
                w.annotations.pop(key)
    if result.result.error_message:
        return w.record_failure(ET.INSPECTION, result.result.error_message)
    if result.result.dirty:
        w.clear_error()
        return outcome.Outcome.after(result.result.requeue_after_s)
    if result.details is None:
        return outcome.Outcome.after(0)
    w.set(hardware=result.details)
    _save_hardware_data(w, deps, result.details)
    w.clear_error_and_count()
    w.event("InspectionComplete", "Hardware inspection completed")
    return w.transition(E.PREPARE)


def _save_hardware_data(w: HostWork, deps: Deps, details: hwd.HardwareDetails) -> None:
    """Create or replace the HardwareData CR (same name, owned by the host)."""
    host = w.host
    owner = meta.OwnerReference(
        api_version=host.api_version,
        kind=host.kind,
        name=host.metadata.name,
        uid=host.metadata.uid or "",
    )
    try:
        current = deps.store.get(hwd.HardwareData, host.key)
    except outcome.NotFound:
        deps.store.create(
            hwd.HardwareData(
                metadata=meta.ObjectMeta(
                    name=host.metadata.name,
                    namespace=host.metadata.namespace,
                    owner_references=(owner,),
                    finalizers=(HARDWARE_DATA_FINALIZER,),
                ),
                spec=hwd.HardwareDataSpec(hardware=details),
            )
        )
        return
    if current.spec.hardware != details:
        deps.store.update(
            change.replace(current, {"spec": hwd.HardwareDataSpec(hardware=details)})
        )


def _provisioning_settings_changed(w: HostWork) -> bool:
    """Root hints or RAID on spec differ from what was applied (status.provisioning)."""
    prov = w.status.provisioning
    hints = w.spec.root_device_hints
    if hints is not None and hints != prov.root_device_hints:
        return True
    return w.spec.raid is not None and w.spec.raid != prov.raid


def handle_preparing(w: HostWork, deps: Deps) -> outcome.Outcome:
    unprepared = _provisioning_settings_changed(w) or w.status.error_type == ET.PREPARATION
    firmware = servicing.prepare_targets(deps.store, w.host.key)  # HFS/HFC changes (H5)
    if isinstance(firmware, outcome.Outcome):
        return firmware  # their controllers have not caught up with the spec yet
    result, started = w.provisioner().prepare(
        firmware.apply_to(ports.PrepareData(
            target_raid_config=w.spec.raid,
            actual_raid_config=None
            if w.status.error_type == ET.PREPARATION
            else w.status.provisioning.raid,
            root_device_hints=w.spec.root_device_hints or w.status.provisioning.root_device_hints,
        )),
        unprepared=unprepared or firmware.dirty,
        restart_on_failure=w.restart_on_failure(ET.PREPARATION),
    )
    servicing.after_prepare(w, deps.store, firmware, result, started)
    if result.error_message:
        return w.record_failure(ET.PREPARATION, servicing.name_fields(
            result.error_message, firmware.settings, firmware.updates))
    if started and unprepared:
        w.set_provisioning(
            raid=w.spec.raid,
            root_device_hints=w.spec.root_device_hints or w.status.provisioning.root_device_hints,
        )
    if result.dirty:
        w.clear_error()
        return outcome.Outcome.after(result.requeue_after_s)
    w.clear_error_and_count()
    return w.transition(E.MAKE_AVAILABLE)


def needs_provisioning(w: HostWork) -> bool:
    """Upstream NeedsProvisioning: online, and an image or custom deploy not yet provisioned."""
    if not w.spec.online:
        return False
    image = w.spec.image
    if image is not None and image.url:
        return image.url != w.status.provisioning.image.url
    deploy = w.spec.custom_deploy
    return (
        deploy is not None and bool(deploy.method) and deploy != w.status.provisioning.custom_deploy
    )


def handle_available(w: HostWork, deps: Deps) -> outcome.Outcome:
    if w.spec.externally_provisioned:
        return w.transition(E.ADOPT_EXTERNAL)
    if annotations.inspection_requested(w.annotations):
        return w.transition(E.INSPECT)
    if _provisioning_settings_changed(w):
        return w.transition(E.PREPARE)
    if servicing.needs_preparing(deps.store, w.host.key):  # HFS/HFC changes (H5)
        return w.transition(E.PREPARE)
    image = w.spec.image
    if (image is None or not image.url) and w.status.provisioning_fail_count:
        w.set(provisioning_fail_count=0, last_attempted_image=None)
    if needs_provisioning(w):
        if image is not None and w.status.last_attempted_image != image:
            w.set(provisioning_fail_count=0)
        limit = deps.config.max_provisioning_retries
        fails = w.status.provisioning_fail_count
        if limit > 0 and fails >= limit:
            message = (
                f"provisioning failed {fails} times, retry limit ({limit}) reached;"
                " change image or reset provisioningFailCount to retry"
            )
            if w.status.error_message != message:
                return w.record_failure(ET.PROVISIONING, message)
            return host_power.manage(w, deps)
        if image is not None:
            w.set(last_attempted_image=image)
        return w.transition(E.PROVISION)
    return host_power.manage(w, deps)


def provisioning_cancelled(w: HostWork) -> bool:
    """Upstream provisioningCancelled: what is (being) deployed is no longer what spec asks.

    An empty status.provisioning.image is not a cancellation: a provisioned host whose
    status lost its image (restored from the status annotation, written by another
    controller) keeps running and stays provisioned (adopted, power managed). In
    `provisioning` the image being written is the last attempted one, so a change of
    spec.image there cancels too (upstream cannot see it: it records the deployed image only
    at the end).
    """
    spec, deployed = w.spec, w.status.provisioning
    spec_deploy = spec.custom_deploy.method if spec.custom_deploy else ""
    deployed_deploy = deployed.custom_deploy.method if deployed.custom_deploy else ""
    spec_url = spec.image.url if spec.image else ""
    if spec_deploy:
        if deployed_deploy and spec_deploy != deployed_deploy:
            return True
        return bool(deployed.image.url) and spec_url != deployed.image.url
    if deployed_deploy:
        return True
    if not spec_url:
        return True
    if w.state == S.PROVISIONING:
        attempted = w.status.last_attempted_image
        if attempted is not None and attempted.url and attempted.url != spec_url:
            return True
    return bool(deployed.image.url) and spec_url != deployed.image.url


def _host_config(w: HostWork, deps: Deps) -> ports.HostConfig:
    """Config-drive data from the user's Secrets (key named after the field, else `value`)."""

    def read(ref: meta.SecretReference | None, key: str) -> str | None:
        if ref is None or not ref.name:
            return None
        namespace = ref.namespace or w.host.metadata.namespace
        if namespace != w.host.metadata.namespace:
            raise outcome.PermanentError(f"{key} secret must be in namespace {namespace}")
        try:
            secret = deps.store.get(meta.Secret, meta.ObjectKey(namespace, ref.name))
        except outcome.NotFound:
            w.metrics.inc("metal3_host_config_data_error_total", {"host_data_type": key})
            raise outcome.TransientError(f"{key} secret {ref.name} not found") from None
        value = secret.value(key)
        return value if value is not None else secret.value("value")

    network_ref = w.spec.network_data
    if network_ref is None and w.spec.preprovisioning_network_data_name:
        network_ref = meta.SecretReference(name=w.spec.preprovisioning_network_data_name)
    return ports.HostConfig(
        user_data=read(w.spec.user_data, "userData"),
        network_data=read(network_ref, "networkData"),
        meta_data=read(w.spec.meta_data, "metaData"),
    )


def handle_provisioning(w: HostWork, deps: Deps) -> outcome.Outcome:
    if provisioning_cancelled(w):
        return w.transition(E.DEPROVISION)
    if w.status.error_type == ET.PROVISIONING:
        next_pass = w.transition(E.DEPROVISION)
        if w.state == S.DEPROVISIONING:  # not delayed for want of a slot: count it once
            w.set(provisioning_fail_count=w.status.provisioning_fail_count + 1)
        return next_pass
    delayed = check_delayed(w)
    if delayed is not None:
        return delayed
    reboot = annotations.reboot_request(w.annotations)
    w.annotations.pop(bmh.REBOOT_ANNOTATION_PREFIX, None)
    result = w.provisioner().provision(
        ports.ProvisionData(
            image=w.spec.image,
            host_config=_host_config(w, deps),
            boot_mode=w.spec.boot_mode or bmh.DEFAULT_BOOT_MODE,
            hardware_profile=w.status.hardware_profile,
            root_device_hints=w.status.provisioning.root_device_hints,
            custom_deploy=w.spec.custom_deploy,
        ),
        force_reboot=reboot is not None and reboot.force,
    )
    if result.error_message:
        return w.record_failure(ET.PROVISIONING, result.error_message)
    if result.dirty:
        w.clear_error()
        return outcome.Outcome.after(result.requeue_after_s)
    w.set_provisioning(
        image=w.spec.image or bmh.NO_IMAGE,
        custom_deploy=w.spec.custom_deploy,
    )
    w.set(provisioning_fail_count=0, powered_on=True)
    w.clear_error_and_count()
    w.event("ProvisioningComplete", "Image provisioning completed")
    return w.transition(E.COMPLETE_PROVISIONING)


def _adopt(w: HostWork) -> outcome.Outcome | None:
    """Make the provisioner treat the host as deployed; an Outcome while that is not done."""
    result = w.provisioner().adopt(
        w.state, restart_on_failure=w.restart_on_failure(ET.PROVISIONED_REGISTRATION)
    )
    if result.error_message:
        return w.record_failure(ET.PROVISIONED_REGISTRATION, result.error_message)
    if result.dirty:
        w.clear_error()  # upstream: adoption under way again, the old error is history
        return outcome.Outcome.after(result.requeue_after_s)
    if w.status.error_type == ET.PROVISIONED_REGISTRATION:
        w.clear_error_and_count()
    return None


def handle_provisioned(w: HostWork, deps: Deps) -> outcome.Outcome:
    if provisioning_cancelled(w):
        return w.transition(E.DEPROVISION)
    pending = _adopt(w)
    if pending is not None:
        return pending
    return host_power.manage(w, deps)


def handle_externally_provisioned(w: HostWork, deps: Deps) -> outcome.Outcome:
    if not w.spec.externally_provisioned:
        w.set_provisioning(image=w.spec.image or bmh.NO_IMAGE, custom_deploy=w.spec.custom_deploy)
        return w.transition(E.CLEAR_EXTERNAL)
    pending = _adopt(w)
    if pending is not None:
        return pending
    return host_power.manage(w, deps)


def handle_deprovisioning(w: HostWork, deps: Deps) -> outcome.Outcome:
    deployed = w.status.provisioning
    if deployed.image.url or deployed.custom_deploy is not None:
        # Upstream: adopt first, in case the host was re-registered mid-way.
        pending = _adopt(w)
        if pending is not None:
            failed = w.status.error_type == ET.PROVISIONED_REGISTRATION
            return (_give_up_deprovisioning(w) if failed else None) or pending
    delayed = check_delayed(w)
    if delayed is not None:
        return delayed
    w.annotations.pop(bmh.REBOOT_ANNOTATION_PREFIX, None)
    result = w.provisioner().deprovision(
        restart_on_failure=w.restart_on_failure(ET.PROVISIONING),
        automated_cleaning_mode=w.spec.automated_cleaning_mode,
    )
    if result.error_message:
        next_pass = w.record_failure(ET.PROVISIONING, result.error_message)
        return _give_up_deprovisioning(w) or next_pass
    if result.dirty:
        return outcome.Outcome.after(result.requeue_after_s)
    w.set_provisioning(image=bmh.NO_IMAGE, custom_deploy=None, root_device_hints=None)
    w.clear_error_and_count()
    w.event("DeprovisioningComplete", "Image deprovisioning completed")
    if w.deleting:
        return w.transition(E.POWER_OFF_BEFORE_DELETE)
    w.set_provisioning(
        root_device_hints=w.spec.root_device_hints
        or PROFILE_HINTS.get(w.status.hardware_profile or "unknown")
    )
    return w.transition(E.MAKE_AVAILABLE)


def _give_up_deprovisioning(w: HostWork) -> outcome.Outcome | None:
    """Upstream: a deleted host whose deprovisioning (or adoption) failed more than
    retryCount times goes on to power off and deletion."""
    if w.deleting and w.status.error_count > backoff.RETRY_COUNT:
        w.metrics.inc("metal3_delete_without_deprovisioning_total")
        return w.transition(E.POWER_OFF_BEFORE_DELETE)
    return None


def handle_powering_off_before_delete(w: HostWork, deps: Deps) -> outcome.Outcome:
    if w.spec.disable_power_off:
        return w.transition(E.DELETE)
    result = w.provisioner().power_off(ports.RebootMode.HARD, force=False)
    if result.error_message:
        next_pass = w.record_failure(ET.POWER_MANAGEMENT, result.error_message)
        if w.status.error_count > backoff.RETRY_COUNT:
            w.metrics.inc("metal3_delete_without_powering_off_total")
            return w.transition(E.DELETE)
        return next_pass
    if result.dirty:
        return outcome.Outcome.after(result.requeue_after_s)
    w.set(powered_on=False)
    w.clear_error_and_count()
    return w.transition(E.DELETE)


def handle_deleting(w: HostWork, deps: Deps) -> outcome.Outcome:
    if w.prov is not None:
        result = w.provisioner().delete()
        if result.error_message:
            return w.record_failure(ET.REGISTRATION, result.error_message)
        if result.dirty:
            return outcome.Outcome.after(result.requeue_after_s)
    if bmh.FINALIZER in w.finalizers:
        w.finalizers.remove(bmh.FINALIZER)
    return outcome.Outcome.done()


HANDLERS: dict[S, Handler] = {
    S.NONE: handle_none,
    S.UNMANAGED: handle_unmanaged,
    S.REGISTERING: handle_registering,
    S.MATCH_PROFILE: handle_match_profile,
    S.INSPECTING: handle_inspecting,
    S.PREPARING: handle_preparing,
    S.READY: handle_available,
    S.AVAILABLE: handle_available,
    S.PROVISIONING: handle_provisioning,
    S.PROVISIONED: handle_provisioned,
    S.EXTERNALLY_PROVISIONED: handle_externally_provisioned,
    S.DEPROVISIONING: handle_deprovisioning,
    S.POWERING_OFF_BEFORE_DELETE: handle_powering_off_before_delete,
    S.DELETING: handle_deleting,
}
