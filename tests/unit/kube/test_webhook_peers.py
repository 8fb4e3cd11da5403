"""Admission rules that need the other stored objects: an IPPool whose namePrefix another pool of
its namespace uses is refused (IPAM #1437), duplicate preAllocations too (#1440); a lister that
fails admits with a warning saying what was not checked. (The lister is a fake here: this tests
the handler alone; tests/kube/test_ipam_admission.py runs it against the API server.)"""

from typing import Any

from metalcubed.controllers.kube import webhook
from metalcubed.core.api import ipam, validation

PATH = "/validate-ipam-metal3-io-v1alpha1-ippool"


def _pool(name: str, prefix: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": ipam.API_VERSION, "kind": "IPPool",
            "metadata": {"name": name, "namespace": "lab"},
            "spec": {"namePrefix": prefix, "pools": [{"subnet": "10.0.0.0/24"}], **spec}}


def _review(obj: dict[str, Any], operation: str = "CREATE",
            old: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u1", "operation": operation, "namespace": "lab",
                        "kind": {"group": "ipam.metal3.io", "version": "v1alpha1",
                                 "kind": "IPPool"},
                        "object": obj, "oldObject": old}}


def _handler(stored: list[dict[str, Any]], asked: list[tuple[str, str]]) -> webhook.Handler:
    def lister(entry: validation.KindEntry, namespace: str) -> list[dict[str, Any]]:
        asked.append((entry.plural, namespace))
        return stored

    return webhook.admission_handlers(peers=lister)[PATH]


def test_a_pool_reusing_a_name_prefix_in_its_namespace_is_refused() -> None:
    asked: list[tuple[str, str]] = []
    answer = _handler([_pool("a", "p")], asked)(_review(_pool("b", "p")))["response"]
    assert answer["allowed"] is False
    assert answer["status"]["message"] == (
        'spec.namePrefix: Invalid value: "p": is already used by IPPool "a" in this namespace: '
        "the pools' IPAddress names would collide")
    assert asked == [("ippools", "lab")]


def test_the_pool_itself_and_other_prefixes_are_fine() -> None:
    stored = [_pool("a", "p"), _pool("c", "q")]
    handler = _handler(stored, [])
    assert handler(_review(_pool("b", "r")))["response"]["allowed"] is True
    # an update of "a" sees "a" stored: not a conflict with itself
    assert handler(_review(_pool("a", "p"), "UPDATE", _pool("a", "p")))["response"]["allowed"]


def test_duplicate_preallocations_are_refused_before_any_listing() -> None:
    asked: list[tuple[str, str]] = []
    obj = _pool("b", "r", preAllocations={"x": "10.0.0.5", "y": "10.0.0.5"})
    answer = _handler([], asked)(_review(obj))["response"]
    assert answer["allowed"] is False
    assert answer["status"]["message"] == (
        'spec.preAllocations[y]: Invalid value: "10.0.0.5": IP address is already '
        'pre-allocated to claim "x"')
    assert asked == []


def test_a_failing_lister_admits_with_a_warning_naming_the_cause() -> None:
    """The pool controller copes with a shared prefix (test_ippool); refusing every pool
    because the webhook cannot list them (missing RBAC) would only block users."""
    def broken(entry: validation.KindEntry, namespace: str) -> list[dict[str, Any]]:
        raise ConnectionError("apiserver unreachable")

    handler = webhook.admission_handlers(peers=broken)[PATH]
    answer = handler(_review(_pool("b", "p")))["response"]
    assert answer["allowed"] is True
    assert answer["warnings"] == ["not checked against the other IPPools of namespace 'lab' "
                                  "(they could not be listed: apiserver unreachable)"]


def test_without_a_lister_only_the_pools_own_rules_apply() -> None:
    handler = webhook.admission_handlers()[PATH]
    assert handler(_review(_pool("b", "p")))["response"]["allowed"] is True
