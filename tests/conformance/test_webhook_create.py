"""Upstream BMO's BareMetalHost webhook create tables, ported case by case (issue 9).

Source: metal3-io/baremetal-operator at 02aa5059e,
internal/webhooks/metal3.io/v1alpha1/baremetalhost_validation_test.go (TestValidateCreate) and
baremetalhost_webhook_test.go (TestBareMetalHostCreate, TestRAIDValidate). Case ids are
"<UpstreamTest>/<upstream case name>". Every case runs through `validation.admit("CREATE", ...)`
(what the webhook server calls) and, all together, through `metalcubed validate` (in process
and as the installed command). How a Go case maps onto a wire object and what "passes" means:
tests/conformance/webhook_support.py. Deliberate differences: docs/validate.md.
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from metalcubed.cli import main as cli
from metalcubed.core import outcome
from metalcubed.core.api import baremetalhost, validation
from tests.conformance import webhook_support as ws
from tests.conformance.webhook_support import Case, bmc, bmh

T = "TestValidateCreate"
CHECKSUM = "be254ebfd73e66ca91f6d91f5050aa2ee1ec4813ee65ba472f608ed340cbff09"
IDRAC_VM = "idrac-virtualmedia+https://192.168.1.1/redfish/v1/Systems/System.Embedded.1"
HW_DETAILS = (
    '{"systemVendor":{"manufacturer":"QEMU","productName":"Standard PC (Q35 + ICH9, 2009)",'
    '"serialNumber":""},"firmware":{"bios":{"date":"","vendor":"","version":""}},'
    '"ramMebibytes":4096,"nics":[{"name":"eth0","model":"0x1af4 0x0001",'
    '"mac":"00:b7:8b:bb:3d:f6","ip":"172.22.0.64","speedGbps":0,"vlanId":0,"pxe":true}],'
    '"storage":[{"name":"/dev/sda","rotational":true,"sizeBytes":53687091200,"vendor":"QEMU",'
    '"model":"QEMU HARDDISK","serialNumber":"drive-scsi0-0-0-0","hctl":"6:0:0:0"}],'
    '"cpu":{"arch":"x86_64","model":"Intel Xeon E3-12xx v2 (IvyBridge)",'
    '"clockMegahertz":2494.224,"flags":["foo"],"count":4},"hostname":"hwdAnnotation-0"}'
)
"""Upstream's hardware details annotation value (the same in its four cases, bar the edits)."""
HW_INVALID_FIELD = HW_DETAILS.replace('"systemVendor"', '"INVALIDField"', 1)
HW_TRUNCATED = HW_INVALID_FIELD[:-1]
INSPECT = "inspect.metal3.io"
HWD = "inspect.metal3.io/hardwaredetails"
STATUS = "baremetalhost.metal3.io/status"
REBOOT = "reboot.metal3.io"


def _hw_raid(**volume: Any) -> dict[str, Any]:
    return {"hardwareRAIDVolumes": [{"level": "", **volume}]}


def _raid_case(name: str, spec: dict[str, Any], wanted: str) -> Case:
    """Upstream's hardware RAID volumes have Level "": its CRD's enum refuses that, so the
    rule is also checked with level "1"."""
    volumes = [{**v, "level": "1"} for v in spec["raid"]["hardwareRAIDVolumes"]]
    fixed = {**spec, "raid": {**spec["raid"], "hardwareRAIDVolumes": volumes}}
    return Case(T, name, bmh(spec), wanted, schema="spec.raid.hardwareRAIDVolumes[0].level",
                schema_valid=bmh(fixed))


def _secret(name: str, namespace: str) -> dict[str, str]:
    return {"name": name, "namespace": namespace}


