"""spec.bmc.address parsing and the BMC scheme table (upstream bmo.md section 5)."""

import dataclasses

import pytest

from metalcubed.core import bmcaddress, outcome

# address -> (type name, host, port, transport, path, system_id)
PARSED = {
    "192.168.122.1": ("ipmi", "192.168.122.1", 623, "", "", ""),
    "192.168.122.1:6233": ("ipmi", "192.168.122.1", 6233, "", "", ""),
    "[fd00:1::5]:6233": ("ipmi", "fd00:1::5", 6233, "", "", ""),
    "bmc.example.com": ("ipmi", "bmc.example.com", 623, "", "", ""),
    "ipmi://192.168.122.1:6233": ("ipmi", "192.168.122.1", 6233, "", "", ""),
    "ipmi://[fd00:1::5]": ("ipmi", "fd00:1::5", 623, "", "", ""),
    "ipmi:bmc.example.com": ("ipmi", "bmc.example.com", 623, "", "", ""),
    "libvirt://192.168.122.1:6233/": ("libvirt", "192.168.122.1", 6233, "", "/", ""),
    "redfish://bmc.example.com/redfish/v1/Systems/1": (
        "redfish",
        "bmc.example.com",
        443,
        "https",
        "/redfish/v1/Systems/1",
        "/redfish/v1/Systems/1",
    ),
    "redfish+http://192.168.111.1:8000/redfish/v1/Systems/0a2e": (
        "redfish",
        "192.168.111.1",
        8000,
        "http",
        "/redfish/v1/Systems/0a2e",
        "/redfish/v1/Systems/0a2e",
    ),
    "redfish+https://[fd00::1]:8443/redfish/v1": (
        "redfish",
        "fd00::1",
        8443,
        "https",
        "/redfish/v1",
        "",
    ),
    "redfish+http://bmc": ("redfish", "bmc", 80, "http", "", ""),
    "redfish:bmc.example.com": ("redfish", "bmc.example.com", 443, "https", "", ""),
    "ilo5-redfish://10.0.0.5/redfish/v1/Systems/1": (
        "ilo5-redfish",
        "10.0.0.5",
        443,
        "https",
        "/redfish/v1/Systems/1",
        "/redfish/v1/Systems/1",
    ),
    "idrac-redfish+https://10.0.0.6/redfish/v1/Systems/System.Embedded.1": (
        "idrac-redfish",
        "10.0.0.6",
        443,
        "https",
        "/redfish/v1/Systems/System.Embedded.1",
        "/redfish/v1/Systems/System.Embedded.1",
    ),
    "redfish-virtualmedia+http://10.0.0.7:8000/redfish/v1/Systems/x": (
        "redfish-virtualmedia",
        "10.0.0.7",
        8000,
        "http",
        "/redfish/v1/Systems/x",
        "/redfish/v1/Systems/x",
    ),
    "ilo5-virtualmedia://10.0.0.8/redfish/v1/Systems/1": (
        "ilo5-virtualmedia",
        "10.0.0.8",
        443,
        "https",
        "/redfish/v1/Systems/1",
        "/redfish/v1/Systems/1",
    ),
    "idrac-virtualmedia://10.0.0.9/redfish/v1/Systems/System.Embedded.1": (
        "idrac-virtualmedia",
        "10.0.0.9",
        443,
        "https",
        "/redfish/v1/Systems/System.Embedded.1",
        "/redfish/v1/Systems/System.Embedded.1",
    ),
    "redfish-uefihttp://10.0.0.10/redfish/v1": (
        "redfish-uefihttp",
        "10.0.0.10",
        443,
        "https",
        "/redfish/v1",
        "",  # upstream passes "/redfish/v1" on; we discover the system (docs/validate.md)
    ),
}


@pytest.mark.parametrize("address", list(PARSED))
def test_parse_reads_the_address_like_upstream(address: str) -> None:
    access = bmcaddress.parse(address)
    got = (
        access.type.name,
        access.host,
        access.port,
        access.transport,
        access.path,
        access.system_id,
    )
    assert got == PARSED[address]
    assert access.address == address


