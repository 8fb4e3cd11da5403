"""Restart safety of the manager as composed for production, in one process over loopback.

`controllers/manager.compose` with the engine (agent API and boot server on fixed loopback
ports, per-host deploy ISOs with agent tokens, the production BMC drivers) over a memory
store, driving emulated servers behind sushy-tools Redfish and pyghmi IPMI BMCs with their
deploy agents (a devenv BMC shard in this process). The manager is stopped mid-deployment and
a new composition built over the same store, ports and BMCs: everything the old one held in
memory (the node table, the agents' tokens) is gone, as after a kill -9.
tests/kube/test_e2e_engine.py does the same with a real kill -9 of the manager process on a
kube-apiserver; this is the faster check that runs without one.
"""

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from metalcubed.controllers import manager, memory
from metalcubed.controllers.kube import metrics
from metalcubed.core import memory_store
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.provisioning import context
from metalcubed.simulators import hostmodel
from metalcubed.simulators.devenv import config as lab_config
from metalcubed.simulators.devenv import lab, shard
from tests.kube import test_e2e_engine_support as support
from tests.kube import test_e2e_support as e2e

pytestmark = pytest.mark.hardware

NS = "restart"
S = bmh.ProvisioningState
RAMDISK_TIMEOUT_S = 3600.0
"""Far beyond the test's waits: a host that converges did not wait for the timeout."""
WAIT_S = 120.0
"""Liveness bound of each phase (a failure names the hosts still waiting)."""


@dataclass
class Rig:
    store: memory.LockedStore
    images: support.Images
    one: shard.Shard
    agent_port: int
    boot_port: int
    running: list[tuple[manager.Composition, threading.Event, threading.Thread]] = field(
        default_factory=list)

    def start_manager(self) -> manager.Composition:
        """A new manager process, as far as the hosts can tell: same ports, empty memory."""
        options = manager.ManagerOptions(
            namespace=NS, provisioner="engine", concurrency=4, identity="restart-test",
            agent_api_bind_address=f"127.0.0.1:{self.agent_port}",
            boot_server_bind_address=f"127.0.0.1:{self.boot_port}",
            deploy_kernel_url=self.images.deploy_kernel_url,
            deploy_ramdisk_url=self.images.deploy_ramdisk_url,
            engine=context.EngineConfig(poll_s=0.5, short_poll_s=0.2, busy_retry_s=0.5,
                                        ramdisk_timeout_s=RAMDISK_TIMEOUT_S),
        )
        registry = metrics.new_registry()
        composition = manager.compose(
            options, backend=self.store, recorder=lab.LabEvents(), registry=registry,
            runtime_metrics=metrics.RuntimeMetrics(registry),
            bmo_metrics=metrics.PrometheusMetrics(registry),
        )
        stop = threading.Event()
        thread = threading.Thread(target=composition.manager.run, args=(stop,), daemon=True)
        thread.start()
        self.running.append((composition, stop, thread))
        assert composition.controller.started.wait(30), "the controller did not start"
        return composition

    def stop_manager(self) -> None:
        """The manager goes away with everything it held in memory."""
        _, stop, thread = self.running.pop()
        stop.set()
        thread.join(timeout=60)
        assert not thread.is_alive(), "the manager did not stop"

    def hosts(self) -> dict[str, bmh.BareMetalHost]:
        return {h.metadata.name: h for h in self.store.list(bmh.BareMetalHost, namespace=NS)}

    def states(self) -> dict[str, S]:
        return {name: h.status.provisioning.state for name, h in self.hosts().items()}

    def model(self, name: str) -> hostmodel.HostModel:
        return next(m for m in self.one.models if m.name == name)

    def writes(self, name: str) -> int:
        return self.one.agents.disk(self.model(name)).writes

    def set_image(self, names: list[str], image: bmh.Image | None) -> None:
        for name in names:
            for _ in range(50):
                host = self.hosts()[name]
                try:
                    self.store.update(host.model_copy(
                        update={"spec": host.spec.model_copy(update={"image": image})}))
                    break
                except Exception:  # a status write raced ours: read it again
                    time.sleep(0.02)
            else:
                raise AssertionError(f"could not set the image of {name}")

    def wait(self, goal: Callable[[], bool], what: str) -> None:
        try:
            e2e.wait_until(goal, timeout_s=WAIT_S, interval_s=0.05, what=what)
        except AssertionError as err:
            raise AssertionError(f"{err}: {self.states()}") from None


