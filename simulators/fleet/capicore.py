"""Cluster API core in the fleet model: its controllers, the kubelets and the clusters' user.

`build(sim, settings)` adds to a Simulation (before its informers start) what a scenario's
`clusters` section needs beside the controllers controllerset already runs there (BMO, CAPM3,
IPAM): Cluster API core's Cluster, Machine, MachineDeployment, MachineSet and
MachineHealthCheck controllers (capimachine.py, capisets.py) with Cluster API's own client
(`clusters.capi`: QPS, burst; its API writes are counted apart, as `capi`), the kubelets
(kubelet.py) and the ClusterWorld (clusters.py).
"""

import random
from typing import TYPE_CHECKING

from metalcubed.core import wiring
from metalcubed.core.api import node
from metalcubed.simulators.fleet import capimachine, capisets, clusters, clusterspec, cost
from metalcubed.simulators.fleet.kubelet import Kubelets
from metalcubed.simulators.fleet.runtime import EPOCH, Controller, Reconciler

if TYPE_CHECKING:
    from metalcubed.simulators.fleet.simulation import Simulation

CAPI = "capi"
"""The key of Cluster API core's client in the run's per-manager API figures."""


def build(sim: "Simulation", settings: clusterspec.Clusters) -> clusters.ClusterWorld:
    env = sim.env
    spec = sim.spec
    controller_settings = spec.controller
    stats = sim.group_api_stats[CAPI] = cost.ApiStats()
    client = cost.MeteredStore(
        sim.store, sim.meter, latency=controller_settings.api_latency,
        qps=settings.capi.kube_api_qps, burst=settings.capi.kube_api_burst,
        now_s=lambda: env.now, epoch=EPOCH, stats=stats)
    nodes = capimachine.NodeIndex()
    sim.store.watch(node.Node, nodes.on_watch)
    seed = sim.seed
    machine_sets = capisets.MachineSetReconciler(
        store=client, clock=sim.clock, events=sim.events,
        rng=_rng(seed, "capi-machineset"))
    health_checks = capisets.MachineHealthCheckReconciler(
        store=client, clock=sim.clock, events=sim.events)
    reconcilers: list[tuple[wiring.Wiring, Reconciler]] = [
        (capimachine.CLUSTER_WIRING, capimachine.ClusterReconciler(store=client,
                                                                   clock=sim.clock)),
        (capisets.DEPLOYMENT_WIRING, capisets.MachineDeploymentReconciler(store=client)),
        (capisets.SET_WIRING, machine_sets),
        (capimachine.MACHINE_WIRING, capimachine.MachineReconciler(
            store=client, clock=sim.clock, nodes=nodes)),
        (capisets.HEALTHCHECK_WIRING, health_checks),
    ]
    for wiring_, reconciler in reconcilers:
        sim.controllers.append(Controller(
            env, clock=sim.clock, reconciler=reconciler,
            concurrency=settings.capi.concurrency, meter=sim.meter,
            watch_latency=controller_settings.watch_latency,
            reconcile_cpu=controller_settings.reconcile_cpu,
            wiring_=wiring_))
    physical = {machine.name: machine for machine in sim.machines}
    kubelets = Kubelets(env, store=sim.store, now=sim.clock.now,
                        stage_of=lambda name: physical[name].stage if name in physical else None,
                        join_s=settings.kubelet_join_s)
    return clusters.ClusterWorld(
        env, spec=spec, store=sim.store, clock=sim.clock, kubelets=kubelets,
        violations=sim.observer.violations, rng=_rng(seed, "clusters"),
        on_change=sim._changed, machine_sets=machine_sets, health_checks=health_checks)


def _rng(seed: int, purpose: str) -> random.Random:
    return random.Random(f"metalcubed:{seed}:{purpose}")
