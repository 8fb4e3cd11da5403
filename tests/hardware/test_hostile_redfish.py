"""A hostile or broken BMC: malformed JSON, missing or mistyped fields, huge bodies, HTML error
pages, redirects and links to another origin, bodies that drip or nest 100,000 deep, silence.
Every case must surface as a DriverError naming the BMC address and the operation, and no
credential may reach another origin."""

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

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


# --- A hostile BMC that points elsewhere: credentials must never leave its origin --------------
#
# Two loopback servers on different ports are two origins. The BMC (origin A) redirects or links
# to a collector (origin B) that records everything it receives; B must receive nothing at all.

PASSWORD = "pw-must-stay-home"
TOKEN = "token-must-stay-home"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Origin:
    """A loopback HTTP(S) server with a swappable handler, recording every request."""

    def __init__(self, *, tls: bool = False) -> None:
        self.seen: list[Seen] = []
        self.handler: Callable[[Request], Response] = lambda _r: Response("nothing", status=404)
        self.tls = tls

        @Request.application
        def app(request: Request) -> Response:
            self.seen.append(Seen(request.method, request.path, dict(request.headers),
                                  request.get_data()))
            return self.handler(request)

        self._server = serving.make_server("127.0.0.1", 0, app, threaded=True,
                                           ssl_context="adhoc" if tls else None)
        self.port = self._server.server_port
        self.origin = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "Origin":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def leaked(self) -> list[str]:
        """Every credential-like thing this origin received."""
        found = []
        for seen in self.seen:
            for name, value in seen.headers.items():
                if name.lower() in ("authorization", "x-auth-token") or TOKEN in value:
                    found.append(f"{seen.method} {seen.path} header {name}")
            if PASSWORD.encode() in seen.body or TOKEN.encode() in seen.body:
                found.append(f"{seen.method} {seen.path} body")
        return found


def _json(doc: object, status: int = 200, **headers: str) -> Response:
    return Response(json.dumps(doc), status=status, content_type="application/json",
                    headers=headers)


SESSION_ROOT = dict(ROOT, SessionService={"@odata.id": "/redfish/v1/SessionService"},
                    Links={"Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"}})


def bmc_handler(*, login: Callable[[Request], Response] | None = None,
                system: Callable[[Request], Response] | None = None,
                systems: Callable[[Request], Response] | None = None
                ) -> Callable[[Request], Response]:
    """A Redfish BMC with session login; `login`/`system`/`systems` override one route."""

    def handle(request: Request) -> Response:
        path = request.path.rstrip("/")
        if path in ("/redfish/v1", "/redfish"):
            return _json(SESSION_ROOT)
        if path == "/redfish/v1/SessionService":
            return _json({"@odata.id": "/redfish/v1/SessionService", "Id": "SessionService",
                          "Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"}})
        if path == "/redfish/v1/SessionService/Sessions" and request.method == "POST":
            if login is not None:
                return login(request)
            return _json({"@odata.id": "/redfish/v1/SessionService/Sessions/1", "Id": "1"},
                         201, **{"X-Auth-Token": TOKEN,
                                 "Location": "/redfish/v1/SessionService/Sessions/1"})
        if path == "/redfish/v1/Systems" and systems is not None:
            return systems(request)
        if path.startswith("/redfish/v1/Systems/"):
            if system is not None:
                return system(request)
            return _json(dict(GOOD, **{"@odata.id": path}))
        return _json({"error": {"code": "Base.1.0.GeneralError", "message": "no"}}, 404)

    return handle


def redirect_to(target: str, status: int) -> Callable[[Request], Response]:
    return lambda request: Response("", status=status,
                                    headers={"Location": target + request.path})


@pytest.fixture
def two_origins() -> Iterator[tuple[Origin, Origin]]:
    with Origin() as bmc_origin, Origin() as elsewhere:
        elsewhere.handler = bmc_handler()  # a capable attacker: it would accept a login
        yield bmc_origin, elsewhere


def _power(**config: object) -> rf.RedfishPower:
    retry = client.RetryPolicy(attempts=2, base_delay_s=0.01, max_delay_s=0.01,
                               **config)  # type: ignore[arg-type]
    return rf.RedfishPower(client.Clients(client.ClientConfig(
        read_timeout_s=2.0, connect_retry_delay_s=0.01, retry=retry)))


