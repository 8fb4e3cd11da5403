"""Admission on the real kube-apiserver: `metalcubed manager --webhook-port` serves upstream's
BareMetalHost webhook over TLS, the API server calls it, and `kubectl apply` shows its answers.

The webhook configuration is the shipped one (`webhook.configuration()`), rewritten the way
envtest does for a webhook server outside the cluster: `clientConfig.url` on 127.0.0.1 instead
of the Service, and a namespaceSelector so that only this module's namespaces are covered (the
session cluster is shared with other tests). The caBundle is left empty: the manager writes it.
Each configuration is deleted at the end, before its server stops.
"""

import base64
import datetime
import json
import socket
import ssl
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from kubernetes import client as k8s

from metalcubed.cli import main as cli_main
from metalcubed.controllers.kube import certs, webhook
from metalcubed.core import clock
from metalcubed.core.api import validation
from tests.conformance import test_webhook_create as create_table
from tests.conformance import test_webhook_update as update_table
from tests.conformance import webhook_support as conformance
from tests.kube import test_e2e_support as support

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
DENIED = 'admission webhook "baremetalhost.metal3.io" denied the request: '
LABEL = "metalcubed.test/webhooks"


def host(name: str = "worker-0", annotations: dict[str, str] | None = None,
         **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "online": True,
        "bmc": {"address": "redfish://10.0.0.1/redfish/v1/Systems/1",
                "credentialsName": "bmc-secret"},
        "bootMACAddress": "00:11:22:33:44:55",
    }
    body.update(spec)
    metadata: dict[str, Any] = {"name": name}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost", "metadata": metadata,
            "spec": body}


def apply(kubectl: Kubectl, namespace: str, doc: dict[str, Any]) -> (
        subprocess.CompletedProcess[str]):
    return kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc), check=False)


def registered(api: k8s.ApiClient, name: str, url: str, token: str) -> dict[str, Any]:
    """The shipped configuration, pointed at `url` and limited to namespaces labelled
    LABEL=token; created without a caBundle."""
    config = webhook.configuration(name=name, url=url)
    for hook in config["webhooks"]:
        hook["namespaceSelector"] = {"matchLabels": {LABEL: token}}
    k8s.AdmissionregistrationV1Api(api).create_validating_webhook_configuration(config)
    return config


def ca_bundle(api: k8s.ApiClient, name: str) -> bytes:
    config = k8s.AdmissionregistrationV1Api(api).read_validating_webhook_configuration(name)
    bundles = {h.client_config.ca_bundle or "" for h in config.webhooks}
    assert len(bundles) == 1, bundles
    return base64.b64decode(bundles.pop())


def secret_ca(api: k8s.ApiClient, namespace: str) -> bytes:
    secret = k8s.CoreV1Api(api).read_namespaced_secret(certs.DEFAULT_SECRET, namespace)
    return base64.b64decode(secret.data["ca.crt"])


