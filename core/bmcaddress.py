"""Parse a BareMetalHost's `spec.bmc.address` and look up what its scheme means.

Upstream (`pkg/hardwareutils/bmc/access.go`) picks the driver from the URL scheme, and every
scheme carries a fixed set of facts: the driver and its interfaces, whether the host's boot MAC
must be given, whether secure boot and virtual-media (ISO) booting work, and whether the host
needs the provisioning network. This module holds those facts as one table of frozen
dataclasses (`BMC_TYPES`) and a parser that reads an address the way upstream does:

- a bare `host` or `host:port` (no scheme) means IPMI;
- `scheme:opaque` is read as `scheme://opaque`;
- a factory named `name` also answers to `name+http` and `name+https` (the Redfish family only),
  which pick the transport (default https);
- the hostname must be an IP address or an RFC 1123 DNS name;
- an unknown scheme is `UnknownBMCType` ("Unknown BMC type '%s' for address %s"), and a scheme
  that upstream removed (`idrac`, `ibmc`, `ilo4`, `ilo5`, `irmc`, ...) says so.

Like Go's url.Parse, a scheme is any leading `letter (letter|digit|+|-|.)*` followed by `:`, so
`bmc-host:623` reads as scheme `bmc-host` (unknown); write IPMI hosts with a name as
`ipmi://bmc-host:623`. Bare IPv6 hosts need brackets (`[fd00::1]:623`).
Pure: no sockets, no DNS lookups.
"""

import functools
import ipaddress
import re
import urllib.parse
from dataclasses import dataclass, replace

from metalcubed.core import outcome

FIELD = "spec.bmc.address"


