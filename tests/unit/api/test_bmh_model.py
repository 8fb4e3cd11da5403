"""BareMetalHost and HardwareData models against upstream's CRD schemas and examples."""

import copy
import datetime
from typing import Any

import pydantic
import pytest

from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import hardwaredata, meta
from tests.unit.api import crd_support

BMH_CRD = "metal3.io_baremetalhosts.yaml"
HD_CRD = "metal3.io_hardwaredata.yaml"

# Values that satisfy the patterns the CRDs declare, by pattern.
_PATTERN_SAMPLES = {
    "[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}": "52:54:00:ab:cd:ef",
    "^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$": "52:54:00:ab:cd:01",
    "^[a-zA-Z0-9._-]+$": "ens3f0",
    "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$": "AllGood",
}


def full_instance(schema: dict[str, Any], name: str = "") -> Any:
    """A document that sets every property of `schema` to a non-zero value it accepts.

    Non-zero matters: Go's omitempty (and ours) drops zero values, so a round trip of this
    document is exact only if every field is modelled under its exact wire name.
    """
    if "properties" in schema:
        return {key: full_instance(sub, key) for key, sub in schema["properties"].items()}
    kind = schema.get("type")
    if kind == "object":
        return {"name": "sample"} if name == "metadata" else {}
    if kind == "array":
        count = max(schema.get("minItems", 1), 1)
        return [full_instance(schema["items"], name) for _ in range(count)]
    if "enum" in schema:
        return next(v for v in schema["enum"] if v not in ("", False))
    if kind == "boolean":
        return True
    if kind == "integer":
        return max(schema.get("minimum", 0), 0) + 2
    if kind == "number":
        return 2400.5
    if schema.get("format") == "date-time":
        return "2026-01-02T03:04:05Z"
    if name == "type":  # condition type: a name
        return "Ready"
    if name == "state":  # a free string in the CRD; ours is the ProvisioningState enum
        return "provisioned"
    if "pattern" in schema:
        return _PATTERN_SAMPLES[schema["pattern"]]
    return f"sample-{name}"


def without_metadata(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "metadata"}


# --- every CRD field, under its wire name --------------------------------------------------


def test_every_baremetalhost_crd_field_round_trips_under_its_wire_name() -> None:
    doc = full_instance(crd_support.load_crd_schema(BMH_CRD))
    host = bmh.BareMetalHost.from_wire(doc)
    assert without_metadata(host.to_wire()) == without_metadata(doc)


def test_every_hardwaredata_crd_field_round_trips_under_its_wire_name() -> None:
    doc = full_instance(crd_support.load_crd_schema(HD_CRD))
    data = hardwaredata.HardwareData.from_wire(doc)
    assert without_metadata(data.to_wire()) == without_metadata(doc)


def test_full_objects_pass_the_upstream_schema() -> None:
    for crd, model in ((BMH_CRD, bmh.BareMetalHost), (HD_CRD, hardwaredata.HardwareData)):
        doc = full_instance(crd_support.load_crd_schema(crd))
        assert crd_support.schema_problems(crd, doc) == []
        assert crd_support.schema_problems(crd, model.from_wire(doc).to_wire()) == []


def test_a_field_the_crd_does_not_have_is_rejected() -> None:
    doc = full_instance(crd_support.load_crd_schema(BMH_CRD))
    doc["status"]["provisioning"]["extra"] = 1
    with pytest.raises(pydantic.ValidationError) as err:
        bmh.BareMetalHost.from_wire(doc)
    assert err.value.errors()[0]["loc"] == ("status", "provisioning", "extra")


# --- upstream examples ---------------------------------------------------------------------

HOST_EXAMPLES = [
    (f"{name}#{index}", doc)
    for name, index, doc in crd_support.examples()
    if doc.get("kind") == "BareMetalHost" and "foo" not in doc.get("spec", {})
]


