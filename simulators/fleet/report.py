"""The report of a fleet run: the JSON document (`--json`), SLO verdicts and the exit status.

Keys the `metalcubed sim` contract fixes: `scenario`, `seed`, `hosts`, `final_states` (state ->
hosts), `makespan_s`, `wall_s`, `state_durations_s` (state -> p50/p95/p99), `errors_by_type`,
`slo` (name -> target, actual, ok), `invariants` (ok, violations). Besides those: throughput
over time, BMC traffic (also per host) and API traffic, peaks, controller utilization, what
the provisioning engine asked of the BMCs and agents (`engine`), Events by reason. Everything
except `wall_s` is a function of the scenario and the seed; floats are rounded to the
millisecond and keys sorted, so two runs give byte-identical JSON apart from that one field.
"""

import json
import math
from collections import Counter
from typing import Any

from metalcubed.simulators.fleet import scenario
from metalcubed.simulators.fleet.observer import DELETED, ERROR, STATE_ORDER
from metalcubed.simulators.fleet.simulation import RunOutcome

THROUGHPUT_STATES = ("available", "provisioned", DELETED)
"""The milestones counted for the throughput series."""

RETRY_GAP_MIN_S = 10.0
"""Gaps between passes over a delayed host shorter than this are watch-triggered passes,
not retries, and are left out of `delayed.retry_gap_s`."""


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _r(value: float) -> float:
    return round(value, 3)


def _durations(outcome: RunOutcome) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for state, values in outcome.observer.durations.items():
        if not state:
            continue  # the instant between create and the first pass
        ordered = sorted(values)
        out[state] = {
            "count": len(ordered),
            "p50": _r(percentile(ordered, 50)),
            "p95": _r(percentile(ordered, 95)),
            "p99": _r(percentile(ordered, 99)),
            "max": _r(ordered[-1]),
            "mean": _r(sum(ordered) / len(ordered)),
        }
    return out


def _final_states(outcome: RunOutcome) -> tuple[dict[str, int], dict[str, int]]:
    states: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for record in outcome.observer.hosts.values():
        if record.label == DELETED:
            states[DELETED] += 1
        elif record.label == ERROR:
            states[ERROR] += 1
            errors[record.error_type] += 1
        else:
            states[record.state.value or "(none)"] += 1
    return dict(states), dict(errors)


