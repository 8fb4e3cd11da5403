"""No log level prints Secret data (issue 14, security item 2): the official client logs every
response body at DEBUG, so a Secret list read by the manager would put every BMC password in the
log. Checked on the real API server, with a Secret made by `kubectl apply` (its
last-applied-configuration annotation holds the password again, in clear)."""

import base64
import logging
from pathlib import Path

import pytest
from kubernetes import client as k8s

from metalcubed.controllers.kube import client, localcluster, redaction, store
from metalcubed.core.api import meta

from .conftest import Kubectl
from .test_e2e_support import running_manager, wait_until

PASSWORD = "pw-never-in-any-log-7f3a"


def _secret_manifest(namespace: str) -> str:
    return f"""apiVersion: v1
kind: Secret
metadata:
  name: bmc-creds
  namespace: {namespace}
  labels:
    environment.metal3.io: baremetal  # what the manager's Secret cache lists (as upstream)
type: Opaque
stringData:
  username: admin
  password: {PASSWORD}
"""


def _leaks(text: str) -> list[str]:
    encoded = base64.b64encode(PASSWORD.encode()).decode()
    return [form for form in (PASSWORD, encoded, encoded.rstrip("=")) if form in text]


def test_debug_log_of_the_clients_secret_reads_holds_no_secret_data(
        kube_cluster: localcluster.Cluster, kube_namespace: str, kubectl: Kubectl,
        caplog: pytest.LogCaptureFixture) -> None:
    kubectl("apply", "-f", "-", input=_secret_manifest(kube_namespace))
    api = client.new_client(client.load_configuration(str(kube_cluster.kubeconfig)),
                            qps=0, burst=1, connections=2)
    try:
        with caplog.at_level(logging.DEBUG):
            kube = store.K8sStore(api)
            secrets = kube.list(meta.Secret, namespace=kube_namespace)
            one = kube.get(meta.Secret, meta.ObjectKey(kube_namespace, "bmc-creds"))
            k8s.CoreV1Api(api).list_secret_for_all_namespaces()
            k8s.CoreV1Api(api).read_namespaced_secret("bmc-creds", kube_namespace)
    finally:
        api.close()
    assert one.value("password") == PASSWORD and len(secrets) == 1  # the reads worked
    bodies = [r.getMessage() for r in caplog.records if r.name == "kubernetes.client.rest"]
    assert any("bmc-creds" in body for body in bodies), "DEBUG did not log response bodies"
    assert any(redaction.REDACTED in body for body in bodies)
    assert _leaks(caplog.text) == []


def test_manager_at_log_level_debug_prints_no_secret_data(
        kube_cluster: localcluster.Cluster, kube_namespace: str, kubectl: Kubectl,
        tmp_path: Path) -> None:
    kubectl("apply", "-f", "-", input=_secret_manifest(kube_namespace))
    log_path = tmp_path / "manager.log"
    with running_manager(kube_cluster.kubeconfig, kube_namespace, log_path,
                         "--log-level", "debug") as mgr:
        wait_until(lambda: "bmc-creds" in mgr.log_path.read_text(), timeout_s=60,
                   what="the manager's Secret list in its debug log")
        assert mgr.terminate() == 0
    text = log_path.read_text()
    assert "response body" in text
    assert _leaks(text) == []