def test_the_upstream_examples_hold_the_expected_hosts() -> None:
    assert len(HOST_EXAMPLES) == 12  # 2 BMO examples + 10 CAPM3 hosts


@pytest.mark.parametrize(("where", "doc"), HOST_EXAMPLES, ids=[w for w, _ in HOST_EXAMPLES])
def test_example_round_trip_gives_the_manifest_with_schema_defaults(
    where: str, doc: dict[str, Any]
) -> None:
    schema = crd_support.load_crd_schema(BMH_CRD)
    wire = bmh.BareMetalHost.from_wire(doc).to_wire()
    expected = crd_support.apply_defaults(schema, without_metadata(doc))
    # Status is server-owned: our default status is added, the spec must be exactly the input.
    assert wire["spec"] == expected["spec"]
    assert (wire["apiVersion"], wire["kind"]) == (doc["apiVersion"], doc["kind"])
    assert wire["metadata"]["name"] == doc["metadata"]["name"]
    assert crd_support.schema_problems(BMH_CRD, wire) == []


# --- wire shape ----------------------------------------------------------------------------


def minimal_host(**spec: Any) -> bmh.BareMetalHost:
    return bmh.BareMetalHost.from_wire(
        {"metadata": {"name": "host-0"}, "spec": {"online": True, **spec}}
    )


def test_a_new_host_serialises_only_set_fields_schema_defaults_and_required_status() -> None:
    wire = minimal_host().to_wire()
    assert wire["spec"] == {"online": True, "automatedCleaningMode": "metadata"}
    assert wire["status"] == {
        "operationalStatus": "",
        "errorMessage": "",
        "errorCount": 0,
        "provisioningFailCount": 0,
        "provisioning": {"state": "", "ID": ""},
        "poweredOn": False,
    }
    assert crd_support.schema_problems(BMH_CRD, wire) == []


def test_status_as_upstream_writes_it_parses_and_reserialises_schema_valid() -> None:
    # Go emits non-pointer structs even when empty, and zero metav1.Time as null.
    upstream_status = {
        "operationalStatus": "OK",
        "errorType": "",
        "errorMessage": "",
        "errorCount": 0,
        "provisioningFailCount": 0,
        "hardwareProfile": "unknown",
        "provisioning": {"state": "available", "ID": "f3b1", "image": {"url": ""}},
        "goodCredentials": {},
        "triedCredentials": {
            "credentials": {"name": "bmc-secret", "namespace": "metal3"},
            "credentialsVersion": "1234",
        },
        "poweredOn": True,
        "operationHistory": {
            "register": {"start": "2026-01-02T03:04:05Z", "end": "2026-01-02T03:04:09Z"},
            "inspect": {"start": None, "end": None},
            "provision": {"start": None, "end": None},
            "deprovision": {"start": None, "end": None},
        },
        "lastUpdated": "2026-01-02T03:04:09Z",
    }
    host = bmh.BareMetalHost.from_wire(
        {"metadata": {"name": "h"}, "spec": {"online": True}, "status": upstream_status}
    )
    assert host.status.provisioning.state is bmh.ProvisioningState.AVAILABLE
    assert host.status.error_type is bmh.ErrorType.NONE
    assert host.status.operation_history.register.end == datetime.datetime(
        2026, 1, 2, 3, 4, 9, tzinfo=datetime.UTC
    )
    wire = host.to_wire()
    assert "errorType" not in wire["status"]  # "" is not in the CRD's errorType enum
    assert wire["status"]["operationHistory"] == {
        "register": {"start": "2026-01-02T03:04:05Z", "end": "2026-01-02T03:04:09Z"}
    }
    assert crd_support.schema_problems(BMH_CRD, wire) == []


