"""The terminal summary of a fleet run (rich), drawn from the report dict only.

What an operator asks after a scale run, in that order: did it pass (SLOs, invariants), how
long did it take (makespan, wall time, speed-up), where did the hosts end up, how long did each
state take, how fast did hosts come through, what failed, and how hard were the BMCs, the API
server and the controller worked.
"""

from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from metalcubed.simulators.fleet.observer import STATE_ORDER
from metalcubed.simulators.fleet.quantity import format_duration

_BARS = " ▁▂▃▄▅▆▇█"


def sparkline(values: list[int]) -> str:
    top = max(values, default=0)
    if top <= 0:
        return "·" * len(values)
    return "".join(_BARS[round(v / top * (len(_BARS) - 1))] for v in values)


def _state_sort_key(state: str) -> tuple[int, str]:
    order = {label: i for i, label in enumerate(STATE_ORDER)}
    return (order.get(state, len(order)), state)


def _headline(report: dict[str, Any]) -> Text:
    makespan = report["makespan_s"]
    wall = report["wall_s"]
    speedup = makespan / wall if wall > 0 else float("inf")
    verdict = Text(" PASS ", style="bold black on green") if report["ok"] else Text(
        " FAIL ", style="bold white on red"
    )
    text = Text.assemble(
        verdict,
        "  ",
        (report["scenario"], "bold"),
        f"  seed {report['seed']}  {report['hosts']} hosts  ",
        "makespan ",
        (format_duration(makespan), "bold"),
        " simulated in ",
        (f"{wall:.2f}s", "bold"),
        " wall  (",
        (f"{speedup:,.0f}x", "bold cyan"),
        " faster than real time)",
    )
    if report.get("time_limit_hit"):
        text.append("  time limit reached", style="bold red")
    return text


def _final_states(report: dict[str, Any]) -> Table:
    table = Table(title="Hosts by final state", title_justify="left", expand=False)
    table.add_column("state")
    table.add_column("hosts", justify="right")
    for state in sorted(report["final_states"], key=_state_sort_key):
        count = report["final_states"][state]
        style = "red" if state == "error" else None
        table.add_row(state, str(count), style=style)
    for error_type, count in sorted(report["final_errors"].items()):
        table.add_row(f"  error: {error_type}", str(count), style="red")
    return table


def _durations(report: dict[str, Any]) -> Table:
    table = Table(title="Time per state visit", title_justify="left")
    for name in ("state", "visits", "p50", "p95", "p99", "max"):
        table.add_column(name, justify="left" if name == "state" else "right")
    for state in sorted(report["state_durations_s"], key=_state_sort_key):
        row = report["state_durations_s"][state]
        table.add_row(
            state,
            str(row["count"]),
            *(format_duration(row[q]) for q in ("p50", "p95", "p99", "max")),
        )
    return table


def _throughput(report: dict[str, Any]) -> Table:
    data = report["throughput"]
    bucket = data["bucket_s"]
    table = Table(
        title=f"Throughput (hosts entering, per {format_duration(bucket)})", title_justify="left"
    )
    table.add_column("milestone")
    table.add_column("over simulated time")
    table.add_column("total", justify="right")
    table.add_column("peak/h", justify="right")
    for state, series in data["series"].items():
        if sum(series) == 0:
            continue
        table.add_row(
            state, sparkline(series), str(sum(series)), f"{data['peak_per_hour'][state]:,.0f}"
        )
    return table


