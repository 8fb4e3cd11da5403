"""Upstream's BareMetalHost admission rules (validate_host), one rule at a time."""

import json
from typing import Any

import pytest

from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import validation

MAC = "52:54:00:12:34:56"


def host(
    *,
    name: str = "worker-0",
    namespace: str = "metal3",
    annotations: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
    **spec: Any,
) -> bmh.BareMetalHost:
    doc: dict[str, Any] = {
        "apiVersion": "metal3.io/v1alpha1",
        "kind": "BareMetalHost",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": {
            "online": True,
            "bmc": {"address": "redfish://10.0.0.1/redfish/v1/Systems/1", "credentialsName": "c"},
            **spec,
        },
    }
    if status is not None:
        doc["status"] = status
    return bmh.BareMetalHost.from_wire(doc)


def problems(h: bmh.BareMetalHost, old: bmh.BareMetalHost | None = None) -> list[tuple[str, str]]:
    return [(e.field, e.message) for e in validation.validate_host(h, old=old)]


def fields(h: bmh.BareMetalHost, old: bmh.BareMetalHost | None = None) -> list[str]:
    return [field for field, _ in problems(h, old)]


def test_a_plain_redfish_host_is_admitted() -> None:
    assert problems(host()) == []


def test_an_unmanaged_host_without_bmc_is_admitted() -> None:
    assert problems(host(bmc={"address": "", "credentialsName": ""})) == []


# --- name ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["worker-0", "Node_1.rack2", "1234"])
def test_name_with_allowed_characters_is_admitted(name: str) -> None:
    assert fields(host(name=name)) == []


@pytest.mark.parametrize("name", ["worker 0", "worker/0", "wörker"])
def test_name_with_other_characters_is_rejected(name: str) -> None:
    assert problems(host(name=name)) == [
        (
            "metadata.name",
            "BareMetalHost resource name cannot contain characters other than [A-Za-z0-9._-]",
        )
    ]


@pytest.mark.parametrize(
    "name", ["0a2e3d8c-e230-4511-845a-ccb12e0b71f4", "0A2E3D8CE2304511845ACCB12E0B71F4"]
)
def test_name_that_is_a_uuid_is_rejected(name: str) -> None:
    assert problems(host(name=name)) == [
        ("metadata.name", "BareMetalHost resource name cannot be a UUID")
    ]


def test_name_that_only_looks_like_a_uuid_is_admitted() -> None:
    assert fields(host(name="0a2e3d8c-e230-4511-845a-ccb12e0b71f4-x")) == []


# --- BMC address ---------------------------------------------------------------------------


def test_unknown_bmc_scheme_is_rejected_on_the_address() -> None:
    h = host(bmc={"address": "foo://10.0.0.1", "credentialsName": "c"})
    assert problems(h) == [
        ("spec.bmc.address", "Unknown BMC type 'foo' for address foo://10.0.0.1")
    ]


def test_bmc_hostname_must_be_an_ip_or_dns_name() -> None:
    h = host(bmc={"address": "redfish://bmc_1.example.com", "credentialsName": "c"})
    assert fields(h) == ["spec.bmc.address"]
    ok = host(bmc={"address": "redfish://bmc-1.example.com", "credentialsName": "c"})
    assert fields(ok) == []


# --- boot MAC ------------------------------------------------------------------------------


def test_libvirt_needs_a_boot_mac() -> None:
    bmc = {"address": "libvirt://10.0.0.1:6233/", "credentialsName": "c"}
    assert problems(host(bmc=bmc)) == [
        ("spec.bootMACAddress", "BMC driver libvirt requires a BootMACAddress value")
    ]
    assert fields(host(bmc=bmc, bootMACAddress=MAC)) == []


@pytest.mark.parametrize("scheme", ["ipmi", "redfish", "redfish-virtualmedia+http"])
def test_other_drivers_need_a_boot_mac_only_when_inspection_is_disabled(scheme: str) -> None:
    bmc = {"address": f"{scheme}://10.0.0.1", "credentialsName": "c"}
    assert fields(host(bmc=bmc)) == []
    assert problems(host(bmc=bmc, inspectionMode="disabled")) == [
        ("spec.bootMACAddress", f"BMC driver {scheme} requires a BootMACAddress value")
    ]
    by_annotation = host(bmc=bmc, annotations={"inspect.metal3.io": "disabled"})
    assert fields(by_annotation) == ["spec.bootMACAddress"]
    assert fields(host(bmc=bmc, inspectionMode="disabled", bootMACAddress=MAC)) == []


