"""The BareMetalHost kind (metal3.io/v1alpha1): the desired and observed state of one server.

Field for field the same as upstream's `apis/metal3.io/v1alpha1/baremetalhost_types.go`, so a
user's manifests and the API server's stored objects parse unchanged. Class names are upstream's
Go type names; attributes are the snake_case form of the JSON name, which is declared next to the
field only where it is not plain camelCase (`bootMACAddress`, `ID`, `hardwareRAIDVolumes`).

Wire shape follows Go's encoding: a field that upstream tags `omitempty` is annotated
`OMIT_EMPTY` and left out when it holds its zero value; a pointer field is `X | None` (None: not
set). Schema defaults (automatedCleaningMode `metadata`, errorCount 0, ...) are model defaults,
so a parsed manifest serialises the way the API server would store it. Field constraints carry
the CRD's enums, patterns and bounds; cross-field rules live in `validation` (the webhook), not
here, to keep parsing cheap.
"""

import warnings
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from metalcubed.core.api import hardwaredata, meta
from metalcubed.core.api.hardwaredata import OMIT_EMPTY

API_VERSION = "metal3.io/v1alpha1"

PAUSED_ANNOTATION = "baremetalhost.metal3.io/paused"
"""Any value: reconcile returns at once (CAPM3 uses the value `metal3.io/capm3`)."""
DETACHED_ANNOTATION = "baremetalhost.metal3.io/detached"
""""" or JSON {"deleteAction": "delay"|"delete", "force": bool}: remove from the provisioner."""
STATUS_ANNOTATION = "baremetalhost.metal3.io/status"
"""JSON BareMetalHostStatus, restored when status.lastUpdated is empty (pivot)."""
REBOOT_ANNOTATION_PREFIX = "reboot.metal3.io"
"""`reboot.metal3.io` or `reboot.metal3.io/<key>`: "" or JSON {"mode": "hard"|"soft", "force"}."""
INSPECT_ANNOTATION = "inspect.metal3.io"
"""`disabled` disables inspection; "" requests re-inspection (in available)."""
INSPECT_DISABLED = "disabled"
"""The INSPECT_ANNOTATION value that disables inspection."""
HARDWARE_DETAILS_ANNOTATION = "inspect.metal3.io/hardwaredetails"
"""JSON HardwareDetails, consumed when inspection is disabled or status.hardware is empty."""
FINALIZER = "baremetalhost.metal3.io"
PAUSED_BY_CAPM3 = "metal3.io/capm3"
"""The PAUSED_ANNOTATION value CAPM3 sets (and removes) while its cluster is paused."""


class ProvisioningState(StrEnum):
    """status.provisioning.state: where the host is in its lifecycle (upstream's strings)."""

    NONE = ""
    UNMANAGED = "unmanaged"
    REGISTERING = "registering"
    MATCH_PROFILE = "match profile"
    INSPECTING = "inspecting"
    PREPARING = "preparing"
    READY = "ready"
    AVAILABLE = "available"
    PROVISIONING = "provisioning"
    PROVISIONED = "provisioned"
    EXTERNALLY_PROVISIONED = "externally provisioned"
    DEPROVISIONING = "deprovisioning"
    POWERING_OFF_BEFORE_DELETE = "powering off before delete"
    DELETING = "deleting"


class OperationalStatus(StrEnum):
    """status.operationalStatus: the host's health, orthogonal to the provisioning state."""

    NONE = ""
    OK = "OK"
    DISCOVERED = "discovered"
    ERROR = "error"
    DELAYED = "delayed"
    DETACHED = "detached"
    SERVICING = "servicing"


class ErrorType(StrEnum):
    """status.errorType: the class of the last failure (set only with operationalStatus error).

    Upstream's CRD enum omits `detach error` although the controller writes it; our CRDs list it.
    """

    NONE = ""
    REGISTRATION = "registration error"
    PROVISIONED_REGISTRATION = "provisioned registration error"
    INSPECTION = "inspection error"
    PREPARATION = "preparation error"
    PROVISIONING = "provisioning error"
    POWER_MANAGEMENT = "power management error"
    DETACH = "detach error"
    SERVICING = "servicing error"


