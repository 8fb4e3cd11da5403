"""Admission checks for Metal3 objects: upstream's BareMetalHost webhook, and schema errors.

Two layers, as in a cluster:

- `validate_object(doc)` is what the API server does with a wire dict before the webhook: it
  finds the kind in `KINDS`, parses it with the kind's model (the models carry the CRD's enums,
  patterns, bounds and required fields) and turns pydantic errors into field paths with wire
  names (`spec.online: Field required`). For a BareMetalHost it then runs the webhook.
- `validate_host(host, old=...)` is upstream's `baremetalhost_validation.go` (create and update)
  on a parsed host: name rules, BMC address and what its driver supports, boot MAC, RAID, image
  URL and checksum, secure boot, inspection mode, power-off, the annotations' values, and the
  update-only rules (immutable bootMACAddress, bmc.address changes only while registering or
  detached, externallyProvisioned enabled only from available). Messages are upstream's words.
- `admit(operation, obj, old)` is one AdmissionReview's answer, for the webhook server: CREATE,
  UPDATE (with the stored object) or DELETE, on any kind registered with a `webhook`; the paths
  and names to serve come from `webhooks()`.

Every problem is a `SpecError` naming its field (`spec.bootMACAddress`,
`metadata.annotations[reboot.metal3.io]`); nothing is raised. Pure: no I/O.
"""

import json
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pydantic

from metalcubed.core import bmcaddress, outcome
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import hardwaredata, meta

SpecErrors = list[outcome.SpecError]

_NAME_FORBIDDEN = re.compile(r"[^A-Za-z0-9._\-]")
_UUID = re.compile(
    r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{32})$"
)
_MAC_COLON = re.compile(r"^[0-9a-fA-F]{2}(?:([:-])[0-9a-fA-F]{2})*$")
_MAC_DOT = re.compile(r"^[0-9a-fA-F]{4}(?:\.[0-9a-fA-F]{4})*$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")

REBOOT_MODES = ("hard", "soft", "")
INSPECT_VALUES = (bmh.INSPECT_DISABLED, "")
DETACH_DELETE_ACTIONS = ("delay", "delete", "")


def _annotation(name: str) -> str:
    return f"metadata.annotations[{name}]"


# --- the BareMetalHost webhook -------------------------------------------------------------


def validate_host(host: bmh.BareMetalHost, *, old: bmh.BareMetalHost | None = None) -> SpecErrors:
    """Upstream's webhook rules for creating `host`, or for updating `old` to `host`.

    Returns every problem found (empty: admitted). Cheap enough to run on every reconcile:
    annotation values are only decoded when present.
    """
    errors: SpecErrors = []
    errors += _check_name(host.metadata.name)
    access = _check_bmc_address(host.spec.bmc.address, errors)
    errors += _check_secret_namespaces(host)
    errors += _check_raid(host.spec)
    if access is not None:
        errors += _check_driver_support(host, access)
    errors += _check_root_device_hints(host.spec.root_device_hints, "spec.rootDeviceHints")
    if host.spec.image is not None:
        errors += _check_image(host.spec.image)
    if host.spec.firmware is not None:
        errors.append(
            outcome.SpecError(
                "spec.firmware",
                "the Firmware field is no longer supported, use HostFirmwareSettings resource "
                "instead",
            )
        )
    errors += _check_network_interfaces(host.spec.network_interfaces)
    if host.metadata.annotations:
        errors += _check_annotations(host)
    errors += _check_inspection_mode(host, access)
    if host.spec.disable_power_off and not host.spec.online:
        errors.append(
            outcome.SpecError(
                "spec.disablePowerOff",
                "node can't simultaneously have online set to false and have power off disabled",
            )
        )
    if old is not None:
        errors += _check_changes(old, host)
    return errors


def _check_name(name: str) -> SpecErrors:
    if _NAME_FORBIDDEN.search(name):
        return [
            outcome.SpecError(
                "metadata.name",
                "BareMetalHost resource name cannot contain characters other than [A-Za-z0-9._-]",
            )
        ]
    if _UUID.match(name):
        return [outcome.SpecError("metadata.name", "BareMetalHost resource name cannot be a UUID")]
    return []


def _check_bmc_address(address: str, errors: SpecErrors) -> bmcaddress.BMCAccess | None:
    if not address:
        return None  # no BMC yet: the host stays unmanaged
    try:
        return bmcaddress.parse(address)
    except (bmcaddress.BMCAddressError, bmcaddress.UnknownBMCType) as err:
        errors.append(err)
        return None


