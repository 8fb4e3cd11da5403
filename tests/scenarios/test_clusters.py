"""Cluster API clusters through the fleet model (issue 11): the CAPM3 and IPAM controllers the
manager runs, Cluster API core modelled, the lab kubelet's rules. Machines get hosts and reach
Running, a kubelet outage within maxUnhealthy is remediated (Machines replaced on released
hosts), one beyond it is not (the MachineHealthCheck short-circuits), and deleting the clusters
leaves nothing behind; the invariants catch a broken world."""

import json
from typing import Any

from metalcubed.cli import main as cli
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import capi, ipam, meta
from metalcubed.core.api.capm3 import v1beta2 as v2
from metalcubed.simulators.fleet import capikinds, scenario, simulation
from tests.scenarios.conftest import fleet, run

GROUPS = "  - {name: vm, count: 12, profile: generic, bmc: redfish-virtualmedia}\n"
ENROLL = "  - {action: enroll, at: 0s}\n"


def clusters(steps: str, *, replicas: int = 4, health: str = "") -> str:
    return fleet(GROUPS, ENROLL, extra=f"""
clusters:
  count: 2
  replicas: {replicas}
  image: os
{health}
  steps:
{steps}
""")


HEALTH = """  health_check:
    max_unhealthy: 40%
    node_startup_timeout: 90m
    unhealthy_timeout: 5m
    max_in_flight: 1
"""


def test_machines_get_hosts_and_run_then_nothing_is_left() -> None:
    data, outcome = run(clusters(
        "    - {name: grow, action: scale, when: running, replicas: 6}\n"
        "    - {name: teardown, action: delete, when: running}\n"))
    assert data["invariants"]["ok"], data["invariants"]["violations"]
    section = data["clusters"]
    assert section["machines_created"] == 12  # 2 x 4, then 2 x 2 more: every host taken
    assert section["machine_running_s"]["count"] == 12
    assert set(section["settle_s"]) == {"grow", "teardown"}
    assert section["leaked"] == 0
    assert data["final_states"] == {"available": 12}
    assert outcome.clusters is not None
    store = outcome.clusters.store
    for kind in (capi.Machine, capi.Cluster, capikinds.MachineSet):
        assert store.list(kind) == []
    assert all(h.spec.consumer_ref is None for h in store.list(bmh.BareMetalHost))


def test_an_outage_within_max_unhealthy_is_remediated_one_beyond_is_not() -> None:
    # Each cluster has 6 Machines; maxUnhealthy 40% of 6 = 2 (rounded down, as upstream).
    data, outcome = run(clusters(
        "    - {name: storm-big, action: outage, when: running, clusters: [cluster-00],"
        " fraction: 50%, duration: 20m}\n"
        "    - {name: storm-small, action: outage, when: running, clusters: [cluster-01],"
        " fraction: 34%, duration: 1h}\n", replicas=6, health=HEALTH))
    assert data["invariants"]["ok"], data["invariants"]["violations"]
    section = data["clusters"]
    assert section["outages"] == [{"step": "storm-big", "cluster": "cluster-00", "nodes": 3},
                                  {"step": "storm-small", "cluster": "cluster-01", "nodes": 2}]
    assert section["short_circuits"] >= 1  # cluster-00: 3 unhealthy > 2
    assert section["remediated"] == 2  # cluster-01's two, replaced on their released hosts
    assert section["machines_created"] == 12 + 2
    assert section["machines_running"] == 12
    assert outcome.clusters is not None
    store = outcome.clusters.store
    left = {m.metadata.name for m in store.list(capi.Machine)}
    # cluster-00 kept all its Machines through the outage (no remediation past maxUnhealthy).
    assert sum(1 for name in left if name.startswith("cluster-00")) == 6
    events = data["events"]
    assert events.get("RemediationRestricted", 0) >= 1
    assert events.get("MachineRemediated", 0) == 2


def test_a_stolen_host_is_caught() -> None:
    """The invariant is real: rewriting a claimed host's consumerRef to another machine (what
    upstream #3516 does) is reported."""
    spec_text = clusters("    - {name: teardown, action: delete, when: running}\n")
    sim = simulation.Simulation(scenario.loads(spec_text, source="<test>"))
    store = sim.store
    stolen: list[str] = []

    def steal(_event: Any) -> None:
        hosts = [h for h in store.list(bmh.BareMetalHost) if h.spec.consumer_ref is not None]
        victim = hosts[0]
        ref = victim.spec.consumer_ref
        assert ref is not None
        other = next(h.spec.consumer_ref for h in hosts[1:]
                     if h.spec.consumer_ref is not None and h.spec.consumer_ref.name != ref.name)
        store.update(victim.model_copy(update={"spec": victim.spec.model_copy(
            update={"consumer_ref": other})}))
        stolen.append(victim.metadata.name)

    def watch(_event: Any) -> None:
        consumed = [h for h in store.list(bmh.BareMetalHost) if h.spec.consumer_ref is not None]
        if len(consumed) >= 2 and not stolen and not armed:
            armed.append(True)  # write outside the watch delivery
            sim.env.timeout(1).callbacks.append(steal)

    armed: list[bool] = []
    store.watch(bmh.BareMetalHost, watch)
    out = sim.run()
    assert stolen
    counts = out.observer.violations.counts
    assert counts["host-two-consumers"] >= 1
    assert counts["machine-two-hosts"] >= 1