@pytest.mark.parametrize(
    ("address", "endpoint"),
    [
        ("redfish://bmc/redfish/v1/Systems/1", "https://bmc"),
        ("redfish+http://10.0.0.1:8000/x", "http://10.0.0.1:8000"),
        ("redfish+https://[fd00::1]:8443/x", "https://[fd00::1]:8443"),
        ("ipmi://10.0.0.1", ""),
    ],
)
def test_endpoint_is_the_redfish_base_url(address: str, endpoint: str) -> None:
    assert bmcaddress.parse(address).endpoint == endpoint


def test_ipmi_privilege_level_comes_from_the_query_with_administrator_default() -> None:
    assert bmcaddress.parse("ipmi://10.0.0.1").privilege_level == "ADMINISTRATOR"
    assert bmcaddress.parse("ipmi://10.0.0.1?privilegelevel=OPERATOR").privilege_level == "OPERATOR"
    assert bmcaddress.parse("redfish://10.0.0.1").privilege_level == ""


# scheme -> (driver, boot, raid, inspect, needs_mac, secure boot, ISO preprov, prov network)
TABLE = {
    "ipmi": ("ipmi", "ipxe", "no-raid", "", False, False, False, True),
    "libvirt": ("ipmi", "ipxe", "no-raid", "", True, False, False, True),
    "redfish": ("redfish", "ipxe", "redfish", "redfish", False, True, False, True),
    "ilo5-redfish": ("redfish", "ipxe", "redfish", "redfish", False, True, False, True),
    "idrac-redfish": ("idrac", "ipxe", "idrac-redfish", "redfish", False, True, False, True),
    "redfish-virtualmedia": (
        "redfish",
        "redfish-virtual-media",
        "redfish",
        "redfish",
        False,
        True,
        True,
        False,
    ),
    "ilo5-virtualmedia": (
        "redfish",
        "redfish-virtual-media",
        "redfish",
        "redfish",
        False,
        True,
        True,
        False,
    ),
    "idrac-virtualmedia": (
        "idrac",
        "idrac-redfish-virtual-media",
        "idrac-redfish",
        "redfish",
        False,
        True,
        True,
        False,
    ),
    "redfish-uefihttp": (
        "redfish",
        "redfish-https",
        "redfish",
        "redfish",
        False,
        True,
        True,
        False,
    ),
}


def test_the_table_holds_exactly_the_current_schemes() -> None:
    assert set(bmcaddress.BMC_TYPES) == set(TABLE)


@pytest.mark.parametrize("scheme", list(TABLE))
def test_scheme_facts_match_upstream(scheme: str) -> None:
    t = bmcaddress.BMC_TYPES[scheme]
    got = (
        t.driver,
        t.boot_interface,
        t.raid_interface,
        t.inspect_interface,
        t.needs_mac,
        t.supports_secure_boot,
        t.supports_iso_preprovisioning_image,
        t.requires_provisioning_network,
    )
    assert got == TABLE[scheme]


def test_idrac_types_use_idrac_redfish_for_bios_management_power_and_vendor() -> None:
    for name in ("idrac-redfish", "idrac-virtualmedia"):
        t = bmcaddress.BMC_TYPES[name]
        assert {t.bios_interface, t.management_interface, t.power_interface} == {"idrac-redfish"}
        assert t.vendor_interface == "idrac-redfish"
        assert t.firmware_interface == "redfish"


def test_libvirt_picks_the_libvirt_hardware_profile() -> None:
    assert bmcaddress.parse("libvirt://10.0.0.1").type.hardware_profile == "libvirt"
    assert bmcaddress.parse("ipmi://10.0.0.1").type.hardware_profile == ""


def test_types_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        bmcaddress.BMC_TYPES["ipmi"].needs_mac = True  # type: ignore[misc]


