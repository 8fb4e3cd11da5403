"""Scale harness: N BareMetalHosts with Secrets against a real kube-apiserver, one manager.

What it measures (the issue's performance contract):
- time from the first create until every host is `available`, and from setting an image on
  all of them until every host is `provisioned` (fixture provisioner, upstream's delays);
- API requests per host (the manager's own client counter, by verb and code);
- the manager's peak RSS and CPU seconds, and the API server's and etcd's CPU;
- where the time goes: the unloaded floor (one host alone through the same steps), time keys
  wait in the workqueue, time spent reconciling, client rate-limiter waits, request latency,
  409 conflicts, and CPU per process.

How: a private control plane (controllers/kube/localcluster.py, built binaries) unless
`--kubeconfig` names one; `metalcubed manager` as a subprocess (as deployed, with its flags);
hosts and Secrets created by a pool of client threads; one watch records when each host first
shows each state. The manager and the control plane are stopped (by PID) at the end.

    python benchmarks/kube_scale.py --hosts 1000 --concurrency 100 --kube-api-qps 1000 \
        --kube-api-burst 2000 --out benchmarks/results/kube_scale.json
"""

import argparse
import concurrent.futures
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as kconfig
from kubernetes import watch as k8s_watch
from prometheus_client import parser as prom_parser

from metalcubed.controllers.kube import crdgen, localcluster

