"""End to end: the API server dies (SIGKILL) and comes back while the manager runs.

A private control plane (not the session's, which other tests share) is started for this test.
While kube-apiserver is down the manager's watches drop and its writes fail; when it is back,
the watches resume or relist (410 Gone) and failed reconciles are retried, so every host
converges, including the ones created and edited after the restart, none lost or doubled.
"""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as kconfig

from metalcubed.controllers.kube import crdgen, localcluster
from tests.kube import test_e2e_support as e2e
from tests.kube.test_e2e_restart import _assert_converged_once, _states

IMAGE = {"url": "http://images.example/os.qcow2", "checksum": "0123abcd",
         "checksumType": "sha256", "format": "qcow2"}


@pytest.fixture
def private_cluster(
    kube_binaries: localcluster.Binaries, tmp_path: Path
) -> Iterator[localcluster.Cluster]:
    directory = tmp_path / "cluster"
    cluster = localcluster.start(directory, binaries=kube_binaries,
                                 lifetime=localcluster.Lifetime.TIED, crds=crdgen.generate_all())
    try:
        yield cluster
    finally:
        localcluster.stop(directory)


def _argv(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [part.decode() for part in raw.split(b"\0") if part]


@contextlib.contextmanager
def _apiserver_restarted(cluster: localcluster.Cluster, down_s: float) -> Iterator[None]:
    """Kill kube-apiserver with SIGKILL, keep it down `down_s`, start it again with the same
    flags (same port, same etcd); the relaunched process is killed by PID on exit."""
    proc = cluster.process("kube-apiserver")
    assert proc is not None
    argv = _argv(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(proc.pid, 0)
    time.sleep(down_s)
    with proc.log.open("ab") as log:
        relaunched = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(relaunched.pid, signal.SIGKILL)
        relaunched.wait(timeout=10)


def _ready(api: k8s.ApiClient, ns: str) -> bool:
    """Serving again, custom resources included (they come up after the built-in paths)."""
    try:
        k8s.CoreV1Api(api).list_namespace(limit=1, _request_timeout=2)
        e2e.list_hosts(api, ns)
    except Exception:
        return False
    return True


def test_api_server_restart_loses_and_duplicates_nothing(
    private_cluster: localcluster.Cluster, tmp_path: Path
) -> None:
    api = kconfig.new_client_from_config(config_file=str(private_cluster.kubeconfig))
    ns = "restart"
    k8s.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
    e2e.create_secret(api, ns, "bmc")
    for i in range(10):
        e2e.create_host(api, ns, f"before-{i}", secret="bmc")
    args = ("--fixture-delay-scale", "0.5", "--concurrency", "4")
    with e2e.running_manager(private_cluster.kubeconfig, ns, tmp_path / "manager.log",
                             *args) as mgr:
        e2e.wait_until(lambda: _states(api, ns)["available"] >= 3, timeout_s=60,
                       what="some hosts available before the restart")
        with _apiserver_restarted(private_cluster, down_s=4.0):
            e2e.wait_until(lambda: _ready(api, ns), timeout_s=60, what="API server back")
            assert mgr.alive(), mgr.log()
            for i in range(6):
                e2e.create_host(api, ns, f"after-{i}", secret="bmc")
            for i in range(3):
                e2e.patch_host(api, ns, f"before-{i}", {"spec": {"image": IMAGE}})

            def converged() -> bool:
                states = _states(api, ns)
                return states["provisioned"] == 3 and states["available"] == 13

            e2e.wait_until(converged, timeout_s=120,
                           what=f"convergence after the restart: {_states(api, ns)}")
            hosts = e2e.list_hosts(api, ns)
            assert len(hosts) == 16
            provisioned = sorted(h["metadata"]["name"] for h in hosts
                                 if e2e.state(h) == "provisioned")
            assert provisioned == ["before-0", "before-1", "before-2"]
            for i in range(3):
                e2e.patch_host(api, ns, f"before-{i}", {"spec": {"image": None}})
            e2e.wait_until(lambda: _states(api, ns)["available"] == 16, timeout_s=120,
                           what="deprovisioned after the restart")
            _assert_converged_once(api, ns, 16, "available")
            assert mgr.alive()
    api.close()
