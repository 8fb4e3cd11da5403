"""The fleet model's composition: one scenario, one seed, wired and run to the end.

`Simulation(spec, seed)` builds the simulated world (machines and their BMCs per scenario group,
with the faults each machine was dealt), the memory store with its observer, and the
production pieces: core/controllerset's controllers (the BareMetalHost controller first, then
firmware settings, firmware components and the others the manager runs), each with its
workqueue and workers over the shared caches, fed through the metered store, and
core/provisioning's engine, the provisioner `metalcubed manager` ships, over the
fleet's BMCs and agents (engine.py). `run()` advances simulated time until the workload is
done and every host has settled, or the scenario's time limit, and returns the raw
`RunOutcome` that report.py turns into the report.

Randomness: one `random.Random` per purpose (reconciler, store, provisioner, costs, physical
durations, BMC faults, fault assignment, workload), each seeded from the scenario seed and the
purpose's name, so a run never depends on hash randomization or on another purpose's draws.
"""

import contextlib
import dataclasses
import gc
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import simpy

from metalcubed.core import controllerset, memory_store
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.simulators import hostmodel
from metalcubed.simulators.fleet import capicore, clusters, cost, scenario
from metalcubed.simulators.fleet import engine as fleet_engine
from metalcubed.simulators.fleet.bmc import Bmc, BmcStats
from metalcubed.simulators.fleet.machine import HostFaultPlan, Machine
from metalcubed.simulators.fleet.observer import Observer
from metalcubed.simulators.fleet.runtime import EPOCH, Controller, Informers, SimClock
from metalcubed.simulators.fleet.servicing import Servicing
from metalcubed.simulators.fleet.workload import HostPlan, Workload

SAMPLE_S = 30.0
"""How often (simulated seconds) hosts per state are sampled for the timeline."""

Progress = Callable[[float, int, int], None]
"""progress(simulated seconds, hosts settled, hosts) -- called about once a simulated minute."""


@dataclass(slots=True)
class RunOutcome:
    """Everything a finished run measured (report.py shapes it)."""

    spec: scenario.Scenario
    seed: int
    makespan_s: float
    wall_s: float
    time_limit_hit: bool
    observer: Observer
    controller: Controller
    """The BareMetalHost controller."""
    engine: fleet_engine.FleetEngine
    """The engine's adapters and what they counted (BMC calls by operation, agent calls)."""
    bmc_stats: BmcStats
    api_stats: cost.ApiStats
    events: cost.SimEvents
    metrics: cost.SimMetrics
    steps_fired: list[tuple[str, float]] = field(default_factory=list)
    controllers: list[Controller] = field(default_factory=list)
    """Every controller that ran, the BareMetalHost one first."""
    servicing: Servicing | None = None
    serviced: dict[str, int] | None = None
    """Serviced hosts by outcome (servicing.check), when the workload services."""
    clusters: "clusters.ClusterWorld | None" = None
    """The Cluster API clusters' world, when the scenario has a `clusters` section."""
    group_api_stats: dict[str, cost.ApiStats] = field(default_factory=dict)
    """API writes per manager (controller group, and `capi` for Cluster API core)."""


GC_THRESHOLD = (2000, 10, 100)
"""The collector's thresholds during a run. A fleet holds hundreds of thousands of long-lived
objects (hosts, machines, events); with the default thresholds (700, 10, 10) the full
collections that rescan them all took a fifth of fleet-1000's CPU time. The world built
before the run is frozen (never rescanned) and full collections are rarer; the run's results
do not depend on when the collector runs."""


@contextlib.contextmanager
def _collector_tuned() -> Iterator[None]:
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def _rng(seed: int, purpose: str) -> random.Random:
    return random.Random(f"metalcubed:{seed}:{purpose}")


def _address(scheme: str, ip: str, slot: int, name: str, shared: bool) -> str:
    if scheme in ("ipmi", "libvirt"):
        return f"{scheme}://{ip}:{623 + slot if shared else 623}"
    return f"{scheme}://{ip}/redfish/v1/Systems/{name}"