@pytest.mark.parametrize(
    ("address", "scheme"),
    [
        ("foo://10.0.0.1", "foo"),
        ("ipmi+http://10.0.0.1", "ipmi+http"),  # only the Redfish family takes +http/+https
        ("libvirt+https://10.0.0.1", "libvirt+https"),
        ("redfish+ftp://10.0.0.1", "redfish+ftp"),
        ("bmc-host:623", "bmc-host"),  # Go's url.Parse reads a leading name: as a scheme
        ("fd00::1", "fd00"),  # bare IPv6 needs brackets
    ],
)
def test_unknown_scheme_is_upstreams_unknown_bmc_type(address: str, scheme: str) -> None:
    with pytest.raises(bmcaddress.UnknownBMCType) as err:
        bmcaddress.parse(address)
    assert err.value.scheme == scheme
    assert err.value.field == "spec.bmc.address"
    assert err.value.message == f"Unknown BMC type '{scheme}' for address {address}"
    assert isinstance(err.value, outcome.SpecError)


@pytest.mark.parametrize(
    ("address", "removed"),
    [
        ("idrac://10.0.0.1", "idrac"),
        ("idrac+https://10.0.0.1", "idrac"),
        ("ibmc://10.0.0.1", "ibmc"),
        ("ilo4://10.0.0.1", "ilo4"),
        ("ilo4-virtualmedia://10.0.0.1", "ilo4"),
        ("ilo5://10.0.0.1", "ilo5"),
        ("irmc://10.0.0.1", "irmc"),
    ],
)
def test_removed_scheme_says_it_was_removed(address: str, removed: str) -> None:
    with pytest.raises(bmcaddress.UnknownBMCType) as err:
        bmcaddress.parse(address)
    assert err.value.message.startswith("Unknown BMC type ")
    assert "removed upstream" in err.value.message
    assert f"the {removed} driver was removed" in err.value.message


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("", "the address is empty"),
        ("redfish://bad_host/redfish/v1", "BMC address hostname/IP : [bad_host] is invalid"),
        ("redfish://-leading.example.com", "[-leading.example.com] is invalid"),
        ("redfish://10.0.0.1:99999", "Port out of range"),
        ("redfish://10.0.0.1:http", "Port could not be cast"),
        ("ipmi://", "BMC address hostname/IP : [] is invalid"),
        ("a:b:c", "Port could not be cast"),  # scheme a, opaque b:c -> a://b:c
        ("10.0.0.1:5:6", "cannot split"),
        ("redfish://[fd00::1/x", "Invalid IPv6 URL"),
        ("10.0.0.1:623/path", "cannot have a path"),
    ],
)
def test_unparseable_address_is_a_bmc_address_error(address: str, reason: str) -> None:
    with pytest.raises(bmcaddress.BMCAddressError) as err:
        bmcaddress.parse(address)
    assert err.value.field == "spec.bmc.address"
    assert err.value.message.startswith("failed to parse BMC address information: ")
    assert reason in err.value.message


def test_error_messages_never_show_a_password_in_the_address() -> None:
    with pytest.raises(bmcaddress.UnknownBMCType) as err:
        bmcaddress.parse("foo://admin:s3cret@10.0.0.1/")
    assert "s3cret" not in str(err.value)
    assert "foo://admin:xxxxx@10.0.0.1/" in str(err.value)


@pytest.mark.parametrize(
    ("host", "valid"),
    [
        ("10.0.0.1", True),
        ("fd00::1", True),
        ("bmc-1.rack-2.example.com", True),
        ("BMC01", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("under_score", False),
        ("-x", False),
        ("x-", False),
        ("", False),
    ],
)
def test_hostname_must_be_an_ip_or_rfc1123_name(host: str, valid: bool) -> None:
    assert bmcaddress.is_valid_hostname(host) is valid


def test_the_path_is_read_unescaped_and_bad_escapes_are_refused() -> None:
    """Go's URL.Path (what upstream hands Ironic as redfish_system_id) is unescaped; a `%` not
    followed by two hex digits does not parse."""
    access = bmcaddress.parse("redfish://10.0.0.1/redfish/v1/Systems/System%2E1")
    assert access.system_id == "/redfish/v1/Systems/System.1"
    with pytest.raises(bmcaddress.BMCAddressError) as err:
        bmcaddress.parse("redfish://10.0.0.1/redfish/v1/Systems/%zz")
    assert err.value.message.endswith('invalid URL escape "%zz"')
