"""The PreprovisioningImage kind (metal3.io/v1alpha1): the deploy ramdisk image built for one host.

Field for field upstream's `apis/metal3.io/v1alpha1/preprovisioningimage_types.go`
(baremetal-operator 02aa5059e). The BareMetalHost controller creates one per host (same name,
owned by the host) with `spec.networkDataName` = the host's `spec.preprovisioningNetworkDataName`
(the `<host>-network` Secret holding the ramdisk's nmstate network configuration); the
PreprovisioningImage controller builds the image with that network data and publishes its URL in
`status.imageUrl`, with the Secret version it used in `status.networkData` and the conditions
`Ready` and `Error`. No webhook upstream.
"""

from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import Field

from metalcubed.core.api import meta, validation
from metalcubed.core.api.meta import OMIT_EMPTY

API_VERSION = "metal3.io/v1alpha1"
FINALIZER = "preprovisioningimage.metal3.io"
"""The image controller's own: held until the built image is discarded."""
HOST_FINALIZER = "baremetalhost.metal3.io/preprovisioningImage"
"""The host controller's: keeps the image usable while the host still boots from it."""


class ImageFormat(StrEnum):
    ISO = "iso"
    INITRD = "initrd"


class ConditionType(StrEnum):
    READY = "Ready"
    """The image is built and can be downloaded from status.imageUrl."""
    ERROR = "Error"
    """The image could not be built (the reason and message say why)."""


class Reason(StrEnum):
    """Upstream's condition reasons."""

    SUCCESS = "ImageSuccess"
    CONFIGURATION_ERROR = "ConfigurationError"
    MISSING_NETWORK_DATA = "MissingNetworkData"
    BUILD_INVALID = "ImageBuildInvalid"


class PreprovisioningImageSpec(meta.ApiModel):
    network_data_name: Annotated[str, OMIT_EMPTY] = ""
    """A Secret in the same namespace holding network data to build into the image."""
    architecture: Annotated[str, OMIT_EMPTY] = ""
    """The processor architecture to build for ("": the controller's)."""
    accept_formats: Annotated[tuple[ImageFormat, ...], OMIT_EMPTY] = ()
    """Acceptable formats, most wanted first."""


class SecretStatus(meta.ApiModel):
    name: Annotated[str, OMIT_EMPTY] = ""
    version: Annotated[str, OMIT_EMPTY] = ""
    """The Secret's resourceVersion the image was built with."""


class PreprovisioningImageStatus(meta.ApiModel):
    image_url: Annotated[str, OMIT_EMPTY] = Field(default="", alias="imageUrl")
    """Where the built image can be downloaded ("" while none is ready)."""
    kernel_url: Annotated[str, OMIT_EMPTY] = Field(default="", alias="kernelUrl")
    """The kernel of an initrd image."""
    extra_kernel_params: Annotated[str, OMIT_EMPTY] = ""
    format: ImageFormat | None = None
    network_data: SecretStatus = SecretStatus()
    """Written even when empty, as Go writes a struct field."""
    architecture: Annotated[str, OMIT_EMPTY] = ""
    conditions: Annotated[tuple[meta.Condition, ...], OMIT_EMPTY] = ()


class PreprovisioningImage(meta.Resource):
    """metal3.io/v1alpha1 PreprovisioningImage: a host's deploy image with its network data."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "PreprovisioningImage"
    PLURAL: ClassVar[str] = "preprovisioningimages"

    spec: PreprovisioningImageSpec = PreprovisioningImageSpec()
    status: PreprovisioningImageStatus = PreprovisioningImageStatus()

    def condition(self, kind: ConditionType) -> meta.Condition | None:
        for cond in self.status.conditions:
            if cond.type == kind:
                return cond
        return None


validation.register(
    validation.KindEntry(
        api_version=API_VERSION,
        kind=PreprovisioningImage.KIND,
        check=validation.Check.FULL,
        model=PreprovisioningImage,
    )
)
