"""The HostFirmwareSettings/Components controllers skip recomputing status on a periodic pass
that reads what the last pass read over an unchanged object; nothing else may be hidden by
that: a spec change, a change on the hardware, a status write by the host's controller, and
the Events of invalid settings (upstream sends them on every pass) all go through."""

from metalcubed.core.api import hostfirmwarecomponents as hfc_api
from metalcubed.core.api import hostfirmwaresettings as hfs_api
from metalcubed.core.api import meta

from .test_hostfirmware import KEY, NS, World, _conditions

HFS = hfs_api.HostFirmwareSettings
HFC = hfc_api.HostFirmwareComponents


def _hfs(w: World) -> HFS:
    return w.store.get(HFS, KEY)


def _hfc(w: World) -> HFC:
    return w.store.get(HFC, KEY)


def _detected(obj: HFS | HFC) -> str:
    return next(c.status for c in obj.status.conditions if c.type == "ChangeDetected")


def test_settings_passes_over_an_unchanged_object_change_nothing_and_changes_still_show() -> None:
    w = World()
    w.settings({})
    w.hfs.reconcile(KEY)
    settled = _hfs(w)
    for _ in range(3):
        w.clock.advance(300)
        w.hfs.reconcile(KEY)
    assert _hfs(w).metadata.resource_version == settled.metadata.resource_version
    # the user's spec change
    w.store.update(settled.model_copy(update={"spec": hfs_api.HostFirmwareSettingsSpec(
        settings={"ProcVirtualization": "Enabled"})}))
    w.hfs.reconcile(KEY)
    assert _detected(_hfs(w)) == "True"
    # the hardware changes (a firmware job applied it): read, and the change is gone
    w.backend.node(KEY).firmware_settings["ProcVirtualization"] = "Enabled"
    w.hfs.reconcile(KEY)
    assert _hfs(w).status.settings["ProcVirtualization"] == "Enabled"
    assert _detected(_hfs(w)) == "False"


def test_invalid_settings_are_reported_on_every_pass() -> None:
    w = World()
    w.settings({"NetworkBootRetryCount": 1000})
    for _ in range(3):
        w.hfs.reconcile(KEY)
        w.clock.advance(60)
    reasons = [e.reason for e in w.events.events if e.reason == "ValidationFailed"]
    assert len(reasons) == 3
    assert ("Valid", "False", "ConfigurationError", "Invalid BIOS setting") in _conditions(_hfs(w))


def test_components_passes_see_the_host_controllers_status_write() -> None:
    w = World()
    update = hfc_api.FirmwareUpdate(component="bios", url="http://images.test/bios.fwimg")
    w.store.create(HFC(metadata=meta.ObjectMeta(name=KEY.name, namespace=NS),
                       spec=hfc_api.HostFirmwareComponentsSpec(updates=(update,))))
    w.hfc.reconcile(KEY)
    assert _detected(_hfc(w)) == "True"
    # the host's controller records the update as applied: no change left
    hfc = _hfc(w)
    w.store.update_status(hfc.model_copy(update={"status": hfc.status.model_copy(
        update={"updates": (update,)})}))
    w.hfc.reconcile(KEY)
    assert _detected(_hfc(w)) == "False"
    settled = _hfc(w).metadata.resource_version
    w.hfc.reconcile(KEY)
    assert _hfc(w).metadata.resource_version == settled
    # it failed: status.updates emptied again, pending again
    hfc = _hfc(w)
    w.store.update_status(hfc.model_copy(update={"status": hfc.status.model_copy(
        update={"updates": ()})}))
    w.hfc.reconcile(KEY)
    assert _detected(_hfc(w)) == "True"