def _check_secret_namespaces(host: bmh.BareMetalHost) -> SpecErrors:
    namespace = host.metadata.namespace
    if not namespace:
        return []  # a manifest without a namespace: the namespace it lands in is not known here
    errors: SpecErrors = []
    refs = (
        ("spec.userData", host.spec.user_data),
        ("spec.networkData", host.spec.network_data),
        ("spec.metaData", host.spec.meta_data),
    )
    for field, ref in refs:
        if ref is not None and ref.namespace and ref.namespace != namespace:
            # Upstream's k8serrors.NewForbidden wording, field name included.
            name = field.removeprefix("spec.")
            errors.append(
                outcome.SpecError(
                    f"{field}.namespace",
                    f"baremetalhosts.metal3.io {json.dumps(host.metadata.name)} is forbidden: "
                    f"{name}: cross-namespace Secret references are not allowed",
                )
            )
    return errors


def _check_raid(spec: bmh.BareMetalHostSpec) -> SpecErrors:
    raid = spec.raid
    if raid is None:
        return []
    errors: SpecErrors = []
    hardware = raid.hardware_raid_volumes or ()
    software = raid.software_raid_volumes or ()
    if hardware and software:
        errors.append(
            outcome.SpecError(
                "spec.raid",
                "hardwareRAIDVolumes and softwareRAIDVolumes can not be set at the same time",
            )
        )
    for index, volume in enumerate(hardware):
        field = f"spec.raid.hardwareRAIDVolumes[{index}]"
        if volume.physical_disks and not volume.controller:
            errors.append(
                outcome.SpecError(
                    f"{field}.physicalDisks",
                    "'physicalDisks' specified without 'controller' in hardware RAID volume "
                    f"{index}",
                )
            )
        count = volume.number_of_physical_disks
        if count is not None and volume.physical_disks and count != len(volume.physical_disks):
            errors.append(
                outcome.SpecError(
                    f"{field}.numberOfPhysicalDisks",
                    f"the 'numberOfPhysicalDisks'[{count}] and number of 'physicalDisks'"
                    f"[{len(volume.physical_disks)}] is not same for volume {index}",
                )
            )
    roots = [i for i, volume in enumerate(software) if volume.root_volume]
    if len(roots) > 1:
        errors.append(
            outcome.SpecError(
                f"spec.raid.softwareRAIDVolumes[{roots[1]}].rootVolume",
                "softwareRAIDVolumes[*].rootVolume can only be set once",
            )
        )
    if len(roots) == 1 and spec.root_device_hints is not None:
        errors.append(
            outcome.SpecError(
                f"spec.raid.softwareRAIDVolumes[{roots[0]}].rootVolume",
                "softwareRAIDVolumes[*].rootVolume and rootDeviceHints can not be set at the "
                "same time",
            )
        )
    for index in roots:
        if software[index].level != "1":
            errors.append(
                outcome.SpecError(
                    f"spec.raid.softwareRAIDVolumes[{index}].level",
                    f"softwareRAIDVolumes[{index}] with rootVolume set must use RAID level 1",
                )
            )
    return errors


def _check_driver_support(host: bmh.BareMetalHost, access: bmcaddress.BMCAccess) -> SpecErrors:
    spec = host.spec
    errors: SpecErrors = []
    driver = access.scheme
    hardware_raid = spec.raid is not None and bool(spec.raid.hardware_raid_volumes)
    if hardware_raid and access.type.raid_interface == "no-raid":
        errors.append(
            outcome.SpecError(
                "spec.raid.hardwareRAIDVolumes",
                f"BMC driver {driver} does not support configuring RAID",
            )
        )
    if not spec.boot_mac_address and (access.type.needs_mac or host.inspection_disabled()):
        errors.append(
            outcome.SpecError(
                "spec.bootMACAddress", f"BMC driver {driver} requires a BootMACAddress value"
            )
        )
    errors += _check_boot_mac(spec.boot_mac_address)  # upstream parses it only with a BMC
    if spec.boot_mode == bmh.BootMode.UEFI_SECURE_BOOT and not access.type.supports_secure_boot:
        errors.append(
            outcome.SpecError("spec.bootMode", f"BMC driver {driver} does not support secure boot")
        )
    return errors


