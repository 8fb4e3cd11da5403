"""core/provisioning's engine does the fleet's hardware work (the default, and the only backend).

The engine's node table holds the hosts, and the BMC requests, agent commands and image writes
are the engine's; it syncs power on Ironic's interval and fast-tracks the agent from inspection
to deployment. Faults end as upstream's errorTypes and messages on the hosts.
"""

import json
from pathlib import Path
from typing import Any

import pytest

from metalcubed.cli import main as cli
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta
from metalcubed.core.provisioning import nodes
from metalcubed.simulators.fleet import report, scenario, simulation

S = bmh.ProvisioningState
ET = bmh.ErrorType
URL = "http://images.example.com/os.raw"
GOOD = "a" * 64


def engine_fleet(groups: str, workload: str, *, extra: str = "") -> str:
    return f"""
name: engine-test
time_limit: 1d
controller: {{provisioner: engine}}
images:
  os: {{url: "{URL}", checksum: "{GOOD}", size: 1GiB}}
groups:
{groups}
workload:
{workload}
{extra}
"""


LIFECYCLE = """
  - {action: enroll, at: 0s}
  - {action: provision, image: os, when: available}
  - {action: deprovision, when: provisioned}
"""


@pytest.fixture(scope="module")
def engine_100() -> tuple[dict[str, Any], simulation.Simulation]:
    path = scenario.shipped_scenario_path("engine-100")
    assert path is not None
    sim = simulation.Simulation(scenario.load(path))
    outcome = sim.run()
    return report.build(outcome), sim


def test_engine_100_meets_its_slos_and_invariants(
    engine_100: tuple[dict[str, Any], simulation.Simulation],
) -> None:
    doc, _ = engine_100
    assert doc["hosts"] == 100
    assert doc["final_states"] == {"available": 100}
    assert doc["invariants"]["ok"], doc["invariants"]
    assert all(slo["ok"] for slo in doc["slo"].values()), doc["slo"]
    assert doc["ok"]


def test_the_engine_did_the_work(
    engine_100: tuple[dict[str, Any], simulation.Simulation],
) -> None:
    doc, sim = engine_100
    stats = sim.engine.stats
    # The engine's node table holds every host, under the id the host's status shows.
    table = {node.node_id: node for node in sim.engine.table.nodes()}
    for host in sim.store.list(bmh.BareMetalHost):
        node_id = nodes.node_id_for(host.key)
        assert host.status.provisioning.id == node_id
        assert table[node_id].deployed is None  # deprovisioned
    assert len(table) == 100
    # Every host was inspected in band, written once with a config drive, and cleaned once.
    assert stats.inventories == 100
    assert stats.image_writes == 100 and stats.config_drives == 100
    assert stats.cleans == 100
    assert stats.checksum_failures == 0
    assert sum(machine.writes for machine in sim.machines) == 100
    # Only virtual-media hosts had the deploy ISO inserted (40 hosts), for inspection and for
    # cleaning: deployment reused the agent inspection left running (fast track).
    assert stats.bmc_calls["insert cd media"] == 2 * 40
    assert stats.bmc_calls["get power state"] > 0
    assert sum(doc["bmc"]["by_kind"].values()) == sum(stats.bmc_calls.values())
    # PROVISIONING_LIMIT held: 60 PXE hosts, at most 20 busy at once.
    assert doc["peak"]["pxe_busy"] == stats.peak_pxe_busy == 20


def test_an_unreachable_bmc_is_a_registration_error() -> None:
    groups = (
        "  - {name: ok, count: 2, profile: vm, bmc: redfish-virtualmedia}\n"
        "  - {name: dead, count: 2, profile: vm, bmc: ipmi}\n"
    )
    extra = "settle_error_count: 1\nfaults: {bmc: {timeout_rate: 1.0}, groups: [dead]}"
    sim = simulation.Simulation(scenario.loads(engine_fleet(groups, LIFECYCLE, extra=extra)))
    sim.run()
    hosts = {h.metadata.name: h.status for h in sim.store.list(bmh.BareMetalHost)}
    for name in ("dead-00000", "dead-00001"):
        status = hosts[name]
        assert status.error_type == ET.REGISTRATION
        assert status.provisioning.state == S.REGISTERING
        assert status.error_message.startswith("BMC unreachable at ipmi://")
        assert "during get power state: timed out" in status.error_message
    for name in ("ok-00000", "ok-00001"):
        assert hosts[name].provisioning.state == S.AVAILABLE
        assert hosts[name].error_type == ET.NONE


def test_a_failing_disk_is_a_provisioning_error() -> None:
    groups = "  - {name: g, count: 2, profile: vm, bmc: redfish}\n"
    extra = "settle_error_count: 1\nfaults: {hosts: {disk_failure: 1.0}}"
    sim = simulation.Simulation(scenario.loads(engine_fleet(groups, LIFECYCLE, extra=extra)))
    sim.run()
    for host in sim.store.list(bmh.BareMetalHost):
        status = host.status
        assert status.error_type == ET.PROVISIONING
        assert status.error_message.startswith(f"Image provisioning failed (url: {URL}): ")
        assert "Input/output error" in status.error_message


