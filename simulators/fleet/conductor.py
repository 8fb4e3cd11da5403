"""An Ironic-like conductor for the fleet model: the node table and the operations on it.

BMO's Ironic provisioner talks to Ironic, and Ironic drives the hardware. This module is the
simulated Ironic: a node registry (what `GET /v1/nodes` lists), provision-state verbs (manage,
inspect, provide, active, deleted, adopt, abort) and power changes, each run as a simpy process
that works the machine through its BMC the way Ironic's conductor does: set the boot device,
insert virtual media, power cycle, wait for the agent's heartbeat (with Ironic's callback
timeouts), run the agent's step, reboot into the OS. BMC errors are retried as Ironic's clients
retry them (timeouts and 503 with `bmc_retries`, power-on 409 with the conflict retries); what
still fails ends the operation in Ironic's failure state (`inspect failed`, `clean failed`,
`deploy failed`, `error`, or back to `enroll`) with a `last_error` in Ironic's words.

Verbs are synchronous and quick, like API calls: they validate the node's state and lock, start
the process and return. A node with an operation running is locked (HTTP 409, "host busy" to
BMO) except in the *wait* states, where Ironic holds no lock. The conductor also keeps what
PROVISIONING_LIMIT needs: the set of nodes in busy states that do not boot from virtual media
(bmo.md 6.1), maintained on every state change instead of by listing.

The provisioner port adapter (provisioner.py) maps BMO's calls onto these verbs, as upstream's
ironic provisioner does; the physical model (machine.py, bmc.py) stays separate so a later
provisioning engine can drive the same machines through BMC and agent ports instead.
"""

import random
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import simpy

from metalcubed.simulators.fleet import scenario
from metalcubed.simulators.fleet.bmc import Bmc, Reply
from metalcubed.simulators.fleet.machine import BootDevice, Machine, Stage, StepResult


class NodeState(StrEnum):
    """Ironic provision states (the strings Ironic's API shows)."""

    ENROLL = "enroll"
    VERIFYING = "verifying"
    MANAGEABLE = "manageable"
    INSPECTING = "inspecting"
    INSPECT_WAIT = "inspect wait"
    INSPECT_FAILED = "inspect failed"
    CLEANING = "cleaning"
    CLEAN_WAIT = "clean wait"
    CLEAN_FAILED = "clean failed"
    AVAILABLE = "available"
    DEPLOYING = "deploying"
    DEPLOY_WAIT = "wait call-back"
    DEPLOY_FAILED = "deploy failed"
    ACTIVE = "active"
    DELETING = "deleting"
    ERROR = "error"
    ADOPTING = "adopting"


BUSY_STATES = frozenset(
    {
        NodeState.CLEANING,
        NodeState.CLEAN_WAIT,
        NodeState.INSPECTING,
        NodeState.INSPECT_WAIT,
        NodeState.DEPLOYING,
        NodeState.DEPLOY_WAIT,
        NodeState.DELETING,
    }
)
"""The states upstream's HasCapacity counts as busy (bmo.md 6.1)."""

WAIT_STATES = frozenset({NodeState.INSPECT_WAIT, NodeState.CLEAN_WAIT, NodeState.DEPLOY_WAIT})
_READS = frozenset({"get_power_state"})
"""BMC requests that are GETs (retried on 5xx); the rest are actions (POST/PATCH)."""
_DEPLOY_STATES = frozenset({NodeState.DEPLOYING, NodeState.DEPLOY_WAIT})
_CLEAN_STATES = frozenset({NodeState.CLEANING, NodeState.CLEAN_WAIT})

INSPECT_TIMEOUT_MESSAGE = "timeout reached while inspecting the node"
CLEAN_TIMEOUT_MESSAGE = (
    "Timeout reached while cleaning the node. Please check if the ramdisk responsible for the "
    "cleaning is running on the node."
)


class ConductorError(Exception):
    """An API request the conductor refused; `status` is the HTTP status Ironic answers."""

    status = 400