GROUP, VERSION, PLURAL = "metal3.io", "v1alpha1", "baremetalhosts"
REPO = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
IMAGE = {"url": "http://images.example/os.qcow2", "checksum": "0123abcd",
         "checksumType": "sha256", "format": "qcow2"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- process sampling ----------------------------------------------------------------------------


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def _machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores, /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def _rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) in MiB."""
    now = peak = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            now = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    return now, peak


@dataclass
class Sampler:
    """CPU and memory of the processes under test, every `period_s`."""

    pids: dict[str, int]
    period_s: float = 0.5
    samples: list[dict[str, Any]] = field(default_factory=list)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.sample()

    def sample(self) -> dict[str, Any]:
        row: dict[str, Any] = {"t": time.monotonic(), "machine": {"cpu_s": _machine_busy_s()}}
        for name, pid in self.pids.items():
            try:
                rss, peak = _rss_mb(pid)
                row[name] = {"cpu_s": _cpu_s(pid), "rss_mb": rss}
                self.peak_rss_mb[name] = max(self.peak_rss_mb.get(name, 0.0), peak)
            except (OSError, IndexError, ValueError):
                continue
        self.samples.append(row)
        return row

    def stop(self) -> None:
        self._stop.set()


# --- watching hosts ------------------------------------------------------------------------------


class StateLog:
    """When each host first showed each provisioning state (from one watch)."""

    def __init__(self, api: k8s.ApiClient, ns: str) -> None:
        self.first: dict[str, dict[str, float]] = {}
        self.current: dict[str, str] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._watch = k8s_watch.Watch()
        self._api = api
        self._ns = ns
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        objects = k8s.CustomObjectsApi(self._api)
        rv = ""
        while True:
            try:
                for event in self._watch.stream(
                    objects.list_namespaced_custom_object, GROUP, VERSION, self._ns, PLURAL,
                    resource_version=rv, timeout_seconds=600, allow_watch_bookmarks=True,
                ):
                    obj = event["object"]
                    rv = obj["metadata"].get("resourceVersion") or rv
                    if event["type"] == "BOOKMARK":
                        continue
                    name = obj["metadata"]["name"]
                    state = ((obj.get("status") or {}).get("provisioning") or {}).get("state")
                    if not state:
                        continue
                    now = time.monotonic()
                    with self._changed:
                        self.first.setdefault(name, {}).setdefault(state, now)
                        self.current[name] = state
                        self._changed.notify_all()
            except Exception:  # a dropped stream: resume from the last version
                time.sleep(0.2)

    def count(self, state: str) -> int:
        with self._lock:
            return sum(1 for per in self.first.values() if state in per)

    def wait_all(self, state: str, n: int, timeout_s: float, progress: Callable[[str], None]
                 ) -> float:
        """Block until n hosts have shown `state`; returns the monotonic time it happened."""
        deadline = time.monotonic() + timeout_s
        last_report = 0.0
        with self._changed:
            while True:
                reached = [per[state] for per in self.first.values() if state in per]
                if len(reached) >= n:
                    return max(reached)
                now = time.monotonic()
                if now > deadline:
                    raise TimeoutError(f"{len(reached)}/{n} hosts {state} after {timeout_s} s")
                if now - last_report > 5:
                    last_report = now
                    counts: dict[str, int] = {}
                    for s in self.current.values():
                        counts[s] = counts.get(s, 0) + 1
                    progress(f"{len(reached)}/{n} {state}; now {counts}")
                self._changed.wait(1.0)


# --- the manager ---------------------------------------------------------------------------------


def _scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in prom_parser.text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def _total(m: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str,
           **match: str) -> float:
    return sum(v for labels, v in m.get(name, {}).items()
               if all(dict(labels).get(k) == want for k, want in match.items()))


def _delta(a: dict[str, dict[tuple[tuple[str, str], ...], float]],
           b: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str,
           **match: str) -> float:
    return _total(b, name, **match) - _total(a, name, **match)


def _phase_metrics(a: dict[str, dict[tuple[tuple[str, str], ...], float]],
                   b: dict[str, dict[tuple[tuple[str, str], ...], float]], hosts: int
                   ) -> dict[str, Any]:
    requests: dict[str, float] = {}
    for labels, value in b.get("rest_client_requests_total", {}).items():
        d = dict(labels)
        key = f"{d.get('method')} {d.get('code')}"
        requests[key] = value - a.get("rest_client_requests_total", {}).get(labels, 0.0)
    total = sum(requests.values())
    reconciles = _delta(a, b, "controller_runtime_reconcile_total")
    return {
        "api_requests": {k: int(v) for k, v in sorted(requests.items()) if v},
        "api_requests_total": int(total),
        "api_requests_per_host": round(total / hosts, 2),
        "conflicts_409": int(sum(v for k, v in requests.items() if k.endswith(" 409"))),
        "reconciles": int(reconciles),
        "reconciles_per_host": round(reconciles / hosts, 2),
        "reconcile_errors": int(_delta(a, b, "controller_runtime_reconcile_errors_total")),
        "reconcile_seconds_total": round(
            _delta(a, b, "controller_runtime_reconcile_time_seconds_sum"), 2),
        "queue_wait_seconds_mean": round(
            _delta(a, b, "workqueue_queue_duration_seconds_sum")
            / max(1.0, _delta(a, b, "workqueue_queue_duration_seconds_count")), 3),
        "rate_limiter_wait_seconds_total": round(
            _delta(a, b, "rest_client_rate_limiter_duration_seconds_sum"), 2),
        "request_seconds_total": round(
            _delta(a, b, "rest_client_request_duration_seconds_sum"), 2),
        "events_written": {
            outcome: int(_delta(a, b, "metalcubed_events_total", outcome=outcome))
            for outcome in ("created", "aggregated", "retried", "failed", "dropped")
        },
        "watch_events_applied": int(_delta(a, b, "metalcubed_informer_events_total")),
        "reconciles_by_controller": _by_label(a, b, "controller_runtime_reconcile_total",
                                              "controller", 0),
        "reconcile_seconds_by_controller": _by_label(
            a, b, "controller_runtime_reconcile_time_seconds_sum", "controller", 1),
    }


def _by_label(a: dict[str, dict[tuple[tuple[str, str], ...], float]],
              b: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, label: str,
              digits: int) -> dict[str, float]:
    """The growth of metric `name` between two scrapes, summed by one label, largest first."""
    grown: dict[str, float] = {}
    for labels, value in b.get(name, {}).items():
        key = dict(labels).get(label, "")
        grown[key] = grown.get(key, 0.0) + value - a.get(name, {}).get(labels, 0.0)
    return ranked(grown, digits)


def ranked(values: dict[str, float], digits: int, per: float = 1.0) -> dict[str, float]:
    """`values` divided by `per` and rounded, largest first, zeros left out."""
    rounded = {k: round(v / per, digits) for k, v in values.items()}
    return {k: v for k, v in sorted(rounded.items(), key=lambda kv: -kv[1]) if v}


def wait_ready(mgr: "subprocess.Popen[bytes]", health_port: int, log: Path,
               timeout_s: float) -> None:
    """Until the manager answers /readyz; its log's tail in the error when it exits or times
    out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/readyz",
                                        timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if mgr.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("manager did not become ready:\n" + log.read_text()[-5000:])
        time.sleep(0.2)


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": pick(0.5), "p95": pick(0.95), "max": round(ordered[-1], 2)}