def is_mac(value: str) -> bool:
    """Go's net.ParseMAC: 6, 8 or 20 octets as xx:xx.., xx-xx.. or xxxx.xxxx.. (hex)."""
    match = _MAC_COLON.match(value)
    if match is not None:
        separator = match.group(1)
        if separator is None or value.count(separator) != len(value) // 3:
            return False
        return len(value.split(separator)) in (6, 8, 20)
    if _MAC_DOT.match(value):
        return len(value.split(".")) in (3, 4, 10)
    return False


def _check_boot_mac(mac: str) -> SpecErrors:
    if mac and not is_mac(mac):
        return [outcome.SpecError("spec.bootMACAddress", f"address {mac}: invalid MAC address")]
    return []


def _check_root_device_hints(hints: bmh.RootDeviceHints | None, field: str) -> SpecErrors:
    if hints is None or not hints.device_name:
        return []
    name = hints.device_name
    if not name.startswith("/dev/"):
        return [
            outcome.SpecError(
                f"{field}.deviceName",
                f'device name of root device hint must be a /dev/ path, not "{name}"',
            )
        ]
    subpath = name.removeprefix("/dev/").removeprefix("disk/by-path/")
    if "/" in subpath:
        return [
            outcome.SpecError(
                f"{field}.deviceName",
                "device name of root device hint must be path in /dev/ or /dev/disk/by-path/, "
                f'not "{name}"',
            )
        ]
    return []


IMAGE_URL_SCHEMES = ("http", "https", "ftp", "gopher", "oci")
"""Upstream's validateURL allowlist: anything else (file, unix, ssh, ...) is refused."""


def _request_uri_problem(url: str) -> tuple[str, str]:
    """(problem, scheme) as Go's url.ParseRequestURI reads `url`: problem "" when it parses.

    The problem is worded as Go's url.Error (`parse "URL": reason`), with any password in the
    URL shown as `xxxxx` (upstream shows it); the scheme is lowercased.
    """
    where = f"parse {json.dumps(bmcaddress.redact(url), ensure_ascii=False)}"
    if not url:
        return f"{where}: empty url", ""
    if _CONTROL.search(url):
        return f"{where}: net/url: invalid control character in URL", ""
    if url.startswith(":"):
        return f"{where}: missing protocol scheme", ""
    match = _URI_SCHEME.match(url)
    scheme = match.group(0)[:-1].lower() if match is not None else ""
    rest = url[match.end() :] if match is not None else url
    if not rest.startswith("/"):
        return f"{where}: invalid URI for request", scheme
    path = rest.split("?", 1)[0]
    if scheme and rest.startswith("//"):
        authority = re.split(r"[/?]", rest[2:], maxsplit=1)[0]
        path = path[2 + len(authority) :]
        host = authority.rpartition("@")[2]
        if " " in host:
            return f'{where}: invalid character " " in host name', scheme
        try:
            urllib.parse.urlsplit(url).port  # noqa: B018 - validates the port
        except ValueError as err:
            return f"{where}: {err}", scheme
    bad_escape = _BAD_ESCAPE.search(path)
    if bad_escape is not None:
        at = bad_escape.start()
        return f"{where}: invalid URL escape {json.dumps(path[at : at + 3])}", scheme
    return "", scheme


request_uri_problem = _request_uri_problem
"""Public name for other kinds' webhooks (DataImage and BMCEventSubscription URLs, H6)."""


def _check_image(image: bmh.Image) -> SpecErrors:
    errors: SpecErrors = []
    problem, scheme = _request_uri_problem(image.url)
    if not problem and scheme not in IMAGE_URL_SCHEMES:
        problem = f'invalid scheme in URL, "{scheme}" not allowed'
    if problem:
        errors.append(
            outcome.SpecError(
                "spec.image.url",
                f"image URL {bmcaddress.redact(image.url)} is invalid: {problem}",
            )
        )
    if image.is_oci():
        if image.checksum:
            errors.append(
                outcome.SpecError(
                    "spec.image.checksum",
                    "spec.image.checksum must be empty for OCI images (oci:// images have "
                    "embedded checksums)",
                )
            )
        return errors
    if image.is_live_iso():
        return errors
    if not image.checksum:
        errors.append(
            outcome.SpecError("spec.image.checksum", "checksum is required for normal images")
        )
    return errors