@pytest.mark.parametrize(
    ("mac", "valid"),
    [
        (MAC, True),
        ("00:11:22:33:44:55:66:77", True),  # EUI-64, as Go's net.ParseMAC
        ("x52:54:00:12:34:56", False),  # passes the CRD's unanchored pattern only
        ("52:54:00:12:34:56:78", False),
        ("52:54:00:12:34:56-78", False),  # mixed separators
    ],
)
def test_boot_mac_must_parse_as_a_mac(mac: str, valid: bool) -> None:
    got = problems(host(bootMACAddress=mac))
    assert got == (
        [] if valid else [("spec.bootMACAddress", f"address {mac}: invalid MAC address")]
    )


def test_boot_mac_cannot_change_once_set_but_case_does_not_matter() -> None:
    old = host(bootMACAddress=MAC)
    assert problems(host(bootMACAddress="52:54:00:12:34:57"), old) == [
        ("spec.bootMACAddress", "bootMACAddress can not be changed once it is set")
    ]
    assert problems(host(bootMACAddress=MAC.upper()), old) == []
    assert problems(host(bootMACAddress=MAC), host()) == []  # setting it the first time


# --- update rules --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "allowed"),
    [
        ({"provisioning": {"state": "registering", "ID": ""}}, True),
        (
            {"operationalStatus": "detached", "provisioning": {"state": "provisioned", "ID": ""}},
            True,
        ),
        ({"provisioning": {"state": "available", "ID": ""}}, False),
    ],
    ids=["registering", "detached", "available"],
)
def test_bmc_address_changes_only_while_registering_or_detached(
    status: dict[str, Any], allowed: bool
) -> None:
    old = host()
    new = host(
        bmc={"address": "redfish://10.0.0.2/redfish/v1/Systems/1", "credentialsName": "c"},
        status=status,
    )
    assert fields(new, old) == ([] if allowed else ["spec.bmc.address"])


def test_setting_a_first_bmc_address_is_always_allowed() -> None:
    old = host(bmc={"address": "", "credentialsName": ""})
    assert fields(host(status={"provisioning": {"state": "unmanaged", "ID": ""}}), old) == []


@pytest.mark.parametrize(("state", "allowed"), [("available", True), ("provisioning", False)])
def test_externally_provisioned_is_enabled_only_from_available(state: str, allowed: bool) -> None:
    # On the main resource the API server keeps the stored status: old and new carry the same.
    status = {"provisioning": {"state": state, "ID": ""}}
    old = host(status=status)
    new = host(externallyProvisioned=True, status=status)
    expected = (
        []
        if allowed
        else [
            (
                "spec.externallyProvisioned",
                f"externallyProvisioned can only be enabled when in Available state, "
                f"currently in {state}",
            )
        ]
    )
    assert problems(new, old) == expected


def test_externally_provisioned_can_be_set_at_creation() -> None:
    assert fields(host(externallyProvisioned=True)) == []


# --- root device hints ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "ok"),
    [
        ("/dev/sda", True),
        ("/dev/disk/by-path/pci-0000:01:00.0-scsi-0:2:0:0", True),
        ("sda", False),
        ("/dev/disk/by-id/wwn-0x5000", False),
    ],
)
def test_root_device_name_must_be_under_dev(device: str, ok: bool) -> None:
    got = fields(host(rootDeviceHints={"deviceName": device}))
    assert got == ([] if ok else ["spec.rootDeviceHints.deviceName"])


# --- RAID ----------------------------------------------------------------------------------


def test_hardware_and_software_raid_are_exclusive() -> None:
    raid = {"hardwareRAIDVolumes": [{"level": "1"}], "softwareRAIDVolumes": [{"level": "1"}]}
    assert fields(host(raid=raid)) == ["spec.raid"]
    assert (
        fields(host(raid={"hardwareRAIDVolumes": [], "softwareRAIDVolumes": [{"level": "1"}]}))
        == []
    )


def test_hardware_raid_physical_disks_need_a_controller() -> None:
    bad = {"hardwareRAIDVolumes": [{"level": "1", "physicalDisks": ["d1", "d2"]}]}
    assert fields(host(raid=bad)) == ["spec.raid.hardwareRAIDVolumes[0].physicalDisks"]
    good = {
        "hardwareRAIDVolumes": [{"level": "1", "physicalDisks": ["d1", "d2"], "controller": "c0"}]
    }
    assert fields(host(raid=good)) == []