def _run_until(sim: simulation.Simulation, done: Any, *, limit_s: float = 20000.0) -> None:
    while not done():
        assert sim.env.now < limit_s, "the condition did not hold in time"
        sim.env.run(until=sim.env.now + 60.0)


def test_a_bad_checksum_is_a_provisioning_error_and_a_good_one_recovers() -> None:
    groups = "  - {name: g, count: 1, profile: vm, bmc: redfish-virtualmedia}\n"
    text = engine_fleet(groups, "  - {action: enroll, at: 0s}\n")
    sim = simulation.Simulation(scenario.loads(text))
    key = meta.ObjectKey(namespace="metal3", name="g-00000")

    def host() -> bmh.BareMetalHost:
        return sim.store.get(bmh.BareMetalHost, key)

    def set_image(checksum: str) -> None:
        current = host()
        image = bmh.Image(url=URL, checksum=checksum, checksum_type=bmh.ChecksumType.SHA256)
        sim.store.update(current.model_copy(update={"spec": current.spec.model_copy(
            update={"image": image, "online": True})}))

    _run_until(sim, lambda: sim.store.list(bmh.BareMetalHost) != []
               and host().status.provisioning.state == S.AVAILABLE)
    set_image("b" * 64)
    _run_until(sim, lambda: host().status.error_type == ET.PROVISIONING)
    message = host().status.error_message
    assert message.startswith(
        f"Image provisioning failed (url: {URL}): Image failed to verify against checksum."
    )
    assert sim.engine is not None and sim.engine.stats.checksum_failures >= 1
    set_image(GOOD)
    _run_until(sim, lambda: host().status.provisioning.state == S.PROVISIONED)
    assert host().status.error_type == ET.NONE
    assert sim.targets[host().spec.bmc.address].machine.disk_image == URL


def test_same_seed_same_report_in_engine_mode() -> None:
    groups = (
        "  - {name: a, count: 3, profile: vm, bmc: redfish-virtualmedia}\n"
        "  - {name: b, count: 3, profile: vm, bmc: ipmi}\n"
    )
    text = engine_fleet(groups, LIFECYCLE, extra="faults: {bmc: {error_rate: 0.02}}")

    def once() -> str:
        doc = report.build(simulation.Simulation(scenario.loads(text)).run())
        doc.pop("wall_s")
        return report.dumps(doc)

    assert once() == once()


def test_sim_reports_the_engines_work_in_json(tmp_path: Path) -> None:
    groups = (
        "  - {name: a, count: 2, profile: vm, bmc: redfish-virtualmedia}\n"
        "  - {name: b, count: 2, profile: vm, bmc: ipmi}\n"
    )
    path = tmp_path / "engine.yaml"
    path.write_text(engine_fleet(groups, LIFECYCLE))
    out = tmp_path / "report.json"
    assert cli.main(["sim", str(path), "--quiet", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["engine"]["image_writes"] == 4
    assert doc["engine"]["inventories"] == 4
    assert doc["engine"]["bmc_calls"]["insert cd media"] == 2 * 2  # inspect, clean: fast track


def test_without_fast_track_every_operation_boots_the_ramdisk() -> None:
    groups = "  - {name: a, count: 4, profile: vm, bmc: redfish-virtualmedia}\n"
    fast = report.build(simulation.Simulation(scenario.loads(
        engine_fleet(groups, LIFECYCLE))).run())
    slow = report.build(simulation.Simulation(scenario.loads(
        engine_fleet(groups, LIFECYCLE, extra="provisioner: {fast_track: false}"))).run())
    assert fast["engine"]["bmc_calls"]["insert cd media"] == 2 * 4
    assert slow["engine"]["bmc_calls"]["insert cd media"] == 3 * 4
    assert slow["final_states"] == fast["final_states"] == {"available": 4}
    assert fast["state_durations_s"]["provisioning"]["p50"] < \
        slow["state_durations_s"]["provisioning"]["p50"]


def test_steady_hosts_are_power_synced_once_a_minute_not_per_pass() -> None:
    groups = "  - {name: a, count: 5, profile: vm, bmc: redfish-virtualmedia}\n"
    idle = "  - {action: enroll, at: 0s}\n  - {action: provision, image: os, at: 3h}\n"
    doc = report.build(simulation.Simulation(scenario.loads(engine_fleet(groups, idle))).run())
    # Hours in available polling every 60 s: about one read per host per sync interval (two
    # or three more per host where a pass another controller's write caused lands between, or
    # an observed power change is written in the pass that saw it). Reading per pass would be
    # several times this.
    reads = doc["engine"]["power_sync_reads"]
    assert 0 < reads <= 5 * (3 * 60 + 3)
    assert doc["engine"]["bmc_calls"]["get power state"] < 2 * reads
