"""Upstream BMO's BMC address tables, ported case by case (issue 9).

Source: metal3-io/baremetal-operator at 02aa5059e, pkg/hardwareutils/bmc/access_test.go:
TestParse, TestStaticDriverInfo, TestDriverInfo, TestUnknownType. Case ids are
"<UpstreamTest>/<upstream Scenario>".

Entry points: `bmcaddress.parse` (what the webhook, the reconciler and the engine call) and
`bmc.BmcAccess.of` (what every BMC driver is handed). How upstream's values map onto ours:

- TestParse: url.Scheme -> `scheme`; url.Hostname() -> `host`; url.Path -> `path`;
  url.Port() "" (none given) -> the driver's default port, which upstream's DriverInfo fills in
  the same way (ipmi 623; https 443). url.Query() has no field here: the only query parameter a
  driver reads is IPMI's `privilegelevel` (TestDriverInfo).
- TestDriverInfo: Ironic's driver_info, as our drivers read it: redfish_address -> `endpoint`,
  redfish_system_id -> `system_id` (left out when "", as upstream leaves the key out),
  *_username/*_password -> the credentials, *_verify_ca false -> `verify_tls` False (upstream
  passes disableCertificateVerification=true), ipmi_address -> `host`, ipmi_port -> `port`,
  ipmi_priv_level -> `privilege_level`.
"""

from dataclasses import dataclass, field

import pytest

from metalcubed.controllers.bmc.redfish import capabilities as rf
from metalcubed.controllers.bmc.redfish import client
from metalcubed.core import bmc, bmcaddress, ports
from metalcubed.simulators import hostmodel
from metalcubed.simulators.redfish import emulator as redfish_emulator


@dataclass(frozen=True, slots=True)
class Parse:
    scenario: str
    address: str
    type: str = ""
    host: str = ""
    port: str = ""
    path: str = ""
    expect_error: bool = False
    query: dict[str, list[str]] = field(default_factory=dict)


PARSE = [
    Parse("libvirt url", "libvirt://192.168.122.1:6233/?abc=def", "libvirt", "192.168.122.1",
          "6233", "/", query={"abc": ["def"]}),
    Parse("ipmi default scheme and port", "192.168.122.1", "ipmi", "192.168.122.1"),
    Parse("ipmi default scheme and port, hostname", "my.favoritebmc.com", "ipmi",
          "my.favoritebmc.com"),
    Parse("valid dns hostname", "my.examplehost.com", "ipmi", "my.examplehost.com"),
    Parse("invalid dns hostname", "my-.examplehost.com", expect_error=True),
    Parse("invalid ipv6 host address", "[fe80::fc33:62ff:fe33:8xff]:6223", expect_error=True),
    Parse("host and port", "192.168.122.1:6233", "ipmi", "192.168.122.1", "6233"),
    Parse("host and port, ipv6", "[fe80::fc33:62ff:fe83:8a76]:6233", "ipmi",
          "fe80::fc33:62ff:fe83:8a76", "6233"),
    Parse("host and no port, ipv6", "[fe80::fc33:62ff:fe83:8a76]", expect_error=True),
    Parse("ipmi full url", "ipmi://192.168.122.1:6233", "ipmi", "192.168.122.1", "6233"),
    Parse("ipmi url, no sep", "ipmi:192.168.122.1", "ipmi", "192.168.122.1"),
    Parse("ipmi url with port, no sep", "ipmi:192.168.122.1:6233", "ipmi", "192.168.122.1",
          "6233"),
    Parse("redfish url", "redfish://192.168.122.1", "redfish", "192.168.122.1"),
    Parse("redfish url path", "redfish://192.168.122.1:6233/foo", "redfish", "192.168.122.1",
          "6233", "/foo"),
    Parse("redfish url ipv6", "redfish://[fe80::fc33:62ff:fe83:8a76]", "redfish",
          "fe80::fc33:62ff:fe83:8a76"),
    Parse("redfish url path ipv6", "redfish://[fe80::fc33:62ff:fe83:8a76]:6233/foo", "redfish",
          "fe80::fc33:62ff:fe83:8a76", "6233", "/foo"),
    Parse("redfish url no sep", "redfish:192.168.122.1", "redfish", "192.168.122.1"),
]


@pytest.mark.parametrize("case", PARSE, ids=lambda c: f"TestParse/{c.scenario}")
def test_parse(case: Parse) -> None:
    if case.expect_error:
        with pytest.raises(bmcaddress.BMCAddressError) as err:
            bmcaddress.parse(case.address)
        assert err.value.field == "spec.bmc.address"
        assert err.value.message.startswith("failed to parse BMC address information: ")
        return
    access = bmcaddress.parse(case.address)
    assert access.scheme == case.type
    assert access.host == case.host
    default = access.type.default_port_for(access.transport)
    assert access.port == (int(case.port) if case.port else default)
    assert access.path == case.path
    if access.type.driver == "ipmi":  # the one query parameter a driver reads
        assert access.privilege_level == "ADMINISTRATOR"


