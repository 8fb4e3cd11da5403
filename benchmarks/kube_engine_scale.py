"""Scale harness: N emulated Redfish hosts, enroll -> provisioned, through
`metalcubed manager --provisioner engine` on a real kube-apiserver.

What it measures (issue 8, Performance): the wall time from the first BareMetalHost created
until every host is `provisioned`, split into enroll -> available (registration, inspection:
the deploy ISO booted from virtual media, the agent's inventory) and available -> provisioned
(image set on every host: ramdisk boot, image download and sha256 check, boot from disk); and
where it goes:

- time per host in each state (p50/p95/max), from one watch on the BareMetalHosts;
- the manager's own metrics: reconciles per host and the time inside them, workqueue waits,
  API requests per host by verb and code, client rate-limiter waits, 409 conflicts;
- CPU seconds per process (manager, kube-apiserver, etcd, each BMC shard, this client) and
  how busy the machine was: on a 2-core machine the run is CPU bound, and the split says by
  whom;
- Redfish requests per host and the agents' lookups and heartbeats (the BMC shards' counters);
- the unloaded floor: one host alone through the same steps (`--no-floor` skips it).

How (the harness of tests/kube/test_e2e_engine.py, tests/kube/test_e2e_engine_support.py): a
private control plane (controllers/kube/localcluster.py) unless `--kubeconfig` names one; the
BMC shards of `metalcubed devenv` (simulators/devenv/shard.py: sushy-tools Redfish emulators
with their hosts' deploy agents, `--hosts-per-process` hosts per child process), the agents
pointed at the manager's agent API URL; an image server in this process with the OS image and
the deploy kernel and ramdisk (DEPLOY_KERNEL_URL, DEPLOY_RAMDISK_URL: the manager builds each
host's deploy ISO from them, as Ironic does for virtual media); the manager as a subprocess, as
deployed, with its flags and upstream's environment variables; the engine polls as devenv's
FAST lab does (`--engine-timing default` keeps the manager's defaults). Everything started is
stopped by PID at the end.

    python -m benchmarks.kube_engine_scale --hosts 1000 \
        --out benchmarks/results/kube_engine_scale.json

It is a benchmark, not a test: not collected by pytest.
"""

import argparse
import base64
import concurrent.futures
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from benchmarks import kube_scale as ks
from metalcubed.controllers.kube import localcluster
from metalcubed.simulators.devenv import config as lab_config
from metalcubed.simulators.devenv import shard
from tests.kube import test_e2e_engine_support as support

REPO = Path(__file__).resolve().parents[1]
GROUP, VERSION, PLURAL = ks.GROUP, ks.VERSION, ks.PLURAL

TIMING = lab_config.HardwareTiming(
    power_on_s=0.3, soft_off_s=0.2, hard_off_s=0.05, agent_boot_s=0.2, heartbeat_s=5.0,
    clean_s=0.0, poll_s=0.5, short_poll_s=0.2, busy_retry_s=0.5,
)
"""devenv's FAST hardware (what the lab's 138 s at 1,000 hosts was measured with)."""


def manager_argv(args: argparse.Namespace, *, kubeconfig: Path, metrics_port: int,
                 health_port: int, agent_port: int, boot_port: int) -> list[str]:
    return [
        sys.executable, "-m", "metalcubed.cli", "manager", "--kubeconfig", str(kubeconfig),
        "--provisioner", "engine",
        "--agent-api-bind-address", f"127.0.0.1:{agent_port}",
        "--agent-api-url", f"http://127.0.0.1:{agent_port}",
        "--boot-server-bind-address", f"127.0.0.1:{boot_port}",
        "--boot-server-url", f"http://127.0.0.1:{boot_port}",
        "--metrics-bind-address", f"127.0.0.1:{metrics_port}",
        "--health-probe-bind-address", f"127.0.0.1:{health_port}",
        "--concurrency", str(args.concurrency),
        "--kube-api-qps", str(args.kube_api_qps), "--kube-api-burst", str(args.kube_api_burst),
        "--log-level", "warning",
        *engine_timing_args(args.engine_timing),
        *args.manager_arg,
    ]