def test_hardware_raid_disk_count_must_match_the_disk_list() -> None:
    volume = {"level": "1", "controller": "c0", "physicalDisks": ["d1", "d2"]}
    bad = {"hardwareRAIDVolumes": [{**volume, "numberOfPhysicalDisks": 3}]}
    assert fields(host(raid=bad)) == ["spec.raid.hardwareRAIDVolumes[0].numberOfPhysicalDisks"]
    good = {"hardwareRAIDVolumes": [{**volume, "numberOfPhysicalDisks": 2}]}
    assert fields(host(raid=good)) == []


def test_hardware_raid_is_rejected_for_a_driver_without_raid() -> None:
    raid = {"hardwareRAIDVolumes": [{"level": "1"}]}
    ipmi = {"address": "ipmi://10.0.0.1", "credentialsName": "c"}
    assert problems(host(raid=raid, bmc=ipmi)) == [
        ("spec.raid.hardwareRAIDVolumes", "BMC driver ipmi does not support configuring RAID")
    ]
    assert fields(host(raid={"hardwareRAIDVolumes": []}, bmc=ipmi)) == []  # clearing is fine
    assert fields(host(raid=raid)) == []  # redfish has RAID


def _disks() -> list[dict[str, str]]:
    return [{"deviceName": "/dev/sda"}, {"deviceName": "/dev/sdb"}]


def test_only_one_software_raid_volume_can_be_root() -> None:
    two_roots = {
        "softwareRAIDVolumes": [
            {"level": "1", "rootVolume": True, "physicalDisks": _disks()},
            {"level": "1", "rootVolume": True, "physicalDisks": _disks()},
        ]
    }
    assert fields(host(raid=two_roots)) == ["spec.raid.softwareRAIDVolumes[1].rootVolume"]


def test_software_raid_root_volume_must_be_raid1() -> None:
    raid0 = {"softwareRAIDVolumes": [{"level": "0", "rootVolume": True, "physicalDisks": _disks()}]}
    assert fields(host(raid=raid0)) == ["spec.raid.softwareRAIDVolumes[0].level"]
    raid1 = {"softwareRAIDVolumes": [{"level": "1", "rootVolume": True, "physicalDisks": _disks()}]}
    assert fields(host(raid=raid1)) == []


def test_software_raid_root_volume_excludes_root_device_hints() -> None:
    raid = {"softwareRAIDVolumes": [{"level": "1", "rootVolume": True}]}
    got = fields(host(raid=raid, rootDeviceHints={"deviceName": "/dev/sda"}))
    assert got == ["spec.raid.softwareRAIDVolumes[0].rootVolume"]


def test_software_raid_disk_hints_are_not_checked_like_root_device_hints() -> None:
    # Upstream's validateRootDeviceHints reads spec.rootDeviceHints only.
    raid = {"softwareRAIDVolumes": [{"level": "1", "physicalDisks": [{"deviceName": "sda"}, {}]}]}
    assert fields(host(raid=raid)) == []


# --- firmware, secure boot, power ----------------------------------------------------------


def test_firmware_settings_in_the_host_are_rejected() -> None:
    assert fields(host(firmware={"sriovEnabled": True})) == ["spec.firmware"]
    assert fields(host()) == []


def test_secure_boot_needs_a_driver_that_supports_it() -> None:
    ipmi = {"address": "ipmi://10.0.0.1", "credentialsName": "c"}
    assert problems(host(bootMode="UEFISecureBoot", bmc=ipmi)) == [
        ("spec.bootMode", "BMC driver ipmi does not support secure boot")
    ]
    assert fields(host(bootMode="UEFISecureBoot")) == []
    assert fields(host(bootMode="legacy", bmc=ipmi)) == []


def test_disable_power_off_cannot_go_with_online_false() -> None:
    assert fields(host(disablePowerOff=True, online=False)) == ["spec.disablePowerOff"]
    assert fields(host(disablePowerOff=True, online=True)) == []
    assert fields(host(online=False)) == []


