"""A small threaded HTTP server for the manager's endpoints that hosts reach.

The agent API (controllers/lookup.py) and the boot server (controllers/bootserver.py) answer
through a `Handler`: `handle(request) -> Response`. Listens where it is told (loopback by
default; IPv6 addresses too; port 0 picks a free one), one thread per connection (stdlib
`ThreadingHTTPServer`), request bodies capped at `max_body` (413 beyond), a handler bug
answered as 500 without killing the server; request lines are never logged (they may carry
agent tokens). `stop()` closes the socket; both are idempotent.
"""

import logging
import socket
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import server
from typing import IO, Any

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    client: str


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    stream: IO[bytes] | None = None
    """A file to send instead of `body` (from its current position, `length` bytes), in
    chunks; closed afterwards."""
    length: int = 0


Handler = Callable[[Request], Response]


class _Server(server.ThreadingHTTPServer):
    def get_request(self) -> tuple[socket.socket, Any]:
        """An accepted connection sends each reply at once (TCP_NODELAY): the handler writes
        headers and body separately, and with Nagle's algorithm the body waited for the
        client's delayed ACK, about 40 ms per request on a kept-alive connection."""
        conn, address = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, address

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up (reset, broken pipe) is no error worth a traceback."""
        log.debug("connection from %s ended abruptly", client_address, exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


class HttpServer:
    def __init__(self, handler: Handler, *, name: str, host: str = "127.0.0.1", port: int = 0,
                 max_body: int = 16 * 1024 * 1024) -> None:
        self._handler = handler
        self._name = name
        self._host = host
        self._port = port
        self._max_body = max_body
        self._httpd: server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """http://HOST:PORT of the listening socket (no trailing slash)."""
        if self._httpd is None:
            raise RuntimeError(f"{self._name} is not running")
        host, port = self._httpd.server_address[:2]
        text = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{text}]" if ":" in text else text
        return f"http://{shown}:{port}"

    def start(self) -> str:
        if self._httpd is not None:
            return self.url
        handler, max_body, name = self._handler, self._max_body, self._name

        class _Handler(server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None  # paths may carry agent tokens: never log request lines

            def _serve(self) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                if length > max_body:
                    self._reply(Response(413, b'{"error": "request body too large"}'))
                    self.close_connection = True
                    return
                body = self.rfile.read(length) if length else b""
                request = Request(
                    method=self.command, path=parsed.path,
                    query=urllib.parse.parse_qs(parsed.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body, client=str(self.client_address[0]),
                )
                try:
                    response = handler(request)
                except Exception:  # a bug in a handler must not kill the server thread
                    log.exception("%s: internal error on %s %s", name, self.command, parsed.path)
                    response = Response(500, b'{"error": "internal error"}')
                self._reply(response)

            def _reply(self, response: Response) -> None:
                stream = response.stream
                try:
                    length = response.length if stream is not None else len(response.body)
                    self.send_response(response.status)
                    self.send_header("Content-Type", response.content_type)
                    self.send_header("Content-Length", str(length))
                    for key, value in response.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    if self.command == "HEAD":
                        return
                    if stream is None:
                        self.wfile.write(response.body)
                        return
                    while length > 0:
                        chunk = stream.read(min(CHUNK, length))
                        if not chunk:
                            break
                        self.wfile.write(chunk)
                        length -= len(chunk)
                finally:
                    if stream is not None:
                        stream.close()

            do_GET = _serve
            do_HEAD = _serve
            do_POST = _serve
            do_PUT = _serve
            do_DELETE = _serve

        cls = _Server6 if ":" in self._host else _Server
        self._httpd = cls((self._host, self._port), _Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, name=name, daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None
