"""The production ImageProvider: a host's PreprovisioningImage is its per-host deploy ISO.

The boot server already builds every virtual-media host its own deploy ISO (the agent's token and
API URL on the kernel command line, controllers/bootserver.py). `BootImageProvider` gives that ISO
the ramdisk's network configuration: the `nmstate` key of the PreprovisioningImage's network
data Secret (the `<host>-network` Secret Metal3 users write) goes into the ISO as
`metal3/nmstate.yaml`, and the image's URL (status.imageUrl) is the very URL the engine inserts
into the host's virtual CD, so the host boots the image its PreprovisioningImage describes.

Network data that is not a YAML mapping, or a Secret without an `nmstate` key, is refused
(`ImageBuildInvalid`, shown on the PreprovisioningImage), rather than built into an image the
ramdisk cannot use. Only `iso` is offered (no initrd: the engine boots PXE hosts without an
image of their own): per host when the boot server builds ISOs (DEPLOY_KERNEL_URL and
DEPLOY_RAMDISK_URL), else the prebuilt DEPLOY_ISO_URL as upstream's default provider gives it,
which cannot carry a host's network data (it is ignored, as upstream ignores it).
"""

from collections.abc import Callable, Mapping

import yaml

from metalcubed.controllers import bootserver
from metalcubed.core import imageprovider, outcome
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta
from metalcubed.core.provisioning import nodes

NMSTATE_KEY = "nmstate"
MAX_NETWORK_DATA_BYTES = 64 * 1024


class BootImageProvider:
    """`imageprovider.ImageProvider` over the boot server's per-host deploy ISOs."""

    def __init__(self, boot: bootserver.BootServer) -> None:
        self._boot = boot

    def supports_architecture(self, architecture: str) -> bool:
        return True  # the deploy kernel and ramdisk are whatever the operator configured

    def supports_format(self, format: str) -> bool:
        return format == "iso" and bool(self._per_host() or self._boot.deploy_iso_url)

    def _per_host(self) -> bool:
        return bool(self._boot.deploy_kernel_url and self._boot.deploy_ramdisk_url)

    def build_image(self, data: imageprovider.ImageData,
                    network_data: Mapping[str, str] | None) -> imageprovider.GeneratedImage:
        if not self._per_host():
            return imageprovider.GeneratedImage(image_url=self._boot.deploy_iso_url)
        node_id = nodes.node_id_for(data.key)
        if network_data is None:
            self._boot.forget_network_data(node_id)
        else:
            self._boot.set_network_data(node_id, data.network_data_version,
                                        nmstate(network_data, data.network_data_name))
        url = self._boot.deploy_iso_url_template().replace("{node_id}", node_id)
        return imageprovider.GeneratedImage(image_url=url)

    def discard_image(self, data: imageprovider.ImageData) -> None:
        node_id = nodes.node_id_for(data.key)
        if self._boot.network_data_version(node_id) == data.network_data_version:
            self._boot.forget_network_data(node_id)


def nmstate(network_data: Mapping[str, str], secret: str) -> bytes:
    """The Secret's `nmstate` value, checked to be a YAML mapping (ImageBuildInvalid)."""
    text = network_data.get(NMSTATE_KEY)
    if text is None:
        keys = ", ".join(sorted(network_data)) or "none"
        raise imageprovider.ImageBuildInvalid(
            f"network data Secret {secret!r} has no {NMSTATE_KEY!r} key (keys: {keys})")
    raw = text.encode()
    if len(raw) > MAX_NETWORK_DATA_BYTES:
        raise imageprovider.ImageBuildInvalid(
            f"network data Secret {secret!r}: {NMSTATE_KEY} is larger than 64 KiB")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise imageprovider.ImageBuildInvalid(
            f"network data Secret {secret!r}: {NMSTATE_KEY} is not YAML{where}") from err
    if not isinstance(doc, dict):
        raise imageprovider.ImageBuildInvalid(
            f"network data Secret {secret!r}: {NMSTATE_KEY} is not an nmstate document "
            "(a YAML mapping such as `interfaces: [...]`)")
    return raw


def network_data_names(
    host: Callable[[meta.ObjectKey], bmh.BareMetalHost],
) -> Callable[[str], str]:
    """The boot server's `network_data_name` over a host lookup (the manager's cache): node
    name "namespace~name" -> the host's spec.preprovisioningNetworkDataName ("" when none, or
    no such host)."""

    def name_of(node_name: str) -> str:
        namespace, sep, name = node_name.partition("~")
        if not sep:
            return ""
        try:
            return host(meta.ObjectKey(namespace, name)).spec.preprovisioning_network_data_name
        except outcome.NotFound:
            return ""

    return name_of
