"""The boot server: what BMCs fetch for virtual-media hosts, over HTTP.

Per-host paths start with a random key made at start-up (`/boot/<key>/...`): the engine hands
the URL to the BMC, and nothing on the hosts' network can guess it to take a host's token.

- `GET /boot/<key>/<node id>/deploy.iso`: the host's own deploy ISO, built on the first
  request of a boot from the deploy kernel and ramdisk (DEPLOY_KERNEL_URL, DEPLOY_RAMDISK_URL)
  with the agent's parameters on its kernel command line: `ipa-api-url`, a pre-generated
  `ipa-agent-token` (recorded in the node table; a new one after the engine forgot the old
  one as it booted the ramdisk), `boot_method=vmedia`, as Ironic builds it for
  redfish-virtual-media. The same file answers every request of that boot, byte ranges
  included (BMCs read virtual media piecewise). A host whose PreprovisioningImage names
  network data gets it in its ISO as `metal3/nmstate.yaml` (`set_network_data`; a new version
  rebuilds the ISO): the URL is the PreprovisioningImage's status.imageUrl; until that network
  data is there, the ISO of a host that names some answers 503 (Retry-After 5), so the host
  does not boot a ramdisk without its static network;
- `GET /boot/<key>/<node id>/parameters.img`: the same parameters on an `ir-vfd-dev` image, for a
  prebuilt deploy ISO (DEPLOY_ISO_URL) whose command line cannot carry them; IPA reads it
  when booted with `boot_method=vmedia`;
- `GET /files/<name>`: static files from a directory (e.g. OS images), no directory listing,
  no path outside it.

The kernel and ramdisk are fetched once into a temporary directory; ISOs are built into
temporary files and streamed: a large ramdisk is never held in memory, per host or at all.
Failures answer with a JSON `{"error": ...}` naming what failed: 404 for an unknown node or
file, 424 when the kernel or ramdisk cannot be fetched, 422 when the ISO cannot be built.
Client errors on purpose: a BMC reports them as a failed insert (the host shows an error),
where a 5xx would be retried as a passing fault for ever. Token values are never logged.
"""

import hmac
import json
import logging
import mimetypes
import pathlib
import secrets
import tempfile
import threading
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from metalcubed.controllers import bootiso, httpserve, lookup

log = logging.getLogger(__name__)

MAX_DEPLOY_FILE = 2 * 1024 * 1024 * 1024
Fetch = Callable[[str], Iterable[bytes]]
"""The chunks of a URL's content; FetchError when it cannot be had."""


class FetchError(Exception):
    pass


def http_fetch(url: str) -> Iterator[bytes]:
    """GET `url` in chunks (kernel, ramdisk); FetchError names the URL and what went wrong."""
    try:
        with urllib.request.urlopen(url, timeout=60) as rsp:
            while chunk := rsp.read(1024 * 1024):
                yield chunk
    except urllib.error.HTTPError as err:
        raise FetchError(f"GET {url}: HTTP {err.code}") from err
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise FetchError(f"GET {url}: {getattr(err, 'reason', err)}") from err


def deploy_iso_path(key: str, node_id: str) -> str:
    return f"/boot/{key}/{node_id}/deploy.iso"