@pytest.fixture
def rig() -> Iterator[Rig]:
    images = support.Images(size_mib=2).start()
    agent_port, boot_port = e2e.free_port(), e2e.free_port()
    config = lab_config.LabConfig(hosts=4, bmc=lab_config.BmcMix.MIXED, namespace=NS,
                                  hosts_per_process=0)
    spec = shard.ShardSpec(hosts=tuple(shard.plan(config)[0]), username="admin",
                           password="password", lookup_url=f"http://127.0.0.1:{agent_port}",
                           deploy_iso_url="",
                           deploy_iso_prefix=f"http://127.0.0.1:{boot_port}/boot/",
                           timing=support.TIMING)
    one = shard.Shard(spec)
    store = memory.LockedStore(memory_store.MemoryStore(clock=memory.WallClock()))
    built = Rig(store=store, images=images, one=one, agent_port=agent_port, boot_port=boot_port)
    try:
        info = one.start()
        for host in info.hosts:
            store.create(lab.secret_for(host, config, "restart"))
            store.create(lab.host_for(host, config, "restart"))
        yield built
    finally:
        while built.running:
            built.stop_manager()
        one.stop()
        images.stop()


def test_a_manager_restarted_mid_deployment_finishes_it_and_reimages_no_provisioned_host(
    rig: Rig,
) -> None:
    image = bmh.Image(url=rig.images.os_url, checksum=rig.images.os_checksum,
                      checksum_type=bmh.ChecksumType.SHA256, format=bmh.ImageFormat.RAW)
    names = sorted(rig.hosts())
    rig.start_manager()
    rig.wait(lambda: set(rig.states().values()) == {S.AVAILABLE}, "every host available")
    early, late = names[:2], names[2:]
    rig.set_image(early, image)
    rig.wait(lambda: all(rig.states()[n] == S.PROVISIONED
                         and rig.one.agents.disk(rig.model(n)).os_boots == 1 for n in early),
             "the first hosts provisioned and booted from their disks")
    rig.set_image(late, image)
    rig.wait(lambda: all(rig.states()[n] == S.PROVISIONING for n in late)
             and any(rig.writes(n) >= 1 for n in late),
             "the other hosts deploying, one image on its disk")
    rig.stop_manager()
    writes_at_stop = {n: rig.writes(n) for n in names}
    boots_at_stop = {n: len(rig.model(n).boots) for n in names}
    caught = [n for n in late if rig.states()[n] == S.PROVISIONING]
    assert caught and all(writes_at_stop[n] == 1 for n in early)

    restarted = rig.start_manager()
    rig.wait(lambda: set(rig.states().values()) == {S.PROVISIONED},
             "every host provisioned after the restart")
    for name in early:
        assert rig.writes(name) == 1, f"{name} was imaged again after the restart"
        assert len(rig.model(name).boots) == boots_at_stop[name], f"{name} was rebooted"
    for name in caught:
        # Its agent's token died with the old manager: booted into the ramdisk again.
        assert len(rig.model(name).boots) > boots_at_stop[name]
        assert 1 <= rig.writes(name) <= writes_at_stop[name] + 1
    for name in names:
        disk = rig.one.agents.disk(rig.model(name))
        assert (disk.image_url, disk.checksum) == (image.url, image.checksum)
    assert restarted.services is not None
    assert not [h for h in rig.hosts().values() if h.status.error_type]

    # Deprovisioning after the restart wipes every disk.
    rig.set_image(names, None)
    rig.wait(lambda: set(rig.states().values()) == {S.AVAILABLE}, "every host deprovisioned")
    for name in names:
        disk = rig.one.agents.disk(rig.model(name))
        assert disk.wipes >= 1 and disk.image_url == "", (name, disk)

