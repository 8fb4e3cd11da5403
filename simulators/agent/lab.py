"""The engine's side of a lab on 127.0.0.1: image server, lookup service, emulated agents.

`EngineLab` starts what the provisioning engine needs besides BMCs, all on loopback, and
builds the engine over them:

- an image server holding the deploy ISO (the BMC fetches it on virtual-media insert) and
  whatever OS images the caller adds;
- the node table and its HTTP lookup service, where agents look their node up and heartbeat;
- the agent emulator serving every agent's API over HTTP, attached to the caller's emulated
  hosts (`attach`), heartbeating from a background thread;
- `engine`: the ProvisionerFactory over the caller's BMC drivers, the HTTP agent client and the
  node table, on the wall clock.

The BMC emulators (Redfish, IPMI) stay the caller's: `metalcubed devenv` and the hardware tests
start them and pass a `DriverFor` over the real drivers; in-process rigs pass the Sim one.
Use as a context manager or call `start()`/`stop()`; everything started is stopped.
"""

import dataclasses
from collections.abc import Callable, Collection

from metalcubed.controllers import agent_client, memory
from metalcubed.core import ports
from metalcubed.core.api import meta
from metalcubed.core.provisioning import context, engine
from metalcubed.simulators import hostmodel, imageserver
from metalcubed.simulators.agent import emulator, lookup, server

DEPLOY_ISO = "ipa.iso"


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
        deploy_iso: bytes = b"metalcubed deploy ramdisk ISO\n" * 64,
    ) -> None:
        self.clock = clock or memory.WallClock()
        self.images = imageserver.ImageServer()
        self.table = lookup.LockedNodeTable(clock=self.clock, agent_timeout_s=agent_timeout_s)
        self.lookup = lookup.LookupService(self.table, heartbeat_timeout_s=agent_timeout_s)
        self._drivers = drivers
        self._config = config or context.EngineConfig()
        self._timing = timing or emulator.AgentTiming(heartbeat_s=1.0)
        self._busy_hosts = busy_hosts
        self._deploy_iso = deploy_iso
        self.agents: emulator.AgentEmulator | None = None
        self.api: server.AgentServer | None = None
        self.engine: engine.Engine | None = None

    def start(self) -> "EngineLab":
        self.images.start()
        iso_url = self.images.add(DEPLOY_ISO, self._deploy_iso)
        self.lookup.start()
        self.agents = emulator.AgentEmulator(
            conductor=lookup.HttpConductor(self.lookup.url),
            deploy_iso_urls={iso_url},
            timing=self._timing,
        )
        self.api = server.AgentServer(self.agents)
        self.api.start()
        self.agents.start()
        config = self._config
        if not config.deploy_iso_url:
            config = dataclasses.replace(config, deploy_iso_url=iso_url)
        self.engine = engine.Engine(
            drivers=self._drivers,
            agents=agent_client.HttpAgent(),
            nodes_port=self.table,
            clock=self.clock,
            busy_hosts=self._busy_hosts,
            config=config,
        )
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
        self.lookup.stop()
        self.images.stop()

    def __enter__(self) -> "EngineLab":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
