"""The engine's node table: the little it must remember that the hardware cannot tell it.

The engine decides each step from what it observes (power, boot override, virtual media, the
agent's latest command). Three facts are not observable, and Ironic keeps them in its node
table; so does the engine, in a `Node` record behind the `Nodes` port:

- identity: the node id (status.provisioning.ID), the MACs and BMC address an agent is
  matched by when it comes up (Ironic's ports and lookup);
- `deployed`: which image the host's disk holds (Ironic's instance_info); after the host
  reboots into it the agent is gone and nothing on the BMC says what was written;
- `wait`: what the engine asked the hardware to do and when (booted the ramdisk, rebooted to
  apply BIOS settings, asked for a soft power off), only so that it can give up after a
  timeout and not power cycle a host that is already booting (Ironic's "wait" states).

Restart-safe by construction: registration (called on every reconcile) re-creates a missing
record, adopt re-marks a provisioned host as deployed, and a lost `wait` costs one extra reboot.
The memory implementation here is what the fleet model and the lab use; a cluster deployment
can keep the same records in a ConfigMap.

The table is also the agents' side of the lookup (Ironic's lookup and heartbeat API): an agent
that comes up looks its node up by MAC (or BMC address) and then heartbeats with the URL it
listens on; `agent()` hands the engine the endpoint of the latest heartbeat.

Agent tokens (Ironic's agent_secret_token): each node holds at most one, either handed out by
the first lookup after the engine booted the ramdisk, or pre-generated into the host's
virtual-media ISO. The table only stores the opaque value the caller made (core makes no
secrets); controllers/lookup.py generates them, compares them in constant time and refuses a
heartbeat or command without the right one. `forget_agent` (called by the engine before it
boots the ramdisk, as Ironic wipes the token before a power action) drops the token and the
endpoint, so that the next agent's lookup gets a fresh one.
"""

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from metalcubed.core import agent, bmcaddress, ports
from metalcubed.core.api import meta


class Purpose(StrEnum):
    """Why the engine is waiting on the hardware."""

    INSPECT = "inspect"
    """Booted the ramdisk to inspect; waiting for the agent."""
    DEPLOY = "deploy"
    """Booted the ramdisk to write the image; waiting for the agent."""
    CLEAN = "clean"
    """Booted the ramdisk to clean; waiting for the agent."""
    BIOS = "bios"
    """Rebooted so that staged BIOS settings apply."""
    SOFT_POWER_OFF = "soft power off"
    """Asked for a graceful shutdown; escalate when it takes too long."""
    TEAR_DOWN = "tear down"
    """Deprovisioning is over (cleaned, deployment forgotten); powering the host off."""
    PREPARE = "prepare"
    """A firmware job (BIOS settings, firmware updates) while preparing (manual cleaning)."""
    SERVICE = "service"
    """A firmware job on a provisioned host (Ironic's servicing)."""
    RAID = "raid"
    """Software RAID clean steps by the agent while preparing (core/provisioning/raid.py)."""


RAMDISK_PURPOSES = frozenset({Purpose.INSPECT, Purpose.DEPLOY, Purpose.CLEAN, Purpose.RAID})


