"""The lab's kubelet: a Node for every BareMetalHost that CAPM3 provisioned, as a real one would
register when the host boots its image.

Why: Cluster API core moves a Machine to Running only when the workload cluster has a Node
whose `spec.providerID` is the Machine's, and its MachineHealthCheck judges Nodes by their
Ready condition. The lab has no real kubelets; its "workload cluster" is the management API
server itself (CAPI reaches it through the `<cluster>-kubeconfig` Secret). This process plays
every host's kubelet, from what it can observe of the host:

- a host `provisioned` with an image and a Metal3Machine as consumer, powered on, gets a Node
  named after the host, labelled `metal3.io/uuid=<host uid>` (what CAPM3's bootstrap templates
  pass to kubelet `--node-labels`), Ready True, InternalIP/Hostname from the host's inventory.
  No providerID: CAPM3 (the Metal3Machine controller) sets it, finding the Node by that label;
- powered off: Ready Unknown (what the node lifecycle controller writes when a kubelet stops
  posting); powered on again after that: Ready True. A Node someone marked Ready False (a sick
  node, for MachineHealthCheck) stays so until the host is power-cycled: a reboot heals it;
- a deleted Node of a running host is registered again (a kubelet re-registers);
- the host deprovisioned (image cleared), released or gone: its Node is deleted.

It decides from the host and Node as they are (level-triggered, `plan`), over watches of both
kinds and one worker thread. Run it with `python -m metalcubed.controllers.kube.kubelet
--kubeconfig PATH` (`metalcubed kube start --capi` starts it as `lab-kubelet`) or embed
`LabKubelet(store).start()`.
"""

import argparse
import contextlib
import dataclasses
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from metalcubed.core import outcome, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta, node

PROCESS_NAME = "lab-kubelet"
RETRY_S = 0.5
log = logging.getLogger(__name__)


class Delete:
    """`plan`'s answer when the Node must go."""


DELETE = Delete()


def serving(host: bmh.BareMetalHost) -> bool:
    """The host runs a Metal3Machine's image (its kubelet would run)."""
    ref = host.spec.consumer_ref
    return (host.status.provisioning.state == bmh.ProvisioningState.PROVISIONED
            and host.spec.image is not None and ref is not None
            and ref.kind == "Metal3Machine" and host.metadata.deletion_timestamp is None)


def _ready(status: str, now: datetime) -> node.NodeCondition:
    reason, message = {
        "True": ("KubeletReady", "kubelet is posting ready status"),
        "Unknown": ("NodeStatusUnknown", "Kubelet stopped posting node status."),
    }[status]
    return node.NodeCondition(type="Ready", status=status, reason=reason, message=message,
                              last_heartbeat_time=now, last_transition_time=now)


def _with_ready(found: node.Node, status: str, now: datetime) -> node.Node:
    others = tuple(c for c in found.status.conditions if c.type != "Ready")
    return found.model_copy(update={"status": found.status.model_copy(
        update={"conditions": (*others, _ready(status, now))})})


def new_node(host: bmh.BareMetalHost, now: datetime) -> node.Node:
    """The Node a freshly booted host's kubelet registers."""
    addresses: list[node.NodeAddress] = []
    hardware = host.status.hardware
    for nic in (hardware.nics if hardware else ()):
        if nic.ip:
            addresses.append(node.NodeAddress(type="InternalIP", address=nic.ip))
    addresses.append(node.NodeAddress(type="Hostname", address=host.metadata.name))
    return node.Node(
        metadata=meta.ObjectMeta(name=host.metadata.name,
                                 labels={node.UUID_LABEL: host.metadata.uid or ""}),
        status=node.NodeStatus(conditions=(_ready("True", now),), addresses=tuple(addresses)))


def plan(host: bmh.BareMetalHost | None, found: node.Node | None, now: datetime, *,
         host_deleted: bool = False) -> node.Node | Delete | None:
    """What the host's kubelet does to its Node: a Node to create (no resourceVersion) or
    whose status to write, DELETE, or None (nothing). Only Nodes labelled `metal3.io/uuid`
    are ever deleted, and without a host only once it was seen deleted (`host_deleted`): a
    Node whose host has not been seen yet is left alone."""
    if found is not None and node.UUID_LABEL not in found.metadata.labels:
        return None  # not a Node of ours
    if host is None:
        return DELETE if found is not None and host_deleted else None
    if not serving(host):
        return DELETE if found is not None else None
    on = host.status.powered_on
    if found is None:
        return new_node(host, now) if on else None
    ready = next((c.status for c in found.status.conditions if c.type == "Ready"), None)
    if not on and ready != "Unknown":
        return _with_ready(found, "Unknown", now)
    if on and ready in ("Unknown", None):
        return _with_ready(found, "True", now)
    return None


@dataclasses.dataclass
class _Cache:
    hosts: dict[str, bmh.BareMetalHost] = dataclasses.field(default_factory=dict)
    """By Node name (= host name); the lab keeps host names unique across namespaces."""
    nodes: dict[str, node.Node] = dataclasses.field(default_factory=dict)
    deleted: set[str] = dataclasses.field(default_factory=set)
    """Hosts seen deleted (their Nodes go)."""


