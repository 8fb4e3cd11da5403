"""HostFirmwareSettings, FirmwareSchema, HostFirmwareComponents and HostUpdatePolicy: the
models, the schema rules and the webhook, with upstream's own test cases (baremetal-operator
02aa5059e; each case names its upstream test and scenario)."""

import subprocess
import sys

import pytest
import yaml

from metalcubed.core.api import firmwareschema, validation
from metalcubed.core.api import hostfirmwarecomponents as hfc_api
from metalcubed.core.api import hostfirmwaresettings as hfs_api
from metalcubed.core.api import hostupdatepolicy as hup_api

from . import crd_support

S = firmwareschema.SettingSchema
T = firmwareschema.AttributeType

# upstream hostfirmwaresettings_test.go getCurrentSchemaSettings()
SCHEMA = {
    "AssetTag": S(attribute_type=T.STRING, min_length=0, max_length=20, unique=True),
    "CustomPostMessage": S(attribute_type=T.STRING, min_length=0, max_length=20, unique=False,
                           read_only=False),
    "L2Cache": S(attribute_type=T.STRING, min_length=0, max_length=20, read_only=True),
    "NetworkBootRetryCount": S(attribute_type=T.INTEGER, lower_bound=0, upper_bound=20,
                               read_only=False),
    "ProcVirtualization": S(attribute_type=T.ENUMERATION, allowable_values=("Enabled", "Disabled"),
                            read_only=False),
    "SecureBoot": S(attribute_type=T.ENUMERATION, allowable_values=("Enabled", "Disabled"),
                    read_only=True),
}
# upstream getHFS(): the status every TestValidateHostFirmwareSettings case starts from
STATUS = {
    "CustomPostMessage": "All tests passed", "L2Cache": "10x256 KB",
    "NetworkBootRetryCount": "10", "ProcVirtualization": "Enabled", "SecureBoot": "Enabled",
    "AssetTag": "X45672917",
}


def test_schema_name_is_upstreams() -> None:
    # TestStoreHostFirmwareSettings: schemaName "schema-4bcc035f" for that schema
    assert firmwareschema.schema_name(SCHEMA) == "schema-4bcc035f"
    assert firmwareschema.schema_name(dict(reversed(SCHEMA.items()))) == "schema-4bcc035f"


@pytest.mark.parametrize(("spec", "expected"), [
    pytest.param({"CustomPostMessage": "All tests passed", "ProcVirtualization": "Disabled",
                  "NetworkBootRetryCount": 20}, [], id="valid spec changes with schema"),
    pytest.param({"CustomPostMessage": "A really long POST message",
                  "ProcVirtualization": "Disabled", "NetworkBootRetryCount": 20},
                 [("CustomPostMessage", "Setting CustomPostMessage is invalid, string A really "
                   "long POST message length is above maximum length 20")], id="invalid string"),
    pytest.param({"CustomPostMessage": "All tests passed", "ProcVirtualization": "Disabled",
                  "NetworkBootRetryCount": 2000},
                 [("NetworkBootRetryCount", "Setting NetworkBootRetryCount is invalid, integer "
                   "2000 is above maximum value 20")], id="invalid int"),
    pytest.param({"CustomPostMessage": "All tests passed", "ProcVirtualization": "Not enabled",
                  "NetworkBootRetryCount": "20"},
                 [("ProcVirtualization", "Setting ProcVirtualization is invalid, unknown "
                   "enumeration value - Not enabled")], id="invalid enum"),
    pytest.param({"SomeNewSetting": "foo"},
                 [("SomeNewSetting", "setting SomeNewSetting is not in the Status field")],
                 id="invalid name"),
    pytest.param({"CustomPostMessage": "All tests passed", "ProcVirtualization": "Disabled",
                  "NetworkBootRetryCount": "20", "SysPassword": "Pa%$word"},
                 [("SysPassword", "cannot set Password field")], id="invalid password in spec"),
    pytest.param({"CustomPostMessage": "All tests passed", "ProcVirtualization": "Disabled",
                  "NetworkBootRetryCount": "foo"},
                 [("NetworkBootRetryCount", "Setting NetworkBootRetryCount is invalid, String "
                   "foo entered while integer expected")], id="string instead of int"),
])
def test_upstream_validate_host_firmware_settings(
    spec: dict[str, int | str], expected: list[tuple[str, str]]
) -> None:
    """upstream TestValidateHostFirmwareSettings; each error names its field."""
    errors = hfs_api.invalid_settings(spec, STATUS, SCHEMA)
    assert [(e.field, e.message) for e in errors] == [
        (f"spec.settings[{name}]", message) for name, message in expected]


