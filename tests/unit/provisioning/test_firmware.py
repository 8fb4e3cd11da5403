"""The engine's firmware work (core/provisioning/firmware.py) over the in-process rig: BIOS
settings and registry, firmware inventory, and firmware jobs while servicing (settings, then
updates; failures kept, restarted or aborted; a job survives a new provisioner)."""

import dataclasses
import datetime

from metalcubed.core import ports
from metalcubed.core.api import firmwareschema
from metalcubed.core.api import hostfirmwarecomponents as hfc
from metalcubed.core.provisioning import nodes
from metalcubed.simulators import hostmodel

from .rig import Host, Rig
from .test_engine import register

BIOS_URL = "http://images.test/firmware/bios-2.2.0.fwimg"
BMC_URL = "http://images.test/firmware/bmc-5.11.00.fwimg"


def _host(rig: Rig) -> Host:
    host = rig.add_host(power=hostmodel.Power.ON, virtual_time=True)
    assert register(rig, host) == ports.ProvisionResult.complete()
    return host


def _service(rig: Rig, host: Host, data: ports.ServicingData, *, restart: bool = False,
             passes: int = 20) -> tuple[ports.ProvisionResult, list[bool]]:
    """Call service as the host controller does: unprepared on the first call only."""
    started: list[bool] = []
    result = ports.ProvisionResult.complete()
    for index in range(passes):
        result, began = rig.prov(host).service(data, unprepared=index == 0,
                                               restart_on_failure=restart and index == 0)
        started.append(began)
        if not result.dirty:
            break
        rig.clock.advance(result.requeue_after_s)
    return result, started


def test_settings_and_registry_are_read_as_upstream_reports_them() -> None:
    rig = Rig()
    host = _host(rig)
    read = rig.prov(host).get_firmware_settings(include_schema=True)
    assert read.settings["ProcVirtualization"] == "Enabled"
    assert read.settings["PxeRetryCount"] == "3"
    assert read.settings["SecureBoot"] == "false"  # booleans as true/false text
    assert read.schema is not None
    assert read.schema["PxeRetryCount"] == firmwareschema.SettingSchema(
        attribute_type=firmwareschema.AttributeType.INTEGER, lower_bound=0, upper_bound=10,
        read_only=False, unique=False)
    assert read.schema["SystemServiceTag"].read_only
    assert rig.prov(host).get_firmware_settings(include_schema=False).schema is None


def test_components_keep_their_initial_version_and_the_last_one_flashed() -> None:
    rig = Rig()
    host = _host(rig)
    before = {c.component: c for c in rig.prov(host).get_firmware_components()}
    assert before["bios"].initial_version == before["bios"].current_version == "2.1.7"
    result, started = _service(rig, host, ports.ServicingData(
        target_firmware_components=(hfc.FirmwareUpdate(component="bios", url=BIOS_URL),),
        has_firmware_spec=True))
    assert result == ports.ProvisionResult.complete() and started[0]
    after = {c.component: c for c in rig.prov(host).get_firmware_components()}
    assert after["bios"].initial_version == "2.1.7"
    assert after["bios"].current_version == after["bios"].last_version_flashed == "2.2.0"
    assert after["bios"].updated_at == rig.clock.now()
    assert after["bmc"].last_version_flashed == ""
    assert ("FirmwareUpdated", f"Firmware component bios updated from {BIOS_URL}") in rig.events


def test_servicing_applies_settings_then_updates_waiting_out_the_bmc_reboot() -> None:
    rig = Rig()
    host = _host(rig)
    data = ports.ServicingData(
        target_firmware_settings={"ProcVirtualization": "Disabled", "PxeRetryCount": "5"},
        actual_firmware_settings={"ProcVirtualization": "Enabled", "PxeRetryCount": "3"},
        target_firmware_components=(hfc.FirmwareUpdate(component="bios", url=BIOS_URL),
                                    hfc.FirmwareUpdate(component="bmc", url=BMC_URL)),
        has_firmware_spec=True,
    )
    node_started = rig.clock.now()
    result, started = _service(rig, host, data)
    assert result == ports.ProvisionResult.complete()
    assert started[0] and not any(started[1:])
    assert host.model.bios()["ProcVirtualization"] == "Disabled"
    assert host.model.bios()["PxeRetryCount"] == 5
    assert host.model.firmware() == {"bios": "2.2.0", "bmc": "5.11.00"}
    # The BMC rebooted after its own update (90 s without an answer): waited for, not failed.
    assert rig.clock.now() - node_started >= datetime.timedelta(seconds=90)
    node = rig.node(host)
    assert node is not None and node.firmware_job is None and node.wait is None
    # Settings already in place need no job (updates are filtered by the host controller,
    # which records applied ones in HostFirmwareComponents status.updates).
    boots = len(host.model.boots)
    again, began = rig.prov(host).service(
        dataclasses.replace(data, target_firmware_components=()), unprepared=True,
        restart_on_failure=False)
    assert len(host.model.boots) == boots
    assert again == ports.ProvisionResult.complete() and began