STATUS_ANNOTATION_ERROR_TYPES = frozenset(
    {
        ErrorType.NONE,
        ErrorType.REGISTRATION,
        ErrorType.PROVISIONED_REGISTRATION,
        ErrorType.INSPECTION,
        ErrorType.PREPARATION,
        ErrorType.PROVISIONING,
        ErrorType.POWER_MANAGEMENT,
    }
)
"""Upstream's ErrorTypeAllowed: the error types a status annotation may carry."""


class BootMode(StrEnum):
    """How the host boots. Unset (None) means UEFI, upstream's DefaultBootMode."""

    UEFI = "UEFI"
    UEFI_SECURE_BOOT = "UEFISecureBoot"
    LEGACY = "legacy"


DEFAULT_BOOT_MODE = BootMode.UEFI


class AutomatedCleaningMode(StrEnum):
    METADATA = "metadata"
    DISABLED = "disabled"


class InspectionMode(StrEnum):
    """spec.inspectionMode. `fast` is out-of-band (Redfish) inspection with no ramdisk boot."""

    DISABLED = "disabled"
    AGENT = "agent"
    FAST = "fast"


class ChecksumType(StrEnum):
    """image.checksumType. Unset or `auto`: detect the algorithm from the checksum."""

    MD5 = "md5"
    SHA256 = "sha256"
    SHA512 = "sha512"
    AUTO = "auto"


class ImageFormat(StrEnum):
    """image.format. `live-iso` boots the ISO (ramdisk deploy) instead of writing it to disk."""

    RAW = "raw"
    QCOW2 = "qcow2"
    VDI = "vdi"
    VMDK = "vmdk"
    LIVE_ISO = "live-iso"


HardwareRAIDLevel = Literal["0", "1", "2", "5", "6", "1+0", "5+0", "6+0"]
SoftwareRAIDLevel = Literal["0", "1", "1+0"]


class BMCDetails(meta.ApiModel):
    """How to reach the host's BMC. Both address and credentialsName are required when present."""

    address: str
    """URL of the BMC; its scheme picks the driver (see `bmcaddress`)."""
    credentials_name: str
    """Secret in the host's namespace with keys `username` and `password`."""
    disable_certificate_verification: Annotated[bool, OMIT_EMPTY] = False


NO_BMC = BMCDetails(address="", credentials_name="")
"""The zero BMCDetails: an unmanaged host (left out on the wire)."""


def _no_bmc(value: BMCDetails) -> bool:
    return value == NO_BMC


class Image(meta.ApiModel):
    """An image to deploy."""

    url: str
    checksum: Annotated[str, OMIT_EMPTY] = ""
    """The checksum itself or a URL of a checksum file; required unless live-iso or oci://."""
    checksum_type: ChecksumType | None = None
    format: ImageFormat | None = None
    oci_auth_secret_name: str | None = None
    """Docker-config secret (same namespace) for oci:// images; None: anonymous pull."""

    def is_live_iso(self) -> bool:
        return self.format == ImageFormat.LIVE_ISO

    def is_oci(self) -> bool:
        return self.url.startswith("oci://")


NO_IMAGE = Image(url="")


def _no_image(value: Image) -> bool:
    return value == NO_IMAGE


class RootDeviceHints(meta.ApiModel):
    """Which disk to deploy to; every set hint must match."""

    device_name: Annotated[str, OMIT_EMPTY] = ""
    """/dev/<name> or /dev/disk/by-path/<path>; must match exactly."""
    hctl: Annotated[str, OMIT_EMPTY] = ""
    model: Annotated[str, OMIT_EMPTY] = ""
    vendor: Annotated[str, OMIT_EMPTY] = ""
    serial_number: Annotated[str, OMIT_EMPTY] = ""
    min_size_gigabytes: Annotated[int, OMIT_EMPTY, Field(ge=0)] = 0
    wwn: Annotated[str, OMIT_EMPTY] = ""
    wwn_with_extension: Annotated[str, OMIT_EMPTY] = ""
    wwn_vendor_extension: Annotated[str, OMIT_EMPTY] = ""
    rotational: bool | None = None
    """None: either kind of disk."""


class HardwareRAIDVolume(meta.ApiModel):
    size_gibibytes: Annotated[int, Field(ge=0)] | None = None
    """None or 0: the maximum size."""
    level: HardwareRAIDLevel
    name: Annotated[str, OMIT_EMPTY, Field(max_length=64)] = ""
    rotational: bool | None = None
    number_of_physical_disks: Annotated[int, Field(ge=1)] | None = None
    controller: Annotated[str, OMIT_EMPTY] = ""
    physical_disks: Annotated[tuple[str, ...], OMIT_EMPTY] = ()
    """Controller-specific disk names; needs `controller`."""


