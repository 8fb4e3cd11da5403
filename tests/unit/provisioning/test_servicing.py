"""Servicing end to end in-process: the BareMetalHost, HostFirmwareSettings and
HostFirmwareComponents controllers over one MemoryStore, the engine over the rig's emulated
hosts, in virtual time. A provisioned host whose HostUpdatePolicy allows it gets its BIOS
settings changed and its firmware updated when it is rebooted, and its disk is left alone."""

import random

from metalcubed.core import outcome
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import firmwareschema, meta
from metalcubed.core.api import hostfirmwarecomponents as hfc_api
from metalcubed.core.api import hostfirmwaresettings as hfs_api
from metalcubed.core.api import hostupdatepolicy as hup_api
from metalcubed.core.reconcilers import hostfirmwarecomponents, hostfirmwaresettings

from .rig import IMAGE_URL
from .test_with_reconciler import IMG, World

S = bmh.ProvisioningState
OS = bmh.OperationalStatus
BIOS_URL = "http://images.test/firmware/bios-2.2.0.fwimg"


class AllControllers:
    """The three controllers on one key, sub-resources first (what the host's controller
    reads must be current), as one reconciler for the test loop; records each operational
    status the host passes through."""

    def __init__(self, w: World) -> None:
        self.store = w.store
        self.controllers = (
            hostfirmwaresettings.HostFirmwareSettingsReconciler(
                store=w.store, provisioner_factory=w.rig.engine, clock=w.rig.clock,
                events=w.events, rng=random.Random(2)),
            hostfirmwarecomponents.HostFirmwareComponentsReconciler(
                store=w.store, provisioner_factory=w.rig.engine, clock=w.rig.clock,
                events=w.events, rng=random.Random(3)),
            w.reconciler,
        )
        self.seen: list[OS] = []

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        delays = []
        for controller in self.controllers:
            result = controller.reconcile(key)
            if result.requeue_after_s is not None:
                delays.append(result.requeue_after_s)
        status = self.store.get(bmh.BareMetalHost, key).status.operational_status
        if not self.seen or self.seen[-1] != status:
            self.seen.append(status)
        return outcome.Outcome.after(min(delays)) if delays else outcome.Outcome.done()


def _world() -> tuple[World, AllControllers, meta.ObjectKey]:
    w = World()
    w.rig.hosts.clear()
    controllers = AllControllers(w)
    w.loop.reconciler = controllers  # type: ignore[assignment]
    host = w.rig.add_host(virtual_time=True)
    obj = bmh.BareMetalHost(
        metadata=meta.ObjectMeta(name=host.key.name, namespace=host.key.namespace),
        spec=bmh.BareMetalHostSpec.model_validate({
            "online": True, "bmc": {"address": host.address, "credentialsName": "bmc"},
            "bootMACAddress": host.mac}),
    )
    key = w.store.create(obj).key
    w.loop.add([key])
    w.loop.run_until(lambda: w.all_in([key], S.AVAILABLE))
    w.edit(key, image=IMG)
    w.loop.run_until(lambda: w.all_in([key], S.PROVISIONED) and w.loop.host(key).status.powered_on)
    return w, controllers, key


def _hfs(w: World, key: meta.ObjectKey) -> hfs_api.HostFirmwareSettings:
    return w.store.get(hfs_api.HostFirmwareSettings, key)


def _hfc(w: World, key: meta.ObjectKey) -> hfc_api.HostFirmwareComponents:
    return w.store.get(hfc_api.HostFirmwareComponents, key)


def _policy(w: World, key: meta.ObjectKey) -> None:
    w.store.create(hup_api.HostUpdatePolicy(
        metadata=meta.ObjectMeta(name=key.name, namespace=key.namespace),
        spec=hup_api.HostUpdatePolicySpec(firmware_settings=hup_api.UpdatePolicy.ON_REBOOT,
                                          firmware_updates=hup_api.UpdatePolicy.ON_REBOOT)))


