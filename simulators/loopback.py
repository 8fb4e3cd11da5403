"""A stdlib HTTP server on 127.0.0.1 with an ephemeral port, served from a daemon thread.

Shared by the emulators' small HTTP services (agent API, lookup service, image server) so
each only writes its request handler. Threaded (one thread per connection); `stop()` shuts the
server down and closes its socket; both are idempotent.
"""

import threading
from http import server


class LoopbackServer:
    def __init__(self, handler: type[server.BaseHTTPRequestHandler], *, name: str) -> None:
        self._handler = handler
        self._name = name
        self._httpd: server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT (no trailing slash)."""
        if self._httpd is None:
            raise RuntimeError(f"{self._name} is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        if self._httpd is None:
            self._httpd = server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler)
            self._httpd.daemon_threads = True
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=self._name,
                daemon=True,
            )
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
