"""A loopback HTTP image server: OS images, deploy ISOs and their checksum files.

Serves files held in memory (`add(name, data)`) or read from disk (`add_file`), under
`http://127.0.0.1:<port>/<name>`, each with checksum files beside it as `sha256sum`-style text
(`<hex>  <name>`): `<name>.md5sum`, `<name>.sha256sum`, `<name>.sha512sum`. GET and HEAD; 404
for anything else. Counts requests per path (tests check what the BMC and the agents fetched).
Served by the manager's own HTTP server (controllers/httpserve.py); `stop()` closes the socket.
"""

import hashlib
import pathlib
import threading
from collections import Counter

from metalcubed.controllers import httpserve

ALGORITHMS = ("md5", "sha256", "sha512")


def random_image(size: int, *, seed: int = 0) -> bytes:
    """`size` bytes of deterministic filler (a stand-in OS image)."""
    block = hashlib.sha512(f"metalcubed-image-{seed}".encode()).digest()
    return (block * (size // len(block) + 1))[:size]


class ImageServer:
    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.hits: Counter[str] = Counter()
        self._server: httpserve.HttpServer | None = None

    # --- content ---------------------------------------------------------------------------------

    def add(self, name: str, data: bytes) -> str:
        """Serve `data` as `name` (and its checksum files); returns its URL once started."""
        if "/" in name or name.startswith("."):
            raise ValueError(f"bad image name {name!r}")
        with self._lock:
            self._files[name] = data
            for algo in ALGORITHMS:
                digest = hashlib.new(algo, data).hexdigest()
                self._files[f"{name}.{algo}sum"] = f"{digest}  {name}\n".encode()
        return self.url(name) if self._server is not None else name

    def add_file(self, path: pathlib.Path, *, name: str | None = None) -> str:
        return self.add(name or path.name, path.read_bytes())

    def checksum(self, name: str, algo: str = "sha256") -> str:
        with self._lock:
            return hashlib.new(algo, self._files[name]).hexdigest()

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("image server is not running")
        return self._server.url

    # --- serving ---------------------------------------------------------------------------------

    def start(self) -> str:
        if self._server is None:
            self._server = httpserve.HttpServer(self._serve, name="image-server")
        return self._server.start()

    def _serve(self, request: httpserve.Request) -> httpserve.Response:
        if request.method not in ("GET", "HEAD"):
            return httpserve.Response(405, b"", content_type="text/plain")
        name = request.path.lstrip("/")
        with self._lock:
            self.hits[name] += 1
            data = self._files.get(name)
        if data is None:
            return httpserve.Response(404, b"no such image\n", content_type="text/plain")
        return httpserve.Response(200, data, content_type="application/octet-stream")

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