CREATE: list[Case] = [
    Case(T, "valid", bmh(), ""),
    Case(T, "validExternallyProvisioned", bmh({"externallyProvisioned": True}), ""),
    Case(T, "invalidName", bmh(name="test~"),
         "BareMetalHost resource name cannot contain characters other than [A-Za-z0-9._-]"),
    Case(T, "invalidName2", bmh(name="07564256-96ae-4315-ab03-8d34ece60fbb"),
         "BareMetalHost resource name cannot be a UUID"),
    Case(T, "invalidRAID",
         bmh({"bootMACAddress": "01:02:03:04:05:06",
              "bmc": bmc("redfish://bmc.example.com", "test1"),
              "raid": {"hardwareRAIDVolumes": [{"level": ""}],
                       "softwareRAIDVolumes": [{"level": ""}]}}),
         "hardwareRAIDVolumes and softwareRAIDVolumes can not be set at the same time",
         schema="spec.raid.hardwareRAIDVolumes[0].level",
         schema_valid=bmh({"bootMACAddress": "01:02:03:04:05:06",
                           "bmc": bmc("redfish://bmc.example.com", "test1"),
                           "raid": {"hardwareRAIDVolumes": [{"level": "1"}],
                                    "softwareRAIDVolumes": [{"level": "1"}]}})),
    Case(T, "supportBMCType",
         bmh({"bootMACAddress": "01:02:03:04:05:06",
              "bmc": bmc("redfish://bmc.example.com", "test1")}), ""),
    Case(T, "unsupportBMCType", bmh({"bmc": bmc("test:127.0.1.1", "test1")}),
         "Unknown BMC type 'test' for address test:127.0.1.1"),
    _raid_case("RAIDWithSupportBMC",
               {"raid": _hw_raid(), "bootMACAddress": "01:02:03:04:05:06",
                "bmc": bmc("redfish://bmc.example.com", "test1")}, ""),
    _raid_case("RAIDWithUnsupportBMC",
               {"raid": _hw_raid(), "bmc": bmc("ipmi://127.0.1.1", "test1")},
               "BMC driver ipmi does not support configuring RAID"),
    Case(T, "FirmwareWithUnsupportBMC",
         bmh({"firmware": {"virtualizationEnabled": True},
              "bmc": bmc("redfish://127.0.1.1", "test1")}),
         "the Firmware field is no longer supported, use HostFirmwareSettings resource instead"),
    Case(T, "BootMACAddressRequiredWithoutBootMACAddress",
         bmh({"bmc": bmc("libvirt://127.0.1.1", "test1")}),
         "BMC driver libvirt requires a BootMACAddress value"),
    Case(T, "BootMACAddressRequiredWithBootMACAddress",
         bmh({"bmc": bmc("libvirt://127.0.1.1", "test1"), "bootMACAddress": "00:00:00:00:00:00"}),
         ""),
    Case(T, "BootMACAddressNotRequiredForVirtualMedia", bmh({"bmc": bmc(IDRAC_VM, "test1")}), ""),
    Case(T, "BootMACAddressRequiredForVirtualMediaWithInspectionDisabled",
         bmh({"bmc": bmc(IDRAC_VM, "test1")}, annotations={INSPECT: "disabled"}),
         "BMC driver idrac-virtualmedia+https requires a BootMACAddress value"),
    Case(T, "BootMACAddressProvidedForVirtualMediaWithInspectionDisabled",
         bmh({"bmc": bmc(IDRAC_VM, "test1"), "bootMACAddress": "00:00:00:00:00:00",
              "inspectionMode": "disabled"}), ""),
    Case(T, "BootMACAddressNotRequiredForVirtualMediaWithInspectionEnabled",
         bmh({"bmc": bmc("redfish-virtualmedia+https://192.168.1.1/redfish/v1/Systems/1",
                         "test1"),
              "inspectionMode": "agent"}), ""),
    Case(T, "BootMACAddressRequired",
         bmh({"bmc": bmc("libvirt://127.0.1.1", "test1"), "bootMACAddress": "00:00:00:00:00:00",
              "bootMode": "UEFISecureBoot"}),
         "BMC driver libvirt does not support secure boot"),
    Case(T, "InvalidBootMACAddress",
         bmh({"bmc": bmc("redfish://bmc.example.com", "test1"),
              "bootMACAddress": "00:00:00:00:00", "bootMode": "UEFISecureBoot"}),
         "address 00:00:00:00:00: invalid MAC address", schema="spec.bootMACAddress"),
    Case(T, "UEFISecureBootWithSupportBMC",
         bmh({"bmc": bmc("redfish://bmc.example.com", "test1"),
              "bootMACAddress": "00:00:00:00:00:00", "bootMode": "UEFISecureBoot"}), ""),
    _raid_case("'physicalDisks' in HardwareRAID without 'controller'.",
               {"bmc": bmc("redfish://127.0.0.1", "test1"),
                "raid": _hw_raid(physicalDisks=["Disk-1", "Disk-2"])},
               "'physicalDisks' specified without 'controller' in hardware RAID volume 0"),
    _raid_case("'numberOfPhysicalDisks' not same as length of 'physicalDisks'",
               {"bmc": bmc("redfish://127.0.0.1", "test1"),
                "raid": _hw_raid(controller="Controller-1", physicalDisks=["Disk-1", "Disk-2"],
                                 numberOfPhysicalDisks=3)},
               "the 'numberOfPhysicalDisks'[3] and number of 'physicalDisks'[2] is not same for "
               "volume 0"),
    Case(T, "validDNSName", bmh({"bmc": bmc("ipmi://host-0.example.com.org:6223")}), ""),
    Case(T, "validDNSName2", bmh({"bmc": bmc("ipmi://baremetalhost")}), ""),
    Case(T, "validDNSName3", bmh({"bmc": bmc("ipmi://[fe80::fc33:62ff:fe83:8a76]:6233")}), ""),
    Case(T, "invalidDNSNameinvalidhyphenuse", bmh({"bmc": bmc("ipmi://-host.example.com.org")}),
         "failed to parse BMC address information: BMC address hostname/IP : "
         "[-host.example.com.org] is invalid"),
    Case(T, "invalidDNSNameinvalidcharacter", bmh({"bmc": bmc("ipmi://host+1.example.com.org")}),
         "failed to parse BMC address information: BMC address hostname/IP : "
         "[host+1.example.com.org] is invalid"),
    Case(T, "invalidDNSNameinvalidformat", bmh({"bmc": bmc("[@]host.example.com")}),
         'failed to parse BMC address information: parse "ipmi://[@]host.example.com": '
         "net/url: invalid userinfo"),
    Case(T, "invalidDNSNameinvalidbmc", bmh({"bmc": bmc("ipm:host.example.com:6223")}),
         "Unknown BMC type 'ipm' for address ipm:host.example.com:6223"),
    Case(T, "invalidDNSNameinvalidipv6",
         bmh({"bmc": bmc("ipmi://[fe80::fc33:62ff:fe33:8xff]:6223")}),
         'failed to parse BMC address information: parse "ipmi://[fe80::fc33:62ff:fe33:8xff]:6223"'
         ': invalid host: ParseAddr("fe80::fc33:62ff:fe33:8xff"): unexpected character, want '
         'colon (at "xff")',
         ours="spec.bmc.address: failed to parse BMC address information: "
              "'fe80::fc33:62ff:fe33:8xff' does not appear to be an IPv4 or IPv6 address",
         note="Go's netip wording; ours is Python's ipaddress wording for the same refusal"),
    Case(T, "validRootDeviceHint", bmh({"rootDeviceHints": {"deviceName": "/dev/sda"}}), ""),
    Case(T, "validRootDeviceHintByPath",
         bmh({"rootDeviceHints": {
             "deviceName": "/dev/disk/by-path/pci-0000:01:00.0-scsi-0:2:0:0"}}), ""),
    Case(T, "invalidRootDeviceHintByUUID",
         bmh({"rootDeviceHints": {
             "deviceName": "/dev/disk/by-uuid/cdaacd50-3a4c-421c-91c0-fe9ba7b8b2f1"}}),
         'device name of root device hint must be path in /dev/ or /dev/disk/by-path/, not '
         '"/dev/disk/by-uuid/cdaacd50-3a4c-421c-91c0-fe9ba7b8b2f1"'),
    Case(T, "invalidRootDeviceHintNoPath", bmh({"rootDeviceHints": {"deviceName": "sda"}}),
         'device name of root device hint must be a /dev/ path, not "sda"'),
    Case(T, "validImageURL",
         bmh({"image": {"url": "https://example.com/image", "checksum": CHECKSUM}}), ""),
    Case(T, "validImageURLOCI", bmh({"image": {"url": "oci://example.com/image:latest"}}), ""),
    Case(T, "validImageLiveISO",
         bmh({"image": {"url": "https://example.com/image", "format": "live-iso"}}), ""),
    Case(T, "invalidImageURL", bmh({"image": {"url": "test1", "checksum": CHECKSUM}}),
         'image URL test1 is invalid: parse "test1": invalid URI for request'),
    Case(T, "invalidImageURLScheme",
         bmh({"image": {"url": "unix://example.com", "checksum": CHECKSUM}}),
         'image URL unix://example.com is invalid: invalid scheme in URL, "unix" not allowed'),
    Case(T, "emptyImageURL", bmh({"image": {"url": "", "checksum": CHECKSUM}}),
         'image URL  is invalid: parse "": empty url'),
    Case(T, "imageNoChecksum", bmh({"image": {"url": "https://example.com/image"}}),
         "checksum is required for normal images"),
    Case(T, "imageInvalidChecksum",
         bmh({"image": {"url": "https://example.com/image", "checksum": CHECKSUM,
                        "checksumType": "SHA42"}}),
         "unknown checksumType SHA42, supported are auto, md5, sha256, sha512",
         schema="spec.image.checksumType"),
    Case(T, "validStatusAnnotation", bmh(annotations={STATUS: '{"operationalStatus": "OK"}'}), ""),
    Case(T, "invalidFieldStatusAnnotation",
         bmh(annotations={STATUS: '{"InvalidField":"NotOK"}'}),
         'error decoding status annotation: json: unknown field "InvalidField"'),
    Case(T, "invalidOpstatusStatusAnnotation",
         bmh(annotations={STATUS: '{"operationalStatus":"NotOK"}'}),
         "invalid operationalStatus 'NotOK' in the baremetalhost.metal3.io/status annotation"),
    Case(T, "invalidErrtypeStatusAnnotation",
         bmh(annotations={STATUS: '{"errorType":"No Error"}'}),
         "invalid errorType 'No Error' in the baremetalhost.metal3.io/status annotation"),
    Case(T, "invalidFormatStatusAnnotation",
         bmh(annotations={STATUS: '{"operationalStatus":"OK"'}),
         "error decoding status annotation: unexpected EOF"),
    Case(T, "invalidValueRebootAnnotationPrefix", bmh(annotations={REBOOT: '{"mode":"medium"}'}),
         'invalid mode in the reboot.metal3.io annotation, allowed are "hard", "soft" or ""'),
    Case(T, "invalidValueRebootAnnotationWithKey",
         bmh(annotations={REBOOT + "/my-key": '{"mode":"medium"}'}),
         'invalid mode in the reboot.metal3.io annotation, allowed are "hard", "soft" or ""'),
    Case(T, "inspectionNotDisabledHardwareDetailsAnnotation", bmh(annotations={HWD: HW_DETAILS}),
         "when hardware details are provided, inspection must be disabled (either via "
         "inspect.metal3.io annotation or inspectionMode field)"),
    Case(T, "invalidFieldHardwareDetailsAnnotation",
         bmh(annotations={INSPECT: "disabled", HWD: HW_INVALID_FIELD}),
         'error decoding the inspect.metal3.io/hardwaredetails annotation: json: unknown field '
         '"INVALIDField"'),
    Case(T, "invalidJsonHardwareDetailsAnnotation",
         bmh(annotations={INSPECT: "disabled", HWD: HW_TRUNCATED}),
         "error decoding the inspect.metal3.io/hardwaredetails annotation: unexpected EOF"),
    Case(T, "invalidValueInspectAnnotation", bmh(annotations={INSPECT: "enabled"}),
         'invalid value for the inspect.metal3.io annotation, allowed are "disabled" or ""'),
    Case(T, "crossNamespaceUserData",
         bmh({"userData": _secret("test-secret", "different-namespace")}),
         'baremetalhosts.metal3.io "test" is forbidden: userData: cross-namespace Secret '
         "references are not allowed"),
    Case(T, "crossNamespaceNetworkData",
         bmh({"networkData": _secret("test-secret", "different-namespace")}),
         'baremetalhosts.metal3.io "test" is forbidden: networkData: cross-namespace Secret '
         "references are not allowed"),
    Case(T, "crossNamespaceMetaData",
         bmh({"metaData": _secret("test-secret", "different-namespace")}),
         'baremetalhosts.metal3.io "test" is forbidden: metaData: cross-namespace Secret '
         "references are not allowed"),
    Case(T, "multipleSecretsCrossNamespace",
         bmh({"userData": _secret("test-secret1", "different-namespace1"),
              "networkData": _secret("test-secret2", "different-namespace2"),
              "metaData": _secret("test-secret3", "different-namespace3")}),
         'baremetalhosts.metal3.io "test" is forbidden: userData: cross-namespace Secret '
         "references are not allowed"),
    Case(T, "sameNamespaceSecrets",
         bmh({"userData": _secret("test-secret1", ws.NAMESPACE),
              "networkData": _secret("test-secret2", ws.NAMESPACE),
              "metaData": _secret("test-secret3", ws.NAMESPACE)}), ""),
    # Upstream leaves ObjectMeta empty in the next two; the API server requires a name, so
    # they carry upstream's usual one (it changes no rule they test).
    Case(T, "disablePowerOff", bmh({"disablePowerOff": True, "online": True}), ""),
    Case(T, "disablePowerOffErr", bmh({"disablePowerOff": True, "online": False}),
         "node can't simultaneously have online set to false and have power off disabled"),
    Case(T, "validInspectionModeDisabled", bmh({"inspectionMode": "disabled"}), ""),
    Case(T, "validInspectionModeAgent", bmh({"inspectionMode": "agent"}), ""),
    Case(T, "inspectionModeAndAnnotationConsistent",
         bmh({"inspectionMode": "disabled"}, annotations={INSPECT: "disabled"}), ""),
    Case(T, "inspectionModeAndAnnotationConflict",
         bmh({"inspectionMode": "agent"}, annotations={INSPECT: "disabled"}),
         "inspect.metal3.io annotation and inspectionMode field have contradicting values"),
    Case(T, "inspectionModeAgentAndAnnotationEmptyConsistent",
         bmh({"inspectionMode": "agent"}, annotations={INSPECT: ""}), ""),
    Case(T, "validInspectionModeFastRedfish",
         bmh({"bmc": bmc("redfish://192.168.122.1", "secretRefName"), "inspectionMode": "fast"}),
         ""),
    Case(T, "validInspectionModeFastIDracRedfish",
         bmh({"bmc": bmc("idrac-redfish://192.168.122.1", "secretRefName"),
              "inspectionMode": "fast"}), ""),
    Case(T, "validInspectionModeFastRedfishVirtualMedia",
         bmh({"bmc": bmc("redfish-virtualmedia://192.168.122.1", "secretRefName"),
              "inspectionMode": "fast"}), ""),
    Case(T, "validInspectionModeFastIDracVirtualMedia",
         bmh({"bmc": bmc("idrac-virtualmedia://192.168.122.1", "secretRefName"),
              "inspectionMode": "fast"}), ""),
    Case(T, "inspectionModeFastWithIPMI",
         bmh({"bmc": bmc("ipmi://192.168.122.1:6233", "secretRefName"),
              "inspectionMode": "fast"}),
         "BMC driver ipmi does not support fast (out-of-band) inspection"),
    Case(T, "inspectionModeFastAndAnnotationConflict",
         bmh({"inspectionMode": "fast"}, annotations={INSPECT: "disabled"}),
         "inspect.metal3.io annotation and inspectionMode field have contradicting values"),
    Case(T, "hardwareDetailsWithInspectionModeDisabled",
         bmh({"inspectionMode": "disabled"}, annotations={HWD: HW_DETAILS}), ""),
    Case(T, "validNetworkInterfaceWithName",
         bmh({"networkInterfaces": [
             {"name": "eth0", "hostNetworkAttachment": {"name": "my-attachment"}}]}), ""),
    Case(T, "validNetworkInterfaceWithMACAddress",
         bmh({"networkInterfaces": [{"macAddress": "00:11:22:33:44:55",
                                     "hostNetworkAttachment": {"name": "my-attachment"}}]}), ""),
    Case(T, "invalidNetworkInterfaceMissingIdentifier",
         bmh({"networkInterfaces": [{"hostNetworkAttachment": {"name": "my-attachment"}}]}),
         "networkInterfaces[0]: must specify either name or macAddress"),
    Case(T, "invalidNetworkInterfaceDuplicateName",
         bmh({"networkInterfaces": [
             {"name": "eth0", "hostNetworkAttachment": {"name": "attachment-1"}},
             {"name": "eth0", "hostNetworkAttachment": {"name": "attachment-2"}}]}),
         'networkInterfaces[1]: duplicate interface selector for "eth0"'),
    Case(T, "invalidNetworkInterfaceDuplicateMAC",
         bmh({"networkInterfaces": [
             {"macAddress": "00:11:22:33:44:55", "hostNetworkAttachment": {"name": "attachment-1"}},
             {"macAddress": "00:11:22:33:44:55",
              "hostNetworkAttachment": {"name": "attachment-2"}}]}),
         'networkInterfaces[1]: duplicate interface selector for "00:11:22:33:44:55"'),
    Case(T, "rejectNetworkInterfaceWithBothNameAndMAC",
         bmh({"networkInterfaces": [{"name": "eth0", "macAddress": "00:11:22:33:44:55",
                                     "hostNetworkAttachment": {"name": "attachment-1"}}]}),
         "networkInterfaces[0]: name and macAddress are mutually exclusive"),
    Case(T, "duplicateMACCaseInsensitive",
         bmh({"networkInterfaces": [
             {"macAddress": "AA:BB:CC:DD:EE:FF", "hostNetworkAttachment": {"name": "attachment-1"}},
             {"macAddress": "aa:bb:cc:dd:ee:ff",
              "hostNetworkAttachment": {"name": "attachment-2"}}]}),
         'networkInterfaces[1]: duplicate interface selector for "aa:bb:cc:dd:ee:ff"'),
    # baremetalhost_webhook_test.go
    Case("TestBareMetalHostCreate", "valid", bmh(), ""),
    Case("TestBareMetalHostCreate", "invalid-no-bootMACAddress-no-preprovisioningNetworkData",
         bmh({"bmc": bmc("libvirt://192.168.122.1:16509/")}),
         "BMC driver libvirt requires a BootMACAddress value"),
    Case("TestRAIDValidate", "valid-one-root-volume",
         bmh({"raid": {"softwareRAIDVolumes": [{"level": "1", "rootVolume": True},
                                               {"level": "1"}]}}), ""),
    Case("TestRAIDValidate", "invalid-two-root-volume",
         bmh({"raid": {"softwareRAIDVolumes": [{"level": "1", "rootVolume": True},
                                               {"level": "1", "rootVolume": True}]}}),
         "softwareRAIDVolumes[*].rootVolume can only be set once"),
    Case("TestRAIDValidate", "valid-no-root-volume-with-rootDeviceHints",
         bmh({"rootDeviceHints": {"deviceName": "/dev/sda"},
              "raid": {"softwareRAIDVolumes": [{"level": "1"}]}}), ""),
    Case("TestRAIDValidate", "invalid-root-volume-non-raid1",
         bmh({"raid": {"softwareRAIDVolumes": [{"level": "1"},
                                               {"level": "0", "rootVolume": True}]}}),
         "softwareRAIDVolumes[1] with rootVolume set must use RAID level 1"),
    Case("TestRAIDValidate", "invalid-set-both-root-volume-and-rootDeviceHints",
         bmh({"rootDeviceHints": {"deviceName": "/dev/sda"},
              "raid": {"softwareRAIDVolumes": [{"level": "1", "rootVolume": True}]}}),
         "softwareRAIDVolumes[*].rootVolume and rootDeviceHints can not be set at the same time"),
]