@dataclass(frozen=True, slots=True)
class Static:
    scenario: str
    input: str
    needs_mac: bool
    driver: str
    boot: str
    inspect: str
    firmware: str
    bios: str = ""
    management: str = ""
    power: str = ""
    vendor: str = ""


_IDRAC = {"bios": "idrac-redfish", "management": "idrac-redfish", "power": "idrac-redfish",
          "vendor": "idrac-redfish"}

STATIC = [
    Static("ipmi", "ipmi://192.168.122.1:6233", False, "ipmi", "ipxe", "", ""),
    Static("libvirt", "libvirt://192.168.122.1", True, "ipmi", "ipxe", "", ""),
    Static("redfish", "redfish://192.168.122.1", False, "redfish", "ipxe", "redfish", "redfish"),
    Static("redfish virtual media", "redfish-virtualmedia://192.168.122.1", False, "redfish",
           "redfish-virtual-media", "redfish", "redfish"),
    Static("redfish virtual media HTTP", "redfish-virtualmedia+http://192.168.122.1", False,
           "redfish", "redfish-virtual-media", "redfish", "redfish"),
    Static("redfish virtual media HTTPS", "redfish-virtualmedia+https://192.168.122.1", False,
           "redfish", "redfish-virtual-media", "redfish", "redfish"),
    Static("redfish uefi http boot", "redfish-uefihttp+https://192.168.122.1", False, "redfish",
           "redfish-https", "redfish", "redfish"),
    Static("idrac redfish", "idrac-redfish://192.168.122.1", False, "idrac", "ipxe", "redfish",
           "redfish", **_IDRAC),
    Static("ilo5 virtual media", "ilo5-virtualmedia://192.168.122.1", False, "redfish",
           "redfish-virtual-media", "redfish", "redfish"),
    Static("ilo5 virtual media HTTP", "ilo5-virtualmedia+http://192.168.122.1", False, "redfish",
           "redfish-virtual-media", "redfish", "redfish"),
    Static("ilo5 virtual media HTTPS", "ilo5-virtualmedia+https://192.168.122.1", False,
           "redfish", "redfish-virtual-media", "redfish", "redfish"),
    Static("idrac virtual media", "idrac-virtualmedia://192.168.122.1", False, "idrac",
           "idrac-redfish-virtual-media", "redfish", "redfish", **_IDRAC),
    Static("idrac virtual media HTTP", "idrac-virtualmedia+http://192.168.122.1", False, "idrac",
           "idrac-redfish-virtual-media", "redfish", "redfish", **_IDRAC),
    Static("idrac virtual media HTTPS", "idrac-virtualmedia+https://192.168.122.1", False,
           "idrac", "idrac-redfish-virtual-media", "redfish", "redfish", **_IDRAC),
]


@pytest.mark.parametrize("case", STATIC, ids=lambda c: f"TestStaticDriverInfo/{c.scenario}")
def test_static_driver_info(case: Static) -> None:
    kind = bmcaddress.parse(case.input).type
    assert kind.needs_mac is case.needs_mac
    assert kind.driver == case.driver
    assert kind.boot_interface == case.boot
    assert kind.bios_interface == case.bios
    assert kind.inspect_interface == case.inspect
    assert kind.firmware_interface == case.firmware
    assert kind.vendor_interface == case.vendor
    # Upstream's table also lists these two (its loop does not check them); they hold too.
    assert kind.management_interface == case.management
    assert kind.power_interface == case.power


_REDFISH = {"redfish_password": "", "redfish_username": "", "redfish_verify_ca": False}
_IPMI = {"ipmi_password": "", "ipmi_username": "", "ipmi_verify_ca": False}