class Simulation:
    """One scenario run; build it, then `run()` once."""

    def __init__(self, spec: scenario.Scenario, *, seed: int | None = None) -> None:
        self.spec = spec
        self.seed = spec.seed if seed is None else seed
        env = self.env = simpy.Environment()
        self.clock = SimClock(env, EPOCH)
        seed_ = self.seed
        self.store = memory_store.MemoryStore(
            clock=self.clock, rng=_rng(seed_, "store"), history_size=64
        )
        self.bmc_stats = BmcStats()
        self.api_stats = cost.ApiStats()
        self.events = cost.SimEvents()
        self.metrics = cost.SimMetrics()
        self.meter = cost.Meter(_rng(seed_, "cost"))
        self.targets: dict[str, fleet_engine.Target] = {}
        self.plans = self._build_fleet()
        self.observer = Observer(
            now_s=lambda: env.now,
            group_sizes={group.name: group.count for group in spec.groups},
            settle_error_count=spec.settle_error_count,
        )
        controller_settings = spec.controller
        metered = cost.MeteredStore(
            self.store,
            self.meter,
            latency=controller_settings.api_latency,
            qps=controller_settings.kube_api_qps,
            burst=controller_settings.kube_api_burst,
            now_s=lambda: env.now,
            epoch=EPOCH,
            stats=self.api_stats,
        )
        self.engine = fleet_engine.FleetEngine(
            env,
            clock=self.clock,
            store=self.store,
            targets=self.targets,
            images=spec.images,
            settings=spec.provisioner,
            provisioning_limit=controller_settings.provisioning_limit,
            meter=self.meter,
            rng=_rng(seed_, "provisioner"),
            firmware=spec.firmware,
        )
        deps = controllerset.Deps(
            store=metered,
            provisioner_factory=self.engine.engine,
            clock=self.clock,
            events=self.events,
            rng=_rng(seed_, "reconciler"),
            metrics=self.metrics,
            max_provisioning_retries=controller_settings.max_provisioning_retries,
        )
        self.controllers: list[Controller] = []
        # Each group is its own Deployment upstream (BMO, CAPM3, IPAM): its own client and
        # rate limiter. BMO's is `metered` (its figures are the report's `api`).
        self.group_api_stats: dict[str, cost.ApiStats] = {controllerset.BMO: self.api_stats}
        clients: dict[str, cost.MeteredStore] = {controllerset.BMO: metered}
        for group in controllerset.GROUPS:
            if group not in clients:
                stats = self.group_api_stats[group] = cost.ApiStats()
                clients[group] = cost.MeteredStore(
                    self.store, self.meter, latency=controller_settings.api_latency,
                    qps=controller_settings.kube_api_qps, burst=controller_settings.kube_api_burst,
                    now_s=lambda: env.now, epoch=EPOCH, stats=stats)
        for definition in controllerset.select(controller_settings.controllers) \
                if controller_settings.controllers else controllerset.CONTROLLERS:
            is_host = definition.wiring.kind is bmh.BareMetalHost
            # The BareMetalHost reconciler keeps its own stream ("reconciler"), as before
            # there were several controllers, so earlier runs' results stay comparable.
            rng = deps.rng if is_host else _rng(seed_, f"reconciler:{definition.name}")
            self.controllers.append(Controller(
                env,
                clock=self.clock,
                reconciler=definition.new_reconciler(dataclasses.replace(
                    deps, rng=rng, store=clients[definition.group])),
                concurrency=controller_settings.concurrency,
                meter=self.meter,
                watch_latency=controller_settings.watch_latency,
                reconcile_cpu=controller_settings.reconcile_cpu,
                is_delayed=self.observer.is_delayed if is_host else lambda key: False,
                wiring_=definition.wiring,
            ))
        self.controller = self.controllers[0]
        self.store.watch(bmh.BareMetalHost, self.observer.handle)
        self.clusters: clusters.ClusterWorld | None = None
        if spec.clusters is not None:
            self.clusters = capicore.build(self, spec.clusters)
        Informers(self.controllers).watch(self.store)
        self.servicing: Servicing | None = None
        if spec.services:
            self.servicing = Servicing(
                env, store=self.store, observer=self.observer,
                machines={m.name: m for m in self.machines}, images=spec.firmware,
            )
        self.workload = Workload(
            env,
            spec=spec,
            store=self.store,
            observer=self.observer,
            hosts=self.plans,
            rng=_rng(seed_, "workload"),
            servicing=self.servicing,
        )
        self.finished = env.event()
        self.observer.on_change = self._changed
        self.observer.on_relabel = self.workload.host_changed

    def _build_fleet(self) -> dict[str, list[HostPlan]]:
        spec = self.spec
        env = self.env
        physical = _rng(self.seed, "physical")
        bmc_rng = _rng(self.seed, "bmc")
        dealer = _rng(self.seed, "faults")
        faults = spec.faults
        plans: dict[str, list[HostPlan]] = {}
        machines: list[Machine] = []
        host_index = 0
        bmc_index = 0
        for group in spec.groups:
            profile = spec.profiles[group.profile]
            faulty = not faults.groups or group.name in faults.groups
            scenario_faults = faults.bmc if faulty else scenario.BmcFaults()
            # The one BMC fault model (hostmodel.Faults), as the emulators use it.
            bmc_faults = hostmodel.Faults(
                latency=profile.bmc_latency.draw,
                error_rate=scenario_faults.error_rate,
                timeout_rate=scenario_faults.timeout_rate,
                session_cap=faults.bmc.session_cap or profile.bmc_session_cap,
                conflict_after_power_off_s=scenario_faults.conflict_after_power_off_s,
                update_failure_rate=scenario_faults.update_failure,
                bmc_reboot_rate=scenario_faults.reboot_during_update,
            )
            virtual_media = group.boot != scenario.BootMethod.PXE
            shared = group.hosts_per_bmc > 1
            plans[group.name] = []
            endpoint: Bmc | None = None
            for i in range(group.count):
                slot = i % group.hosts_per_bmc
                if slot == 0 or endpoint is None:
                    bmc_index += 1
                    ip = f"10.{(bmc_index >> 16) & 255}.{(bmc_index >> 8) & 255}.{bmc_index & 255}"
                    endpoint = Bmc(
                        env,
                        address=ip,
                        faults=bmc_faults,
                        timeout_s=spec.provisioner.bmc_timeout_s,
                        rng=bmc_rng,
                        stats=self.bmc_stats,
                    )
                host_index += 1
                name = f"{group.name}-{i:05d}"
                mac = "52:54:%02x:%02x:%02x:%02x" % (  # noqa: UP031
                    (host_index >> 24) & 255,
                    (host_index >> 16) & 255,
                    (host_index >> 8) & 255,
                    host_index & 255,
                )
                plan_faults = HostFaultPlan(
                    hangs_in_post=faulty and dealer.random() < faults.hosts.post_hang,
                    disk_fails=faulty and dealer.random() < faults.hosts.disk_failure,
                    agent_crash_rate=faults.hosts.agent_crash if faulty else 0.0,
                )
                machine = Machine(
                    env, name=name, boot_mac=mac, profile=profile, faults=plan_faults, rng=physical
                )
                machines.append(machine)
                address = _address(group.bmc_scheme, endpoint.address, slot, name, shared)
                self.targets[address] = fleet_engine.Target(
                    machine=machine, endpoint=endpoint, virtual_media=virtual_media
                )
                plans[group.name].append(
                    HostPlan(
                        name=name,
                        namespace=group.namespace,
                        group=group.name,
                        address=address,
                        boot_mac=mac,
                        automated_cleaning_mode=group.automated_cleaning_mode,
                    )
                )
        self.machines = machines
        return plans

    def _changed(self) -> None:
        self.workload.check()
        if self.clusters is not None and not self.clusters.done:
            return
        if self.workload.done and self.observer.all_settled() and not self.finished.triggered:
            self.finished.succeed()

    def _sampler(self) -> simpy.events.ProcessGenerator:
        while True:
            self.observer.sample(self.env.now)
            yield self.env.timeout(SAMPLE_S)

    def _progress(self, report: Progress, every_s: float) -> simpy.events.ProcessGenerator:
        total = sum(group.count for group in self.spec.groups)
        observer = self.observer
        while True:
            report(self.env.now, observer.enrolled - observer.unsettled, total)
            yield self.env.timeout(every_s)

    def run(self, *, progress: Progress | None = None) -> RunOutcome:
        env = self.env
        limit = self.spec.time_limit_s
        deadline = env.timeout(limit)
        env.process(self._sampler())
        if progress is not None:
            env.process(self._progress(progress, 60.0))
        started = time.perf_counter()
        with _collector_tuned():
            env.run(until=self.finished | deadline)
        wall = time.perf_counter() - started
        hit = not self.finished.triggered
        self.observer.sample(env.now)
        if progress is not None:
            total = sum(group.count for group in self.spec.groups)
            progress(env.now, self.observer.enrolled - self.observer.unsettled, total)
        self.observer.check_end(
            store_hosts=self.store.list(bmh.BareMetalHost),
            node_names=[node.name for node in self.engine.table.nodes()],
            double_writes=sum(machine.double_writes for machine in self.machines),
        )
        serviced = self.servicing.check() if self.servicing is not None else None
        if self.clusters is not None:
            self.clusters.check_end()
        if hit:
            self.observer.violations.add(
                "time-limit", f"the run reached its time limit ({limit:.0f} s) unfinished"
            )
        return RunOutcome(
            spec=self.spec,
            seed=self.seed,
            makespan_s=env.now,
            wall_s=wall,
            time_limit_hit=hit,
            observer=self.observer,
            controller=self.controller,
            engine=self.engine,
            bmc_stats=self.bmc_stats,
            api_stats=self.api_stats,
            events=self.events,
            metrics=self.metrics,
            steps_fired=list(self.workload.fired),
            controllers=list(self.controllers),
            servicing=self.servicing,
            serviced=serviced,
            clusters=self.clusters,
            group_api_stats=dict(self.group_api_stats),
        )