class SoftwareRAIDVolume(meta.ApiModel):
    size_gibibytes: Annotated[int, Field(ge=0)] | None = None
    level: SoftwareRAIDLevel
    physical_disks: Annotated[tuple[RootDeviceHints, ...], OMIT_EMPTY, Field(min_length=2)] = ()
    root_volume: bool = False
    """At most one volume may be the root (and it must be RAID-1)."""


class RAIDConfig(meta.ApiModel):
    """RAID to build while preparing. An empty tuple clears it; None leaves it alone."""

    hardware_raid_volumes: tuple[HardwareRAIDVolume, ...] | None = Field(
        default=None, alias="hardwareRAIDVolumes"
    )
    software_raid_volumes: Annotated[tuple[SoftwareRAIDVolume, ...], Field(max_length=2)] | None = (
        Field(default=None, alias="softwareRAIDVolumes")
    )


class FirmwareConfig(meta.ApiModel):
    """Deprecated BIOS settings (the webhook rejects them: use HostFirmwareSettings)."""

    virtualization_enabled: bool | None = None
    simultaneous_multithreading_enabled: bool | None = None
    sriov_enabled: bool | None = None


class CustomDeploy(meta.ApiModel):
    method: str
    """A deploy step of a site-specific ramdisk; triggers provisioning like an image."""


class Taint(meta.ApiModel):
    """corev1.Taint (spec.taints is deprecated and never acted on)."""

    key: str
    value: Annotated[str, OMIT_EMPTY] = ""
    effect: str
    time_added: meta.Time | None = None


class HostNetworkAttachmentRef(meta.ApiModel):
    name: Annotated[str, OMIT_EMPTY, Field(max_length=253)] = ""
    namespace: Annotated[str, OMIT_EMPTY, Field(max_length=63)] = ""
    """"": the host's namespace."""


class SwitchPortConfig(meta.ApiModel):
    """The switch port a NIC is cabled to, when LLDP does not tell (or is wrong)."""

    switch_id: str = Field(alias="switchID", pattern=rf"^{hardwaredata.MACPattern}$")
    """The switch's management MAC address."""
    port_id: str = Field(alias="portID")


class NetworkInterface(meta.ApiModel):
    """Switch-port configuration for one NIC, named by `name` or `mac_address` (not both)."""

    name: Annotated[str, OMIT_EMPTY, Field(pattern=r"^[a-zA-Z0-9._-]+$")] = ""
    mac_address: Annotated[str, OMIT_EMPTY, Field(pattern=rf"^{hardwaredata.MACPattern}$")] = ""
    host_network_attachment: HostNetworkAttachmentRef | None = None
    switch_port: SwitchPortConfig | None = None


class BareMetalHostSpec(meta.ApiModel):
    """What the user wants of the host."""

    taints: Annotated[tuple[Taint, ...], OMIT_EMPTY] = ()
    bmc: Annotated[BMCDetails, Field(exclude_if=_no_bmc)] = NO_BMC
    """NO_BMC (empty address and credentials): the host stays unmanaged."""
    hardware_profile: Annotated[str, OMIT_EMPTY] = ""
    root_device_hints: RootDeviceHints | None = None
    boot_mode: BootMode | None = None
    """None: UEFI."""
    boot_mac_address: Annotated[str, OMIT_EMPTY] = Field(
        default="", alias="bootMACAddress", pattern=hardwaredata.MACPattern
    )
    online: bool
    consumer_ref: meta.ObjectReference | None = None
    image: Image | None = None
    user_data: meta.SecretReference | None = None
    preprovisioning_network_data_name: Annotated[str, OMIT_EMPTY] = ""
    network_data: meta.SecretReference | None = None
    meta_data: meta.SecretReference | None = None
    description: Annotated[str, OMIT_EMPTY] = ""
    externally_provisioned: Annotated[bool, OMIT_EMPTY] = False
    automated_cleaning_mode: AutomatedCleaningMode = AutomatedCleaningMode.METADATA
    custom_deploy: CustomDeploy | None = None
    architecture: Annotated[str, OMIT_EMPTY] = ""
    disable_power_off: Annotated[bool, OMIT_EMPTY] = False
    inspection_mode: InspectionMode | None = None
    """None: agent inspection unless the inspect annotation says `disabled`."""
    firmware: FirmwareConfig | None = None
    raid: RAIDConfig | None = None
    network_interfaces: Annotated[tuple[NetworkInterface, ...], OMIT_EMPTY] = ()

    def has_bmc_details(self) -> bool:
        """Upstream HasBMCDetails: an address or a credentials name is set (else unmanaged)."""
        return bool(self.bmc.address or self.bmc.credentials_name)