class BootServer:
    def __init__(
        self,
        *,
        table: lookup.LockedNodeTable,
        host: str = "127.0.0.1",
        port: int = 0,
        static_dir: Path | None = None,
        deploy_iso_url: str = "",
        deploy_kernel_url: str = "",
        deploy_ramdisk_url: str = "",
        deploy_bootloader_url: str = "",
        api_url: str = "",
        extra_params: dict[str, str] | None = None,
        fetch: Fetch = http_fetch,
        max_isos: int = 32,
    ) -> None:
        self.table = table
        self.static_dir = static_dir.resolve() if static_dir is not None else None
        self.deploy_iso_url = deploy_iso_url
        self.deploy_kernel_url = deploy_kernel_url
        self.deploy_ramdisk_url = deploy_ramdisk_url
        self.deploy_bootloader_url = deploy_bootloader_url
        """An EFI system partition image: the per-host ISOs' UEFI boot image ("" for none)."""
        self.api_url = api_url
        """ipa-api-url written into ISOs (set by EngineServices once the API listens)."""
        self.external_url = ""
        """The URL BMCs use ("" means the listen URL)."""
        self.extra_params = dict(extra_params or {})
        self._fetch = fetch
        self._cache: dict[str, pathlib.Path] = {}
        self._cache_lock = threading.Lock()
        self._cache_dir: tempfile.TemporaryDirectory[str] | None = None
        self._isos: OrderedDict[str, tuple[str, str, pathlib.Path]] = OrderedDict()
        """node id -> (token, network data version, ISO file)."""
        self._network: dict[str, tuple[str, bytes]] = {}
        """node id -> (version, nmstate YAML) of its PreprovisioningImage (set_network_data)."""
        self.network_data_name: Callable[[str], str] = lambda node_name: ""
        """The network data Secret a node's host names (node name "namespace~name"); "" for
        none. Set by the manager from its host cache: such a node's ISO waits for its image."""
        self._iso_lock = threading.Lock()
        self.max_isos = max_isos
        """Per-host ISOs kept on disk (the most recently fetched); an older one is rebuilt,
        with the same token, when asked for again."""
        self.isos_built = 0
        self.key = secrets.token_urlsafe(16)
        """The per-host paths' prefix (see the module docstring)."""
        self._server = httpserve.HttpServer(self._handle, name="boot-server", host=host,
                                            port=port)

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> str:
        if self._cache_dir is None:
            self._cache_dir = tempfile.TemporaryDirectory(prefix="metalcubed-boot-")
        return self._server.start()

    def stop(self) -> None:
        self._server.stop()
        if self._cache_dir is not None:
            self._cache_dir.cleanup()
            self._cache_dir = None
        with self._cache_lock:
            self._cache.clear()

    def deploy_iso_url_template(self) -> str:
        """The engine's deploy ISO URL: per host (`{node_id}`) when the server builds ISOs,
        else the prebuilt DEPLOY_ISO_URL."""
        if self.deploy_kernel_url and self.deploy_ramdisk_url:
            base = (self.external_url or self.url).rstrip("/")
            return base + deploy_iso_path(self.key, "{node_id}")
        return self.deploy_iso_url

    def set_network_data(self, node_id: str, version: str, nmstate: bytes) -> None:
        """Build the node's next deploy ISOs with this network configuration (the
        PreprovisioningImage controller, through controllers/imageprovider.py)."""
        with self._iso_lock:
            self._network[node_id] = (version, nmstate)

    def forget_network_data(self, node_id: str) -> None:
        with self._iso_lock:
            self._network.pop(node_id, None)

    def network_data_version(self, node_id: str) -> str | None:
        with self._iso_lock:
            found = self._network.get(node_id)
        return None if found is None else found[0]

    def agent_params(self, token: str) -> dict[str, str]:
        """The kernel parameters IPA needs to find the manager (as Ironic passes them)."""
        return {
            "ipa-api-url": self.api_url,
            "ipa-agent-token": token,
            "boot_method": "vmedia",
            "ipa-inspection-collectors": "default",
            **self.extra_params,
        }

    # --- HTTP ------------------------------------------------------------------------------------

    def _error(self, status: int, message: str) -> httpserve.Response:
        return httpserve.Response(status, json.dumps({"error": message}).encode())

    def _handle(self, request: httpserve.Request) -> httpserve.Response:
        if request.method not in ("GET", "HEAD"):
            return self._error(405, f"{request.method} is not allowed")
        parts = [p for p in request.path.split("/") if p]
        if len(parts) == 4 and parts[0] == "boot" and hmac.compare_digest(parts[1], self.key):
            node_id, name = parts[2], parts[3]
            if name == "deploy.iso":
                return self._deploy_iso(node_id, request)
            if name == "parameters.img":
                return self._parameters(node_id)
        if len(parts) == 2 and parts[0] == "files":
            return self._file(parts[1], request)
        return self._error(404, "nothing at this path")  # the path may hold the key

    def _deploy_iso(self, node_id: str, request: httpserve.Request) -> httpserve.Response:
        if not (self.deploy_kernel_url and self.deploy_ramdisk_url):
            return self._error(404, "no per-host deploy ISOs: DEPLOY_KERNEL_URL and "
                                    "DEPLOY_RAMDISK_URL are not set")
        node = self.table.get(node_id)
        if node is None:
            return self._error(404, f"node {node_id} is not registered")
        if self.network_data_name(node.name) and self.network_data_version(node_id) is None:
            # Its PreprovisioningImage is not built yet: a ramdisk without the host's static
            # network would never call back. 503: the BMC's insert fails as a passing fault,
            # the engine retries it shortly (as upstream's host waits for the image).
            return httpserve.Response(503, json.dumps({
                "error": f"the PreprovisioningImage of node {node_id} ({node.name}) is not "
                         "built yet"}).encode(), headers={"Retry-After": "5"})
        try:
            kernel = self._cached(self.deploy_kernel_url)
            ramdisk = self._cached(self.deploy_ramdisk_url)
            esp = (self._cached(self.deploy_bootloader_url) if self.deploy_bootloader_url
                   else None)
        except FetchError as err:
            log.warning("deploy ISO for node %s: cannot fetch the deploy kernel, ramdisk or "
                        "bootloader: %s", node_id, err)
            return self._error(424, f"cannot build the deploy ISO: {err}")
        token = self.table.token_for_boot(node_id)
        if token is None:
            return self._error(404, f"node {node_id} is not registered")
        with self._iso_lock:
            cached = self._isos.get(node_id)
            version, nmstate = self._network.get(node_id, ("", b""))
            if (cached is not None and hmac.compare_digest(cached[0], token)
                    and cached[1] == version):
                self._isos.move_to_end(node_id)
                path = cached[2]
            else:
                try:
                    path = self._build_iso(token, kernel, ramdisk, esp, nmstate)
                except bootiso.IsoError as err:
                    log.warning("deploy ISO for node %s: %s", node_id, err)
                    return self._error(422, f"cannot build the deploy ISO: {err}")
                if cached is not None:
                    cached[2].unlink(missing_ok=True)  # readers keep their open file
                self._isos[node_id] = (token, version, path)
                while len(self._isos) > self.max_isos:
                    _, (_, _, old) = self._isos.popitem(last=False)
                    old.unlink(missing_ok=True)
        return _send_file(path, request, "application/octet-stream")

    def _build_iso(self, token: str, kernel: pathlib.Path, ramdisk: pathlib.Path,
                   esp: pathlib.Path | None, nmstate: bytes = b"") -> pathlib.Path:
        """Write an ISO into the cache directory (on disk: pycdlib seeks ahead, and in memory
        that gap would be allocated whole)."""
        if self._cache_dir is None:
            raise bootiso.IsoError("the boot server is not running")
        self.isos_built += 1
        path = pathlib.Path(self._cache_dir.name) / f"iso-{self.isos_built}.iso"
        try:
            with path.open("wb") as out:
                bootiso.deploy_iso(kernel=kernel, ramdisk=ramdisk, esp=esp,
                                   params=self.agent_params(token), out=out,
                                   extra_files={bootiso.NMSTATE_FILE: nmstate} if nmstate
                                   else None)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def _parameters(self, node_id: str) -> httpserve.Response:
        token = self.table.token_for_boot(node_id)
        if token is None:
            return self._error(404, f"node {node_id} is not registered")
        try:
            image = bootiso.parameters_image(self.agent_params(token))
        except bootiso.IsoError as err:
            return self._error(422, f"cannot build the parameters image: {err}")
        return httpserve.Response(200, image, content_type="application/octet-stream")

    def _cached(self, url: str) -> pathlib.Path:
        """The content of `url` in the cache directory, fetched once (the ramdisk is large:
        it stays on disk and each ISO build reads it from there)."""
        with self._cache_lock:
            path = self._cache.get(url)
            if path is not None:
                return path
            if self._cache_dir is None:
                raise FetchError(f"GET {url}: the boot server is not running")
            path = pathlib.Path(self._cache_dir.name) / f"{len(self._cache)}.bin"
            size = 0
            try:
                with path.open("wb") as f:
                    for chunk in self._fetch(url):
                        size += len(chunk)
                        if size > MAX_DEPLOY_FILE:
                            raise FetchError(f"GET {url}: larger than 2 GiB")
                        f.write(chunk)
            except BaseException:
                path.unlink(missing_ok=True)
                raise
            self._cache[url] = path
            return path

    def _file(self, name: str, request: httpserve.Request) -> httpserve.Response:
        if self.static_dir is None or name.startswith("."):
            return self._error(404, f"no file {name}")
        path = (self.static_dir / name).resolve()
        if path.parent != self.static_dir or not path.is_file():
            return self._error(404, f"no file {name}")
        return _send_file(path, request, mimetypes.guess_type(name)[0]
                          or "application/octet-stream")


def _send_file(path: pathlib.Path, request: httpserve.Request, kind: str
               ) -> httpserve.Response:
    """The file, or the byte range asked for (`Range: bytes=a-b`): BMCs read virtual media
    piecewise while the host boots from it."""
    size = path.stat().st_size
    start, end = 0, size - 1
    status = 200
    headers = {"Accept-Ranges": "bytes"}
    wanted = request.headers.get("range", "")
    if wanted:
        first, _, last = wanted.removeprefix("bytes=").partition("-")
        try:
            if first:
                start, end = int(first), int(last) if last else size - 1
            else:
                start, end = max(0, size - int(last)), size - 1
        except ValueError:
            start, end = size, size - 1
        end = min(end, size - 1)
        if not wanted.startswith("bytes=") or "," in wanted or start > end:
            return httpserve.Response(416, json.dumps({"error": "range not satisfiable"})
                                      .encode(), headers={"Content-Range": f"bytes */{size}"})
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    stream = path.open("rb")
    stream.seek(start)
    return httpserve.Response(status, content_type=kind, headers=headers, stream=stream,
                              length=end - start + 1)
