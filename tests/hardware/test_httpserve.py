"""controllers/httpserve.py over real loopback sockets: accepted connections have Nagle's
algorithm off, and a kept-alive client gets every reply on the same connection."""

import http.client
import json
import socket
from http import server

from metalcubed.controllers import httpserve


def test_accepted_connections_send_replies_at_once() -> None:
    """TCP_NODELAY on every accepted socket: the handler writes headers and body separately,
    which with Nagle waited for the client's delayed ACK (~40 ms per kept-alive request)."""
    srv = httpserve._Server(("127.0.0.1", 0), server.BaseHTTPRequestHandler,
                            bind_and_activate=True)
    try:
        with socket.create_connection(srv.server_address[:2]) as client:
            conn, _address = srv.get_request()
            with conn:
                assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
                assert client.getsockname() == conn.getpeername()
    finally:
        srv.server_close()


def test_a_kept_alive_client_gets_every_reply_on_one_connection() -> None:
    seen: list[tuple[str, bytes]] = []

    def handle(request: httpserve.Request) -> httpserve.Response:
        seen.append((request.method, request.body))
        return httpserve.Response(200, json.dumps({"n": len(seen)}).encode())

    srv = httpserve.HttpServer(handle, name="test")
    host, port = srv.start()[len("http://"):].rsplit(":", 1)
    client = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        for index in range(20):
            body = json.dumps({"i": index}).encode() if index % 2 else None
            client.request("POST" if body else "GET", "/v1/heartbeat/x", body=body)
            response = client.getresponse()
            assert (response.status, json.loads(response.read())) == (200, {"n": index + 1})
            sock = client.sock
            assert sock is not None
            if index == 0:
                first = sock
            assert sock is first, "the connection was kept alive"
    finally:
        client.close()
        srv.stop()
    assert [m for m, _ in seen] == ["GET", "POST"] * 10
    assert seen[1][1] == b'{"i": 1}'
