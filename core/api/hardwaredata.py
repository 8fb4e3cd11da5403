"""What inspection found on a host: HardwareDetails, and the HardwareData kind that carries it.

Upstream keeps the same HardwareDetails struct in two places: `BareMetalHost.status.hardware`
(deprecated) and `HardwareData.spec.hardware` (a separate object with the host's name, created
at the end of inspection, or by a user beforehand to skip inspection). The models here follow
`apis/metal3.io/v1alpha1` field by field, including Go's `omitempty` on the wire: a zero value
("", 0, false, an empty list, an empty struct) is left out when serialising, so an object read
from the API server and written back keeps its shape.

The `omitempty` helper (`OMIT_EMPTY`) lives in meta.py; it is re-exported here for the models
that import it from this module.
"""

from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import Field

from metalcubed.core.api import meta

is_empty = meta.is_empty
OMIT_EMPTY = meta.OMIT_EMPTY

VLANId = Annotated[int, Field(ge=0, le=4094)]
MACPattern = r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}"
"""Upstream's (unanchored, as JSON Schema patterns are) MAC address pattern."""


class DiskType(StrEnum):
    """Storage.type: what kind of disk inspection saw."""

    HDD = "HDD"
    SSD = "SSD"
    NVME = "NVME"


class HardwareSystemVendor(meta.ApiModel):
    manufacturer: Annotated[str, OMIT_EMPTY] = ""
    product_name: Annotated[str, OMIT_EMPTY] = ""
    serial_number: Annotated[str, OMIT_EMPTY] = ""


class BIOS(meta.ApiModel):
    date: Annotated[str, OMIT_EMPTY] = ""
    vendor: Annotated[str, OMIT_EMPTY] = ""
    version: Annotated[str, OMIT_EMPTY] = ""


class Firmware(meta.ApiModel):
    bios: Annotated[BIOS, OMIT_EMPTY] = BIOS()


class VLAN(meta.ApiModel):
    id: Annotated[VLANId, OMIT_EMPTY] = 0
    name: Annotated[str, OMIT_EMPTY] = ""


class LLDP(meta.ApiModel):
    """Link-layer neighbour of a NIC, as the switch announced it."""

    switch_id: Annotated[str, OMIT_EMPTY] = Field(default="", alias="switchID")
    port_id: Annotated[str, OMIT_EMPTY] = Field(default="", alias="portID")
    switch_system_name: Annotated[str, OMIT_EMPTY] = ""


class NIC(meta.ApiModel):
    """One network interface; a NIC with both an IPv4 and an IPv6 address appears twice."""

    name: Annotated[str, OMIT_EMPTY] = ""
    model: Annotated[str, OMIT_EMPTY] = ""
    """Vendor and product id, e.g. "0x8086 0x1572"."""
    mac: Annotated[str, OMIT_EMPTY, Field(pattern=MACPattern)] = ""
    ip: Annotated[str, OMIT_EMPTY] = ""
    speed_gbps: Annotated[int, OMIT_EMPTY] = 0
    vlans: Annotated[tuple[VLAN, ...], OMIT_EMPTY] = ()
    vlan_id: Annotated[VLANId, OMIT_EMPTY] = 0
    """The untagged VLAN id."""
    pxe: Annotated[bool, OMIT_EMPTY] = False
    lldp: LLDP | None = None
    pci_address: Annotated[str, OMIT_EMPTY] = ""


class Storage(meta.ApiModel):
    """One disk."""

    name: Annotated[str, OMIT_EMPTY] = ""
    """A stable name (by-path) when available."""
    alternate_names: Annotated[tuple[str, ...], OMIT_EMPTY] = ()
    rotational: Annotated[bool, OMIT_EMPTY] = False
    type: DiskType | None = None
    size_bytes: Annotated[int, OMIT_EMPTY] = 0
    vendor: Annotated[str, OMIT_EMPTY] = ""
    model: Annotated[str, OMIT_EMPTY] = ""
    serial_number: Annotated[str, OMIT_EMPTY] = ""
    wwn: Annotated[str, OMIT_EMPTY] = ""
    wwn_vendor_extension: Annotated[str, OMIT_EMPTY] = ""
    wwn_with_extension: Annotated[str, OMIT_EMPTY] = ""
    hctl: Annotated[str, OMIT_EMPTY] = ""


class CPU(meta.ApiModel):
    arch: Annotated[str, OMIT_EMPTY] = ""
    model: Annotated[str, OMIT_EMPTY] = ""
    clock_megahertz: Annotated[float, OMIT_EMPTY] = 0.0
    flags: Annotated[tuple[str, ...], OMIT_EMPTY] = ()
    count: Annotated[int, OMIT_EMPTY] = 0


class HardwareDetails(meta.ApiModel):
    """The inspection result (upstream `HardwareDetails`)."""

    system_vendor: Annotated[HardwareSystemVendor, OMIT_EMPTY] = HardwareSystemVendor()
    firmware: Annotated[Firmware, OMIT_EMPTY] = Firmware()
    ram_mebibytes: Annotated[int, OMIT_EMPTY] = 0
    nics: Annotated[tuple[NIC, ...], OMIT_EMPTY] = ()
    storage: Annotated[tuple[Storage, ...], OMIT_EMPTY] = ()
    cpu: Annotated[CPU, OMIT_EMPTY] = CPU()
    hostname: Annotated[str, OMIT_EMPTY] = ""


HARDWARE_DATA_FINALIZER = "baremetalhost.metal3.io/hardwareData"
"""Finalizer BMO puts on a HardwareData it created, removed when the host is deleted."""


class HardwareDataSpec(meta.ApiModel):
    hardware: HardwareDetails | None = None
    """None: nothing recorded yet."""


class HardwareData(meta.Resource):
    """metal3.io/v1alpha1 HardwareData: same name as its BareMetalHost, spec only, no status."""

    API_VERSION: ClassVar[str] = "metal3.io/v1alpha1"
    KIND: ClassVar[str] = "HardwareData"
    PLURAL: ClassVar[str] = "hardwaredata"
    HAS_STATUS: ClassVar[bool] = False

    spec: HardwareDataSpec = HardwareDataSpec()