def _want(w: World, key: meta.ObjectKey, settings: dict[str, int | str],
          updates: tuple[hfc_api.FirmwareUpdate, ...] = ()) -> None:
    hfs = _hfs(w, key)
    w.store.update(hfs.model_copy(update={"spec": hfs_api.HostFirmwareSettingsSpec(
        settings=settings)}))
    if updates:
        hfc = _hfc(w, key)
        w.store.update(hfc.model_copy(update={"spec": hfc_api.HostFirmwareComponentsSpec(
            updates=updates)}))
    w.loop.poke(key)


def _reboot(w: World, key: meta.ObjectKey) -> None:
    host = w.loop.host(key)
    w.store.update(host.with_meta(annotations={**host.metadata.annotations,
                                               bmh.REBOOT_ANNOTATION_PREFIX: ""}))
    w.loop.poke(key)


def _settled(w: World, key: meta.ObjectKey) -> bool:
    host = w.loop.host(key)
    return (host.status.operational_status in (OS.OK, OS.ERROR) and host.status.powered_on
            and bmh.REBOOT_ANNOTATION_PREFIX not in host.metadata.annotations)


def test_registration_creates_the_sub_resources_and_their_controllers_fill_them() -> None:
    w, _, key = _world()
    hfs = _hfs(w, key)
    host = w.loop.host(key)
    assert [(o.kind, o.name) for o in hfs.metadata.owner_references] == [
        ("BareMetalHost", key.name)]
    assert hfs.status.settings["ProcVirtualization"] == "Enabled"
    assert hfs.status.schema_ is not None
    schema = w.store.get(firmwareschema.FirmwareSchema,
                         meta.ObjectKey(key.namespace, hfs.status.schema_.name))
    assert schema.spec.schema_["PxeRetryCount"].upper_bound == 10
    assert [o.name for o in schema.metadata.owner_references] == [key.name]
    conditions = {c.type: c.status for c in hfs.status.conditions}
    assert conditions == {"Valid": "True", "ChangeDetected": "False"}
    hfc = _hfc(w, key)
    assert {c.component: c.current_version for c in hfc.status.components} == {
        "bios": "2.1.7", "bmc": "5.10.00"}
    assert host.status.operational_status == OS.OK


def test_a_rebooted_host_is_serviced_and_its_workload_untouched() -> None:
    w, controllers, key = _world()
    model = w.rig.hosts[0].model
    disk = w.rig.emulator.disk(model)
    image_before, wipes_before = disk.image_url, disk.wipes
    _policy(w, key)
    _want(w, key, {"ProcVirtualization": "Disabled", "PxeRetryCount": 7},
          (hfc_api.FirmwareUpdate(component="bios", url=BIOS_URL),))
    w.loop.run_until(lambda: hfs_api.CHANGE_DETECTED in {
        c.type for c in _hfs(w, key).status.conditions if c.status == "True"})
    # No reboot, no servicing: the change waits.
    w.rig.clock.advance(600)
    w.loop.run_until(lambda: w.rig.clock.now() is not None, max_passes=50)
    assert model.bios()["ProcVirtualization"] == "Enabled"
    controllers.seen.clear()
    _reboot(w, key)
    w.loop.run_until(lambda: OS.SERVICING in controllers.seen and _settled(w, key))
    host = w.loop.host(key)
    assert host.status.operational_status == OS.OK, host.status.error_message
    assert controllers.seen[-1] == OS.OK
    assert host.status.provisioning.state == S.PROVISIONED
    assert host.status.provisioning.image.url == IMAGE_URL
    assert model.bios()["ProcVirtualization"] == "Disabled"
    assert model.bios()["PxeRetryCount"] == 7
    assert model.firmware()["bios"] == "2.2.0"
    disk = w.rig.emulator.disk(model)
    assert (disk.image_url, disk.wipes) == (image_before, wipes_before)
    hfc = _hfc(w, key)
    assert hfc.status.updates == hfc.spec.updates
    # The sub-resources' controllers see the new values on their next read.
    w.loop.run_until(lambda: _hfs(w, key).status.settings["ProcVirtualization"] == "Disabled"
                     and {c.type: c.status for c in _hfs(w, key).status.conditions}
                     ["ChangeDetected"] == "False"
                     and _hfc(w, key).status.components[0].last_version_flashed != "")
    components = {c.component: c for c in _hfc(w, key).status.components}
    assert components["bios"].current_version == components["bios"].last_version_flashed \
        == "2.2.0"
    assert components["bios"].initial_version == "2.1.7"