def served_certificate(port: int, ca: bytes) -> bytes:
    """The DER certificate the server presents, verified against `ca`."""
    context = ssl.create_default_context(cadata=ca.decode())
    with (socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
          context.wrap_socket(raw, server_hostname="127.0.0.1") as tls):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def namespace(api: k8s.ApiClient, prefix: str, token: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    k8s.CoreV1Api(api).create_namespace(
        {"metadata": {"name": name, "labels": {LABEL: token}}})
    return name


class Setup:
    def __init__(self, *, system: str, hosts: str, port: int, config: str,
                 manager: support.ManagerProcess) -> None:
        self.system, self.hosts, self.port, self.config = system, hosts, port, config
        self.manager = manager


@pytest.fixture(scope="module")
def served(kube_api: k8s.ApiClient, kube_cluster: Any, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[Setup]:
    """A manager serving the webhooks (self-managed certificate in its namespace), watching
    only its own namespace; hosts are applied in another, covered by the configuration."""
    token = uuid.uuid4().hex[:8]
    system = namespace(kube_api, "webhook-system", token)
    hosts = namespace(kube_api, "webhook-hosts", token)
    port = support.free_port()
    config = f"metalcubed-test-webhooks-{token}"
    registered(kube_api, config, f"https://127.0.0.1:{port}", token)
    manager = support.ManagerProcess(
        kubeconfig=kube_cluster.kubeconfig, namespace=system,
        log_path=tmp_path_factory.mktemp("webhook-manager") / "manager.log",
        args=("--webhook-port", str(port), "--webhook-host", "127.0.0.1",
              "--webhook-cert-names", "127.0.0.1", "--webhook-configuration", config,
              "--leader-election-namespace", system),
    ).start()
    setup = Setup(system=system, hosts=hosts, port=port, config=config, manager=manager)
    try:
        manager.wait_ready(timeout_s=60)
        support.wait_until(lambda: ca_bundle(kube_api, config) != b"", timeout_s=30,
                           what="the manager writes the caBundle")
        yield setup
    finally:
        k8s.AdmissionregistrationV1Api(kube_api).delete_validating_webhook_configuration(config)
        if manager.alive():
            manager.terminate()
        for ns in (system, hosts):
            k8s.CoreV1Api(kube_api).delete_namespace(ns)


def test_the_manager_keeps_its_ca_in_a_secret_and_the_configuration(
    served: Setup, kube_api: k8s.ApiClient,
) -> None:
    ca = secret_ca(kube_api, served.system)
    assert ca_bundle(kube_api, served.config) == ca
    secret = k8s.CoreV1Api(kube_api).read_namespaced_secret(certs.DEFAULT_SECRET, served.system)
    assert secret.type == "kubernetes.io/tls"
    assert set(secret.data) == {"ca.crt", "ca.key", "tls.crt", "tls.key"}
    # What the server presents verifies against that CA and names 127.0.0.1.
    der = served_certificate(served.port, ca)
    assert der == ssl.PEM_cert_to_DER_cert(base64.b64decode(secret.data["tls.crt"]).decode())


# Each: (case, host, field, upstream's words). The CRD schema accepts every one of them: only
# the webhook refuses. Upstream's texts: baremetal-operator 02aa5059e,
# internal/webhooks/metal3.io/v1alpha1/baremetalhost_validation.go and pkg/hardwareutils/bmc.
INVALID = [
    ("image-url-scheme", host(image={"url": "file:///etc/passwd", "checksum": "abc"}),
     "spec.image.url", 'invalid scheme in URL, "file" not allowed'),
    ("duplicate-interface-name", host(networkInterfaces=[{"name": "eth0"}, {"name": "eth0"}]),
     "spec.networkInterfaces[1]", 'duplicate interface selector for "eth0"'),
    ("duplicate-interface-mac", host(networkInterfaces=[
        {"macAddress": "00:11:22:33:44:aa"}, {"macAddress": "00:11:22:33:44:AA"}]),
     "spec.networkInterfaces[1]", "duplicate interface selector"),
    ("uuid-name", host("7f2a6d3c-1b4e-4c5d-9e8f-0a1b2c3d4e5f"), "metadata.name",
     "BareMetalHost resource name cannot be a UUID"),
    ("unknown-bmc-type", host(bmc={"address": "foo://10.0.0.1", "credentialsName": "s"}),
     "spec.bmc.address", "Unknown BMC type 'foo' for address foo://10.0.0.1"),
    ("missing-checksum", host(image={"url": "http://images/x.qcow2"}), "spec.image.checksum",
     "checksum is required for normal images"),
    ("secure-boot-unsupported", host(bmc={"address": "ipmi://10.0.0.1", "credentialsName": "s"},
                                     bootMode="UEFISecureBoot"),
     "spec.bootMode", "BMC driver ipmi does not support secure boot"),
    ("raid-unsupported", host(bmc={"address": "ipmi://10.0.0.1", "credentialsName": "s"},
                              raid={"hardwareRAIDVolumes": [{"level": "1"}]}),
     "spec.raid.hardwareRAIDVolumes", "BMC driver ipmi does not support configuring RAID"),
    ("power-off-disabled-offline", host(online=False, disablePowerOff=True),
     "spec.disablePowerOff",
     "node can't simultaneously have online set to false and have power off disabled"),
    ("cross-namespace-secret", host(userData={"name": "u", "namespace": "elsewhere"}),
     "spec.userData.namespace", "cross-namespace Secret references are not allowed"),
    ("root-device-hint", host(rootDeviceHints={"deviceName": "sda"}),
     "spec.rootDeviceHints.deviceName", "device name of root device hint must be a /dev/ path"),
    ("reboot-annotation", host(annotations={"reboot.metal3.io": '{"mode": "medium"}'}),
     "metadata.annotations[reboot.metal3.io]",
     'invalid mode in the reboot.metal3.io annotation, allowed are "hard", "soft" or ""'),
]


@pytest.mark.parametrize(("doc", "field", "words"), [c[1:] for c in INVALID],
                         ids=[c[0] for c in INVALID])
def test_kubectl_apply_of_an_invalid_host_is_refused_naming_the_field(
    served: Setup, kubectl: Kubectl, doc: dict[str, Any], field: str, words: str,
) -> None:
    done = apply(kubectl, served.hosts, doc)
    assert done.returncode != 0
    assert DENIED in done.stderr, done.stderr
    message = done.stderr.split(DENIED, 1)[1]
    assert message.startswith(f"{field}: "), message
    assert words in message
    got = kubectl("get", "bmh", "-n", served.hosts, doc["metadata"]["name"], check=False)
    assert got.returncode != 0  # nothing was stored


def test_valid_hosts_are_admitted(served: Setup, kubectl: Kubectl) -> None:
    example = (support.EXAMPLES / "bmo-example-host.yaml").read_text()
    done = kubectl("apply", "-n", served.hosts, "-f", "-", input=example, check=False)
    assert done.returncode == 0, done.stderr
    done = apply(kubectl, served.hosts, host("valid-0"))
    assert done.returncode == 0, done.stderr
    assert "baremetalhost.metal3.io/valid-0 created" in done.stdout


def test_update_rules_are_enforced(served: Setup, kubectl: Kubectl,
                                   kube_api: k8s.ApiClient) -> None:
    assert apply(kubectl, served.hosts, host("upd-0")).returncode == 0
    # bootMACAddress is immutable once set (case changes are no change).
    done = apply(kubectl, served.hosts, host("upd-0", bootMACAddress="00:11:22:33:44:66"))
    assert DENIED + "spec.bootMACAddress: bootMACAddress can not be changed once it is set" in (
        done.stderr)
    assert apply(kubectl, served.hosts, host("upd-0", bootMACAddress="00:11:22:33:44:55"),
                 ).returncode == 0
    # The BMC address changes only while registering or detached; this host has no state.
    done = apply(kubectl, served.hosts, host(
        "upd-0", bmc={"address": "redfish://10.0.0.2/redfish/v1/Systems/1",
                      "credentialsName": "bmc-secret"}))
    assert DENIED + "spec.bmc.address: BMC address can not be changed" in done.stderr
    # externallyProvisioned is enabled only from available.
    done = apply(kubectl, served.hosts, host("upd-0", externallyProvisioned=True))
    assert DENIED + "spec.externallyProvisioned: externallyProvisioned can only be enabled " \
        "when in Available state" in done.stderr
    # Through /status the rules are not called (upstream registers the main resource only):
    # once the host is registering its BMC address may change.
    objects = k8s.CustomObjectsApi(kube_api)
    current = objects.get_namespaced_custom_object(
        "metal3.io", "v1alpha1", served.hosts, "baremetalhosts", "upd-0")
    current["status"] = {"provisioning": {"state": "registering", "ID": ""},
                         "operationalStatus": "discovered", "errorMessage": "",
                         "poweredOn": False, "errorCount": 0}
    objects.replace_namespaced_custom_object_status(
        "metal3.io", "v1alpha1", served.hosts, "baremetalhosts", "upd-0", current)
    done = apply(kubectl, served.hosts, host(
        "upd-0", bmc={"address": "redfish://10.0.0.2/redfish/v1/Systems/1",
                      "credentialsName": "bmc-secret"}))
    assert done.returncode == 0, done.stderr


def test_webhook_down_fails_closed_for_baremetalhosts_only(
    served: Setup, kubectl: Kubectl, kube_api: k8s.ApiClient,
) -> None:
    assert served.manager.terminate() == 0
    try:
        done = apply(kubectl, served.hosts, host("while-down"))
        assert done.returncode != 0
        assert 'failed calling webhook "baremetalhost.metal3.io"' in done.stderr, done.stderr
        # Other kinds do not go through the BareMetalHost webhook.
        for doc in (
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}},
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bmc-secret"},
             "stringData": {"username": "u", "password": "p"}},
            {"apiVersion": "metal3.io/v1alpha1", "kind": "HardwareData",
             "metadata": {"name": "while-down"}, "spec": {}},
        ):
            done = apply(kubectl, served.hosts, doc)
            assert done.returncode == 0, (doc["kind"], done.stderr)
        # Deleting a host is not sent to the webhook (CREATE and UPDATE only, as upstream).
        kubectl("apply", "-n", served.hosts, "-f", "-", check=False,
                input=yaml.safe_dump(host("valid-0")))
        assert kubectl("delete", "bmh", "-n", served.hosts, "valid-0", "--wait=false",
                       check=False).returncode == 0
    finally:
        served.manager.start()
        served.manager.wait_ready(timeout_s=60)
    assert apply(kubectl, served.hosts, host("after-restart")).returncode == 0


