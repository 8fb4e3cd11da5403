"""Scale harness: N emulated hosts behind real Redfish (sushy-tools, HTTP), enroll -> provisioned.

What it measures (the issue's performance contract), for each fleet size:
- wall time from the first BareMetalHost created until every host is `provisioned`, split into
  enroll -> available (registration and inspection: the deploy ISO booted from virtual media,
  the agent's inventory) and available -> provisioned (image set on every host, as `devenv up
  --provision` does: ramdisk boot, image download and sha256 check, boot from disk);
- Redfish requests per host, and the emulators' request rate (mean over the run, peak second,
  per emulator process);
- where the time goes: the one-host floor (a lone host through the same steps), time per host in
  each state (p50/p95/max), reconciles per host and the time spent inside them, how long ready
  keys waited for a worker, CPU seconds of the controller process and of each emulator process,
  and how busy the machine's cores were.

How: the devenv lab (simulators/devenv/lab.py) with every host on `redfish-virtualmedia`, FAST
hardware timings, the controller (composed manager, threaded workers, memory store) in this
process and the Redfish emulators with their hosts' deploy agents in `--hosts-per-process`
shards (child processes, stopped at the end). A store watch records when each host first shows
each state; the emulators' counters are sampled every second.

    python benchmarks/redfish_scale.py --out benchmarks/results/redfish_scale.json

(default fleet sizes: 1, 100 and 1000 hosts; `--hosts 100` for one size).

It is a benchmark, not a test: not collected by pytest.
"""

import argparse
import itertools
import json
import logging
import os
import platform
import statistics
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from metalcubed.core import ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.simulators.devenv import config as lab_config
from metalcubed.simulators.devenv import lab as lab_module

S = bmh.ProvisioningState
CLK_TCK = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parents[1]


def _machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores, /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLK_TCK


def _self_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Timeline:
    """First time (monotonic) each host shows each provisioning state, from a store watch."""

    def __init__(self) -> None:
        self.first: dict[str, dict[str, float]] = defaultdict(dict)
        self.lock = threading.Lock()

    def __call__(self, event: ports.WatchEvent[bmh.BareMetalHost]) -> None:
        host = event.object
        state = host.status.provisioning.state.value
        now = time.monotonic()
        with self.lock:
            self.first[host.metadata.name].setdefault(state, now)

    def count(self, state: S) -> int:
        with self.lock:
            return sum(1 for states in self.first.values() if state.value in states)


def _wait(timeline: Timeline, state: S, total: int, *, timeout_s: float, label: str) -> float:
    started = time.monotonic()
    last = -1
    while True:
        done = timeline.count(state)
        if done != last and sys.stderr.isatty():
            print(f"\r  {label}: {done}/{total}", end="", file=sys.stderr, flush=True)
        last = done
        if done >= total:
            if sys.stderr.isatty():
                print(file=sys.stderr)
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{label}: {done}/{total} after {timeout_s:.0f} s")
        time.sleep(0.05)


def _durations(timeline: Timeline, start: S, end: S) -> list[float]:
    out = []
    for states in timeline.first.values():
        if start.value in states and end.value in states:
            out.append(states[end.value] - states[start.value])
    return out


def _stat(values: list[float]) -> dict[str, float]:
    return {"p50_s": round(_pct(values, 0.5), 3), "p95_s": round(_pct(values, 0.95), 3),
            "max_s": round(max(values, default=0.0), 3),
            "mean_s": round(statistics.fmean(values), 3) if values else 0.0}


def _histogram_sum_count(histogram: Any) -> tuple[float, float]:
    total = count = 0.0
    for family in histogram.collect():
        for sample in family.samples:
            if sample.name.endswith("_sum"):
                total += sample.value
            elif sample.name.endswith("_count"):
                count += sample.value
    return total, count