# --- image ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ({"url": "http://img/os.qcow2", "checksum": "http://img/os.sha256"}, []),
        ({"url": "http://img/os.qcow2"}, ["spec.image.checksum"]),
        ({"url": "http://img/live.iso", "format": "live-iso"}, []),
        ({"url": "oci://quay.io/os/image:1"}, []),
        ({"url": "oci://quay.io/os/image:1", "checksum": "abc"}, ["spec.image.checksum"]),
        ({"url": "os.qcow2", "checksum": "abc"}, ["spec.image.url"]),
        ({"url": "", "checksum": "abc"}, ["spec.image.url"]),
        ({"url": "http://img/o s.qcow2", "checksum": "abc"}, []),
        ({"url": "http://i g/os.qcow2", "checksum": "abc"}, ["spec.image.url"]),
        ({"url": "http://img/os\x7f.qcow2", "checksum": "abc"}, ["spec.image.url"]),
        ({"url": "http://img:port/os.qcow2", "checksum": "abc"}, ["spec.image.url"]),
        ({"url": "/images/os.qcow2", "checksum": "abc"}, ["spec.image.url"]),
        ({"url": "file:///etc/passwd", "checksum": "abc"}, ["spec.image.url"]),
        ({"url": "HTTPS://img/os.qcow2", "checksum": "abc"}, []),
        ({"url": "http:img/os.qcow2", "checksum": "abc"}, ["spec.image.url"]),
        ({"url": "http://img/os%zz.qcow2", "checksum": "abc"}, ["spec.image.url"]),
        ({"url": "http://img/os%20a.qcow2?sig=%zz", "checksum": "abc"}, []),
    ],
)
def test_image_url_and_checksum_rules(image: dict[str, str], expected: list[str]) -> None:
    assert fields(host(image=image)) == expected


def test_image_url_messages_are_gos() -> None:
    assert problems(host(image={"url": "http://img/a%2", "checksum": "abc"})) == [
        ("spec.image.url", 'image URL http://img/a%2 is invalid: parse "http://img/a%2": '
         'invalid URL escape "%2"')
    ]
    assert problems(host(image={"url": "file:///etc/passwd", "checksum": "abc"})) == [
        ("spec.image.url", 'image URL file:///etc/passwd is invalid: invalid scheme in URL, '
         '"file" not allowed')
    ]


def test_image_url_messages_never_show_a_password() -> None:
    url = "ssh://deploy:s3cret@images.example.com/os.qcow2"
    ((field, message),) = problems(host(image={"url": url, "checksum": "abc"}))
    assert field == "spec.image.url"
    assert "s3cret" not in message
    assert message == (
        "image URL ssh://deploy:xxxxx@images.example.com/os.qcow2 is invalid: invalid scheme in "
        'URL, "ssh" not allowed')


def test_image_messages_are_upstreams() -> None:
    assert problems(host(image={"url": "http://img/os.qcow2"})) == [
        ("spec.image.checksum", "checksum is required for normal images")
    ]
    ((field, message),) = problems(host(image={"url": "os.qcow2", "checksum": "x"}))
    assert field == "spec.image.url"
    assert message.startswith("image URL os.qcow2 is invalid: ")


# --- secret references ---------------------------------------------------------------------


@pytest.mark.parametrize("field", ["userData", "networkData", "metaData"])
def test_secret_references_cannot_cross_namespaces(field: str) -> None:
    assert fields(host(**{field: {"name": "s", "namespace": "other"}})) == [
        f"spec.{field}.namespace"
    ]
    assert fields(host(**{field: {"name": "s", "namespace": "metal3"}})) == []
    assert fields(host(**{field: {"name": "s"}})) == []


def test_secret_namespace_is_not_judged_when_the_host_has_none() -> None:
    assert fields(host(namespace="", userData={"name": "s", "namespace": "other"})) == []


# --- inspection mode -----------------------------------------------------------------------


def test_inspection_mode_must_agree_with_the_inspect_annotation() -> None:
    contradicting = host(
        inspectionMode="agent", annotations={"inspect.metal3.io": "disabled"}, bootMACAddress=MAC
    )
    assert problems(contradicting) == [
        (
            "spec.inspectionMode",
            "inspect.metal3.io annotation and inspectionMode field have contradicting values",
        )
    ]
    agreeing = host(
        inspectionMode="disabled", annotations={"inspect.metal3.io": "disabled"}, bootMACAddress=MAC
    )
    assert fields(agreeing) == []
    assert fields(host(inspectionMode="agent", annotations={"inspect.metal3.io": ""})) == []


def test_fast_inspection_needs_an_out_of_band_inspect_interface() -> None:
    ipmi = {"address": "ipmi://10.0.0.1", "credentialsName": "c"}
    assert fields(host(inspectionMode="fast", bmc=ipmi)) == ["spec.inspectionMode"]
    assert fields(host(inspectionMode="fast")) == []


# --- network interfaces --------------------------------------------------------------------


def test_network_interface_is_named_by_name_or_mac_not_both() -> None:
    both = [{"name": "eno1", "macAddress": MAC}]
    assert fields(host(networkInterfaces=both)) == ["spec.networkInterfaces[0]"]
    assert fields(host(networkInterfaces=[{"hostNetworkAttachment": {"name": "a"}}])) == [
        "spec.networkInterfaces[0]"
    ]
    assert fields(host(networkInterfaces=[{"name": "eno1"}, {"macAddress": MAC}])) == []


