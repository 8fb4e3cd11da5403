"""Clusters in the fleet model: what the user does to Cluster API clusters, and what is checked.

`ClusterWorld` adds to a `Simulation` whose scenario has a `clusters` section:
- Cluster API core's controllers (capimachine.py, capisets.py), in the fleet runtime with a
  client of their own (Cluster API's manager is its own Deployment, with its own rate limiter);
- the kubelets (kubelet.py), which register a Node once a host CAPM3 provisioned runs its OS;
- the user: at `create_at` (default 0), per cluster, the objects `clusterctl generate cluster`
  would give (a bootstrap data Secret, Metal3Cluster, Cluster, Metal3MachineTemplate,
  MachineDeployment and, with `health_check`, a MachineHealthCheck whose unhealthy conditions
  are Ready Unknown/False; with `ipam`, an IPPool and a Metal3DataTemplate drawing from it);
  then the `steps`: scale the MachineDeployments, take kubelets down (the remediation storm),
  delete the Clusters. Writes are the user's (raw store, not billed).
- the checks, on every write as it lands: a host's consumer never changes from one
  Metal3Machine to another without being released first, and no Metal3Machine is the consumer
  of two hosts ("never a host with two consumers"); no address of a pool is held by two
  IPAddresses at once ("never an IP with two claims"). At the end: no object of a deleted
  cluster is left (Machines, Metal3Machines, Metal3Data and claims, IPClaims, IPAddresses,
  Nodes, rendered Secrets), no host names a consumer that is gone or keeps the cluster label.

The CAPM3 and IPAM controllers are not here: they are controllerset's, which the Simulation runs
for every scenario, exactly the reconcilers `metalcubed manager` runs.
"""

import contextlib
import random
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from metalcubed.core import outcome, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import capi, capiipam, ipam, meta, node
from metalcubed.core.api.capm3 import v1beta2 as v2
from metalcubed.simulators.fleet import capikinds as ck
from metalcubed.simulators.fleet import capimachine, capisets, clusterspec, scenario
from metalcubed.simulators.fleet.kubelet import Kubelets
from metalcubed.simulators.fleet.observer import Violations

LEAK_KINDS: tuple[type[meta.Resource], ...] = (
    capi.Cluster, capi.Machine, ck.MachineDeployment, ck.MachineSet, ck.MachineHealthCheck,
    v2.Metal3Cluster, v2.Metal3Machine, v2.Metal3MachineTemplate, v2.Metal3DataTemplate,
    v2.Metal3DataClaim, v2.Metal3Data, v2.Metal3Remediation, v2.Metal3RemediationTemplate,
    ipam.IPPool, ipam.IPClaim,
    ipam.IPAddress,
    capiipam.IPAddressClaim, capiipam.IPAddress, meta.Secret,
)
"""Kinds of which nothing labelled with, or owned under, a deleted cluster may be left."""
LEFTOVER_POLL_S = 30.0
"""How often the end of a run looks again for a deleted cluster's objects still going."""


@dataclass(slots=True)
class ClusterRecord:
    name: str
    replicas: int
    machines: set[str] = field(default_factory=set)
    """Machines of the cluster that exist and are not being deleted."""
    ready: set[str] = field(default_factory=set)
    """... of which Running with a healthy Node."""
    deleting: set[str] = field(default_factory=set)
    deleted: bool = False
    """The Cluster object is gone."""
    delete_requested: bool = False

    def running(self) -> bool:
        return (not self.delete_requested and not self.deleting
                and len(self.machines) == self.replicas == len(self.ready))


