"""Hostile AdmissionReview bodies: whatever JSON arrives, a handler answers a review or raises
BadRequest (the server's 400), never anything else; and every answer is well formed."""

import copy
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from metalcubed.controllers.kube import certs, webhook
from metalcubed.core import clock

HANDLERS = webhook.admission_handlers()
BMH = HANDLERS["/validate-metal3-io-v1alpha1-baremetalhost"]
MUTATE = HANDLERS["/mutate-metal3-io-v1alpha1-baremetalhost"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=20,
)

VALID = {
    "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
    "request": {
        "uid": "u", "operation": "UPDATE",
        "kind": {"group": "metal3.io", "version": "v1alpha1", "kind": "BareMetalHost"},
        "object": {"apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost",
                   "metadata": {"name": "h", "namespace": "n"},
                   "spec": {"online": True, "bootMACAddress": "00:11:22:33:44:55",
                            "bmc": {"address": "ipmi://10.0.0.1", "credentialsName": "s"}}},
        "oldObject": {"apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost",
                      "metadata": {"name": "h", "namespace": "n"}, "spec": {"online": False}},
    },
}
PATHS = [("request",), ("request", "uid"), ("request", "operation"), ("request", "kind"),
         ("request", "object"), ("request", "oldObject"), ("request", "object", "spec"),
         ("request", "object", "metadata"), ("request", "object", "spec", "bmc"),
         ("request", "object", "spec", "online"), ("request", "oldObject", "spec"),
         ("request", "object", "metadata", "annotations"), ("apiVersion",), ("kind",)]


def _answer_is_a_review(answer: dict[str, Any]) -> None:
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert isinstance(response["uid"], str) and isinstance(response["allowed"], bool)
    if not response["allowed"]:
        assert response["status"]["code"] in (400, 403)
        assert response["status"]["message"]


def _call(handler: webhook.Handler, body: Any) -> None:
    try:
        answer = handler(body)
    except webhook.BadRequest as err:
        assert str(err)
        return
    _answer_is_a_review(answer)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_any_json_object(body: dict[str, Any]) -> None:
    _call(BMH, body)
    _call(MUTATE, body)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=st.sampled_from(PATHS), value=json_values)
def test_a_valid_review_with_one_part_replaced(where: tuple[str, ...], value: Any) -> None:
    body = copy.deepcopy(VALID)
    target: Any = body
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    _call(BMH, body)
    _call(MUTATE, body)


def test_the_sources_are_the_protocol(tmp_path: Path) -> None:
    directory: certs.Source = certs.DirectorySource(tmp_path)
    secret: certs.Source = certs.SecretSource(
        None, namespace="n", names=["a"], clock=clock.FixedClock())  # type: ignore[arg-type]
    assert directory.manages_ca_bundle is False
    assert secret.manages_ca_bundle is True
