"""A hostile or broken BMC: malformed JSON, missing or mistyped fields, huge bodies, HTML error
pages. Every case must surface as a DriverError naming the BMC address and the operation."""

import json
import threading
from collections.abc import Iterator

import pytest
from werkzeug import serving
from werkzeug.wrappers import Request, Response

from metalcubed.controllers.bmc.redfish import capabilities as rf
from metalcubed.controllers.bmc.redfish import client
from metalcubed.core import bmc, ports

pytestmark = pytest.mark.hardware

ROOT = {"@odata.id": "/redfish/v1/", "Id": "RootService", "Name": "Hostile",
        "RedfishVersion": "1.6.0", "Systems": {"@odata.id": "/redfish/v1/Systems"}}
GOOD = {"@odata.id": "/redfish/v1/Systems/good", "Id": "good", "PowerState": "On"}
HTML = "<html><head><title>Error</title></head><body><h1>Internal error</h1></body></html>"


def _system(kind: str) -> Response:
    doc = dict(GOOD, **{"@odata.id": f"/redfish/v1/Systems/{kind}"})
    if kind == "absent":
        return Response(json.dumps({"error": {"code": "Base.1.0.ResourceMissingAtURI",
                                              "message": "no such system"}}),
                        status=404, content_type="application/json")
    if kind == "good":
        return Response(json.dumps(doc), content_type="application/json")
    if kind == "html-200":
        return Response(HTML, content_type="text/html")
    if kind == "html-500":
        return Response(HTML, status=500, content_type="text/html")
    if kind == "truncated":
        return Response(json.dumps(doc)[:25], content_type="application/json")
    if kind == "missing-power":
        del doc["PowerState"]
    elif kind == "power-wrong-type":
        doc["PowerState"] = {"value": "On"}
    elif kind == "missing-id":
        del doc["Id"]
    elif kind == "json-array":
        return Response(json.dumps([doc]), content_type="application/json")
    elif kind == "huge":
        doc["Padding"] = "x" * (4 * 1024 * 1024)
    elif kind == "huge-chunked":
        body = json.dumps(dict(doc, Padding="y" * (4 * 1024 * 1024))).encode()
        return Response(iter([body[i:i + 65536] for i in range(0, len(body), 65536)]),
                        content_type="application/json")
    return Response(json.dumps(doc), content_type="application/json")


@Request.application
def hostile_app(request: Request) -> Response:
    path = request.path.rstrip("/")
    if path in ("/redfish/v1", "/redfish"):
        return Response(json.dumps(ROOT), content_type="application/json")
    if path.startswith("/redfish/v1/Systems/"):
        return _system(path.rsplit("/", 1)[-1])
    return Response(json.dumps({"error": {"code": "Base.1.0.GeneralError", "message": "no"}}),
                    status=404, content_type="application/json")


@pytest.fixture
def hostile() -> Iterator[str]:
    server = serving.make_server("127.0.0.1", 0, hostile_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def power() -> rf.RedfishPower:
    return rf.RedfishPower(client.Clients(client.ClientConfig(
        read_timeout_s=2.0, max_body_bytes=1024 * 1024,
        retry=client.RetryPolicy(attempts=2, base_delay_s=0.01, max_delay_s=0.01))))


def _access(hostport: str, kind: str) -> bmc.BmcAccess:
    return bmc.BmcAccess.of(f"redfish+http://{hostport}/redfish/v1/Systems/{kind}",
                            ports.Credentials(username="admin", password="pw-not-in-messages"))


def test_well_formed_system_reads(hostile: str, power: rf.RedfishPower) -> None:
    assert power.power_state(_access(hostile, "good")) is bmc.PowerState.ON


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("html-200", bmc.BmcBadResponse),
        ("truncated", bmc.BmcBadResponse),
        ("missing-power", bmc.BmcBadResponse),
        ("power-wrong-type", bmc.BmcBadResponse),
        ("missing-id", bmc.BmcBadResponse),
        ("json-array", bmc.BmcBadResponse),
        ("huge", bmc.BmcBadResponse),
        ("huge-chunked", bmc.BmcBadResponse),
        ("html-500", bmc.BmcServerError),
        ("absent", bmc.BmcRejected),
    ],
)
def test_hostile_payload_becomes_driver_error(hostile: str, power: rf.RedfishPower, kind: str,
                                              error: type[bmc.DriverError]) -> None:
    access = _access(hostile, kind)
    with pytest.raises(error) as info:
        power.power_state(access)
    message = str(info.value)
    assert hostile in message and "get power state" in message
    assert info.value.operation == "get power state"
    assert "pw-not-in-messages" not in message
