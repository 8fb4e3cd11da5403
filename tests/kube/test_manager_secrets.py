"""Only the Secrets hosts use reach the manager, and namespaced RBAC as shipped is enough (issue 14,
security 3), on the real kube-apiserver.

- In process: the composed manager over a K8sStore whose every call is recorded (the store is
  the manager's only path to the API server): the Secret informer lists and watches with the
  label selector only, an unlabelled unrelated Secret is never read, the host's unlabelled
  Secret is read once by name, labelled, and the host registers.
- As deployed: controllers/manifests/namespaced (Role instead of ClusterRole) applied to a test
  namespace, `metalcubed manager` run with the ServiceAccount's own token: it registers a host
  whose Secret was not labelled, and the token may not read Secrets anywhere else.
"""

import base64
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from metalcubed.controllers import manager
from metalcubed.controllers.kube import crdgen, localcluster, metrics, store
from metalcubed.core import ports, wiring
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta
from metalcubed.core.provisioning import fixture
from metalcubed.core.testing import fakes
from tests.kube import test_e2e_support as e2e

NAMESPACED = Path(crdgen.__file__).parent.parent / "manifests" / "namespaced"
LABEL = {wiring.SECRET_LABEL[0]: wiring.SECRET_LABEL[1]}
FAST = fixture.FixtureDelays(register_s=0.05, inspect_s=0.05, adopt_s=0.05, provision_s=0.05,
                             deprovision_s=0.05, power_s=0.05, delete_s=0.05)
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


class RecordingStore:
    """The real K8sStore, with a log of every Secret request the manager makes through it."""

    def __init__(self, inner: store.K8sStore) -> None:
        self.inner = inner
        self.secret_calls: list[tuple[str, str, str | None]] = []
        """(operation, key or namespace, label selector)"""

    def _note(self, kind: type[meta.Resource], op: str, where: str, sel: str | None) -> None:
        if kind is meta.Secret:
            self.secret_calls.append((op, where, sel))

    def get(self, kind: Any, key: meta.ObjectKey) -> Any:
        self._note(kind, "get", str(key), None)
        return self.inner.get(kind, key)

    def list(self, kind: Any, *, namespace: str | None = None,
             label_selector: str | None = None) -> Any:
        self._note(kind, "list", namespace or "*", label_selector)
        return self.inner.list(kind, namespace=namespace, label_selector=label_selector)

    def create(self, obj: Any) -> Any:
        self._note(type(obj), "create", str(obj.key), None)
        return self.inner.create(obj)

    def update(self, obj: Any) -> Any:
        self._note(type(obj), "update", str(obj.key), None)
        return self.inner.update(obj)

    def update_status(self, obj: Any) -> Any:
        return self.inner.update_status(obj)

    def delete(self, kind: Any, key: meta.ObjectKey) -> None:
        self.inner.delete(kind, key)

    def watch(self, kind: Any, handler: Any, *, namespace: str | None = None,
              resource_version: str | None = None,
              label_selector: str | None = None) -> ports.Watch:
        self._note(kind, "watch", namespace or "*", label_selector)
        return self.inner.watch(kind, handler, namespace=namespace,
                                resource_version=resource_version, label_selector=label_selector)


def _secret(ns: str, name: str, **labels: str) -> meta.Secret:
    return meta.Secret(metadata=meta.ObjectMeta(name=name, namespace=ns, labels=labels),
                       string_data={"username": "admin", "password": f"pw-{name}"})


def _host(ns: str, name: str, secret: str) -> bmh.BareMetalHost:
    return bmh.BareMetalHost(
        metadata=meta.ObjectMeta(name=name, namespace=ns),
        spec=bmh.BareMetalHostSpec(online=True, bmc=bmh.BMCDetails(
            address="ipmi://192.0.2.1", credentials_name=secret)),
    )


@pytest.fixture
def composed(kube_store: store.K8sStore, kube_namespace: str) -> Iterator[
        tuple[RecordingStore, manager.Composition]]:
    backend = RecordingStore(kube_store)
    registry = metrics.new_registry()
    rt = metrics.RuntimeMetrics(registry)
    options = manager.ManagerOptions(namespace=kube_namespace, concurrency=2,
                                      provisioner="fixture", fixture_delays=FAST)
    composition = manager.compose(
        options, backend=backend, recorder=fakes.RecordingEventRecorder(), registry=registry,
        runtime_metrics=rt, bmo_metrics=metrics.PrometheusMetrics(registry),
    )
    stop = threading.Event()
    thread = threading.Thread(target=composition.manager.run, args=(stop,), daemon=True)
    thread.start()
    assert composition.controller.started.wait(30)
    yield backend, composition
    stop.set()
    thread.join(timeout=15)


