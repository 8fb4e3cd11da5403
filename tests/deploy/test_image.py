"""The container image, run with podman against a real kube-apiserver.

The image is the one `make image` builds (deploy/image/build.sh: debootstrap, the project's
wheel, buildah), rebuilt when its metalcubed.source-digest label is not the checkout's. Its
manager runs as the image's non-root user on a read-only root file system (only /tmp writable,
as the chart's emptyDir), with the API server's kubeconfig mounted read-only: a BareMetalHost
goes to available with the fixture provisioner, and /healthz and /metrics answer.

podman runs with runc and explicit ulimits: on hosts with a cgroup v1/v2 hybrid (this CI's)
crun refuses to start, and raising RLIMIT_NOFILE/NPROC to podman's defaults is not permitted
in an unprivileged sandbox.
"""

import json
import shutil
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as kconfig

from metalcubed.controllers.kube import crdgen, localcluster
from tests.deploy import conftest
from tests.kube import test_e2e_support as e2e

PODMAN = ("podman", "--runtime", "runc")
RUN_LIMITS = ("--ulimit", "nofile=16384:16384", "--ulimit", "nproc=4096:4096")
INSTALL = "make image-deps   (apt-get install -y debootstrap buildah podman runc uidmap)"


def _podman(*args: str, check: bool = True, timeout: float = 120) -> (
    subprocess.CompletedProcess[str]
):
    done = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed: {done.stderr}")
    return done


def _label(image: str, name: str) -> str | None:
    done = _podman("image", "inspect", image, check=False)
    if done.returncode != 0:
        return None
    labels = json.loads(done.stdout)[0].get("Labels") or {}
    value = labels.get(name)
    return str(value) if value is not None else None


@pytest.fixture(scope="session")
def image() -> str:
    """The image of this checkout: built (about a minute warm) unless podman has it."""
    for tool in ("podman", "buildah", "debootstrap", "runc"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: {INSTALL}", pytrace=False)
    digest = subprocess.run(["bash", str(conftest.BUILD_IMAGE), "--print-digest"],
                            capture_output=True, text=True, check=True).stdout.strip()
    version = subprocess.run(
        [sys.executable, "-c", "import tomllib;print(tomllib.load(open('pyproject.toml','rb'))"
         "['project']['version'])"], cwd=conftest.REPO, capture_output=True, text=True,
        check=True).stdout.strip()
    name = f"localhost/metalcubed:{version}"
    if _label(name, "metalcubed.source-digest") != digest:
        print(f"\n[deploy] building {name} (source {digest})...", file=sys.__stderr__)
        done = subprocess.run(["bash", str(conftest.BUILD_IMAGE)], stdout=subprocess.PIPE,
                              stderr=sys.__stderr__, text=True, timeout=1800)
        if done.returncode != 0:
            pytest.fail(f"the image build failed: bash {conftest.BUILD_IMAGE}", pytrace=False)
    assert _label(name, "metalcubed.source-digest") == digest
    return name


@pytest.fixture(scope="module")
def cluster_with_crds(deploy_cluster: localcluster.Cluster) -> Iterator[k8s.ApiClient]:
    api = kconfig.new_client_from_config(config_file=str(deploy_cluster.kubeconfig))
    ext = k8s.ApiextensionsV1Api(api)
    for crd in crdgen.generate_all():
        try:
            ext.create_custom_resource_definition(crd)
        except k8s.ApiException as exc:
            if exc.status != 409:
                raise
    names = [c["metadata"]["name"] for c in crdgen.generate_all()]

    def established() -> bool:
        for n in names:
            conds = ext.read_custom_resource_definition(n).status.conditions or []
            if not any(c.type == "Established" and c.status == "True" for c in conds):
                return False
        return True
    e2e.wait_until(established, timeout_s=60, what="CRDs Established")
    yield api
    api.close()


def test_image_is_non_root_with_one_entry_point(image: str) -> None:
    config = json.loads(_podman("image", "inspect", image).stdout)[0]["Config"]
    assert config["Entrypoint"] == ["metalcubed"]
    assert config["User"] == "65532:65532"
    # The declared user exists in the image and the root file system refuses writes.
    done = _podman("run", "--rm", *RUN_LIMITS, "--read-only", "--entrypoint", "sh", image,
                   "-c", "id -u; id -un; touch /usr/x 2>&1 || echo refused")
    lines = done.stdout.split()
    assert lines[:2] == ["65532", "metalcubed"]
    assert "refused" in done.stdout


def test_the_images_manager_reconciles_a_host_to_available(
    image: str, deploy_cluster: localcluster.Cluster, cluster_with_crds: k8s.ApiClient,
    tmp_path: Path,
) -> None:
    api = cluster_with_crds
    ns = f"image-{uuid.uuid4().hex[:6]}"
    k8s.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
    # The container's user must read the kubeconfig (0600 root on the host); a copy for it.
    kubeconfig = tmp_path / "kubeconfig"
    shutil.copyfile(deploy_cluster.kubeconfig, kubeconfig)
    kubeconfig.chmod(0o644)
    health, metrics = e2e.free_port(), e2e.free_port()
    name = f"metalcubed-test-{uuid.uuid4().hex[:8]}"
    _podman("run", "-d", "--name", name, *RUN_LIMITS, "--network", "host",
            "--read-only", "--tmpfs", "/tmp", "-v", f"{kubeconfig}:/kube/config:ro",
            image, "manager", "--kubeconfig", "/kube/config", "--namespace", ns,
            "--controllers", "bmo", "--provisioner", "fixture",
            "--fixture-delay-scale", "0.1",
            f"--metrics-bind-address=127.0.0.1:{metrics}",
            f"--health-probe-bind-address=127.0.0.1:{health}")
    try:
        e2e.create_secret(api, ns, "host-0-bmc")
        e2e.create_host(api, ns, "host-0", secret="host-0-bmc",
                        bootMACAddress="52:54:00:00:00:01")

        def available() -> bool:
            running = _podman("inspect", "--format", "{{.State.Running}}", name).stdout
            assert running.strip() == "true", _podman("logs", name).stderr[-3000:]
            return e2e.state(e2e.get_host(api, ns, "host-0")) == "available"
        e2e.wait_until(available, timeout_s=120, interval_s=0.5, what="host-0 available")

        with urllib.request.urlopen(f"http://127.0.0.1:{health}/healthz", timeout=10) as r:
            assert r.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=10) as r:
            text = r.read().decode()
        assert 'controller_runtime_reconcile_total{controller="baremetalhost"' in text
        # BMO's own series, counting this host's passes and state changes.
        samples = {line.split(" ")[0]: float(line.split(" ")[1])
                   for line in text.splitlines() if line and not line.startswith("#")}
        assert samples.get("metal3_reconcile_total", 0) >= 3, samples
        assert any(k.startswith("metal3_provisioning_state_change_total") and v >= 1
                   for k, v in samples.items()), text
        logs = _podman("logs", name)
        assert "provisioner=fixture" in logs.stdout + logs.stderr
    finally:
        _podman("rm", "-f", "-t", "5", name, check=False)
        k8s.CoreV1Api(api).delete_namespace(ns)
    assert _podman("container", "exists", name, check=False).returncode == 1
