"""One test per row of upstream's transition table (bmo.md 2.3) and delete routing."""

import json

import pytest

from metalcubed.core import backoff
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import hardwaredata as hwd
from metalcubed.core.api import meta

from .conftest import IMAGE, NS, Harness

S = bmh.ProvisioningState
OS = bmh.OperationalStatus
ET = bmh.ErrorType


def available(h: Harness, name: str = "host-0", **spec: object) -> meta.ObjectKey:
    key = h.add_host(name, **spec)
    h.drive_to(key, S.AVAILABLE)
    return key


def provisioned(h: Harness, name: str = "host-0", **spec: object) -> meta.ObjectKey:
    key = available(h, name, **spec)
    h.edit_spec(key, image=IMAGE)
    h.drive_to(key, S.PROVISIONED)
    return key


def test_new_host_with_bmc_details_starts_registering(harness: Harness) -> None:
    key = harness.add_host()
    harness.step(key)  # adds the finalizer
    harness.step(key)
    host = harness.host(key)
    assert host.status.provisioning.state == S.REGISTERING
    assert bmh.FINALIZER in host.metadata.finalizers
    assert host.status.operation_history.register.start is not None


def test_new_host_without_bmc_details_is_unmanaged_and_discovered(harness: Harness) -> None:
    key = harness.add_host(bmc=bmh.NO_BMC)
    host = harness.drive_to(key, S.UNMANAGED)
    assert host.status.operational_status == OS.DISCOVERED
    assert "Discovered" in harness.events.reasons()
    assert harness.step(key).requeue_after_s == 600


def test_unmanaged_host_registers_once_bmc_details_appear(harness: Harness) -> None:
    key = harness.add_host(bmc=bmh.NO_BMC)
    harness.drive_to(key, S.UNMANAGED)
    harness.edit_spec(
        key, bmc=bmh.BMCDetails(address="ipmi://192.0.2.1", credentials_name="bmc-creds")
    )
    host = harness.drive_to(key, S.REGISTERING)
    assert host.status.operational_status == OS.OK


def test_deleting_an_unmanaged_host_removes_it(harness: Harness) -> None:
    key = harness.add_host(bmc=bmh.NO_BMC)
    harness.drive_to(key, S.UNMANAGED)
    harness.delete_and_drive_away(key)
    assert harness.backend.node(key).calls.get("power_off", 0) == 0


def test_deleting_a_registering_host_skips_power_off(harness: Harness) -> None:
    key = harness.add_host()
    harness.drive_to(key, S.REGISTERING)
    harness.delete_and_drive_away(key)
    assert harness.backend.node(key).calls.get("power_off", 0) == 0


def test_registration_failure_stays_registering_with_registration_error(
    harness: Harness,
) -> None:
    harness.backend.fail("register", message="BMC rejected credentials", times=1)
    key = harness.add_host()
    harness.drive_to(key, S.REGISTERING)
    host = harness.drive(key, lambda h: h.status.error_type == ET.REGISTRATION)
    assert host.status.provisioning.state == S.REGISTERING
    assert host.status.operational_status == OS.ERROR
    assert host.status.error_count == 1
    assert "RegistrationError" in harness.events.reasons()
    # The failure was one-off: the next attempt registers and moves on with errorCount reset.
    host = harness.drive_to(key, S.INSPECTING)
    assert host.status.error_count == 0 and host.status.error_type == ET.NONE


def test_registered_externally_provisioned_host_is_adopted(harness: Harness) -> None:
    key = harness.add_host(externally_provisioned=True)
    harness.drive_to(key, S.EXTERNALLY_PROVISIONED)


@pytest.mark.parametrize("how", ["spec", "annotation"])
def test_registered_host_with_inspection_disabled_goes_to_preparing(
    harness: Harness, how: str
) -> None:
    if how == "spec":
        key = harness.add_host(inspection_mode=bmh.InspectionMode.DISABLED)
    else:
        key = harness.add_host(annotations={bmh.INSPECT_ANNOTATION: "disabled"})
    harness.drive_to(key, S.REGISTERING)
    harness.drive(key, lambda h: h.status.provisioning.state != S.REGISTERING)
    assert harness.state(key) == S.PREPARING
    assert "InspectionSkipped" in harness.events.reasons()
    assert harness.backend.node(key).calls.get("inspect_hardware", 0) == 0


def test_registered_host_is_inspected_and_hardware_data_created(harness: Harness) -> None:
    key = harness.add_host()
    harness.drive_to(key, S.INSPECTING)
    host = harness.drive_to(key, S.PREPARING)
    assert host.status.hardware is not None
    assert host.status.hardware.ram_mebibytes == 128 * 1024
    data = harness.store.get(hwd.HardwareData, key)
    assert data.spec.hardware == host.status.hardware
    assert data.metadata.owner_references[0].name == key.name


