"""The PreprovisioningImage controller over the memory store, with a recording image provider
(a test double of the ImageProvider port: which images were asked for, with which data)."""

from collections.abc import Mapping

import pytest

from metalcubed.core import imageprovider, outcome
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import change, meta
from metalcubed.core.api import preprovisioningimage as ppi
from metalcubed.core.reconcilers import preprovisioningimage
from tests.unit.reconcilers.conftest import NS, Harness, b64

VMEDIA = "redfish-virtualmedia+http://127.0.0.1:8000/redfish/v1/Systems/1"
NMSTATE = "interfaces:\n- name: eno1\n  type: ethernet\n  state: up\n"


class Provider:
    def __init__(self) -> None:
        self.built: list[tuple[imageprovider.ImageData, Mapping[str, str] | None]] = []
        self.discarded: list[imageprovider.ImageData] = []
        self.architectures = {"", "x86_64"}
        self.invalid = ""

    def supports_architecture(self, architecture: str) -> bool:
        return architecture in self.architectures

    def supports_format(self, format: str) -> bool:
        return format == "iso"

    def build_image(self, data: imageprovider.ImageData,
                    network_data: Mapping[str, str] | None) -> imageprovider.GeneratedImage:
        if self.invalid:
            raise imageprovider.ImageBuildInvalid(self.invalid)
        self.built.append((data, network_data))
        return imageprovider.GeneratedImage(
            image_url=f"http://boot.example/{data.key.name}.iso?v={data.network_data_version}")

    def discard_image(self, data: imageprovider.ImageData) -> None:
        self.discarded.append(data)


class Images:
    def __init__(self, h: Harness, provider: Provider | None) -> None:
        self.h = h
        self.reconciler = preprovisioningimage.PreprovisioningImageReconciler(
            store=h.store, clock=h.clock, events=h.events, provider=provider)

    def settle(self, key: meta.ObjectKey, passes: int = 6) -> outcome.Outcome:
        result = outcome.Outcome.done()
        for _ in range(passes):
            result = self.reconciler.reconcile(key)
            if result.is_done:
                break
        return result

    def get(self, key: meta.ObjectKey) -> ppi.PreprovisioningImage:
        return self.h.store.get(ppi.PreprovisioningImage, key)


def network_secret(h: Harness, text: str = NMSTATE, name: str = "host-0-network") -> None:
    h.store.create(meta.Secret(metadata=meta.ObjectMeta(name=name, namespace=NS),
                               data={"nmstate": b64(text)}))


def cond(image: ppi.PreprovisioningImage, ctype: ppi.ConditionType) -> tuple[str, str, str]:
    c = image.condition(ctype)
    assert c is not None
    return c.status, c.reason, c.message


@pytest.fixture
def provider() -> Provider:
    return Provider()


@pytest.fixture
def images(harness: Harness, provider: Provider) -> Images:
    return Images(harness, provider)


def host(h: Harness, **spec: object) -> meta.ObjectKey:
    spec.setdefault("bmc", bmh.BMCDetails(address=VMEDIA, credentials_name="bmc-creds"))
    spec.setdefault("preprovisioning_network_data_name", "host-0-network")
    return h.add_host(**spec)


def test_a_virtual_media_host_gets_its_image_built_with_its_network_data(
    harness: Harness, images: Images, provider: Provider
) -> None:
    network_secret(harness)
    key = host(harness)
    images.settle(key)
    image = images.get(key)
    assert image.spec == ppi.PreprovisioningImageSpec(
        network_data_name="host-0-network", accept_formats=(ppi.ImageFormat.ISO,))
    (owner,) = image.metadata.owner_references
    assert (owner.kind, owner.name, owner.controller) == ("BareMetalHost", "host-0", True)
    secret = harness.store.get(meta.Secret, meta.ObjectKey(NS, "host-0-network"))
    version = secret.metadata.resource_version
    assert image.status.image_url == f"http://boot.example/host-0.iso?v={version}"
    assert image.status.format == ppi.ImageFormat.ISO
    assert image.status.network_data == ppi.SecretStatus(
        name="host-0-network", version=secret.metadata.resource_version or "")
    assert cond(image, ppi.ConditionType.READY) == ("True", "ImageSuccess", "Generated image")
    assert cond(image, ppi.ConditionType.ERROR) == ("False", "ImageSuccess", "")
    assert provider.built[-1][1] == {"nmstate": NMSTATE}


