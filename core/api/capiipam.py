"""Cluster API's IPAM contract kinds (ipam.cluster.x-k8s.io/v1beta2): IPAddressClaim, IPAddress.

Field for field Cluster API v1.13.6 `api/ipam/v1beta2` (the version CAPM3 2f6d76b8 and IPAM
1f5fa681 import as `capipamv1`). Cluster API core ships their CRDs; two of our controllers write
them, so these are full models, not read-only views:
- the Metal3Data controller creates an IPAddressClaim `<metal3data>-<pool>` for a template pool
  reference that is not a Metal3 IPPool (any CAPI IPAM provider serves it);
- the IPPool controller serves IPAddressClaims whose `spec.poolRef` names a Metal3 IPPool
  (apiGroup ipam.metal3.io, kind IPPool): it creates the IPAddress and fills
  `status.addressRef` and the Ready condition, as upstream IPAM's `IPPoolReconcilerForCAPI`.
"""

from typing import Any, ClassVar

from metalcubed.core.api import meta

API_VERSION = "ipam.cluster.x-k8s.io/v1beta2"
READY = "Ready"
ALLOCATION_FAILED = "AllocationFailed"
POOL_EXHAUSTED = "PoolExhausted"
POOL_NOT_READY = "PoolNotReady"
ALLOCATED = "Allocated"
"""Our reason for Ready=True (the CRD requires a reason; upstream IPAM sets none)."""
CLAIM_FINALIZER = "ipam.metal3.io/ipaddressclaim"
"""IPAM's finalizer on the IPAddressClaims it serves."""
ADDRESS_FINALIZER = "ipam.metal3.io/ipaddress"
"""IPAM's finalizer on the CAPI IPAddresses it creates."""


class IPPoolReference(meta.ApiModel):
    name: str = ""
    kind: str = ""
    api_group: str = ""


class IPAddressClaimSpec(meta.ApiModel):
    cluster_name: str | None = None
    pool_ref: IPPoolReference = IPPoolReference()


class IPAddressReference(meta.ApiModel):
    name: str = ""


class IPAddressClaimStatus(meta.ApiModel):
    conditions: tuple[meta.Condition, ...] | None = None
    address_ref: IPAddressReference | None = None
    deprecated: dict[str, Any] | None = None


class IPAddressClaim(meta.Resource):
    """A request for one address from the pool `spec.poolRef` names."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "IPAddressClaim"
    PLURAL: ClassVar[str] = "ipaddressclaims"

    spec: IPAddressClaimSpec = IPAddressClaimSpec()
    status: IPAddressClaimStatus | None = None

    def failure(self) -> str | None:
        """The message of a Ready=False condition with an allocation reason, else None."""
        for condition in (self.status.conditions if self.status else None) or ():
            if condition.type == READY and condition.status == "False" and condition.reason in (
                    ALLOCATION_FAILED, POOL_EXHAUSTED):
                return condition.message or condition.reason
        return None


class IPAddressClaimReference(meta.ApiModel):
    name: str = ""


class IPAddressSpec(meta.ApiModel):
    claim_ref: IPAddressClaimReference = IPAddressClaimReference()
    pool_ref: IPPoolReference = IPPoolReference()
    address: str = ""
    prefix: int | None = None
    gateway: str | None = None


class IPAddress(meta.Resource):
    """One address given to an IPAddressClaim (no DNS servers in Cluster API's contract)."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "IPAddress"
    PLURAL: ClassVar[str] = "ipaddresses"
    HAS_STATUS: ClassVar[bool] = False

    spec: IPAddressSpec = IPAddressSpec()