def test_wire_names_that_are_not_plain_camel_case() -> None:
    host = bmh.BareMetalHost.from_wire(
        {
            "metadata": {"name": "h"},
            "spec": {
                "online": False,
                "bootMACAddress": "52:54:00:00:00:01",
                "raid": {"hardwareRAIDVolumes": [{"level": "1"}], "softwareRAIDVolumes": None},
                "networkInterfaces": [
                    {"name": "eno1", "switchPort": {"switchID": "aa:bb:cc:dd:ee:ff", "portID": "7"}}
                ],
            },
            "status": {"provisioning": {"ID": "node-1", "state": "registering"}},
        }
    )
    assert host.spec.boot_mac_address == "52:54:00:00:00:01"
    assert host.spec.raid is not None and host.spec.raid.hardware_raid_volumes is not None
    assert host.spec.raid.hardware_raid_volumes[0].level == "1"
    assert host.spec.network_interfaces[0].switch_port == bmh.SwitchPortConfig(
        switch_id="aa:bb:cc:dd:ee:ff", port_id="7"
    )
    assert host.status.provisioning.id == "node-1"
    wire = host.to_wire()
    assert wire["spec"]["bootMACAddress"] == "52:54:00:00:00:01"
    assert wire["status"]["provisioning"]["ID"] == "node-1"


def test_an_empty_hardware_raid_list_is_kept_because_it_clears_raid() -> None:
    host = minimal_host(raid={"hardwareRAIDVolumes": []})
    assert host.to_wire()["spec"]["raid"] == {"hardwareRAIDVolumes": []}


def test_models_built_in_code_fill_api_version_and_kind() -> None:
    host = bmh.BareMetalHost(
        metadata=meta.ObjectMeta(name="h"), spec=bmh.BareMetalHostSpec(online=True)
    )
    assert (host.api_version, host.kind) == ("metal3.io/v1alpha1", "BareMetalHost")
    assert bmh.BareMetalHost.PLURAL == "baremetalhosts"
    assert hardwaredata.HardwareData.PLURAL == "hardwaredata"
    assert hardwaredata.HardwareData.HAS_STATUS is False
    assert host.spec.bmc == bmh.NO_BMC and not host.spec.has_bmc_details()


def test_status_updates_go_through_model_copy_and_stay_frozen() -> None:
    host = minimal_host()
    with pytest.raises(pydantic.ValidationError):
        host.spec.online = False  # type: ignore[misc]
    updated = host.model_copy(
        update={"status": host.status.model_copy(update={"powered_on": True})}
    )
    assert updated.status.powered_on and not host.status.powered_on


@pytest.mark.parametrize(
    ("spec", "loc"),
    [
        ({"bootMode": "uefi"}, ("spec", "bootMode")),
        ({"bootMACAddress": "52:54:00"}, ("spec", "bootMACAddress")),
        ({"automatedCleaningMode": "full"}, ("spec", "automatedCleaningMode")),
        ({"inspectionMode": "slow"}, ("spec", "inspectionMode")),
        ({"image": {"checksum": "abc"}}, ("spec", "image", "url")),
        ({"image": {"url": "http://x/i", "format": "iso"}}, ("spec", "image", "format")),
        ({"bmc": {"address": "ipmi://1.2.3.4"}}, ("spec", "bmc", "credentialsName")),
        (
            {"rootDeviceHints": {"minSizeGigabytes": -1}},
            ("spec", "rootDeviceHints", "minSizeGigabytes"),
        ),
        (
            {"raid": {"hardwareRAIDVolumes": [{"level": "7"}]}},
            ("spec", "raid", "hardwareRAIDVolumes", 0, "level"),
        ),
        (
            {"raid": {"hardwareRAIDVolumes": [{"level": "1", "name": "n" * 65}]}},
            ("spec", "raid", "hardwareRAIDVolumes", 0, "name"),
        ),
        (
            {"raid": {"softwareRAIDVolumes": [{"level": "1", "physicalDisks": [{}]}]}},
            ("spec", "raid", "softwareRAIDVolumes", 0, "physicalDisks"),
        ),
        (
            {"raid": {"softwareRAIDVolumes": [{"level": "1"}, {"level": "0"}, {"level": "0"}]}},
            ("spec", "raid", "softwareRAIDVolumes"),
        ),
        ({"networkInterfaces": [{"name": "eth 0"}]}, ("spec", "networkInterfaces", 0, "name")),
        ({"customDeploy": {}}, ("spec", "customDeploy", "method")),
    ],
    ids=lambda v: ".".join(map(str, v)) if isinstance(v, tuple) else "",
)
def test_schema_constraints_reject_what_the_crd_rejects(
    spec: dict[str, Any], loc: tuple[Any, ...]
) -> None:
    doc = {"metadata": {"name": "h"}, "spec": {"online": True, **spec}}
    assert crd_support.schema_problems(BMH_CRD, doc) != []  # the oracle rejects it too
    with pytest.raises(pydantic.ValidationError) as err:
        bmh.BareMetalHost.from_wire(doc)
    assert [e["loc"] for e in err.value.errors()] == [loc]


