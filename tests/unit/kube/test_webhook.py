"""The webhook server over real HTTPS on 127.0.0.1: AdmissionReview v1 in and out, upstream's
BareMetalHost rules, and what it does with requests that are not AdmissionReviews (400 with a
message, never a crash) or not TLS (nothing served)."""

import base64
import datetime
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from metalcubed.controllers.kube import certs, webhook
from metalcubed.core import clock
from metalcubed.core.api import validation

BMH_PATH = "/validate-metal3-io-v1alpha1-baremetalhost"
NOW = datetime.datetime.now(datetime.UTC)


def host(name: str = "worker-0", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "online": True,
        "bmc": {"address": "redfish://10.0.0.1/redfish/v1/Systems/1",
                "credentialsName": "bmc-secret"},
        "bootMACAddress": "00:11:22:33:44:55",
    }
    body.update(spec)
    return {"apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost",
            "metadata": {"name": name, "namespace": "team-a"}, "spec": body}


def admission(obj: dict[str, Any], *, operation: str = "CREATE",
              old: dict[str, Any] | None = None, uid: str = "u-1") -> dict[str, Any]:
    request: dict[str, Any] = {
        "uid": uid, "operation": operation,
        "kind": {"group": "metal3.io", "version": "v1alpha1", "kind": "BareMetalHost"},
        "resource": {"group": "metal3.io", "version": "v1alpha1", "resource": "baremetalhosts"},
        "name": obj["metadata"]["name"], "namespace": "team-a", "object": obj,
    }
    if old is not None:
        request["oldObject"] = old
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


@pytest.fixture(scope="module")
def bundle() -> certs.Bundle:
    return certs.renew(None, ["127.0.0.1", "localhost"], NOW, certs.Lifetimes())


@pytest.fixture(scope="module")
def server(bundle: certs.Bundle) -> Iterator[webhook.WebhookServer]:
    srv = webhook.WebhookServer(("127.0.0.1", 0), tls=bundle.tls_context(),
                                handlers=webhook.admission_handlers())
    srv.start()
    yield srv
    srv.stop()


def client_context(bundle: certs.Bundle) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=bundle.ca.decode())
    return context


