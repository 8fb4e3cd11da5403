"""A lab world for engine tests over the real drivers: BMC emulators, engine lab, reconciler.

- BMCs: a Redfish emulator (sushy-tools app over host models, real HTTP) serving the
  `redfish` hosts, and an IPMI emulator (pyghmi, real UDP) serving the `ipmi` hosts;
- the real drivers (controllers/bmc) with short timeouts and retry budgets, picked per scheme
  as controllers/bmc/hardware.py does;
- the engine lab (image server, lookup service, agent emulator over HTTP);
- the BareMetalHost reconciler over a MemoryStore on the wall clock, run by `WallClockLoop`
  (the unit tests' `Loop`, waiting in real time: these hosts answer over real sockets).
"""

import base64
import random
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from metalcubed.controllers import memory
from metalcubed.controllers.bmc import unsupported
from metalcubed.controllers.bmc.ipmi import capabilities as ipmi
from metalcubed.controllers.bmc.redfish import capabilities as redfish
from metalcubed.controllers.bmc.redfish import client
from metalcubed.core import bmc, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta
from metalcubed.core.memory_store import MemoryStore
from metalcubed.core.provisioning import capacity, context, engine
from metalcubed.core.reconcilers import host as host_reconciler
from metalcubed.simulators import hostmodel, imageserver
from metalcubed.simulators.agent import emulator, lab
from metalcubed.simulators.ipmi import emulator as ipmi_emulator
from metalcubed.simulators.redfish import emulator as redfish_emulator
from tests.unit.provisioning import loop

NS = "metal3"
S = bmh.ProvisioningState


