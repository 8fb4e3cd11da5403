"""An in-process rig for the provisioning engine: emulated hosts, Sim BMCs, emulated agents.

Everything is the real thing except the transports: `HostModel` servers (instant power
transitions), the Sim BMC capabilities over them (core.bmc Protocols), the agent emulator with
commands run inline and images fetched from a dict, the engine's node table on a manual clock.
No sockets, no threads, so every test is deterministic.
"""

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from metalcubed.core import clock, ports
from metalcubed.core.api import meta
from metalcubed.core.provisioning import context, engine, nodes
from metalcubed.simulators import hostmodel, hostmodel_bmc
from metalcubed.simulators.agent import emulator, inprocess, lookup

NS = "metal3"
DEPLOY_ISO = "http://images.test/ipa.iso"
IMAGE_URL = "http://images.test/os.qcow2"
IMAGE = b"an operating system image " * 1000
CREDS = ports.Credentials(username="admin", password="password")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Host:
    key: meta.ObjectKey
    address: str
    model: hostmodel.HostModel

    @property
    def mac(self) -> str:
        return self.model.inventory.nics[0].mac


class Rig:
    def __init__(self, *, config: context.EngineConfig | None = None) -> None:
        self.clock = clock.ManualClock()
        self.table = lookup.LockedNodeTable(clock=self.clock)
        self.bmcs = hostmodel_bmc.SimBmcs(credentials=CREDS)
        self.files: dict[str, bytes] = {IMAGE_URL: IMAGE}
        self.emulator = emulator.AgentEmulator(
            conductor=lookup.DirectConductor(self.table),
            deploy_iso_urls={DEPLOY_ISO},
            fetch=self._fetch,
            run=emulator.run_inline,
        )
        self.agents = inprocess.InProcessAgent(self.emulator)
        self.busy: set[meta.ObjectKey] = set()
        self.events: list[tuple[str, str]] = []
        self.engine = engine.Engine(
            drivers=hostmodel_bmc.driver_for(self.bmcs),
            agents=self.agents,
            nodes_port=self.table,
            clock=self.clock,
            busy_hosts=lambda: self.busy,
            config=config or context.EngineConfig(deploy_iso_url=DEPLOY_ISO),
        )
        self.hosts: list[Host] = []

    def _fetch(self, url: str) -> Iterator[bytes]:
        data = self.files.get(url)
        if data is None:
            raise OSError(f"HTTP Error 404: Not Found ({url})")
        yield data

    def add_host(self, *, scheme: str = "redfish-virtualmedia+http", name: str = "",
                 power: hostmodel.Power = hostmodel.Power.OFF,
                 virtual_time: bool = False) -> Host:
        """`virtual_time`: the host model's own timers (BMC reboots, flash time) run on the
        rig's manual clock instead of the monotonic clock."""
        index = len(self.hosts)
        model = hostmodel.HostModel(
            name=name or f"host-{index}", inventory=hostmodel.make_inventory(index), power=power,
            **({"clock": lambda: self.clock.now().timestamp()} if virtual_time else {}),
        )
        if scheme.startswith("ipmi"):
            address = f"ipmi://127.0.0.1:{6230 + index}"
        else:
            address = f"{scheme}://127.0.0.1:8000/redfish/v1/Systems/{model.uuid}"
        self.bmcs.add(address, model)
        self.emulator.attach(model, bmc_address=address)
        host = Host(key=meta.ObjectKey(NS, model.name), address=address, model=model)
        self.hosts.append(host)
        return host

    def data(self, host: Host, *, mac: str | None = None,
             credentials: ports.Credentials = CREDS, provisioner_id: str = "") -> ports.HostData:
        return ports.HostData(
            key=host.key,
            bmc_address=host.address,
            bmc_credentials=credentials,
            disable_certificate_verification=False,
            boot_mac_address=host.mac if mac is None else mac,
            provisioner_id=provisioner_id,
        )

    def prov(self, host: Host, **kwargs: object) -> engine.EngineProvisioner:
        return self.engine.new_provisioner(
            self.data(host, **kwargs),  # type: ignore[arg-type]
            lambda reason, message: self.events.append((reason, message)),
        )

    def node(self, host: Host) -> nodes.Node | None:
        return self.table.get(nodes.node_id_for(host.key))