def post(server: webhook.WebhookServer, bundle: certs.Bundle, path: str, body: bytes,
         content_type: str = "application/json", method: str = "POST",
         ) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPSConnection(*server.address, context=client_context(bundle),
                                       timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def call(server: webhook.WebhookServer, bundle: certs.Bundle, review: dict[str, Any],
         path: str = BMH_PATH) -> dict[str, Any]:
    status, body = post(server, bundle, path, json.dumps(review).encode())
    assert status == 200, body
    assert body["apiVersion"] == "admission.k8s.io/v1"
    assert body["kind"] == "AdmissionReview"
    answer: dict[str, Any] = body["response"]
    return answer


def test_paths_come_from_the_kind_registry() -> None:
    paths = webhook.admission_handlers()
    assert BMH_PATH in paths
    assert "/mutate-metal3-io-v1alpha1-baremetalhost" in paths
    # HardwareData has a model but no webhook upstream: not served.
    assert not any("hardwaredata" in p for p in paths)
    for entry in validation.webhooks():
        assert entry.webhook_path in paths
    assert webhook.path_for("metal3.io/v1alpha1", "BareMetalHost") == BMH_PATH


def test_a_valid_host_is_admitted(server: webhook.WebhookServer, bundle: certs.Bundle) -> None:
    answer = call(server, bundle, admission(host(), uid="abc"))
    assert answer == {"uid": "abc", "allowed": True}


@pytest.mark.parametrize(("spec", "field", "words"), [
    ({"bootMACAddress": "not-a-mac"}, "spec.bootMACAddress", "should match pattern"),
    ({"bmc": {"address": "bogus://10.0.0.1", "credentialsName": "c"}}, "spec.bmc.address",
     "bogus"),
    ({"online": False, "disablePowerOff": True}, "spec.disablePowerOff",
     "online set to false"),
    ({"image": {"url": "http://images/x.qcow2"}}, "spec.image.checksum",
     "checksum is required"),
])
def test_an_invalid_host_is_denied_naming_the_field(
    server: webhook.WebhookServer, bundle: certs.Bundle, spec: dict[str, Any], field: str,
    words: str,
) -> None:
    answer = call(server, bundle, admission(host(**spec)))
    assert answer["allowed"] is False
    assert answer["status"]["code"] == 403
    assert answer["status"]["reason"] == "Forbidden"
    assert field in answer["status"]["message"]
    assert words in answer["status"]["message"]


def test_several_problems_are_aggregated_as_go_prints_them(
    server: webhook.WebhookServer, bundle: certs.Bundle,
) -> None:
    uuid = "7f2a6d3c-1b4e-4c5d-9e8f-0a1b2c3d4e5f"
    answer = call(server, bundle, admission(host(uuid, online=False, disablePowerOff=True)))
    message = answer["status"]["message"]
    assert message.startswith("[") and message.endswith("]")
    assert "metadata.name: BareMetalHost resource name cannot be a UUID" in message
    assert ("spec.disablePowerOff: node can't simultaneously have online set to false and "
            "have power off disabled") in message


def test_update_rules_use_the_old_object(server: webhook.WebhookServer,
                                         bundle: certs.Bundle) -> None:
    old = host()
    new = host(bootMACAddress="00:11:22:33:44:66")
    answer = call(server, bundle, admission(new, operation="UPDATE", old=old))
    assert answer["allowed"] is False
    assert "spec.bootMACAddress: bootMACAddress can not be changed once it is set" in (
        answer["status"]["message"])
    # The same object as a create is fine, and an unchanged update too.
    assert call(server, bundle, admission(new))["allowed"] is True
    assert call(server, bundle, admission(old, operation="UPDATE", old=old))["allowed"] is True


def test_an_old_object_that_does_not_parse_gets_create_rules(
    server: webhook.WebhookServer, bundle: certs.Bundle,
) -> None:
    old = host()
    old["spec"]["bootMode"] = "BIOS"  # not in the enum any more
    answer = call(server, bundle, admission(host(), operation="UPDATE", old=old))
    assert answer["allowed"] is True


def test_delete_is_allowed_as_upstream(server: webhook.WebhookServer,
                                       bundle: certs.Bundle) -> None:
    review = admission(host("a_b"), operation="DELETE")
    review["request"]["oldObject"] = review["request"].pop("object")
    assert call(server, bundle, review)["allowed"] is True


def test_defaulting_path_answers_allowed_without_patch(
    server: webhook.WebhookServer, bundle: certs.Bundle,
) -> None:
    answer = call(server, bundle, admission(host()),
                  path="/mutate-metal3-io-v1alpha1-baremetalhost")
    assert answer == {"uid": "u-1", "allowed": True}


def test_a_review_for_another_kind_is_refused(server: webhook.WebhookServer,
                                              bundle: certs.Bundle) -> None:
    review = admission(host())
    review["request"]["kind"]["kind"] = "HardwareData"
    answer = call(server, bundle, review)
    assert answer["allowed"] is False
    assert answer["status"]["code"] == 400
    assert "serves BareMetalHost" in answer["status"]["message"]


@pytest.mark.parametrize(("body", "content_type", "words"), [
    (b"{not json", "application/json", "not JSON"),
    (b"[1, 2]", "application/json", "not a JSON object"),
    (b"", "application/json", "empty"),
    (b"\xff\xfe", "application/json", "not JSON"),
    (b"[" * 100_000, "application/json", "request body"),
    (json.dumps({"kind": "Pod"}).encode(), "application/json", "AdmissionReview"),
    (json.dumps({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
                 "request": {"uid": "x"}}).encode(), "application/json",
     "admission.k8s.io/v1"),
    (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(),
     "application/json", "request: Required value"),
    (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                 "request": {"operation": "CREATE", "object": {}}}).encode(),
     "application/json", "request.uid"),
    (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                 "request": {"uid": "x", "operation": "PATCH"}}).encode(),
     "application/json", "request.operation"),
    (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                 "request": {"uid": "x", "operation": "CREATE"}}).encode(),
     "application/json", "request.object"),
    (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                 "request": {"uid": "x", "operation": "CREATE", "object": [1]}}).encode(),
     "application/json", "request.object"),
    (json.dumps(admission(host())).encode(), "text/plain", "Content-Type"),
])
def test_malformed_requests_get_400_with_a_message(
    server: webhook.WebhookServer, bundle: certs.Bundle, body: bytes, content_type: str,
    words: str,
) -> None:
    status, answer = post(server, bundle, BMH_PATH, body, content_type)
    assert status == 400
    assert words in answer["message"]
    # ... and the server goes on serving.
    assert call(server, bundle, admission(host()))["allowed"] is True


