"""PreprovisioningImage, DataImage and BMCEventSubscription: models against upstream's CRDs, and
upstream's webhook rules (baremetal-operator 02aa5059e, internal/webhooks/metal3.io/v1alpha1:
dataimage_validation_test.go, bmceventsubscription_validation_test.go and
bmceventsubscription_webhook_test.go; each case is named after upstream's)."""

from typing import Any

import pytest

from metalcubed.core.api import bmceventsubscription as bes
from metalcubed.core.api import dataimage, meta, preprovisioningimage, validation
from tests.unit.api import crd_support
from tests.unit.api.test_bmh_model import full_instance, without_metadata

CRDS = [
    ("metal3.io_preprovisioningimages.yaml", preprovisioningimage.PreprovisioningImage),
    ("metal3.io_dataimages.yaml", dataimage.DataImage),
    ("metal3.io_bmceventsubscriptions.yaml", bes.BMCEventSubscription),
]


@pytest.mark.parametrize(("crd", "model"), CRDS, ids=[m.KIND for _, m in CRDS])
def test_every_crd_field_round_trips_under_its_wire_name(crd: str, model: Any) -> None:
    doc = full_instance(crd_support.load_crd_schema(crd))
    obj = model.from_wire(doc)
    assert without_metadata(obj.to_wire()) == without_metadata(doc)
    assert crd_support.schema_problems(crd, obj.to_wire()) == []


@pytest.mark.parametrize(("crd", "model"), CRDS, ids=[m.KIND for _, m in CRDS])
def test_a_new_object_written_by_us_passes_the_upstream_schema(crd: str, model: Any) -> None:
    obj = model(metadata=meta.ObjectMeta(name="worker-0", namespace="ns"))
    assert crd_support.schema_problems(crd, obj.to_wire()) == []


@pytest.mark.parametrize(("crd", "model"), CRDS, ids=[m.KIND for _, m in CRDS])
def test_the_kind_is_checked_by_validate(crd: str, model: Any) -> None:
    entry = validation.lookup(model.API_VERSION, model.KIND)
    assert entry is not None and entry.check == validation.Check.FULL and entry.model is model


def test_the_upstream_preprovisioningimage_sample_is_refused_like_kubectl_strict() -> None:
    """Upstream's config/samples document has `spec: {foo: bar}`, a field its CRD does not
    declare: kubectl's default (strict) field validation refuses it; so does `validate`."""
    (doc,) = [d for _, _, d in crd_support.examples() if d["kind"] == "PreprovisioningImage"]
    assert [str(e) for e in validation.validate_object(doc)] == ["spec.foo: unknown field"]
    del doc["spec"]["foo"]
    assert validation.validate_object(doc) == []


def test_accept_formats_are_upstreams_enum() -> None:
    doc = {"apiVersion": "metal3.io/v1alpha1", "kind": "PreprovisioningImage",
           "metadata": {"name": "host-0"}, "spec": {"acceptFormats": ["iso", "qcow2"]}}
    (error,) = validation.validate_object(doc)
    assert error.field == "spec.acceptFormats[1]"


# --- DataImage webhook (TestDataImageValidateCreate) ----------------------------------------


def _data_image(url: str) -> dict[str, Any]:
    return {"apiVersion": "metal3.io/v1alpha1", "kind": "DataImage",
            "metadata": {"name": "test", "namespace": "test-namespace"}, "spec": {"url": url}}


@pytest.mark.parametrize(
    ("url", "wanted"),
    [
        pytest.param("http://localhost/abc/abc.php", "", id="validURL"),
        pytest.param("abc", 'URL "abc" is invalid: parse "abc": invalid URI for request',
                     id="invalidURL"),
        pytest.param("unix://localhost/abc/abc.php",
                     'URL "unix://localhost/abc/abc.php" is invalid: invalid scheme in URL, '
                     '"unix" not allowed', id="invalidURLScheme"),
        pytest.param("", 'URL "" is invalid: parse "": empty url', id="invalidURLempty"),
    ],
)
def test_dataimage_webhook(url: str, wanted: str) -> None:
    errors = validation.validate_object(_data_image(url))
    assert [e.message for e in errors] == ([wanted] if wanted else [])
    assert all(e.field == "spec.url" for e in errors)