class BMCAddressError(outcome.SpecError):
    """The address cannot be parsed (bad URL, port or hostname)."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(FIELD, f"failed to parse BMC address information: {reason}")
        self.address = address
        self.reason = reason


class UnknownBMCType(outcome.SpecError):
    """The address parses but no driver serves its scheme (upstream UnknownBMCTypeError)."""

    def __init__(self, address: str, scheme: str, *, detail: str = "") -> None:
        message = f"Unknown BMC type '{scheme}' for address {redact(address)}"
        super().__init__(FIELD, f"{message}: {detail}" if detail else message)
        self.address = address
        self.scheme = scheme


@dataclass(frozen=True, slots=True, kw_only=True)
class BMCType:
    """What one scheme (without its +http/+https suffix) means; mirrors upstream AccessDetails."""

    name: str
    """The scheme as registered, e.g. `redfish-virtualmedia`."""
    driver: str
    """The hardware type (Ironic driver name) that serves it."""
    boot_interface: str
    raid_interface: str
    inspect_interface: str
    """Out-of-band inspection interface; "" when the driver has none (no fast inspection)."""
    firmware_interface: str = ""
    bios_interface: str = ""
    management_interface: str = ""
    power_interface: str = ""
    vendor_interface: str = ""
    needs_mac: bool
    """The boot MAC must be given even when inspection runs (it cannot be discovered)."""
    supports_secure_boot: bool
    supports_iso_preprovisioning_image: bool
    """Boots the ramdisk from virtual media (ISO); such hosts are exempt from PROVISIONING_LIMIT."""
    requires_provisioning_network: bool
    default_port: int
    """Port when the address has none (the https/http default for the Redfish family)."""
    http_transports: bool
    """Redfish family: talks HTTP(S), accepts the +http/+https suffixes (default https)."""
    hardware_profile: str = ""
    """Hardware profile picked automatically for this scheme ("" for none)."""

    def default_port_for(self, transport: str) -> int:
        if not self.http_transports:
            return self.default_port
        return 80 if transport == "http" else 443


IPMI = BMCType(
    name="ipmi",
    driver="ipmi",
    boot_interface="ipxe",
    raid_interface="no-raid",
    inspect_interface="",
    needs_mac=False,
    supports_secure_boot=False,
    supports_iso_preprovisioning_image=False,
    requires_provisioning_network=True,
    default_port=623,
    http_transports=False,
)
LIBVIRT = replace(IPMI, name="libvirt", needs_mac=True, hardware_profile="libvirt")
"""VirtualBMC in front of libvirt: the MAC cannot be discovered, so it is always required."""
REDFISH = BMCType(
    name="redfish",
    driver="redfish",
    boot_interface="ipxe",
    raid_interface="redfish",
    inspect_interface="redfish",
    firmware_interface="redfish",
    needs_mac=False,
    supports_secure_boot=True,
    supports_iso_preprovisioning_image=False,
    requires_provisioning_network=True,
    default_port=443,
    http_transports=True,
)
ILO5_REDFISH = replace(REDFISH, name="ilo5-redfish")
IDRAC_REDFISH = replace(
    REDFISH,
    name="idrac-redfish",
    driver="idrac",
    raid_interface="idrac-redfish",
    bios_interface="idrac-redfish",
    management_interface="idrac-redfish",
    power_interface="idrac-redfish",
    vendor_interface="idrac-redfish",
)
REDFISH_VIRTUALMEDIA = replace(
    REDFISH,
    name="redfish-virtualmedia",
    boot_interface="redfish-virtual-media",
    supports_iso_preprovisioning_image=True,
    requires_provisioning_network=False,
)
ILO5_VIRTUALMEDIA = replace(REDFISH_VIRTUALMEDIA, name="ilo5-virtualmedia")
IDRAC_VIRTUALMEDIA = replace(
    IDRAC_REDFISH,
    name="idrac-virtualmedia",
    boot_interface="idrac-redfish-virtual-media",
    supports_iso_preprovisioning_image=True,
    requires_provisioning_network=False,
)
REDFISH_UEFIHTTP = replace(
    REDFISH_VIRTUALMEDIA,
    name="redfish-uefihttp",
    boot_interface="redfish-https",
)
"""UEFI HTTP boot (Ironic boot interface `redfish-https`; there is no `redfish-https` scheme)."""

BMC_TYPES: dict[str, BMCType] = {
    t.name: t
    for t in (
        IPMI,
        LIBVIRT,
        REDFISH,
        ILO5_REDFISH,
        IDRAC_REDFISH,
        REDFISH_VIRTUALMEDIA,
        ILO5_VIRTUALMEDIA,
        IDRAC_VIRTUALMEDIA,
        REDFISH_UEFIHTTP,
    )
}
"""Every scheme upstream serves today (bmo.md 5.1), by registered name."""

REMOVED_BMC_TYPES: dict[str, str] = {
    "idrac": "the idrac driver was removed (WSMAN, 2024, v0.6); use idrac-redfish or "
    "idrac-virtualmedia",
    "ibmc": "the ibmc driver was removed in 2024 (v0.6); use redfish",
    "ilo4": "the ilo4 driver was removed in v0.12.0; use redfish",
    "ilo4-virtualmedia": "the ilo4 driver was removed in v0.12.0; use redfish-virtualmedia",
    "ilo5": "the ilo5 driver was removed in v0.12.0; use ilo5-redfish or ilo5-virtualmedia",
    "irmc": "the irmc driver was removed in v0.13.0; use redfish",
}
"""Schemes upstream used to serve (bmo.md 5.2), with what to use instead."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BMCAccess:
    """A parsed BMC address: which driver, and where to reach it."""

    address: str
    """The address as written."""
    scheme: str
    """The scheme as written (e.g. `redfish+http`), or `ipmi` when the address had none."""
    type: BMCType
    host: str
    """Hostname or IP, without IPv6 brackets."""
    port: int
    """The port given, or the type's default."""
    transport: str
    """`http` or `https` for the Redfish family; "" for IPMI."""
    path: str
    """The URL path ("" when none), e.g. `/redfish/v1/Systems/1`."""
    system_id: str
    """Upstream redfish_system_id: the path, unless it is only slashes or `/redfish/v1` with
    slashes around it (then "": the driver discovers the one system)."""
    privilege_level: str
    """IPMI `?privilegelevel=` (default ADMINISTRATOR); "" for the Redfish family."""

    @property
    def endpoint(self) -> str:
        """The base URL a Redfish client talks to (`https://host[:port]`); "" for IPMI."""
        if not self.transport:
            return ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 80 if self.transport == "http" else 443
        port = "" if self.port == default else f":{self.port}"
        return f"{self.transport}://{host}{port}"


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_DNS_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_TRANSPORT_SUFFIXES = ("+http", "+https")
_NO_SYSTEM_ID = ("", "redfish/v1")
"""Paths (slashes trimmed) that name no system: upstream leaves redfish_system_id unset."""
_USERINFO = re.compile(r"^[A-Za-z0-9\-._:~!$&'()*+,;=%@]*$")
"""Go's validUserinfo: the characters net/url accepts before the `@`."""
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
"""A `%` not followed by two hex digits: Go's URL parser refuses it in a path."""