def _check_network_interfaces(interfaces: tuple[bmh.NetworkInterface, ...]) -> SpecErrors:
    """Each entry names one NIC, by name or by MAC (not both), and no NIC twice: upstream
    keys an entry by its MAC (else its name), compared case-insensitively."""
    errors: SpecErrors = []
    seen: set[str] = set()
    for index, interface in enumerate(interfaces):
        field = f"spec.networkInterfaces[{index}]"
        if not interface.name and not interface.mac_address:
            errors.append(outcome.SpecError(field, "must specify either name or macAddress"))
            continue
        if interface.name and interface.mac_address:
            errors.append(outcome.SpecError(field, "name and macAddress are mutually exclusive"))
            continue
        key = interface.mac_address or interface.name
        if key.lower() in seen:
            errors.append(
                outcome.SpecError(field, f"duplicate interface selector for {json.dumps(key)}")
            )
        seen.add(key.lower())
    return errors


def _check_annotations(host: bmh.BareMetalHost) -> SpecErrors:
    errors: SpecErrors = []
    for name, value in host.metadata.annotations.items():
        problem = ""
        if name == bmh.STATUS_ANNOTATION:
            problem = _status_annotation_problem(value)
        elif name == bmh.REBOOT_ANNOTATION_PREFIX or name.startswith(
            bmh.REBOOT_ANNOTATION_PREFIX + "/"
        ):
            problem = _reboot_annotation_problem(value)
        elif name == bmh.INSPECT_ANNOTATION:
            if value not in INSPECT_VALUES:
                problem = (
                    f"invalid value for the {bmh.INSPECT_ANNOTATION} annotation, allowed are "
                    '"disabled" or ""'
                )
        elif name == bmh.HARDWARE_DETAILS_ANNOTATION:
            problem = _hardware_details_problem(
                value, inspection_disabled=host.inspection_disabled()
            )
        elif name == bmh.DETACHED_ANNOTATION:
            problem = _detached_annotation_problem(value)
        if problem:
            errors.append(outcome.SpecError(_annotation(name), problem))
    return errors


def _first_error(err: pydantic.ValidationError) -> str:
    """The first problem, worded as Go's strict JSON decoder where it has a word for it."""
    first = err.errors()[0]
    if first["type"] == "extra_forbidden" and first["loc"]:
        unknown = f"json: unknown field {json.dumps(str(first['loc'][-1]))}"
        return unknown if len(first["loc"]) == 1 else f"{unknown} at {format_loc(first['loc'])}"
    path = format_loc(first["loc"])
    return f"{path}: {_message(first)}" if path else _message(first)


def _json_syntax_problem(value: str, err: json.JSONDecodeError) -> str:
    """Go's words for a truncated document ("unexpected EOF"); Python's for anything else."""
    if not value[err.pos :].strip():
        return "unexpected EOF"
    return f"invalid JSON: {err.msg} at offset {err.pos}"


OPERATIONAL_STATUS_ANNOTATION_ALLOWED = frozenset(
    {"", "OK", "discovered", "error", "delayed", "detached"}
)
"""Upstream's OperationalStatusAllowed: what a status annotation may carry (not servicing)."""


def _status_annotation_problem(value: str) -> str:
    if not value:
        return ""
    try:
        raw = json.loads(value)
    except json.JSONDecodeError as err:
        return f"error decoding status annotation: {_json_syntax_problem(value, err)}"
    if not isinstance(raw, dict):
        return "error decoding status annotation: not a JSON object"
    # Go decodes enum strings without checking them, then checks these two by hand.
    rest = {k: v for k, v in raw.items() if k not in ("operationalStatus", "errorType")}
    try:
        bmh.BareMetalHostStatus.model_validate(rest)
    except pydantic.ValidationError as err:
        return f"error decoding status annotation: {_first_error(err)}"
    op_status = raw.get("operationalStatus", "")
    if op_status not in OPERATIONAL_STATUS_ANNOTATION_ALLOWED:
        return f"invalid operationalStatus '{op_status}' in the {bmh.STATUS_ANNOTATION} annotation"
    error_type = raw.get("errorType", "")
    if error_type not in {t.value for t in bmh.STATUS_ANNOTATION_ERROR_TYPES}:
        return f"invalid errorType '{error_type}' in the {bmh.STATUS_ANNOTATION} annotation"
    return ""


def _unmarshal_problem(annotation: str, reason: object) -> str:
    return f"failed to unmarshal the data from the {annotation} annotation: {reason}"


