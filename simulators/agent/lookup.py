"""The emulated agents' side of the agent API (Ironic's lookup and heartbeat).

The node table and the Ironic v1 API the agents call are production code
(controllers/lookup.py: `LockedNodeTable`, `IronicApi`, re-exported here as `LookupService`
for the labs). Here are the agents' clients of it, as IPA 13 calls it:

- `HttpConductor`: over HTTP, `GET /` (API version), `GET /v1/lookup?addresses=<macs>`,
  `POST /v1/heartbeat/<uuid>` with the callback URL, the agent token and the agent version;
- `DirectConductor`: the same two calls straight into a `LockedNodeTable`, for in-process
  agents (tokens are still handed out and checked; a lookup finds its node in any state,
  since an inline agent looks up within the boot, before the engine records its wait).
"""

import json
import urllib.error
import urllib.parse
import urllib.request

from metalcubed.controllers.lookup import IronicApi as LookupService
from metalcubed.controllers.lookup import LockedNodeTable
from metalcubed.simulators.agent import emulator

__all__ = ["DirectConductor", "HttpConductor", "LockedNodeTable", "LookupService"]

API_VERSION_HEADER = "X-OpenStack-Ironic-API-Version"
TOKEN_VERSION = (1, 62)


class DirectConductor:
    """In-process agents announce themselves straight into the table."""

    def __init__(self, table: LockedNodeTable) -> None:
        self._table = table

    def lookup(self, macs: list[str], bmc_address: str) -> emulator.Lookup | None:
        found = self._table.lookup_with_token(macs, bmc_address=bmc_address, any_state=True)
        return None if found is None else emulator.Lookup(*found)

    def heartbeat(self, node_id: str, *, url: str, boot_id: str, token: str) -> bool:
        verdict = self._table.heartbeat_with_token(node_id, token, url=url)
        if verdict == "token":
            raise emulator.TokenRefused(f"heartbeat for node {node_id} refused")
        return verdict == "ok"


class HttpConductor:
    """The agents' client of the Ironic API (timeouts: 5 s; errors are OSError)."""

    def __init__(self, url: str, *, version: str = emulator.VERSION) -> None:
        self._url = url.rstrip("/")
        self._version = version
        self._api_version: tuple[int, int] | None = None

    def _negotiate(self) -> tuple[int, int]:
        """The API's default version (GET /), as IPA reads it; capped at 1.68."""
        if self._api_version is None:
            with urllib.request.urlopen(f"{self._url}/", timeout=5) as rsp:
                doc = json.loads(rsp.read(65536))
            major, minor = str(doc["default_version"]["version"]).split(".")
            self._api_version = min((int(major), int(minor)), (1, 68))
        return self._api_version

    def _request(self, method: str, path: str, body: dict[str, object] | None = None,
                 ) -> tuple[int, dict[str, object]]:
        try:
            version = self._negotiate()
        except (KeyError, ValueError, TypeError) as err:
            raise OSError(f"the API's version document is unusable: {err}") from err
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self._url}{path}", data=data, method=method, headers={
            "Content-Type": "application/json", "Accept": "application/json",
            API_VERSION_HEADER: "{}.{}".format(*min(version, TOKEN_VERSION)),
        })
        try:
            with urllib.request.urlopen(request, timeout=5) as rsp:
                raw, status = rsp.read(65536), rsp.status
        except urllib.error.HTTPError as err:
            return err.code, {}
        try:
            doc = json.loads(raw) if raw else {}
        except ValueError as err:
            raise OSError(f"answer to {method} {path.split('?')[0]} is not JSON: {err}") from err
        return int(status), doc if isinstance(doc, dict) else {}

    def lookup(self, macs: list[str], bmc_address: str) -> emulator.Lookup | None:
        query = urllib.parse.urlencode({"addresses": ",".join(macs)})
        status, doc = self._request("GET", f"/v1/lookup?{query}")
        if status != 200:
            return None
        node, config = doc.get("node"), doc.get("config")
        uuid = node.get("uuid") if isinstance(node, dict) else None
        if not isinstance(uuid, str) or not isinstance(config, dict):
            return None
        token = config.get("agent_token")
        return emulator.Lookup(uuid, token if isinstance(token, str) else "")

    def heartbeat(self, node_id: str, *, url: str, boot_id: str, token: str) -> bool:
        status, _ = self._request(
            "POST", f"/v1/heartbeat/{urllib.parse.quote(node_id)}",
            {"callback_url": url, "agent_token": token, "agent_version": self._version},
        )
        if status == 404:
            return False
        if status in (401, 403):
            raise emulator.TokenRefused(f"heartbeat for node {node_id} refused")
        if status != 202:
            raise OSError(f"heartbeat for node {node_id}: HTTP {status}")
        return True
