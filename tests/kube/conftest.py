"""Fixtures for tests against a real kube-apiserver + etcd (+ garbage collector).

One control plane per pytest session, as envtest does: built from the Go module proxy on first
use (tests/kube/build-kube.sh, cached in ~/.cache/metalcubed/kube; a cold build takes minutes
and prints its progress), started on loopback in a temporary directory, with our CRDs installed
and Established, stopped (by pid) when the session ends. Each test gets its own namespace.

Every test in this directory is marked `kube` (select with `-m kube`, skip with `-m "not
kube"`); they run in the normal suite. METALCUBED_KUBE_BUILD=0 turns a missing build into a
failure naming the build command instead of building.
"""

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as kconfig

from metalcubed.controllers.kube import crdgen, localcluster, store

HERE = Path(__file__).parent
_timings: dict[str, float] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.kube)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _timings:
        text = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in _timings.items())
        terminalreporter.write_line(f"kube control plane: {text}")


@pytest.fixture(scope="session")
def kube_binaries() -> localcluster.Binaries:
    began = time.monotonic()
    try:
        found = localcluster.find_binaries()
        if found is None:
            if os.environ.get("METALCUBED_KUBE_BUILD") == "0":
                pytest.fail(
                    "kube-apiserver/etcd are not built; build them with:\n  "
                    + localcluster.build_command(),
                    pytrace=False,
                )
            # Minutes: show progress on the real stderr, past pytest's capture.
            print("\n[kube] building kube-apiserver and etcd (first use only)...",
                  file=sys.__stderr__)
            found = localcluster.build_binaries(progress=sys.__stderr__)
    except localcluster.LocalClusterError as exc:
        pytest.fail(f"{exc}\nbuild command: {localcluster.build_command()}", pytrace=False)
    _timings["binaries"] = time.monotonic() - began
    return found


@pytest.fixture(scope="session")
def kube_cluster(
    kube_binaries: localcluster.Binaries, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[localcluster.Cluster]:
    directory = tmp_path_factory.mktemp("kube-cluster")
    began = time.monotonic()

    def lap(message: str) -> None:
        # localcluster reports each step ("etcd ready on ...", "2 CRDs Established", ...);
        # keep the time since launch at which it was reached.
        step = {"etcd": "etcd", "kube-apiserver": "apiserver", "garbage": "gc"}.get(
            message.split(" ")[0], "crds"
        )
        _timings[f"{step} ready at"] = time.monotonic() - began

    try:
        cluster = localcluster.start(
            directory,
            binaries=kube_binaries,
            lifetime=localcluster.Lifetime.TIED,
            crds=crdgen.generate_all(),
            log=lap,
        )
    except localcluster.LocalClusterError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster
    finally:
        localcluster.stop(directory)


@pytest.fixture(scope="session")
def kube_api(kube_cluster: localcluster.Cluster) -> Iterator[k8s.ApiClient]:
    """An admin `kubernetes.client.ApiClient` for the session's cluster."""
    api = kconfig.new_client_from_config(config_file=str(kube_cluster.kubeconfig))
    yield api
    api.close()


@pytest.fixture(scope="session")
def kube_store(kube_api: k8s.ApiClient) -> store.K8sStore:
    return store.K8sStore(kube_api)


def _namespace_name(node_name: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", node_name.lower()).strip("-")[:40].strip("-")
    return f"{slug or 't'}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def kube_namespace(kube_api: k8s.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (the namespace controller empties it)."""
    name = _namespace_name(request.node.name)
    core = k8s.CoreV1Api(kube_api)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    try:
        core.delete_namespace(name)
    except k8s.ApiException as exc:
        if exc.status != 404:
            raise


Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def kubectl(kube_cluster: localcluster.Cluster, kube_binaries: localcluster.Binaries) -> Kubectl:
    """Run kubectl against the session's cluster: kubectl("get", "ns", input=None, check=True)."""
    binary = kube_binaries.kubectl
    if binary is None:
        pytest.fail("no kubectl: build it with\n  " + localcluster.build_command(), pytrace=False)

    def run(*args: str, input: str | None = None, check: bool = True) -> (
        subprocess.CompletedProcess[str]
    ):
        result = subprocess.run(
            [str(binary), f"--kubeconfig={kube_cluster.kubeconfig}", *args],
            input=input, capture_output=True, text=True, timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
            )
        return result

    return run


def wait_until(
    predicate: Callable[[], bool], *, timeout_s: float = 30.0, interval_s: float = 0.05
) -> None:
    """Poll `predicate` until it holds; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(interval_s)