def test_unknown_paths_oversized_bodies_and_gets(server: webhook.WebhookServer,
                                                 bundle: certs.Bundle) -> None:
    status, answer = post(server, bundle, "/validate-nothing", b"{}")
    assert (status, answer["message"]) == (404, "no webhook at /validate-nothing")
    status, answer = post(server, bundle, BMH_PATH, b"", method="GET")
    assert status == 405
    # A body announced larger than the limit is refused before it is read.
    conn = http.client.HTTPSConnection(*server.address, context=client_context(bundle),
                                       timeout=10)
    conn.putrequest("POST", BMH_PATH)
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(webhook.MAX_BODY_BYTES + 1))
    conn.endheaders()
    response = conn.getresponse()
    status, answer = response.status, json.loads(response.read())
    conn.close()
    assert status == 413
    assert "larger than" in answer["message"]
    assert call(server, bundle, admission(host()))["allowed"] is True


def test_plain_http_is_not_served(server: webhook.WebhookServer, bundle: certs.Bundle) -> None:
    body = json.dumps(admission(host())).encode()
    with socket.create_connection(server.address, timeout=10) as raw:
        raw.sendall(b"POST " + BMH_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode() + b"\r\n\r\n" + body)
        received = b""
        try:
            while chunk := raw.recv(4096):
                received += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert not received.startswith(b"HTTP/")
    assert b"allowed" not in received
    assert call(server, bundle, admission(host()))["allowed"] is True


def test_an_untrusted_client_cannot_mistake_it_for_another_ca(
    server: webhook.WebhookServer,
) -> None:
    other = certs.renew(None, ["127.0.0.1"], NOW, certs.Lifetimes())
    with pytest.raises(ssl.SSLCertVerificationError):
        post(server, other, BMH_PATH, b"{}")


def test_there_is_no_plain_http_mode() -> None:
    with pytest.raises(TypeError, match="HTTPS only"):
        webhook.WebhookServer(("127.0.0.1", 0), tls=None)  # type: ignore[arg-type]