def _check(case: Case, errors: tuple[outcome.SpecError, ...]) -> None:
    if case.schema:
        ws.assert_schema_refuses(errors, case)
    elif case.ours:
        assert case.ours in ws.rendered(errors), ws.rendered(errors)
    else:
        ws.assert_verdict(errors, case.wanted)


def test_the_table_has_every_upstream_case_once() -> None:
    ids = [c.id for c in CREATE]
    assert len(ids) == len(set(ids))
    assert sum(c.test == T for c in CREATE) == 78  # TestValidateCreate's cases at 02aa5059e
    assert sum(c.test == "TestRAIDValidate" for c in CREATE) == 5


@pytest.mark.parametrize("case", CREATE, ids=lambda c: c.id)
def test_admission_create(case: Case) -> None:
    result = validation.admit("CREATE", case.new)
    assert result.allowed is (not case.wanted and not case.schema)
    assert result.warnings == ()
    _check(case, result.errors)
    if not result.allowed:
        assert result.message()  # the denial text H3's server sends


@pytest.mark.parametrize("case", [c for c in CREATE if c.schema_valid is not None],
                         ids=lambda c: c.id)
def test_admission_create_with_schema_valid_values(case: Case) -> None:
    """The webhook rule of a case whose object upstream's own CRD refuses."""
    assert case.schema_valid is not None
    assert ws.crd_support.schema_problems(ws.BMH_CRD, case.schema_valid) == []
    ws.assert_verdict(validation.admit("CREATE", case.schema_valid).errors, case.wanted)


