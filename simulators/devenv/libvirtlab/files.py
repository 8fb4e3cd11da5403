"""The lab's HTTP server on the isolated network's own address: what the VMs fetch and where
the provisioned OS reports back.

- `GET /files/<name>`: the files of the lab's image folder (metalcubed.ramdisk's output: the
  iPXE script DHCP names for network boots, the deploy kernel and ramdisk it loads, the deploy
  ISO sushy-tools fetches for virtual media, the OS image and its `.sha256sum`), streamed from
  disk; no listing, nothing outside the folder;
- `GET /booted?hostname=&uuid=&mac=&ip=`: the tiny OS reporting that it booted from disk and
  what its config drive named it; kept in `reports` (newest per MAC) and logged.

It listens on the bridge address only: the VMs reach it, and nothing outside this machine can.
"""

import logging
import threading
import time
from pathlib import Path

from metalcubed.controllers import httpserve

log = logging.getLogger(__name__)


class LabFiles:
    def __init__(self, host: str, port: int, folder: Path) -> None:
        self._server = httpserve.HttpServer(self._serve, name="libvirt-lab-files", host=host,
                                            port=port)
        self.folder = folder
        self._lock = threading.Lock()
        self.reports: dict[str, dict[str, str]] = {}
        """MAC -> the latest /booted query (plus `time` and `client`)."""
        self.fetched: list[str] = []

    def start(self) -> str:
        return self._server.start()

    def stop(self) -> None:
        self._server.stop()

    @property
    def url(self) -> str:
        return self._server.url

    def _serve(self, request: httpserve.Request) -> httpserve.Response:
        if request.method not in ("GET", "HEAD"):
            return httpserve.Response(405, b'{"error": "GET only"}')
        if request.path == "/booted":
            report = {k: v[0] for k, v in request.query.items() if v}
            report["time"] = f"{time.time():.1f}"
            report["client"] = request.client
            with self._lock:
                self.reports[report.get("mac", request.client).lower()] = report
            log.info("OS booted from disk: %s", report)
            return httpserve.Response(200, b"ok\n", content_type="text/plain")
        name = request.path.removeprefix("/files/")
        if name == request.path or not name or "/" in name or name.startswith("."):
            return httpserve.Response(404, b'{"error": "no such file"}')
        path = self.folder / name
        if not path.is_file():
            return httpserve.Response(404, b'{"error": "no such file"}')
        with self._lock:
            self.fetched.append(name)
        log.info("%s fetched %s", request.client, name)
        return httpserve.Response(200, content_type="application/octet-stream",
                                  stream=path.open("rb"), length=path.stat().st_size)
