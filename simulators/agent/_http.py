"""A small JSON-over-HTTP server on 127.0.0.1 for the agent emulator and the lab's control API.

`JsonServer(route)` serves every request through `route(method, path, query, body)`, which
returns `(status, document)`; request bodies are JSON objects of at most 1 MiB (else 413 or
400), answers are JSON. It is the manager's own HTTP server (controllers/httpserve.py) with a
JSON codec in front, so the emulators and production share one server implementation.
"""

import json
from collections.abc import Callable
from typing import Any

from metalcubed.controllers import httpserve

MAX_REQUEST = 1024 * 1024

Route = Callable[[str, str, dict[str, list[str]], dict[str, Any] | None], tuple[int, object]]


def _json(status: int, doc: object) -> httpserve.Response:
    return httpserve.Response(status, json.dumps(doc).encode())


class JsonServer:
    def __init__(self, route: Route, *, name: str) -> None:
        self._route = route
        self._server = httpserve.HttpServer(self._handle, name=name, max_body=MAX_REQUEST)

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> str:
        return self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def _handle(self, request: httpserve.Request) -> httpserve.Response:
        body: dict[str, Any] | None = None
        if request.body:
            try:
                doc = json.loads(request.body)
            except ValueError:
                return _json(400, {"error": "request body is not JSON"})
            if not isinstance(doc, dict):
                return _json(400, {"error": "request body must be a JSON object"})
            body = doc
        try:
            status, answer = self._route(request.method, request.path, dict(request.query), body)
        except Exception as err:  # a bug in a route must not kill the server thread
            status, answer = 500, {"error": f"internal error: {err}"}
        return _json(status, answer)