def engine_timing_args(which: str) -> list[str]:
    """`fast`: the engine polls as devenv's FAST lab does (what the lab's 1,000-host figure was
    measured with); `default`: the manager's own defaults (poll 10 s, short poll 3 s)."""
    if which == "default":
        return []
    return ["--engine-poll-seconds", str(TIMING.poll_s),
            "--engine-short-poll-seconds", str(TIMING.short_poll_s),
            "--engine-busy-retry-seconds", str(TIMING.busy_retry_s)]


def _create_hosts(api: k8s.ApiClient, ns: str, infos: list[shard.HostInfo], threads: int,
                  username: str, password: str) -> None:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    def one(info: shard.HostInfo) -> None:
        ks._post(api, f"/api/v1/namespaces/{ns}/secrets", {
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": f"{info.name}-bmc-secret"},
            "data": {"username": b64(username), "password": b64(password)},
        })
        ks._post(api, f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "BareMetalHost",
            "metadata": {"name": info.name},
            "spec": {"online": True, "bootMode": "UEFI", "bootMACAddress": info.boot_mac,
                     "bmc": {"address": info.bmc_address,
                             "credentialsName": f"{info.name}-bmc-secret"}},
        })

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, infos))


def _set_image(api: k8s.ApiClient, ns: str, names: list[str], spec: dict[str, str],
               threads: int) -> None:
    def one(name: str) -> None:
        ks._post(api, f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}/{name}",
                 {"spec": {"image": spec}}, method="PATCH",
                 content_type="application/merge-patch+json")

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, names))


def _shard_totals(shards: support.BmcShards) -> dict[str, float]:
    totals: dict[str, float] = {}
    for stats in shards.stats():
        for key, value in stats.items():
            if key in ("redfish_requests", "redfish_sessions", "agent_requests",
                       "ramdisk_boots", "cpu_s"):
                totals[key] = totals.get(key, 0.0) + float(value)
    return totals


