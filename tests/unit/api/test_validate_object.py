"""validate_object: schema errors as wire field paths, the webhook, and the registry of kinds."""

from typing import Any

import pytest

from metalcubed.core.api import validation
from tests.unit.api import crd_support


def errors(doc: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    return [str(e) for e in validation.validate_object(doc, old=old)]


def bmh(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "metal3.io/v1alpha1",
        "kind": "BareMetalHost",
        "metadata": {"name": "worker-0", "namespace": "metal3"},
        "spec": {"online": True, **spec},
    }


EXAMPLES = crd_support.examples()


@pytest.mark.parametrize(
    ("name", "index", "doc"), EXAMPLES, ids=[f"{n}#{i}" for n, i, _ in EXAMPLES]
)
def test_every_upstream_example_is_classified_without_crashing(
    name: str, index: int, doc: dict[str, Any]
) -> None:
    entry = validation.lookup(doc["apiVersion"], doc["kind"])
    got = errors(doc)
    if entry is None:
        assert got == [f"kind: unknown kind {doc['kind']} (apiVersion {doc['apiVersion']})"]
    elif entry.check is not validation.Check.FULL:
        assert got == []


def test_the_bmo_and_capm3_host_examples_are_valid() -> None:
    hosts = [
        (n, i, d)
        for n, i, d in EXAMPLES
        if d["kind"] == "BareMetalHost" and n != "bmo-metal3.io_v1alpha1_baremetalhost.yaml"
    ]
    assert len(hosts) == 12
    assert [(n, i, errors(d)) for n, i, d in hosts] == [(n, i, []) for n, i, _ in hosts]


def test_the_kubebuilder_sample_host_is_rejected_as_the_api_server_would() -> None:
    # config/samples: a scaffold with a placeholder field and no spec.online.
    ((_, _, doc),) = [x for x in EXAMPLES if x[0] == "bmo-metal3.io_v1alpha1_baremetalhost.yaml"]
    assert crd_support.schema_problems("metal3.io_baremetalhosts.yaml", doc) != []
    assert errors(doc) == ["spec.online: Required value", "spec.foo: unknown field"]


def test_kinds_of_other_metal3_projects_are_known_but_not_checked() -> None:
    # Kinds get models over time (registered by their own modules): each listed kind is known,
    # and those still without a model are reported as not checked.
    for api_version, kinds in validation._UNMODELLED.items():
        for kind in kinds:
            entry = validation.lookup(api_version, kind)
            assert entry is not None
            assert entry.model is not None or entry.check is validation.Check.NOT_CHECKED
    entry = validation.lookup("metal3.io/v1alpha1", "HostClaim")
    assert entry is not None and entry.check is validation.Check.NOT_CHECKED


def test_secrets_are_recognised_and_skipped() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "data": 3}
    entry = validation.lookup("v1", "Secret")
    assert entry is not None and entry.check is validation.Check.SKIPPED
    assert errors(secret) == []


def test_unknown_kind_and_missing_type_information() -> None:
    assert errors({"apiVersion": "example.com/v1", "kind": "Widget"}) == [
        "kind: unknown kind Widget (apiVersion example.com/v1)"
    ]
    assert errors({"apiVersion": "metal3.io/v1beta9", "kind": "BareMetalHost"}) == [
        "kind: unknown kind BareMetalHost (apiVersion metal3.io/v1beta9)"
    ]
    assert errors({"apiVersion": "v1"}) == ["kind: Required value"]
    assert errors({"kind": "BareMetalHost"}) == ["apiVersion: Required value"]


def test_schema_errors_name_the_wire_field_path() -> None:
    doc = bmh(
        bootMACAddress="nope",
        raid={"hardwareRAIDVolumes": [{"level": "1"}, {"level": "9"}]},
        rootDeviceHints={"minSizeGigabytes": -5},
    )
    doc["spec"].pop("online")
    assert errors(doc) == [
        "spec.rootDeviceHints.minSizeGigabytes: Input should be greater than or equal to 0",
        "spec.bootMACAddress: String should match pattern '[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}'",
        "spec.online: Required value",
        "spec.raid.hardwareRAIDVolumes[1].level: Input should be '0', '1', '2', '5', '6', "
        "'1+0', '5+0' or '6+0'",
    ]


def test_status_schema_errors_use_wire_names_too() -> None:
    doc = bmh()
    doc["status"] = {"provisioning": {"ID": 5, "state": "asleep"}, "poweredOn": "maybe"}
    assert [e.split(":")[0] for e in errors(doc)] == [
        "status.provisioning.state",
        "status.provisioning.ID",
        "status.poweredOn",
    ]


def test_metadata_name_follows_the_api_servers_rules() -> None:
    doc = bmh()
    doc["metadata"] = {"name": "Worker_0"}
    ((message),) = errors(doc)
    assert message.startswith("metadata.name: Invalid value: 'Worker_0': a lowercase RFC 1123")
    doc["metadata"] = {"generateName": "worker-"}
    assert errors(doc) == []
    doc["metadata"] = {}
    assert errors(doc) == ["metadata.name: Required value: name or generateName is required"]


def test_webhook_runs_after_the_schema() -> None:
    doc = bmh(bmc={"address": "ilo4://10.0.0.1", "credentialsName": "c"})
    ((message),) = errors(doc)
    assert message.startswith("spec.bmc.address: Unknown BMC type 'ilo4' for address ilo4://")


def test_update_rules_apply_when_the_stored_object_is_given() -> None:
    old = bmh(bootMACAddress="52:54:00:00:00:01")
    new = bmh(bootMACAddress="52:54:00:00:00:02")
    assert errors(new) == []
    assert errors(new, old=old) == [
        "spec.bootMACAddress: bootMACAddress can not be changed once it is set"
    ]


def test_hardware_data_is_checked_against_its_schema() -> None:
    doc = {
        "apiVersion": "metal3.io/v1alpha1",
        "kind": "HardwareData",
        "metadata": {"name": "worker-0"},
        "spec": {
            "hardware": {
                "cpu": {"arch": "x86_64", "count": 8, "clockMegahertz": 2400.0},
                "storage": [{"name": "/dev/sda", "type": "SSD", "sizeBytes": 10**12}],
                "nics": [{"name": "eno1", "mac": "52:54:00:00:00:01", "vlanId": 10}],
            }
        },
    }
    assert errors(doc) == []
    doc["spec"]["hardware"]["storage"][0]["type"] = "TAPE"
    doc["spec"]["hardware"]["nics"][0]["vlanId"] = 5000
    assert [e.split(":")[0] for e in errors(doc)] == [
        "spec.hardware.nics[0].vlanId",
        "spec.hardware.storage[0].type",
    ]


def test_format_loc_builds_paths_with_indices() -> None:
    assert validation.format_loc(("spec", "raid", "softwareRAIDVolumes", 1, "level")) == (
        "spec.raid.softwareRAIDVolumes[1].level"
    )
    assert validation.format_loc(()) == ""
