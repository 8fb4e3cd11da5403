"""`metalcubed devenv up --kubeconfig`: the lab's controller against a real kube-apiserver.

The session's control plane (tests/kube/conftest.py: kube-apiserver + etcd with our CRDs) holds
the hosts and Secrets; the lab process runs the composed manager over it (informers, Events,
the provisioning engine over the emulated BMCs). `status` reads the hosts from the API server;
`down` deletes the lab's objects there (the controller deprovisions and releases them) before
it stops.
"""

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s

from metalcubed.controllers.kube import localcluster
from metalcubed.simulators.devenv import control

from ..kube.conftest import kube_api, kube_binaries, kube_cluster  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.hardware, pytest.mark.kube, pytest.mark.slow]


def devenv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "metalcubed.cli", "devenv", *args],
                          capture_output=True, text=True, timeout=240)


@pytest.fixture
def namespace(kube_api: k8s.ApiClient) -> Iterator[str]:  # noqa: F811 (fixture)
    name = f"devenv-{uuid.uuid4().hex[:6]}"
    yield name
    try:
        k8s.CoreV1Api(kube_api).delete_namespace(name)
    except k8s.ApiException as exc:
        if exc.status != 404:
            raise


@pytest.fixture
def lab_dirs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    dirs = (tmp_path / "lab", tmp_path / "second")
    yield dirs
    for directory in dirs:
        control.down(directory, timeout_s=30)


def _manager_alive(pid: int) -> bool:
    try:
        return b"manager" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_lab_against_an_api_server(
    kube_cluster: localcluster.Cluster,  # noqa: F811 (fixture)
    kube_api: k8s.ApiClient,  # noqa: F811 (fixture)
    namespace: str,
    lab_dirs: tuple[Path, Path],
) -> None:
    lab_dir, second_dir = lab_dirs
    kubeconfig = str(kube_cluster.kubeconfig)
    up = devenv("up", "--hosts", "4", "--bmc", "mixed", "--provision", "--kubeconfig",
                kubeconfig, "--namespace", namespace, "--dir", str(lab_dir))
    assert up.returncode == 0, up.stderr
    assert "kubernetes store" in up.stdout

    status = devenv("status", "--json", "--dir", str(lab_dir))
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)
    assert doc["lab"]["store"] == "kubernetes" and doc["lab"]["namespace"] == namespace
    # The controller is the real `metalcubed manager --provisioner engine` process.
    manager_pid = doc["lab"]["managerProcess"]
    argv = Path(f"/proc/{manager_pid}/cmdline").read_bytes().split(b"\0")
    assert argv[1:6] == [b"-m", b"metalcubed.cli", b"manager", b"--provisioner", b"engine"]
    agent_bind = argv[argv.index(b"--agent-api-bind-address") + 1].decode()
    assert doc["lab"]["lookupService"] == f"http://{agent_bind}"
    assert doc["summary"]["byState"] == {"provisioned": 4}

    objects = k8s.CustomObjectsApi(kube_api)
    hosts = objects.list_namespaced_custom_object("metal3.io", "v1alpha1", namespace,
                                                  "baremetalhosts")["items"]
    assert sorted(h["status"]["provisioning"]["state"] for h in hosts) == ["provisioned"] * 4
    core = k8s.CoreV1Api(kube_api)
    secrets = core.list_namespaced_secret(namespace, label_selector="metalcubed.io/devenv")
    assert len(secrets.items) == 4
    reasons = {e.reason for e in core.list_namespaced_event(namespace).items}
    assert {"Registered", "InspectionComplete", "ProvisioningComplete"} <= reasons

    # A second lab in the same namespace would fight over the hosts: it refuses to start,
    # says why, and leaves the first lab's objects alone.
    # (It has more hosts than the first: the ones it managed to create, host-4 and host-5,
    # are deleted again.)
    second = devenv("up", "--hosts", "6", "--kubeconfig", kubeconfig, "--namespace", namespace,
                    "--dir", str(second_dir))
    assert second.returncode == 1
    assert "already exists" in second.stderr
    assert control.running(second_dir) is None
    left = objects.list_namespaced_custom_object("metal3.io", "v1alpha1", namespace,
                                                 "baremetalhosts")["items"]
    assert sorted(h["metadata"]["name"] for h in left) == [f"host-{i}" for i in range(4)]
    assert {h["metadata"]["labels"]["metalcubed.io/devenv"] for h in left} == {
        doc["lab"]["id"]}
    assert len(core.list_namespaced_secret(namespace,
                                           label_selector="metalcubed.io/devenv").items) == 4

    pids = [control.require(lab_dir).pid, *control.require(lab_dir).bmc_pids]
    down = devenv("down", "--dir", str(lab_dir))
    assert down.returncode == 0, down.stderr
    assert not any(control.is_ours(p) for p in pids)
    assert not _manager_alive(manager_pid)
    assert objects.list_namespaced_custom_object(
        "metal3.io", "v1alpha1", namespace, "baremetalhosts")["items"] == []
    assert core.list_namespaced_secret(namespace,
                                       label_selector="metalcubed.io/devenv").items == []