# --- rotation, in process (a manual clock drives it) -------------------------------------------


class Running:
    """A WebhookRunnable on a thread, stopped by the test that starts it."""

    def __init__(self, runnable: webhook.WebhookRunnable) -> None:
        self.runnable = runnable
        self.stop = threading.Event()
        self.thread = threading.Thread(target=runnable.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> "Running":
        self.thread.start()
        support.wait_until(lambda: self.runnable.ready() is None, timeout_s=30,
                           what="webhook server started")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


@pytest.fixture
def covered(kube_api: k8s.ApiClient) -> Iterator[tuple[str, str, str]]:
    """(namespace, configuration name, token): a namespace covered by a configuration of its
    own, both deleted afterwards."""
    token = uuid.uuid4().hex[:8]
    ns = namespace(kube_api, "webhook-rotation", token)
    yield ns, f"metalcubed-test-rotation-{token}", token
    for name in (f"metalcubed-test-rotation-{token}",):
        try:
            k8s.AdmissionregistrationV1Api(kube_api).delete_validating_webhook_configuration(name)
        except k8s.ApiException as err:
            assert err.status == 404
    k8s.CoreV1Api(kube_api).delete_namespace(ns)


def test_ca_rotation_keeps_admission_working(
    covered: tuple[str, str, str], kube_api: k8s.ApiClient, kubectl: Kubectl,
) -> None:
    ns, config, token = covered
    port = support.free_port()
    registered(kube_api, config, f"https://127.0.0.1:{port}", token)
    now = datetime.datetime.now(datetime.UTC)
    lifetimes = certs.Lifetimes(ca_s=900 * certs.DAY_S, serving_s=900 * certs.DAY_S)
    # Made 650 days ago: still valid today, but less than a third of the CA's life is left.
    moving = clock.ManualClock(now - datetime.timedelta(days=650))
    source = certs.SecretSource(kube_api, namespace=ns, names=["127.0.0.1"], clock=moving,
                                lifetimes=lifetimes)
    runnable = webhook.WebhookRunnable(
        ("127.0.0.1", port), source=source, handlers=webhook.admission_handlers(),
        api=kube_api, configurations=[config], check_interval_s=3600)
    with Running(runnable):
        support.wait_until(lambda: ca_bundle(kube_api, config) != b"", timeout_s=30,
                           what="caBundle written")
        first_ca = secret_ca(kube_api, ns)
        first_cert = served_certificate(port, first_ca)
        bad = host("bad", online=False, disablePowerOff=True)
        assert DENIED in apply(kubectl, ns, bad).stderr
        moving.set(now)
        assert runnable.check() is True  # renewed: a new CA
        second_ca = secret_ca(kube_api, ns)
        cas = x509_list(second_ca)
        assert len(cas) == 2 and cas[1] == x509_list(first_ca)[0]  # old CA kept for handover
        assert ca_bundle(kube_api, config) == second_ca
        assert served_certificate(port, second_ca) != first_cert
        assert DENIED + "spec.disablePowerOff" in apply(kubectl, ns, bad).stderr
        assert apply(kubectl, ns, host("good")).returncode == 0
        assert runnable.check() is False  # nothing due: nothing changes


def x509_list(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem)


def test_mounted_certificates_are_served_and_reloaded(
    covered: tuple[str, str, str], kube_api: k8s.ApiClient, kubectl: Kubectl, tmp_path: Path,
) -> None:
    """The cert-manager convention: tls.crt/tls.key/ca.crt in a folder; the CA reaches the
    configuration by other means (cert-manager's cainjector; here the test writes it)."""
    ns, config, token = covered
    port = support.free_port()
    now = datetime.datetime.now(datetime.UTC)
    issued = certs.renew(None, ["127.0.0.1"], now, certs.Lifetimes())
    for name, data in (("tls.crt", issued.cert), ("tls.key", issued.key), ("ca.crt", issued.ca)):
        (tmp_path / name).write_bytes(data)
    doc = registered(kube_api, config, f"https://127.0.0.1:{port}", token)
    for hook in doc["webhooks"]:
        hook["clientConfig"]["caBundle"] = base64.b64encode(issued.ca).decode()
    admission = k8s.AdmissionregistrationV1Api(kube_api)
    current = admission.read_validating_webhook_configuration(config)
    doc["metadata"]["resourceVersion"] = current.metadata.resource_version
    admission.replace_validating_webhook_configuration(config, doc)
    runnable = webhook.WebhookRunnable(
        ("127.0.0.1", port), source=certs.DirectorySource(tmp_path),
        handlers=webhook.admission_handlers(), api=kube_api, configurations=[config],
        check_interval_s=3600)
    with Running(runnable):
        bad = host("bad", bootMode="UEFISecureBoot",
                   bmc={"address": "ipmi://10.0.0.1", "credentialsName": "s"})
        assert DENIED + "spec.bootMode" in apply(kubectl, ns, bad).stderr
        assert served_certificate(port, issued.ca) == ssl.PEM_cert_to_DER_cert(
            issued.cert.decode())
        # cert-manager renews: new files, same CA; the next check serves them.
        renewed = certs.renew(issued, ["127.0.0.1"], now, certs.Lifetimes())
        (tmp_path / "tls.key").write_bytes(renewed.key)
        (tmp_path / "tls.crt").write_bytes(renewed.cert)
        assert runnable.check() is True
        assert served_certificate(port, issued.ca) == ssl.PEM_cert_to_DER_cert(
            renewed.cert.decode())
        assert DENIED + "spec.bootMode" in apply(kubectl, ns, bad).stderr
        # The manager did not touch the caBundle: it is cert-manager's.
        assert ca_bundle(kube_api, config) == issued.ca


def test_the_cert_manager_variant_mounts_what_cert_manager_issues(kubectl: Kubectl) -> None:
    overlay = support.REPO / "controllers" / "manifests" / "certmanager"
    docs = [d for d in yaml.safe_load_all(kubectl("kustomize", str(overlay)).stdout) if d]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    (certificate,) = by_kind["Certificate"]
    (issuer,) = by_kind["Issuer"]
    assert certificate["spec"]["issuerRef"] == {"kind": "Issuer",
                                                "name": issuer["metadata"]["name"]}
    assert certificate["spec"]["dnsNames"] == certs.service_names(
        webhook.SERVICE_NAME, webhook.SERVICE_NAMESPACE)[:2]
    # the BMO manager serves the webhooks (the capm3 and ipam Deployments do not)
    (deployment,) = [d for d in by_kind["Deployment"]
                     if d["metadata"]["name"] == "metalcubed-manager"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = cli_main.build_parser().parse_args(["manager", *container["args"]])
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    (name,) = [n for n, v in volumes.items() if "secret" in v]
    assert volumes[name]["secret"]["secretName"] == certificate["spec"]["secretName"]
    assert mounts[name]["mountPath"] == args.webhook_cert_dir == certs.DEFAULT_CERT_DIR
    assert args.webhook_port == 9443
    reference = f"{certificate['metadata']['namespace']}/{certificate['metadata']['name']}"
    (config,) = by_kind["ValidatingWebhookConfiguration"]
    assert config["metadata"]["annotations"] == {"cert-manager.io/inject-ca-from": reference}
    for crd in by_kind["CustomResourceDefinition"]:
        converts = crd["spec"].get("conversion", {}).get("strategy") == "Webhook"
        injected = (crd["metadata"].get("annotations") or {}).get(
            "cert-manager.io/inject-ca-from")
        assert injected == (reference if converts else None), crd["metadata"]["name"]
    # The self-managed certificate's RBAC is gone: the manager writes no Secret or caBundle.
    names = {d["metadata"]["name"] for d in by_kind["Role"] + by_kind["ClusterRole"]}
    assert not names & {"metalcubed-webhook-cert", "metalcubed-webhook-configuration"}


# --- replicas sharing the Secret ---------------------------------------------------------------


def _source(api: k8s.ApiClient, ns: str) -> certs.SecretSource:
    return certs.SecretSource(api, namespace=ns, names=["127.0.0.1"],
                              clock=clock.FixedClock(datetime.datetime.now(datetime.UTC)))


def test_replicas_share_one_certificate_and_a_lost_race_reads_the_winner(
    covered: tuple[str, str, str], kube_api: k8s.ApiClient, monkeypatch: pytest.MonkeyPatch,
) -> None:
    ns = covered[0]
    first, second = _source(kube_api, ns), _source(kube_api, ns)
    # `first` finds no Secret, and just before it creates one, `second` does: first's create
    # gets the API server's 409 AlreadyExists, and it serves what `second` wrote.
    create = first._core.create_namespaced_secret
    won: list[certs.Bundle] = []

    def racing_create(*args: Any, **kwargs: Any) -> Any:
        won.append(second.ensure())
        return create(*args, **kwargs)

    monkeypatch.setattr(first._core, "create_namespaced_secret", racing_create)
    got = first.ensure()
    assert len(won) == 1
    assert got == won[0]
    assert second.ensure() == got  # nothing due: the same bundle, no rewrite
    secret = k8s.CoreV1Api(kube_api).read_namespaced_secret(certs.DEFAULT_SECRET, ns)
    assert base64.b64decode(secret.data["tls.crt"]) == got.cert


def test_an_unreadable_secret_is_replaced(covered: tuple[str, str, str],
                                          kube_api: k8s.ApiClient) -> None:
    ns = covered[0]
    k8s.CoreV1Api(kube_api).create_namespaced_secret(ns, {
        "metadata": {"name": certs.DEFAULT_SECRET}, "type": "Opaque",
        "data": {"tls.crt": base64.b64encode(b"not a certificate").decode()}})
    bundle = _source(kube_api, ns).ensure()
    bundle.tls_context()  # a real pair
    secret = k8s.CoreV1Api(kube_api).read_namespaced_secret(certs.DEFAULT_SECRET, ns)
    assert base64.b64decode(secret.data["tls.crt"]) == bundle.cert


def test_a_secret_of_a_type_that_cannot_hold_it_is_named(
    covered: tuple[str, str, str], kube_api: k8s.ApiClient,
) -> None:
    ns = covered[0]
    k8s.CoreV1Api(kube_api).create_namespaced_secret(ns, {
        "metadata": {"name": certs.DEFAULT_SECRET}, "type": "kubernetes.io/basic-auth",
        "stringData": {"username": "u"}})
    with pytest.raises(certs.CertificateError, match=(
            f"Secret {ns}/{certs.DEFAULT_SECRET} \\(type kubernetes.io/basic-auth\\) cannot "
            "hold the webhook certificate")):
        _source(kube_api, ns).ensure()


# --- upstream's create table, through the API server ---------------------------------------


def _in_namespace(doc: dict[str, Any], ns: str) -> dict[str, Any]:
    """The case's object in `ns` (its namespace and every reference to it: cross-namespace
    rules compare the two)."""
    moved: dict[str, Any] = json.loads(json.dumps(doc).replace(
        f'"{conformance.NAMESPACE}"', json.dumps(ns)))
    return moved


def _dry_run_create(api: k8s.ApiClient, ns: str, doc: dict[str, Any]) -> tuple[int, str]:
    """(HTTP status, message) of a server-side dry-run create: admission runs, nothing is
    stored (sideEffects None lets the API server call the webhook for it)."""
    try:
        k8s.CustomObjectsApi(api).create_namespaced_custom_object(
            "metal3.io", "v1alpha1", ns, "baremetalhosts", doc, dry_run="All")
    except k8s.ApiException as err:
        return int(err.status), str(json.loads(err.body).get("message", ""))
    return 201, ""


def test_upstreams_create_table_through_the_api_server(
    served: Setup, kube_api: k8s.ApiClient,
) -> None:
    """Every case of upstream's TestValidateCreate / TestBareMetalHostCreate / TestRAIDValidate
    (tests/conformance/test_webhook_create.py) sent to the real API server: schema cases are
    refused by the CRD (422) before the webhook, as are names the API server's ObjectMeta rules
    refuse; admitted ones are created (dry run), refused ones are denied by the webhook with the
    admission function's message, which holds upstream's text."""
    outcomes: dict[str, int] = {}
    for case in create_table.CREATE:
        doc = _in_namespace(case.schema_valid if case.schema else case.new, served.hosts)
        if case.schema and case.schema_valid is None:
            status, message = _dry_run_create(kube_api, served.hosts,
                                              _in_namespace(case.new, served.hosts))
            assert status == 422, (case.id, status, message)
            outcomes["schema"] = outcomes.get("schema", 0) + 1
            continue
        status, message = _dry_run_create(kube_api, served.hosts, doc)
        expected = validation.admit("CREATE", doc)
        if expected.allowed:
            assert not case.wanted, case.id
            assert status == 201, (case.id, status, message)
            outcomes["admitted"] = outcomes.get("admitted", 0) + 1
            continue
        server_side = [e for e in expected.errors if e.field.startswith("metadata.")
                       and e.message.startswith(("Invalid value", "Required value"))]
        if server_side:  # ObjectMeta rules: the API server's own, before validating webhooks
            assert status == 422, (case.id, status, message)
            assert server_side[0].field in message, (case.id, message)
            outcomes["object meta"] = outcomes.get("object meta", 0) + 1
            continue
        assert status == 403, (case.id, status, message)
        assert message == DENIED + expected.message(), case.id
        assert (case.ours or case.wanted) in message, case.id
        outcomes["denied"] = outcomes.get("denied", 0) + 1
    print(f"upstream create table through the API server: {outcomes}")
    assert sum(outcomes.values()) == len(create_table.CREATE)
    assert outcomes["denied"] > 40 and outcomes["admitted"] > 10, outcomes


def test_upstreams_update_table_through_the_api_server(
    served: Setup, kube_api: k8s.ApiClient,
) -> None:
    """upstream's TestValidateUpdate / TestBareMetalHostUpdate (tests/conformance/
    test_webhook_update.py): the old host is created and given its status (through /status,
    which the webhook does not see), then the new one is sent as a dry-run update."""
    objects = k8s.CustomObjectsApi(kube_api)
    where = ("metal3.io", "v1alpha1", served.hosts, "baremetalhosts")
    outcomes: dict[str, int] = {}
    for index, case in enumerate(update_table.UPDATE):
        if case.schema and case.schema_valid is None:
            outcomes["schema only"] = outcomes.get("schema only", 0) + 1
            continue
        new, old = ((case.schema_valid, case.schema_valid_old) if case.schema
                    else (case.new, case.old))
        assert new is not None and old is not None
        name = f"update-{index}"
        old = _in_namespace(old, served.hosts)
        new = _in_namespace(new, served.hosts)
        old["metadata"]["name"] = new["metadata"]["name"] = name
        status = old.pop("status", None)
        objects.create_namespaced_custom_object(*where, {**old})
        try:
            if status is not None:
                stored = objects.get_namespaced_custom_object(*where, name)
                objects.replace_namespaced_custom_object_status(
                    *where, name, {**stored, "status": status})
            stored = objects.get_namespaced_custom_object(*where, name)
            new["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"]
            if status is not None:
                new["status"] = status
            expected = validation.admit("UPDATE", new, stored)
            try:
                objects.replace_namespaced_custom_object(*where, name, new, dry_run="All")
                got, message = 200, ""
            except k8s.ApiException as err:
                got, message = int(err.status), str(json.loads(err.body).get("message", ""))
        finally:
            objects.delete_namespaced_custom_object(*where, name)
        if expected.allowed:
            assert not case.wanted and got == 200, (case.id, got, message)
            outcomes["admitted"] = outcomes.get("admitted", 0) + 1
        else:
            assert got == 403, (case.id, got, message)
            assert message == DENIED + expected.message(), case.id
            assert case.wanted in message, case.id
            outcomes["denied"] = outcomes.get("denied", 0) + 1
    print(f"upstream update table through the API server: {outcomes}")
    assert sum(outcomes.values()) == len(update_table.UPDATE)
    assert outcomes["denied"] >= 3 and outcomes["admitted"] >= 5, outcomes