class CredentialsStatus(meta.ApiModel):
    """A Secret and the resourceVersion of it that was sent or worked."""

    credentials: meta.SecretReference | None = None
    credentials_version: Annotated[str, OMIT_EMPTY] = ""


class OperationMetric(meta.ApiModel):
    start: meta.Time | None = None
    end: meta.Time | None = None


with warnings.catch_warnings():
    # `register` is the wire name; it shadows ABCMeta.register, which no model of ours uses.
    warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)

    class OperationHistory(meta.ApiModel):
        register: Annotated[OperationMetric, OMIT_EMPTY] = OperationMetric()
        inspect: Annotated[OperationMetric, OMIT_EMPTY] = OperationMetric()
        provision: Annotated[OperationMetric, OMIT_EMPTY] = OperationMetric()
        deprovision: Annotated[OperationMetric, OMIT_EMPTY] = OperationMetric()


class ProvisionStatus(meta.ApiModel):
    """status.provisioning: the state, and what was actually applied."""

    state: ProvisioningState = ProvisioningState.NONE
    id: str = Field(default="", alias="ID")
    """The provisioner's node id ("" until registered)."""
    image: Annotated[Image, Field(exclude_if=_no_image)] = NO_IMAGE
    """The last image provisioned; a non-empty url means the host was provisioned."""
    root_device_hints: RootDeviceHints | None = None
    boot_mode: BootMode | None = None
    raid: RAIDConfig | None = None
    firmware: FirmwareConfig | None = None
    custom_deploy: CustomDeploy | None = None


class BareMetalHostStatus(meta.ApiModel):
    """What the controller observed and did."""

    operational_status: OperationalStatus = OperationalStatus.NONE
    error_type: Annotated[ErrorType, OMIT_EMPTY] = ErrorType.NONE
    error_message: str = ""
    error_count: int = 0
    """Errors since the last success; drives the backoff."""
    provisioning_fail_count: int = 0
    """Consecutive provisioning failures for the current image."""
    last_attempted_image: Image | None = None
    last_updated: meta.Time | None = None
    """None: no status recorded yet (triggers restore from the status annotation)."""
    hardware_profile: Annotated[str, OMIT_EMPTY] = ""
    hardware: hardwaredata.HardwareDetails | None = None
    provisioning: ProvisionStatus = ProvisionStatus()
    good_credentials: Annotated[CredentialsStatus, OMIT_EMPTY] = CredentialsStatus()
    tried_credentials: Annotated[CredentialsStatus, OMIT_EMPTY] = CredentialsStatus()
    powered_on: bool = False
    operation_history: Annotated[OperationHistory, OMIT_EMPTY] = OperationHistory()
    conditions: Annotated[tuple[meta.Condition, ...], OMIT_EMPTY, Field(max_length=32)] = ()


NO_SPEC = BareMetalHostSpec(online=False)
"""The spec of a host stored without one (upstream's CRD does not require `spec`; its demo
"discovered" host has none): no BMC, offline, so the host stays unmanaged until BMC details
arrive. Written back as `spec: {online: false, ...}`, as Go writes an empty struct."""


class BareMetalHost(meta.Resource):
    """metal3.io/v1alpha1 BareMetalHost."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "BareMetalHost"
    PLURAL: ClassVar[str] = "baremetalhosts"

    spec: BareMetalHostSpec = NO_SPEC
    status: BareMetalHostStatus = BareMetalHostStatus()

    def inspection_disabled(self) -> bool:
        """Upstream InspectionDisabled: spec.inspectionMode or the inspect annotation says so."""
        if self.spec.inspection_mode == InspectionMode.DISABLED:
            return True
        return self.metadata.annotations.get(INSPECT_ANNOTATION) == INSPECT_DISABLED