# --- enums match upstream ------------------------------------------------------------------


def _crd_enum(*path: str) -> list[Any]:
    node = crd_support.load_crd_schema(BMH_CRD)
    for part in path:
        node = node["items"] if part == "[]" else node["properties"][part]
    return list(node["enum"])


@pytest.mark.parametrize(
    ("enum", "path"),
    [
        (bmh.BootMode, ("spec", "bootMode")),
        (bmh.AutomatedCleaningMode, ("spec", "automatedCleaningMode")),
        (bmh.InspectionMode, ("spec", "inspectionMode")),
        (bmh.ChecksumType, ("spec", "image", "checksumType")),
        (bmh.ImageFormat, ("spec", "image", "format")),
        (bmh.OperationalStatus, ("status", "operationalStatus")),
        (hardwaredata.DiskType, ("status", "hardware", "storage", "[]", "type")),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
def test_enum_values_are_the_crd_enum(enum: type, path: tuple[str, ...]) -> None:
    assert sorted(e.value for e in enum) == sorted(_crd_enum(*path))  # type: ignore[attr-defined]


def test_error_types_are_the_crd_enum_plus_detach_error_and_none() -> None:
    values = {e.value for e in bmh.ErrorType}
    assert values - set(_crd_enum("status", "errorType")) == {"", "detach error"}


def test_provisioning_states_are_upstreams_strings() -> None:
    assert [s.value for s in bmh.ProvisioningState] == [
        "",
        "unmanaged",
        "registering",
        "match profile",
        "inspecting",
        "preparing",
        "ready",
        "available",
        "provisioning",
        "provisioned",
        "externally provisioned",
        "deprovisioning",
        "powering off before delete",
        "deleting",
    ]


def test_inspection_disabled_reads_the_field_and_the_annotation() -> None:
    assert not minimal_host().inspection_disabled()
    assert minimal_host(inspectionMode="disabled").inspection_disabled()
    annotated = minimal_host().with_meta(annotations={bmh.INSPECT_ANNOTATION: "disabled"})
    assert annotated.inspection_disabled()


def test_hardware_details_serialise_without_zero_values() -> None:
    details = hardwaredata.HardwareDetails(
        cpu=hardwaredata.CPU(arch="x86_64", count=4),
        nics=(hardwaredata.NIC(name="eth0", mac="52:54:00:00:00:01", pxe=True),),
    )
    data = hardwaredata.HardwareData(
        metadata=meta.ObjectMeta(name="h"), spec=hardwaredata.HardwareDataSpec(hardware=details)
    )
    assert data.to_wire()["spec"] == {
        "hardware": {
            "cpu": {"arch": "x86_64", "count": 4},
            "nics": [{"name": "eth0", "mac": "52:54:00:00:00:01", "pxe": True}],
        }
    }
    again = copy.deepcopy(data.to_wire())
    assert hardwaredata.HardwareData.from_wire(again) == data
