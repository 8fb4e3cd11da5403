"""Scale harness: a MachineDeployment of N replicas on N BareMetalHosts, with real Cluster API.

The issue's performance contract for CAPM3: on the real kube-apiserver with real Cluster API
core v1.13.6 and the fixture provisioner, 1,000 BareMetalHosts and a 1,000-replica
MachineDeployment -> every Machine Running in <= 15 min on this machine; report requests per
Machine and where the time goes.

What runs (all on loopback, stopped by PID at the end): kube-apiserver + etcd +
kube-controller-manager (garbage collector), Cluster API core (`capi-manager`), the CAPM3
conversion webhook, the lab kubelet (a Node per provisioned host), and `metalcubed manager`
with every controller group (bmo, capm3, ipam), fixture provisioner.

Phases, each timed and metered (CPU seconds per process, API requests):
1. hosts: N hosts + credentials created -> all `available`;
2. machines: a Cluster, its Metal3Cluster, a Metal3MachineTemplate and a MachineDeployment of
   N replicas created -> every Machine `Running` (CAPI creates the Machines and clones the
   Metal3Machines; CAPM3 claims a host each; BMO provisions it; the kubelet registers the Node;
   CAPM3 sets its providerID; CAPI sets the nodeRef). Per Machine: when it first showed each
   phase, so the spans Pending/Provisioning -> Provisioned -> Running have percentiles;
3. delete (unless --no-delete): the Cluster deleted -> no Machine left, every host available
   and free again.
Requests per Machine: every client's, counted by the API server (`apiserver_request_total`
by resource and verb), and the manager's own (its client metrics).

    python -m benchmarks.capi_scale --hosts 1000 --out benchmarks/results/capi_scale.json
"""

import argparse
import concurrent.futures
import itertools
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as kconfig
from kubernetes import watch as k8s_watch
from prometheus_client import parser as prom_parser

from benchmarks import kube_scale as ks
from metalcubed.controllers.kube import capi, crdgen, localcluster
from tests.kube import capi_support

REPO = Path(__file__).resolve().parents[1]
CAPI_GROUP, V1BETA2, INFRA = capi_support.CAPI_GROUP, capi_support.V1BETA2, capi_support.INFRA
PHASES = ("Pending", "Provisioning", "Provisioned", "Running")


class MachineLog:
    """When each Machine first showed each phase (one watch), and when it was deleted."""

    def __init__(self, api: k8s.ApiClient, ns: str) -> None:
        self.first: dict[str, dict[str, float]] = {}
        self.current: dict[str, str] = {}
        self.deleted: dict[str, float] = {}
        self._changed = threading.Condition()
        self._watch = k8s_watch.Watch()
        self._api, self._ns = api, ns
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        objects = k8s.CustomObjectsApi(self._api)
        rv = ""
        while True:
            try:
                for event in self._watch.stream(
                        objects.list_namespaced_custom_object, CAPI_GROUP, V1BETA2, self._ns,
                        "machines", resource_version=rv, timeout_seconds=600,
                        allow_watch_bookmarks=True):
                    obj = event["object"]
                    rv = obj["metadata"].get("resourceVersion") or rv
                    if event["type"] == "BOOKMARK":
                        continue
                    name = obj["metadata"]["name"]
                    now = time.monotonic()
                    with self._changed:
                        if event["type"] == "DELETED":
                            self.deleted.setdefault(name, now)
                            self.current.pop(name, None)
                        else:
                            phase = (obj.get("status") or {}).get("phase") or "(none)"
                            per = self.first.setdefault(name, {})
                            per.setdefault("seen", now)
                            per.setdefault(phase, now)
                            self.current[name] = phase
                        self._changed.notify_all()
            except Exception:  # a dropped stream: resume from the last version
                time.sleep(0.2)

    def wait(self, done: Callable[["MachineLog"], bool], what: str, timeout_s: float,
             say: Callable[[str], None]) -> float:
        deadline = time.monotonic() + timeout_s
        last = 0.0
        with self._changed:
            while not done(self):
                now = time.monotonic()
                if now > deadline:
                    raise TimeoutError(f"{what} not reached in {timeout_s} s: {self.counts()}")
                if now - last > 10:
                    last = now
                    say(f"waiting for {what}: {self.counts()}")
                self._changed.wait(1.0)
        return time.monotonic()

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for phase in self.current.values():
            found[phase] = found.get(phase, 0) + 1
        return found


Sample = tuple[str, str, str, str]
"""(count | seconds, resource, verb, code) of the API server's request metrics."""