# --- the run -------------------------------------------------------------------------------------


def _post(api: k8s.ApiClient, path: str, body: dict[str, Any], method: str = "POST",
          content_type: str = "application/json") -> None:
    """One raw request (no typed-model decoding: the client must not be the bottleneck)."""
    resp = api.call_api(
        path, method, header_params={"Content-Type": content_type, "Accept": "application/json"},
        body=body, auth_settings=["BearerToken"], _preload_content=False, _request_timeout=60,
    )
    resp.read()
    resp.release_conn()


def _create_all(api: k8s.ApiClient, ns: str, names: list[str], threads: int) -> None:
    def one(name: str) -> None:
        _post(api, f"/api/v1/namespaces/{ns}/secrets", {
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": f"{name}-bmc"},
            "data": {"username": "YWRtaW4=", "password": "cGFzc3dvcmQ="},
        })
        _post(api, f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "BareMetalHost",
            "metadata": {"name": name},
            "spec": {"online": True,
                     "bmc": {"address": "ipmi://192.0.2.1:623", "credentialsName": f"{name}-bmc"}},
        })

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, names))


def _patch_all(api: k8s.ApiClient, ns: str, names: list[str], threads: int) -> None:
    def one(name: str) -> None:
        _post(api, f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}/{name}",
              {"spec": {"image": IMAGE}}, method="PATCH",
              content_type="application/merge-patch+json")

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, names))


