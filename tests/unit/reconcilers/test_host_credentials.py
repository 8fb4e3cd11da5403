"""Bad BMC details and credentials: upstream's errorType, status and Event; no tight loop."""

import pytest

from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta

from .conftest import NS, Harness, b64

S = bmh.ProvisioningState
ET = bmh.ErrorType
OS = bmh.OperationalStatus


def _registering_with(h: Harness, **spec: object) -> meta.ObjectKey:
    key = h.add_host(**spec)
    h.step(key)  # finalizer
    h.step(key)  # none -> registering
    return key


def _assert_registration_error(h: Harness, key: meta.ObjectKey, text: str) -> bmh.BareMetalHost:
    host = h.host(key)
    assert host.status.provisioning.state == S.REGISTERING
    assert host.status.operational_status == OS.ERROR
    assert host.status.error_type == ET.REGISTRATION
    assert text in host.status.error_message
    assert "BMCCredentialError" in h.events.reasons()
    assert "RegistrationError" in h.events.reasons()
    conditions = {c.type: c for c in host.status.conditions}
    assert conditions["Manageable"].reason == "RegistrationFailed"
    return host


def test_missing_secret_is_a_registration_error_retried_every_10_s() -> None:
    h = Harness()
    key = _registering_with(h)
    assert h.step(key).requeue_after_s == 10
    host = _assert_registration_error(h, key, "The BMC secret metal3/bmc-creds does not exist")
    count, events, rv = host.status.error_count, len(h.events.items), host.metadata.resource_version
    # Nothing changed: the next passes neither write nor record more Events (no churn).
    for _ in range(5):
        assert h.step(key).requeue_after_s == 10
    again = h.host(key)
    assert again.metadata.resource_version == rv and again.status.error_count == count
    assert len(h.events.items) == events
    # The Secret appears: registration succeeds and the error clears.
    h.add_secret()
    host = h.drive_to(key, S.INSPECTING)
    assert host.status.error_type == ET.NONE and host.status.error_count == 0
    assert host.status.good_credentials.credentials is not None


@pytest.mark.parametrize(
    ("username", "password", "missing"),
    [("", "password", "username"), ("admin", "  ", "password")],
    ids=["empty-username", "blank-password"],
)
def test_incomplete_secret_is_a_registration_error_without_requeue(
    username: str, password: str, missing: str
) -> None:
    h = Harness()
    h.add_secret(username=username, password=password)
    key = _registering_with(h)
    assert h.step(key).is_done
    _assert_registration_error(h, key, f"'{missing}'")


def test_unknown_bmc_scheme_is_a_registration_error() -> None:
    h = Harness()
    h.add_secret()
    key = _registering_with(
        h, bmc=bmh.BMCDetails(address="foo://192.0.2.1", credentials_name="bmc-creds")
    )
    assert h.step(key).is_done
    _assert_registration_error(h, key, "Unknown BMC type 'foo'")


def test_empty_address_with_credentials_is_a_registration_error() -> None:
    h = Harness()
    h.add_secret()
    key = _registering_with(h, bmc=bmh.BMCDetails(address="", credentials_name="bmc-creds"))
    assert h.step(key).is_done
    _assert_registration_error(h, key, "'Address'")


def test_changed_credentials_are_sent_to_the_provisioner_again(harness: Harness) -> None:
    key = harness.add_host()
    host = harness.drive_to(key, S.AVAILABLE)
    first = host.status.good_credentials.credentials_version
    secret = harness.store.get(meta.Secret, meta.ObjectKey(NS, "bmc-creds"))
    harness.store.update(
        secret.model_copy(update={"data": {"username": b64("root"), "password": b64("new")}})
    )
    harness.step(key)
    host = harness.host(key)
    assert host.status.good_credentials.credentials_version != first
    assert host.status.tried_credentials == host.status.good_credentials


def test_credentials_never_appear_in_status_or_events() -> None:
    h = Harness()
    h.add_secret(username="admin", password="s3cr3t-pass")
    key = h.add_host()
    h.drive_to(key, S.AVAILABLE)
    dumped = h.host(key).model_dump_json()
    assert "s3cr3t-pass" not in dumped
    assert all("s3cr3t-pass" not in e.message for e in h.events.items)


def test_registration_metrics_count_as_upstream(harness: Harness) -> None:
    """Upstream registerHost/ensureRegistered: metal3_credentials_updated_total counts each new
    credentials version tried; metal3_host_registration_required_total each pass that
    registration did not finish (in progress or failed)."""
    key = harness.add_host()
    harness.drive_to(key, S.INSPECTING)
    counts = harness.metrics.counts
    assert counts["metal3_credentials_updated_total"] == 1
    assert counts["metal3_host_registration_required_total"] == 1  # the fixture's first call
    secret = harness.store.get(meta.Secret, meta.ObjectKey(NS, "bmc-creds"))
    harness.store.update(
        secret.model_copy(update={"data": {"username": b64("root"), "password": b64("new")}})
    )
    harness.step(key)
    assert counts["metal3_credentials_updated_total"] == 2
    harness.step(key)
    assert counts["metal3_credentials_updated_total"] == 2


def test_registration_in_progress_clears_an_earlier_error(harness: Harness) -> None:
    """Upstream registerHost: while registration is under way the earlier error is cleared
    (operationalStatus OK), and the count kept until the work succeeds."""
    harness.backend.fail("register", message="BMC rejected credentials", times=1)
    key = harness.add_host()
    host = harness.drive(key, lambda h: h.status.error_type == ET.REGISTRATION)
    assert host.status.error_count == 1
    # The fixture registers a new node in two calls: the first reports work in progress.
    host = harness.drive(key, lambda h: h.status.error_type == ET.NONE)
    assert host.status.provisioning.state == S.REGISTERING
    assert host.status.operational_status == OS.OK
    assert host.status.error_count == 1