class LabKubelet:
    """Every host's kubelet, over one store (the workload cluster = the management one)."""

    def __init__(self, store: ports.Store, *, clock: Callable[[], datetime] | None = None,
                 namespace: str | None = None) -> None:
        self._store = store
        self._now = clock or (lambda: datetime.now(UTC))
        self._namespace = namespace
        self._cache = _Cache()
        self._lock = threading.Condition()
        self._dirty: dict[str, float] = {}  # node name -> not before (monotonic)
        self._watches: list[ports.Watch] = []
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.writes = 0
        """Node creates, status writes and deletes done (for benchmarks)."""

    def subscribe(self) -> "LabKubelet":
        """Watch hosts and Nodes; `drain` (or the thread of `start`) acts on what changed."""
        self._watches.append(self._store.watch(bmh.BareMetalHost, self._on_host,
                                               namespace=self._namespace))
        self._watches.append(self._store.watch(node.Node, self._on_node))
        return self

    def drain(self) -> int:
        """Act on every Node due now, on the caller's thread (tests, embedding); returns how
        many passes ran. A failed pass is due again after RETRY_S."""
        passes = 0
        while True:
            with self._lock:
                now = time.monotonic()
                due = [n for n, at in self._dirty.items() if at <= now]
                for name in due:
                    del self._dirty[name]
            if not due:
                return passes
            for name in due:
                passes += 1
                self._sync_logged(name)

    def start(self) -> "LabKubelet":
        self.subscribe()
        self._thread = threading.Thread(target=self._run, name="lab-kubelet", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        for w in self._watches:
            w.stop()
        with self._lock:
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _on_host(self, event: ports.WatchEvent[bmh.BareMetalHost]) -> None:
        name = event.object.metadata.name
        with self._lock:
            if event.type == ports.WatchEventType.DELETED:
                self._cache.hosts.pop(name, None)
                self._cache.deleted.add(name)
            else:
                self._cache.hosts[name] = event.object
                self._cache.deleted.discard(name)
            self._mark(name, 0.0)

    def _on_node(self, event: ports.WatchEvent[node.Node]) -> None:
        name = event.object.metadata.name
        with self._lock:
            if event.type == ports.WatchEventType.DELETED:
                self._cache.nodes.pop(name, None)
            else:
                self._cache.nodes[name] = event.object
            self._mark(name, 0.0)

    def _mark(self, name: str, delay_s: float) -> None:
        due = time.monotonic() + delay_s
        self._dirty[name] = min(self._dirty.get(name, due), due)
        self._lock.notify()

    def _next(self) -> str | None:
        with self._lock:
            while not self._stopped.is_set():
                now = time.monotonic()
                ready = [n for n, due in self._dirty.items() if due <= now]
                if ready:
                    name = min(ready, key=self._dirty.__getitem__)
                    del self._dirty[name]
                    return name
                wait = min(self._dirty.values(), default=now + 1.0) - now
                self._lock.wait(timeout=max(0.01, min(wait, 1.0)))
            return None

    def _run(self) -> None:
        while (name := self._next()) is not None:
            self._sync_logged(name)

    def _sync_logged(self, name: str) -> None:
        try:
            self.sync(name)
        except (outcome.Conflict, outcome.TransientError, outcome.NotFound) as exc:
            log.info("node %s: %s; again in %.1f s", name, exc, RETRY_S)
            with self._lock:
                self._mark(name, RETRY_S)
        except Exception:
            log.exception("node %s: unexpected error", name)
            with self._lock:
                self._mark(name, RETRY_S * 4)

    def sync(self, name: str) -> None:
        """One level-triggered pass for the Node `name` from the cached host and Node."""
        with self._lock:
            host = self._cache.hosts.get(name)
            found = self._cache.nodes.get(name)
            deleted = name in self._cache.deleted
        action = plan(host, found, self._now(), host_deleted=deleted)
        if action is None:
            return
        if isinstance(action, Delete):
            assert found is not None
            log.info("node %s: host gone or deprovisioned, deleting the Node", name)
            with contextlib.suppress(outcome.NotFound):
                self._store.delete(node.Node, found.key)
        elif found is None:
            log.info("node %s: host booted, registering the Node", name)
            created = self._store.create(action)
            if created.ready() is None:  # a server that dropped the status on create
                self._store.update_status(created.model_copy(update={"status": action.status}))
                self.writes += 1
        else:
            log.info("node %s: Ready %s", name, action.status.conditions[-1].status)
            self._store.update_status(action)
        self.writes += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="metalcubed-lab-kubelet", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--namespace", default=None,
                        help="only hosts of this namespace (default: all)")
    args = parser.parse_args(argv)
    if not args.kubeconfig.is_file():
        print(f"--kubeconfig: {args.kubeconfig} is not a file", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from kubernetes import config as kconfig

    from metalcubed.controllers.kube import store as kube_store

    api = kconfig.new_client_from_config(config_file=str(args.kubeconfig))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    kubelet = LabKubelet(kube_store.K8sStore(api), namespace=args.namespace).start()
    log.info("lab kubelet running (hosts in %s)", args.namespace or "all namespaces")
    done.wait()
    kubelet.stop()
    api.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