def run_phase(api: k8s.ApiClient, ns: str, names: list[str], args: argparse.Namespace,
              say: Callable[[str], None], metrics_port: int, sampler: Sampler
              ) -> dict[str, Any]:
    log = StateLog(api, ns)
    time.sleep(0.5)  # the watch is open
    m0 = _scrape(metrics_port)
    s0 = sampler.sample()
    t0 = time.monotonic()
    _create_all(api, ns, names, args.client_threads)
    t_created = time.monotonic()
    say(f"created {len(names)} hosts + Secrets in {t_created - t0:.1f} s")
    t_available = log.wait_all("available", len(names), args.timeout, say)
    m1 = _scrape(metrics_port)
    s1 = sampler.sample()
    say(f"all available {t_available - t0:.1f} s after the first create")
    t1 = time.monotonic()
    _patch_all(api, ns, names, args.client_threads)
    t_patched = time.monotonic()
    say(f"image set on {len(names)} hosts in {t_patched - t1:.1f} s")
    t_provisioned = log.wait_all("provisioned", len(names), args.timeout, say)
    m2 = _scrape(metrics_port)
    s2 = sampler.sample()
    say(f"all provisioned {t_provisioned - t1:.1f} s after setting the image")
    with log._lock:
        firsts = {k: dict(v) for k, v in log.first.items()}
    to_available = [per["available"] - t0 for per in firsts.values() if "available" in per]
    to_provisioned = [per["provisioned"] - t1 for per in firsts.values()
                      if "provisioned" in per]

    def cpu(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
        used = {name: round(b[name]["cpu_s"] - a[name]["cpu_s"], 1)
                for name in b if name != "t" and name in a}
        ours = sum(v for k, v in used.items() if k != "machine")
        used["other_processes"] = round(used.get("machine", 0.0) - ours, 1)
        used["machine_capacity"] = round((b["t"] - a["t"]) * (os.cpu_count() or 1), 1)
        return used

    return {
        "hosts": len(names),
        "create_seconds": round(t_created - t0, 2),
        "to_all_available_seconds": round(t_available - t0, 2),
        "available_hosts_per_minute": round(len(names) / (t_available - t0) * 60, 1),
        "host_to_available_seconds": _percentiles(to_available),
        "patch_seconds": round(t_patched - t1, 2),
        "to_all_provisioned_seconds": round(t_provisioned - t1, 2),
        "to_all_provisioned_since_create_seconds": round(t_provisioned - t0, 2),
        "host_to_provisioned_seconds": _percentiles(to_provisioned),
        "register_to_available": _phase_metrics(m0, m1, len(names)),
        "available_to_provisioned": _phase_metrics(m1, m2, len(names)),
        "cpu_seconds_register_to_available": cpu(s0, s1),
        "cpu_seconds_available_to_provisioned": cpu(s1, s2),
        "wall_seconds_register_to_available": round(s1["t"] - s0["t"], 1),
        "wall_seconds_available_to_provisioned": round(s2["t"] - s1["t"], 1),
    }


def _analysis(results: dict[str, Any]) -> dict[str, Any]:
    """The figures that explain the fleet's times (see docs/deploy.md, Capacity)."""
    fleet = results["fleet"]
    floor = results.get("floor", {})
    phase = fleet["register_to_available"]
    cpu = fleet["cpu_seconds_register_to_available"]
    requests = phase["api_requests_total"] + 2 * fleet["hosts"]  # + the client's creates
    ours = sum(v for k, v in cpu.items()
               if k not in ("machine", "other_processes", "machine_capacity"))
    return {
        "unloaded_floor_to_available_seconds": floor.get("to_all_available_seconds"),
        "unloaded_floor_to_provisioned_seconds": floor.get("to_all_provisioned_seconds"),
        "api_server_cpu_ms_per_request": round(1000 * cpu.get("kube-apiserver", 0.0)
                                               / max(1, requests), 2),
        "manager_cpu_ms_per_host_to_available": round(1000 * cpu.get("manager", 0.0)
                                                      / fleet["hosts"], 1),
        "cpu_seconds_our_processes_to_available": round(ours, 1),
        "cpu_seconds_other_processes_to_available": cpu.get("other_processes"),
        "cpu_seconds_machine_capacity_to_available": cpu.get("machine_capacity"),
        "cpu_bound_lower_bound_seconds": round(ours / (os.cpu_count() or 1), 1),
        "mean_request_latency_ms": round(1000 * phase["request_seconds_total"]
                                         / max(1, phase["api_requests_total"]), 1),
        "mean_reconcile_ms": round(1000 * phase["reconcile_seconds_total"]
                                   / max(1, phase["reconciles"]), 1),
        "mean_queue_wait_ms": round(1000 * phase["queue_wait_seconds_mean"], 1),
        "client_rate_limiter_wait_seconds": phase["rate_limiter_wait_seconds_total"],
    }


def control_plane(
    args: argparse.Namespace, workdir: Path, say: Callable[[str], None]
) -> tuple[Path, Path | None, dict[str, int], k8s.ApiClient] | None:
    """The cluster a benchmark runs on: `--kubeconfig`'s, else a local kube-apiserver + etcd
    started under `workdir` (tied to this process). Returns (kubeconfig, cluster dir or None,
    pids of the control plane, an API client with `--client-threads` connections), or None
    when the binaries are not built (the build command is said)."""
    cluster_dir: Path | None = None
    pids: dict[str, int] = {}
    if args.kubeconfig:
        kubeconfig = Path(args.kubeconfig)
    else:
        binaries = localcluster.find_binaries()
        if binaries is None:
            say("kube binaries not built: " + localcluster.build_command())
            return None
        cluster_dir = workdir / "cluster"
        cluster = localcluster.start(cluster_dir, binaries=binaries,
                                     lifetime=localcluster.Lifetime.TIED,
                                     crds=crdgen.generate_all())
        kubeconfig = cluster.kubeconfig
        for name in ("kube-apiserver", "etcd"):
            proc = cluster.process(name)
            if proc is not None:
                pids[name] = proc.pid
        say(f"control plane up at {cluster.server}")
    api = kconfig.new_client_from_config(config_file=str(kubeconfig))
    api.configuration.connection_pool_maxsize = args.client_threads + 4
    api.rest_client = k8s.rest.RESTClientObject(api.configuration)
    return kubeconfig, cluster_dir, pids, api


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hosts", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--kube-api-qps", type=float, default=1000.0)
    p.add_argument("--kube-api-burst", type=int, default=2000)
    p.add_argument("--fixture-delay-scale", type=float, default=1.0)
    p.add_argument("--client-threads", type=int, default=8)
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--kubeconfig", help="use this cluster instead of starting one")
    p.add_argument("--no-floor", action="store_true", help="skip the one-host baseline")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)

    def say(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="kube-scale-"))
    plane = control_plane(args, workdir, say)
    if plane is None:
        return 3
    kubeconfig, cluster_dir, pids, api = plane
    ns_base = f"scale-{int(time.time())}"
    metrics_port, health_port = _free_port(), _free_port()
    manager_log = workdir / "manager.log"
    argv_mgr = [
        sys.executable, "-m", "metalcubed.cli", "manager", "--kubeconfig", str(kubeconfig),
        "--metrics-bind-address", f"127.0.0.1:{metrics_port}",
        "--health-probe-bind-address", f"127.0.0.1:{health_port}",
        "--concurrency", str(args.concurrency),
        "--kube-api-qps", str(args.kube_api_qps), "--kube-api-burst", str(args.kube_api_burst),
        "--provisioner", "fixture",
        "--fixture-delay-scale", str(args.fixture_delay_scale), "--log-level", "warning",
    ]
    results: dict[str, Any] = {
        "benchmark": "kube_scale",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_start": os.getloadavg(),
                    "platform": platform.platform(),
                    "kube_apiserver": localcluster.KUBE_VERSION,
                    "etcd": localcluster.ETCD_VERSION},
        "settings": {"hosts": args.hosts, "concurrency": args.concurrency,
                     "kube_api_qps": args.kube_api_qps, "kube_api_burst": args.kube_api_burst,
                     "fixture_delay_scale": args.fixture_delay_scale,
                     "client_threads": args.client_threads,
                     "provisioner": "fixture (upstream delays x scale)"},
    }
    mgr: subprocess.Popen[bytes] | None = None
    sampler: Sampler | None = None
    try:
        core = k8s.CoreV1Api(api)
        phases = [] if args.no_floor else [("floor", 1)]
        phases.append(("fleet", args.hosts))
        for ns_suffix, _ in phases:
            core.create_namespace({"metadata": {"name": f"{ns_base}-{ns_suffix}"}})
        with manager_log.open("wb") as out:
            mgr = subprocess.Popen(argv_mgr, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        pids["manager"] = mgr.pid
        wait_ready(mgr, health_port, manager_log, 60)
        pids["benchmark-client"] = os.getpid()
        sampler = Sampler(pids)
        sampler.start()
        for ns_suffix, count in phases:
            ns = f"{ns_base}-{ns_suffix}"
            say(f"phase {ns_suffix}: {count} hosts")
            names = [f"host-{i:04d}" for i in range(count)]
            results[ns_suffix] = run_phase(api, ns, names, args, say, metrics_port, sampler)
        sampler.sample()
        results["peak_rss_mb"] = {k: round(v, 1) for k, v in sampler.peak_rss_mb.items()}
        final = _scrape(metrics_port)
        results["manager_totals"] = {
            "api_requests": int(_total(final, "rest_client_requests_total")),
            "cpu_seconds": round(_cpu_s(mgr.pid), 1),
        }
        mgr.send_signal(signal.SIGTERM)
        results["manager_exit_code"] = mgr.wait(timeout=60)
    finally:
        if sampler is not None:
            sampler.stop()
        if mgr is not None and mgr.poll() is None:
            mgr.kill()
            mgr.wait(timeout=10)
        api.close()
        if cluster_dir is not None:
            localcluster.stop(cluster_dir)
    fleet = results.get("fleet", {})
    if fleet:
        results["where_the_time_goes"] = _analysis(results)
    results["targets"] = {
        "to_all_available_seconds<=60": fleet.get("to_all_available_seconds", 1e9) <= 60,
        "to_all_provisioned_seconds<=120": fleet.get("to_all_provisioned_seconds", 1e9) <= 120,
        "manager_peak_rss_mb<=300": results.get("peak_rss_mb", {}).get("manager", 1e9) <= 300,
    }
    text = json.dumps(results, indent=2, sort_keys=False)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        say(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