def test_a_handler_bug_denies_and_the_server_survives(bundle: certs.Bundle) -> None:
    def broken(body: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("bug")

    srv = webhook.WebhookServer(("127.0.0.1", 0), tls=bundle.tls_context(),
                                handlers={"/broken": broken, **webhook.admission_handlers()})
    srv.start()
    try:
        answer = call(srv, bundle, admission(host(), uid="q"), path="/broken")
        assert answer["allowed"] is False
        assert answer["uid"] == "q"
        assert answer["status"]["code"] == 500
        assert call(srv, bundle, admission(host()))["allowed"] is True
    finally:
        srv.stop()


def test_new_connections_get_the_rotated_certificate(bundle: certs.Bundle) -> None:
    srv = webhook.WebhookServer(("127.0.0.1", 0), tls=bundle.tls_context(),
                                handlers=webhook.admission_handlers())
    srv.start()
    try:
        rotated = certs.renew(bundle, ["127.0.0.1"], NOW, certs.Lifetimes())
        assert rotated.ca == bundle.ca  # the CA is kept, the serving certificate is new
        srv.set_tls(rotated.tls_context())
        with (socket.create_connection(srv.address, timeout=10) as raw,
              client_context(bundle).wrap_socket(raw, server_hostname="127.0.0.1") as tls):
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        assert der == ssl.PEM_cert_to_DER_cert(rotated.cert.decode())
    finally:
        srv.stop()


def test_conversion_handler_converts_each_object_or_fails_the_review() -> None:
    def convert(obj: dict[str, Any], desired: str) -> dict[str, Any]:
        if obj.get("bad"):
            raise ValueError("cannot convert bad")
        return {**obj, "apiVersion": desired}

    handle = webhook.conversion_handler(convert)
    request = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
               "request": {"uid": "c1", "desiredAPIVersion": "x/v2",
                           "objects": [{"apiVersion": "x/v1", "kind": "K"}]}}
    answer = handle(request)["response"]
    assert answer["result"] == {"status": "Success"}
    assert answer["convertedObjects"] == [{"apiVersion": "x/v2", "kind": "K"}]
    request["request"]["objects"] = [{"bad": True}]  # type: ignore[index]
    assert handle(request)["response"]["result"] == {"status": "Failure",
                                                     "message": "cannot convert bad"}
    with pytest.raises(webhook.BadRequest, match="desiredAPIVersion"):
        handle({**request, "request": {"uid": "c1", "objects": []}})