class ClusterWorld:
    """The clusters' user, kubelets and checks (see the module docstring)."""

    def __init__(self, env: simpy.Environment, *, spec: scenario.Scenario, store: ports.Store,
                 clock: ports.Clock, kubelets: Kubelets, violations: Violations,
                 rng: random.Random, on_change: Callable[[], None],
                 machine_sets: capisets.MachineSetReconciler,
                 health_checks: capisets.MachineHealthCheckReconciler) -> None:
        assert spec.clusters is not None
        self._env = env
        self._spec = spec
        self.settings = spec.clusters
        self._store = store
        self.store = store
        """The run's store (tests read the final state from it)."""
        self._clock = clock
        self.kubelets = kubelets
        self._violations = violations
        self._rng = rng
        self._on_change = on_change
        self.machine_sets = machine_sets
        self.health_checks = health_checks
        self.records = {name: ClusterRecord(name, self.settings.replicas)
                        for name in self.settings.names}
        self._created_at: dict[str, float] = {}
        self.running_s: list[float] = []
        """Per Machine: simulated seconds from its creation to its first Running."""
        self.machines_created = 0
        self.short_circuits = 0
        """MachineHealthChecks that went from remediating to TooManyUnhealthy."""
        self.outages: list[tuple[str, str, int]] = []
        """(step, cluster, Nodes taken down)."""
        self.fired: dict[str, float] = {}
        self.settled: dict[str, float] = {}
        """Step name -> simulated seconds from firing to its clusters settling."""
        self._watching: list[tuple[str, tuple[str, ...], clusterspec.ClusterWhen, float]] = []
        self._outages_open = 0
        self._consumer: dict[str, str] = {}
        """Host "ns/name" -> its consumer Metal3Machine "ns/name"."""
        self._held_by: dict[str, str] = {}
        """Metal3Machine "ns/name" -> the host naming it as consumer."""
        self._addresses: dict[tuple[str, str, str], str] = {}
        """(kind, pool, address) -> the IPAddress holding it."""
        self._condition: tuple[tuple[str, ...], clusterspec.ClusterWhen, simpy.Event] | None = None
        self.steps_done = False
        self.done = False
        self.leaked: Counter[str] = Counter()
        self._check_scheduled = False
        self._short: set[str] = set()
        """MachineHealthChecks short-circuited now."""
        store.watch(capi.Machine, self._on_machine)
        store.watch(capi.Cluster, self._on_cluster)
        store.watch(bmh.BareMetalHost, self._on_host)
        store.watch(ck.MachineHealthCheck, self._on_health_check)
        store.watch(ipam.IPAddress, self._on_address)
        store.watch(capiipam.IPAddress, self._on_address)
        env.process(self._run())

    # --- the user ----------------------------------------------------------------------------

    def _create_all(self) -> None:
        for name in self.settings.names:
            self._create(name)

    def _create(self, name: str) -> None:
        store = self._store
        settings = self.settings
        ns = settings.namespace
        image = self._spec.images[settings.image]
        labels = {capi.CLUSTER_NAME_LABEL: name}
        cluster = store.create(capi.Cluster(
            metadata=meta.ObjectMeta(name=name, namespace=ns, labels=labels),
            spec=capi.ClusterSpec(infrastructure_ref=capi.ContractVersionedObjectReference(
                api_group=capimachine.INFRA_GROUP, kind="Metal3Cluster", name=name))))
        owned = meta.ObjectMeta(namespace=ns, labels=labels, owner_references=(
            meta.OwnerReference(api_version=capi.API_VERSION, kind="Cluster", name=name,
                                uid=cluster.metadata.uid or ""),))
        store.create(v2.Metal3Cluster(
            metadata=meta.ObjectMeta(name=name, namespace=ns, labels=labels),
            spec=v2.Metal3ClusterSpec(control_plane_endpoint=v2.APIEndpoint(
                host=f"{name}.example.test", port=6443))))
        secret = f"{name}-userdata"
        store.create(meta.Secret(metadata=owned.model_copy(update={"name": secret}),
                                 string_data={"value": f"#cloud-config\n# {name}\n"}))
        data_template = None
        if settings.ipam is not None:
            start, end, gateway = settings.ipam.pool(settings.names.index(name))
            store.create(ipam.IPPool(
                metadata=owned.model_copy(update={"name": f"{name}-pool"}),
                spec=ipam.IPPoolSpec(cluster_name=name, name_prefix=f"{name}-pool",
                                     pools=(ipam.Pool(start=start, end=end),),
                                     prefix=settings.ipam.prefix, gateway=gateway)))
            store.create(v2.Metal3DataTemplate(
                metadata=owned.model_copy(update={"name": f"{name}-data"}),
                spec=v2.Metal3DataTemplateSpec(cluster_name=name, meta_data=v2.MetaData(
                    ip_addresses_from_pool=(v2.FromPool(key="local_ip",
                                                        name=f"{name}-pool"),)))))
            data_template = v2.ObjectRef(name=f"{name}-data", namespace=ns)
        store.create(v2.Metal3MachineTemplate(
            metadata=owned.model_copy(update={"name": f"{name}-workers"}),
            spec=v2.Metal3MachineTemplateSpec(template=v2.Metal3MachineTemplateResource(
                spec=v2.Metal3MachineSpec(data_template=data_template, image=v2.Image(
                    url=image.url, checksum=image.checksum or None,
                    disk_format=image.format.value if image.format.value in (
                        "raw", "qcow2", "vdi", "vmdk", "live-iso") else None))))))
        health = settings.health_check
        store.create(ck.MachineDeployment(
            metadata=owned.model_copy(update={"name": f"{name}-md"}),
            spec=ck.DeploymentSpec(
                cluster_name=name, replicas=settings.replicas,
                template=ck.MachineTemplate(bootstrap_data_secret=secret,
                                            infrastructure_template=f"{name}-workers"),
                remediation_max_in_flight=health.max_in_flight if health else None)))
        template = None
        if health is not None and health.reboot is not None:
            template = f"{name}-remediation"
            store.create(v2.Metal3RemediationTemplate(
                metadata=owned.model_copy(update={"name": template}),
                spec=v2.Metal3RemediationTemplateSpec(template=v2.Metal3RemediationTemplateResource(
                    spec=v2.Metal3RemediationSpec(strategy=v2.RemediationStrategy(
                        type="Reboot", retry_limit=health.reboot.retry_limit,
                        timeout_seconds=round(health.reboot.timeout_s)))))))
        if health is not None:
            conditions = tuple(ck.UnhealthyNodeCondition(type="Ready", status=status,
                                                         timeout_s=health.unhealthy_timeout_s)
                               for status in ("Unknown", "False"))
            store.create(ck.MachineHealthCheck(
                metadata=owned.model_copy(update={"name": f"{name}-mhc"}),
                spec=ck.HealthCheckSpec(cluster_name=name,
                                        node_startup_timeout_s=health.node_startup_timeout_s,
                                        unhealthy_node_conditions=conditions,
                                        max_unhealthy=health.max_unhealthy,
                                        remediation_template=template)))

    def _scale(self, name: str, replicas: int) -> None:
        key = meta.ObjectKey(self.settings.namespace, f"{name}-md")
        self.records[name].replicas = replicas
        for _ in range(10):
            try:
                md = self._store.get(ck.MachineDeployment, key)
                self._store.update(md.model_copy(update={
                    "spec": md.spec.model_copy(update={"replicas": replicas})}))
                return
            except outcome.Conflict:
                continue
            except outcome.NotFound:
                return
        raise outcome.TransientError(f"clusters: {key} kept changing under the scale")

    def _outage(self, step: clusterspec.ClusterStep, name: str) -> None:
        machines = self._store.list(capi.Machine, namespace=self.settings.namespace,
                                    label_selector=f"{capi.CLUSTER_NAME_LABEL}={name}")
        nodes = sorted(m.status.node_ref.name for m in machines
                       if m.status.node_ref is not None and m.metadata.deletion_timestamp is None)
        count = round(step.fraction * len(nodes))
        chosen = self._rng.sample(nodes, count) if count else []
        affected = self.kubelets.outage(chosen, step.duration_s)
        self.outages.append((step.name, name, len(affected)))
        self._outages_open += 1
        self._env.timeout(step.duration_s).callbacks.append(lambda _e: self._outage_over())

    def _outage_over(self) -> None:
        self._outages_open -= 1
        self._changed()

    def _delete(self, name: str) -> None:
        self.records[name].delete_requested = True
        with contextlib.suppress(outcome.NotFound):
            self._store.delete(capi.Cluster, meta.ObjectKey(self.settings.namespace, name))

    def _run(self) -> Generator[simpy.Event, Any, None]:
        env = self._env
        if self.settings.create_at_s > 0:
            yield env.timeout(self.settings.create_at_s)
        self._create_all()
        for step in self.settings.steps:
            selected = step.clusters or self.settings.names
            if step.at_s is not None:
                if step.at_s > env.now:
                    yield env.timeout(step.at_s - env.now)
            else:
                assert step.when is not None
                event = env.event()
                self._condition = (selected, step.when, event)
                self._changed()
                yield event
            if step.delay_s > 0:
                yield env.timeout(step.delay_s)
            self.fired[step.name] = env.now
            for name in selected:
                if step.action == clusterspec.ClusterAction.SCALE:
                    self._scale(name, step.replicas)
                elif step.action == clusterspec.ClusterAction.OUTAGE:
                    self._outage(step, name)
                else:
                    self._delete(name)
            until = (clusterspec.ClusterWhen.DELETED
                     if step.action == clusterspec.ClusterAction.DELETE
                     else clusterspec.ClusterWhen.RUNNING)
            self._watching.append((step.name, selected, until, env.now))
            self._changed()  # a step that changes nothing settles at once
        self.steps_done = True
        self._changed()

    # --- conditions --------------------------------------------------------------------------

    def _holds(self, names: tuple[str, ...], when: clusterspec.ClusterWhen) -> bool:
        if when == clusterspec.ClusterWhen.DELETED:
            return all(self.records[n].deleted for n in names)
        # A cluster deleted since counts as settled: nothing will make it run again.
        return all(self.records[n].running() or self.records[n].delete_requested
                   for n in names)

    def _changed(self) -> None:
        if not self._check_scheduled:
            self._check_scheduled = True
            self._env.timeout(0).callbacks.append(self._check)

    def _check(self, _event: simpy.Event) -> None:
        self._check_scheduled = False
        now = self._env.now
        if self._condition is not None:
            names, when, event = self._condition
            if self._holds(names, when) and self._outages_open == 0:
                self._condition = None
                event.succeed()
        still: list[tuple[str, tuple[str, ...], clusterspec.ClusterWhen, float]] = []
        for entry in self._watching:
            step, names, when, fired = entry
            if self._outages_open == 0 and self._holds(names, when):
                self.settled[step] = now - fired
            else:
                still.append(entry)
        self._watching = still
        settled = all(r.deleted or r.running() for r in self.records.values())
        done = self.steps_done and not still and settled and self._outages_open == 0
        if done and not self.done:
            if self._leftovers():
                # A deleted cluster's objects still going (finalizers): look again, as an
                # operator waiting for `kubectl get` to come back empty would.
                self._env.timeout(LEFTOVER_POLL_S).callbacks.append(lambda _e: self._changed())
                return
            self.done = True
            self._on_change()

    def _leftovers(self) -> bool:
        """Whether anything labelled with a deleted cluster is still in the store."""
        gone = [name for name, r in self.records.items() if r.deleted]
        for name in gone:
            selector = f"{capi.CLUSTER_NAME_LABEL}={name}"
            for kind in LEAK_KINDS:
                if self._store.list(kind, namespace=self.settings.namespace,
                                    label_selector=selector):
                    return True
        return False

    # --- watches -----------------------------------------------------------------------------

    def _on_cluster(self, event: ports.WatchEvent[capi.Cluster]) -> None:
        record = self.records.get(event.object.metadata.name)
        if record is not None and event.type == ports.WatchEventType.DELETED:
            record.deleted = True
            self._changed()

    def _on_machine(self, event: ports.WatchEvent[capi.Machine]) -> None:
        machine = event.object
        record = self.records.get(machine.metadata.labels.get(capi.CLUSTER_NAME_LABEL, ""))
        if record is None:
            return
        name = machine.metadata.name
        now = self._env.now
        if event.type == ports.WatchEventType.ADDED:
            self._created_at[name] = now
            self.machines_created += 1
        gone = event.type == ports.WatchEventType.DELETED
        deleting = not gone and machine.metadata.deletion_timestamp is not None
        running = machine.status.phase == "Running"
        if running and name in self._created_at:
            self.running_s.append(now - self._created_at.pop(name))
        live = not gone and not deleting
        _toggle(record.machines, name, live)
        _toggle(record.deleting, name, deleting)
        _toggle(record.ready, name, live and running and ck.is_true(machine, ck.NODE_HEALTHY))
        if gone:
            self._created_at.pop(name, None)
        self._changed()

    def _on_health_check(self, event: ports.WatchEvent[ck.MachineHealthCheck]) -> None:
        if event.type != ports.WatchEventType.DELETED and event.object.status.short_circuited:
            key = str(event.object.key)
            if key not in self._short:
                self._short.add(key)
                self.short_circuits += 1
        elif str(event.object.key) in self._short:
            self._short.discard(str(event.object.key))

    def _on_host(self, event: ports.WatchEvent[bmh.BareMetalHost]) -> None:
        host = event.object
        key = f"{host.metadata.namespace}/{host.metadata.name}"
        ref = host.spec.consumer_ref
        consumer = ""
        if event.type != ports.WatchEventType.DELETED and ref is not None and ref.name:
            consumer = f"{ref.namespace or host.metadata.namespace}/{ref.kind}/{ref.name}"
        before = self._consumer.get(key, "")
        if consumer == before:
            return
        if before and consumer:
            self._violations.add("host-two-consumers",
                                 f"host {key}: consumer changed from {before} to {consumer} "
                                 "without a release")
        if before:
            self._consumer.pop(key, None)
            if self._held_by.get(before) == key:
                del self._held_by[before]
        if consumer:
            other = self._held_by.get(consumer)
            if other is not None and other != key:
                self._violations.add("machine-two-hosts",
                                     f"{consumer} is the consumer of hosts {other} and {key}")
            self._consumer[key] = consumer
            self._held_by[consumer] = key

    def _on_address(self, event: ports.WatchEvent[Any]) -> None:
        obj = event.object
        spec = obj.spec
        if isinstance(obj, ipam.IPAddress):
            pool = f"{spec.pool.namespace or obj.metadata.namespace}/{spec.pool.name}"
        else:
            pool = f"{obj.metadata.namespace}/{spec.pool_ref.name}"
        slot = (obj.KIND + ":" + obj.API_VERSION, pool, spec.address)
        holder = f"{obj.metadata.namespace}/{obj.metadata.name}"
        if event.type == ports.WatchEventType.DELETED:
            if self._addresses.get(slot) == holder:
                del self._addresses[slot]
            return
        other = self._addresses.get(slot)
        if other is not None and other != holder:
            self._violations.add("ip-two-claims",
                                 f"address {spec.address} of pool {pool} is held by {other} "
                                 f"and {holder}")
        self._addresses[slot] = holder

    # --- the end -----------------------------------------------------------------------------

    def check_end(self) -> None:
        """What must hold once the run is over (see the module docstring)."""
        store = self._store
        ns = self.settings.namespace
        gone = {name for name, record in self.records.items() if record.delete_requested}
        everything = gone == set(self.records)
        for kind in LEAK_KINDS:
            for obj in store.list(kind, namespace=ns):
                owner = obj.metadata.labels.get(capi.CLUSTER_NAME_LABEL)
                if owner in gone or (everything and kind is not meta.Secret):
                    self.leaked[kind.KIND] += 1
                    self._violations.add("leaked-after-deletion",
                                         f"{kind.KIND} {obj.key} of deleted cluster {owner}")
        machines = {m.metadata.name for m in store.list(v2.Metal3Machine, namespace=ns)}
        for host in store.list(bmh.BareMetalHost, namespace=ns):
            ref = host.spec.consumer_ref
            if ref is not None and ref.kind == "Metal3Machine" and ref.name not in machines:
                self.leaked["BareMetalHost consumerRef"] += 1
                self._violations.add("leaked-after-deletion",
                                     f"host {host.key} names consumer {ref.name}, which is gone")
            if host.metadata.labels.get(capi.CLUSTER_NAME_LABEL) in gone:
                self.leaked["BareMetalHost cluster label"] += 1
                self._violations.add("leaked-after-deletion",
                                     f"host {host.key} keeps the label of a deleted cluster")
        if everything:
            for n in store.list(node.Node):
                self.leaked["Node"] += 1
                self._violations.add("leaked-after-deletion",
                                     f"Node {n.metadata.name} outlived every cluster")

    def report(self) -> dict[str, Any]:
        running = sum(len(r.ready) for r in self.records.values())
        return {
            "clusters": len(self.records),
            "machines_created": self.machines_created,
            "machines_running": running,
            "machine_running_s": _stats(self.running_s),
            "remediated": self.machine_sets.remediated,
            "marked_unhealthy": self.health_checks.marked,
            "remediation_requests": self.health_checks.requests,
            "short_circuits": self.short_circuits,
            "outages": [{"step": s, "cluster": c, "nodes": n} for s, c, n in self.outages],
            "fired_s": {k: round(v, 1) for k, v in self.fired.items()},
            "settle_s": {k: round(v, 1) for k, v in self.settled.items()},
            "unsettled_steps": [step for step, *_ in self._watching],
            "nodes_registered": self.kubelets.registered,
            "leaked": sum(self.leaked.values()),
            "leaked_by_kind": dict(sorted(self.leaked.items())),
        }


def _toggle(items: set[str], name: str, present: bool) -> None:
    if present:
        items.add(name)
    else:
        items.discard(name)


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"count": len(ordered), "p50": pick(0.5), "p95": pick(0.95), "p99": pick(0.99),
            "max": round(ordered[-1], 1)}