def test_an_unrelated_secret_is_never_read_and_a_used_one_is_labelled_once(
    kube_store: store.K8sStore, kube_namespace: str,
    composed: tuple[RecordingStore, manager.Composition],
) -> None:
    ns = kube_namespace
    backend, composition = composed
    kube_store.create(_secret(ns, "unrelated"))
    kube_store.create(_secret(ns, "creds"))
    kube_store.create(_host(ns, "h0", "creds"))
    key = meta.ObjectKey(ns, "h0")
    e2e.wait_until(lambda: kube_store.get(bmh.BareMetalHost, key).status.provisioning.state
                   == bmh.ProvisioningState.AVAILABLE, timeout_s=30, what="h0 available")
    creds = kube_store.get(meta.Secret, meta.ObjectKey(ns, "creds"))
    assert creds.metadata.labels == LABEL
    assert creds.value("password") == "pw-creds"  # only the label was written
    assert kube_store.get(meta.Secret, meta.ObjectKey(ns, "unrelated")).metadata.labels == {}
    calls = backend.secret_calls
    # Lists and watches of Secrets carry the selector; the unrelated one is never named.
    assert [c for c in calls if c[0] in ("list", "watch")] == [
        ("watch", ns, wiring.SECRET_SELECTOR)]
    assert not [c for c in calls if c[1].endswith("/unrelated")]
    assert calls.count(("get", f"{ns}/creds", None)) == 1
    assert calls.count(("update", f"{ns}/creds", None)) == 1
    cache = composition.store.informer(meta.Secret)  # type: ignore[attr-defined]
    e2e.wait_until(lambda: cache.get(creds.key) is not None, timeout_s=10, what="cached")
    assert [s.metadata.name for s in cache.list()] == ["creds"]
    # Later reads come from the cache: another host on the same Secret adds no GET.
    kube_store.create(_host(ns, "h1", "creds"))
    e2e.wait_until(lambda: kube_store.get(bmh.BareMetalHost, meta.ObjectKey(ns, "h1"))
                   .status.provisioning.state == bmh.ProvisioningState.AVAILABLE,
                   timeout_s=30, what="h1 available")
    assert calls.count(("get", f"{ns}/creds", None)) == 1


def test_a_secret_that_loses_its_label_is_labelled_again(
    kube_store: store.K8sStore, kube_namespace: str,
    composed: tuple[RecordingStore, manager.Composition],
) -> None:
    ns = kube_namespace
    kube_store.create(_secret(ns, "creds"))
    kube_store.create(_host(ns, "h0", "creds"))
    key = meta.ObjectKey(ns, "creds")
    e2e.wait_until(lambda: kube_store.get(meta.Secret, key).metadata.labels == LABEL,
                   timeout_s=30, what="labelled")
    # Someone strips the label and breaks the password: the watch sees the Secret leave
    # (DELETED for the selector), its host is reconciled, reads it by name and labels it again.
    secret = kube_store.get(meta.Secret, key)
    kube_store.update(secret.model_copy(update={
        "metadata": secret.metadata.model_copy(update={"labels": {}}),
        "data": {}, "string_data": {"username": "admin", "password": ""}}))
    host = meta.ObjectKey(ns, "h0")
    e2e.wait_until(lambda: kube_store.get(bmh.BareMetalHost, host).status.error_type
                   == bmh.ErrorType.REGISTRATION, timeout_s=30, what="registration error")
    assert kube_store.get(meta.Secret, key).metadata.labels == LABEL


# --- namespaced RBAC as shipped ----------------------------------------------------------------


def _namespaced_docs(kubectl: Kubectl, ns: str) -> list[dict[str, Any]]:
    """The namespaced overlay's namespace-scoped objects, moved into `ns` (the cluster-scoped
    ones are the base's, applied by test_manifests.py; the Deployment is not run here)."""
    docs = [d for d in yaml.safe_load_all(kubectl("kustomize", str(NAMESPACED)).stdout) if d]
    kept = []
    for doc in docs:
        if doc["kind"] not in ("ServiceAccount", "Role", "RoleBinding"):
            continue
        doc["metadata"]["namespace"] = ns
        for subject in doc.get("subjects", []):
            subject["namespace"] = ns
        kept.append(doc)
    return kept


def test_the_namespaced_variant_watches_its_namespace_with_a_role(kubectl: Kubectl) -> None:
    docs = [d for d in yaml.safe_load_all(kubectl("kustomize", str(NAMESPACED)).stdout) if d]
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("ClusterRole", "metalcubed-manager") not in names
    assert ("ClusterRoleBinding", "metalcubed-manager") not in names
    assert ("Role", "metalcubed-manager") in names
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["WATCH_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    # Its Role grants exactly the base ClusterRole's rules.
    base = [d for d in yaml.safe_load_all(kubectl("kustomize", str(NAMESPACED.parent)).stdout)
            if d and d["kind"] == "ClusterRole" and d["metadata"]["name"] == "metalcubed-manager"]
    (role,) = [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] ==
               "metalcubed-manager"]
    assert role["rules"] == base[0]["rules"]


