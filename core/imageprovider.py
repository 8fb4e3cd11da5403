"""The ImageProvider port: who builds a host's deploy (preprovisioning) image.

Upstream BMO's `pkg/imageprovider` (baremetal-operator 02aa5059e): the PreprovisioningImage
controller asks a provider whether it can build for an architecture and a format, to build the
image with the host's ramdisk network data, and to discard it. Upstream's default provider
hands out the configured DEPLOY_ISO_URL unchanged (network data unused); downstream providers
(OpenShift's image-customization-controller) embed the nmstate network configuration. The
production provider here is the manager's boot server (controllers/imageprovider.py): the image
is the host's per-host deploy ISO, carrying the network data; the fleet model has none (upstream
then does not start the controller).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from metalcubed.core import outcome
from metalcubed.core.api import meta


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageData:
    """Which image (upstream imageprovider.ImageData)."""

    key: meta.ObjectKey
    """The PreprovisioningImage (and its host: same namespace and name)."""
    format: str
    """"iso" or "initrd"."""
    architecture: str
    network_data_name: str = ""
    network_data_version: str = ""
    """The network data Secret's name and resourceVersion the image is built with."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GeneratedImage:
    image_url: str
    kernel_url: str = ""
    extra_kernel_params: str = ""


class ImageBuildInvalid(outcome.PermanentError):
    """The image cannot be built from this input (e.g. network data that is not nmstate);
    shown as the PreprovisioningImage's Error condition, reason ImageBuildInvalid."""


class ImageNotReady(outcome.TransientError):
    """The build is under way: the controller marks the image not ready and polls."""


class ImageProvider(Protocol):
    """Builds per-host deploy images. Calls are quick (a build may continue in the background:
    `ImageNotReady`); idempotent for the same `ImageData`; thread-safe."""

    def supports_architecture(self, architecture: str) -> bool: ...

    def supports_format(self, format: str) -> bool: ...

    def build_image(
        self, data: ImageData, network_data: Mapping[str, str] | None
    ) -> GeneratedImage:
        """The image for `data`, with `network_data` (the Secret's decoded keys) built in.
        Raises ImageBuildInvalid or ImageNotReady."""
        ...

    def discard_image(self, data: ImageData) -> None:
        """Forget the image built for `data` (a no-op when there is none)."""
        ...
