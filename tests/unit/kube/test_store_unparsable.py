"""An object from the API server that does not parse is skipped and logged by kind, namespace,
name and field path only: pydantic's own message quotes the input (`input_value=...`), which for
a Secret is its data, so a BMC password would reach the log (issue 14, security item 2).

The list goes through the real client and HTTP, from a server on 127.0.0.1 that answers like an
API server whose Secret is malformed (a real API server cannot hold one that fails our model)."""

import base64
import http.server
import json
import logging
import threading
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from metalcubed.controllers.kube import store
from metalcubed.core import ports
from metalcubed.core.api import meta

PASSWORD = "pw-malformed-never-logged-91c"


def _secret(name: str, data: dict[str, object]) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Secret", "data": data,
            "metadata": {"name": name, "namespace": "lab", "resourceVersion": "7"}}


GOOD = _secret("good", {"password": base64.b64encode(b"fine").decode()})
# A value that is not a string: the model refuses it, and pydantic would quote it in full.
BAD = _secret("bad", {"password": {"clear": PASSWORD}, "username": 12345})


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"apiVersion": "v1", "kind": "SecretList", "items": [BAD, GOOD],
                           "metadata": {"resourceVersion": "9"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[k8s.ApiClient]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    configuration = k8s.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
    client = k8s.ApiClient(configuration)
    try:
        yield client
    finally:
        client.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _leaks(text: str) -> list[str]:
    return [form for form in (PASSWORD, "12345", "clear") if form in text]


def test_a_malformed_secret_in_a_list_is_skipped_and_named_without_its_data(
    api: k8s.ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="metalcubed")
    secrets = store.K8sStore(api).list(meta.Secret, namespace="lab")
    assert [s.metadata.name for s in secrets] == ["good"]
    [record] = [r for r in caplog.records if "does not parse" in r.getMessage()]
    message = record.getMessage()
    assert "Secret lab/bad" in message, message
    assert "data.password" in message and "data.username" in message, message
    assert _leaks(message) == [], message
    assert _leaks(caplog.text) == [], caplog.text


def test_a_malformed_secret_on_a_watch_is_skipped_and_named_without_its_data(
    api: k8s.ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="metalcubed")
    seen: list[ports.WatchEvent[meta.Secret]] = []
    watch = store.K8sWatch(store.K8sStore(api), meta.Secret, seen.append, namespace="lab")
    watch._on_line(json.dumps({"type": "ADDED", "object": BAD}).encode())
    [record] = [r for r in caplog.records if "does not parse" in r.getMessage()]
    message = record.getMessage()
    assert "lab/bad" in message and "data.password" in message, message
    assert _leaks(caplog.text) == [], caplog.text