def _apiserver_requests(api: k8s.ApiClient) -> dict[Sample, float]:
    """What the API server has answered (all clients): requests by resource, verb and code,
    and the seconds it spent on them (`apiserver_request_duration_seconds_sum`)."""
    resp = api.call_api("/metrics", "GET", auth_settings=["BearerToken"],
                        _preload_content=False, _return_http_data_only=True,
                        _request_timeout=30)
    text = resp.data.decode()
    totals: dict[Sample, float] = {}
    wanted = {"apiserver_request_total": "count",
              "apiserver_request_duration_seconds_sum": "seconds"}
    for family in prom_parser.text_string_to_metric_families(text):
        if family.name not in ("apiserver_request", "apiserver_request_duration_seconds"):
            continue
        for s in family.samples:
            what = wanted.get(s.name)
            if what is None:
                continue
            key = (what, s.labels.get("resource", ""), s.labels.get("verb", ""),
                   s.labels.get("code", ""))
            totals[key] = totals.get(key, 0.0) + s.value
    return totals


def _request_delta(a: dict[Sample, float], b: dict[Sample, float], per: int) -> dict[str, Any]:
    """Requests per Machine by resource and verb, the 409s by resource, and where the API
    server's time went (seconds by resource; watches left out: they are open, not busy)."""
    by_resource: dict[str, float] = {}
    by_verb: dict[str, float] = {}
    conflicts: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for key, value in b.items():
        what, resource, verb, code = key
        d = value - a.get(key, 0.0)
        if d <= 0 or verb == "WATCH":
            continue
        if what == "seconds":
            seconds[resource] = seconds.get(resource, 0.0) + d
            continue
        by_resource[resource] = by_resource.get(resource, 0.0) + d
        by_verb[verb] = by_verb.get(verb, 0.0) + d
        if code == "409":
            conflicts[resource] = conflicts.get(resource, 0.0) + d
    total = sum(by_resource.values())
    return {
        "total": int(total),
        "per_machine": round(total / max(1, per), 2),
        "per_machine_by_resource": ks.ranked(by_resource, 2, per=max(1, per)),
        "by_verb": {k: int(v) for k, v in sorted(by_verb.items())},
        "conflicts_409_by_resource": ks.ranked(conflicts, 0),
        "server_seconds_by_resource": ks.ranked(seconds, 1),
    }


def _create_hosts(api: k8s.ApiClient, ns: str, count: int, threads: int) -> list[str]:
    ks._post(api, f"/api/v1/namespaces/{ns}/secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bmc"},
        "data": {"username": "YWRtaW4=", "password": "cGFzc3dvcmQ="}})
    names = [f"host-{i:04d}" for i in range(count)]

    def one(i: int) -> None:
        ks._post(api, f"/apis/metal3.io/v1alpha1/namespaces/{ns}/baremetalhosts", {
            "apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost",
            "metadata": {"name": names[i]},
            "spec": {"online": False,
                     "bootMACAddress": f"52:54:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:"
                                       f"{i & 255:02x}",
                     "bmc": {"address": "ipmi://192.0.2.1:623", "credentialsName": "bmc"}}})

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    return names