_REDACT_PREFIX = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.\-]*:)?(?://)?")


def redact(address: str) -> str:
    """The address with any password in it replaced by `xxxxx` (as Go's URL.Redacted does).

    Errs on the side of hiding: the user information runs to the LAST `@` (a password may
    contain `@`, `:`, `/`, `?` or `#`, which Go would refuse to parse but a message must still
    not show), the username is what precedes its first `:`. Without a `//`, a leading
    `word:` may be a username rather than a scheme (`admin:pw@host` parses as scheme `admin`),
    so everything between it and the `@` is hidden.
    """
    prefix = _REDACT_PREFIX.match(address)
    head = prefix.group(0) if prefix is not None else ""
    userinfo, at, rest = address[len(head) :].rpartition("@")
    if not at:
        return address
    if not head.endswith("//"):
        return f"{head}xxxxx@{rest}"
    user, colon, _password = userinfo.partition(":")
    if colon:
        return f"{head}{user}:xxxxx@{rest}"
    return address  # `scheme://user@host`: a username and no password


def is_valid_hostname(host: str) -> bool:
    """An IP address, or a DNS name as upstream's checkDNSValid reads one: dot-separated labels
    of 1-63 letters, digits and inner hyphens, no trailing dot. Empty is refused (upstream lets
    it through; a BMC without a host cannot be reached)."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    return bool(host) and all(_DNS_LABEL.match(label) for label in host.split("."))


def _normalise(address: str) -> str:
    """`address` as the URL upstream's GetParsedURL reads (scheme `ipmi` if none)."""
    match = _SCHEME.match(address)
    if match is not None:
        rest = address[match.end() :]
        if rest and not rest.startswith("/"):
            return f"{match.group(1)}://{rest}"  # scheme:opaque -> scheme://opaque
        return address
    if address.startswith("//"):
        return address  # authority without a scheme: scheme ""
    first_segment = address.split("/", 1)[0]
    if ":" in first_segment:
        # host:port (Go's url.Parse rejects a colon in the first path segment)
        host, sep, port = first_segment.rpartition(":")
        if not sep or (":" in host and not (host.startswith("[") and host.endswith("]"))):
            raise BMCAddressError(
                address, f"cannot split {redact(first_segment)!r} into host and port")
        if "/" in address:
            raise BMCAddressError(address, "a host:port address cannot have a path")
        return f"ipmi://{host}:{port}"
    return f"ipmi://{address}"


def _split(address: str) -> urllib.parse.SplitResult:
    """The URL of `address`; userinfo is checked first, as Go's parser does."""
    url = _normalise(address)
    _scheme, slashes, rest = url.partition("//")
    if slashes:
        authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
        userinfo, at, _host = authority.rpartition("@")
        if at and not _USERINFO.match(userinfo):
            raise BMCAddressError(address, f'parse "{redact(url)}": net/url: invalid userinfo')
        path = rest[len(authority) :].split("?", 1)[0]
        bad = _BAD_ESCAPE.search(path)
        if bad is not None:
            if redact(address) != address:  # the "path" may be a piece of the password
                raise BMCAddressError(address, "invalid URL escape (not shown: the address "
                                      "holds a password; '/' in it also reads as a path)")
            escape = path[bad.start() : bad.start() + 3]
            raise BMCAddressError(address, f'parse "{url}": invalid URL escape "{escape}"')
    return urllib.parse.urlsplit(url)


def _url_error_reason(err: ValueError) -> str:
    """urllib's complaint without the text it quotes, for addresses holding a password: with
    `/`, `?` or `#` in the password, the "port" urllib quotes is a piece of it."""
    message = str(err)
    if message.startswith("Port could not be cast"):
        return "the port is not a number (a password with '/', '?' or '#' also reads so)"
    if message.startswith("Port out of range"):
        return "the port is out of range 0-65535"
    if "IPv6" in message:
        return "unbalanced IPv6 brackets"
    return "the URL does not parse"


def lookup(scheme: str, address: str = "") -> tuple[BMCType, str]:
    """The type serving `scheme` and the transport its suffix selects.

    Raises:
        UnknownBMCType: no current driver serves the scheme (removed ones say so).
    """
    base, transport = scheme, ""
    for suffix in _TRANSPORT_SUFFIXES:
        if scheme.endswith(suffix):
            base, transport = scheme[: -len(suffix)], suffix[1:]
            break
    bmc_type = BMC_TYPES.get(base)
    if bmc_type is not None and (bmc_type.http_transports or not transport):
        return bmc_type, transport or ("https" if bmc_type.http_transports else "")
    removed = REMOVED_BMC_TYPES.get(base)
    if removed is not None:
        raise UnknownBMCType(address, scheme, detail=f"removed upstream: {removed}")
    raise UnknownBMCType(address, scheme)


@functools.lru_cache(maxsize=4096)
def parse(address: str) -> BMCAccess:
    """Read `spec.bmc.address` the way upstream's NewAccessDetails does.

    Memoised (the result is immutable and depends on the string alone): every reconcile and
    webhook call parses the same few thousand addresses.

    Raises:
        BMCAddressError: empty or unparseable address, bad port or hostname.
        UnknownBMCType: the scheme names no current driver (removed ones say so).
    """
    if not address:
        raise BMCAddressError(address, "the address is empty")
    try:
        url = _split(address)
        port = url.port
        host = url.hostname or ""
    except ValueError as err:
        reason = str(err) if redact(address) == address else _url_error_reason(err)
        raise BMCAddressError(address, reason) from err
    bmc_type, transport = lookup(url.scheme, address)
    if not is_valid_hostname(host):
        secret = redact(address) != address
        shown = "(not shown: the address holds a password)" if secret else host
        raise BMCAddressError(address, f"BMC address hostname/IP : [{shown}] is invalid")
    path = urllib.parse.unquote(url.path)  # Go's URL.Path is the unescaped path
    system_id = "" if path.strip("/") in _NO_SYSTEM_ID else path
    privilege = ""
    if not bmc_type.http_transports:
        query = urllib.parse.parse_qs(url.query)
        privilege = query.get("privilegelevel", ["ADMINISTRATOR"])[0]
    return BMCAccess(
        address=address,
        scheme=url.scheme,
        type=bmc_type,
        host=host,
        port=port if port is not None else bmc_type.default_port_for(transport),
        transport=transport,
        path=path,
        system_id=system_id if bmc_type.http_transports else "",
        privilege_level=privilege,
    )