DRIVER_INFO: list[tuple[str, str, dict[str, object]]] = [
    ("ipmi default port", "ipmi://192.168.122.1",
     {**_IPMI, "ipmi_port": "623", "ipmi_address": "192.168.122.1",
      "ipmi_priv_level": "ADMINISTRATOR"}),
    ("ipmi setting privilege level", "ipmi://192.168.122.1?privilegelevel=OPERATOR",
     {**_IPMI, "ipmi_port": "623", "ipmi_address": "192.168.122.1",
      "ipmi_priv_level": "OPERATOR"}),
    ("Redfish", "redfish://192.168.122.1/redfish/v1/foo/bar",
     {**_REDFISH, "redfish_address": "https://192.168.122.1",
      "redfish_system_id": "/redfish/v1/foo/bar"}),
    ("Redfish http", "redfish+http://192.168.122.1/foo/bar",
     {**_REDFISH, "redfish_address": "http://192.168.122.1", "redfish_system_id": "/foo/bar"}),
    ("Redfish https", "redfish+https://192.168.122.1/foo/bar",
     {**_REDFISH, "redfish_address": "https://192.168.122.1", "redfish_system_id": "/foo/bar"}),
    ("Redfish port", "redfish://192.168.122.1:8080/foo/bar",
     {**_REDFISH, "redfish_address": "https://192.168.122.1:8080",
      "redfish_system_id": "/foo/bar"}),
    ("Redfish ipv6", "redfish://[fe80::fc33:62ff:fe83:8a76]/foo/bar",
     {**_REDFISH, "redfish_address": "https://[fe80::fc33:62ff:fe83:8a76]",
      "redfish_system_id": "/foo/bar"}),
    ("Redfish ipv6 port", "redfish://[fe80::fc33:62ff:fe83:8a76]:8080/foo",
     {**_REDFISH, "redfish_address": "https://[fe80::fc33:62ff:fe83:8a76]:8080",
      "redfish_system_id": "/foo"}),
    ("Redfish no system ID", "redfish+https://192.168.122.1/",
     {**_REDFISH, "redfish_address": "https://192.168.122.1"}),
    ("Redfish wrong system ID", "redfish+https://192.168.122.1/redfish/v1/",
     {**_REDFISH, "redfish_address": "https://192.168.122.1"}),
    ("Redfish virtual media", "redfish-virtualmedia://192.168.122.1/redfish/v1/foo/bar",
     {**_REDFISH, "redfish_address": "https://192.168.122.1",
      "redfish_system_id": "/redfish/v1/foo/bar"}),
    ("Redfish virtual media wrong system ID", "redfish-virtualmedia://192.168.122.1/redfish/v1/",
     {**_REDFISH, "redfish_address": "https://192.168.122.1"}),
    ("ilo5 virtual media", "ilo5-virtualmedia://192.168.122.1/foo/bar",
     {**_REDFISH, "redfish_address": "https://192.168.122.1", "redfish_system_id": "/foo/bar"}),
    ("idrac redfish", "idrac-redfish://192.168.122.1/foo/bar",
     {**_REDFISH, "redfish_address": "https://192.168.122.1", "redfish_system_id": "/foo/bar"}),
    ("idrac virtual media", "idrac-virtualmedia://192.168.122.1/redfish/v1/foo/bar",
     {**_REDFISH, "redfish_address": "https://192.168.122.1",
      "redfish_system_id": "/redfish/v1/foo/bar"}),
    ("idrac virtual media wrong system ID", "idrac-virtualmedia://192.168.122.1/redfish/v1/",
     {**_REDFISH, "redfish_address": "https://192.168.122.1"}),
]


def _driver_info(access: bmc.BmcAccess) -> dict[str, object]:
    """Ironic's driver_info keys, read off what our drivers are handed (module doc)."""
    address = access.address
    if address.transport:
        info: dict[str, object] = {
            "redfish_address": address.endpoint,
            "redfish_username": access.credentials.username,
            "redfish_password": access.credentials.password,
        }
        if address.system_id:
            info["redfish_system_id"] = address.system_id
        if not access.verify_tls:
            info["redfish_verify_ca"] = False
        return info
    info = {
        "ipmi_address": address.host,
        "ipmi_port": str(address.port),
        "ipmi_username": access.credentials.username,
        "ipmi_password": access.credentials.password,
        "ipmi_priv_level": address.privilege_level,
    }
    if not access.verify_tls:
        info["ipmi_verify_ca"] = False
    return info


@pytest.mark.parametrize(("scenario", "address", "expects"), DRIVER_INFO,
                         ids=[f"TestDriverInfo/{c[0]}" for c in DRIVER_INFO])
def test_driver_info(scenario: str, address: str, expects: dict[str, object]) -> None:
    access = bmc.BmcAccess.of(
        address, ports.Credentials(username="", password=""), verify_tls=False
    )
    assert _driver_info(access) == expects


def test_unknown_type() -> None:
    """TestUnknownType."""
    with pytest.raises(bmcaddress.UnknownBMCType) as err:
        bmcaddress.parse("foo://192.168.122.1")
    assert err.value.field == "spec.bmc.address"
    assert err.value.message == "Unknown BMC type 'foo' for address foo://192.168.122.1"


@pytest.mark.hardware
@pytest.mark.parametrize("path", ["/", "/redfish/v1/", "/redfish/v1", ""])
def test_redfish_address_without_system_id_finds_the_one_system(path: str) -> None:
    """Issue 9 item 3 end to end ("Redfish no system ID", "Redfish wrong system ID"): the driver
    asks the real Redfish emulator (one system, HTTP on 127.0.0.1) for its Systems collection
    instead of a system named `/` or `/redfish/v1/`."""
    hosts = hostmodel.make_hosts(1)
    clients = client.Clients(client.ClientConfig(
        connect_timeout_s=1.0, read_timeout_s=2.0, connect_retry_delay_s=0.05,
        max_body_bytes=1024 * 1024,
        retry=client.RetryPolicy(attempts=2, budget_s=2.0, base_delay_s=0.05,
                                 max_delay_s=0.2, max_retry_after_s=0.5)))
    with redfish_emulator.RedfishEmulator(hosts) as emulator:
        address = f"redfish+http://127.0.0.1:{emulator.port}{path}"
        access = bmc.BmcAccess.of(
            address, ports.Credentials(username="admin", password="password"))
        assert access.address.system_id == ""
        power = rf.RedfishPower(clients)
        assert power.power_state(access) is bmc.PowerState.OFF
        power.start_power_on(access)
        assert power.power_state(access) is bmc.PowerState.ON
