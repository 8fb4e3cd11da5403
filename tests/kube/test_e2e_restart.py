"""End to end: the manager is killed with SIGKILL mid-run and restarted; every host converges,
none is lost, none is duplicated. Then two managers with leader election: only the Lease
holder reconciles, and the standby takes over when the holder dies.

The fixture provisioner keeps its state in the manager's memory, so a restarted manager starts
from an empty backend: it must converge from what the API server holds alone (level-triggered
reconcilers, DESIGN rule 5).
"""

import collections
import datetime
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from metalcubed.controllers.kube import localcluster
from tests.kube import test_e2e_support as e2e

HOSTS = 24
IMAGE = {"url": "http://images.example/os.qcow2", "checksum": "0123abcd",
         "checksumType": "sha256", "format": "qcow2"}


def _states(api: k8s.ApiClient, ns: str) -> collections.Counter[str]:
    return collections.Counter(e2e.state(h) for h in e2e.list_hosts(api, ns))


def _create_fleet(api: k8s.ApiClient, ns: str, count: int, **spec: Any) -> None:
    e2e.create_secret(api, ns, "fleet-bmc")
    for i in range(count):
        e2e.create_host(api, ns, f"host-{i:03d}", secret="fleet-bmc", **spec)


def _assert_converged_once(api: k8s.ApiClient, ns: str, count: int, state: str) -> None:
    hosts = e2e.list_hosts(api, ns)
    assert len(hosts) == count, "a host was lost or created twice"
    assert {e2e.state(h) for h in hosts} == {state}
    ids = [h["status"]["provisioning"]["ID"] for h in hosts]
    assert len(set(ids)) == count, "two hosts share a provisioner ID"
    for h in hosts:
        assert h["metadata"]["finalizers"].count("baremetalhost.metal3.io") == 1
        assert h["status"].get("errorCount", 0) == 0 and "errorType" not in h["status"]
    hardware = k8s.CustomObjectsApi(api).list_namespaced_custom_object(
        e2e.GROUP, e2e.VERSION, ns, "hardwaredata")["items"]
    assert sorted(d["metadata"]["name"] for d in hardware) == sorted(
        h["metadata"]["name"] for h in hosts)


def test_kill_9_mid_run_then_restart_converges_every_host(
    kube_cluster: localcluster.Cluster, kube_api: k8s.ApiClient, kube_namespace: str,
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    args = ("--fixture-delay-scale", "0.5", "--concurrency", "4")
    first = e2e.ManagerProcess(kube_cluster.kubeconfig, ns, tmp_path / "first.log", args)
    second = e2e.ManagerProcess(kube_cluster.kubeconfig, ns, tmp_path / "second.log", args)
    try:
        first.start().wait_ready()
        _create_fleet(kube_api, ns, HOSTS, image=IMAGE)

        def mid_run() -> bool:
            states = _states(kube_api, ns)
            return states["provisioning"] > 0 and states["provisioned"] < HOSTS

        e2e.wait_until(mid_run, timeout_s=60, interval_s=0.05, what="hosts mid-provisioning")
        first.kill()
        killed_at = _states(kube_api, ns)
        assert killed_at["provisioned"] < HOSTS

        second.start().wait_ready()
        e2e.wait_until(lambda: _states(kube_api, ns)["provisioned"] == HOSTS, timeout_s=120,
                       what=f"all hosts provisioned after restart (killed at {killed_at})")
        _assert_converged_once(kube_api, ns, HOSTS, "provisioned")
        assert second.alive()
    finally:
        first.kill()
        second.kill()


def _reconciles(mgr: e2e.ManagerProcess) -> float:
    return mgr.metric_sum("controller_runtime_reconcile_total")


def _leading(mgr: e2e.ManagerProcess) -> bool:
    return mgr.metrics().get('leader_election_master_status{name="baremetal-operator"}') == 1.0


def test_two_managers_with_leader_election_only_one_reconciles(
    kube_cluster: localcluster.Cluster, kube_api: k8s.ApiClient, kube_namespace: str,
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    args = ("--fixture-delay-scale", "0.2", "--concurrency", "4", "--leader-elect",
            "--leader-election-namespace", ns)
    a = e2e.ManagerProcess(kube_cluster.kubeconfig, ns, tmp_path / "a.log", args)
    b = e2e.ManagerProcess(kube_cluster.kubeconfig, ns, tmp_path / "b.log", args)
    try:
        a.start().wait_ready()
        e2e.wait_until(lambda: _leading(a), timeout_s=20, what="first manager leads")
        b.start().wait_ready()  # ready (caches synced) while standing by
        _create_fleet(kube_api, ns, 8)
        e2e.wait_until(lambda: _states(kube_api, ns)["available"] == 8, timeout_s=60,
                       what="fleet available")
        assert _reconciles(a) > 0
        assert _reconciles(b) == 0 and not _leading(b)
        leases = k8s.CoordinationV1Api(kube_api)

        # The leader dies without releasing the Lease: the standby waits it out, then leads
        # (the wait is bounded: lease 15 s + retry period 2 s, with room to spare).
        a.kill()
        old = leases.read_namespaced_lease("baremetal-operator", ns).spec  # a's last renewal
        e2e.wait_until(lambda: _leading(b), timeout_s=30, what="standby takes over")
        new = leases.read_namespaced_lease("baremetal-operator", ns).spec
        assert new.holder_identity and new.holder_identity != old.holder_identity
        assert new.lease_transitions == (old.lease_transitions or 0) + 1
        # Never early (two leaders): the standby acquired only once the dead holder's last
        # renewal was a whole lease duration old, by the times the two managers wrote.
        waited = new.acquire_time - old.renew_time
        assert waited >= datetime.timedelta(seconds=old.lease_duration_seconds), (
            f"acquired {waited} after the last renewal, lease {old.lease_duration_seconds} s")

        # The new leader carries on: a new host goes all the way.
        e2e.create_host(kube_api, ns, "late", secret="fleet-bmc")
        e2e.wait_until(lambda: e2e.state(e2e.get_host(kube_api, ns, "late")) == "available",
                       timeout_s=60, what="late host available under the new leader")
        assert _reconciles(b) > 0
        _assert_converged_once(kube_api, ns, 9, "available")
    finally:
        a.kill()
        b.kill()


def test_sigterm_stops_gracefully_and_releases_the_lease(
    kube_cluster: localcluster.Cluster, kube_api: k8s.ApiClient, kube_namespace: str,
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    args = ("--leader-elect", "--leader-election-namespace", ns)
    mgr = e2e.ManagerProcess(kube_cluster.kubeconfig, ns, tmp_path / "m.log", args)
    try:
        mgr.start().wait_ready()
        e2e.wait_until(lambda: _leading(mgr), timeout_s=20, what="manager leads")
        try:  # a hang guard: the manager must exit promptly (it waits for no backoff)
            code = mgr.terminate(timeout_s=10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the manager was still running 10 s after SIGTERM:\n{mgr.log()}")
        assert code == 0, mgr.log()
        lease = k8s.CoordinationV1Api(kube_api).read_namespaced_lease("baremetal-operator", ns)
        assert not lease.spec.holder_identity, "lease not released on SIGTERM"
        assert "manager stopped (exit code 0)" in mgr.log()
    finally:
        mgr.kill()