def _home_access(origin: Origin, system: str = "1", *, verify: bool = True) -> bmc.BmcAccess:
    transport = "https" if origin.tls else "http"
    return bmc.BmcAccess.of(
        f"redfish+{transport}://127.0.0.1:{origin.port}/redfish/v1/Systems/{system}",
        ports.Credentials(username="admin", password=PASSWORD), verify_tls=verify)


def _assert_refused(info: pytest.ExceptionInfo[bmc.DriverError], home: Origin,
                    elsewhere: Origin, status: int | None) -> None:
    message = str(info.value)
    assert isinstance(info.value, bmc.BmcBadResponse)
    assert f"127.0.0.1:{home.port}" in info.value.address
    assert elsewhere.origin in message and "refused" in message
    if status is not None:
        assert f"HTTP {status}" in message
    assert PASSWORD not in message and TOKEN not in message


@pytest.mark.parametrize("status", [307, 308, 302])
def test_login_redirected_elsewhere_sends_no_password(two_origins: tuple[Origin, Origin],
                                                      status: int) -> None:
    home, elsewhere = two_origins
    home.handler = bmc_handler(
        login=redirect_to(elsewhere.origin, status))
    with pytest.raises(bmc.DriverError) as info:
        _power().power_state(_home_access(home))
    _assert_refused(info, home, elsewhere, status)
    assert elsewhere.seen == []


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_elsewhere_after_login_sends_no_token(two_origins: tuple[Origin, Origin],
                                                       status: int) -> None:
    home, elsewhere = two_origins
    home.handler = bmc_handler(system=redirect_to(elsewhere.origin, status))
    with pytest.raises(bmc.DriverError) as info:
        _power().power_state(_home_access(home))
    _assert_refused(info, home, elsewhere, status)
    assert elsewhere.seen == [] and elsewhere.leaked() == []
    assert any(s.headers.get("X-Auth-Token") == TOKEN for s in home.seen)  # logged in at home


def test_redirect_elsewhere_with_basic_auth_sends_nothing(two_origins: tuple[Origin, Origin]
                                                          ) -> None:
    home, elsewhere = two_origins
    # No session service: sushy falls back to basic auth, sent with every request.
    home.handler = bmc_handler(login=lambda _r: _json({"error": {"message": "no"}}, 404),
                               system=redirect_to(elsewhere.origin, 307))
    with pytest.raises(bmc.DriverError) as info:
        _power().power_state(_home_access(home))
    _assert_refused(info, home, elsewhere, 307)
    assert elsewhere.seen == []


def test_link_to_another_origin_is_not_followed(two_origins: tuple[Origin, Origin]) -> None:
    home, elsewhere = two_origins
    # An address without a system id: the driver follows the collection's only member.
    home.handler = bmc_handler(systems=lambda _r: _json({
        "@odata.id": "/redfish/v1/Systems", "Name": "Systems", "Members@odata.count": 1,
        "Members": [{"@odata.id": f"{elsewhere.origin}/redfish/v1/Systems/1"}]}))
    access = bmc.BmcAccess.of(f"redfish+http://127.0.0.1:{home.port}",
                              ports.Credentials(username="admin", password=PASSWORD))
    with pytest.raises(bmc.DriverError) as info:
        _power().power_state(access)
    _assert_refused(info, home, elsewhere, None)
    assert elsewhere.seen == []


def test_https_to_http_downgrade_is_refused(two_origins: tuple[Origin, Origin]) -> None:
    _, elsewhere = two_origins
    with Origin(tls=True) as home:
        home.handler = bmc_handler(login=redirect_to(elsewhere.origin, 307))
        with pytest.raises(bmc.DriverError) as info:
            _power().power_state(_home_access(home, verify=False))
        _assert_refused(info, home, elsewhere, 307)
        assert "downgrade" in str(info.value)
    assert elsewhere.seen == []


def test_same_origin_redirect_is_followed(two_origins: tuple[Origin, Origin]) -> None:
    home, elsewhere = two_origins

    def moved(request: Request) -> Response:
        if request.path.endswith("/old"):
            return Response("", status=301, headers={"Location": "/redfish/v1/Systems/good"})
        return _json(GOOD)

    home.handler = bmc_handler(system=moved)
    assert _power().power_state(_home_access(home, "old")) is bmc.PowerState.ON
    assert any(s.path == "/redfish/v1/Systems/good" for s in home.seen)
    assert elsewhere.seen == []


