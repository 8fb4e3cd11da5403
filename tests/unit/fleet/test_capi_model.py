"""The fleet's model of Cluster API core against upstream's rules (v1.13), one reconciler at a
time on the memory store: MachineHealthCheck's maxUnhealthy (a percentage of the targets,
rounded down) and its timeouts, and the MachineSet's remediation and deletion order."""

import random

from metalcubed.core import outcome
from metalcubed.core.api import capi, meta, node
from metalcubed.core.api.capm3 import v1beta2 as v2
from metalcubed.core.clock import ManualClock
from metalcubed.core.memory_store import MemoryStore
from metalcubed.core.testing.fakes import RecordingEventRecorder
from metalcubed.simulators.fleet import capikinds as ck
from metalcubed.simulators.fleet import capisets

NS = "lab"


class World:
    def __init__(self, machines: int, *, max_unhealthy: int | str = "40%") -> None:
        self.clock = ManualClock()
        self.store = MemoryStore(clock=self.clock)
        self.events = RecordingEventRecorder()
        cluster = self.store.create(capi.Cluster(metadata=meta.ObjectMeta(name="c", namespace=NS)))
        self.store.update_status(cluster.model_copy(update={"status": capi.ClusterStatus(
            deprecated=capi.Deprecated(v1beta1=capi.V1Beta1Deprecated(conditions=(
                capi.V1Beta1Condition(type="InfrastructureReady", status="True"),))))}))
        self.mhc = self.store.create(ck.MachineHealthCheck(
            metadata=meta.ObjectMeta(name="c-mhc", namespace=NS),
            spec=ck.HealthCheckSpec(cluster_name="c", max_unhealthy=max_unhealthy,
                                    unhealthy_node_conditions=(ck.UnhealthyNodeCondition(
                                        type="Ready", status="Unknown", timeout_s=300.0),))))
        self.reconciler = capisets.MachineHealthCheckReconciler(
            store=self.store, clock=self.clock, events=self.events)
        for i in range(machines):
            name = f"m{i}"
            machine = self.store.create(capi.Machine(metadata=meta.ObjectMeta(
                name=name, namespace=NS, labels={capi.CLUSTER_NAME_LABEL: "c"})))
            self.store.update_status(machine.model_copy(update={"status": machine.status.model_copy(
                update={"node_ref": capi.MachineNodeReference(name=name), "phase": "Running"})}))
            self.node(name, "True")

    def node(self, name: str, ready: str) -> None:
        condition = node.NodeCondition(type="Ready", status=ready,
                                       last_transition_time=self.clock.now())
        try:
            found = self.store.get(node.Node, meta.ObjectKey("", name))
        except outcome.NotFound:
            found = self.store.create(node.Node(metadata=meta.ObjectMeta(name=name)))
        self.store.update_status(found.model_copy(update={"status": node.NodeStatus(
            conditions=(condition,))}))

    def marked(self) -> list[str]:
        return sorted(m.metadata.name for m in self.store.list(capi.Machine)
                      if ck.is_false(m, ck.OWNER_REMEDIATED))

    def pass_(self) -> float | None:
        return self.reconciler.reconcile(self.mhc.key).requeue_after_s


def test_unhealthy_only_after_the_timeout_then_remediated_within_max_unhealthy() -> None:
    world = World(6)  # 40% of 6 = 2.4 -> 2 may be remediated
    world.node("m1", "Unknown")
    world.node("m4", "Unknown")
    wait = world.pass_()
    assert world.marked() == []  # not yet: Ready Unknown for 0 s of 300
    assert wait is not None and 300 <= wait <= 302  # looks again when the timeout expires
    world.clock.advance(301)
    world.pass_()
    assert world.marked() == ["m1", "m4"]
    status = world.store.get(ck.MachineHealthCheck, world.mhc.key).status
    assert (status.expected_machines, status.current_healthy) == (6, 4)
    assert not status.short_circuited


def test_more_unhealthy_than_max_unhealthy_remediates_none() -> None:
    world = World(6)
    for name in ("m0", "m1", "m2"):
        world.node(name, "Unknown")
    world.clock.advance(301)
    world.pass_()
    assert world.marked() == []  # 3 > 2: the short-circuit
    status = world.store.get(ck.MachineHealthCheck, world.mhc.key).status
    assert status.short_circuited and status.remediations_allowed == 0
    assert [e.reason for e in world.events.events] == ["RemediationRestricted"]
    unhealthy = [m.metadata.name for m in world.store.list(capi.Machine)
                 if ck.is_false(m, ck.HEALTH_CHECK_SUCCEEDED)]
    assert unhealthy == ["m0", "m1", "m2"]  # still reported, just not remediated


def test_a_deleted_node_is_unhealthy_at_once() -> None:
    world = World(5, max_unhealthy=1)
    world.store.delete(node.Node, meta.ObjectKey("", "m3"))
    world.pass_()
    assert world.marked() == ["m3"]


def test_machine_set_deletes_marked_machines_within_max_in_flight() -> None:
    world = World(6, max_unhealthy="100%")
    for name in ("m0", "m2", "m5"):
        world.node(name, "Unknown")
    world.clock.advance(301)
    world.pass_()
    assert world.marked() == ["m0", "m2", "m5"]
    store = world.store
    store.create(v2.Metal3MachineTemplate(
        metadata=meta.ObjectMeta(name="t", namespace=NS),
        spec=v2.Metal3MachineTemplateSpec(template=v2.Metal3MachineTemplateResource(
            spec=v2.Metal3MachineSpec()))))
    ms = store.create(ck.MachineSet(
        metadata=meta.ObjectMeta(name="ms", namespace=NS),
        spec=ck.MachineSetSpec(cluster_name="c", replicas=6, remediation_max_in_flight=2,
                               template=ck.MachineTemplate(bootstrap_data_secret="s",
                                                           infrastructure_template="t"))))
    for m in store.list(capi.Machine):
        store.update(m.with_meta(labels={**m.metadata.labels, ck.SET_NAME_LABEL: "ms"},
                                 finalizers=(ck.MACHINE_FINALIZER,)))
    sets = capisets.MachineSetReconciler(store=store, clock=world.clock, events=world.events,
                                         rng=random.Random(0))
    sets.reconcile(ms.key)
    deleting = sorted(m.metadata.name for m in store.list(capi.Machine)
                      if m.metadata.deletion_timestamp is not None)
    assert deleting == ["m0", "m2"]  # maxInFlight 2, by name
    waiting = store.get(capi.Machine, meta.ObjectKey(NS, "m5"))
    remediated = ck.condition(waiting, ck.OWNER_REMEDIATED)
    assert remediated is not None and "too many remediations" in (remediated.message or "")
    assert len(store.list(capi.Machine)) == 6  # no replacement while the two still exist
    assert sets.remediated == 2


def test_scaled_rounds_as_intstr() -> None:
    assert ck.scaled("40%", 6, round_up=False) == 2
    assert ck.scaled("40%", 6, round_up=True) == 3
    assert ck.scaled(3, 100, round_up=False) == 3
    assert ck.scaled("100%", 0, round_up=False) == 0
