"""The manager's HTTP endpoints: liveness and readiness probes, and the Prometheus scrape.

controller-runtime serves `/healthz` and `/readyz` on `--health-probe-bind-address` and
`/metrics` on `--metrics-bind-address`; this module does the same with the standard library's
threading HTTP server (no framework). A probe runs named checks: each returns None when healthy
or a short reason when not; the answer is 200 `ok` or 500 listing the failed checks
(`?verbose` lists all, as the apiserver-style handlers do), and `/readyz/<check>` runs one.

Addresses use Go's `host:port` form: `:8080` binds every interface, `127.0.0.1:0` an ephemeral
port (the bound address is reported back), `0` disables the endpoint.

A server may also speak TLS (`tls`, an `ssl.SSLContext`) and put a `guard` in front of its
routes: the guard sees the request's headers and path and answers None (serve it) or a refusal
(status, reason). The metrics endpoint uses both for `--metrics-secure`
(controllers/kube/metricsauth.py); the probes stay plain HTTP for the kubelet.
"""

import logging
import ssl
import threading
from collections.abc import Callable, Mapping
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import prometheus_client as prom

log = logging.getLogger(__name__)

Check = Callable[[], str | None]
"""A health check: None when healthy, otherwise why not."""

Route = Callable[[str], tuple[int, str, bytes]]
"""A handler for one path prefix: query string in, (status, content type, body) out."""

Guard = Callable[[Message, str], tuple[int, str] | None]
"""(request headers, path) -> None to serve the request, or (status, reason) to refuse it."""


def parse_address(address: str) -> tuple[str, int] | None:
    """Go-style `host:port` to a bind tuple; None for "0" or "" (disabled). ValueError when
    it is not host:port or the port is not 0-65535."""
    if address in ("", "0"):
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdecimal() or len(port) > 5 or not 0 <= int(port) <= 65535:
        raise ValueError(f"bind address {address!r} is not host:port (port 0-65535)")
    host = host.strip("[]")
    return host or "0.0.0.0", int(port)


class HttpServer:
    """A small threaded HTTP(S) server dispatching on path prefixes; stop() closes it."""

    def __init__(
        self,
        address: tuple[str, int],
        routes: Mapping[str, Route],
        *,
        name: str,
        tls: ssl.SSLContext | None = None,
        guard: Guard | None = None,
    ):
        self.name = name
        self._routes = dict(routes)
        handler = _handler_class(self._routes, guard)
        self._server = _QuietServer(address, handler, bind_and_activate=tls is None)
        if tls is not None:
            # Handshake in the request's thread (not in accept), so a slow client holds only
            # its own thread.
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True,
                                                  do_handshake_on_connect=False)
            try:
                self._server.server_bind()
                self._server.server_activate()
            except BaseException:
                self._server.server_close()
                raise
        self.tls = tls is not None
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"http-{name}", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()
        log.info("%s endpoint serving %s on %s:%d", self.name,
                 "HTTPS" if self.tls else "HTTP", *self.address)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up or fails its TLS handshake is logged at debug, not printed as a
    traceback on stderr (socketserver's default)."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        log.debug("HTTP request from %s failed", client_address, exc_info=True)


def _handler_class(
    routes: Mapping[str, Route], guard: Guard | None
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 30  # a client that stalls (or never finishes a TLS handshake) is dropped

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            refused = guard(self.headers, parts.path) if guard is not None else None
            if refused is not None:
                code, reason = refused
                self._answer(code, "text/plain; charset=utf-8", f"{reason}\n".encode())
                return
            for prefix, route in routes.items():
                if parts.path == prefix or parts.path.startswith(prefix + "/"):
                    status, ctype, body = route(parts.path[len(prefix):] + "?" + parts.query)
                    break
            else:
                status, ctype, body = 404, "text/plain; charset=utf-8", b"not found\n"
            self._answer(status, ctype, body)

        def _answer(self, status: int, ctype: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None  # probes every few seconds would flood the log

    return Handler


class Probes:
    """Named liveness (`/healthz`) and readiness (`/readyz`) checks."""

    def __init__(self) -> None:
        self._health: dict[str, Check] = {"ping": lambda: None}
        self._ready: dict[str, Check] = {"ping": lambda: None}

    def add_health_check(self, name: str, check: Check) -> None:
        self._health[name] = check

    def add_ready_check(self, name: str, check: Check) -> None:
        self._ready[name] = check

    def routes(self) -> dict[str, Route]:
        return {
            "/healthz": lambda rest: _run_checks(self._health, rest),
            "/readyz": lambda rest: _run_checks(self._ready, rest),
        }

    def ready(self) -> bool:
        return _run_checks(self._ready, "?")[0] == 200


def _run_checks(checks: Mapping[str, Check], rest: str) -> tuple[int, str, bytes]:
    path, _, query = rest.partition("?")
    wanted = path.strip("/")
    selected = {n: c for n, c in checks.items() if not wanted or n == wanted}
    if not selected:
        return 404, "text/plain; charset=utf-8", f"no check named {wanted!r}\n".encode()
    lines = []
    failed = False
    for name, check in selected.items():
        try:
            reason = check()
        except Exception as exc:  # a check that raises is a failed check, not a dead server
            reason = f"{type(exc).__name__}: {exc}"
        if reason is None:
            lines.append(f"[+]{name} ok")
        else:
            failed = True
            lines.append(f"[-]{name} failed: {reason}")
    verbose = "verbose" in query
    if failed:
        text = "\n".join(lines) + "\nhealthz check failed\n"
        return 500, "text/plain; charset=utf-8", text.encode()
    text = ("\n".join(lines) + "\nok\n") if verbose else "ok"
    return 200, "text/plain; charset=utf-8", text.encode()


def metrics_route(registry: prom.CollectorRegistry) -> dict[str, Route]:
    """`/metrics` in the Prometheus text format, from `registry`."""

    def scrape(_rest: str) -> tuple[int, str, bytes]:
        return 200, prom.CONTENT_TYPE_LATEST, prom.generate_latest(registry)

    return {"/metrics": scrape}