def test_redirect_loop_is_a_bad_response() -> None:
    with Origin() as home:
        home.handler = bmc_handler(system=lambda request: Response(
            "", status=302, headers={"Location": request.path}))
        with pytest.raises(bmc.BmcBadResponse, match="redirect loop"):
            _power().power_state(_home_access(home))


# --- A BMC that answers slowly, never, or with a body nested beyond the parser ------------------


def test_body_dripping_past_the_call_deadline_is_unreachable() -> None:
    body = json.dumps(GOOD).encode() + b" " * 400

    def drip(_request: Request) -> Response:
        def chunks() -> Iterator[bytes]:
            for byte in body:
                time.sleep(0.02)  # far inside the read timeout: only a total deadline stops it
                yield bytes([byte])
        return Response(chunks(), content_type="application/json")

    with Origin() as home:
        home.handler = bmc_handler(system=drip)
        with pytest.raises(bmc.BmcUnreachable) as info:
            _power(call_timeout_s=1.0).power_state(_home_access(home))
    assert "deadline of 1 s" in str(info.value)
    assert info.value.operation == "get power state"


@pytest.mark.parametrize("shape", ["array", "object"])
def test_body_nested_100000_deep_is_a_bad_response(shape: str) -> None:
    depth = 100_000
    body = "[" * depth + "]" * depth if shape == "array" else '{"a":' * depth + "1" + "}" * depth
    with Origin() as home:
        home.handler = bmc_handler(
            system=lambda _r: Response(body, content_type="application/json"))
        with pytest.raises(bmc.BmcBadResponse, match="nests deeper"):
            _power().power_state(_home_access(home))


@pytest.fixture
def silent_bmc() -> Iterator[tuple[str, list[socket.socket]]]:
    """A TCP server that accepts and reads requests but never answers; records connections."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        listener.close()


def test_silent_bmc_is_asked_once_within_the_read_timeout(
        silent_bmc: tuple[str, list[socket.socket]]) -> None:
    hostport, accepted = silent_bmc
    power = rf.RedfishPower(client.Clients(client.ClientConfig(
        read_timeout_s=0.3, connect_retry_delay_s=0.01,
        retry=client.RetryPolicy(attempts=3, base_delay_s=0.01))))
    access = bmc.BmcAccess.of(f"redfish+http://{hostport}/redfish/v1/Systems/1",
                              ports.Credentials(username="admin", password=PASSWORD))
    with pytest.raises(bmc.BmcUnreachable, match="timed out") as info:
        power.power_state(access)
    # sushy's default resends a timed-out request three times (three read timeouts in all).
    assert len(accepted) == 1
    assert "0.3 s" in str(info.value)


def test_bmc_that_never_accepts_is_tried_once_within_the_connect_timeout(
        caplog: pytest.LogCaptureFixture) -> None:
    # A listener with a full backlog drops new SYNs: the connect times out, as with a BMC
    # behind a black hole.
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=1)
    power = rf.RedfishPower(client.Clients(client.ClientConfig(
        connect_timeout_s=0.3, read_timeout_s=0.3, connect_retry_delay_s=0.01)))
    access = bmc.BmcAccess.of(f"redfish+http://127.0.0.1:{port}/redfish/v1/Systems/1",
                              ports.Credentials(username="admin", password=PASSWORD))
    try:
        with caplog.at_level(logging.WARNING, logger="sushy.connector"), \
                pytest.raises(bmc.BmcUnreachable) as info:
            power.power_state(access)
    finally:
        filler.close()
        listener.close()
    # sushy's default tries the connect three times, warning before each new attempt.
    assert [r for r in caplog.records if "Transient error" in r.getMessage()] == []
    assert "no connection within the connect timeout of 0.3 s" in str(info.value)


def test_silent_bmc_is_bounded_by_the_call_deadline(
        silent_bmc: tuple[str, list[socket.socket]]) -> None:
    hostport, accepted = silent_bmc
    power = rf.RedfishPower(client.Clients(client.ClientConfig(
        read_timeout_s=30.0, retry=client.RetryPolicy(call_timeout_s=0.5))))
    access = bmc.BmcAccess.of(f"redfish+http://{hostport}/redfish/v1/Systems/1",
                              ports.Credentials(username="admin", password=PASSWORD))
    with pytest.raises(bmc.BmcUnreachable, match="timed out"):
        power.power_state(access)
    assert len(accepted) == 1
