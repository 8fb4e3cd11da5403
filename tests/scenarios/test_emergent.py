"""With upstream's settings, the fleet model must show upstream's behaviour.

These are behaviours nobody scripted: they emerge from the real reconciler, the workqueue and
the provisioning engine running together in simulated time (bmo.md 6.1 and 3).
"""

from tests.scenarios.conftest import LIFECYCLE, fleet, run

PXE_60 = "  - {name: pxe, count: 60, profile: vm, bmc: redfish}\n"
VMEDIA_60 = "  - {name: vm, count: 60, profile: vm, bmc: redfish-virtualmedia}\n"


def test_never_more_than_20_pxe_hosts_busy_and_the_rest_are_delayed() -> None:
    report, _ = run(fleet(PXE_60, LIFECYCLE))
    assert report["peak"]["pxe_busy"] == 20  # saturated, never past the limit
    assert report["delayed"]["entries"] > 0
    assert report["final_states"] == {"available": 60}
    assert report["invariants"]["ok"], report["invariants"]


def test_delayed_hosts_retry_after_one_to_two_minutes() -> None:
    _, outcome = run(fleet(PXE_60, LIFECYCLE))
    gaps = [g for g in outcome.controller.stats.delayed_gaps if g > 5.0]  # skip watch wakeups
    assert gaps, "no delayed host was retried"
    # A gap may be counted from a watch-triggered pass that came up to 5 s after the pass
    # that set the retry: the retry is still due 60-120 s after that one. Gaps run from pass
    # start to pass start, and the retry is due 60-120 s after the pass ends: a pass's own
    # simulated BMC calls (and a wait for a free worker) add up to a few seconds on top.
    assert min(gaps) >= 60.0 - 5.0 and max(gaps) <= 120.0 + 5.0
    assert sorted(gaps)[len(gaps) // 2] >= 60.0


def test_virtual_media_hosts_are_not_limited() -> None:
    report, _ = run(fleet(VMEDIA_60, LIFECYCLE))
    assert report["peak"]["provisioner_busy"] > 20
    assert report["peak"]["pxe_busy"] == 0
    assert report["delayed"]["entries"] == 0


def test_a_raised_limit_lets_more_pxe_hosts_through_and_shortens_the_run() -> None:
    limited, _ = run(fleet(PXE_60, LIFECYCLE))
    raised, _ = run(fleet(PXE_60, LIFECYCLE, extra="controller: {provisioning_limit: 60}"))
    assert raised["peak"]["pxe_busy"] > 20
    assert raised["makespan_s"] < limited["makespan_s"]


BAD_DISKS = """
  - {name: bad, count: 3, profile: vm, bmc: redfish-virtualmedia}
"""


def test_a_host_whose_provisioning_keeps_failing_stops_at_the_retry_limit() -> None:
    report, outcome = run(
        fleet(BAD_DISKS, LIFECYCLE, extra="faults: {hosts: {disk_failure: 1.0}}")
    )
    assert report["final_states"] == {"error": 3}
    assert report["final_errors"] == {"provisioning error": 3}
    assert outcome.engine.stats.image_writes == 3 * 5  # five deploys each, then stop
    assert report["invariants"]["ok"], report["invariants"]


def test_the_retry_limit_is_the_controller_setting() -> None:
    _, outcome = run(
        fleet(
            BAD_DISKS,
            LIFECYCLE,
            extra="faults: {hosts: {disk_failure: 1.0}}\ncontroller: {max_provisioning_retries: 2}",
        )
    )
    assert outcome.engine.stats.image_writes == 3 * 2


def test_concurrency_one_serializes_reconciles() -> None:
    report, _ = run(fleet(VMEDIA_60, LIFECYCLE, extra="controller: {concurrency: 1}"))
    assert report["peak"]["workers_busy"] == 1
    assert report["final_states"] == {"available": 60}


def test_a_tight_client_qps_throttles_writes() -> None:
    loose, _ = run(fleet(VMEDIA_60, LIFECYCLE))
    tight, _ = run(
        fleet(VMEDIA_60, LIFECYCLE, extra="controller: {kube_api_qps: 0.5, kube_api_burst: 1}")
    )
    assert tight["api"]["throttle_wait_s"] > 10 * max(loose["api"]["throttle_wait_s"], 1.0)