def _cpu(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    used = {name: round(b[name]["cpu_s"] - a[name]["cpu_s"], 1)
            for name in b if name != "t" and name in a}
    ours = sum(v for k, v in used.items() if k != "machine")
    used["other_processes"] = round(used.get("machine", 0.0) - ours, 1)
    used["machine_capacity"] = round((b["t"] - a["t"]) * (os.cpu_count() or 1), 1)
    return used


def _spans(log: MachineLog, t0: float) -> dict[str, Any]:
    """Percentiles of when Machines reached each phase (since the MachineDeployment was
    created) and of the time spent between phases."""
    firsts = [dict(v) for v in log.first.values()]
    out: dict[str, Any] = {}
    for phase in ("seen", *PHASES):
        out[f"to_{phase.lower()}_seconds"] = ks._percentiles(
            [per[phase] - t0 for per in firsts if phase in per])
    pairs = (("seen", "Provisioned"), ("Provisioned", "Running"), ("seen", "Running"))
    for a, b in pairs:
        out[f"{a.lower()}_to_{b.lower()}_seconds"] = ks._percentiles(
            [per[b] - per[a] for per in firsts if a in per and b in per])
    return out


def _capi_creations(log: Path) -> dict[str, Any]:
    """How fast Cluster API's MachineSet created the Machines (its log: one line per Machine,
    created one after another in a reconcile)."""
    stamps: list[float] = []
    for line in log.read_text(errors="replace").splitlines():
        if "created (scale up" not in line:
            continue
        clock = line.split()[1]  # klog: I1203 23:23:04.626650 ...
        h, m, sec = clock.split(":")
        stamps.append(int(h) * 3600 + int(m) * 60 + float(sec))
    if len(stamps) < 2:
        return {"machines_created": len(stamps)}
    gaps = [b - a for a, b in itertools.pairwise(stamps) if b >= a]
    return {"machines_created": len(stamps),
            "first_to_last_seconds": round(stamps[-1] - stamps[0], 1),
            "machines_created_per_second": round((len(stamps) - 1)
                                                 / max(1e-9, stamps[-1] - stamps[0]), 2),
            "seconds_between_creations": ks._percentiles(gaps)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hosts", type=int, default=1000)
    p.add_argument("--replicas", type=int, help="MachineDeployment replicas (default: --hosts)")
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--kube-api-qps", type=float, default=1000.0)
    p.add_argument("--kube-api-burst", type=int, default=2000)
    p.add_argument("--fixture-delay-scale", type=float, default=1.0)
    p.add_argument("--client-threads", type=int, default=8)
    p.add_argument("--timeout", type=float, default=1800.0,
                   help="seconds each wait may take (hosts available, deletion)")
    p.add_argument("--running-timeout", type=float, default=900.0,
                   help="seconds the Machines get to be Running (the contract: 900); "
                        "afterwards what was reached is recorded and deletion runs")
    p.add_argument("--no-delete", action="store_true", help="skip the deletion phase")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    replicas = args.replicas if args.replicas is not None else args.hosts
    if args.hosts < 1 or not 0 <= replicas <= args.hosts:
        p.error(f"--replicas ({replicas}) must be between 0 and --hosts ({args.hosts}), "
                "and --hosts at least 1")

    def say(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    kube = localcluster.find_binaries()
    binaries = capi.find()
    if kube is None or binaries is None:
        say("not built; run: " + (localcluster.build_command() if kube is None
                                  else capi.build_command()))
        return 3
    workdir = Path(tempfile.mkdtemp(prefix="capi-scale-"))
    cluster_dir = workdir / "cluster"
    mgr: subprocess.Popen[bytes] | None = None
    sampler: ks.Sampler | None = None
    api: k8s.ApiClient | None = None
    ns = "capi-scale"
    results: dict[str, Any] = {
        "benchmark": "capi_scale",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_start": os.getloadavg(), "platform": platform.platform(),
                    "kube_apiserver": localcluster.KUBE_VERSION,
                    "etcd": localcluster.ETCD_VERSION, "cluster_api": capi.CAPI_VERSION},
        "settings": {"hosts": args.hosts, "replicas": replicas,
                     "concurrency": args.concurrency, "kube_api_qps": args.kube_api_qps,
                     "kube_api_burst": args.kube_api_burst,
                     "fixture_delay_scale": args.fixture_delay_scale,
                     "provisioner": "fixture (upstream delays x scale)",
                     "controllers": "bmo,capm3,ipam (all groups, one manager)"},
    }
    try:
        began = time.monotonic()
        cluster = localcluster.start(cluster_dir, binaries=kube,
                                     lifetime=localcluster.Lifetime.TIED,
                                     crds=crdgen.generate_all())
        cluster = capi.start(cluster, binaries=binaries, lifetime=localcluster.Lifetime.TIED,
                             log=say)
        results["control_plane_start_seconds"] = round(time.monotonic() - began, 1)
        pids = {proc.name: proc.pid for proc in cluster.processes}
        api = kconfig.new_client_from_config(config_file=str(cluster.kubeconfig))
        api.configuration.connection_pool_maxsize = args.client_threads + 4
        api.rest_client = k8s.rest.RESTClientObject(api.configuration)
        k8s.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
        metrics_port, health_port = ks._free_port(), ks._free_port()
        manager_log = workdir / "manager.log"
        with manager_log.open("wb") as out:
            mgr = subprocess.Popen([
                sys.executable, "-m", "metalcubed.cli", "manager",
                "--kubeconfig", str(cluster.kubeconfig), "--namespace", ns,
                "--metrics-bind-address", f"127.0.0.1:{metrics_port}",
                "--health-probe-bind-address", f"127.0.0.1:{health_port}",
                "--concurrency", str(args.concurrency),
                "--kube-api-qps", str(args.kube_api_qps),
                "--kube-api-burst", str(args.kube_api_burst),
                "--provisioner", "fixture",
                "--fixture-delay-scale", str(args.fixture_delay_scale),
                "--log-level", "warning"], stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        pids["manager"] = mgr.pid
        ks.wait_ready(mgr, health_port, manager_log, 90)
        pids["benchmark-client"] = os.getpid()
        sampler = ks.Sampler(pids)
        sampler.start()

        # 1. hosts -> available
        hosts = ks.StateLog(api, ns)
        time.sleep(0.5)  # the watch is open
        s0, m0, a0 = sampler.sample(), ks._scrape(metrics_port), _apiserver_requests(api)
        t0 = time.monotonic()
        _create_hosts(api, ns, args.hosts, args.client_threads)
        say(f"created {args.hosts} hosts in {time.monotonic() - t0:.1f} s")
        t_available = hosts.wait_all("available", args.hosts, args.timeout, say)
        s1, m1, a1 = sampler.sample(), ks._scrape(metrics_port), _apiserver_requests(api)
        results["hosts"] = {
            "to_all_available_seconds": round(t_available - t0, 1),
            "manager": ks._phase_metrics(m0, m1, args.hosts),
            "api_server_requests": _request_delta(a0, a1, args.hosts),
            "cpu_seconds": _cpu(s0, s1),
        }
        say(f"all {args.hosts} hosts available in {t_available - t0:.1f} s")

        # 2. a MachineDeployment of `replicas` -> every Machine Running
        machines = MachineLog(api, ns)
        lab = capi_support.Lab(api, ns)
        time.sleep(0.5)
        t1 = time.monotonic()
        lab.cluster("scale", cluster.kubeconfig)
        lab.machine_template("scale-workers")
        lab.machine_deployment("scale", "scale-workers", template="scale-workers",
                               replicas=replicas)
        try:
            t_running = machines.wait(
                lambda log: sum(1 for ph in log.current.values() if ph == "Running")
                >= replicas, f"{replicas} Machines Running", args.running_timeout, say)
            finished = True
        except TimeoutError as exc:  # measured as far as it got; deletion still runs
            say(str(exc))
            t_running, finished = time.monotonic(), False
        s2, m2, a2 = sampler.sample(), ks._scrape(metrics_port), _apiserver_requests(api)
        with machines._changed:
            spans = _spans(machines, t1)
            running = sum(1 for ph in machines.current.values() if ph == "Running")
            created = len(machines.first)
        results["machines"] = {
            "replicas": replicas,
            "all_running": finished,
            "running_at_end": running,
            "machines_created_at_end": created,
            "to_all_running_seconds": round(t_running - t1, 1) if finished else None,
            "elapsed_seconds": round(t_running - t1, 1),
            "machines_running_per_minute": round(running / max(1e-9, t_running - t1) * 60, 1),
            **spans,
            "capi_machineset_creations": _capi_creations(
                cluster.directory / "logs" / f"{capi.PROCESS_NAME}.log"),
            "manager": ks._phase_metrics(m1, m2, max(1, replicas)),
            "api_server_requests": _request_delta(a1, a2, max(1, replicas)),
            "cpu_seconds": _cpu(s1, s2),
            "wall_seconds": round(s2["t"] - s1["t"], 1),
        }
        say(f"{running} of {replicas} Machines Running {t_running - t1:.1f} s after the "
            "MachineDeployment was created")

        # 3. delete the Cluster -> nothing left, every host free
        if not args.no_delete:
            t2 = time.monotonic()
            lab.delete(CAPI_GROUP, "clusters", "scale")
            machines.wait(lambda log: not log.current and len(log.deleted) >= len(log.first),
                          "every Machine deleted", args.timeout, say)

            def hosts_free() -> bool:
                return all(c is None and s == "available"
                           for s, c in lab.host_states().values())

            deadline = time.monotonic() + args.timeout
            while not hosts_free():
                if time.monotonic() > deadline:
                    raise TimeoutError("hosts not all free after the Cluster was deleted")
                time.sleep(2)
            t_free = time.monotonic()
            s3, m3, a3 = sampler.sample(), ks._scrape(metrics_port), _apiserver_requests(api)
            results["delete"] = {
                "to_all_machines_gone_seconds": round(max(machines.deleted.values()) - t2, 1),
                "to_all_hosts_free_seconds": round(t_free - t2, 1),
                "manager": ks._phase_metrics(m2, m3, max(1, replicas)),
                "api_server_requests": _request_delta(a2, a3, max(1, replicas)),
                "cpu_seconds": _cpu(s2, s3),
                "left": {"machines": len(lab.machines()),
                         "metal3machines": len(lab.items(INFRA, "metal3machines")),
                         "nodes": len(lab.nodes())},
            }
            say(f"Cluster deleted: hosts free after {t_free - t2:.1f} s")
        sampler.sample()
        results["machine"]["load_average_at_end"] = os.getloadavg()
        results["peak_rss_mb"] = {k: round(v, 1) for k, v in sampler.peak_rss_mb.items()}
        results["cpu_seconds_total"] = {name: round(ks._cpu_s(pid), 1)
                                        for name, pid in pids.items()
                                        if name != "benchmark-client"}
        mgr.send_signal(signal.SIGTERM)
        results["manager_exit_code"] = mgr.wait(timeout=60)
    finally:
        if sampler is not None:
            sampler.stop()
        if mgr is not None and mgr.poll() is None:
            mgr.kill()
            mgr.wait(timeout=10)
        if api is not None:
            api.close()
        localcluster.stop(cluster_dir)
    running = results.get("machines", {}).get("to_all_running_seconds")
    results["targets"] = {"to_all_running_seconds<=900": running is not None and running <= 900}
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        say(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
