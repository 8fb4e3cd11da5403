"""The engine's side of a lab on 127.0.0.1: the manager's engine services and emulated agents.

`EngineLab` starts what the provisioning engine needs besides BMCs, all on loopback:

- `services`: the production `EngineServices` (controllers/engine_services.py): the node
  table, the agent API (Ironic v1 lookup and heartbeat with agent tokens) and the boot server,
  which builds each virtual-media host its own deploy ISO from the deploy kernel and ramdisk
  (with the API URL and a pre-generated agent token on its command line);
- an image server holding the deploy kernel and ramdisk (stand-ins), and whatever OS images
  the caller adds;
- the agent emulator serving every agent's API over HTTP (IPA's command API), attached to the
  caller's emulated hosts (`attach`), heartbeating from a background thread;
- `engine`: the services' engine over the caller's BMC drivers, on the wall clock.

The BMC emulators (Redfish, IPMI) stay the caller's: `metalcubed devenv` and the hardware tests
start them and pass a `DriverFor` over the real drivers; in-process rigs pass the Sim one.
Use as a context manager or call `start()`/`stop()`; everything started is stopped.
"""

from collections.abc import Callable, Collection

from metalcubed.controllers import engine_services, lookup, memory
from metalcubed.core import ports
from metalcubed.core.api import meta
from metalcubed.core.provisioning import context, engine
from metalcubed.simulators import hostmodel, imageserver
from metalcubed.simulators.agent import emulator, server
from metalcubed.simulators.agent import lookup as agent_lookup

DEPLOY_KERNEL = "ipa.kernel"
DEPLOY_RAMDISK = "ipa.initramfs"


class EngineLab:
    def __init__(
        self,
        *,
        drivers: engine.DriverFor,
        config: context.EngineConfig | None = None,
        timing: emulator.AgentTiming | None = None,
        busy_hosts: Callable[[], Collection[meta.ObjectKey]] | None = None,
        clock: ports.Clock | None = None,
        agent_timeout_s: float = 60.0,
        deploy_ramdisk: bytes = b"metalcubed deploy ramdisk\n" * 64,
    ) -> None:
        self.clock = clock or memory.WallClock()
        self.images = imageserver.ImageServer()
        self._drivers = drivers
        self._config = config or context.EngineConfig()
        self._timing = timing or emulator.AgentTiming(heartbeat_s=1.0)
        self._busy_hosts = busy_hosts
        self._agent_timeout_s = agent_timeout_s
        self._deploy_ramdisk = deploy_ramdisk
        self.services: engine_services.EngineServices | None = None
        self.agents: emulator.AgentEmulator | None = None
        self.api: server.AgentServer | None = None
        self.engine: engine.Engine | None = None

    @property
    def table(self) -> lookup.LockedNodeTable:
        if self.services is None:
            raise RuntimeError("start the lab first")
        return self.services.table

    @property
    def lookup(self) -> lookup.IronicApi:
        if self.services is None:
            raise RuntimeError("start the lab first")
        return self.services.api

    def start(self) -> "EngineLab":
        try:
            self.images.start()
            kernel_url = self.images.add(DEPLOY_KERNEL, b"metalcubed deploy kernel\n")
            ramdisk_url = self.images.add(DEPLOY_RAMDISK, self._deploy_ramdisk)
            config = self._config
            prebuilt = config.deploy_iso_url
            self.services = engine_services.EngineServices(
                clock=self.clock, drivers=self._drivers, store_hosts=None,
                busy_hosts=self._busy_hosts,
                config=engine_services.EngineServiceConfig(
                    deploy_iso_url=prebuilt,
                    deploy_kernel_url="" if prebuilt else kernel_url,
                    deploy_ramdisk_url="" if prebuilt else ramdisk_url,
                    provisioning_limit=config.provisioning_limit,
                    agent_timeout_s=self._agent_timeout_s,
                    engine=config,
                ),
            )
            self.services.start()
            self.agents = emulator.AgentEmulator(
                conductor=agent_lookup.HttpConductor(self.services.lookup_url),
                deploy_iso_urls={prebuilt} if prebuilt else (),
                deploy_iso_prefix=f"{self.services.boot_url}/boot/{self.services.boot.key}/",
                timing=self._timing,
            )
            self.api = server.AgentServer(self.agents)
            self.api.start()
            self.agents.start()
            self.engine = self.services.engine
        except BaseException:
            self.stop()
            raise
        return self

    def attach(self, host: hostmodel.HostModel, *, bmc_address: str) -> None:
        """Emulate the agent of `host` (served by a BMC emulator at `bmc_address`)."""
        if self.agents is None:
            raise RuntimeError("start the lab first")
        self.agents.attach(host, bmc_address=bmc_address)

    def stop(self) -> None:
        if self.agents is not None:
            self.agents.stop()
        if self.api is not None:
            self.api.stop()
        if self.services is not None:
            self.services.stop()
        self.images.stop()

    def __enter__(self) -> "EngineLab":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