@pytest.mark.parametrize(("schema", "value", "problem"), [
    (S(attribute_type=T.INTEGER, lower_bound=5), 4, "integer 4 is below minimum value 5"),
    (S(attribute_type=T.INTEGER), "+7", ""),
    (S(attribute_type=T.INTEGER), " 7", "String  7 entered while integer expected"),
    (S(attribute_type=T.STRING, min_length=3), "ab", "string ab length is below minimum length 3"),
    (S(attribute_type=T.BOOLEAN), "true", ""),
    (S(attribute_type=T.BOOLEAN), "yes", "yes is not a boolean"),
    (S(attribute_type=T.PASSWORD), "x", "passwords are immutable"),
    (S(attribute_type=T.ENUMERATION, allowable_values=("A",), read_only=True), "A",
     "it is ReadOnly"),
    (S(), "anything", ""),  # no registry entry type: allowed, as upstream
])
def test_setting_rules(schema: firmwareschema.SettingSchema, value: int | str,
                       problem: str) -> None:
    assert firmwareschema.setting_problem(schema, "Attr", value) == problem


def test_a_setting_not_in_the_schema_is_refused() -> None:
    assert firmwareschema.validate_setting(SCHEMA, "Nope", "1") == \
        "Setting Nope is invalid, it is not in the associated schema"


@pytest.mark.parametrize(("updates", "problem"), [
    pytest.param([("bmc", "https://myurl/mybmcfw"), ("bios", "https://myurl/mybiosfw")], "",
                 id="valid spec - all components"),
    pytest.param([("bios", "https://myurl/mybiosfw")], "", id="valid spec - only bios"),
    pytest.param([("bmc", "https://myurl/mybmcfw")], "", id="valid spec - only bmc"),
    pytest.param([("bmc", "https://myurl/mybmcfw"), ("nic:NIC.1", "https://myurl/mynicfw"),
                  ("nic:AD007", "https://myurl/mynic2fw")], "",
                 id="valid spec - with nic components"),
    pytest.param([("something", "https://myurl/myfw")], "something",
                 id="invalid something component"),
    pytest.param([("bmc", "https://myurl/mybmcfw"), ("bios", "https://myurl/mybiosfw"),
                  ("something", "https://myurl/myfw")], "something",
                 id="invalid something component with other valid components"),
    pytest.param([("BMC", "https://myurl/mybmcfw"), ("BIOS", "https://myurl/mybiosfw")], "BMC",
                 id="component not in lowercase"),
])
def test_upstream_validate_host_firmware_components(
    updates: list[tuple[str, str]], problem: str
) -> None:
    """upstream TestValidadeHostFirmwareComponents (the first bad component is reported)."""
    hfc = _hfc(updates)
    expected = (f"component {problem} is invalid, only 'bmc', 'bios', or names starting with "
                "'nic:' are allowed as update names") if problem else ""
    assert hfc_api.component_problem(hfc) == expected


def _hfc(updates: list[tuple[str, str]]) -> hfc_api.HostFirmwareComponents:
    return hfc_api.HostFirmwareComponents(spec=hfc_api.HostFirmwareComponentsSpec(updates=tuple(
        hfc_api.FirmwareUpdate(component=c, url=u) for c, u in updates)))


@pytest.mark.parametrize(("url", "message"), [
    pytest.param("http://example.com", "", id="validURL"),
    pytest.param("abc", 'invalid URL "abc" in FirmwareUpdate in component "test1": parse "abc": '
                 "invalid URI for request", id="invalidURL"),
    pytest.param("unix://example.com", 'invalid URL "unix://example.com" in FirmwareUpdate in '
                 'component "test1": invalid scheme in URL, "unix" not allowed',
                 id="invalidURLScheme"),
    pytest.param("", 'invalid URL "" in FirmwareUpdate in component "test1": parse "": empty url',
                 id="invalidURLempty"),
])
def test_upstream_hfc_webhook(url: str, message: str) -> None:
    """upstream hostfirmwarecomponents_validation_test.go, through validation.admit."""
    doc = {"apiVersion": "metal3.io/v1alpha1", "kind": "HostFirmwareComponents",
           "metadata": {"name": "h", "namespace": "ns"},
           "spec": {"updates": [{"component": "test1", "url": url}]}}
    admission = validation.admit("CREATE", doc, None)
    assert admission.allowed == (not message)
    assert [(e.field, e.message) for e in admission.errors] == (
        [("spec.updates[0].url", message)] if message else [])


