"""The deploy manifests (controllers/manifests) against a real API server.

They must build with kustomize, apply cleanly (the restricted Pod Security level included),
grant the manager exactly what it uses (checked with the server's own authorizer, through
impersonation of the ServiceAccount) and start the manager with flags it accepts.
"""

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as kconfig

from metalcubed.cli import main as cli_main
from metalcubed.cli import manager as manager_cli
from metalcubed.controllers.kube import capm3crds, crdgen, localcluster, store
from metalcubed.core import outcome
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import hardwaredata as hwd
from metalcubed.core.api import meta

MANIFESTS = Path(crdgen.__file__).parent.parent / "manifests"
SYSTEM = "metalcubed-system"
SERVICE_ACCOUNT = f"system:serviceaccount:{SYSTEM}:metalcubed-manager"
CAPM3_ACCOUNT = f"system:serviceaccount:{SYSTEM}:metalcubed-capm3-manager"
IPAM_ACCOUNT = f"system:serviceaccount:{SYSTEM}:metalcubed-ipam-manager"
DEPLOYMENTS = {"bmo": "metalcubed-manager", "capm3": "metalcubed-capm3-manager",
               "ipam": "metalcubed-ipam-manager"}
"""Upstream ships three managers; so do we: one Deployment per controller group."""

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def rendered(kubectl: Kubectl) -> list[dict[str, Any]]:
    out = kubectl("kustomize", str(MANIFESTS)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="module")