def test_no_capacity_delays_inspection(harness: Harness) -> None:
    harness.backend.capacity = False
    key = harness.add_host()
    harness.drive_to(key, S.REGISTERING)
    host = harness.drive(key, lambda h: h.status.operational_status == OS.DELAYED)
    assert host.status.provisioning.state == S.REGISTERING
    delay = harness.step(key).requeue_after_s
    assert delay is not None and 60 < delay <= 120
    harness.backend.capacity = True
    host = harness.drive_to(key, S.INSPECTING)
    assert host.status.operational_status == OS.OK


def test_inspection_failure_stays_inspecting_with_inspection_error(harness: Harness) -> None:
    harness.backend.fail("inspect_hardware", message="timeout reached while inspecting")
    key = harness.add_host()
    harness.drive_to(key, S.INSPECTING)
    host = harness.drive(key, lambda h: h.status.error_type == ET.INSPECTION)
    assert host.status.provisioning.state == S.INSPECTING
    assert host.status.error_message == "timeout reached while inspecting"
    host = harness.drive_to(key, S.PREPARING)
    assert host.status.error_count == 0


def test_match_profile_goes_straight_to_preparing(harness: Harness) -> None:
    key = harness.add_host()
    harness.drive_to(key, S.INSPECTING)
    host = harness.host(key)
    legacy = host.status.model_copy(
        update={
            "provisioning": host.status.provisioning.model_copy(update={"state": S.MATCH_PROFILE})
        }
    )
    harness.store.update_status(host.model_copy(update={"status": legacy}))
    harness.drive_to(key, S.PREPARING)


def test_preparing_completes_to_available(harness: Harness) -> None:
    key = harness.add_host()
    harness.drive_to(key, S.PREPARING)
    host = harness.drive_to(key, S.AVAILABLE)
    assert host.status.error_count == 0


def test_preparation_failure_stays_preparing(harness: Harness) -> None:
    harness.backend.fail("prepare", message="RAID config failed")
    key = harness.add_host()
    harness.drive_to(key, S.PREPARING)
    host = harness.drive(key, lambda h: h.status.error_type == ET.PREPARATION)
    assert host.status.provisioning.state == S.PREPARING
    harness.drive_to(key, S.AVAILABLE)


def test_available_host_becomes_externally_provisioned(harness: Harness) -> None:
    key = available(harness)
    harness.edit_spec(key, externally_provisioned=True)
    harness.drive_to(key, S.EXTERNALLY_PROVISIONED)


def test_inspect_annotation_reinspects_an_available_host(harness: Harness) -> None:
    key = available(harness)
    calls = harness.backend.node(key).calls["inspect_hardware"]
    harness.set_annotation(key, bmh.INSPECT_ANNOTATION, "")
    host = harness.drive_to(key, S.INSPECTING)
    harness.step(key)
    assert bmh.INSPECT_ANNOTATION not in harness.host(key).metadata.annotations
    host = harness.drive_to(key, S.AVAILABLE)
    assert harness.backend.node(key).calls["inspect_hardware"] > calls
    assert host.status.hardware is not None


def test_changed_root_device_hints_send_available_host_to_preparing(harness: Harness) -> None:
    key = available(harness)
    harness.edit_spec(key, root_device_hints=bmh.RootDeviceHints(device_name="/dev/sdb"))
    harness.drive_to(key, S.PREPARING)
    host = harness.drive_to(key, S.AVAILABLE)
    assert host.status.provisioning.root_device_hints == bmh.RootDeviceHints(device_name="/dev/sdb")


def test_image_provisions_an_available_host(harness: Harness) -> None:
    key = available(harness)
    harness.edit_spec(key, image=IMAGE)
    harness.drive_to(key, S.PROVISIONING)
    host = harness.drive_to(key, S.PROVISIONED)
    assert host.status.provisioning.image == IMAGE
    assert host.status.error_count == 0 and host.status.provisioning_fail_count == 0
    assert host.status.operation_history.provision.end is not None


def test_no_capacity_delays_provisioning(harness: Harness) -> None:
    key = available(harness)
    harness.backend.capacity = False
    harness.edit_spec(key, image=IMAGE)
    host = harness.drive(key, lambda h: h.status.operational_status == OS.DELAYED)
    assert host.status.provisioning.state == S.AVAILABLE
    assert harness.metrics.counts["metal3_delayed__provisioning_total"] == 1
    harness.step(key)  # still no slot: counted again on every delayed pass (upstream)
    assert harness.metrics.counts["metal3_delayed__provisioning_total"] == 2
    harness.backend.capacity = True
    harness.drive_to(key, S.PROVISIONED)
    assert harness.metrics.counts["metal3_delayed__provisioning_total"] == 2