@dataclass(frozen=True, slots=True, kw_only=True)
class Wait:
    purpose: Purpose
    since: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Deployment:
    """What the host runs after provisioning."""

    image_url: str
    checksum: str = ""
    live_iso: bool = False
    """Booted from virtual media rather than written to disk."""
    adopted: bool = False
    """Recorded by adopt (externally provisioned, or a record rebuilt after a restart): the
    image is whatever the host already runs."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FirmwareJob:
    """A firmware job in progress (Ironic's manual-cleaning or service steps): BIOS settings,
    then firmware updates one by one. Hardware cannot say which of a job's updates were already
    flashed, nor why it failed, so the record holds both (core/provisioning/firmware.py)."""

    purpose: Purpose
    """PREPARE or SERVICE."""
    settings: tuple[tuple[str, str], ...] = ()
    """BIOS attribute values to apply (name, value as text)."""
    updates: tuple[tuple[str, str], ...] = ()
    """Firmware updates to flash in order (component, image URL)."""
    since: datetime
    settings_done: bool = False
    updates_done: int = 0
    """How many of `updates` are flashed."""
    task_id: str = ""
    """The BMC's task of `updates[updates_done]` once started."""
    failed: str = ""
    """Why the job failed ("" while it runs): Ironic's last_error in service/clean failed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ComponentVersions:
    """What the engine saw of one firmware component (HostFirmwareComponents status)."""

    component: str
    initial_version: str
    """The version first read from the BMC."""
    last_version_flashed: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    node_id: str
    name: str
    """`<namespace>~<name>` (upstream's Ironic node name)."""
    bmc_address: str
    """`bmc_identity` of the host's BMC: what an agent reports as its BMC address."""
    macs: tuple[str, ...] = ()
    """Lower-case MACs an agent may be matched by."""
    deployed: Deployment | None = None
    wait: Wait | None = None
    firmware_job: FirmwareJob | None = None
    firmware: tuple[ComponentVersions, ...] = ()
    """Per component, the initial version and the last update the engine flashed."""


class Nodes(Protocol):
    """The engine's records, one per host, and the agents' heartbeats.

    `get`/`put`/`delete` are quick and idempotent; a `put` replaces the whole record. Only the
    provisioner of a host writes its record (the workqueue runs one reconcile per host at a
    time); agents' heartbeats arrive concurrently and never touch records.
    """

    def get(self, node_id: str) -> Node | None: ...

    def put(self, node: Node) -> None: ...

    def delete(self, node_id: str) -> None:
        """Forget the record and its agent; a no-op when absent."""
        ...

    def agent(self, node_id: str) -> agent.AgentEndpoint | None:
        """The endpoint of the node's latest agent heartbeat, if recent enough to be alive."""
        ...

    def forget_agent(self, node_id: str) -> None:
        """The engine is about to boot the ramdisk: the running agent (if any) goes away.

        Drops its endpoint and its agent token; the next agent's lookup gets a new token.
        """
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Token:
    """A node's agent token (opaque here: made and compared in controllers/lookup.py)."""

    value: str
    pregenerated: bool
    """Put into the host's boot ISO, rather than handed out by a lookup."""


def node_id_for(key: meta.ObjectKey) -> str:
    """A stable node id for a host (a UUID, like Ironic's), derived from its namespace/name."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"metalcubed:node:{key.namespace}~{key.name}"))


def node_name(key: meta.ObjectKey) -> str:
    return f"{key.namespace}~{key.name}"


def bmc_identity(address: str) -> str:
    """`host:port` of a BMC address: what an agent on that host reports as its BMC address.

    Several Redfish systems can sit behind one emulator address; agents of such hosts are
    matched by MAC. Raises `SpecError` for an address that does not parse.
    """
    parsed = bmcaddress.parse(address)
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return f"{host}:{parsed.port}".lower()


def normal_mac(mac: str) -> str:
    return mac.strip().lower().replace("-", ":")


class NodeTable:
    """Memory `Nodes`, with the agents' lookup and heartbeat.

    Pure (no locks): runtimes that serve agents from other threads wrap it (see
    controllers/lookup.py). `agent_timeout_s` is how long a heartbeat keeps an agent
    alive; None keeps it until the node is deleted or a newer heartbeat replaces it.
    """

    def __init__(self, *, clock: ports.Clock, agent_timeout_s: float | None = None) -> None:
        self._clock = clock
        self._timeout = None if agent_timeout_s is None else timedelta(seconds=agent_timeout_s)
        self._nodes: dict[str, Node] = {}
        self._agents: dict[str, agent.AgentEndpoint] = {}
        self._tokens: dict[str, Token] = {}
        self._by_mac: dict[str, list[str]] = {}
        """MAC -> ids of the nodes that have it, oldest first: an agent's lookup is a dict
        read, not a scan of every node (thousands of agents boot in a fleet)."""

    # --- Nodes (the engine's side) -----------------------------------------------------------

    def get(self, node_id: str) -> Node | None:
        return self._nodes.get(node_id)

    def put(self, node: Node) -> None:
        macs = tuple(normal_mac(m) for m in node.macs)
        old = self._nodes.get(node.node_id)
        if old is None or old.macs != macs:
            self._unindex(old)
            for mac in macs:
                self._by_mac.setdefault(mac, []).append(node.node_id)
        self._nodes[node.node_id] = replace(node, macs=macs)

    def _unindex(self, node: Node | None) -> None:
        if node is None:
            return
        for mac in node.macs:
            ids = self._by_mac.get(mac)
            if ids is not None and node.node_id in ids:
                ids.remove(node.node_id)
                if not ids:
                    del self._by_mac[mac]

    def delete(self, node_id: str) -> None:
        self._unindex(self._nodes.get(node_id))
        self._nodes.pop(node_id, None)
        self._agents.pop(node_id, None)
        self._tokens.pop(node_id, None)

    def forget_agent(self, node_id: str) -> None:
        self._agents.pop(node_id, None)
        self._tokens.pop(node_id, None)

    def agent(self, node_id: str) -> agent.AgentEndpoint | None:
        endpoint = self._agents.get(node_id)
        if endpoint is None:
            return None
        if self._timeout is not None and self._clock.now() - endpoint.heartbeat_at > self._timeout:
            return None
        token = self._tokens.get(node_id)
        return endpoint if token is None else replace(endpoint, token=token.value)

    def nodes(self) -> list[Node]:
        return list(self._nodes.values())

    # --- the agents' side ----------------------------------------------------------------------

    def lookup(self, macs: list[str], bmc_address: str = "") -> str | None:
        """The node an agent with these MACs (or this BMC address) belongs to.

        A MAC match wins; the BMC address is used only when exactly one node has it.
        """
        index = self._by_mac
        found = [index[mac][0] for mac in {normal_mac(m) for m in macs if m} if mac in index]
        if found:
            order = list(self._nodes)  # the oldest node wins, as a scan in insertion order
            return min(found, key=order.index) if len(found) > 1 else found[0]
        if bmc_address:
            address = bmc_address.lower()
            matches = [n.node_id for n in self._nodes.values() if n.bmc_address == address]
            if len(matches) == 1:
                return matches[0]
        return None

    def token(self, node_id: str) -> Token | None:
        return self._tokens.get(node_id)

    def take_token(self, node_id: str, fresh: str) -> str | None:
        """A lookup's token: `fresh` becomes the node's token when it has none and is returned
        (once); None when the node already has one (the lookup answers "******")."""
        if node_id in self._tokens or node_id not in self._nodes:
            return None
        self._tokens[node_id] = Token(value=fresh, pregenerated=False)
        return fresh

    def pregenerate_token(self, node_id: str, value: str) -> bool:
        """Replace the node's token by `value` (written into its boot ISO); False when the
        node is unknown. The agent of an earlier ISO can no longer heartbeat."""
        if node_id not in self._nodes:
            return False
        self._tokens[node_id] = Token(value=value, pregenerated=True)
        self._agents.pop(node_id, None)
        return True

    def heartbeat(self, node_id: str, *, url: str, boot_id: str) -> bool:
        """Record an agent's heartbeat; False for an unknown node (the agent looks up again)."""
        if node_id not in self._nodes:
            return False
        self._agents[node_id] = agent.AgentEndpoint(
            node_id=node_id, url=url, boot_id=boot_id, heartbeat_at=self._clock.now()
        )
        return True