IPAM = "  ipam: {network: 10.100.0.0/16, prefix: 24}\n"


def test_ipam_addresses_are_unique_and_released() -> None:
    """With a pool per cluster each Machine's Metal3Data claims an address (IPAM's own
    controller allocates it); remediation frees and re-claims; teardown leaves no pool, claim,
    address, Metal3Data or template (the pools go by garbage collection after their Cluster)."""
    text = clusters(
        "    - {name: storm, action: outage, when: running, clusters: [cluster-01],"
        " fraction: 34%, duration: 1h}\n"
        "    - {name: teardown, action: delete, when: running}\n",
        replicas=6, health=HEALTH + IPAM)
    sim = simulation.Simulation(scenario.loads(text, source="<test>"))
    allocated: list[tuple[str, str]] = []
    sim.store.watch(ipam.IPAddress, lambda e: allocated.append(
        (e.object.spec.pool.name, e.object.spec.address))
        if e.type.value == "ADDED" else None)
    out = sim.run()
    assert out.observer.violations.total == 0, out.observer.violations.messages
    assert out.clusters is not None and out.clusters.machine_sets.remediated == 2
    assert len(allocated) == 12 + 2  # one per Machine, the two replacements included
    assert {pool for pool, _ in allocated} == {"cluster-00-pool", "cluster-01-pool"}
    assert all(address.startswith(("10.100.0.", "10.100.1.")) for _, address in allocated)
    for kind in (ipam.IPPool, ipam.IPClaim, ipam.IPAddress, v2.Metal3Data, v2.Metal3DataClaim,
                 v2.Metal3DataTemplate):
        assert sim.store.list(kind) == [], kind.KIND


def test_an_address_held_twice_is_caught() -> None:
    text = clusters("    - {name: teardown, action: delete, when: running}\n", health=IPAM)
    sim = simulation.Simulation(scenario.loads(text, source="<test>"))
    store = sim.store
    copies: list[str] = []

    def duplicate(event: Any) -> None:
        if event.type.value != "ADDED" or copies:
            return
        address = event.object
        copies.append(address.metadata.name)
        twin = address.model_copy(update={"metadata": meta.ObjectMeta(
            name=f"{address.metadata.name}-twin", namespace=address.metadata.namespace)})
        sim.env.timeout(0).callbacks.append(lambda _e: store.create(twin))

    store.watch(ipam.IPAddress, duplicate)
    out = sim.run()
    assert copies
    assert out.observer.violations.counts["ip-two-claims"] == 1


def test_clusters_are_created_at_create_at() -> None:
    text = clusters("    - {name: teardown, action: delete, when: running}\n").replace(
        "  count: 2\n", "  count: 2\n  create_at: 20m\n")
    sim = simulation.Simulation(scenario.loads(text, source="<test>"))
    created: list[float] = []
    sim.store.watch(capi.Cluster, lambda e: created.append(sim.env.now)
                    if e.type.value == "ADDED" else None)
    out = sim.run()
    assert out.observer.violations.total == 0, out.observer.violations.messages
    assert created and min(created) == 1200.0


def test_capm3_reboot_remediation_heals_without_replacing() -> None:
    """With a Metal3RemediationTemplate (Reboot) the MachineHealthCheck asks CAPM3 instead of
    the MachineSet: the unhealthy hosts are power-cycled (which restarts their wedged kubelets),
    the requests are deleted once the Nodes are Ready again, and no Machine is replaced."""
    data, _ = run(clusters(
        "    - {name: storm, action: outage, when: running, clusters: [cluster-01],"
        " fraction: 34%, duration: 1h}\n"
        "    - {name: teardown, action: delete, when: running}\n",
        replicas=6, health=HEALTH + "    reboot: {retry_limit: 1, timeout: 10m}\n"))
    assert data["invariants"]["ok"], data["invariants"]["violations"]
    section = data["clusters"]
    assert section["remediation_requests"] == 2
    assert section["marked_unhealthy"] == 2  # healed for good: never unhealthy again
    assert section["remediated"] == 0 and section["machines_created"] == 12
    assert data["events"].get("PoweringOff") == 2  # BMO honoured the power-off annotations
    assert section["leaked"] == 0  # the requests were deleted once the Nodes were Ready


def test_the_shipped_scenario_meets_its_slos_scaled_down(tmp_path: Any) -> None:
    """clusters-1000 at --hosts 100: its Machine-count SLO (`storm-remediates`, 2% of the
    hosts) scales with the clusters, so every gate still means what it says."""
    out = tmp_path / "report.json"
    assert cli.main(["sim", "clusters-1000", "--hosts", "100", "--quiet",
                     "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["slo"]["storm-remediates"]["target"] == 2
    assert data["clusters"]["remediated"] >= 2