def test_settings_already_in_place_are_left_out_of_the_job() -> None:
    rig = Rig()
    host = _host(rig)
    prov = rig.prov(host)
    result, started = prov.service(ports.ServicingData(
        target_firmware_settings={"ProcVirtualization": "Enabled"},
        actual_firmware_settings={"ProcVirtualization": "Enabled"}, has_firmware_spec=True),
        unprepared=True, restart_on_failure=False)
    assert (result, started) == (ports.ProvisionResult.complete(), True)
    assert len(host.model.boots) == 0  # no reboot for nothing


def test_a_failed_update_is_reported_until_restarted_and_the_job_survives_new_provisioners(
) -> None:
    rig = Rig()
    host = _host(rig)
    bad = "http://images.test/firmware/not-an-image.bin"
    data = ports.ServicingData(
        target_firmware_components=(hfc.FirmwareUpdate(component="bios", url=bad),),
        has_firmware_spec=True)
    result, _ = _service(rig, host, data)
    assert f"firmware update of bios from {bad} failed" in result.error_message
    node = rig.node(host)
    assert node is not None and node.firmware_job is not None
    assert node.firmware_job.failed == result.error_message
    # Not restarted: the same failure again, nothing started.
    assert rig.prov(host).service(data, unprepared=False, restart_on_failure=False) == (
        ports.ProvisionResult.failed(result.error_message), False)
    # The user fixes the URL; the host controller restarts on its servicing error.
    fixed = ports.ServicingData(
        target_firmware_components=(hfc.FirmwareUpdate(component="bios", url=BIOS_URL),),
        has_firmware_spec=True)
    result, started = _service(rig, host, fixed, restart=True)
    assert result == ports.ProvisionResult.complete() and started[0]
    assert host.model.firmware()["bios"] == "2.2.0"


def test_an_update_for_a_component_the_bmc_lacks_fails_the_job_naming_it() -> None:
    rig = Rig()
    host = _host(rig)
    result, _ = _service(rig, host, ports.ServicingData(
        target_firmware_components=(hfc.FirmwareUpdate(component="nic:NIC.Slot.9",
                                                       url=BIOS_URL),),
        has_firmware_spec=True))
    assert "no firmware component nic:NIC.Slot.9" in result.error_message
    node = rig.node(host)
    assert node is not None and node.firmware_job is not None and node.firmware_job.failed


def test_removing_the_spec_after_a_failure_aborts_the_job() -> None:
    rig = Rig()
    host = _host(rig)
    bad = "http://images.test/firmware/bios.txt"
    result, _ = _service(rig, host, ports.ServicingData(
        target_firmware_components=(hfc.FirmwareUpdate(component="bios", url=bad),),
        has_firmware_spec=True))
    assert result.error_message
    aborted, started = rig.prov(host).service(ports.ServicingData(has_firmware_spec=False),
                                              unprepared=False, restart_on_failure=True)
    assert aborted.dirty and started
    node = rig.node(host)
    assert node is not None and node.firmware_job is None
    assert rig.prov(host).service(ports.ServicingData(), unprepared=False,
                                  restart_on_failure=False) == (
        ports.ProvisionResult.complete(), False)


def test_prepare_runs_updates_too_and_reregistration_keeps_the_job() -> None:
    rig = Rig()
    host = _host(rig)
    data = ports.PrepareData(
        target_raid_config=None, actual_raid_config=None, root_device_hints=None,
        target_firmware_settings={"SriovGlobalEnable": "Enabled"},
        target_firmware_components=(hfc.FirmwareUpdate(component="bmc", url=BMC_URL),))
    result, started = rig.prov(host).prepare(data, unprepared=True, restart_on_failure=False)
    assert result.dirty and started
    job = rig.node(host).firmware_job  # type: ignore[union-attr]
    assert job is not None and job.purpose == nodes.Purpose.PREPARE
    register(rig, host)  # credentials changed: the record is rebuilt
    assert rig.node(host).firmware_job == job  # type: ignore[union-attr]
    for _ in range(20):
        rig.clock.advance(result.requeue_after_s)
        # The host controller no longer passes the updates once it saved them as applied.
        result, _ = rig.prov(host).prepare(
            ports.PrepareData(target_raid_config=None, actual_raid_config=None,
                              root_device_hints=None),
            unprepared=False, restart_on_failure=False)
        if not result.dirty:
            break
    assert result == ports.ProvisionResult.complete()
    assert host.model.bios()["SriovGlobalEnable"] == "Enabled"
    assert host.model.firmware()["bmc"] == "5.11.00"


