"""PreprovisioningImage end to end on the manager's boot server, over real HTTP on 127.0.0.1:
the controller builds the host's image with its `<host>-network` nmstate Secret, publishes the
boot server's per-host ISO URL, and the ISO fetched from that URL (as the BMC fetches it)
carries the network configuration; a new Secret version gives a new ISO."""

import base64
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from metalcubed.controllers import bootiso, bootserver, imageprovider, lookup, memory
from metalcubed.core import memory_store
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import change, meta
from metalcubed.core.api import preprovisioningimage as ppi
from metalcubed.core.provisioning import nodes
from metalcubed.core.reconcilers import preprovisioningimage

pytestmark = pytest.mark.hardware

NS = "lab"
KEY = meta.ObjectKey(NS, "worker-0")
NMSTATE = ("interfaces:\n- name: eno1\n  type: ethernet\n  state: up\n  ipv4:\n"
           "    enabled: true\n    address: [{ip: 192.0.2.10, prefix-length: 24}]\n")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def boot() -> Iterator[bootserver.BootServer]:
    clock = memory.WallClock()
    table = lookup.LockedNodeTable(clock=clock, agent_timeout_s=60)
    # As the engine leaves the node once it inserted the ISO to boot the ramdisk.
    table.put(nodes.Node(node_id=nodes.node_id_for(KEY), name=nodes.node_name(KEY),
                         bmc_address="127.0.0.1", macs=("52:54:00:00:00:01",),
                         wait=nodes.Wait(purpose=nodes.Purpose.INSPECT, since=clock.now())))
    files = {"http://files/k": b"kernel", "http://files/r": b"ramdisk"}
    server = bootserver.BootServer(table=table, deploy_kernel_url="http://files/k",
                                   deploy_ramdisk_url="http://files/r",
                                   api_url="http://192.0.2.1:6385", fetch=lambda u: [files[u]])
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Lab:
    def __init__(self, boot: bootserver.BootServer) -> None:
        self.clock = memory.WallClock()
        self.store = memory_store.MemoryStore(clock=self.clock)
        self.reconciler = preprovisioningimage.PreprovisioningImageReconciler(
            store=self.store, clock=self.clock, events=self,
            provider=imageprovider.BootImageProvider(boot))
        self.store.create(meta.Secret(metadata=meta.ObjectMeta(name="worker-0-network",
                                                               namespace=NS),
                                      data={"nmstate": _b64(NMSTATE)}))
        self.store.create(bmh.BareMetalHost(
            metadata=meta.ObjectMeta(name="worker-0", namespace=NS),
            spec=bmh.BareMetalHostSpec(
                online=True, preprovisioning_network_data_name="worker-0-network",
                bmc=bmh.BMCDetails(address="redfish-virtualmedia+http://127.0.0.1:1/redfish/v1/"
                                   "Systems/1", credentials_name="bmc-creds"))))

    def record(self, obj: meta.Resource, **kw: object) -> None:
        return None

    def settle(self) -> ppi.PreprovisioningImage:
        for _ in range(6):
            if self.reconciler.reconcile(KEY).is_done:
                break
        return self.store.get(ppi.PreprovisioningImage, KEY)

    def set_nmstate(self, text: str, key: str = "nmstate") -> None:
        secret = self.store.get(meta.Secret, meta.ObjectKey(NS, "worker-0-network"))
        self.store.update(change.replace(secret, {"data": {key: _b64(text)}}))


def _iso_files(url: str) -> dict[str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as rsp:
        _, files = bootiso.read_files(rsp.read(), what="deploy ISO")
    return files


def test_the_image_url_serves_the_hosts_iso_with_its_network_data(
    boot: bootserver.BootServer
) -> None:
    lab = Lab(boot)
    image = lab.settle()
    node_id = nodes.node_id_for(KEY)
    assert image.status.image_url == f"{boot.url}/boot/{boot.key}/{node_id}/deploy.iso"
    assert image.status.image_url == boot.deploy_iso_url_template().replace("{node_id}", node_id)
    ready = image.condition(ppi.ConditionType.READY)
    assert ready is not None and ready.status == "True"
    files = _iso_files(image.status.image_url)
    assert files[bootiso.NMSTATE_FILE].decode() == NMSTATE
    assert b"ipa-agent-token=" in files[bootiso.GRUB_CFG.lstrip("/")]

    lab.set_nmstate(NMSTATE.replace("192.0.2.10", "192.0.2.11"))
    image = lab.settle()
    secret = lab.store.get(meta.Secret, meta.ObjectKey(NS, "worker-0-network"))
    assert image.status.network_data.version == secret.metadata.resource_version
    assert b"192.0.2.11" in _iso_files(image.status.image_url)[bootiso.NMSTATE_FILE]


@pytest.mark.parametrize(
    ("key", "text", "wanted"),
    [
        pytest.param("networkData", NMSTATE, "network data Secret 'worker-0-network' has no "
                     "'nmstate' key (keys: networkData)", id="no-nmstate-key"),
        pytest.param("nmstate", "interfaces: [\n", "network data Secret 'worker-0-network': "
                     "nmstate is not YAML (line 2)", id="not-yaml"),
        pytest.param("nmstate", "- eno1\n", "network data Secret 'worker-0-network': nmstate "
                     "is not an nmstate document (a YAML mapping such as `interfaces: [...]`)",
                     id="not-a-mapping"),
    ],
)
def test_network_data_the_ramdisk_cannot_use_is_an_error_on_the_image(
    boot: bootserver.BootServer, key: str, text: str, wanted: str
) -> None:
    lab = Lab(boot)
    lab.set_nmstate(text, key=key)
    image = lab.settle()
    error = image.condition(ppi.ConditionType.ERROR)
    assert error is not None and (error.status, error.reason, error.message) == (
        "True", "ImageBuildInvalid", wanted)
    assert image.status.image_url == ""


def test_the_iso_of_a_host_naming_network_data_waits_for_its_image(
    boot: bootserver.BootServer
) -> None:
    lab = Lab(boot)
    boot.network_data_name = imageprovider.network_data_names(
        lambda key: lab.store.get(bmh.BareMetalHost, key))
    url = boot.deploy_iso_url_template().replace("{node_id}", nodes.node_id_for(KEY))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code == 503 and refused.value.headers["Retry-After"] == "5"
    assert b"is not built yet" in refused.value.read()
    image = lab.settle()  # the controller builds the image: the ISO is served, with the data
    assert image.status.image_url == url
    assert _iso_files(url)[bootiso.NMSTATE_FILE].decode() == NMSTATE


def test_a_prebuilt_deploy_iso_is_the_image_when_the_server_builds_none() -> None:
    """DEPLOY_ISO_URL alone (no kernel/ramdisk to build per-host ISOs): the image is that ISO,
    as upstream's default provider gives it, not "No acceptable image format supported"."""
    clock = memory.WallClock()
    table = lookup.LockedNodeTable(clock=clock, agent_timeout_s=60)
    prebuilt = "http://192.0.2.1:8080/deploy.iso"
    server = bootserver.BootServer(table=table, deploy_iso_url=prebuilt,
                                   api_url="http://192.0.2.1:6385", fetch=lambda u: [b""])
    server.start()
    try:
        image = Lab(server).settle()
    finally:
        server.stop()
    assert image.status.image_url == prebuilt
    ready = image.condition(ppi.ConditionType.READY)
    assert ready is not None and ready.status == "True", image.status