def _json_object(value: str, annotation: str) -> tuple[dict[str, Any] | None, str]:
    try:
        raw = json.loads(value)
    except json.JSONDecodeError as err:
        return None, _unmarshal_problem(annotation, _json_syntax_problem(value, err))
    if not isinstance(raw, dict):
        return None, _unmarshal_problem(annotation, "not a JSON object")
    return raw, ""


def _reboot_annotation_problem(value: str) -> str:
    if not value:
        return ""
    raw, problem = _json_object(value, bmh.REBOOT_ANNOTATION_PREFIX)
    if raw is None:
        return problem
    force = raw.get("force", False)
    if not isinstance(force, bool):
        return _unmarshal_problem(bmh.REBOOT_ANNOTATION_PREFIX, "force must be a boolean")
    if raw.get("mode", "") not in REBOOT_MODES:
        return (
            f"invalid mode in the {bmh.REBOOT_ANNOTATION_PREFIX} annotation, "
            'allowed are "hard", "soft" or ""'
        )
    return ""


def _detached_annotation_problem(value: str) -> str:
    if not value:
        return ""
    raw, problem = _json_object(value, bmh.DETACHED_ANNOTATION)
    if raw is None:
        return problem
    if not isinstance(raw.get("force", False), bool):
        return _unmarshal_problem(bmh.DETACHED_ANNOTATION, "force must be a boolean")
    if raw.get("deleteAction", "") not in DETACH_DELETE_ACTIONS:
        return (
            f"invalid deleteAction in the {bmh.DETACHED_ANNOTATION} annotation, "
            'allowed are "delay", "delete" or ""'
        )
    return ""


def _hardware_details_problem(value: str, *, inspection_disabled: bool) -> str:
    if not value:
        return ""
    if not inspection_disabled:
        return (
            "when hardware details are provided, inspection must be disabled "
            "(either via inspect.metal3.io annotation or inspectionMode field)"
        )
    try:
        raw = json.loads(value)
    except json.JSONDecodeError as err:
        problem = _json_syntax_problem(value, err)
        return f"error decoding the {bmh.HARDWARE_DETAILS_ANNOTATION} annotation: {problem}"
    try:
        hardwaredata.HardwareDetails.model_validate(raw)
    except pydantic.ValidationError as err:
        return (
            f"error decoding the {bmh.HARDWARE_DETAILS_ANNOTATION} annotation: {_first_error(err)}"
        )
    return ""


def _check_inspection_mode(
    host: bmh.BareMetalHost, access: bmcaddress.BMCAccess | None
) -> SpecErrors:
    mode = host.spec.inspection_mode
    if mode is None:
        return []
    errors: SpecErrors = []
    annotation = host.metadata.annotations.get(bmh.INSPECT_ANNOTATION, "")
    if annotation and (annotation == bmh.INSPECT_DISABLED) != (mode == bmh.InspectionMode.DISABLED):
        errors.append(
            outcome.SpecError(
                "spec.inspectionMode",
                "inspect.metal3.io annotation and inspectionMode field have contradicting values",
            )
        )
    if mode == bmh.InspectionMode.FAST and access is not None and not access.type.inspect_interface:
        errors.append(
            outcome.SpecError(
                "spec.inspectionMode",
                f"BMC driver {access.scheme} does not support fast (out-of-band) inspection",
            )
        )
    return errors


def _check_changes(old: bmh.BareMetalHost, new: bmh.BareMetalHost) -> SpecErrors:
    """Upstream's validateChanges: what an update may not change.

    A state counts when either the stored or the new object is in it (the API server hands the
    webhook both; on the main resource the status is the stored one).
    """
    errors: SpecErrors = []
    states = {old.status.provisioning.state, new.status.provisioning.state}
    detached = bmh.OperationalStatus.DETACHED in (
        old.status.operational_status,
        new.status.operational_status,
    )
    if (
        old.spec.bmc.address
        and new.spec.bmc.address != old.spec.bmc.address
        and not detached
        and bmh.ProvisioningState.REGISTERING not in states
    ):
        errors.append(
            outcome.SpecError(
                "spec.bmc.address",
                "BMC address can not be changed if the BMH is not in the Registering state, "
                "or if the BMH is not detached",
            )
        )
    old_mac = old.spec.boot_mac_address
    if old_mac and new.spec.boot_mac_address.lower() != old_mac.lower():
        errors.append(
            outcome.SpecError(
                "spec.bootMACAddress", "bootMACAddress can not be changed once it is set"
            )
        )
    if (
        not old.spec.externally_provisioned
        and new.spec.externally_provisioned
        and bmh.ProvisioningState.AVAILABLE not in states
    ):
        errors.append(
            outcome.SpecError(
                "spec.externallyProvisioned",
                "externallyProvisioned can only be enabled when in Available state, "
                f"currently in {old.status.provisioning.state.value}",
            )
        )
    return errors