def test_pending_updates_are_those_not_applied_with_the_same_url() -> None:
    hfc = _hfc([("bios", "http://a/bios-1.fwimg"), ("bmc", "http://a/bmc-2.fwimg")])
    hfc = hfc.model_copy(update={"status": hfc_api.HostFirmwareComponentsStatus(
        updates=(hfc_api.FirmwareUpdate(component="bios", url="http://a/bios-1.fwimg"),
                 hfc_api.FirmwareUpdate(component="bmc", url="http://a/bmc-1.fwimg")))})
    assert hfc_api.pending_updates(hfc) == (
        hfc_api.FirmwareUpdate(component="bmc", url="http://a/bmc-2.fwimg"),)


def test_firmware_schema_keeps_upstreams_snake_case_keys() -> None:
    doc = {"apiVersion": "metal3.io/v1alpha1", "kind": "FirmwareSchema",
           "metadata": {"name": "schema-4bcc035f", "namespace": "ns"},
           "spec": {"hardwareVendor": "Dell", "schema": {"NetworkBootRetryCount": {
               "attribute_type": "Integer", "lower_bound": 0, "upper_bound": 20,
               "read_only": False}}}}
    schema = firmwareschema.FirmwareSchema.from_wire(doc)
    assert schema.spec.schema_["NetworkBootRetryCount"] == SCHEMA["NetworkBootRetryCount"]
    assert schema.to_wire()["spec"] == doc["spec"]
    assert validation.validate_object(doc) == []


def test_spec_values_are_int_or_string_as_the_crd_says() -> None:
    hfs = hfs_api.HostFirmwareSettings.from_wire({
        "apiVersion": "metal3.io/v1alpha1", "kind": "HostFirmwareSettings",
        "metadata": {"name": "h"}, "spec": {"settings": {"A": 20, "B": "20"}}})
    assert hfs.spec.settings == {"A": 20, "B": "20"}
    assert hfs_api.changed_settings(hfs.spec.settings, {"A": "20", "B": "21"}) == {"B": "20"}
    errors = validation.validate_object({
        "apiVersion": "metal3.io/v1alpha1", "kind": "HostFirmwareSettings",
        "metadata": {"name": "h"}, "spec": {"settings": {"A": True}}})
    assert errors and {e.field for e in errors} == {"spec.settings.A"}


def test_update_policy_values_are_upstreams() -> None:
    errors = validation.validate_object({
        "apiVersion": "metal3.io/v1alpha1", "kind": "HostUpdatePolicy",
        "metadata": {"name": "h"}, "spec": {"firmwareSettings": "onReboot",
                                            "firmwareUpdates": "never"}})
    assert [e.field for e in errors] == ["spec.firmwareUpdates"]
    policy = hup_api.HostUpdatePolicy.from_wire({
        "apiVersion": "metal3.io/v1alpha1", "kind": "HostUpdatePolicy",
        "metadata": {"name": "h"}, "spec": {"firmwareUpdates": "onPreparing"}})
    assert policy.spec.firmware_updates == hup_api.UpdatePolicy.ON_PREPARING
    assert policy.to_wire()["spec"] == {"firmwareUpdates": "onPreparing"}


def test_upstreams_hfs_sample_is_refused_as_upstreams_crd_refuses_it() -> None:
    """config/samples' HostFirmwareSettings writes settings as a list of one-key maps; upstream's
    own CRD (settings: object) refuses it, and so do we, naming both fields."""
    path = crd_support.EXAMPLES / "bmo-metal3.io_v1alpha1_hostfirmwaresettings.yaml"
    doc = yaml.safe_load(path.read_text())
    assert {e.field for e in validation.validate_object(doc)} == {"spec.settings",
                                                                  "status.settings"}


@pytest.mark.parametrize("module", ["firmwareschema", "hostfirmwaresettings",
                                    "hostfirmwarecomponents", "hostupdatepolicy"])
def test_each_module_imports_first(module: str) -> None:
    """Importing any of them before validation (a fresh interpreter) must not trip the
    validation <-> kind-module import cycle."""
    result = subprocess.run([sys.executable, "-c", f"import metalcubed.core.api.{module}"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