def _as_file(tmp_path: Path, cases: list[Case]) -> Path:
    path = tmp_path / "create.yaml"
    path.write_text(yaml.safe_dump_all([c.new for c in cases], sort_keys=False))
    return path


def _lines_by_doc(out: str, path: Path) -> dict[int, list[str]]:
    by_doc: dict[int, list[str]] = {}
    for line in out.splitlines():
        where, _, rest = line.partition(": ")
        file, _, doc = where.rpartition(":")
        assert file == str(path), line
        by_doc.setdefault(int(doc), []).append(rest)
    return by_doc


def _assert_cli_agrees(out: str, path: Path) -> None:
    by_doc = _lines_by_doc(out, path)
    for index, case in enumerate(CREATE, start=1):
        lines = by_doc.get(index, [])
        if not case.wanted and not case.schema:
            assert lines == [], (case.id, lines)
        elif case.schema:
            assert any(line.startswith(case.schema + ": ") for line in lines), (case.id, lines)
        else:
            wanted = case.ours or case.wanted
            assert any(wanted in line for line in lines), (case.id, lines)


def test_validate_command_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _as_file(tmp_path, CREATE)
    code = cli.main(["validate", str(path)])
    out = capsys.readouterr().out
    assert code == 1
    _assert_cli_agrees(out, path)