def _throughput(outcome: RunOutcome) -> dict[str, Any]:
    minutes = max(1, math.ceil(outcome.makespan_s / 60.0))
    bucket_min = max(1, math.ceil(minutes / 40))
    buckets = math.ceil(minutes / bucket_min)
    series: dict[str, list[int]] = {}
    for state in THROUGHPUT_STATES:
        counts = [0] * buckets
        for (label, minute), hosts in outcome.observer.entries.items():
            if label == state:
                counts[min(minute // bucket_min, buckets - 1)] += hosts
        series[state] = counts
    peak = {state: max(values) / (bucket_min * 60.0) * 3600.0 for state, values in series.items()}
    return {
        "bucket_s": bucket_min * 60,
        "series": series,
        "peak_per_hour": {state: _r(value) for state, value in peak.items()},
    }


def _bmc(outcome: RunOutcome) -> dict[str, Any]:
    stats = outcome.bmc_stats
    requests = sum(stats.requests.values())
    errors = sum(count for reply, count in stats.replies.items() if reply != "OK")
    hosts = max(sum(group.count for group in outcome.spec.groups), 1)
    return {
        "requests": requests,
        "per_host": _r(requests / hosts),
        "power_state_reads_per_host": _r(stats.requests.get("get_power_state", 0) / hosts),
        # What operations cost, without the periodic power sync of steady hosts (which Ironic
        # does as well, once per sync_power_state_interval).
        "operation_requests_per_host": _r(
            (requests - outcome.engine.stats.power_sync_reads) / hosts
        ),
        "errors": errors,
        "by_kind": dict(sorted(stats.requests.items())),
        "replies": dict(sorted(stats.replies.items())),
        "peak_per_minute": max(stats.per_minute.values(), default=0),
        "mean_per_minute": _r(requests / max(outcome.makespan_s / 60.0, 1.0)),
        "peak_sessions": stats.peak_sessions,
    }


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50": _r(percentile(ordered, 50)),
        "p95": _r(percentile(ordered, 95)),
        "p99": _r(percentile(ordered, 99)),
        "max": _r(ordered[-1]) if ordered else 0.0,
    }


def _servicing(outcome: RunOutcome) -> dict[str, Any]:
    """Firmware servicing: hosts by outcome (servicing.check), the maintenance window (reboot
    request to settled again), time in operationalStatus servicing, the BMCs' flashes."""
    servicing = outcome.servicing
    assert servicing is not None
    stats = outcome.engine.stats
    return {
        **(outcome.serviced or {}),
        "durations_s": _stats(servicing.windows),
        "in_servicing_s": _stats(servicing.in_servicing),
        "reboots_forced": servicing.reboots_forced,
        "firmware_updates": stats.firmware_updates,
        "updates_failed": stats.updates_failed,
        "bmc_reboots": stats.bmc_reboots,
    }


def _clusters(outcome: RunOutcome) -> dict[str, Any]:
    """The Cluster API clusters (clusters.py's figures) and every manager's API writes."""
    assert outcome.clusters is not None
    section = outcome.clusters.report()
    section["api_writes"] = {
        manager: {"writes": sum(stats.writes.values()), "throttled": stats.throttled,
                  "throttle_wait_s": _r(stats.throttle_wait_s)}
        for manager, stats in sorted(outcome.group_api_stats.items())}
    return section


def _slo_actual(report: dict[str, Any], metric: str) -> float:
    parts = metric.split(".")
    if parts[0] == "clusters":
        section = report.get("clusters", {})
        if len(parts) == 3:
            return float(section.get(parts[1], {}).get(parts[2], math.inf if parts[1] in (
                "settle_s", "machine_running_s") else 0.0))
        return float(section.get(parts[1], 0))
    if parts[0] == "servicing":
        section = report.get("servicing", {})
        if len(parts) == 3:
            return float(section.get(parts[1], {}).get(parts[2], 0.0))
        return float(section.get(parts[1], 0))
    if metric == "hosts_in_error":
        return float(sum(report["final_errors"].values()))
    if metric == "invariant_violations":
        return float(report["invariants"]["count"])
    if parts[0] in ("final_states", "errors_by_type"):
        return float(report[parts[0]].get(parts[1], 0))
    if parts[0] == "state_durations_s":
        return float(report["state_durations_s"].get(parts[1], {}).get(parts[2], 0.0))
    if parts[0] in ("peak", "bmc"):
        return float(report[parts[0]][parts[1]])
    return float(report[metric])


def evaluate_slos(spec: scenario.Scenario, report: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    hosts = report["hosts"]
    for slo in spec.slos:
        target = slo.target if slo.target_fraction is None else slo.target_fraction * hosts
        actual = _slo_actual(report, slo.metric)
        ok = actual <= target if slo.op == scenario.SloOp.MAX else actual >= target
        out[slo.name] = {
            "metric": slo.metric,
            "op": "<=" if slo.op == scenario.SloOp.MAX else ">=",
            "target": _r(target),
            "actual": _r(actual),
            "ok": ok,
        }
    return out


def build(outcome: RunOutcome) -> dict[str, Any]:
    """The report as a JSON-ready dict."""
    spec = outcome.spec
    observer = outcome.observer
    controller = outcome.controller
    engine_stats = outcome.engine.stats
    final_states, final_errors = _final_states(outcome)
    hosts = sum(group.count for group in spec.groups)
    workers = spec.controller.concurrency
    # A delayed host's retries; a pass a watch event brought within seconds is not one.
    gaps = sorted(gap for gap in controller.stats.delayed_gaps if gap >= RETRY_GAP_MIN_S)
    violations = observer.violations
    report: dict[str, Any] = {
        "scenario": spec.name,
        "seed": outcome.seed,
        "hosts": hosts,
        "groups": {group.name: group.count for group in spec.groups},
        "final_states": final_states,
        "final_errors": final_errors,
        "makespan_s": _r(outcome.makespan_s),
        "wall_s": _r(outcome.wall_s),
        "time_limit_hit": outcome.time_limit_hit,
        "steps": {name: _r(at) for name, at in outcome.steps_fired},
        "state_durations_s": _durations(outcome),
        "throughput": _throughput(outcome),
        "errors_by_type": dict(
            sorted(outcome.metrics.by_label("metal3_host_error_total", "error_type").items())
        ),
        "bmc": _bmc(outcome),
        "api": {
            "writes": dict(sorted(outcome.api_stats.writes.items())),
            "throttled": outcome.api_stats.throttled,
            "throttle_wait_s": _r(outcome.api_stats.throttle_wait_s),
        },
        "controller": {
            "workers": workers,
            "reconciles": controller.stats.passes,
            "errors": dict(sorted(controller.stats.errors.items())),
            "utilization": _r(controller.stats.busy_s / max(workers * outcome.makespan_s, 1e-9)),
            "queue_longest_wait_s": _r(controller.queue.metrics.longest_wait_s),
        },
        "controllers": {
            c.name: {
                "reconciles": c.stats.passes,
                "errors": dict(sorted(c.stats.errors.items())),
                "utilization": _r(c.stats.busy_s / max(c.concurrency * outcome.makespan_s, 1e-9)),
            }
            for c in outcome.controllers
        },
        "peak": {
            "workers_busy": controller.stats.peak_busy,
            "pxe_busy": engine_stats.peak_pxe_busy,
            "provisioner_busy": engine_stats.peak_busy,
            "bmc_sessions": outcome.bmc_stats.peak_sessions,
            "delayed": observer.peak_delayed,
        },
        "delayed": {
            "entries": observer.delayed_entries,
            "retries": len(gaps),
            "retry_gap_s": {
                "min": _r(gaps[0]) if gaps else 0.0,
                "p50": _r(percentile(gaps, 50)),
                "max": _r(gaps[-1]) if gaps else 0.0,
            },
        },
        "engine": engine_stats.as_dict(),
        "events": dict(sorted(outcome.events.by_reason.items())),
        "invariants": {
            "ok": violations.total == 0,
            "count": violations.total,
            "by_invariant": dict(sorted(violations.counts.items())),
            "violations": list(violations.messages),
        },
    }
    if outcome.servicing is not None:
        report["servicing"] = _servicing(outcome)
    if outcome.clusters is not None:
        report["clusters"] = _clusters(outcome)
    report["slo"] = evaluate_slos(spec, report)
    report["ok"] = report["invariants"]["ok"] and all(v["ok"] for v in report["slo"].values())
    return report


def timeline(outcome: RunOutcome) -> tuple[list[float], dict[str, list[int]]]:
    """Hosts per state over simulated time, from the observer's samples (for the plot)."""
    times = [t for t, _ in outcome.observer.samples]
    series = {
        label: [counts[i] for _, counts in outcome.observer.samples]
        for i, label in enumerate(STATE_ORDER)
    }
    return times, {label: values for label, values in series.items() if any(values)}


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True) + "\n"
