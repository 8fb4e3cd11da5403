"""Servicing through the fleet model (issue 10): provisioned hosts get BIOS settings and
firmware through the controllers the manager runs, over the fleet's BMCs; the invariants hold
(no image lost, every failure visible) and they catch a broken outcome."""

from typing import Any

from metalcubed.core import bmc
from metalcubed.simulators.fleet import simulation
from tests.scenarios.conftest import fleet, run

GROUPS = (
    "  - {name: vm, count: 6, profile: generic, bmc: redfish-virtualmedia}\n"
    "  - {name: pxe, count: 4, profile: edge-1u, bmc: redfish}\n"
)
FIRMWARE = """
firmware:
  bios-2.4.1: {component: bios, url: "https://fw.example.com/bios-2.4.1.fwimg"}
  bmc-6.10: {component: bmc, url: "https://fw.example.com/bmc-6.10.00.fwimg"}
  gone: {component: bios, url: "https://fw.example.com/bios-9.0.fwimg", served: false}
"""


def service(step: str, *, faults: str = "", groups: str = GROUPS) -> str:
    workload = (
        "  - {action: enroll, at: 0s}\n"
        "  - {action: provision, image: os, when: available, per_host: true}\n"
        f"  - {{action: service, when: provisioned, per_host: true, {step}}}\n"
    )
    return fleet(groups, workload, extra=FIRMWARE + faults)


def _machines(outcome: simulation.RunOutcome) -> dict[str, Any]:
    return {t.machine.name: t.machine for t in outcome.engine.targets.values()}


def test_hosts_are_serviced_and_keep_their_image() -> None:
    data, outcome = run(service(
        "settings: {ProcVirtualization: Disabled, PxeRetryCount: 5}, "
        "firmware: [bios-2.4.1, bmc-6.10]"))
    assert data["invariants"]["ok"], data["invariants"]["violations"]
    servicing = data["servicing"]
    assert servicing["requested"] == servicing["serviced"] == 10
    assert servicing["failed"] == 0
    assert servicing["bmc_reboots"] >= 10  # every BMC restarts after its own update
    assert data["final_states"] == {"provisioned": 10}
    for machine in _machines(outcome).values():
        assert machine.firmware == {"bios": "2.4.1", "bmc": "6.10.00"}
        assert machine.bios["ProcVirtualization"] == "Disabled"
        assert machine.bios["PxeRetryCount"] == 5
        assert machine.disk_image and machine.writes == 1  # the workload never rewritten
    assert servicing["durations_s"]["count"] == 10


def test_without_a_policy_nothing_is_flashed() -> None:
    data, outcome = run(service("policy: none, firmware: [bios-2.4.1]"))
    assert data["invariants"]["ok"], data["invariants"]["violations"]
    assert data["servicing"]["unserviced"] == 10
    assert all(m.firmware["bios"] == "2.1.7" for m in _machines(outcome).values())
    assert data["servicing"]["firmware_updates"] == 0


def test_a_typo_fails_visibly_and_no_host_hangs_in_servicing() -> None:
    data, _ = run(service("settings: {ProcVirtualisation: Disabled}, firmware: [gone]"))
    assert data["invariants"]["ok"], data["invariants"]["violations"]
    assert data["servicing"]["failed"] == 10
    assert data["servicing"]["serviced"] == 0


def test_bmcs_rebooting_during_the_update_do_not_lose_it() -> None:
    data, outcome = run(service(
        "firmware: [bios-2.4.1]", faults="faults: {bmc: {reboot_during_update: 100%}}"))
    assert data["invariants"]["ok"], data["invariants"]["violations"]
    assert data["servicing"]["bmc_reboots"] >= 10
    assert data["servicing"]["serviced"] == 10
    assert all(m.firmware["bios"] == "2.4.1" for m in _machines(outcome).values())


def test_failed_flashes_end_visible_in_status() -> None:
    data, outcome = run(service(
        "firmware: [bios-2.4.1]", faults="faults: {bmc: {update_failure: 100%}}"))
    assert data["invariants"]["ok"], data["invariants"]["violations"]
    assert data["servicing"]["failed"] == 10
    assert data["final_errors"] == {"servicing error": 10}
    tasks = [t for target in outcome.engine.targets.values() for t in target.tasks or ()]
    assert tasks and all(t.state == bmc.TaskState.FAILED for t in tasks)


def test_the_invariants_catch_a_lost_image_and_an_invisible_failure() -> None:
    """Break the hardware's truth after a clean run: the checks must say so."""
    data, outcome = run(service("firmware: [bios-2.4.1]"))
    assert data["invariants"]["ok"], data["invariants"]["violations"]
    servicing = outcome.servicing
    assert servicing is not None
    machines = list(_machines(outcome).values())
    machines[0].writes += 1  # rewritten behind the user's back
    machines[1].firmware["bios"] = "2.1.7"  # the flash did not land, yet status says fine
    counts = servicing.check()
    violations = outcome.observer.violations
    assert violations.counts["image-lost"] == 1
    assert violations.counts["failure-invisible"] == 1
    assert counts["serviced"] == 9


def test_servicing_runs_are_reproducible() -> None:
    text = service("settings: {PxeRetryCount: 7}, firmware: [bios-2.4.1]",
                   faults="faults: {bmc: {update_failure: 30%, reboot_during_update: 30%}}")
    first, _ = run(text, seed=5)
    second, _ = run(text, seed=5)
    first.pop("wall_s")
    second.pop("wall_s")
    assert first == second
    assert first["servicing"]["requested"] == 10


def test_bmcs_that_restart_mid_update_lengthen_the_maintenance_window() -> None:
    """What the model shows: a BMC restarting during the flash answers nothing (each request
    hangs for the client timeout and is retried), so servicing takes longer."""
    step = "firmware: [bios-2.4.1]"
    calm, _ = run(service(step))
    stormy, _ = run(service(step, faults="faults: {bmc: {reboot_during_update: 100%}}"))
    assert calm["invariants"]["ok"] and stormy["invariants"]["ok"]
    assert stormy["bmc"]["replies"].get("TIMEOUT", 0) > calm["bmc"]["replies"].get("TIMEOUT", 0)
    assert stormy["servicing"]["durations_s"]["p50"] > calm["servicing"]["durations_s"]["p50"]