class NodeLocked(ConductorError):
    status = 409

    def __init__(self, node: "Node") -> None:
        super().__init__(f"Node {node.uuid} is locked by host conductor, please retry later")


class InvalidState(ConductorError):
    status = 400

    def __init__(self, node: "Node", verb: str) -> None:
        super().__init__(
            f'The requested action "{verb}" can not be performed on node "{node.uuid}" while it '
            f'is in state "{node.state}".'
        )


class ConcurrencyLimit(ConductorError):
    status = 503

    def __init__(self, action: str, limit: int) -> None:
        super().__init__(
            f"Cannot start {action}: the conductor already runs {limit} (max_concurrent_{action})"
        )


class DuplicateNode(ConductorError):
    status = 409

    def __init__(self, address: str, owner: str) -> None:
        super().__init__(f"BMC {address} is already enrolled as node {owner}")


@dataclass(slots=True, eq=False, kw_only=True)
class Node:
    """One enrolled node (Ironic's node record)."""

    uuid: str
    name: str
    address: str
    machine: Machine
    bmc: Bmc
    virtual_media: bool
    """The boot interface is virtual media (exempt from PROVISIONING_LIMIT)."""
    state: NodeState = NodeState.ENROLL
    last_error: str = ""
    powered: bool | None = None
    """Ironic's idea of the power state (None until verified)."""
    target_power: bool | None = None
    power_error: str = ""
    task: simpy.Process | None = None
    automated_clean: bool = True
    inspected: bool = False
    instance_url: str = ""
    instance_size: int = 0
    instance_format: str = ""
    deployed_url: str = ""


class ConductorStats:
    __slots__ = ("busy", "failures", "peak_busy", "peak_pxe_busy", "pxe_busy", "refused", "verbs")

    def __init__(self) -> None:
        self.verbs: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        """Requests refused for a conductor limit (max_concurrent_clean/deploy), by action."""
        self.pxe_busy = 0
        self.busy = 0
        self.peak_pxe_busy = 0
        self.peak_busy = 0


