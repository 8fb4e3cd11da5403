"""Fleet-model benchmarks: wall time, work and peak memory of whole scenario runs.

    python benchmarks/fleet.py                      # every case, results/fleet.json
    python benchmarks/fleet.py --only fleet-1000 scale-10000 --repeat 3
    python benchmarks/fleet.py --profile fleet-1000  # where the time goes

Each case runs in a fresh interpreter (so peak RSS is that run's, imports included) and is
repeated; the best wall time is kept, as timing noise on a shared machine only ever adds. CPU
seconds and the 1-minute load average at the start are recorded beside it: on a busy machine
wall time overstates the cost, CPU time much less so.
Recorded per case: wall seconds, simulated makespan, reconcile passes, wall microseconds per
pass and the share spent inside the reconciler (core) versus the simulator around it, and
peak RSS. The scale series runs benchmarks/scenarios/scale.yaml at growing sizes: constant
arrival rate, rolling lifecycle, hosts deleted at the end, so its work per host is constant
and the cost should grow linearly.

Every case runs the provisioning engine (core/provisioning), what `metalcubed manager` ships.
Also recorded: BMC requests per host (all of them, the power-state reads among them, and the
reads that are the periodic power sync of steady hosts), beside what the deleted Ironic-like
model of the same scenario made (`ironic_like_bmc_per_host`: its modelled requests, which left
out Ironic's own periodic power sync, so real Ironic makes more).

Targets (issue 8): fleet-1000 (engine) <= 10 s wall; 10,000 hosts <= 100 s and <= 1 GB peak
RSS; cost linear in hosts. `--profile CASE` adds the CPU per pass by component (cProfile's
self-time shares applied to the CPU per pass of an unprofiled run).
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "fleet.json"

CASES: dict[str, tuple[str, int | None]] = {
    "quickstart": ("scenarios/quickstart.yaml", None),
    "fleet-1000": ("scenarios/fleet-1000.yaml", None),
    "faults-1000": ("scenarios/faults-1000.yaml", None),
    "firmware-1000": ("scenarios/firmware-1000.yaml", None),
    "scale-1000": ("benchmarks/scenarios/scale.yaml", 1000),
    "scale-2500": ("benchmarks/scenarios/scale.yaml", 2500),
    "scale-5000": ("benchmarks/scenarios/scale.yaml", 5000),
    "scale-10000": ("benchmarks/scenarios/scale.yaml", 10_000),
}

TARGETS = {
    "fleet-1000": {"wall_s": 10.0},
    "scale-10000": {"wall_s": 100.0, "peak_rss_mb": 1024.0},
}

IRONIC_LIKE_BMC_PER_HOST = {"fleet-1000": 18.98, "faults-1000": 26.95}
"""BMC requests per host of the Ironic-like model (deleted in favour of the engine), measured
on the same scenarios just before its removal: power, boot device and media actions and the
power reads around them, but not Ironic's periodic power sync (one read per node per
sync_power_state_interval, 60 s), which it did not model."""


def measure(case: str) -> dict[str, Any]:
    """Run one case in this process and return its figures."""
    from metalcubed.simulators.fleet import report, scenario, simulation

    path, hosts = CASES[case]
    spec = scenario.load(ROOT / path)
    if hosts is not None:
        spec = spec.with_hosts(hosts)
    load_before = os.getloadavg()[0]
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    outcome = simulation.Simulation(spec).run()
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    data = report.build(outcome)
    # Every controller's passes (one before there were several): CPU per pass stays comparable.
    passes = sum(c.stats.passes for c in outcome.controllers)
    inside = sum(c.stats.reconcile_wall_s for c in outcome.controllers)
    engine = data["engine"]
    hosts_n = spec.host_count
    bmc = {
        "requests_per_host": data["bmc"]["per_host"],
        "power_state_reads_per_host": data["bmc"]["power_state_reads_per_host"],
        "power_sync_reads_per_host": round(engine["power_sync_reads"] / hosts_n, 2),
        "other_requests_per_host": round(
            data["bmc"]["per_host"] - engine["power_sync_reads"] / hosts_n, 2
        ),
    }
    if case in IRONIC_LIKE_BMC_PER_HOST:
        bmc["ironic_like_bmc_per_host"] = IRONIC_LIKE_BMC_PER_HOST[case]
    return {
        "case": case,
        "scenario": spec.name,
        "hosts": spec.host_count,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "load_average_1m": round(load_before, 2),
        "makespan_s": round(outcome.makespan_s, 1),
        "speedup": round(outcome.makespan_s / wall, 1),
        "reconciles": passes,
        "reconciles_per_host": round(passes / spec.host_count, 1),
        "us_per_reconcile": round(wall / passes * 1e6, 1),
        "cpu_us_per_reconcile": round(cpu / passes * 1e6, 1),
        "bmc": bmc,
        "reconciler_share": round(inside / wall, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "ok": data["ok"],
        "final_states": data["final_states"],
        "controllers": {c.name: c.stats.passes for c in outcome.controllers},
        "invariants": data["invariants"]["by_invariant"],
        **({"servicing": data["servicing"]} if "servicing" in data else {}),
    }


_COMPONENTS = (
    ("/core/reconcilers/", "core: reconciler"),
    ("/core/conditions", "core: reconciler"),
    ("/core/annotations", "core: reconciler"),
    ("/core/backoff", "core: reconciler"),
    ("/core/fsm", "core: reconciler"),
    ("/core/api/", "core: API models"),
    ("/core/queue", "core: workqueue"),
    ("/core/memory_store", "core: memory store"),
    ("pydantic", "pydantic"),
    ("/core/provisioning/", "core: provisioning engine"),
    ("/core/wiring", "core: wiring (event mapping, outcome switch)"),
    ("/simulators/fleet/runtime", "sim: runtime (slots, alarm, clock)"),
    ("/simulators/fleet/engine", "sim: engine adapters (BMC capabilities, agent)"),
    ("/simulators/fleet/link", "sim: engine adapters (BMC capabilities, agent)"),
    ("/simulators/fleet/firmware", "sim: engine adapters (BMC capabilities, agent)"),
    ("/simulators/fleet/machine", "sim: machines and BMCs"),
    ("/simulators/fleet/bmc", "sim: machines and BMCs"),
    ("/simulators/hostmodel", "sim: machines and BMCs"),
    ("/simulators/fleet/", "sim: observer, workload, costs"),
    ("simpy", "simpy scheduling"),
)


def profile(case: str) -> dict[str, Any]:
    """Self time by component and the 15 costliest functions, under cProfile (which slows
    everything about 2x, evenly enough for shares)."""
    import cProfile
    import pstats

    from metalcubed.simulators.fleet import scenario, simulation

    path, hosts = CASES[case]
    spec = scenario.load(ROOT / path)
    if hosts is not None:
        spec = spec.with_hosts(hosts)
    sim = simulation.Simulation(spec)
    profiler = cProfile.Profile()
    profiler.enable()
    sim.run()
    profiler.disable()
    stats = pstats.Stats(profiler)
    shares: dict[str, float] = {}
    functions: list[tuple[float, str]] = []
    total = 0.0
    for (file, line, name), (_cc, calls, own, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        total += own
        component = next((label for key, label in _COMPONENTS if key in file),
                         "builtins and stdlib (dict, hash, heapq, datetime, random)")
        shares[component] = shares.get(component, 0.0) + own
        short = file.split(f"{ROOT}/")[-1].split("site-packages/")[-1]
        functions.append((own, f"{short}:{line}({name}) calls={calls}"))
    functions.sort(reverse=True)
    return {
        "case": case,
        "reconciles": sim.controller.stats.passes,
        "self_time_share": {k: round(v / total, 3)
                            for k, v in sorted(shares.items(), key=lambda kv: -kv[1])},
        "top_functions": [f"{own / total:5.1%}  {where}" for own, where in functions[:15]],
    }


def _child(case: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", case],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), help="cases to run")
    parser.add_argument("--repeat", type=int, default=2, help="runs per case (best kept)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--profile", choices=sorted(CASES),
                        help="profile one case; writes results/fleet-profile.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child)))
        return 0
    if args.profile:
        data = profile(args.profile)
        plain = _child(args.profile)  # CPU per pass without the profiler's overhead
        per_pass = plain["cpu_us_per_reconcile"]
        data["cpu_us_per_reconcile"] = per_pass
        data["reconciles_per_host"] = plain["reconciles_per_host"]
        data["cpu_us_per_reconcile_by_component"] = {
            name: round(share * per_pass, 1) for name, share in data["self_time_share"].items()
        }
        out = args.out.with_name("fleet-profile.json")
        out.write_text(json.dumps(data, indent=2) + "\n")
        print(json.dumps(data, indent=2))
        return 0
    cases = args.only or list(CASES)
    previous: dict[str, Any] = {}
    if args.out.exists():
        previous = {run["case"]: run for run in json.loads(args.out.read_text())["runs"]}
    machine = _machine()
    for case in cases:
        runs = [_child(case) for _ in range(max(1, args.repeat))]
        best = min(runs, key=lambda run: run["wall_s"])
        best["wall_s_all"] = [run["wall_s"] for run in runs]
        best["cpu_s_all"] = [run["cpu_s"] for run in runs]
        target = TARGETS.get(case)
        if target is not None:
            best["targets"] = {
                key: {"target": value, "actual": best[key], "met": best[key] <= value}
                for key, value in target.items()
            }
        previous[case] = best
        print(f"{case:>12}: {best['hosts']:>6} hosts  wall {best['wall_s']:7.2f}s  "
              f"cpu {best['cpu_s']:7.2f}s  simulated {best['makespan_s'] / 3600:6.2f}h  "
              f"{best['reconciles']:>8} passes  {best['cpu_us_per_reconcile']:6.1f} cpu us/pass  "
              f"bmc/host {best['bmc']['requests_per_host']:6.1f}  "
              f"rss {best['peak_rss_mb']:6.0f} MB")
    ordered = [previous[name] for name in CASES if name in previous]
    scale = [run for run in ordered if run["case"].startswith("scale-")]
    linearity = None
    if len(scale) >= 2:
        first, last = scale[0], scale[-1]
        linearity = {
            "hosts": [run["hosts"] for run in scale],
            "wall_s_per_1000_hosts": [round(run["wall_s"] / run["hosts"] * 1000, 3)
                                      for run in scale],
            "reconciles_per_host": [run["reconciles_per_host"] for run in scale],
            "growth_ratio": round(
                (last["wall_s"] / last["hosts"]) / (first["wall_s"] / first["hosts"]), 3
            ),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"machine": machine, "runs": ordered, "linearity": linearity},
                   indent=2, sort_keys=True) + "\n"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
