"""The lookup service: where agents find their node and heartbeat (Ironic's lookup API).

The engine's node table (core/provisioning/nodes.NodeTable) holds the records and the agents'
heartbeats; here it gets a lock (`LockedNodeTable`, so the engine's workers and the HTTP
threads can share it) and an HTTP front (`LookupService`) for agents on the network:

- `GET /v1/lookup?addresses=<mac>,<mac>&bmc_address=<host:port>` → 200
  `{"node": {"uuid": ...}, "config": {"heartbeat_timeout": s}}`, or 404 when no node matches;
- `POST /v1/heartbeat/<node uuid>` `{"callback_url", "agent_version", "boot_id"}` → 202, or
  404 when the node is unknown (the agent looks up again).

`HttpConductor` is the agents' client of it; `DirectConductor` gives in-process agents the same
two calls without a socket. docs/agent.md describes the protocol.
"""

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from metalcubed.controllers.lookup import DirectConductor, LockedNodeTable
from metalcubed.simulators.agent._http import JsonServer

__all__ = ["DirectConductor", "HttpConductor", "LockedNodeTable", "LookupService"]


class LookupService:
    """The HTTP lookup and heartbeat endpoints over a `LockedNodeTable`, on 127.0.0.1."""

    def __init__(self, table: LockedNodeTable, *, heartbeat_timeout_s: float = 300.0) -> None:
        self.table = table
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.lookups = 0
        self.heartbeats = 0
        self._server = JsonServer(self._route, name="lookup-service")

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> str:
        return self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any] | None
    ) -> tuple[int, object]:
        parts = [p for p in path.split("/") if p]
        if method == "GET" and parts == ["v1", "lookup"]:
            self.lookups += 1
            macs = [m for v in query.get("addresses", []) for m in v.split(",") if m]
            bmc_address = (query.get("bmc_address") or [""])[0]
            node_id = self.table.lookup(macs, bmc_address)
            if node_id is None:
                return 404, {"error": "no node matches these addresses"}
            return 200, {
                "node": {"uuid": node_id},
                "config": {"heartbeat_timeout": self.heartbeat_timeout_s},
            }
        if method == "POST" and len(parts) == 3 and parts[:2] == ["v1", "heartbeat"]:
            self.heartbeats += 1
            url, boot_id = (body or {}).get("callback_url"), (body or {}).get("boot_id", "")
            if not isinstance(url, str) or not isinstance(boot_id, str):
                return 400, {"error": "callback_url and boot_id must be strings"}
            if not url.startswith(("http://", "https://")):
                return 400, {"error": "callback_url must be an http(s) URL"}
            if not self.table.heartbeat(parts[2], url=url, boot_id=boot_id):
                return 404, {"error": f"node {parts[2]} not found"}
            return 202, {}
        return 404, {"error": f"no route for {method} {path}"}


class HttpConductor:
    """The agents' client of a `LookupService` (timeouts: 5 s; errors are OSError)."""

    def __init__(self, url: str, *, version: str = "metalcubed-agent-emulator") -> None:
        self._url = url.rstrip("/")
        self._version = version

    def lookup(self, macs: list[str], bmc_address: str) -> str | None:
        query = urllib.parse.urlencode({"addresses": ",".join(macs), "bmc_address": bmc_address})
        try:
            with urllib.request.urlopen(f"{self._url}/v1/lookup?{query}", timeout=5) as rsp:
                doc = json.loads(rsp.read(65536))
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise
        except ValueError as err:
            raise OSError(f"lookup answer is not JSON: {err}") from err
        node = doc.get("node") if isinstance(doc, dict) else None
        uuid = node.get("uuid") if isinstance(node, dict) else None
        return uuid if isinstance(uuid, str) else None

    def heartbeat(self, node_id: str, *, url: str, boot_id: str) -> bool:
        body = json.dumps(
            {"callback_url": url, "agent_version": self._version, "boot_id": boot_id}
        ).encode()
        request = urllib.request.Request(
            f"{self._url}/v1/heartbeat/{urllib.parse.quote(node_id)}", data=body, method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5):
                return True
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return False
            raise