# --- schema errors and the registry of kinds ------------------------------------------------


def format_loc(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a wire field path: `spec.raid.hardwareRAIDVolumes[0].level`."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif path:
            path += f".{part}"
        else:
            path = part
    return path


_MESSAGES = {
    "missing": "Required value",
    "extra_forbidden": "unknown field",
}


def _message(error: Mapping[str, Any]) -> str:
    """pydantic's message, with the API server's words for missing and unknown fields."""
    return _MESSAGES.get(str(error["type"]), str(error["msg"]))


def schema_errors(err: pydantic.ValidationError) -> SpecErrors:
    """One SpecError per pydantic error, named by its wire field path."""
    return [outcome.SpecError(format_loc(e["loc"]) or "object", _message(e)) for e in err.errors()]


def _check_object_name(doc: Mapping[str, Any]) -> SpecErrors:
    metadata = doc.get("metadata")
    if not isinstance(metadata, Mapping):
        return [outcome.SpecError("metadata", "Required value")]
    name = metadata.get("name")
    if not name:
        if metadata.get("generateName"):
            return []
        return [
            outcome.SpecError("metadata.name", "Required value: name or generateName is required")
        ]
    if not isinstance(name, str) or len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        return [
            outcome.SpecError(
                "metadata.name",
                f"Invalid value: {name!r}: a lowercase RFC 1123 subdomain must consist of lower "
                "case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character",
            )
        ]
    return []


# apimachinery's ObjectMeta rules (validation.IsQualifiedName, IsValidLabelValue,
# ValidateAnnotations), as the API server applies them to every object.
_QUALIFIED_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_QUALIFIED_NAME_FORMAT = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character"
)
TOTAL_ANNOTATION_SIZE_LIMIT_B = 256 * 1024
"""apimachinery's TotalAnnotationSizeLimitB: keys plus values, in bytes."""
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _qualified_name_problems(key: str) -> list[str]:
    """apimachinery IsQualifiedName: `[prefix/]name`, name <= 63, prefix a DNS subdomain."""
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
        prefix = None
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return ["prefix part must be non-empty"]
    else:
        return ["a qualified name " + _QUALIFIED_NAME_FORMAT + " with an optional DNS subdomain "
                "prefix and '/' (e.g. 'example.com/MyName')"]
    problems = []
    if prefix is not None and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        problems.append("prefix part a lowercase RFC 1123 subdomain must consist of lower case "
                        "alphanumeric characters, '-' or '.', and must start and end with an "
                        "alphanumeric character")
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    elif not _QUALIFIED_NAME_PART.match(name):
        problems.append("name part " + _QUALIFIED_NAME_FORMAT)
    return problems


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


def _check_object_meta(doc: Mapping[str, Any]) -> SpecErrors:
    """Namespace, label and annotation rules of ObjectMeta (types are the schema's concern)."""
    metadata = doc.get("metadata")
    if not isinstance(metadata, Mapping):
        return []
    errors: SpecErrors = []
    namespace = metadata.get("namespace")
    if isinstance(namespace, str) and namespace and (
            len(namespace) > 63 or not _DNS1123_LABEL.match(namespace)):
        errors.append(outcome.SpecError(
            "metadata.namespace",
            f"Invalid value: {_shown(namespace)}: a lowercase RFC 1123 label must consist of "
            "lower case alphanumeric characters or '-', and must start and end with an "
            "alphanumeric character (at most 63 characters)"))
    labels = metadata.get("labels")
    if isinstance(labels, Mapping):
        for key, value in labels.items():
            if not isinstance(key, str) or not isinstance(value, str):
                continue
            for problem in _qualified_name_problems(key):
                errors.append(outcome.SpecError(
                    "metadata.labels", f"Invalid value: {_shown(key)}: {problem}"))
            if len(value) > 63:
                errors.append(outcome.SpecError(
                    f"metadata.labels[{key}]",
                    f"Invalid value: {_shown(value)}: must be no more than 63 characters"))
            elif value and not _QUALIFIED_NAME_PART.match(value):
                errors.append(outcome.SpecError(
                    f"metadata.labels[{key}]",
                    f"Invalid value: {_shown(value)}: a valid label must be an empty string or "
                    + _QUALIFIED_NAME_FORMAT))
    annotations = metadata.get("annotations")
    if isinstance(annotations, Mapping):
        total = 0
        for key, value in annotations.items():
            if not isinstance(key, str):
                continue
            for problem in _qualified_name_problems(key.lower()):
                errors.append(outcome.SpecError(
                    "metadata.annotations", f"Invalid value: {_shown(key)}: {problem}"))
            total += len(key.encode()) + (len(value.encode()) if isinstance(value, str) else 0)
        if total > TOTAL_ANNOTATION_SIZE_LIMIT_B:
            errors.append(outcome.SpecError(
                "metadata.annotations",
                f"Too long: may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT_B} bytes "
                f"(keys and values together: {total})"))
    return errors