def test_dataimage_update_runs_the_same_rule() -> None:
    errors = validation.validate_object(_data_image("ftp//x"), old=_data_image("http://a/b"))
    assert [e.field for e in errors] == ["spec.url"]


def test_a_dataimage_without_spec_is_refused_by_the_webhook_not_the_schema() -> None:
    doc = _data_image("")
    del doc["spec"]
    assert crd_support.schema_problems("metal3.io_dataimages.yaml", doc) == []
    assert [e.message for e in validation.validate_object(doc)] == [
        'URL "" is invalid: parse "": empty url']


# --- BMCEventSubscription webhook (TestBMCEventSubscriptionValidateCreate, ...Update) --------


def _subscription(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "metal3.io/v1alpha1", "kind": "BMCEventSubscription",
            "metadata": {"name": "test", "namespace": "test-namespace"}, "spec": spec}


HEADERS_HERE = {"namespace": "test-namespace", "name": "headers"}


@pytest.mark.parametrize(
    ("spec", "field", "wanted"),
    [
        pytest.param({"hostName": "worker-01", "destination": "http://localhost/abc/abc.php"},
                     "", "", id="valid"),
        pytest.param({"destination": "http://localhost/abc/abc"}, "spec.hostName",
                     "hostName cannot be empty", id="missingHostName"),
        pytest.param({"hostName": "worker-01"}, "spec.destination",
                     "destination cannot be empty", id="missingDestination"),
        pytest.param({"hostName": "worker-01", "destination": "abc"}, "spec.destination",
                     'destination is invalid: parse "abc": invalid URI for request',
                     id="destinationNotUrl"),
        pytest.param({"hostName": "worker-01", "destination": "http://localhost"},
                     "spec.destination", "hostname-only destination must have a trailing slash",
                     id="destinationMissingTrailingSlash"),
        pytest.param({"hostName": "worker-01", "destination": "http://localhost/abc/abc.php",
                      "httpHeadersRef": HEADERS_HERE}, "", "", id="httpHeadersRef valid"),
        pytest.param({"hostName": "worker-01", "destination": "http://localhost/abc/abc.php",
                      "httpHeadersRef": {"namespace": "different", "name": "headers"}},
                     "spec.httpHeadersRef.namespace",
                     "httpHeadersRef secret must be in the same namespace as the "
                     "BMCEventSubscription", id="httpHeadersRef in different namespace"),
    ],
)
def test_bmceventsubscription_webhook_create(spec: dict[str, Any], field: str,
                                             wanted: str) -> None:
    errors = validation.validate_object(_subscription(**spec))
    assert [(e.field, e.message) for e in errors] == ([(field, wanted)] if wanted else [])


VALID = {"hostName": "worker-01", "destination": "http://localhost/abc/abc.php"}


def test_bmceventsubscription_update_valid_when_the_spec_is_unchanged() -> None:
    assert validation.validate_object(_subscription(**VALID), old=_subscription(**VALID)) == []


def test_bmceventsubscription_update_invalid_when_the_spec_changed() -> None:
    errors = validation.validate_object(_subscription(**VALID),
                                        old=_subscription(**VALID, context="abc"))
    assert [(e.field, e.message) for e in errors] == [
        ("spec", "subscriptions cannot be updated, please recreate it")]


def test_bmceventsubscription_status_updated_is_valid() -> None:
    new = _subscription(**VALID) | {"status": {"subscriptionID": "some-id"}}
    assert validation.validate_object(new, old=_subscription(**VALID)) == []