class WallClockLoop(loop.Loop):
    """`loop.Loop` in real time: waits for the next due pass by sleeping briefly, and gives up
    after `timeout_s` of wall time (a liveness bound for a lab whose hosts answer over real
    sockets, not a timing claim)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout_s = 120.0
        self._deadline = 0.0

    def run_until(self, goal: Callable[[], bool], *, max_passes: int = 5000,
                  timeout_s: float = 120.0) -> None:
        self.timeout_s, self._deadline = timeout_s, time.monotonic() + timeout_s
        super().run_until(goal, max_passes=max_passes)

    def wait(self, seconds: float) -> bool:
        if time.monotonic() > self._deadline:
            raise AssertionError(f"goal not reached in {self.timeout_s} s: {self.report()}")
        time.sleep(min(seconds, 0.05))
        return False


def fast_clients() -> client.Clients:
    return client.Clients(client.ClientConfig(
        connect_timeout_s=1.0, read_timeout_s=2.0, connect_retry_delay_s=0.05,
        retry=client.RetryPolicy(attempts=4, budget_s=3.0, base_delay_s=0.05,
                                 max_delay_s=0.5, max_retry_after_s=0.5)))


def fast_sessions() -> ipmi.Sessions:
    return ipmi.Sessions(ipmi.RetryPolicy(attempts=4, budget_s=3.0, base_delay_s=0.05,
                                          max_delay_s=0.5))


def driver_for(clients: client.Clients, sessions: ipmi.Sessions) -> engine.DriverFor:
    """The real drivers per scheme (controllers/bmc/hardware.py's table) with test timeouts."""

    def redfish_type(name: str, *, virtual_media: bool) -> bmc.Driver:
        boot: bmc.Boot = (redfish.RedfishVirtualMedia(clients) if virtual_media
                          else unsupported.UnsupportedBoot(name))
        return bmc.HardwareType(
            name=name, power=(redfish.RedfishPower(clients),),
            management=(redfish.RedfishManagement(clients),), boot=(boot,),
            inspect=(redfish.RedfishInspect(clients),), bios=(redfish.RedfishBios(clients),),
            firmware=(redfish.RedfishFirmware(clients),), events=(redfish.RedfishEvents(clients),),
        ).compose()

    ipmi_driver = bmc.HardwareType(
        name="ipmi", power=(ipmi.IpmiPower(sessions),), management=(ipmi.IpmiManagement(sessions),),
        boot=(unsupported.UnsupportedBoot("ipmi"),), inspect=(ipmi.IpmiInspect(sessions),),
        bios=(unsupported.UnsupportedBios("ipmi"),), firmware=(ipmi.IpmiFirmware(sessions),),
        events=(unsupported.UnsupportedEvents("ipmi"),),
    ).compose()
    drivers = {
        "redfish": redfish_type("redfish", virtual_media=False),
        "redfish-virtualmedia": redfish_type("redfish-virtualmedia", virtual_media=True),
        "ipmi": ipmi_driver,
    }
    return lambda access: drivers[access.address.type.name]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Events:
    def __init__(self) -> None:
        self.items: list[tuple[str, str, str, str]] = []

    def record(self, obj: meta.Resource, *, type: ports.EventType, reason: str,
               message: str) -> None:
        self.items.append((obj.metadata.name, type.value, reason, message))

    def warnings(self) -> list[tuple[str, str, str, str]]:
        return [e for e in self.items if e[1] == "Warning"]


class HardwareWorld:
    """`redfish` hosts behind one Redfish emulator, `ipmi` hosts behind IPMI BMCs."""

    def __init__(
        self,
        *,
        redfish_hosts: Sequence[hostmodel.HostModel],
        ipmi_hosts: Sequence[hostmodel.HostModel],
        image_size: int = 4 * 1024 * 1024,
        config: context.EngineConfig | None = None,
    ) -> None:
        self.redfish = redfish_emulator.RedfishEmulator(redfish_hosts, hang_s=10.0)
        self.ipmi = ipmi_emulator.IpmiEmulator(ipmi_hosts)
        self.clock = memory.WallClock()
        self.store = MemoryStore(clock=self.clock)
        self.lab = lab.EngineLab(
            drivers=driver_for(fast_clients(), fast_sessions()),
            config=config or context.EngineConfig(
                poll_s=0.2, short_poll_s=0.1, busy_retry_s=0.2, ramdisk_timeout_s=30.0),
            timing=emulator.AgentTiming(boot_s=0.2, heartbeat_s=0.2),
            busy_hosts=capacity.busy_hosts_in(self.store),
        )
        self.image = imageserver.random_image(image_size)
        self.events = Events()
        self.keys: list[meta.ObjectKey] = []
        self.models: dict[meta.ObjectKey, hostmodel.HostModel] = {}
        self.addresses: dict[meta.ObjectKey, str] = {}

    def __enter__(self) -> "HardwareWorld":
        self.redfish.start()
        self.ipmi.start()
        self.lab.start()
        assert self.lab.engine is not None
        self.image_url = self.lab.images.add("os.qcow2", self.image)
        self.reconciler = host_reconciler.BareMetalHostReconciler(
            store=self.store, provisioner_factory=self.lab.engine, clock=self.clock,
            events=self.events, rng=random.Random(3),
        )
        self.loop = WallClockLoop(self.reconciler, self.store, clock=self.clock,
                                  max_delay_s=1.0, error_retry_s=0.2)
        self.secret("bmc", {"username": "admin", "password": "password"})
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.lab.stop()
        self.redfish.stop()
        self.ipmi.stop()

    # --- objects -----------------------------------------------------------------------------

    def secret(self, name: str, values: dict[str, str]) -> None:
        self.store.create(meta.Secret(metadata=meta.ObjectMeta(name=name, namespace=NS),
                                      data={k: b64(v) for k, v in values.items()}))

    def enroll(self, model: hostmodel.HostModel, scheme: str, *, credentials: str = "bmc"
               ) -> meta.ObjectKey:
        if scheme == "ipmi":
            address = self.ipmi.bmc_address(model)
        else:
            address = self.redfish.bmc_address(model, scheme)
        self.lab.attach(model, bmc_address=address)
        host = bmh.BareMetalHost(
            metadata=meta.ObjectMeta(name=model.name, namespace=NS),
            spec=bmh.BareMetalHostSpec.model_validate({
                "online": True,
                "bmc": {"address": address, "credentialsName": credentials},
                "bootMACAddress": model.inventory.nics[0].mac,
            }),
        )
        key = self.store.create(host).key
        self.keys.append(key)
        self.models[key] = model
        self.addresses[key] = address
        self.loop.add([key])
        return key

    def edit(self, key: meta.ObjectKey, **spec: object) -> None:
        current = self.loop.host(key)
        self.store.update(current.model_copy(update={"spec": current.spec.model_copy(
            update=spec)}))
        self.loop.poke(key)

    def image_spec(self, *, checksum: str | None = None) -> bmh.Image:
        return bmh.Image(url=self.image_url,
                         checksum=checksum or self.lab.images.checksum("os.qcow2", "sha256"),
                         checksum_type=bmh.ChecksumType.SHA256, format=bmh.ImageFormat.QCOW2)

    def state(self, key: meta.ObjectKey) -> S:
        return self.loop.host(key).status.provisioning.state

    def all_in(self, keys: Sequence[meta.ObjectKey], state: S) -> bool:
        return all(self.state(k) == state for k in keys)

    def timed(self, goal: object, **kwargs: float) -> float:
        started = time.monotonic()
        self.loop.run_until(goal, **kwargs)  # type: ignore[arg-type]
        return time.monotonic() - started