def test_failed_provisioning_deprovisions_and_retries_until_the_limit() -> None:
    h = Harness(max_provisioning_retries=2)
    h.add_secret()
    key = available(h)
    h.backend.fail("provision", message="disk write failed", times=100)
    h.edit_spec(key, image=IMAGE)
    host = h.drive(
        key,
        lambda x: "retry limit" in x.status.error_message,
        max_passes=200,
    )
    assert host.status.provisioning.state == S.AVAILABLE
    assert host.status.provisioning_fail_count == 2
    assert host.status.error_message == (
        "provisioning failed 2 times, retry limit (2) reached;"
        " change image or reset provisioningFailCount to retry"
    )
    assert h.backend.node(key).calls["provision"] == 2
    # Stopped: further passes do not provision again.
    for _ in range(5):
        h.step(key)
    assert h.backend.node(key).calls["provision"] == 2
    # A new image resets the count and provisions again.
    h.backend.clear_failures()
    h.edit_spec(key, image=bmh.Image(url="http://images.example/v2.qcow2", checksum="ff"))
    host = h.drive_to(key, S.PROVISIONED)
    assert host.status.provisioning_fail_count == 0


def test_provisioning_error_moves_to_deprovisioning(harness: Harness) -> None:
    key = available(harness)
    harness.backend.fail("provision", message="boom")
    harness.edit_spec(key, image=IMAGE)
    harness.drive(key, lambda h: h.status.error_type == ET.PROVISIONING)
    host = harness.drive_to(key, S.DEPROVISIONING)
    assert host.status.provisioning_fail_count == 1


def test_clearing_the_image_cancels_provisioning(harness: Harness) -> None:
    key = available(harness)
    harness.edit_spec(key, image=IMAGE)
    harness.drive_to(key, S.PROVISIONING)
    harness.edit_spec(key, image=None)
    harness.drive_to(key, S.DEPROVISIONING)
    harness.drive_to(key, S.AVAILABLE)


def test_clearing_the_image_deprovisions_a_provisioned_host(harness: Harness) -> None:
    key = provisioned(harness)
    harness.edit_spec(key, image=None)
    harness.drive_to(key, S.DEPROVISIONING)
    host = harness.drive_to(key, S.AVAILABLE)
    assert host.status.provisioning.image.url == ""
    assert "DeprovisioningComplete" in harness.events.reasons()


def test_provisioned_host_stays_and_manages_power(harness: Harness) -> None:
    key = provisioned(harness)
    harness.edit_spec(key, online=False)
    host = harness.drive(key, lambda h: not h.status.powered_on)
    assert host.status.provisioning.state == S.PROVISIONED
    assert "PowerOff" in harness.events.reasons()
    assert harness.step(key).requeue_after_s == 60


def test_externally_provisioned_host_stays_while_flag_set(harness: Harness) -> None:
    key = harness.add_host(externally_provisioned=True)
    harness.drive_to(key, S.EXTERNALLY_PROVISIONED)
    for _ in range(4):
        harness.step(key)
    assert harness.state(key) == S.EXTERNALLY_PROVISIONED
    assert harness.backend.node(key).adopted


def test_clearing_externally_provisioned_with_image_keeps_it_provisioned(
    harness: Harness,
) -> None:
    key = harness.add_host(externally_provisioned=True, image=IMAGE)
    harness.drive_to(key, S.EXTERNALLY_PROVISIONED)
    harness.edit_spec(key, externally_provisioned=False)
    host = harness.drive_to(key, S.PROVISIONED)
    assert host.status.provisioning.image == IMAGE
    for _ in range(3):
        harness.step(key)
    assert harness.state(key) == S.PROVISIONED


def test_clearing_externally_provisioned_without_image_deprovisions(harness: Harness) -> None:
    key = harness.add_host(externally_provisioned=True)
    harness.drive_to(key, S.EXTERNALLY_PROVISIONED)
    harness.edit_spec(key, externally_provisioned=False)
    harness.drive_to(key, S.PROVISIONED)
    harness.drive_to(key, S.DEPROVISIONING)
    harness.drive_to(key, S.AVAILABLE)


