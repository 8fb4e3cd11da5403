"""The BareMetalHost reconciler driving the engine in-process: the whole host lifecycle.

The reconciler is upstream BMO's pipeline over a MemoryStore; the engine is its provisioner
factory, over the in-process rig (emulated hosts, Sim BMCs, emulated agents), in virtual time.
"""

import base64
import random

from metalcubed.core import ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import hardwaredata as hwd
from metalcubed.core.api import meta
from metalcubed.core.memory_store import MemoryStore
from metalcubed.core.provisioning import capacity, nodes
from metalcubed.core.reconcilers import host as host_reconciler

from .loop import Loop
from .rig import IMAGE, IMAGE_URL, NS, Rig, sha256

S = bmh.ProvisioningState
ET = bmh.ErrorType


class Events:
    def __init__(self) -> None:
        self.items: list[tuple[str, str, str]] = []

    def record(self, obj: meta.Resource, *, type: ports.EventType, reason: str,
               message: str) -> None:
        self.items.append((obj.metadata.name, reason, message))


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class World:
    def __init__(self) -> None:
        self.rig = Rig()
        self.store = MemoryStore(clock=self.rig.clock)
        self.rig.engine._busy_hosts = capacity.busy_hosts_in(self.store)
        self.events = Events()
        self.reconciler = host_reconciler.BareMetalHostReconciler(
            store=self.store, provisioner_factory=self.rig.engine, clock=self.rig.clock,
            events=self.events, rng=random.Random(1),
        )
        self.loop = Loop(self.reconciler, self.store, clock=self.rig.clock, max_delay_s=120.0)
        self.secret("bmc", {"username": "admin", "password": "password"})
        self.secret("user-data", {"userData": "#cloud-config\nhostname: web-0\n"})

    def secret(self, name: str, values: dict[str, str]) -> None:
        self.store.create(meta.Secret(metadata=meta.ObjectMeta(name=name, namespace=NS),
                                      data={k: b64(v) for k, v in values.items()}))

    def host(self, scheme: str, *, credentials: str = "bmc") -> meta.ObjectKey:
        host = self.rig.add_host(scheme=scheme)
        obj = bmh.BareMetalHost(
            metadata=meta.ObjectMeta(name=host.key.name, namespace=NS),
            spec=bmh.BareMetalHostSpec.model_validate({
                "online": True,
                "bmc": {"address": host.address, "credentialsName": credentials},
                "bootMACAddress": host.mac,
            }),
        )
        key = self.store.create(obj).key
        self.loop.add([key])
        return key

    def edit(self, key: meta.ObjectKey, **spec: object) -> None:
        current = self.loop.host(key)
        self.store.update(current.model_copy(update={"spec": current.spec.model_copy(
            update=spec)}))
        self.loop.poke(key)

    def all_in(self, keys: list[meta.ObjectKey], state: S) -> bool:
        return all(self.loop.host(k).status.provisioning.state == state for k in keys)


IMG = bmh.Image(url=IMAGE_URL, checksum=sha256(IMAGE), checksum_type=bmh.ChecksumType.SHA256)


def test_hosts_go_through_the_whole_lifecycle() -> None:
    w = World()
    keys = [w.host(scheme) for scheme in ("redfish-virtualmedia+http", "ipmi", "redfish+http",
                                          "ipmi")]
    w.loop.run_until(lambda: w.all_in(keys, S.AVAILABLE))
    for key in keys:
        data = w.store.get(hwd.HardwareData, key)
        assert data.spec.hardware is not None and data.spec.hardware.nics
        assert w.loop.host(key).status.provisioning.id == nodes.node_id_for(key)
    for key in keys:
        w.edit(key, image=IMG, user_data=meta.SecretReference(name="user-data"))
    w.loop.run_until(lambda: w.all_in(keys, S.PROVISIONED))
    for host in w.rig.hosts:
        disk = w.rig.emulator.disk(host.model)
        assert disk.image_url == IMAGE_URL and disk.os_boots == 1
        assert disk.config_drive is not None
        assert disk.config_drive.user_data == "#cloud-config\nhostname: web-0\n"
    for key in keys:
        assert w.loop.host(key).status.provisioning.image.url == IMAGE_URL
        w.edit(key, image=None)
    w.loop.run_until(lambda: w.all_in(keys, S.AVAILABLE))
    assert all(w.rig.emulator.disk(h.model).wipes == 1 for h in w.rig.hosts)
    for key in keys:
        w.store.delete(bmh.BareMetalHost, key)
        w.loop.poke(key)
    w.loop.run_until(lambda: all(w.loop.gone(k) for k in keys))
    assert w.rig.table.nodes() == []
    assert not w.loop.errors


def test_wrong_password_is_a_registration_error() -> None:
    w = World()
    w.secret("wrong", {"username": "admin", "password": "not-the-password"})
    key = w.host("redfish-virtualmedia+http", credentials="wrong")
    w.loop.run_until(lambda: w.loop.host(key).status.error_type == ET.REGISTRATION)
    status = w.loop.host(key).status
    assert status.provisioning.state == S.REGISTERING
    assert "authentication failed" in status.error_message
    assert "not-the-password" not in status.error_message


def test_bad_checksum_is_a_provisioning_error_and_retried() -> None:
    w = World()
    key = w.host("redfish-virtualmedia+http")
    w.loop.run_until(lambda: w.all_in([key], S.AVAILABLE))
    w.edit(key, image=bmh.Image(url=IMAGE_URL, checksum="0" * 64))
    w.loop.run_until(lambda: w.loop.host(key).status.error_type == ET.PROVISIONING)
    status = w.loop.host(key).status
    assert status.error_message.startswith(f"Image provisioning failed (url: {IMAGE_URL}): "
                                           "Image failed to verify against checksum.")
    # Fixing the checksum provisions the host.
    w.edit(key, image=IMG)
    w.loop.run_until(lambda: w.all_in([key], S.PROVISIONED))
    assert w.loop.host(key).status.error_type == ET.NONE


def test_pxe_hosts_wait_for_a_provisioning_slot() -> None:
    w = World()
    w.rig.engine.config = type(w.rig.engine.config)(
        deploy_iso_url=w.rig.engine.config.deploy_iso_url, provisioning_limit=1)
    w.rig.emulator.deploy_iso_urls.clear()  # PXE agents come up; vmedia ones would not
    keys = [w.host("ipmi") for _ in range(3)]
    seen_busy: list[int] = []

    def observe() -> bool:
        busy = capacity.busy_hosts(w.store.list(bmh.BareMetalHost))
        seen_busy.append(len(busy))
        return w.all_in(keys, S.AVAILABLE)

    w.loop.run_until(observe)
    assert max(seen_busy) == 1
    assert any(e[1] == "InspectionComplete" for e in w.events.items)