class Conductor:
    """The node table and the conductor's workers (simpy processes)."""

    def __init__(
        self,
        env: simpy.Environment,
        settings: scenario.ProvisionerSettings,
        *,
        rng: random.Random,
    ) -> None:
        self._env = env
        self._settings = settings
        self._rng = rng
        self._by_uuid: dict[str, Node] = {}
        self._by_name: dict[str, Node] = {}
        self._by_address: dict[str, Node] = {}
        self._busy_pxe: set[str] = set()
        self._deploying = 0
        self._cleaning = 0
        self.stats = ConductorStats()

    # --- the node table ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_uuid)

    def nodes(self) -> list[Node]:
        """Every enrolled node, in enrollment order."""
        return list(self._by_uuid.values())

    def find(self, ident: str) -> Node | None:
        """A node by uuid or name."""
        return self._by_uuid.get(ident) or self._by_name.get(ident)

    def create(
        self, *, name: str, address: str, machine: Machine, bmc: Bmc, virtual_media: bool
    ) -> Node:
        owner = self._by_address.get(address)
        if owner is not None:
            raise DuplicateNode(address, owner.uuid)
        node_uuid = "%08x-%04x-4%03x-8%03x-%012x" % (  # noqa: UP031 - uuid layout
            self._rng.getrandbits(32),
            self._rng.getrandbits(16),
            self._rng.getrandbits(12),
            self._rng.getrandbits(12),
            self._rng.getrandbits(48),
        )
        node = Node(
            uuid=node_uuid,
            name=name,
            address=address,
            machine=machine,
            bmc=bmc,
            virtual_media=virtual_media,
        )
        self._by_uuid[node_uuid] = node
        self._by_name[name] = node
        self._by_address[address] = node
        self.stats.verbs["create"] += 1
        return node

    def delete(self, node: Node) -> None:
        """Remove the node (aborting what runs on it); the machine is left as it is."""
        self._stop_task(node)
        self._set_state(node, NodeState.ENROLL)
        self._by_uuid.pop(node.uuid, None)
        self._by_name.pop(node.name, None)
        if self._by_address.get(node.address) is node:
            del self._by_address[node.address]
        self.stats.verbs["delete"] += 1

    def has_pxe_capacity(self, name: str, limit: int) -> bool:
        """Upstream HasCapacity for a PXE node: already busy, or fewer than `limit` busy."""
        return name in self._busy_pxe or len(self._busy_pxe) < limit

    def locked(self, node: Node) -> bool:
        return (
            node.task is not None and node.task.is_alive and node.state not in WAIT_STATES
        )

    # --- provision-state verbs ------------------------------------------------------------------

    def manage(self, node: Node) -> None:
        self._check_lock(node)
        state = node.state
        self.stats.verbs["manage"] += 1
        if state == NodeState.ENROLL:
            node.last_error = ""
            self._set_state(node, NodeState.VERIFYING)
            self._start(node, self._verify(node))
        elif state in (
            NodeState.INSPECT_FAILED,
            NodeState.CLEAN_FAILED,
            NodeState.AVAILABLE,
            NodeState.MANAGEABLE,
        ):
            self._set_state(node, NodeState.MANAGEABLE)
        else:
            raise InvalidState(node, "manage")

    def inspect(self, node: Node) -> None:
        self._check_lock(node)
        if node.state != NodeState.MANAGEABLE:
            raise InvalidState(node, "inspect")
        self.stats.verbs["inspect"] += 1
        node.last_error = ""
        node.inspected = False
        self._set_state(node, NodeState.INSPECTING)
        self._start(node, self._inspect(node))

    def provide(self, node: Node) -> None:
        self._check_lock(node)
        if node.state != NodeState.MANAGEABLE:
            raise InvalidState(node, "provide")
        if node.automated_clean:
            self._reserve_clean()
        self.stats.verbs["provide"] += 1
        node.last_error = ""
        if not node.automated_clean:
            self._set_state(node, NodeState.AVAILABLE)
            return
        self._set_state(node, NodeState.CLEANING)
        self._start(node, self._clean(node))

    def deploy(self, node: Node, *, url: str, size_bytes: int, image_format: str) -> None:
        self._check_lock(node)
        if node.state not in (NodeState.AVAILABLE, NodeState.DEPLOY_FAILED):
            raise InvalidState(node, "active")
        if self._deploying >= self._settings.max_concurrent_deploy:
            self.stats.refused["deploy"] += 1
            raise ConcurrencyLimit("deploy", self._settings.max_concurrent_deploy)
        self.stats.verbs["active"] += 1
        node.last_error = ""
        node.instance_url, node.instance_size, node.instance_format = (
            url,
            size_bytes,
            image_format,
        )
        self._set_state(node, NodeState.DEPLOYING)
        self._start(node, self._deploy(node))

    def undeploy(self, node: Node) -> None:
        """The `deleted` verb: tear down the instance, then clean (if enabled)."""
        if node.state not in WAIT_STATES:
            self._check_lock(node)
        if node.state not in (
            NodeState.ACTIVE,
            NodeState.DEPLOY_FAILED,
            NodeState.DEPLOY_WAIT,
            NodeState.ERROR,
        ):
            raise InvalidState(node, "deleted")
        if node.automated_clean:
            self._reserve_clean()
        self._stop_task(node)
        self.stats.verbs["deleted"] += 1
        node.last_error = ""
        self._set_state(node, NodeState.DELETING)
        self._start(node, self._undeploy(node))

    def adopt(self, node: Node) -> None:
        self._check_lock(node)
        if node.state != NodeState.MANAGEABLE:
            raise InvalidState(node, "adopt")
        self.stats.verbs["adopt"] += 1
        node.deployed_url = node.machine.disk_image
        self._set_state(node, NodeState.ACTIVE)

    def abort(self, node: Node) -> None:
        failed = {
            NodeState.INSPECT_WAIT: NodeState.INSPECT_FAILED,
            NodeState.CLEAN_WAIT: NodeState.CLEAN_FAILED,
            NodeState.DEPLOY_WAIT: NodeState.DEPLOY_FAILED,
        }.get(node.state)
        if failed is None:
            raise InvalidState(node, "abort")
        self.stats.verbs["abort"] += 1
        self._stop_task(node)
        self._fail(node, failed, "Operation aborted by request")

    def set_power(self, node: Node, on: bool) -> None:
        self._check_lock(node)
        if node.state in WAIT_STATES:
            raise NodeLocked(node)
        self.stats.verbs["power on" if on else "power off"] += 1
        node.power_error = ""
        node.target_power = on
        self._start(node, self._power_change(node, on))

    # --- bookkeeping -----------------------------------------------------------------------------

    def _check_lock(self, node: Node) -> None:
        if self.locked(node):
            raise NodeLocked(node)

    def _reserve_clean(self) -> None:
        if self._cleaning >= self._settings.max_concurrent_clean:
            self.stats.refused["clean"] += 1
            raise ConcurrencyLimit("clean", self._settings.max_concurrent_clean)

    def _set_state(self, node: Node, state: NodeState) -> None:
        old = node.state
        if old == state:
            return
        node.state = state
        stats = self.stats
        if old in BUSY_STATES:
            stats.busy -= 1
            self._busy_pxe.discard(node.name)
        if state in BUSY_STATES:
            stats.busy += 1
            if not node.virtual_media:
                self._busy_pxe.add(node.name)
        self._deploying += (state in _DEPLOY_STATES) - (old in _DEPLOY_STATES)
        self._cleaning += (state in _CLEAN_STATES) - (old in _CLEAN_STATES)
        stats.pxe_busy = len(self._busy_pxe)
        stats.peak_pxe_busy = max(stats.peak_pxe_busy, stats.pxe_busy)
        stats.peak_busy = max(stats.peak_busy, stats.busy)

    def _fail(self, node: Node, state: NodeState, message: str) -> None:
        node.last_error = message
        self.stats.failures[state.value] += 1
        self._set_state(node, state)

    def _start(self, node: Node, body: Generator[simpy.Event, Any, None]) -> None:
        node.task = self._env.process(self._guard(node, body))

    def _guard(
        self, node: Node, body: Generator[simpy.Event, Any, None]
    ) -> Generator[simpy.Event, Any, None]:
        try:
            yield from body
        except simpy.Interrupt:
            pass
        finally:
            if node.task is self._env.active_process:
                node.task = None

    def _stop_task(self, node: Node) -> None:
        task = node.task
        if task is not None and task.is_alive and task is not self._env.active_process:
            task.interrupt("aborted")
        node.task = None

    # --- talking to the hardware ----------------------------------------------------------------

    def _call(self, node: Node, kind: str) -> Generator[simpy.Event, Any, Reply]:
        """One BMC request with the client's retries, as sushy and Ironic retry: a request that
        timed out is retried (connection attempts); a 5xx only when the request was a read
        (sushy retries server-side errors on GET); a 409 on power-on with Ironic's conflict
        retries. Anything else fails the step."""
        settings = self._settings
        attempts = settings.bmc_retries
        conflicts = settings.power_conflict_retries
        read = kind in _READS
        while True:
            reply = yield from node.bmc.request(kind, node.machine)
            if reply == Reply.OK:
                return reply
            retryable = reply == Reply.TIMEOUT or (
                read and reply in (Reply.SERVER_ERROR, Reply.UNAVAILABLE)
            )
            if retryable and attempts > 1:
                attempts -= 1
                yield self._env.timeout(settings.bmc_retry_interval_s)
                continue
            if reply == Reply.CONFLICT and conflicts > 1:
                conflicts -= 1
                yield self._env.timeout(settings.power_conflict_interval_s)
                continue
            return reply

    def _power(self, node: Node, on: bool) -> Generator[simpy.Event, Any, str]:
        """Power the machine on or off; "" or Ironic's error message."""
        machine = node.machine
        if machine.powered == on and node.powered == on:
            return ""
        word = "power on" if on else "power off"
        reply = yield from self._call(node, "power_on" if on else "power_off")
        if reply != Reply.OK:
            return f"Failed to set node power state to {word}: {reply.describe()}"
        yield machine.power_on() if on else machine.power_off()
        reply = yield from self._call(node, "get_power_state")
        if reply != Reply.OK:
            return f"Failed to get power state of node {node.uuid}: {reply.describe()}"
        node.powered = on
        return ""

    def _agent_usable(self, node: Node) -> bool:
        """Fast track: an agent is up and heartbeating on the machine (not crashed)."""
        machine = node.machine
        return (
            self._settings.fast_track
            and machine.powered
            and machine.stage == Stage.RAMDISK
            and not machine.agent_crashed
        )

    def _boot_ramdisk(self, node: Node) -> Generator[simpy.Event, Any, str]:
        """Point the machine at the deploy ramdisk and (re)boot it; "" or an error.

        With fast track a running agent is reused: no boot device change, no power cycle.
        """
        machine = node.machine
        if self._agent_usable(node):
            return ""
        if node.virtual_media:
            reply = yield from self._call(node, "insert_media")
            if reply != Reply.OK:
                return f"Failed to insert virtual media: {reply.describe()}"
            machine.vmedia_inserted = True
        reply = yield from self._call(node, "set_boot_device")
        if reply != Reply.OK:
            return f"Failed to set boot device: {reply.describe()}"
        machine.boot_device = BootDevice.CD if node.virtual_media else BootDevice.NETWORK
        if machine.powered:
            error = yield from self._power(node, False)
            if error:
                return error
        error = yield from self._power(node, True)
        return error

    def _boot_disk(self, node: Node) -> Generator[simpy.Event, Any, str]:
        """Boot device back to disk, eject media: what ends every ramdisk session."""
        machine = node.machine
        reply = yield from self._call(node, "set_boot_device")
        if reply != Reply.OK:
            return f"Failed to set boot device: {reply.describe()}"
        machine.boot_device = BootDevice.DISK
        if machine.vmedia_inserted:
            reply = yield from self._call(node, "eject_media")
            if reply != Reply.OK:
                return f"Failed to eject virtual media: {reply.describe()}"
            machine.vmedia_inserted = False
        return ""

    def _end_ramdisk_session(self, node: Node) -> Generator[simpy.Event, Any, str]:
        """After inspection or cleaning: keep the agent (fast track) or boot from disk, off."""
        if self._settings.fast_track:
            return ""
        error = yield from self._boot_disk(node)
        error = error or (yield from self._power(node, False))
        return error

    def _await_agent(self, node: Node, deadline: float) -> Generator[simpy.Event, Any, bool]:
        ready = node.machine.agent_ready
        if not ready.triggered:
            remaining = deadline - self._env.now
            if remaining <= 0:
                return False
            yield ready | self._env.timeout(remaining)
        return ready.triggered

    def _await_step(
        self, step: simpy.Event, deadline: float
    ) -> Generator[simpy.Event, Any, StepResult | None]:
        if not step.triggered:
            remaining = deadline - self._env.now
            if remaining <= 0:
                return None
            yield step | self._env.timeout(remaining)
        if not step.triggered:
            return None
        result = step.value
        assert isinstance(result, StepResult)
        return result

    # --- operations (simpy processes) -----------------------------------------------------------

    def _verify(self, node: Node) -> Generator[simpy.Event, Any, None]:
        reply = yield from self._call(node, "get_power_state")
        if reply != Reply.OK:
            self._fail(
                node,
                NodeState.ENROLL,
                f"Failed to get power state for node {node.uuid}. Error: {reply.describe()}",
            )
            return
        node.powered = node.machine.powered
        self._set_state(node, NodeState.MANAGEABLE)

    def _inspect(self, node: Node) -> Generator[simpy.Event, Any, None]:
        error = yield from self._boot_ramdisk(node)
        if error:
            self._fail(node, NodeState.INSPECT_FAILED, error)
            return
        self._set_state(node, NodeState.INSPECT_WAIT)
        deadline = self._env.now + self._settings.inspect_timeout_s
        ready = yield from self._await_agent(node, deadline)
        result = (yield from self._await_step(node.machine.inspect(), deadline)) if ready else None
        if result is None:
            self._fail(node, NodeState.INSPECT_FAILED, INSPECT_TIMEOUT_MESSAGE)
            return
        self._set_state(node, NodeState.INSPECTING)
        node.inspected = True
        error = yield from self._end_ramdisk_session(node)
        if error:
            self._fail(node, NodeState.INSPECT_FAILED, error)
            return
        self._set_state(node, NodeState.MANAGEABLE)

    def _clean(self, node: Node) -> Generator[simpy.Event, Any, None]:
        self._set_state(node, NodeState.CLEANING)
        error = yield from self._boot_ramdisk(node)
        if error:
            self._fail(node, NodeState.CLEAN_FAILED, error)
            return
        self._set_state(node, NodeState.CLEAN_WAIT)
        deadline = self._env.now + self._settings.clean_timeout_s
        ready = yield from self._await_agent(node, deadline)
        result = (yield from self._await_step(node.machine.clean(), deadline)) if ready else None
        if result is None:
            self._fail(node, NodeState.CLEAN_FAILED, CLEAN_TIMEOUT_MESSAGE)
            return
        if result.error:
            self._fail(node, NodeState.CLEAN_FAILED, result.error)
            return
        node.machine.wipe()
        self._set_state(node, NodeState.CLEANING)
        error = yield from self._end_ramdisk_session(node)
        if error:
            self._fail(node, NodeState.CLEAN_FAILED, error)
            return
        self._set_state(node, NodeState.AVAILABLE)

    def _deploy(self, node: Node) -> Generator[simpy.Event, Any, None]:
        error = yield from self._boot_ramdisk(node)
        if error:
            self._fail(node, NodeState.DEPLOY_FAILED, error)
            return
        self._set_state(node, NodeState.DEPLOY_WAIT)
        deadline = self._env.now + self._settings.deploy_timeout_s
        ready = yield from self._await_agent(node, deadline)
        timeout_message = f"Timeout reached while waiting for callback for node {node.uuid}"
        if not ready:
            self._fail(node, NodeState.DEPLOY_FAILED, timeout_message)
            return
        write = node.machine.write_image(
            url=node.instance_url, size_bytes=node.instance_size, image_format=node.instance_format
        )
        result = yield from self._await_step(write, deadline)
        if result is None:
            self._fail(node, NodeState.DEPLOY_FAILED, timeout_message)
            return
        if result.error:
            self._fail(
                node,
                NodeState.DEPLOY_FAILED,
                f"Deploy step deploy.write_image failed on node {node.uuid}. {result.error}",
            )
            return
        self._set_state(node, NodeState.DEPLOYING)
        error = yield from self._boot_disk(node)
        error = error or (yield from self._power(node, False))
        error = error or (yield from self._power(node, True))
        if error:
            self._fail(node, NodeState.DEPLOY_FAILED, error)
            return
        node.deployed_url = node.instance_url
        self._set_state(node, NodeState.ACTIVE)

    def _undeploy(self, node: Node) -> Generator[simpy.Event, Any, None]:
        error = yield from self._power(node, False)
        error = error or (yield from self._boot_disk(node))
        if error:
            self._fail(node, NodeState.ERROR, f"Failed to tear down: {error}")
            return
        node.deployed_url = ""
        node.instance_url = ""
        if not node.automated_clean:
            self._set_state(node, NodeState.AVAILABLE)
            return
        yield from self._clean(node)

    def _power_change(self, node: Node, on: bool) -> Generator[simpy.Event, Any, None]:
        error = yield from self._power(node, on)
        node.target_power = None
        node.power_error = error
        if error:
            self.stats.failures["power"] += 1