def run(hosts: int, *, hosts_per_process: int, concurrency: int, timeout_s: float
        ) -> dict[str, Any]:
    cfg = lab_config.LabConfig(hosts=hosts, bmc=lab_config.BmcMix.REDFISH,
                               hosts_per_process=hosts_per_process, concurrency=concurrency,
                               image_size_mib=8)
    lab = lab_module.Lab(cfg)
    setup_started = time.monotonic()
    lab.start(enroll=False)
    setup_s = time.monotonic() - setup_started
    assert lab.store is not None and lab.composition is not None
    timeline = Timeline()
    watch = lab.store.watch(bmh.BareMetalHost, timeline, namespace=cfg.namespace)
    samples: list[tuple[float, int]] = []
    stop_sampling = threading.Event()

    def sample() -> None:
        while not stop_sampling.wait(1.0):
            try:
                total = sum(s["redfish_requests"] for s in lab.shard_stats())
            except Exception:  # a shard stopping under us at the end
                return
            samples.append((time.monotonic(), total))

    try:
        before = lab.shard_stats()
        cpu0, busy0 = _self_cpu_s(), _machine_busy_s()
        sampler = threading.Thread(target=sample, daemon=True)
        started = time.monotonic()
        samples.append((started, sum(s["redfish_requests"] for s in before)))
        sampler.start()
        lab.enroll()
        enrolled_s = time.monotonic() - started
        to_available = _wait(timeline, S.AVAILABLE, hosts, timeout_s=timeout_s,
                             label="available")
        provision_started = time.monotonic()
        changed = lab.provision()
        setting_images_s = time.monotonic() - provision_started
        _wait(timeline, S.PROVISIONED, hosts, timeout_s=timeout_s, label="provisioned")
        to_provisioned = time.monotonic() - provision_started
        wall_s = time.monotonic() - started
        cpu_s, busy_s = _self_cpu_s() - cpu0, _machine_busy_s() - busy0
        stop_sampling.set()
        sampler.join(timeout=5)
        after = lab.shard_stats()
        depth, queue = lab.composition.controller.queue.stats()
        reconcile_s, reconciles = _histogram_sum_count(lab.runtime_metrics.reconcile_time)
    finally:
        stop_sampling.set()
        watch.stop()
        lab.stop()
    requests = sum(a["redfish_requests"] - b["redfish_requests"]
                   for a, b in zip(after, before, strict=True))
    rates = [(n2 - n1) / (t2 - t1) for (t1, n1), (t2, n2) in itertools.pairwise(samples)
             if t2 > t1]
    assert changed == hosts
    return {
        "hosts": hosts,
        "bmc": "redfish-virtualmedia",
        "emulator_processes": len(after),
        "hosts_per_process": hosts_per_process,
        "concurrency": concurrency,
        "timing": "fast",
        "setup_s": round(setup_s, 2),
        "wall_s": {
            "enroll_to_provisioned": round(wall_s, 2),
            "enroll_to_available": round(to_available + enrolled_s, 2),
            "available_to_provisioned": round(to_provisioned, 2),
            "creating_objects": round(enrolled_s, 2),
            "setting_images": round(setting_images_s, 2),
        },
        "per_host_state_s": {
            "registering": _stat(_durations(timeline, S.REGISTERING, S.INSPECTING)),
            "inspecting": _stat(_durations(timeline, S.INSPECTING, S.AVAILABLE)),
            "provisioning": _stat(_durations(timeline, S.PROVISIONING, S.PROVISIONED)),
        },
        "redfish": {
            "requests": requests,
            "requests_per_host": round(requests / hosts, 1),
            "emulator_requests_per_s_mean": round(requests / wall_s, 1),
            "emulator_requests_per_s_peak": round(max(rates, default=0.0), 1),
            "per_process_requests_per_s_mean": [
                round((a["redfish_requests"] - b["redfish_requests"]) / wall_s, 1)
                for a, b in zip(after, before, strict=True)],
        },
        "agents": {
            "requests": sum(a["agent_requests"] - b["agent_requests"]
                            for a, b in zip(after, before, strict=True)),
            "ramdisk_boots": sum(a["ramdisk_boots"] for a in after),
            "lookup_heartbeats": lab.lookup.heartbeats,
        },
        "controller": {
            "reconciles": int(reconciles),
            "reconciles_per_host": round(reconciles / hosts, 1),
            "reconcile_seconds_total": round(reconcile_s, 1),
            "reconcile_mean_ms": round(1000 * reconcile_s / reconciles, 1) if reconciles else 0,
            "workers": concurrency,
            "worker_busy_fraction": round(reconcile_s / (concurrency * wall_s), 3),
            "queue_wait_seconds_total": round(queue.wait_s_total, 1),
            "queue_longest_wait_s": round(queue.longest_wait_s, 3),
            "queue_depth_at_end": depth,
        },
        "cpu": {
            "controller_process_s": round(cpu_s, 1),
            "emulator_processes_s": [round(a["cpu_s"] - b["cpu_s"], 1)
                                     for a, b in zip(after, before, strict=True)],
            "machine_busy_s": round(busy_s, 1),
            "machine_cores": os.cpu_count(),
            "machine_utilisation": round(busy_s / ((os.cpu_count() or 1) * wall_s), 3),
            "emulator_max_rss_mib": max(a["max_rss_mib"] for a in after),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--hosts-per-process", type=int, default=250)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds per phase before giving up")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("urllib3.connectionpool", "sushy.connector", "sushy.main"):
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("metalcubed.simulators.devenv.lab").setLevel(logging.ERROR)
    runs = []
    for count in args.hosts:
        print(f"{count} hosts ...", file=sys.stderr)
        result = run(count, hosts_per_process=args.hosts_per_process,
                     concurrency=args.concurrency, timeout_s=args.timeout)
        runs.append(result)
        w = result["wall_s"]
        print(f"{count} hosts: enroll->provisioned {w['enroll_to_provisioned']} s "
              f"(available at {w['enroll_to_available']} s), "
              f"{result['redfish']['requests_per_host']} Redfish requests/host, "
              f"emulators {result['redfish']['emulator_requests_per_s_mean']} req/s "
              f"(peak {result['redfish']['emulator_requests_per_s_peak']})", file=sys.stderr)
    doc = {
        "benchmark": "redfish_scale",
        "command": "python benchmarks/redfish_scale.py " + " ".join(argv or sys.argv[1:]),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "timing": _timing_dict(),
        "runs": runs,
    }
    text = json.dumps(doc, indent=2)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    else:
        print(text)
    return 0


def _timing_dict() -> dict[str, float]:
    t = lab_config.FAST
    return {name: getattr(t, name) for name in t.__dataclass_fields__}


if __name__ == "__main__":
    sys.exit(main())