def test_deleting_a_provisioned_host_deprovisions_powers_off_and_deletes(
    harness: Harness,
) -> None:
    key = provisioned(harness)
    harness.store.delete(bmh.BareMetalHost, key)
    harness.drive_to(key, S.DEPROVISIONING)
    harness.drive_to(key, S.POWERING_OFF_BEFORE_DELETE)
    harness.drive_to(key, S.DELETING)
    assert harness.host(key).status.powered_on is False
    harness.delete_and_drive_away(key)


def test_deprovision_failures_while_deleting_give_up_after_retry_count(
    harness: Harness,
) -> None:
    key = provisioned(harness)
    harness.backend.fail("deprovision", message="clean failed", times=100)
    harness.store.delete(bmh.BareMetalHost, key)
    host = harness.drive(
        key,
        lambda h: (
            h.status.provisioning.state != S.DEPROVISIONING
            and h.status.provisioning.state != S.PROVISIONED
        ),
        max_passes=100,
    )
    assert host.status.provisioning.state == S.POWERING_OFF_BEFORE_DELETE
    assert harness.metrics.counts["metal3_delete_without_deprovisioning_total"] == 1
    harness.delete_and_drive_away(key)


def test_power_off_failures_before_delete_give_up_after_retry_count(harness: Harness) -> None:
    key = available(harness)
    harness.backend.fail("power_off", message="BMC timeout", times=100)
    harness.store.delete(bmh.BareMetalHost, key)
    harness.drive_to(key, S.POWERING_OFF_BEFORE_DELETE)
    harness.drive_to(key, S.DELETING)
    assert harness.metrics.counts["metal3_delete_without_powering_off_total"] == 1
    harness.delete_and_drive_away(key)


@pytest.mark.parametrize(
    ("setup", "route"),
    [
        ("available", S.POWERING_OFF_BEFORE_DELETE),
        ("inspecting", S.POWERING_OFF_BEFORE_DELETE),
        ("externally provisioned", S.POWERING_OFF_BEFORE_DELETE),
        ("provisioned", S.DEPROVISIONING),
    ],
)
def test_delete_routing(harness: Harness, setup: str, route: S) -> None:
    if setup == "externally provisioned":
        key = harness.add_host(externally_provisioned=True)
    else:
        key = harness.add_host()
    if setup == "provisioned":
        harness.drive_to(key, S.AVAILABLE)
        harness.edit_spec(key, image=IMAGE)
    harness.drive_to(key, S(setup))
    harness.store.delete(bmh.BareMetalHost, key)
    harness.step(key)
    assert harness.state(key) == route
    harness.delete_and_drive_away(key, max_passes=80)


def test_paused_host_is_left_alone(harness: Harness) -> None:
    key = harness.add_host(annotations={bmh.PAUSED_ANNOTATION: "user"})
    for _ in range(3):
        assert harness.step(key).is_done
    host = harness.host(key)
    assert host.status.provisioning.state == S.NONE
    assert host.metadata.finalizers == ()


def test_detached_provisioned_host_is_left_alone_then_reattached(harness: Harness) -> None:
    key = provisioned(harness)
    harness.set_annotation(key, bmh.DETACHED_ANNOTATION, "")
    host = harness.drive(key, lambda h: h.status.operational_status == OS.DETACHED)
    assert host.status.provisioning.state == S.PROVISIONED
    assert harness.backend.node(key).deleted
    assert harness.step(key).requeue_after_s == 600
    harness.set_annotation(key, bmh.DETACHED_ANNOTATION, None)
    host = harness.drive(key, lambda h: h.status.operational_status == OS.OK)
    for _ in range(4):
        harness.step(key)
    host = harness.host(key)
    assert host.status.provisioning.state == S.PROVISIONED
    assert harness.backend.node(key).registered


def test_deleting_a_detached_host_skips_deprovisioning(harness: Harness) -> None:
    key = provisioned(harness)
    harness.set_annotation(key, bmh.DETACHED_ANNOTATION, "")
    harness.drive(key, lambda h: h.status.operational_status == OS.DETACHED)
    harness.delete_and_drive_away(key)
    assert harness.backend.node(key).calls.get("deprovision", 0) == 0


def test_detached_with_delay_action_holds_the_delete(harness: Harness) -> None:
    key = provisioned(harness)
    harness.set_annotation(key, bmh.DETACHED_ANNOTATION, json.dumps({"deleteAction": "delay"}))
    harness.drive(key, lambda h: h.status.operational_status == OS.DETACHED)
    harness.store.delete(bmh.BareMetalHost, key)
    for _ in range(3):
        assert harness.step(key).requeue_after_s == 600
    assert harness.state(key) == S.PROVISIONED
    assert harness.metrics.counts["metal3_delete_delayed_for_detached_total"] == 3