def test_json_patch_of_a_defaulter() -> None:
    before = {"spec": {"a": 1, "gone": True, "x/y": 1}}
    after = {"spec": {"a": 2, "new": [1], "x/y": 1}}
    ops = webhook.json_patch(before, after)
    assert sorted(ops, key=lambda o: o["path"]) == [
        {"op": "replace", "path": "/spec/a", "value": 2},
        {"op": "remove", "path": "/spec/gone"},
        {"op": "add", "path": "/spec/new", "value": [1]},
    ]
    answer = webhook.review("u", allowed=True, patch=ops)["response"]
    assert answer["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(answer["patch"])) == ops


def test_renewal_follows_the_clock() -> None:
    lifetimes = certs.Lifetimes(ca_s=900 * certs.DAY_S, serving_s=90 * certs.DAY_S)
    moving = clock.ManualClock(NOW)
    first = certs.renew(None, ["svc.ns.svc"], moving.now(), lifetimes)
    assert certs.rotation_due(first, ["svc.ns.svc"], moving.now(), lifetimes) == ""
    moving.advance(59 * certs.DAY_S)
    assert certs.rotation_due(first, ["svc.ns.svc"], moving.now(), lifetimes) == ""
    moving.advance(2 * certs.DAY_S)  # less than a third of 90 days left
    assert "serving certificate expires" in certs.rotation_due(
        first, ["svc.ns.svc"], moving.now(), lifetimes)
    second = certs.renew(first, ["svc.ns.svc"], moving.now(), lifetimes)
    assert second.ca == first.ca and second.cert != first.cert
    assert certs.rotation_due(second, ["svc.ns.svc"], moving.now(), lifetimes) == ""
    # A new name to carry: renewed at once.
    assert "lacks 127.0.0.1" in certs.rotation_due(second, ["svc.ns.svc", "127.0.0.1"],
                                                   moving.now(), lifetimes)
    # The CA near its end: a new CA, the old one kept in the bundle for the handover.
    moving.advance(560 * certs.DAY_S)
    assert "the CA expires" in certs.rotation_due(second, ["svc.ns.svc"], moving.now(),
                                                  lifetimes)
    third = certs.renew(second, ["svc.ns.svc"], moving.now(), lifetimes)
    cas = third.cas()
    assert len(cas) == 2
    assert cas[1] == first.cas()[0]
    third.serving().verify_directly_issued_by(cas[0])
    assert certs.rotation_due(third, ["svc.ns.svc"], moving.now(), lifetimes) == ""


def test_a_serving_certificate_never_outlives_its_ca() -> None:
    lifetimes = certs.Lifetimes(ca_s=10 * certs.DAY_S, serving_s=365 * certs.DAY_S)
    bundle = certs.renew(None, ["a"], NOW, lifetimes)
    assert bundle.serving().not_valid_after_utc == bundle.cas()[0].not_valid_after_utc


def test_mounted_certificates_name_the_bad_file(tmp_path: Any, bundle: certs.Bundle) -> None:
    source = certs.DirectorySource(tmp_path)
    with pytest.raises(certs.CertificateError, match=r"--webhook-cert-dir: cannot read .*tls"):
        source.ensure()
    (tmp_path / "tls.crt").write_bytes(b"garbage")
    (tmp_path / "tls.key").write_bytes(bundle.key)
    with pytest.raises(certs.CertificateError, match=r"tls\.crt is not a PEM certificate"):
        source.ensure()
    (tmp_path / "tls.crt").write_bytes(bundle.cert)
    assert source.ensure().cert == bundle.cert
    assert source.ensure().ca == b""
    (tmp_path / "tls.key").write_bytes(certs.renew(None, ["x"], NOW, certs.Lifetimes()).key)
    with pytest.raises(certs.CertificateError, match="do not load"):
        source.ensure().tls_context()


def test_the_shipped_configuration_is_the_generated_one() -> None:
    shipped = Path(webhook.__file__).parent.parent / "manifests" / "webhook" / "manifests.yaml"
    assert shipped.read_text() == webhook.manifest(), (
        "stale: regenerate with python3 -m metalcubed.controllers.kube.webhook > " + str(shipped))


def test_the_configuration_has_upstreams_facts_for_baremetalhost() -> None:
    config = webhook.configuration()
    (hook,) = [h for h in config["webhooks"] if h["name"] == "baremetalhost.metal3.io"]
    # baremetal-operator 02aa5059e, config/base/webhook/manifests.yaml
    assert hook == {
        "admissionReviewVersions": ["v1"],
        "clientConfig": {"service": {"name": "metalcubed-webhook-service",
                                     "namespace": "metalcubed-system",
                                     "path": "/validate-metal3-io-v1alpha1-baremetalhost"}},
        "failurePolicy": "Fail",
        "name": "baremetalhost.metal3.io",
        "rules": [{"apiGroups": ["metal3.io"], "apiVersions": ["v1alpha1"],
                   "operations": ["CREATE", "UPDATE"], "resources": ["baremetalhosts"]}],
        "sideEffects": "None",
    }
    by_url = webhook.configuration(url="https://127.0.0.1:9443/", ca_bundle=b"PEM")
    (first,) = [h["clientConfig"] for h in by_url["webhooks"]
                if h["name"] == "baremetalhost.metal3.io"]
    assert first == {"url": "https://127.0.0.1:9443/validate-metal3-io-v1alpha1-baremetalhost",
                     "caBundle": base64.b64encode(b"PEM").decode()}


def test_a_port_in_use_is_named(bundle: certs.Bundle, tmp_path: Path) -> None:
    (tmp_path / "tls.crt").write_bytes(bundle.cert)
    (tmp_path / "tls.key").write_bytes(bundle.key)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        runnable = webhook.WebhookRunnable(("127.0.0.1", port),
                                           source=certs.DirectorySource(tmp_path), handlers={})
        with pytest.raises(OSError, match=f"webhook server cannot listen on 127.0.0.1:{port} "
                                          r"\(--webhook-host, --webhook-port\)"):
            runnable.run(threading.Event())


def test_webhook_names_follow_each_upstream_project() -> None:
    def entry(api_version: str, kind: str) -> validation.KindEntry:
        return validation.KindEntry(api_version=api_version, kind=kind,
                                    check=validation.Check.FULL)

    assert webhook.webhook_name(entry("metal3.io/v1alpha1", "DataImage")) == (
        "dataimage.metal3.io")
    assert webhook.webhook_name(entry("ipam.metal3.io/v1alpha1", "IPPool")) == (
        "validation.ippool.ipam.metal3.io")
    assert webhook.webhook_name(entry("infrastructure.cluster.x-k8s.io/v1beta2",
                                      "Metal3Machine")) == (
        "validation.metal3machine.infrastructure.cluster.x-k8s.io")
