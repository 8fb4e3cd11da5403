"""Fixtures for the deployment tests: a real `helm` and the container image.

helm is built from the Go module proxy by controllers/kube/build-helm.sh (pinned, cached in
~/.cache/metalcubed/helm; a cold build takes a few minutes). The image is built by
deploy/image/build.sh (`make image`: debootstrap, the project's wheel, buildah) when podman's
storage has no image of the current source (label metalcubed.source-digest). Tests that need an
API server start their own (no CRDs: the chart installs them), stopped when their module ends.

Every test here is marked `deploy`; those with an API server are marked `kube` too.
"""

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from metalcubed.controllers.kube import localcluster
from tests.kube.conftest import kube_binaries  # noqa: F401  (a fixture: the built binaries)

HERE = Path(__file__).parent
REPO = HERE.parent.parent
CHART = REPO / "charts" / "metalcubed"
BUILD_HELM = REPO / "controllers" / "kube" / "build-helm.sh"
BUILD_IMAGE = REPO / "deploy" / "image" / "build.sh"
HELM_VERSIONS = ("v4.3.2", "v3.22.0")
"""The chart is Helm 3 and Helm 4: lint and template run with both, install with Helm 4."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.deploy)
            if "deploy_cluster" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.kube)


def build_helm(version: str) -> Path:
    """The pinned helm binary: instant when cached, else built (progress on the real stderr)."""
    env = dict(os.environ, HELM_VERSION=version)
    env["PATH"] = env.get("PATH", "") + ":/usr/local/go/bin"
    done = subprocess.run(["bash", str(BUILD_HELM)], env=env, stdout=subprocess.PIPE,
                          stderr=sys.__stderr__, text=True, timeout=1800)
    if done.returncode != 0:
        pytest.fail(f"building helm {version} failed (Go >= 1.26 needed): "
                    f"HELM_VERSION={version} bash {BUILD_HELM}", pytrace=False)
    return Path(done.stdout.strip())


Helm = Callable[..., subprocess.CompletedProcess[str]]


def helm_runner(binary: Path, *, kubeconfig: Path | None = None,
                home: Path | None = None) -> Helm:
    """helm(args..., check=True) with its caches and config kept out of the user's home."""
    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        if home is not None:
            env.update(HELM_CACHE_HOME=str(home / "cache"), HELM_CONFIG_HOME=str(home / "config"),
                       HELM_DATA_HOME=str(home / "data"))
        argv = [str(binary), *args]
        if kubeconfig is not None:
            argv.append(f"--kubeconfig={kubeconfig}")
        result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stderr}")
        return result
    return run


@pytest.fixture(scope="session", params=HELM_VERSIONS)
def any_helm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """Each supported helm major (no API server)."""
    return helm_runner(build_helm(request.param), home=tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    return build_helm(HELM_VERSIONS[0])


@pytest.fixture(scope="module")
def deploy_cluster(
    kube_binaries: localcluster.Binaries, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
) -> Iterator[localcluster.Cluster]:
    """A fresh kube-apiserver + etcd (+ garbage collector) with no CRDs, for one module."""
    directory = tmp_path_factory.mktemp("deploy-cluster")
    try:
        cluster = localcluster.start(directory, binaries=kube_binaries,
                                     lifetime=localcluster.Lifetime.TIED)
    except localcluster.LocalClusterError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster
    finally:
        localcluster.stop(directory)