def run_phase(api: k8s.ApiClient, ns: str, infos: list[shard.HostInfo],
              shards: support.BmcShards, image_spec: dict[str, str],
              args: argparse.Namespace, say: Any, metrics_port: int, sampler: ks.Sampler
              ) -> dict[str, Any]:
    names = [i.name for i in infos]
    log = ks.StateLog(api, ns)
    time.sleep(0.5)  # the watch is open
    m0, s0, b0 = ks._scrape(metrics_port), sampler.sample(), _shard_totals(shards)
    t0 = time.monotonic()
    _create_hosts(api, ns, infos, args.client_threads, args.username, args.password)
    t_created = time.monotonic()
    say(f"created {len(names)} hosts + Secrets in {t_created - t0:.1f} s")
    t_available = log.wait_all("available", len(names), args.timeout, say)
    m1, s1, b1 = ks._scrape(metrics_port), sampler.sample(), _shard_totals(shards)
    say(f"all available {t_available - t0:.1f} s after the first create")
    t1 = time.monotonic()
    _set_image(api, ns, names, image_spec, args.client_threads)
    t_patched = time.monotonic()
    t_provisioned = log.wait_all("provisioned", len(names), args.timeout, say)
    m2, s2, b2 = ks._scrape(metrics_port), sampler.sample(), _shard_totals(shards)
    say(f"all provisioned {t_provisioned - t1:.1f} s after setting the image "
        f"({t_provisioned - t0:.1f} s after the first create)")
    with log._lock:
        firsts = {k: dict(v) for k, v in log.first.items()}

    def span(start: str, end: str) -> dict[str, float]:
        return ks._percentiles([per[end] - per[start] for per in firsts.values()
                                if start in per and end in per])

    def cpu(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
        used = {name: round(b[name]["cpu_s"] - a[name]["cpu_s"], 1)
                for name in b if name != "t" and name in a}
        ours = sum(v for k, v in used.items() if k != "machine")
        used["other_processes"] = round(used.get("machine", 0.0) - ours, 1)
        used["machine_capacity"] = round((b["t"] - a["t"]) * (os.cpu_count() or 1), 1)
        return used

    def bmcs(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
        n = len(names)
        return {
            "redfish_requests_per_host": round((b["redfish_requests"] - a["redfish_requests"])
                                               / n, 1),
            "redfish_sessions": int(b["redfish_sessions"] - a["redfish_sessions"]),
            "agent_api_requests_per_host": round((b["agent_requests"] - a["agent_requests"])
                                                 / n, 1),
            "ramdisk_boots_per_host": round((b["ramdisk_boots"] - a["ramdisk_boots"]) / n, 2),
        }

    return {
        "hosts": len(names),
        "wall_s": {
            "enroll_to_provisioned": round(t_provisioned - t0, 2),
            "enroll_to_available": round(t_available - t0, 2),
            "available_to_provisioned": round(t_provisioned - t1, 2),
            "creating_objects": round(t_created - t0, 2),
            "setting_images": round(t_patched - t1, 2),
        },
        "per_host_state_s": {
            "registering": span("registering", "inspecting"),
            "inspecting": span("inspecting", "available"),
            "provisioning": span("provisioning", "provisioned"),
        },
        "host_to_available_s": ks._percentiles([per["available"] - t0
                                                 for per in firsts.values()
                                                 if "available" in per]),
        "host_to_provisioned_s": ks._percentiles([per["provisioned"] - t1
                                                   for per in firsts.values()
                                                   if "provisioned" in per]),
        "manager_to_available": ks._phase_metrics(m0, m1, len(names)),
        "manager_to_provisioned": ks._phase_metrics(m1, m2, len(names)),
        "cpu_s_to_available": cpu(s0, s1),
        "cpu_s_to_provisioned": cpu(s1, s2),
        "bmcs_to_available": bmcs(b0, b1),
        "bmcs_to_provisioned": bmcs(b1, b2),
    }


def _where_the_time_goes(fleet: dict[str, Any]) -> dict[str, Any]:
    wall = fleet["wall_s"]["enroll_to_provisioned"]
    a, b = fleet["cpu_s_to_available"], fleet["cpu_s_to_provisioned"]
    names = sorted({*a, *b} - {"machine", "other_processes", "machine_capacity"})
    cpu = {name: round(a.get(name, 0.0) + b.get(name, 0.0), 1) for name in names}
    busy = a.get("machine", 0.0) + b.get("machine", 0.0)
    capacity = a.get("machine_capacity", 0.0) + b.get("machine_capacity", 0.0)
    shards_cpu = sum(v for k, v in cpu.items() if k.startswith("bmc-shard"))
    hosts = fleet["hosts"]
    reconcile_s = (fleet["manager_to_available"]["reconcile_seconds_total"]
                   + fleet["manager_to_provisioned"]["reconcile_seconds_total"])
    reconciles = (fleet["manager_to_available"]["reconciles"]
                  + fleet["manager_to_provisioned"]["reconciles"])
    return {
        "cpu_s_by_process": cpu,
        "cpu_s_bmc_shards_total": round(shards_cpu, 1),
        "machine_busy_fraction": round(busy / capacity, 3) if capacity else None,
        "cpu_bound_lower_bound_s": round(busy / (os.cpu_count() or 1), 1),
        "manager_cpu_ms_per_host": round(1000 * cpu.get("manager", 0.0) / hosts, 1),
        "manager_reconciles_per_host": round(reconciles / hosts, 1),
        "manager_mean_reconcile_ms": round(1000 * reconcile_s / max(1, reconciles), 1),
        "wall_s": wall,
    }


def start_profiler(pid: int, out: Path, log: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the manager's thread that holds the GIL (Python CPU time: a thread
    waiting on a socket has released it), without pausing the process; stopped with SIGINT,
    it writes collapsed stacks to `out`."""
    exe = shutil.which("py-spy")
    if exe is None:
        raise SystemExit("--profile-manager needs py-spy (pip install py-spy)")
    with log.open("wb") as err:
        return subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", "50",
                                 "--nonblocking", "--gil", "--full-filenames", "--format", "raw",
                                 "--output", str(out)],
                                stdout=subprocess.DEVNULL, stderr=err)


def _component(frame: str) -> str:
    """What a stack frame belongs to: a package, a metalcubed module, or a stdlib module."""
    path = frame[frame.rfind("(") + 1:].split(":")[0]
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/")[0].removesuffix(".py")
    if path.startswith(str(REPO) + "/"):
        rel = Path(path).relative_to(REPO).with_suffix("")
        return "metalcubed." + ".".join(rel.parts[:2])
    if "/lib/python3" in path:
        rest = path.split("/lib/python3", 1)[1].split("/", 1)[-1]
        return "python:" + rest.split("/")[0].removesuffix(".py")
    return "other:" + Path(path).stem


def profile_summary(path: Path, top: int = 15) -> dict[str, Any]:
    """Where the manager's CPU went: self time by component (the innermost frame's package or
    module) and inclusive time of the components a stack passes through, as % of samples."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if "(" in f]
        if not frames:
            continue
        total += count
        leaf = _component(frames[-1])
        own[leaf] = own.get(leaf, 0) + count
        for name in {_component(f) for f in frames}:
            inclusive[name] = inclusive.get(name, 0) + count

    def pct(table: dict[str, int]) -> dict[str, float]:
        ranked = sorted(table.items(), key=lambda kv: -kv[1])[:top]
        return {name: round(100.0 * n / total, 1) for name, n in ranked}

    return {"samples": total, "self_pct": pct(own), "inclusive_pct": pct(inclusive)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hosts", type=int, default=1000)
    p.add_argument("--hosts-per-process", type=int, default=250)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--kube-api-qps", type=float, default=200.0)
    p.add_argument("--kube-api-burst", type=int, default=400)
    p.add_argument("--client-threads", type=int, default=8)
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per phase")
    p.add_argument("--kubeconfig", help="use this cluster instead of starting one")
    p.add_argument("--no-floor", action="store_true", help="skip the one-host baseline")
    p.add_argument("--engine-timing", choices=("fast", "default"), default="fast",
                   help="engine polling: devenv's FAST lab (default) or the manager's defaults")
    p.add_argument("--manager-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for `metalcubed manager` (repeatable)")
    p.add_argument("--username", default="admin")
    p.add_argument("--password", default="password")
    p.add_argument("--profile-manager", action="store_true",
                   help="sample the manager with py-spy and summarise where its CPU went")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)

    def say(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="kube-engine-scale-"))
    plane = ks.control_plane(args, workdir, say)
    if plane is None:
        return 3
    kubeconfig, cluster_dir, pids, api = plane
    ns_base = f"engine-scale-{int(time.time())}"
    metrics_port, health_port = ks._free_port(), ks._free_port()
    agent_port, boot_port = ks._free_port(), ks._free_port()
    images = support.Images(size_mib=8)
    results: dict[str, Any] = {
        "benchmark": "kube_engine_scale",
        "command": "python -m benchmarks.kube_engine_scale " + " ".join(
            argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_start": os.getloadavg(),
                    "platform": platform.platform(),
                    "kube_apiserver": localcluster.KUBE_VERSION,
                    "etcd": localcluster.ETCD_VERSION},
        "settings": {"hosts": args.hosts, "bmc": "redfish-virtualmedia",
                     "deploy_iso": "per host, built by the manager from DEPLOY_KERNEL_URL and "
                                   "DEPLOY_RAMDISK_URL",
                     "hosts_per_process": args.hosts_per_process,
                     "concurrency": args.concurrency, "kube_api_qps": args.kube_api_qps,
                     "kube_api_burst": args.kube_api_burst,
                     "manager_args": [*engine_timing_args(args.engine_timing),
                                      *args.manager_arg],
                     "hardware_timing": {k: getattr(TIMING, k)
                                         for k in TIMING.__dataclass_fields__}},
    }
    mgr: subprocess.Popen[bytes] | None = None
    profiler: subprocess.Popen[bytes] | None = None
    sampler: ks.Sampler | None = None
    shard_log = (workdir / "bmcs.log").open("w")
    manager_log = workdir / "manager.log"
    phases = [] if args.no_floor else [("floor", 1)]
    phases.append(("fleet", args.hosts))
    total = sum(count for _, count in phases)
    shards = support.BmcShards(
        hosts=total, lookup_url=f"http://127.0.0.1:{agent_port}", deploy_iso_url="",
        deploy_iso_prefix=f"http://127.0.0.1:{boot_port}/boot/", log=shard_log,
        mix=lab_config.BmcMix.REDFISH, processes=-(-total // args.hosts_per_process),
        timing=TIMING, username=args.username, password=args.password)
    try:
        images.start()
        image_spec = images.spec()
        began = time.monotonic()
        shards.start()
        say(f"{total} emulated hosts in {len(shards.children)} BMC shard process(es) "
            f"in {time.monotonic() - began:.1f} s")
        for i, pid in enumerate(shards.pids):
            pids[f"bmc-shard-{i}"] = pid
        infos = shards.infos
        core = k8s.CoreV1Api(api)
        for suffix, _ in phases:
            core.create_namespace({"metadata": {"name": f"{ns_base}-{suffix}"}})
        argv_mgr = manager_argv(args, kubeconfig=kubeconfig, metrics_port=metrics_port,
                                health_port=health_port, agent_port=agent_port,
                                boot_port=boot_port)
        env = {**os.environ, **images.env(), "PROVISIONING_LIMIT": str(max(20, args.hosts))}
        with manager_log.open("wb") as out:
            mgr = subprocess.Popen(argv_mgr, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                   env=env)
        pids["manager"] = mgr.pid
        ks.wait_ready(mgr, health_port, manager_log, 60)
        pids["benchmark-client"] = os.getpid()
        if args.profile_manager:
            profiler = start_profiler(mgr.pid, workdir / "manager.pyspy",
                                      workdir / "py-spy.log")
        sampler = ks.Sampler(pids)
        sampler.start()
        offset = 0
        for suffix, count in phases:
            say(f"phase {suffix}: {count} hosts")
            results[suffix] = run_phase(api, f"{ns_base}-{suffix}",
                                        infos[offset:offset + count], shards, image_spec,
                                        args, say, metrics_port, sampler)
            offset += count
        sampler.sample()
        results["peak_rss_mb"] = {k: round(v, 1) for k, v in sampler.peak_rss_mb.items()}
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=60)
            profiler = None
            results["manager_profile"] = profile_summary(workdir / "manager.pyspy")
        mgr.send_signal(signal.SIGTERM)
        results["manager_exit_code"] = mgr.wait(timeout=60)
    finally:
        if profiler is not None and profiler.poll() is None:
            profiler.kill()
            profiler.wait(timeout=10)
        if sampler is not None:
            sampler.stop()
        if mgr is not None and mgr.poll() is None:
            mgr.kill()
            mgr.wait(timeout=10)
        shards.stop()
        shard_log.close()
        images.stop()
        api.close()
        if cluster_dir is not None:
            localcluster.stop(cluster_dir)
    if "fleet" in results:
        results["where_the_time_goes"] = _where_the_time_goes(results["fleet"])
        results["compare"] = {
            "devenv_lab_memory_store_1000_hosts_s": 138,
            "note": "the lab composes the controller in-process over its memory store; "
                    "here the manager is a separate process on a real API server",
        }
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        say(f"results written to {args.out}; manager log {manager_log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