def _traffic(report: dict[str, Any]) -> Table:
    bmc = report["bmc"]
    api = report["api"]
    controller = report["controller"]
    peak = report["peak"]
    table = Table(title="Load", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value")
    replies = ", ".join(f"{k} {v}" for k, v in bmc["replies"].items())
    table.add_row(
        "BMC requests",
        f"{bmc['requests']:,} ({replies}); {bmc['per_host']:.1f} per host, "
        f"{bmc['operation_requests_per_host']:.1f} without the periodic power sync; "
        f"peak {bmc['peak_per_minute']}/min, at most {bmc['peak_sessions']} concurrent on one "
        "BMC",
    )
    writes = sum(api["writes"].values())
    table.add_row(
        "API writes",
        f"{writes:,}; {api['throttled']:,} waited for the client rate limiter "
        f"({format_duration(api['throttle_wait_s'])} in total)",
    )
    errors = ", ".join(f"{k} {v}" for k, v in controller["errors"].items()) or "none"
    table.add_row(
        "Reconciles",
        f"{controller['reconciles']:,} by {controller['workers']} workers "
        f"({controller['utilization']:.0%} busy, peak {peak['workers_busy']}); errors: {errors}",
    )
    table.add_row(
        "Peak concurrency",
        f"{peak['pxe_busy']} PXE hosts busy in the provisioner, {peak['provisioner_busy']} in "
        f"all; {peak['delayed']} hosts delayed at once",
    )
    delayed = report["delayed"]
    if delayed["entries"]:
        gap = delayed["retry_gap_s"]
        table.add_row(
            "Delayed hosts",
            f"{delayed['entries']} delays, retried after {format_duration(gap['min'])}"
            f"-{format_duration(gap['max'])} (median {format_duration(gap['p50'])})",
        )
    return table


def _errors(report: dict[str, Any]) -> Table | None:
    if not report["errors_by_type"]:
        return None
    table = Table(title="Errors recorded (errorType)", title_justify="left")
    table.add_column("error type")
    table.add_column("times", justify="right")
    for error_type, count in report["errors_by_type"].items():
        table.add_row(error_type, str(count))
    return table


def _servicing(report: dict[str, Any]) -> Table | None:
    """Firmware servicing: what became of the requests, how long the hosts were away."""
    data = report.get("servicing")
    if data is None:
        return None
    table = Table(title="Servicing (firmware changes on provisioned hosts)", title_justify="left",
                  show_header=False)
    table.add_column("what")
    table.add_column("value")
    table.add_row(
        "Hosts",
        f"{data['requested']} asked: {data['serviced']} serviced, {data['failed']} failed "
        f"visibly, {data['unserviced']} not serviced",
    )
    for label, key in (("Reboot to settled", "durations_s"), ("In servicing", "in_servicing_s")):
        stats = data[key]
        if stats["count"]:
            table.add_row(
                label,
                f"p50 {format_duration(stats['p50'])}, p95 {format_duration(stats['p95'])}, "
                f"max {format_duration(stats['max'])} ({stats['count']} visits)",
            )
    table.add_row(
        "BMCs",
        f"{data['firmware_updates']} updates started, {data['updates_failed']} failed; "
        f"{data['bmc_reboots']} BMC restarts",
    )
    return table


def _clusters(report: dict[str, Any]) -> Table | None:
    """Cluster API clusters: Machines, remediation, what each step took."""
    data = report.get("clusters")
    if data is None:
        return None
    table = Table(title="Clusters (Cluster API core modelled, CAPM3 and IPAM as shipped)",
                  title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value")
    table.add_row("Machines", f"{data['machines_created']} created, {data['machines_running']} "
                              f"running at the end in {data['clusters']} clusters")
    stats = data["machine_running_s"]
    if stats["count"]:
        table.add_row("Created to Running",
                      f"p50 {format_duration(stats['p50'])}, p95 {format_duration(stats['p95'])}, "
                      f"max {format_duration(stats['max'])}")
    table.add_row("Remediation",
                  f"{data['marked_unhealthy']} marked unhealthy, "
                  f"{data.get('remediation_requests', 0)} Metal3Remediations, "
                  f"{data['remediated']} replaced; "
                  f"{data['short_circuits']} MachineHealthCheck short-circuits (maxUnhealthy)")
    for step, seconds in data["settle_s"].items():
        table.add_row(f"Step {step}", f"settled after {format_duration(seconds)}")
    for step in data["unsettled_steps"]:
        table.add_row(f"Step {step}", Text("never settled", style="bold red"))
    writes = ", ".join(f"{m} {v['writes']}" for m, v in data["api_writes"].items())
    table.add_row("API writes", writes)
    return table


def _verdicts(report: dict[str, Any]) -> Table:
    table = Table(title="SLOs and invariants", title_justify="left")
    table.add_column("")
    table.add_column("check")
    table.add_column("target", justify="right")
    table.add_column("actual", justify="right")
    for name, slo in report["slo"].items():
        timed = slo["metric"] == "makespan_s" or slo["metric"].startswith(
            ("state_durations_s", "servicing.durations_s", "clusters.machine_running_s",
             "clusters.settle_s"))
        show = format_duration if timed else (lambda v: f"{v:g}")
        table.add_row(
            Text("✔", style="green") if slo["ok"] else Text("✘", style="bold red"),
            f"{name} ({slo['metric']})",
            f"{slo['op']} {show(slo['target'])}",
            show(slo["actual"]),
        )
    invariants = report["invariants"]
    table.add_row(
        Text("✔", style="green") if invariants["ok"] else Text("✘", style="bold red"),
        "all invariants hold (legal transitions, no host lost or consumed twice, counters"
        + ("; servicing: no image lost, every failure visible" if "servicing" in report
           else "")
        + ("; clusters: no host with two consumers, no IP with two claims, nothing leaked"
           if "clusters" in report else "") + ")",
        "0",
        str(invariants["count"]),
    )
    return table


def render(report: dict[str, Any], console: Console) -> None:
    """Print the summary of `report` (report.build's dict)."""
    parts: list[Any] = [
        _headline(report),
        _final_states(report),
        _durations(report),
        _throughput(report),
    ]
    errors = _errors(report)
    if errors is not None:
        parts.append(errors)
    serviced = _servicing(report)
    if serviced is not None:
        parts.append(serviced)
    clusters = _clusters(report)
    if clusters is not None:
        parts.append(clusters)
    parts.extend([_traffic(report), _verdicts(report)])
    for message in report["invariants"]["violations"][:10]:
        parts.append(Text(f"  {message}", style="red"))
    console.print(Panel(Group(*parts), title="metalcubed sim", expand=False))