class Check(Enum):
    """How `metalcubed validate` treats a kind."""

    FULL = "checked"
    """Modelled: schema and webhook rules."""
    SKIPPED = "skipped"
    """Known and deliberately not checked (core kinds such as Secret)."""
    NOT_CHECKED = "not checked"
    """A Metal3 kind metalcubed has no model for yet: reported as a notice."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KindEntry:
    api_version: str
    kind: str
    check: Check
    model: type[meta.Resource] | None = None
    webhook: Callable[..., SpecErrors] | None = None
    """Admission rules, called as `webhook(obj, old=stored_or_None)` after the schema passed."""
    webhook_operations: tuple[str, ...] = ("CREATE", "UPDATE")
    """The operations upstream's ValidatingWebhookConfiguration sends for this kind."""
    delete_webhook: Callable[[Any], SpecErrors] | None = None
    """Rules on deleting the stored object (only kinds whose operations include DELETE)."""
    warnings: Callable[..., list[str]] | None = None
    """Admission warnings, called like `webhook` (upstream's BareMetalHost has none)."""

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def plural(self) -> str:
        return self.model.PLURAL if self.model is not None else self.kind.lower() + "s"

    @property
    def webhook_path(self) -> str:
        """controller-runtime's path: `/validate-<group, dots as dashes>-<version>-<kind>`."""
        group = self.group.replace(".", "-")
        return f"/validate-{group}-{self.version}-{self.kind.lower()}"

    @property
    def webhook_name(self) -> str:
        """Upstream's webhook name: `<kind>.<group>` in lower case."""
        return f"{self.kind.lower()}.{self.group}"


KINDS: dict[tuple[str, str], KindEntry] = {}
"""Known kinds by (apiVersion, kind)."""


def register(entry: KindEntry) -> None:
    """Add or replace a kind (other API modules register their models here)."""
    KINDS[(entry.api_version, entry.kind)] = entry


register(
    KindEntry(
        api_version=bmh.API_VERSION,
        kind=bmh.BareMetalHost.KIND,
        check=Check.FULL,
        model=bmh.BareMetalHost,
        webhook=validate_host,
    )
)
register(
    KindEntry(
        api_version=hardwaredata.HardwareData.API_VERSION,
        kind=hardwaredata.HardwareData.KIND,
        check=Check.FULL,
        model=hardwaredata.HardwareData,
    )
)
for _core_kind in ("Secret", "ConfigMap", "Namespace"):
    register(KindEntry(api_version="v1", kind=_core_kind, check=Check.SKIPPED))

_UNMODELLED = {
    "metal3.io/v1alpha1": (
        "HostClaim",
        "HostDeployPolicy",
        "HostNetworkAttachment",
        "BareMetalSwitch",
    ),
}
for _api_version, _kinds in _UNMODELLED.items():
    for _kind in _kinds:
        KINDS.setdefault(
            (_api_version, _kind),
            KindEntry(api_version=_api_version, kind=_kind, check=Check.NOT_CHECKED),
        )


def lookup(api_version: str, kind: str) -> KindEntry | None:
    return KINDS.get((api_version, kind))


def webhooks() -> list[KindEntry]:
    """The kinds served by the validating webhook server, in a stable order."""
    return sorted(
        (e for e in KINDS.values() if e.model is not None and e.webhook is not None),
        key=lambda e: (e.api_version, e.kind),
    )


