"""The HostUpdatePolicy kind (metal3.io/v1alpha1): may a provisioned host be serviced?

Field for field upstream's `apis/metal3.io/v1alpha1/hostupdatepolicy_types.go`
(baremetal-operator 02aa5059e). It has its BareMetalHost's name (the host's controller adds
itself as owner). Servicing is opt-in, as upstream: a provisioned host applies changed firmware
settings (HostFirmwareSettings) only when `firmwareSettings: onReboot`, and firmware updates
(HostFirmwareComponents) only when `firmwareUpdates: onReboot`; then the change is applied the
next time the host is rebooted (powered off and back on). `onPreparing` (or no policy) applies
them only while preparing, before provisioning.
"""

from enum import StrEnum
from typing import ClassVar

from metalcubed.core.api import meta, validation

API_VERSION = "metal3.io/v1alpha1"


class UpdatePolicy(StrEnum):
    ON_PREPARING = "onPreparing"
    ON_REBOOT = "onReboot"


class HostUpdatePolicySpec(meta.ApiModel):
    """When firmware settings and updates may be applied; absent: only while preparing."""

    firmware_settings: UpdatePolicy | None = None
    firmware_updates: UpdatePolicy | None = None


class HostUpdatePolicyStatus(meta.ApiModel):
    pass


class HostUpdatePolicy(meta.Resource):
    """metal3.io/v1alpha1 HostUpdatePolicy: what a provisioned host may change on reboot."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "HostUpdatePolicy"
    PLURAL: ClassVar[str] = "hostupdatepolicies"
    HAS_STATUS: ClassVar[bool] = False

    spec: HostUpdatePolicySpec = HostUpdatePolicySpec()
    status: HostUpdatePolicyStatus = HostUpdatePolicyStatus()


validation.register(
    validation.KindEntry(
        api_version=API_VERSION,
        kind=HostUpdatePolicy.KIND,
        check=validation.Check.FULL,
        model=HostUpdatePolicy,
    )
)