def test_a_failed_update_is_a_servicing_error_fixed_by_the_next_reboot() -> None:
    w, _, key = _world()
    model = w.rig.hosts[0].model
    _policy(w, key)
    wrong = "http://images.test/firmware/bmc-9.9.fwimg"  # an image for another component
    _want(w, key, {}, (hfc_api.FirmwareUpdate(component="bios", url=wrong),))
    w.loop.run_until(lambda: hfc_api.CHANGE_DETECTED in {
        c.type for c in _hfc(w, key).status.conditions if c.status == "True"})
    _reboot(w, key)
    w.loop.run_until(lambda: w.loop.host(key).status.error_type == bmh.ErrorType.SERVICING)
    host = w.loop.host(key)
    assert host.status.operational_status == OS.ERROR
    assert host.status.error_message.startswith(
        f"HostFirmwareComponents {key.name} spec.updates[0].url: firmware update of bios from "
        f"{wrong} failed: ")
    assert host.status.provisioning.state == S.PROVISIONED
    assert w.rig.emulator.disk(model).image_url == IMAGE_URL
    assert _hfc(w, key).status.updates == ()  # not applied: pending again
    # The user fixes the URL and reboots: serviced.
    _want(w, key, {}, (hfc_api.FirmwareUpdate(component="bios", url=BIOS_URL),))
    w.loop.run_until(lambda: _hfc(w, key).status.conditions[0].observed_generation
                     == _hfc(w, key).metadata.generation)
    _reboot(w, key)
    w.loop.run_until(lambda: w.loop.host(key).status.error_type == bmh.ErrorType.NONE
                     and _settled(w, key))
    assert model.firmware()["bios"] == "2.2.0"
    assert w.loop.host(key).status.operational_status == OS.OK


def test_an_invalid_setting_is_refused_on_its_object_and_never_serviced() -> None:
    w, controllers, key = _world()
    model = w.rig.hosts[0].model
    _policy(w, key)
    _want(w, key, {"PxeRetryCount": 50})
    w.loop.run_until(lambda: {c.type: c.status for c in _hfs(w, key).status.conditions}
                     .get("Valid") == "False")
    hfs = _hfs(w, key)
    valid = next(c for c in hfs.status.conditions if c.type == "Valid")
    assert (valid.reason, valid.message) == ("ConfigurationError", "Invalid BIOS setting")
    assert ("ValidationFailed", "Invalid BIOS setting: Setting PxeRetryCount is invalid, "
            "integer 50 is above maximum value 10") in [(r, m) for _n, r, m in w.events.items]
    controllers.seen.clear()
    _reboot(w, key)
    w.loop.run_until(lambda: _settled(w, key))
    assert OS.SERVICING not in controllers.seen
    assert model.bios()["PxeRetryCount"] == 3
    assert w.loop.host(key).status.operational_status == OS.OK


def test_without_a_policy_changes_wait_for_preparing() -> None:
    w, controllers, key = _world()
    model = w.rig.hosts[0].model
    _want(w, key, {"ProcVirtualization": "Disabled"})
    w.loop.run_until(lambda: hfs_api.CHANGE_DETECTED in {
        c.type for c in _hfs(w, key).status.conditions if c.status == "True"})
    controllers.seen.clear()
    _reboot(w, key)
    w.loop.run_until(lambda: _settled(w, key))
    assert OS.SERVICING not in controllers.seen
    assert model.bios()["ProcVirtualization"] == "Enabled"
    # Deprovisioned and prepared again (spec.image removed, then back): applied in preparing.
    w.edit(key, image=None)
    w.loop.run_until(lambda: w.all_in([key], S.PREPARING))  # available -> preparing
    w.loop.run_until(lambda: w.all_in([key], S.AVAILABLE))
    assert model.bios()["ProcVirtualization"] == "Disabled"
    assert w.loop.host(key).status.operational_status == OS.OK