def test_after_a_lost_record_servicing_waits_for_a_flash_the_bmc_still_runs() -> None:
    """The node table is in memory: a restarted manager has no job, but the BMC may still be
    flashing what the old one started. Servicing is not called done before the BMC is."""
    rig = Rig()
    host = rig.add_host(power=hostmodel.Power.ON, virtual_time=True)
    host.model.timing = dataclasses.replace(host.model.timing, firmware_update_s=600.0)
    register(rig, host)
    host.model.start_firmware_update("bios", BIOS_URL, version="2.2.0")  # the old manager's
    result, started = rig.prov(host).service(ports.ServicingData(has_firmware_spec=True),
                                             unprepared=False, restart_on_failure=False)
    assert result.dirty and not started
    rig.clock.advance(601)
    assert rig.prov(host).service(ports.ServicingData(has_firmware_spec=True), unprepared=False,
                                  restart_on_failure=False) == (
        ports.ProvisionResult.complete(), False)
    assert host.model.firmware()["bios"] == "2.2.0"


def test_the_registry_is_read_once_per_hour_and_again_after_a_firmware_job() -> None:
    """The settings are read from the BMC once and then served from the engine's record (as
    Ironic serves them from its database) until a firmware job runs; the registry is reused
    for an hour, and dropped by a job too (a BIOS update may bring a new one)."""
    rig = Rig()
    host = _host(rig)

    def reads() -> int:
        before = rig.bmcs.requests
        rig.prov(host).get_firmware_settings(include_schema=True)
        return rig.bmcs.requests - before

    first = reads()
    assert first == 2, "settings and registry"
    assert reads() == 0, "both served from the engine's record"
    rig.clock.advance(3601)
    assert reads() == 1, "the registry again after an hour"
    assert reads() == 0
    result, _ = _service(rig, host, ports.ServicingData(
        target_firmware_settings={"SriovGlobalEnable": "Enabled"}, has_firmware_spec=True))
    assert result == ports.ProvisionResult.complete()
    assert reads() == first, "a finished job drops what was read"
    got = rig.prov(host).get_firmware_settings(include_schema=False)
    assert got.settings["SriovGlobalEnable"] == "Enabled", "the read after a job is the BMC's"


def test_the_inventory_is_read_once_and_again_after_a_firmware_job() -> None:
    rig = Rig()
    host = _host(rig)

    def reads() -> tuple[int, dict[str, str]]:
        before = rig.bmcs.requests
        found = rig.prov(host).get_firmware_components()
        return rig.bmcs.requests - before, {c.component: c.current_version for c in found}

    first, versions = reads()
    assert first > 0 and versions["bios"] == "2.1.7"
    assert reads() == (0, versions), "served from the engine's record"
    result, _ = _service(rig, host, ports.ServicingData(
        target_firmware_components=(hfc.FirmwareUpdate(component="bios", url=BIOS_URL),),
        has_firmware_spec=True))
    assert result == ports.ProvisionResult.complete()
    count, after = reads()
    assert count > 0 and after["bios"] == "2.2.0", "the read after a job is the BMC's"


def test_a_restart_flashes_what_is_still_asked_and_completes_when_it_was_backed_out() -> None:
    """After a servicing error the host controller asks again for the failed update while its
    spec does (servicing.pending_updates): the restart flashes it again. Once the user removes
    it while other firmware spec remains (has_firmware_spec), a restart has nothing to do and
    completes, as upstream's restart with no service steps: the removed update is never
    flashed again."""
    rig = Rig()
    host = _host(rig)
    host.model.faults = dataclasses.replace(host.model.faults, update_failure_rate=1.0)
    data = ports.ServicingData(
        target_firmware_components=(hfc.FirmwareUpdate(component="bios", url=BIOS_URL),),
        has_firmware_spec=True)
    result, _ = _service(rig, host, data)
    assert result.error_message
    result, started = _service(rig, host, data, restart=True)
    assert result.error_message and started[0]
    assert len(host.model.firmware_tasks()) == 2, "flashed again, failed again"
    backed_out = ports.ServicingData(has_firmware_spec=True)
    result, started = _service(rig, host, backed_out, restart=True)
    assert result == ports.ProvisionResult.complete() and started[0]
    assert len(host.model.firmware_tasks()) == 2, "the removed update is not flashed again"
    assert host.model.firmware()["bios"] == "2.1.7"
    result, _ = _service(rig, host, backed_out)
    assert result == ports.ProvisionResult.complete(), "the failed job is gone"