# --- annotations ---------------------------------------------------------------------------


def annotated(name: str, value: str, **spec: Any) -> list[tuple[str, str]]:
    return problems(host(annotations={name: value}, **spec))


@pytest.mark.parametrize(
    "value",
    ["", '{"mode": "hard"}', '{"mode": "soft", "force": true}', '{"mode": ""}', "{}"],
)
@pytest.mark.parametrize("name", ["reboot.metal3.io", "reboot.metal3.io/remediation"])
def test_reboot_annotation_accepts_hard_soft_or_empty(name: str, value: str) -> None:
    assert annotated(name, value) == []


@pytest.mark.parametrize("value", ['{"mode": "warm"}', "hard", "[1]", '{"force": "yes"}'])
@pytest.mark.parametrize("name", ["reboot.metal3.io", "reboot.metal3.io/remediation"])
def test_reboot_annotation_rejects_other_values(name: str, value: str) -> None:
    assert [f for f, _ in annotated(name, value)] == [f"metadata.annotations[{name}]"]


def test_reboot_annotation_message_lists_the_modes() -> None:
    assert annotated("reboot.metal3.io", '{"mode": "warm"}') == [
        (
            "metadata.annotations[reboot.metal3.io]",
            'invalid mode in the reboot.metal3.io annotation, allowed are "hard", "soft" or ""',
        )
    ]


@pytest.mark.parametrize(("value", "ok"), [("", True), ("disabled", True), ("yes", False)])
def test_inspect_annotation_is_disabled_or_empty(value: str, ok: bool) -> None:
    extra = {"bootMACAddress": MAC}
    got = [f for f, _ in annotated("inspect.metal3.io", value, **extra)]
    assert got == ([] if ok else ["metadata.annotations[inspect.metal3.io]"])


def _status_annotation(**fields_: Any) -> str:
    status = {"operationalStatus": "OK", "errorMessage": "", "poweredOn": True, **fields_}
    return json.dumps(status)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (_status_annotation(), ""),
        (_status_annotation(errorType="registration error", operationalStatus="error"), ""),
        (_status_annotation(provisioning={"state": "provisioned", "ID": "x"}), ""),
        ("", ""),
        (_status_annotation(unknownField=1), "error decoding status annotation"),
        ("{not json", "error decoding status annotation"),
        (_status_annotation(operationalStatus="sleeping"), "invalid operationalStatus 'sleeping'"),
        (_status_annotation(errorType="detach error"), "invalid errorType 'detach error'"),
        (_status_annotation(errorType="oops"), "invalid errorType 'oops'"),
    ],
)
def test_status_annotation_must_decode_to_a_status(value: str, reason: str) -> None:
    got = annotated("baremetalhost.metal3.io/status", value)
    if not reason:
        assert got == []
    else:
        ((field, message),) = got
        assert field == "metadata.annotations[baremetalhost.metal3.io/status]"
        assert reason in message


def test_hardware_details_annotation_needs_inspection_disabled() -> None:
    details = json.dumps({"cpu": {"arch": "x86_64", "count": 8}, "ramMebibytes": 16384})
    name = "inspect.metal3.io/hardwaredetails"
    assert [f for f, _ in annotated(name, details)] == [f"metadata.annotations[{name}]"]
    assert annotated(name, details, inspectionMode="disabled", bootMACAddress=MAC) == []


def test_hardware_details_annotation_rejects_unknown_fields() -> None:
    name = "inspect.metal3.io/hardwaredetails"
    ((field, message),) = annotated(
        name, '{"cpu": {"cores": 8}}', inspectionMode="disabled", bootMACAddress=MAC
    )
    assert field == f"metadata.annotations[{name}]"
    assert message.endswith('json: unknown field "cores" at cpu.cores')


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("", True),
        ('{"deleteAction": "delay"}', True),
        ('{"deleteAction": "delete", "force": true}', True),
        ('{"deleteAction": "later"}', False),
        ('{"force": 1}', False),
        ("delay", False),
    ],
)
def test_detached_annotation_is_empty_or_its_json(value: str, ok: bool) -> None:
    name = "baremetalhost.metal3.io/detached"
    got = [f for f, _ in annotated(name, value)]
    assert got == ([] if ok else [f"metadata.annotations[{name}]"])


def test_other_annotations_are_not_judged() -> None:
    assert annotated("example.com/anything", "{not json") == []
    assert annotated("baremetalhost.metal3.io/paused", "") == []
