"""A small JSON-over-HTTP server on 127.0.0.1 for the agent emulator and the lookup service.

`JsonServer(route)` serves every request through `route(method, path, query, body)`, which
returns `(status, document)`; request bodies are JSON objects of at most 1 MiB (else 413 or
400), answers are JSON. Threaded (one thread per connection, stdlib `ThreadingHTTPServer`),
bound to loopback with an ephemeral port; `stop()` shuts it down and closes the socket.
"""

import json
import urllib.parse
from collections.abc import Callable
from http import server
from typing import Any

from metalcubed.simulators.loopback import LoopbackServer

MAX_REQUEST = 1024 * 1024

Route = Callable[[str, str, dict[str, list[str]], dict[str, Any] | None], tuple[int, object]]


class JsonServer:
    def __init__(self, route: Route, *, name: str) -> None:
        self._route = route
        self._name = name
        self._server: LoopbackServer | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{self._name} is not running")
        return self._server.url

    def start(self) -> str:
        if self._server is not None:
            return self.url
        route = self._route

        class Handler(server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _serve(self) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(parsed.query)
                body: dict[str, Any] | None = None
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_REQUEST:
                    self._reply(413, {"error": "request body too large"})
                    return
                if length:
                    try:
                        doc = json.loads(self.rfile.read(length))
                    except ValueError:
                        self._reply(400, {"error": "request body is not JSON"})
                        return
                    if not isinstance(doc, dict):
                        self._reply(400, {"error": "request body must be a JSON object"})
                        return
                    body = doc
                try:
                    status, answer = route(self.command, parsed.path, query, body)
                except Exception as err:  # a bug in a route must not kill the server thread
                    status, answer = 500, {"error": f"internal error: {err}"}
                self._reply(status, answer)

            def _reply(self, status: int, doc: object) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _serve
            do_POST = _serve
            do_PUT = _serve
            do_DELETE = _serve

        self._server = LoopbackServer(Handler, name=self._name)
        return self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