def test_validate_command_installed(tmp_path: Path) -> None:
    path = _as_file(tmp_path, CREATE)
    proc = subprocess.run(
        [sys.executable, "-m", "metalcubed.cli", "validate", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert f"checked {len(CREATE)} object(s) in 1 file(s)" in proc.stderr, proc.stderr
    _assert_cli_agrees(proc.stdout, path)


def test_hardware_details_value_is_upstreams_json() -> None:
    assert json.loads(HW_DETAILS)["hostname"] == "hwdAnnotation-0"


# Issue 9 item 7: upstream's examples/demo-hosts.yaml (02aa5059e) stores a host with no spec
# ("demo-discovered") and leaves it unmanaged until BMC details arrive.
DEMO_DISCOVERED = {
    "apiVersion": "metal3.io/v1alpha1",
    "kind": "BareMetalHost",
    "metadata": {"name": "demo-discovered"},
}


def test_demo_hosts_discovered_host_without_spec_is_admitted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert validation.admit("CREATE", DEMO_DISCOVERED).errors == ()
    assert validation.admit("UPDATE", DEMO_DISCOVERED, DEMO_DISCOVERED).errors == ()
    path = tmp_path / "demo-discovered.yaml"
    path.write_text(yaml.safe_dump(DEMO_DISCOVERED))
    assert cli.main(["validate", str(path)]) == 0
    assert capsys.readouterr().out == ""


def test_demo_hosts_discovered_host_without_spec_fits_both_crds() -> None:
    ours = yaml.safe_load(
        (Path(__file__).parents[2] / "controllers/manifests/crds/metal3.io_baremetalhosts.yaml")
        .read_text()
    )
    schema = ours["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert "spec" not in schema.get("required", [])
    jsonschema.validate(DEMO_DISCOVERED, schema)
    assert ws.crd_support.schema_problems(ws.BMH_CRD, DEMO_DISCOVERED) == []


def test_demo_hosts_discovered_host_reads_as_unmanaged() -> None:
    host = baremetalhost.BareMetalHost.from_wire(DEMO_DISCOVERED)
    assert host.spec == baremetalhost.NO_SPEC
    assert not host.spec.has_bmc_details()  # the reconciler's test for `unmanaged`
    assert host.spec.online is False
