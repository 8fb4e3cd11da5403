"""Faults: every failed host ends in error with upstream's errorType and message."""

from metalcubed.core.api import baremetalhost as bmh
from metalcubed.simulators.fleet import scenario, simulation
from tests.scenarios.conftest import LIFECYCLE, fleet, run


def test_a_host_that_never_finishes_post_ends_in_inspection_error() -> None:
    groups = "  - {name: dead, count: 2, profile: vm, bmc: redfish-virtualmedia}\n"
    extra = "settle_error_count: 2\nfaults: {hosts: {post_hang: 1.0}}"
    text = fleet(groups, LIFECYCLE, extra=extra)
    spec = scenario.loads(text)
    sim = simulation.Simulation(spec)
    sim.run()
    for host in sim.store.list(bmh.BareMetalHost):
        status = host.status
        assert status.provisioning.state == bmh.ProvisioningState.INSPECTING
        assert status.operational_status == bmh.OperationalStatus.ERROR
        assert status.error_type == bmh.ErrorType.INSPECTION
        assert status.error_message == "timeout reached while inspecting the node"


def test_crashing_agents_cost_retries_but_hosts_get_through() -> None:
    groups = "  - {name: g, count: 20, profile: vm, bmc: redfish-virtualmedia}\n"
    report, _ = run(fleet(groups, LIFECYCLE, extra="faults: {hosts: {agent_crash: 0.3}}"))
    assert report["errors_by_type"]  # crashes were noticed (callback timeouts)
    assert report["final_states"].get("available", 0) >= 18
    assert report["invariants"]["ok"], report["invariants"]


def test_bmc_500s_on_actions_are_retried_as_transient_errors() -> None:
    groups = "  - {name: g, count: 30, profile: vm, bmc: redfish-virtualmedia}\n"
    report, _ = run(fleet(groups, LIFECYCLE, extra="faults: {bmc: {error_rate: 0.05}}"))
    assert report["bmc"]["replies"]["SERVER_ERROR"] > 0
    # The engine raises a 5xx on an action as a TransientError: the workqueue retries it.
    assert report["controller"]["errors"].get("TransientError", 0) > 0
    assert report["final_states"].get("available", 0) == 30  # retried through to the end
    assert report["invariants"]["ok"], report["invariants"]


def test_shared_chassis_bmcs_answer_503_past_their_session_cap() -> None:
    groups = (
        "  - {name: blades, count: 32, profile: vm, bmc: redfish-virtualmedia, "
        "hosts_per_bmc: 16}\n"
    )
    report, _ = run(
        fleet(groups, LIFECYCLE, extra="faults: {bmc: {session_cap: 2, timeout_rate: 0.05}}")
    )
    assert report["bmc"]["replies"].get("UNAVAILABLE", 0) > 0
    assert report["bmc"]["peak_sessions"] == 2


def test_409s_after_power_off_are_absorbed_by_the_engines_retries() -> None:
    groups = "  - {name: g, count: 10, profile: vm, bmc: idrac-virtualmedia}\n"
    report, _ = run(
        fleet(groups, LIFECYCLE, extra="faults: {bmc: {conflict_after_power_off: 25s}}")
    )
    assert report["bmc"]["replies"]["CONFLICT"] > 0
    assert report["final_states"] == {"available": 10}


def test_faults_are_confined_to_the_named_groups() -> None:
    groups = (
        "  - {name: sick, count: 5, profile: vm, bmc: redfish-virtualmedia}\n"
        "  - {name: well, count: 5, profile: vm, bmc: redfish-virtualmedia}\n"
    )
    text = fleet(
        groups, LIFECYCLE, extra="faults: {groups: [sick], hosts: {disk_failure: 1.0}}"
    )
    spec = scenario.loads(text)
    sim = simulation.Simulation(spec)
    sim.run()
    failed = sorted(
        h.metadata.name.split("-")[0]
        for h in sim.store.list(bmh.BareMetalHost)
        if h.status.operational_status == bmh.OperationalStatus.ERROR
    )
    assert failed == ["sick"] * 5