def test_detach_of_inspecting_host_waits_without_force(harness: Harness) -> None:
    key = harness.add_host()
    harness.drive_to(key, S.INSPECTING)
    harness.set_annotation(key, bmh.DETACHED_ANNOTATION, "")
    harness.drive_to(key, S.AVAILABLE)  # inspection went on; detach waited for a stable state
    host = harness.drive(key, lambda h: h.status.operational_status == OS.DETACHED)
    assert host.status.provisioning.state == S.AVAILABLE


def test_status_annotation_restores_status(harness: Harness) -> None:
    key = provisioned(harness)
    saved = harness.host(key).status.model_copy(update={"last_updated": None})
    harness.store.delete(bmh.BareMetalHost, key)
    # Pivot: the host is recreated elsewhere with its status in the annotation.
    h2 = Harness()
    h2.add_secret()
    key2 = h2.add_host(
        image=IMAGE,
        annotations={bmh.STATUS_ANNOTATION: json.dumps(saved.to_wire())},
    )
    h2.step(key2)
    host = h2.host(key2)
    assert host.status.provisioning.state == S.PROVISIONED
    assert bmh.STATUS_ANNOTATION not in host.metadata.annotations
    h2.drive(key2, lambda h: bmh.FINALIZER in h.metadata.finalizers)
    for _ in range(4):
        h2.step(key2)
    assert h2.state(key2) == S.PROVISIONED
    assert h2.backend.node(key2).calls.get("provision", 0) == 0


def test_hardware_details_annotation_used_when_inspection_disabled(harness: Harness) -> None:
    details = {"ramMebibytes": 4096, "cpu": {"arch": "aarch64", "count": 4}}
    key = harness.add_host(
        inspection_mode=bmh.InspectionMode.DISABLED,
        annotations={bmh.HARDWARE_DETAILS_ANNOTATION: json.dumps(details)},
    )
    harness.step(key)
    host = harness.host(key)
    assert host.status.hardware is not None and host.status.hardware.ram_mebibytes == 4096
    assert bmh.HARDWARE_DETAILS_ANNOTATION not in host.metadata.annotations
    assert "UpdateHardwareDetails" in harness.events.reasons()


def test_reboot_annotation_power_cycles_a_provisioned_host(harness: Harness) -> None:
    key = provisioned(harness)
    harness.set_annotation(key, bmh.REBOOT_ANNOTATION_PREFIX, "")
    harness.drive(key, lambda h: not h.status.powered_on)
    host = harness.drive(key, lambda h: h.status.powered_on)
    assert bmh.REBOOT_ANNOTATION_PREFIX not in host.metadata.annotations
    assert harness.events.reasons().count("PowerOff") == 1


def test_keyed_reboot_annotation_holds_the_host_off_until_removed(harness: Harness) -> None:
    key = provisioned(harness)
    harness.set_annotation(key, "reboot.metal3.io/remediation", json.dumps({"mode": "hard"}))
    harness.drive(key, lambda h: not h.status.powered_on)
    for _ in range(3):
        harness.step(key)
    assert harness.host(key).status.powered_on is False
    harness.set_annotation(key, "reboot.metal3.io/remediation", None)
    harness.drive(key, lambda h: h.status.powered_on)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 9, 12])
def test_failures_back_off_in_upstream_windows(harness: Harness, count: int) -> None:
    low, high = backoff.backoff_window_s(count)
    assert (low, high) == (60 * 2 ** min(count, 9) / 2, 60 * 2 ** min(count, 9))
    import random

    rng = random.Random(count)
    for _ in range(50):
        assert low < backoff.calculate_backoff_s(count, rng) <= high


def test_error_count_drives_the_requeue_delay(harness: Harness) -> None:
    harness.backend.fail("inspect_hardware", message="fail", times=3)
    key = harness.add_host()
    harness.drive_to(key, S.INSPECTING)
    seen = []
    for _ in range(10):
        result = harness.reconciler.reconcile(key)
        host = harness.host(key)
        if host.status.error_type == ET.INSPECTION and result.requeue_after_s:
            seen.append((host.status.error_count, result.requeue_after_s))
        harness.clock.advance(result.requeue_after_s or 0)
        if len(seen) == 3:
            break
    for count, delay in seen:
        low, high = backoff.backoff_window_s(count)
        assert low < delay <= high
    assert [c for c, _ in seen] == [1, 2, 3]


def test_namespace_constant_is_used() -> None:
    assert NS == "metal3"


def test_a_healthy_host_reports_operational_status_ok(harness: Harness) -> None:
    key = available(harness)
    assert harness.host(key).status.operational_status == OS.OK