def test_a_missing_network_secret_is_an_error_until_it_appears(
    harness: Harness, images: Images
) -> None:
    key = host(harness)
    result = images.settle(key)
    image = images.get(key)
    assert image.status.image_url == ""
    assert cond(image, ppi.ConditionType.ERROR) == (
        "True", "MissingNetworkData", "NetworkData secret not found")
    assert cond(image, ppi.ConditionType.READY)[0] == "False"
    assert result.requeue_after_s == preprovisioningimage.MIN_RETRY_DELAY_S
    harness.clock.advance(50)
    assert images.reconciler.reconcile(key).requeue_after_s == 60.0  # 50 s since + 10 s
    network_secret(harness)
    images.settle(key)
    assert cond(images.get(key), ppi.ConditionType.READY)[0] == "True"


def test_a_changed_secret_unreadies_then_rebuilds_the_image(
    harness: Harness, images: Images, provider: Provider
) -> None:
    network_secret(harness)
    key = host(harness)
    images.settle(key)
    old_url = images.get(key).status.image_url
    secret = harness.store.get(meta.Secret, meta.ObjectKey(NS, "host-0-network"))
    harness.store.update(change.replace(secret, {"data": {"nmstate": b64(NMSTATE + "# v2\n")}}))
    images.reconciler.reconcile(key)
    image = images.get(key)
    assert cond(image, ppi.ConditionType.READY) == ("False", "ImageSuccess", "Config changed")
    images.settle(key)
    image = images.get(key)
    assert image.status.image_url != old_url
    assert cond(image, ppi.ConditionType.READY)[0] == "True"
    assert provider.built[-1][1] == {"nmstate": NMSTATE + "# v2\n"}
    assert provider.discarded and provider.discarded[0].network_data_version == (
        secret.metadata.resource_version)


def test_the_image_follows_the_hosts_network_data_name(
    harness: Harness, images: Images, provider: Provider
) -> None:
    network_secret(harness)
    network_secret(harness, name="other-network", text="dns-resolver: {}\n")
    key = host(harness)
    images.settle(key)
    harness.edit_spec(key, preprovisioning_network_data_name="other-network")
    images.settle(key)
    image = images.get(key)
    assert image.spec.network_data_name == "other-network"
    assert image.status.network_data.name == "other-network"
    assert provider.built[-1][1] == {"nmstate": "dns-resolver: {}\n"}


def test_a_network_booting_host_gets_no_image(harness: Harness, images: Images) -> None:
    key = harness.add_host()  # redfish+http: PXE
    images.settle(key)
    with pytest.raises(outcome.NotFound):
        images.get(key)


def test_an_unsupported_architecture_is_a_configuration_error(
    harness: Harness, images: Images
) -> None:
    network_secret(harness)
    key = host(harness, architecture="s390x")
    images.settle(key)
    assert cond(images.get(key), ppi.ConditionType.ERROR) == (
        "True", "ConfigurationError", "Architecture not supported")


def test_a_build_the_provider_calls_invalid_is_an_error(
    harness: Harness, images: Images, provider: Provider
) -> None:
    network_secret(harness)
    provider.invalid = "network data is not nmstate: line 1"
    key = host(harness)
    images.settle(key)
    assert cond(images.get(key), ppi.ConditionType.ERROR) == (
        "True", "ImageBuildInvalid", "network data is not nmstate: line 1")


def test_deleting_discards_the_image_then_drops_the_finalizer(
    harness: Harness, images: Images, provider: Provider
) -> None:
    network_secret(harness)
    key = host(harness)
    images.settle(key)
    harness.delete_and_drive_away(key)  # the host goes: its image follows
    images.settle(key)
    with pytest.raises(outcome.NotFound):
        images.get(key)
    assert [d.key for d in provider.discarded] == [key]


def test_without_a_provider_nothing_happens(harness: Harness) -> None:
    key = host(harness)
    assert Images(harness, None).reconciler.reconcile(key).is_done
    with pytest.raises(outcome.NotFound):
        harness.store.get(ppi.PreprovisioningImage, key)
