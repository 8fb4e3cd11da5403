"""The manager's HTTP endpoints: liveness and readiness probes, and the Prometheus scrape.

controller-runtime serves `/healthz` and `/readyz` on `--health-probe-bind-address` and
`/metrics` on `--metrics-bind-address`; this module does the same with the standard library's
threading HTTP server (no framework). A probe runs named checks: each returns None when healthy
or a short reason when not; the answer is 200 `ok` or 500 listing the failed checks
(`?verbose` lists all, as the apiserver-style handlers do), and `/readyz/<check>` runs one.

Addresses use Go's `host:port` form: `:8080` binds every interface, `127.0.0.1:0` an ephemeral
port (the bound address is reported back), `0` disables the endpoint.
"""

import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import prometheus_client as prom

log = logging.getLogger(__name__)

Check = Callable[[], str | None]
"""A health check: None when healthy, otherwise why not."""

Route = Callable[[str], tuple[int, str, bytes]]
"""A handler for one path prefix: query string in, (status, content type, body) out."""


def parse_address(address: str) -> tuple[str, int] | None:
    """Go-style `host:port` to a bind tuple; None for "0" or "" (disabled)."""
    if address in ("", "0"):
        return None
    host, sep, port = address.rpartition(":")
    if not sep:
        raise ValueError(f"bind address {address!r} is not host:port")
    host = host.strip("[]")
    return host or "0.0.0.0", int(port)


class HttpServer:
    """A small threaded HTTP server dispatching on path prefixes; stop() closes it."""

    def __init__(self, address: tuple[str, int], routes: Mapping[str, Route], *, name: str):
        self.name = name
        self._routes = dict(routes)
        handler = _handler_class(self._routes)
        self._server = ThreadingHTTPServer(address, handler)
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
        log.info("%s endpoint serving on %s:%d", self.name, *self.address)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


def _handler_class(routes: Mapping[str, Route]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            for prefix, route in routes.items():
                if parts.path == prefix or parts.path.startswith(prefix + "/"):
                    status, ctype, body = route(parts.path[len(prefix):] + "?" + parts.query)
                    break
            else:
                status, ctype, body = 404, "text/plain; charset=utf-8", b"not found\n"
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
