"""The chart on a real kube-apiserver with a real helm (Helm 4): every values combination is
admitted (server-side dry run), and install -> upgrade -> uninstall leaves nothing behind but
the CRDs, as Helm does with a chart's CRDs.

No kubelet runs here, so no Pod starts: what is tested is what the API server admits and what
Helm creates, changes and deletes. The image's manager is run by test_image.py.
"""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from metalcubed.controllers.kube import localcluster
from tests.deploy import conftest
from tests.deploy import test_chart as chart_test

RELEASE = "metalcubed"
NAMESPACE = "metalcubed-system"
Doc = dict[str, Any]


@pytest.fixture(scope="module")
def helm(deploy_cluster: localcluster.Cluster, helm_binary: Path,
         tmp_path_factory: pytest.TempPathFactory) -> conftest.Helm:
    return conftest.helm_runner(helm_binary, kubeconfig=deploy_cluster.kubeconfig,
                                home=tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def kubectl(deploy_cluster: localcluster.Cluster,
            kube_binaries: localcluster.Binaries) -> Iterator[conftest.Helm]:
    assert kube_binaries.kubectl is not None, localcluster.build_command()

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(kube_binaries.kubectl),
                               f"--kubeconfig={deploy_cluster.kubeconfig}", *args],
                              capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {done.stderr}")
        return done
    yield run


def _docs(text: str) -> list[Doc]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [d for d in yaml.load_all(text, Loader=loader) if d]


def _ref(doc: Doc) -> list[str]:
    kind = doc["kind"]
    ns = doc["metadata"].get("namespace")
    return [kind, doc["metadata"]["name"], *(["-n", ns] if ns else [])]


def _exists(kubectl: conftest.Helm, doc: Doc) -> bool:
    done = kubectl("get", *_ref(doc), "-o", "name", check=False)
    if done.returncode == 0:
        return True
    assert "NotFound" in done.stderr, done.stderr
    return False


ADMITTED = [name for name in chart_test.COMBINATIONS
            if name not in ("service-monitor", "cert-manager")]
"""ServiceMonitor needs the Prometheus Operator's CRDs, Issuer and Certificate cert-manager's,
not installed here: those combinations are rendered and linted only (test_chart.py)."""


@pytest.mark.parametrize("name", ADMITTED)
def test_values_combination_is_admitted_by_the_api_server(helm: conftest.Helm,
                                                          name: str) -> None:
    args, _ = chart_test.COMBINATIONS[name]
    done = helm("install", RELEASE, str(conftest.CHART), "--namespace", NAMESPACE,
                "--dry-run=server", *args)
    assert "STATUS: pending-install" in done.stdout


def test_install_upgrade_uninstall_leaves_only_the_crds(
    helm: conftest.Helm, kubectl: conftest.Helm,
) -> None:
    # Install: every object admitted and there.
    done = helm("install", RELEASE, str(conftest.CHART), "--namespace", NAMESPACE,
                "--create-namespace", "--set", "manager.provisioner=fixture")
    assert "STATUS: deployed" in done.stdout
    assert "agent API    http://$(POD_IP):6385" in done.stdout       # NOTES.txt
    first = _docs(helm("get", "manifest", RELEASE, "-n", NAMESPACE).stdout)
    kinds = {d["kind"] for d in first}
    assert {"CustomResourceDefinition", "Deployment", "Service", "ServiceAccount", "ClusterRole",
            "ClusterRoleBinding", "Role", "RoleBinding",
            "ValidatingWebhookConfiguration"} <= kinds
    missing = [_ref(d) for d in first if not _exists(kubectl, d)]
    assert missing == []
    crds = [d["metadata"]["name"] for d in first if d["kind"] == "CustomResourceDefinition"]
    for crd in crds:
        kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{crd}")

    # Upgrade: a fixed engine address, one replica, no CAPM3: changed in place, CAPM3 removed.
    done = helm("upgrade", RELEASE, str(conftest.CHART), "--namespace", NAMESPACE,
                "--set", "manager.provisioner=fixture", "--set", "capm3.enabled=false",
                "--set", "manager.replicas=1",
                "--set", "provisioning.agentAPIURL=http://10.0.0.50:6385",
                "--set", "provisioning.bootServerURL=http://10.0.0.50:6180",
                "--set", "engineService.type=NodePort")
    assert "REVISION: 2" in done.stdout
    manager = json.loads(kubectl("get", "deployment", "metalcubed-manager", "-n", NAMESPACE,
                                 "-o", "json").stdout)
    assert manager["spec"]["replicas"] == 1
    assert "--agent-api-url=http://10.0.0.50:6385" in \
        manager["spec"]["template"]["spec"]["containers"][0]["args"]
    engine = json.loads(kubectl("get", "service", "metalcubed-engine", "-n", NAMESPACE,
                                "-o", "json").stdout)
    assert engine["spec"]["type"] == "NodePort"
    capm3 = [d for d in first if "capm3" in d["metadata"]["name"]
             and d["kind"] != "CustomResourceDefinition"]
    assert capm3 and [_ref(d) for d in capm3 if _exists(kubectl, d)] == []

    # A contradictory upgrade is refused naming the value, and changes nothing.
    bad = helm("upgrade", RELEASE, str(conftest.CHART), "--namespace", NAMESPACE,
               "--reuse-values", "--set", "provisioning.pxe.enabled=true", check=False)
    assert bad.returncode != 0 and "/provisioning/network/" in bad.stderr, bad.stderr
    status = json.loads(helm("status", RELEASE, "-n", NAMESPACE, "-o", "json").stdout)
    assert status["version"] == 2 and status["info"]["status"] == "deployed"

    # Uninstall: every object of both revisions gone but the CRDs; no release record left.
    second = _docs(helm("get", "manifest", RELEASE, "-n", NAMESPACE).stdout)
    done = helm("uninstall", RELEASE, "--namespace", NAMESPACE)
    assert "kept due to the resource policy" in done.stdout + done.stderr
    left = [_ref(d) for d in first + second
            if d["kind"] != "CustomResourceDefinition" and _exists(kubectl, d)]
    assert left == []
    assert all(_exists(kubectl, {"kind": "crd", "metadata": {"name": c}}) for c in crds)
    records = kubectl("get", "secrets", "-n", NAMESPACE, "-l", f"owner=helm,name={RELEASE}",
                      "-o", "name").stdout
    assert records.strip() == ""
    # What is left is exactly the CRDs: nothing labelled as ours anywhere else.
    ours = kubectl("get", "clusterroles,clusterrolebindings,validatingwebhookconfigurations,"
                   "deployments,services,serviceaccounts,roles,rolebindings", "-A",
                   "-l", "app.kubernetes.io/part-of=metalcubed", "-o", "name").stdout
    assert ours.strip() == ""
