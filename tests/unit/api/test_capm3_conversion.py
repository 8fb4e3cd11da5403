"""v1beta1 <-> v1beta2 conversion of every CAPM3 kind: nothing lost, schemas respected.

Objects are drawn from upstream's CRD schemas of each version (capm3_schema), so every field
upstream declares takes part. Upstream's own fixtures (its v1beta1 example templates) are
checked by value.
"""

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metalcubed.core.api.capm3 import conversion
from tests.unit.api import capm3_schema

KINDS = conversion.KINDS
V1, V2 = conversion.V1BETA1, conversion.V1BETA2
STASH = conversion.CONVERSION_DATA_ANNOTATION
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _any(version: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.sampled_from(KINDS).flatmap(lambda k: capm3_schema.objects(k, version))


def _without_stash(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    annotations = out["metadata"].get("annotations", {})
    annotations.pop(STASH, None)
    if not annotations:
        out["metadata"].pop("annotations", None)
    return out


@SETTINGS
@given(_any("v1beta1"))
def test_v1beta1_to_v1beta2_and_back_gives_back_exactly_what_went_in(obj: dict[str, Any]) -> None:
    stored = conversion.convert(obj, V2)
    assert conversion.convert(stored, V1) == obj


@SETTINGS
@given(_any("v1beta2"))
def test_v1beta2_to_v1beta1_and_back_gives_back_exactly_what_went_in(obj: dict[str, Any]) -> None:
    served = conversion.convert(obj, V1)
    assert conversion.convert(served, V2) == obj


@SETTINGS
@given(st.sampled_from(["v1beta1", "v1beta2"]).flatmap(_any))
def test_the_converted_object_fits_the_target_schema_so_pruning_drops_nothing(
    obj: dict[str, Any],
) -> None:
    target = V2 if obj["apiVersion"] == V1 else V1
    out = conversion.convert(obj, target)
    assert out["apiVersion"] == target
    assert capm3_schema.problems(out) == []


@SETTINGS
@given(_any("v1beta1"))
def test_the_input_is_never_modified(obj: dict[str, Any]) -> None:
    before = copy.deepcopy(obj)
    conversion.convert(obj, V2)
    assert obj == before


# --- the field maps by themselves (what a reader of the other version sees) ---------------


def _example(kind: str) -> dict[str, Any]:
    (doc,) = [d for d in capm3_schema.examples("capm3-cluster") if d["kind"] == kind][:1]
    return doc


def test_upstream_v1beta1_data_template_converts_without_a_stash_to_v1beta2_pool_keys() -> None:
    template = _example("Metal3DataTemplate")
    assert template["apiVersion"] == V1
    stored = conversion.convert(template, V2)
    meta_data = stored["spec"]["metaData"]
    for old, new in (("ipAddressesFromIPPool", "ipAddressesFromPool"),
                     ("prefixesFromIPPool", "prefixesFromPool"),
                     ("gatewaysFromIPPool", "gatewaysFromPool")):
        if old in template["spec"]["metaData"]:
            assert meta_data[new] == template["spec"]["metaData"][old]
            assert old not in meta_data
    assert stored["spec"]["clusterName"] == template["spec"]["clusterName"]
    assert stored["spec"]["networkData"] == template["spec"]["networkData"]
    assert STASH not in stored["metadata"].get("annotations", {})
    assert capm3_schema.problems(stored) == []
    assert conversion.convert(stored, V1) == template


def test_every_upstream_capm3_example_survives_both_ways() -> None:
    docs = [d for d in capm3_schema.examples("capm3-")
            if d.get("apiVersion", "").startswith(conversion.GROUP)]
    assert [d["kind"] for d in docs] == ["Metal3DataTemplate", "Metal3DataTemplate"]
    for doc in docs:
        other = V2 if doc["apiVersion"] == V1 else V1
        out = conversion.convert(doc, other)
        assert capm3_schema.problems(out) == [], doc["kind"]
        assert conversion.convert(out, doc["apiVersion"]) == doc


def test_remediation_timeout_becomes_seconds_and_a_reader_of_v1beta1_sees_go_duration() -> None:
    v1 = {"apiVersion": V1, "kind": "Metal3Remediation", "metadata": {"name": "m"},
          "spec": {"strategy": {"type": "Reboot", "retryLimit": 2, "timeout": "300s"}}}
    stored = conversion.convert(v1, V2)
    assert stored["spec"]["strategy"] == {"type": "Reboot", "retryLimit": 2,
                                          "timeoutSeconds": 300}
    # "300s" comes back as written (stash), though the map alone writes Go's "5m0s".
    assert STASH in stored["metadata"]["annotations"]
    assert conversion.convert(stored, V1) == v1
    assert conversion.map_sections(stored, V1)["spec"]["strategy"]["timeout"] == "5m0s"
    canonical = copy.deepcopy(v1)
    canonical["spec"]["strategy"]["timeout"] = "5m0s"
    assert STASH not in conversion.convert(canonical, V2)["metadata"].get("annotations", {})


def test_cluster_failure_domains_map_becomes_a_sorted_list_and_back() -> None:
    v1 = {"apiVersion": V1, "kind": "Metal3Cluster", "metadata": {"name": "c"},
          "spec": {"controlPlaneEndpoint": {"host": "10.0.0.1", "port": 6443},
                   "failureDomains": {"b": {"controlPlane": True, "attributes": {"r": "1"}},
                                      "a": {}}},
          "status": {"ready": True, "failureReason": "x",
                     "v1beta2": {"conditions": [{"type": "Ready", "status": "True",
                                                 "reason": "R", "message": "",
                                                 "lastTransitionTime": "2026-12-03T19:00:00Z"}]}}}
    stored = conversion.convert(v1, V2)
    assert stored["spec"]["failureDomains"] == [
        {"name": "a"}, {"name": "b", "controlPlane": True, "attributes": {"r": "1"}}]
    assert stored["status"]["initialization"] == {"provisioned": True}
    assert stored["status"]["deprecated"] == {"v1beta1": {"failureReason": "x"}}
    assert stored["status"]["conditions"][0]["type"] == "Ready"
    assert conversion.convert(stored, V1) == v1


def test_machine_image_format_is_disk_format_and_template_metadata_survives_v1beta1() -> None:
    v2 = {"apiVersion": V2, "kind": "Metal3MachineTemplate", "metadata": {"name": "t"},
          "spec": {"template": {"metadata": {"labels": {"a": "b"}},
                                "spec": {"image": {"url": "http://x/i.img", "checksum": "c",
                                                   "diskFormat": "raw"}}}}}
    served = conversion.convert(v2, V1)
    assert served["spec"]["template"]["spec"]["image"]["format"] == "raw"
    assert "metadata" not in served["spec"]["template"]  # v1beta1 has no home for it ...
    assert json.loads(served["metadata"]["annotations"][STASH])["spec"] == v2["spec"]
    assert conversion.convert(served, V2) == v2  # ... but it comes back


def test_an_edit_in_the_other_version_wins_over_a_stale_stash() -> None:
    v2 = {"apiVersion": V2, "kind": "Metal3MachineTemplate", "metadata": {"name": "t"},
          "spec": {"template": {"metadata": {"labels": {"a": "b"}},
                                "spec": {"image": {"url": "http://x/i.img", "checksum": "c"}}}}}
    served = conversion.convert(v2, V1)
    served["spec"]["template"]["spec"]["image"]["url"] = "http://x/new.img"
    back = conversion.convert(served, V2)
    assert back["spec"]["template"]["spec"]["image"]["url"] == "http://x/new.img"
    assert "metadata" not in back["spec"]["template"]  # the stash was stale: dropped
    assert STASH not in back["metadata"].get("annotations", {})


def test_status_written_in_v1beta2_keeps_the_users_v1beta1_only_spec_fields() -> None:
    v1 = {"apiVersion": V1, "kind": "Metal3Data", "metadata": {"name": "t-0"},
          "spec": {"index": 0, "templateReference": "old-template",
                   "claim": {"name": "m", "kind": "Metal3DataClaim", "uid": "u-1"}}}
    stored = conversion.convert(v1, V2)
    assert stored["spec"] == {"index": 0, "claim": {"name": "m"}}
    stored["status"] = {"ready": True}  # a controller's v1beta2 status write
    read = conversion.convert(stored, V1)
    assert read["spec"] == v1["spec"]
    assert read["status"] == {"ready": True}


def test_same_version_is_a_copy() -> None:
    obj = {"apiVersion": V2, "kind": "Metal3Data", "metadata": {"name": "x"}, "spec": {}}
    out = conversion.convert(obj, V2)
    assert out == obj and out is not obj


@pytest.mark.parametrize(("obj", "target", "field"), [
    ({"apiVersion": V1, "kind": "BareMetalHost"}, V2, "kind"),
    ({"apiVersion": "infrastructure.cluster.x-k8s.io/v1alpha5", "kind": "Metal3Data"}, V2,
     "apiVersion"),
    ({"apiVersion": V1, "kind": "Metal3Data"}, "v1", "desiredAPIVersion"),
    ({"apiVersion": V1, "kind": "Metal3Remediation",
      "spec": {"strategy": {"timeout": "five minutes"}}}, V2, "spec.strategy.timeout"),
    ({"apiVersion": V1, "kind": "Metal3Data", "spec": "nope"}, V2, "spec"),
], ids=["not-capm3", "unknown-version", "bad-target", "bad-duration", "spec-not-object"])
def test_bad_input_is_a_conversion_error_naming_the_field(
    obj: dict[str, Any], target: str, field: str,
) -> None:
    with pytest.raises(conversion.ConversionError) as err:
        conversion.convert(obj, target)
    assert err.value.field == field


@pytest.mark.parametrize(("text", "seconds"), [
    ("300s", 300), ("5m0s", 300), ("1h2m3s", 3723), ("1.5s", 1.5), ("250ms", 0.25), ("0", 0),
    ("-1m", -60),
])
def test_go_durations_parse_as_go_does(text: str, seconds: float) -> None:
    assert conversion.parse_duration_s(text) == seconds


@pytest.mark.parametrize(("seconds", "text"), [
    (300, "5m0s"), (0, "0s"), (3600, "1h0m0s"), (59, "59s"), (3723, "1h2m3s")])
def test_durations_format_as_go_writes_them(seconds: int, text: str) -> None:
    assert conversion.format_duration(seconds) == text


@SETTINGS
@given(st.sampled_from(["v1beta1", "v1beta2"]).flatmap(_any))
def test_the_field_maps_alone_settle_after_one_round_trip(obj: dict[str, Any]) -> None:
    """Without the stash a value may lose what the other version cannot say (a `false` that
    was a nil, v1beta2's template metadata), but once it survived a round trip it survives
    every further one: the maps never drift."""
    version = obj["apiVersion"]
    other = V2 if version == V1 else V1

    def round_trip(o: dict[str, Any]) -> dict[str, Any]:
        return conversion.map_sections(conversion.map_sections(o, other), version)

    once = round_trip(obj)
    assert round_trip(once) == once
