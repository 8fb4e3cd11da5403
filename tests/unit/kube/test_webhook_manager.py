"""The manager's webhook settings: flags checked up front naming the flag, and what
`manager.webhook_runnable` wires (paths, certificate source, caBundle targets)."""

import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from metalcubed.cli import main as cli
from metalcubed.cli import manager as manager_cli
from metalcubed.controllers import manager
from metalcubed.controllers.kube import certs, webhook

BASE = ["manager", "--provisioner", "fixture"]
RBAC = Path(manager.__file__).parent / "manifests" / "webhook" / "rbac.yaml"


def options(*argv: str) -> manager.ManagerOptions:
    return manager_cli.options_from(cli.build_parser().parse_args([*BASE, *argv]))


def test_webhooks_are_off_unless_a_port_is_given() -> None:
    assert options().webhook_port == 0
    got = options("--webhook-port", "9443", "--webhook-host", "127.0.0.1",
                  "--webhook-cert-names", "127.0.0.1, lab.example", "--webhook-service", "hooks",
                  "--webhook-cert-secret", "my-cert", "--webhook-configuration", "")
    assert (got.webhook_port, got.webhook_host, got.webhook_cert_names, got.webhook_service,
            got.webhook_cert_secret, got.webhook_configuration) == (
        9443, "127.0.0.1", ("127.0.0.1", "lab.example"), "hooks", "my-cert", "")


@pytest.mark.parametrize(("argv", "words"), [
    (["--webhook-port", "65536"], "--webhook-port: 65536 is not a port"),
    (["--webhook-port", "-1"], "--webhook-port: -1 is not a port"),
    (["--webhook-host", "a:b"], "--webhook-host: 'a:b' is not a host"),
    (["--webhook-cert-names", "ok,Not_OK"], "--webhook-cert-names: 'Not_OK'"),
    (["--webhook-service", "a.b"], "--webhook-service: 'a.b' is not a DNS-1123 label"),
    (["--webhook-cert-secret", "UPPER"], "--webhook-cert-secret: 'UPPER'"),
    (["--webhook-configuration=x_y"], "--webhook-configuration: 'x_y'"),
    (["--webhook-cert-dir", "/nonexistent/certs"], "--webhook-cert-dir: /nonexistent/certs is "
                                                   "not a directory"),
])
def test_bad_webhook_flags_name_the_flag(argv: list[str], words: str) -> None:
    with pytest.raises(ValueError) as err:
        options(*argv)
    assert words in str(err.value)


def test_a_mounted_folder_is_read_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"--webhook-cert-dir: cannot read .*tls\.crt"):
        options("--webhook-cert-dir", str(tmp_path))
    bundle = certs.renew(None, ["svc"], datetime.datetime.now(datetime.UTC), certs.Lifetimes())
    (tmp_path / "tls.crt").write_bytes(bundle.cert)
    (tmp_path / "tls.key").write_bytes(b"-----BEGIN PRIVATE KEY-----\nnope\n")
    with pytest.raises(ValueError, match="--webhook-cert-dir: the serving certificate and key "
                                         "do not load"):
        options("--webhook-cert-dir", str(tmp_path))
    (tmp_path / "tls.key").write_bytes(bundle.key)
    assert options("--webhook-cert-dir", str(tmp_path)).webhook_cert_dir == tmp_path


def test_the_cli_exits_2_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([*BASE, "--webhook-port", "70000"]) == 2
    assert "--webhook-port: 70000 is not a port" in capsys.readouterr().err


def _runnable(**changes: Any) -> webhook.WebhookRunnable:
    opts = manager.ManagerOptions(provisioner="fixture", webhook_port=9443,
                                  leader_election_namespace="metalcubed-system", **changes)
    return manager.webhook_runnable(opts, k8s.ApiClient())  # type: ignore[arg-type]


def test_the_runnable_serves_admission_and_conversion() -> None:
    runnable = _runnable(webhook_cert_names=("127.0.0.1",))
    assert runnable.address == ("0.0.0.0", 9443)
    assert runnable.need_leader_election is False  # every replica answers the API server
    assert {"/validate-metal3-io-v1alpha1-baremetalhost",
            "/mutate-metal3-io-v1alpha1-baremetalhost", "/convert"} <= set(runnable.handlers)
    assert runnable.configurations == (webhook.CONFIGURATION_NAME,)
    assert isinstance(runnable.source, certs.SecretSource)
    assert runnable.source.namespace == "metalcubed-system"
    assert runnable.source.name == certs.DEFAULT_SECRET
    assert runnable.source.names == (
        "metalcubed-webhook-service.metalcubed-system.svc",
        "metalcubed-webhook-service.metalcubed-system.svc.cluster.local",
        "metalcubed-webhook-service.metalcubed-system", "metalcubed-webhook-service",
        "127.0.0.1")


def test_mounted_certificates_leave_the_ca_bundle_alone(tmp_path: Path) -> None:
    runnable = _runnable(webhook_cert_dir=tmp_path)
    assert isinstance(runnable.source, certs.DirectorySource)
    assert runnable.source.manages_ca_bundle is False


def test_conversion_is_served_at_the_path_the_crds_name() -> None:
    handle = _runnable().handlers[manager.CONVERSION_PATH]
    machine = {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "Metal3Machine",
               "metadata": {"name": "m", "namespace": "ns"},
               "spec": {"image": {"url": "http://i/x.qcow2", "checksum": "abc"}}}
    answer = handle({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
                     "request": {"uid": "c", "desiredAPIVersion":
                                 "infrastructure.cluster.x-k8s.io/v1beta2",
                                 "objects": [machine]}})["response"]
    assert answer["result"] == {"status": "Success"}, answer
    (converted,) = answer["convertedObjects"]
    assert converted["apiVersion"] == "infrastructure.cluster.x-k8s.io/v1beta2"
    assert converted["metadata"]["name"] == "m"


def test_rbac_names_exactly_the_crds_whose_ca_bundle_the_manager_keeps() -> None:
    docs = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    rules = {r["resources"][0]: r for r in role["rules"]}
    assert rules["customresourcedefinitions"]["resourceNames"] == list(manager.conversion_crds())
    assert rules["customresourcedefinitions"]["verbs"] == ["get", "update"]
    assert manager.conversion_crds() == _runnable().crds
    assert rules["validatingwebhookconfigurations"]["resourceNames"] == [
        webhook.CONFIGURATION_NAME]