def _parsed_old(entry: KindEntry, old: Mapping[str, Any] | None) -> meta.Resource | None:
    """The stored object, or None when there is none or our model cannot read it: an object
    stored before a rule existed must stay editable (only the create rules then apply)."""
    if old is None or entry.model is None:
        return None
    try:
        return entry.model.from_wire(old)
    except (pydantic.ValidationError, TypeError, ValueError):
        return None


def validate_object(doc: Mapping[str, Any], *, old: Mapping[str, Any] | None = None) -> SpecErrors:
    """Check a wire dict like the API server would: schema (the kind's model), then webhook.

    Unknown kinds get one error on `kind`; kinds known but not checked get none.
    `old` (the stored object) turns on the update-only webhook rules.
    """
    if not isinstance(doc, Mapping):
        return [outcome.SpecError("object", "expected a Kubernetes object (a mapping)")]
    api_version = doc.get("apiVersion")
    kind = doc.get("kind")
    if not isinstance(kind, str) or not kind:
        return [outcome.SpecError("kind", "Required value")]
    if not isinstance(api_version, str) or not api_version:
        return [outcome.SpecError("apiVersion", "Required value")]
    entry = lookup(api_version, kind)
    if entry is None:
        return [outcome.SpecError("kind", f"unknown kind {kind} (apiVersion {api_version})")]
    if entry.model is None:
        return []
    errors = _check_object_name(doc) + _check_object_meta(doc)
    try:
        obj = entry.model.from_wire(doc)
    except pydantic.ValidationError as err:
        return errors + schema_errors(err)
    if entry.webhook is None:
        return errors
    return errors + entry.webhook(obj, old=_parsed_old(entry, old))


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer to one admission request: allowed when there are no errors."""

    errors: tuple[outcome.SpecError, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return not self.errors

    def message(self) -> str:
        """The denial text: `field: message`, several as apimachinery's aggregate `[a, b]`."""
        texts = [f"{e.field}: {e.message}" for e in self.errors]
        if len(texts) == 1:
            return texts[0]
        return "[" + ", ".join(texts) + "]" if texts else ""


OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")
"""AdmissionRequest.operation values."""


def admit(
    operation: str, obj: Mapping[str, Any] | None, old: Mapping[str, Any] | None = None
) -> Admission:
    """Validating admission of one request, as upstream's webhook answers it.

    CREATE checks `obj`; UPDATE checks `obj` and what may not change from `old`; DELETE runs
    the kind's delete rules on `old` (allowed when it has none, as for BareMetalHost);
    operations the kind's webhook is not registered for are allowed. Never raises.
    """
    if operation not in OPERATIONS:
        return Admission((outcome.SpecError("operation", f"unknown operation {operation!r}"),))
    subject = old if operation == "DELETE" else obj
    if not isinstance(subject, Mapping):
        what = "oldObject" if operation == "DELETE" else "object"
        return Admission((outcome.SpecError(what, f"Required value for {operation}"),))
    entry = lookup(str(subject.get("apiVersion")), str(subject.get("kind")))
    if entry is None or entry.model is None:
        errors = validate_object(subject)  # names the unknown (or missing) kind
        return Admission(tuple(errors) or (outcome.SpecError("kind", "no admission rules"),))
    if operation not in entry.webhook_operations:
        return Admission()
    if operation == "DELETE":
        stored = _parsed_old(entry, subject)
        if entry.delete_webhook is None or stored is None:
            return Admission()
        return Admission(tuple(entry.delete_webhook(stored)))
    if operation == "UPDATE" and not isinstance(old, Mapping):
        return Admission((outcome.SpecError("oldObject", "Required value for UPDATE"),))
    errors = validate_object(subject, old=old if operation == "UPDATE" else None)
    warnings: tuple[str, ...] = ()
    if not errors and entry.warnings is not None:
        parsed = entry.model.from_wire(subject)
        warnings = tuple(entry.warnings(parsed, old=_parsed_old(entry, old)))
    return Admission(tuple(errors), warnings)


# Kinds registered by their own modules (one import line each, bounded edits welcome):
from metalcubed.core.api import (  # noqa: E402
    bmceventsubscription,  # noqa: F401
    dataimage,  # noqa: F401
    firmwareschema,  # noqa: F401
    hostfirmwarecomponents,  # noqa: F401
    hostfirmwaresettings,  # noqa: F401
    hostupdatepolicy,  # noqa: F401
    ipam,  # noqa: F401
    preprovisioningimage,  # noqa: F401
)
from metalcubed.core.api.capm3 import kinds as _capm3_kinds  # noqa: E402,F401