def _token_kubeconfig(cluster: localcluster.Cluster, token: str, path: Path) -> Path:
    ca = base64.b64encode(cluster.pki.ca_cert.read_bytes()).decode()
    server = yaml.safe_load(cluster.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server,
                                                "certificate-authority-data": ca}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "sa"}}],
        "current-context": "c",
    }))
    path.chmod(0o600)
    return path


def test_the_manager_works_with_the_namespaced_role_as_its_own_identity(
    kubectl: Kubectl, kube_cluster: localcluster.Cluster, kube_api: k8s.ApiClient,
    kube_store: store.K8sStore, kube_namespace: str, tmp_path: Path,
) -> None:
    ns = kube_namespace
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(_namespaced_docs(kubectl, ns)))
    account = f"system:serviceaccount:{ns}:metalcubed-manager"

    def can(verb: str, resource: str, where: str) -> bool:
        scope = ["--all-namespaces"] if where == "*" else [f"--namespace={where}"]
        answer = kubectl("auth", "can-i", verb, resource, f"--as={account}", *scope,
                         check=False).stdout.strip()
        assert answer in ("yes", "no")
        return answer == "yes"

    assert can("list", "secrets", ns) and can("update", "secrets", ns)
    assert can("watch", "baremetalhosts.metal3.io", ns)
    assert not can("list", "secrets", "*")
    assert not can("get", "secrets", "default")
    assert not can("watch", "baremetalhosts.metal3.io", "*")
    token = kubectl("create", "token", "metalcubed-manager", f"--namespace={ns}",
                    "--duration=1h").stdout.strip()
    kubeconfig = _token_kubeconfig(kube_cluster, token, tmp_path / "sa.kubeconfig")
    kube_store.create(_secret(ns, "unrelated"))
    kube_store.create(_secret(ns, "creds"))
    kube_store.create(_host(ns, "h0", "creds"))
    with e2e.running_manager(kubeconfig, ns, tmp_path / "manager.log", "--leader-elect",
                             f"--leader-election-namespace={ns}",
                             "--fixture-delay-scale=0.01") as mgr:
        host = meta.ObjectKey(ns, "h0")
        e2e.wait_until(lambda: kube_store.get(bmh.BareMetalHost, host).status.provisioning
                       .state == bmh.ProvisioningState.AVAILABLE, timeout_s=60,
                       what=f"h0 available\n{mgr.log()}")
        log = mgr.log()
    assert kube_store.get(meta.Secret, meta.ObjectKey(ns, "creds")).metadata.labels == LABEL
    assert kube_store.get(meta.Secret, meta.ObjectKey(ns, "unrelated")).metadata.labels == {}
    assert "forbidden" not in log.lower(), log


def test_the_manager_works_with_the_cluster_role_as_its_own_identity(
    kubectl: Kubectl, kube_cluster: localcluster.Cluster, kube_store: store.K8sStore,
    kube_namespace: str, tmp_path: Path,
) -> None:
    """The default manifests (ClusterRole), applied as shipped: the manager's own token
    registers a host whose Secret was not labelled, with leader election in its namespace."""
    ns, system = kube_namespace, "metalcubed-system"
    kubectl("apply", "-k", str(NAMESPACED.parent))
    # No webhook server runs here (tests/kube/test_webhooks.py covers admission); left
    # registered with failurePolicy Fail, the configuration would refuse every host write.
    kubectl("delete", "validatingwebhookconfiguration", "--ignore-not-found",
            "metalcubed-validating-webhook-configuration")
    token = kubectl("create", "token", "metalcubed-manager", f"--namespace={system}",
                    "--duration=1h").stdout.strip()
    kubeconfig = _token_kubeconfig(kube_cluster, token, tmp_path / "sa.kubeconfig")
    kube_store.create(_secret(ns, "creds"))
    kube_store.create(_host(ns, "h0", "creds"))
    with e2e.running_manager(kubeconfig, ns, tmp_path / "manager.log", "--leader-elect",
                             f"--leader-election-namespace={system}",
                             f"--leader-election-id=lease-{ns}",
                             "--fixture-delay-scale=0.01") as mgr:
        host = meta.ObjectKey(ns, "h0")
        e2e.wait_until(lambda: kube_store.get(bmh.BareMetalHost, host).status.provisioning
                       .state == bmh.ProvisioningState.AVAILABLE, timeout_s=60,
                       what="h0 available")
        log = mgr.log()
    assert kube_store.get(meta.Secret, meta.ObjectKey(ns, "creds")).metadata.labels == LABEL
    assert "forbidden" not in log.lower(), log