def applied(kubectl: Kubectl) -> subprocess.CompletedProcess[str]:
    done = kubectl("apply", "-k", str(MANIFESTS))
    # No manager Pod runs in this cluster to serve the webhooks (failurePolicy Fail): left
    # registered, they would refuse every later BareMetalHost write of the session.
    # tests/kube/test_webhooks.py registers them against a running webhook server.
    kubectl("delete", "validatingwebhookconfiguration", "--ignore-not-found",
            "metalcubed-validating-webhook-configuration")
    # Nor /convert for the CAPM3 CRDs: without a server, v1beta1 reads and writes would fail
    # for the rest of the session. The shipped conversion settings are checked on `rendered`.
    for crd in capm3crds.load(conversion=None):
        if crd["spec"].get("conversion"):
            kubectl("patch", "crd", crd["metadata"]["name"], "--type=json", "-p",
                    json.dumps([{"op": "replace", "path": "/spec/conversion",
                                 "value": {"strategy": "None"}}]))
    return done


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def _find(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _deployment(docs: list[dict[str, Any]], group: str) -> dict[str, Any]:
    (found,) = [d for d in _find(docs, "Deployment") if d["metadata"]["name"] == DEPLOYMENTS[group]]
    return found


def test_kustomization_renders_every_manifest_in_the_system_namespace(
    rendered: list[dict[str, Any]],
) -> None:
    kinds = sorted(d["kind"] for d in rendered)
    crds = len(crdgen.KINDS) + len(capm3crds.shipped_files())
    per_group = ["Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                 "RoleBinding", "ClusterRoleBinding"]  # the last two: Lease, metrics auth
    assert kinds == sorted([
        "Namespace", *["CustomResourceDefinition"] * crds, "ServiceAccount",
        "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service",
        "ClusterRole", "ClusterRoleBinding",  # metrics auth (TokenReview, SubjectAccessReview)
        "ClusterRole",  # metrics reader, bound by the user to their Prometheus
        # admission webhooks: the configuration, its Service, the certificate's RBAC
        "ValidatingWebhookConfiguration", "Service", "Role", "RoleBinding", "ClusterRole",
        "ClusterRoleBinding",
        *per_group, *per_group,  # the capm3 and ipam managers
    ])
    for doc in rendered:
        if doc["kind"] in ("ServiceAccount", "Role", "RoleBinding", "Deployment", "Service"):
            assert doc["metadata"]["namespace"] == SYSTEM, doc["kind"]
    for group in DEPLOYMENTS:
        (container,) = _deployment(rendered, group)["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "metalcubed:latest"


def test_crds_in_the_kustomization_are_the_generated_ones_and_upstreams_capm3_and_ipam(
    rendered: list[dict[str, Any]],
) -> None:
    expected = {c["metadata"]["name"]: c for c in crdgen.generate_all()}
    for path in capm3crds.shipped_files():
        crd = yaml.safe_load(path.read_text())
        expected[crd["metadata"]["name"]] = crd
    found = {c["metadata"]["name"]: c for c in _find(rendered, "CustomResourceDefinition")}
    assert found == expected
    # The conversion webhook is the Service in front of the BMO manager's Pods (webhook/).
    services = {s["metadata"]["name"]: s for s in _find(rendered, "Service")}
    for crd in found.values():
        hook = (crd["spec"].get("conversion") or {}).get("webhook")
        if hook is not None:
            ref = hook["clientConfig"]["service"]
            assert (ref["namespace"], ref["path"]) == (SYSTEM, "/convert")
            selector = services[ref["name"]]["spec"]["selector"]
            assert selector.items() <= pod_labels(_deployment(rendered, "bmo")).items()


def test_manifests_apply_cleanly(applied: subprocess.CompletedProcess[str]) -> None:
    assert applied.returncode == 0
    warnings = [line for line in applied.stderr.splitlines()
                if "Warning" in line and "last-applied-configuration" not in line]
    assert warnings == []  # e.g. "would violate PodSecurity restricted"


def test_manifests_pass_server_dry_run_again(
    kubectl: Kubectl, applied: subprocess.CompletedProcess[str]
) -> None:
    again = kubectl("apply", "-k", str(MANIFESTS), "--dry-run=server")
    assert "unchanged" in again.stdout or "configured" in again.stdout


def test_deployment_runs_the_manager_with_flags_it_accepts(
    rendered: list[dict[str, Any]],
) -> None:
    deployment = _deployment(rendered, "bmo")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["metalcubed", "manager"]
    args = cli_main.build_parser().parse_args(["manager", *container["args"]])
    assert args.leader_elect
    assert args.controllers == "bmo"  # the capm3 and ipam Deployments run the others
    # The values pass the manager's own checks too, once Kubernetes expands $(POD_IP).
    expanded = [a.replace("$(POD_IP)", "10.0.0.7") for a in container["args"]]
    options = manager_cli.options_from(cli_main.build_parser().parse_args(["manager", *expanded]))
    assert options.agent_api_url == "http://10.0.0.7:6385"
    assert {e["name"] for e in container["env"]} >= {"POD_IP", "DEPLOY_KERNEL_URL",
                                                      "DEPLOY_RAMDISK_URL", "PROVISIONING_LIMIT"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert args.health_probe_bind_address == f":{ports['health']}"
    assert args.metrics_bind_address == f":{ports['metrics']}"
    assert args.metrics_secure  # a wider bind than loopback only behind TLS and authn/authz
    assert args.provisioner == "engine"
    assert args.agent_api_bind_address == f":{ports['agent-api']}"
    assert args.boot_server_bind_address == f":{ports['boot-server']}"
    # A read-only root filesystem, and a writable /tmp for the boot server's temporary files.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    services = {s["metadata"]["name"]: s for s in _find(rendered, "Service")}
    service = services["metalcubed-engine"]
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {"agent-api", "boot-server"}
    assert service["spec"]["selector"].items() <= pod_labels(deployment).items()
    hooks = services["metalcubed-webhook-service"]
    assert [(p["port"], p["targetPort"]) for p in hooks["spec"]["ports"]] == [
        (443, "webhook-server")]
    assert hooks["spec"]["selector"].items() <= pod_labels(deployment).items()
    assert args.webhook_port == ports["webhook-server"] == 9443
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["serviceAccountName"] == "metalcubed-manager"


@pytest.mark.parametrize(("group", "lease"), [
    ("capm3", "controller-leader-election-capm3"),
    ("ipam", "controller-leader-election-ipam-capm3"),
])
def test_the_capm3_and_ipam_deployments_run_their_group_alone(
    rendered: list[dict[str, Any]], group: str, lease: str,
) -> None:
    deployment = _deployment(rendered, group)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["metalcubed", "manager"]
    options = manager_cli.options_from(
        cli_main.build_parser().parse_args(["manager", *container["args"]]))
    assert options.controllers == (group,)
    assert options.leader_elect and options.leader_election_id == lease  # upstream's Lease
    assert options.metrics_secure
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert set(ports) == {"metrics", "health"}  # no engine, no webhooks
    assert options.health_probe_bind_address == f":{ports['health']}"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    account = pod["serviceAccountName"]
    assert account == DEPLOYMENTS[group]
    bindings = [b for b in rendered if b["kind"] in ("ClusterRoleBinding", "RoleBinding")
                and any(s["name"] == account for s in b.get("subjects", []))]
    assert {(b["kind"], b["roleRef"]["name"]) for b in bindings} == {
        ("ClusterRoleBinding", account), ("RoleBinding", "metalcubed-leader-election"),
        ("ClusterRoleBinding", "metalcubed-metrics-auth")}
    # Each Deployment's Pods are its own (the Services select the BMO manager's only).
    labels = pod_labels(deployment)
    for service in _find(rendered, "Service"):
        assert not service["spec"]["selector"].items() <= labels.items()


# --- RBAC: enough, and no more -------------------------------------------------------------

ALLOWED = [
    ("get", "baremetalhosts.metal3.io", "", "team-a"),
    ("list", "baremetalhosts.metal3.io", "", ""),
    ("watch", "baremetalhosts.metal3.io", "", ""),
    ("update", "baremetalhosts.metal3.io", "", "team-a"),
    ("update", "baremetalhosts.metal3.io", "status", "team-a"),
    ("update", "baremetalhosts.metal3.io", "finalizers", "team-a"),
    ("create", "hardwaredata.metal3.io", "", "team-a"),
    ("update", "hardwaredata.metal3.io", "", "team-a"),
    ("watch", "hardwaredata.metal3.io", "", ""),
    ("create", "hostfirmwaresettings.metal3.io", "", "team-a"),
    ("update", "hostfirmwaresettings.metal3.io", "status", "team-a"),
    ("watch", "hostfirmwarecomponents.metal3.io", "", ""),
    ("update", "hostfirmwarecomponents.metal3.io", "status", "team-a"),
    ("create", "firmwareschemas.metal3.io", "", "team-a"),
    ("update", "hostupdatepolicies.metal3.io", "", "team-a"),
    ("get", "secrets", "", "team-a"),
    ("list", "secrets", "", ""),  # with the label selector only (RBAC cannot say so)
    ("watch", "secrets", "", ""),
    ("update", "secrets", "", "team-a"),  # to add the label, as upstream BMO does
    ("create", "tokenreviews.authentication.k8s.io", "", ""),
    ("create", "subjectaccessreviews.authorization.k8s.io", "", ""),
    ("create", "events", "", "team-a"),
    ("patch", "events", "", "team-a"),
    ("get", "leases.coordination.k8s.io", "", SYSTEM),
    ("create", "leases.coordination.k8s.io", "", SYSTEM),
    ("update", "leases.coordination.k8s.io", "", SYSTEM),
    # the self-managed webhook certificate and the caBundle (controllers/manifests/webhook)
    ("create", "secrets", "", SYSTEM),
    ("update", "secrets/metalcubed-webhook-server-cert", "", SYSTEM),
    ("get", "validatingwebhookconfigurations.admissionregistration.k8s.io"
     "/metalcubed-validating-webhook-configuration", "", ""),
    ("update", "validatingwebhookconfigurations.admissionregistration.k8s.io"
     "/metalcubed-validating-webhook-configuration", "", ""),
]
DENIED = [
    ("create", "baremetalhosts.metal3.io", "", "team-a"),
    ("delete", "baremetalhosts.metal3.io", "", "team-a"),
    ("patch", "baremetalhosts.metal3.io", "", "team-a"),
    ("delete", "hardwaredata.metal3.io", "", "team-a"),
    ("delete", "hostfirmwaresettings.metal3.io", "", "team-a"),
    ("create", "hostupdatepolicies.metal3.io", "", "team-a"),
    ("list", "firmwareschemas.metal3.io", "", ""),
    ("create", "secrets", "", "team-a"),
    ("patch", "secrets", "", "team-a"),
    ("delete", "secrets", "", "team-a"),
    ("update", "leases.coordination.k8s.io", "", "team-a"),
    ("get", "pods", "", "team-a"),
    ("list", "configmaps", "", ""),
    ("create", "clusterroles.rbac.authorization.k8s.io", "", ""),
    ("update", "customresourcedefinitions.apiextensions.k8s.io", "", ""),
    ("impersonate", "users", "", ""),
    ("delete", "secrets/metalcubed-webhook-server-cert", "", SYSTEM),
    ("update", "validatingwebhookconfigurations.admissionregistration.k8s.io/other", "", ""),
    ("create", "validatingwebhookconfigurations.admissionregistration.k8s.io", "", ""),
    ("update", "mutatingwebhookconfigurations.admissionregistration.k8s.io", "", ""),
]


def _can(kubectl: Kubectl, verb: str, resource: str, sub: str, namespace: str) -> bool:
    args = ["auth", "can-i", verb, resource, f"--as={SERVICE_ACCOUNT}"]
    args += [f"--subresource={sub}"] if sub else []
    args += [f"--namespace={namespace}"] if namespace else ["--all-namespaces"]
    answer = kubectl(*args, check=False)
    assert answer.stdout.strip() in ("yes", "no"), answer.stderr
    return answer.stdout.strip() == "yes"


def _id(case: tuple[str, str, str, str]) -> str:
    verb, resource, sub, namespace = case
    return f"{verb}-{resource.split('.')[0]}{'/' + sub if sub else ''}-{namespace or 'all'}"


@pytest.mark.parametrize("case", ALLOWED, ids=[_id(c) for c in ALLOWED])
def test_manager_may(kubectl: Kubectl, applied: Any, case: tuple[str, str, str, str]) -> None:
    assert _can(kubectl, *case)


@pytest.mark.parametrize("case", DENIED, ids=[_id(c) for c in DENIED])
def test_manager_may_not(
    kubectl: Kubectl, applied: Any, case: tuple[str, str, str, str]
) -> None:
    assert not _can(kubectl, *case)


# The capm3 and ipam managers: what their controllers write, and not the hardware side.
CAPM3_ALLOWED = [
    ("watch", "metal3machines.infrastructure.cluster.x-k8s.io", "", ""),
    ("update", "metal3machines.infrastructure.cluster.x-k8s.io", "status", "team-a"),
    ("update", "metal3clusters.infrastructure.cluster.x-k8s.io", "finalizers", "team-a"),
    ("create", "metal3datas.infrastructure.cluster.x-k8s.io", "", "team-a"),
    ("delete", "metal3datas.infrastructure.cluster.x-k8s.io", "", "team-a"),
    ("create", "metal3dataclaims.infrastructure.cluster.x-k8s.io", "", "team-a"),
    ("watch", "machines.cluster.x-k8s.io", "", ""),
    ("get", "clusters.cluster.x-k8s.io", "", "team-a"),
    ("watch", "baremetalhosts.metal3.io", "", ""),
    ("update", "baremetalhosts.metal3.io", "", "team-a"),
    ("create", "ipclaims.ipam.metal3.io", "", "team-a"),
    ("create", "ipaddressclaims.ipam.cluster.x-k8s.io", "", "team-a"),
    ("create", "secrets", "", "team-a"),
    ("update", "nodes", "", ""),
    ("delete", "nodes", "", ""),  # remediation's legacy mode
    ("patch", "machines.cluster.x-k8s.io", "status", "team-a"),  # OwnerRemediated
    ("create", "events", "", "team-a"),
    ("update", "leases.coordination.k8s.io", "", SYSTEM),
]
CAPM3_DENIED = [
    ("create", "baremetalhosts.metal3.io", "", "team-a"),
    ("delete", "baremetalhosts.metal3.io", "", "team-a"),
    ("update", "baremetalhosts.metal3.io", "status", "team-a"),
    ("create", "hardwaredata.metal3.io", "", "team-a"),
    ("create", "machines.cluster.x-k8s.io", "", "team-a"),
    ("delete", "machines.cluster.x-k8s.io", "", "team-a"),
    ("update", "clusters.cluster.x-k8s.io", "", "team-a"),
    ("create", "ipaddresses.ipam.metal3.io", "", "team-a"),
    ("get", "pods", "", "team-a"),
    ("update", "customresourcedefinitions.apiextensions.k8s.io", "", ""),
    ("update", "validatingwebhookconfigurations.admissionregistration.k8s.io", "", ""),
]
IPAM_ALLOWED = [
    ("watch", "ippools.ipam.metal3.io", "", ""),
    ("update", "ippools.ipam.metal3.io", "status", "team-a"),
    ("update", "ipclaims.ipam.metal3.io", "", "team-a"),
    ("create", "ipaddresses.ipam.metal3.io", "", "team-a"),
    ("delete", "ipaddresses.ipam.metal3.io", "", "team-a"),
    ("update", "ipaddressclaims.ipam.cluster.x-k8s.io", "status", "team-a"),
    ("create", "ipaddresses.ipam.cluster.x-k8s.io", "", "team-a"),
    ("get", "clusters.cluster.x-k8s.io", "", "team-a"),
    ("patch", "events", "", "team-a"),
    ("create", "leases.coordination.k8s.io", "", SYSTEM),
]
IPAM_DENIED = [
    ("create", "ipclaims.ipam.metal3.io", "", "team-a"),
    ("delete", "ippools.ipam.metal3.io", "", "team-a"),
    ("get", "baremetalhosts.metal3.io", "", "team-a"),
    ("get", "metal3machines.infrastructure.cluster.x-k8s.io", "", "team-a"),
    ("get", "secrets", "", "team-a"),
    ("update", "clusters.cluster.x-k8s.io", "", "team-a"),
    ("update", "nodes", "", ""),
]
GROUP_CASES = [
    *[(CAPM3_ACCOUNT, c, True) for c in CAPM3_ALLOWED],
    *[(CAPM3_ACCOUNT, c, False) for c in CAPM3_DENIED],
    *[(IPAM_ACCOUNT, c, True) for c in IPAM_ALLOWED],
    *[(IPAM_ACCOUNT, c, False) for c in IPAM_DENIED],
]


@pytest.mark.parametrize(
    ("account", "case", "allowed"), GROUP_CASES,
    ids=[f"{a.rsplit(':', 1)[1].split('-')[1]}-{'may' if ok else 'not'}-{_id(c)}"
         for a, c, ok in GROUP_CASES])
def test_group_manager_rbac(kube_api: k8s.ApiClient, applied: Any, account: str,
                            case: tuple[str, str, str, str], allowed: bool) -> None:
    # A SubjectAccessReview, not `kubectl auth can-i`: kubectl cannot name a resource the
    # server does not serve (Cluster API's, absent here) and would ask about a wrong one.
    verb, resource, sub, namespace = case
    plural, _, group = resource.partition(".")
    name = ""
    if "/" in group:
        group, _, name = group.partition("/")
    review = k8s.AuthorizationV1Api(kube_api).create_subject_access_review({
        "spec": {"user": account,
                 "groups": ["system:serviceaccounts", f"system:serviceaccounts:{SYSTEM}",
                            "system:authenticated"],
                 "resourceAttributes": {"verb": verb, "group": group, "resource": plural,
                                        "subresource": sub, "namespace": namespace,
                                        "name": name}}})
    assert review.status.allowed is allowed, review.status


@pytest.fixture
def as_manager(kube_cluster: localcluster.Cluster, applied: Any) -> Iterator[store.K8sStore]:
    """A K8sStore whose every request impersonates the manager's ServiceAccount."""
    api = kconfig.new_client_from_config(config_file=str(kube_cluster.kubeconfig))
    api.set_default_header("Impersonate-User", SERVICE_ACCOUNT)
    yield store.K8sStore(api)
    api.close()


def test_manager_identity_does_a_host_lifecycle(
    kube_store: store.K8sStore, as_manager: store.K8sStore, kube_namespace: str
) -> None:
    """The store calls the reconciler makes, made as the ServiceAccount, all succeed."""
    ns = kube_namespace
    admin = kube_store
    secret = admin.create(meta.Secret(
        metadata=meta.ObjectMeta(name="bmc", namespace=ns),
        string_data={"username": "u", "password": "p"},
    ))
    admin.create(bmh.BareMetalHost(
        metadata=meta.ObjectMeta(name="h0", namespace=ns),
        spec=bmh.BareMetalHostSpec(online=True, bmc=bmh.BMCDetails(
            address="redfish://192.0.2.1/redfish/v1/Systems/1", credentials_name="bmc")),
    ))
    host = as_manager.list(bmh.BareMetalHost, namespace=ns)[0]
    as_manager.watch(bmh.BareMetalHost, lambda _e: None, namespace=ns).stop()
    host = as_manager.update(host.with_meta(finalizers=(bmh.FINALIZER,)))
    host = as_manager.update_status(host.model_copy(update={"status": host.status.model_copy(
        update={"operational_status": bmh.OperationalStatus.DISCOVERED})}))
    owner = meta.OwnerReference(api_version=host.api_version, kind=host.kind, name="h0",
                                uid=host.metadata.uid or "", block_owner_deletion=True)
    # The Secret cache's calls: a labelled list and watch, a GET by name and the label write.
    as_manager.list(meta.Secret, namespace=ns, label_selector="environment.metal3.io=baremetal")
    as_manager.watch(meta.Secret, lambda _e: None, namespace=ns,
                     label_selector="environment.metal3.io=baremetal").stop()
    labelled = as_manager.update(as_manager.get(meta.Secret, secret.key).with_meta(
        labels={"environment.metal3.io": "baremetal"}))
    assert labelled.value("password") == "p"
    with pytest.raises(outcome.TransientError) as secret_delete:
        as_manager.delete(meta.Secret, secret.key)
    assert "403" in str(secret_delete.value)
    data = as_manager.create(hwd.HardwareData(
        metadata=meta.ObjectMeta(name="h0", namespace=ns, owner_references=(owner,),
                                 finalizers=(hwd.HARDWARE_DATA_FINALIZER,)),
    ))
    as_manager.update(data.with_meta(finalizers=()))
    with pytest.raises(outcome.TransientError) as denied:
        as_manager.delete(bmh.BareMetalHost, host.key)
    assert "403" in str(denied.value)


def test_manager_identity_can_write_events(
    kube_cluster: localcluster.Cluster, applied: Any, kube_namespace: str
) -> None:
    api = kconfig.new_client_from_config(config_file=str(kube_cluster.kubeconfig))
    api.set_default_header("Impersonate-User", SERVICE_ACCOUNT)
    try:
        core = k8s.CoreV1Api(api)
        event = {
            "metadata": {"name": "h0.1", "namespace": kube_namespace},
            "involvedObject": {"kind": "BareMetalHost", "name": "h0",
                               "namespace": kube_namespace},
            "reason": "Registered", "message": "ok", "type": "Normal", "count": 1,
        }
        core.create_namespaced_event(kube_namespace, event, _preload_content=False)
        patched = core.patch_namespaced_event(
            "h0.1", kube_namespace, {"count": 2}, _preload_content=False)
        assert json.loads(patched.data)["count"] == 2
    finally:
        api.close()
