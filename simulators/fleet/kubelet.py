"""The workload clusters' kubelets in the fleet model: the lab kubelet's rules on simulated time.

A Node exists for a host CAPM3 provisioned while that host runs its image, exactly as the lab's
kubelet decides it (controllers/kube/kubelet.py `plan`, called here unchanged): registered
(named after the host, labelled `metal3.io/uuid=<host uid>`, Ready True, no providerID: CAPM3
sets it), Ready Unknown while the host is powered off and True again once on, deleted when the
host is deprovisioned, released or gone. What the fleet adds is time: a Node registers only once
the simulated server has booted its installed OS, plus `join_s` for the kubelet to start.

Outages are the scenario's fault (a remediation storm): a Node whose kubelet is down reports
Ready Unknown from the moment it goes down (as the node lifecycle controller marks a kubelet
that stopped posting) until it comes back, or until its host is powered off (a reboot, e.g.
CAPM3's remediation, restarts the kubelet), when the lab kubelet's rules apply again. A Node
recreated after remediation is a new kubelet (a new Node uid) and is not down.

The workload cluster is the management store, as in the lab. Writes are the kubelets', not a
controller's: they go to the raw store (not billed), deferred out of the watch delivery that
caused them.
"""

import contextlib
import functools
from collections.abc import Callable, Iterable
from datetime import datetime

import simpy

from metalcubed.controllers.kube import kubelet as lab_kubelet
from metalcubed.core import outcome, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta, node
from metalcubed.simulators.fleet.machine import Stage

BOOT_POLL_S = 5.0
"""How often a kubelet waiting for its server's OS looks again."""


class Kubelets:
    """Every simulated host's kubelet, over one store."""

    def __init__(self, env: simpy.Environment, *, store: ports.Store,
                 now: Callable[[], datetime], stage_of: Callable[[str], Stage | None],
                 join_s: float) -> None:
        self._env = env
        self._store = store
        self._now = now
        self._stage_of = stage_of
        self._join_s = join_s
        self._hosts: dict[str, bmh.BareMetalHost] = {}
        self._deleted: set[str] = set()
        self._down: dict[str, str] = {}
        """Node name -> uid of the Node whose kubelet is down."""
        self._pending: set[str] = set()
        self._up_since: dict[str, float] = {}
        """Host name -> simulated time its OS was first seen up (the kubelet starts then)."""
        self.registered = 0
        store.watch(bmh.BareMetalHost, self._on_host)
        store.watch(node.Node, self._on_node)

    # --- watches ---------------------------------------------------------------------------------

    def _on_host(self, event: ports.WatchEvent[bmh.BareMetalHost]) -> None:
        name = event.object.metadata.name
        if event.type == ports.WatchEventType.DELETED:
            self._hosts.pop(name, None)
            self._deleted.add(name)
        else:
            self._hosts[name] = event.object
            self._deleted.discard(name)
            if not event.object.status.powered_on:
                self._down.pop(name, None)  # a power cycle restarts a wedged kubelet
        self._later(name, 0.0)

    def _on_node(self, event: ports.WatchEvent[node.Node]) -> None:
        if event.type == ports.WatchEventType.DELETED:
            name = event.object.metadata.name
            self._down.pop(name, None)
            self._later(name, 0.0)  # a running host's kubelet registers again

    def _later(self, name: str, delay_s: float) -> None:
        if name in self._pending:
            return
        self._pending.add(name)
        self._env.timeout(delay_s).callbacks.append(lambda _e: self._sync(name))

    # --- one level-triggered pass per Node -------------------------------------------------------

    def _get(self, name: str) -> node.Node | None:
        try:
            return self._store.get(node.Node, meta.ObjectKey("", name))
        except outcome.NotFound:
            return None

    def _sync(self, name: str) -> None:
        self._pending.discard(name)
        store = self._store
        found = self._get(name)
        if found is not None and self._down.get(name) == found.metadata.uid:
            return  # its kubelet is down: nothing posts for it
        host = self._hosts.get(name)
        action = lab_kubelet.plan(host, found, self._now(), host_deleted=name in self._deleted)
        if action is None:
            return
        if isinstance(action, lab_kubelet.Delete):
            self._up_since.pop(name, None)
            if found is not None:
                with contextlib.suppress(outcome.NotFound):
                    store.delete(node.Node, found.key)
            return
        if found is None:
            if self._stage_of(name) != Stage.OS:
                self._up_since.pop(name, None)
                self._later(name, BOOT_POLL_S)  # the OS is not up yet: no kubelet
                return
            start = self._up_since.setdefault(name, self._env.now) + self._join_s
            if self._env.now < start:
                self._later(name, start - self._env.now)
                return
            created = store.create(action)
            self.registered += 1
            store.update_status(created.model_copy(update={"status": action.status}))
            return
        if action.ready() is True and self._stage_of(name) != Stage.OS:
            self._up_since.pop(name, None)
            self._later(name, BOOT_POLL_S)  # powered on again: Ready once the OS is back
            return
        store.update_status(action)

    # --- faults ----------------------------------------------------------------------------------

    def outage(self, names: Iterable[str], duration_s: float) -> list[str]:
        """Take the kubelets of these Nodes down for `duration_s`: Ready Unknown now, the lab
        rules again after. Returns the Nodes affected (those that exist)."""
        affected: list[str] = []
        now = self._now()
        for name in names:
            found = self._get(name)
            if found is None:
                continue
            self._down[name] = found.metadata.uid or ""
            affected.append(name)
            others = tuple(c for c in found.status.conditions if c.type != "Ready")
            unknown = node.NodeCondition(
                type="Ready", status="Unknown", reason="NodeStatusUnknown",
                message="Kubelet stopped posting node status.", last_heartbeat_time=now,
                last_transition_time=now)
            self._store.update_status(found.model_copy(update={"status": found.status.model_copy(
                update={"conditions": (*others, unknown)})}))
            self._env.timeout(duration_s).callbacks.append(
                functools.partial(self._recover, name, found.metadata.uid or ""))
        return affected

    def _recover(self, name: str, uid: str, _event: simpy.Event) -> None:
        if self._down.get(name) == uid:
            del self._down[name]
            self._later(name, 0.0)
