"""`metalcubed manager --metrics-secure` on the real kube-apiserver: /metrics over HTTPS, refused
without a token or with a token whose user may not get /metrics, served to a ServiceAccount
bound to the shipped metalcubed-metrics-reader ClusterRole (issue 14, security 6)."""

import http.client
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from metalcubed.controllers.kube import crdgen, localcluster
from tests.kube import test_e2e_support as e2e

READER = Path(crdgen.__file__).parent.parent / "manifests" / "rbac" / "metrics_reader_role.yaml"
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def _get(port: int, token: str | None) -> tuple[int, str]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # self-signed: made by the manager at start
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=15)
    try:
        conn.request("GET", "/metrics",
                     headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


@pytest.fixture
def secure_manager(
    kube_cluster: localcluster.Cluster, kube_namespace: str, tmp_path: Path
) -> Iterator[e2e.ManagerProcess]:
    with e2e.running_manager(kube_cluster.kubeconfig, kube_namespace, tmp_path / "mgr.log",
                             "--metrics-secure") as mgr:
        yield mgr


def test_metrics_need_a_token_allowed_to_get_them(
    kubectl: Kubectl, kube_namespace: str, secure_manager: e2e.ManagerProcess,
) -> None:
    ns = kube_namespace
    port = secure_manager.metrics_port
    # Plain HTTP is not served.
    assert secure_manager.http(port, "/metrics")[0] != 200
    assert _get(port, None)[0] == 401
    assert _get(port, "not-a-token")[0] == 401
    kubectl("create", "serviceaccount", "scraper", f"--namespace={ns}")
    kubectl("create", "serviceaccount", "nobody", f"--namespace={ns}")
    nobody = kubectl("create", "token", "nobody", f"--namespace={ns}").stdout.strip()
    status, body = _get(port, nobody)
    assert status == 403
    assert f"system:serviceaccount:{ns}:nobody" in body
    # The shipped reader role, bound to the scraper (under a per-test name: cluster-scoped).
    role = yaml.safe_load(READER.read_text())
    role["metadata"]["name"] = f"metrics-reader-{ns}"
    kubectl("apply", "-f", "-", input=yaml.safe_dump(role))
    try:
        kubectl("create", "clusterrolebinding", f"metrics-reader-{ns}",
                f"--clusterrole=metrics-reader-{ns}", f"--serviceaccount={ns}:scraper")
        scraper = kubectl("create", "token", "scraper", f"--namespace={ns}").stdout.strip()
        status, body = _get(port, scraper)
        assert status == 200
        assert "controller_runtime_reconcile_total" in body or "metal3_" in body
        assert _get(port, nobody)[0] == 403
    finally:
        kubectl("delete", "clusterrolebinding", f"metrics-reader-{ns}", check=False)
        kubectl("delete", "clusterrole", f"metrics-reader-{ns}", check=False)


def test_the_probes_stay_plain_http(secure_manager: e2e.ManagerProcess) -> None:
    assert secure_manager.http(secure_manager.health_port, "/healthz") == (200, "ok")


def test_a_tls_handshake_that_never_comes_does_not_block_scrapes(
    secure_manager: e2e.ManagerProcess,
) -> None:
    with socket.create_connection(("127.0.0.1", secure_manager.metrics_port)):
        assert _get(secure_manager.metrics_port, None)[0] == 401
