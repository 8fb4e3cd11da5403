"""The agent API: the part of Ironic's v1 API a deploy agent (Ironic Python Agent) calls.

IPA, once up on a host, finds the manager at its `ipa-api-url` and speaks Ironic's wire
format (docs/agent.md has the reference):

- `GET /` and `GET /v1`: version documents; IPA reads `default_version.version` to pick
  the microversion it sends (1.67 here: agent tokens; 1.68 would make IPA switch to
  automatic TLS, which this API does not offer yet);
- `GET /v1/lookup?addresses=<mac>,...[&node_uuid=<uuid>]`: the node of these MACs, with its
  `config`: `heartbeat_timeout` and `agent_token`, handed out once (the first lookup after
  the engine booted the ramdisk; "******" afterwards, or when the token was pre-generated
  into the host's ISO); a node the engine booted no ramdisk for, and that has no token, is
  not found (Ironic's lookup-allowed states);
- `POST /v1/heartbeat/<uuid>` `{callback_url, agent_token, agent_version, ...}`: 202, or
  401 when the token is missing or wrong;
- `POST /v1/continue_inspection`: IPA's inspection data at start-up (kept for the engine,
  answered with the node's uuid), for a node the engine booted the ramdisk on.

Errors have Ironic's body, `{"error_message": {"faultstring", "faultcode", "debuginfo"}}`.
Tokens are generated here (`secrets`), compared in constant time and never logged.

`LockedNodeTable` wraps the engine's node table (core/provisioning/nodes.py) with a lock, so
the engine's workers and the HTTP threads share it.
"""

import hmac
import json
import logging
import secrets
import threading
from typing import Any

from metalcubed.controllers import httpserve
from metalcubed.core import agent, ports
from metalcubed.core.provisioning import nodes

log = logging.getLogger(__name__)

API_VERSION = "1.67"
"""The highest microversion served: IPA sends agent tokens from 1.62; from 1.68 it would
generate a TLS certificate and listen on HTTPS (automatic TLS, not offered yet)."""
MIN_API_VERSION = "1.1"
HIDDEN_TOKEN = "******"
TOKEN_BYTES = 32
"""secrets.token_urlsafe(32): 43 characters (IPA ignores tokens shorter than 32)."""


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def same_token(expected: str, presented: object) -> bool:
    """Constant-time comparison; anything but a non-empty string never matches."""
    if not isinstance(presented, str) or not presented or not expected:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


class LockedNodeTable:
    """A thread-safe `nodes.Nodes` around a `NodeTable`, with the agents' side (lookup,
    heartbeat, tokens, inspection data)."""

    def __init__(self, *, clock: ports.Clock, agent_timeout_s: float | None = None) -> None:
        self._table = nodes.NodeTable(clock=clock, agent_timeout_s=agent_timeout_s)
        self._lock = threading.Lock()
        self._inspection: dict[str, dict[str, Any]] = {}
        self.agent_timeout_s = agent_timeout_s

    # --- Nodes (the engine's side) -----------------------------------------------------------

    def get(self, node_id: str) -> nodes.Node | None:
        with self._lock:
            return self._table.get(node_id)

    def put(self, node: nodes.Node) -> None:
        with self._lock:
            self._table.put(node)

    def delete(self, node_id: str) -> None:
        with self._lock:
            self._table.delete(node_id)
            self._inspection.pop(node_id, None)

    def agent(self, node_id: str) -> agent.AgentEndpoint | None:
        with self._lock:
            return self._table.agent(node_id)

    def forget_agent(self, node_id: str) -> None:
        with self._lock:
            self._table.forget_agent(node_id)

    def nodes(self) -> list[nodes.Node]:
        with self._lock:
            return self._table.nodes()

    # --- the agents' side ----------------------------------------------------------------------

    def lookup(self, macs: list[str], bmc_address: str = "") -> str | None:
        with self._lock:
            return self._table.lookup(macs, bmc_address)

    def lookup_with_token(self, macs: list[str], node_uuid: str = "", *,
                          bmc_address: str = "", any_state: bool = False
                          ) -> tuple[str, str] | None:
        """(node id, token or "******") for an agent with these MACs, or None.

        A token is handed out only while the engine waits for an agent it booted (the node's
        record has a ramdisk wait: Ironic's lookup-allowed wait states), so that a process
        knowing a MAC cannot take the token of a host that boots no ramdisk; otherwise a node
        without a token is not found. `any_state` lifts that for in-process agents. (IPA sends
        no BMC address; in-process agents may match by it.)"""
        with self._lock:
            node_id = self._table.lookup(macs, bmc_address)
            if node_id is None and node_uuid and self._table.get(node_uuid) is not None:
                node_id = node_uuid
            if node_id is None:
                return None
            if self._table.token(node_id) is not None:
                return node_id, HIDDEN_TOKEN
            node = self._table.get(node_id)
            waiting = (node is not None and node.wait is not None
                       and node.wait.purpose in nodes.RAMDISK_PURPOSES)
            if not (waiting or any_state):
                return None
            given = self._table.take_token(node_id, new_token())
            return node_id, HIDDEN_TOKEN if given is None else given

    def expects_agent(self, node_id: str) -> bool:
        """Whether the engine waits for an agent it booted on this node."""
        with self._lock:
            node = self._table.get(node_id)
        return (node is not None and node.wait is not None
                and node.wait.purpose in nodes.RAMDISK_PURPOSES)

    def pregenerate_token(self, node_id: str) -> str | None:
        """A new token for `node_id`, to go into its boot ISO; None for an unknown node."""
        token = new_token()
        with self._lock:
            return token if self._table.pregenerate_token(node_id, token) else None

    def token_for_boot(self, node_id: str) -> str | None:
        """The token for the node's boot ISO: the one it has, else a new pre-generated one
        (the engine forgot the old token when it booted the ramdisk). None for an unknown
        node. Stable until the next boot, so every read of the ISO carries the same token."""
        fresh = new_token()
        with self._lock:
            held = self._table.token(node_id)
            if held is not None:
                return held.value
            return fresh if self._table.pregenerate_token(node_id, fresh) else None

    def token_valid(self, node_id: str, presented: object) -> bool:
        with self._lock:
            token = self._table.token(node_id)
        return token is not None and same_token(token.value, presented)

    def agent_token(self, node_id: str) -> str | None:
        """The node's token, for the engine's calls to its agent (never logged)."""
        with self._lock:
            token = self._table.token(node_id)
        return None if token is None else token.value

    def heartbeat_with_token(self, node_id: str, token: object, *, url: str) -> str:
        """"ok", "unknown" (no such node) or "token" (missing or wrong token)."""
        with self._lock:
            if self._table.get(node_id) is None:
                return "unknown"
            held = self._table.token(node_id)
            if held is None or not same_token(held.value, token):
                return "token"
            # The agent's boot: its token and callback URL (a new agent gets a new token or
            # listens elsewhere).
            boot_id = hmac.new(held.value.encode(), url.encode(), "sha256").hexdigest()[:16]
            self._table.heartbeat(node_id, url=url, boot_id=boot_id)
            return "ok"

    def put_inspection(self, node_id: str, data: dict[str, Any]) -> None:
        with self._lock:
            self._inspection[node_id] = data

    def inspection(self, node_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._inspection.get(node_id)


# --- the HTTP API ---------------------------------------------------------------------------------


def error_body(message: str, *, status: int) -> bytes:
    """Ironic's error document (IPA shows `faultstring`)."""
    return json.dumps({"error_message": {
        "faultstring": message, "faultcode": "Server" if status >= 500 else "Client",
        "debuginfo": None,
    }}).encode()


def _version_doc(url: str) -> dict[str, Any]:
    return {
        "id": "v1",
        "links": [{"href": f"{url}/v1/", "rel": "self"}],
        "status": "CURRENT",
        "min_version": MIN_API_VERSION,
        "version": API_VERSION,
    }


class IronicApi:
    """The agent API over a `LockedNodeTable`, on `host:port` (loopback by default)."""

    def __init__(self, table: LockedNodeTable, *, host: str = "127.0.0.1", port: int = 0,
                 heartbeat_timeout_s: float = 300.0, external_url: str = "") -> None:
        self.table = table
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.external_url = external_url.rstrip("/")
        self.lookups = 0
        self.heartbeats = 0
        self.refused = 0
        self._server = httpserve.HttpServer(self._handle, name="agent-api", host=host, port=port)

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> str:
        return self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def _json(self, status: int, doc: object) -> httpserve.Response:
        return httpserve.Response(status, json.dumps(doc).encode(), headers={
            "X-OpenStack-Ironic-API-Minimum-Version": MIN_API_VERSION,
            "X-OpenStack-Ironic-API-Maximum-Version": API_VERSION,
            "X-OpenStack-Ironic-API-Version": API_VERSION,
        })

    def _error(self, status: int, message: str) -> httpserve.Response:
        return httpserve.Response(status, error_body(message, status=status))

    def _handle(self, request: httpserve.Request) -> httpserve.Response:
        parts = [p for p in request.path.split("/") if p]
        base = self.external_url or self.url
        if request.method == "GET" and not parts:
            doc = _version_doc(base)
            return self._json(200, {"name": "OpenStack Ironic API",
                                    "description": "metalcubed's agent API (Ironic v1 subset)",
                                    "versions": [doc], "default_version": doc})
        if request.method == "GET" and parts == ["v1"]:
            return self._json(200, {**_version_doc(base), "media_types": [
                {"base": "application/json",
                 "type": "application/vnd.openstack.ironic.v1+json"}]})
        if request.method == "GET" and parts == ["v1", "lookup"]:
            return self._lookup(request)
        if request.method == "POST" and len(parts) == 3 and parts[:2] == ["v1", "heartbeat"]:
            return self._heartbeat(parts[2], request)
        if request.method == "POST" and parts == ["v1", "continue_inspection"]:
            return self._continue_inspection(request)
        return self._error(404, f"The resource could not be found: {request.method} "
                                f"{request.path}")

    def _lookup(self, request: httpserve.Request) -> httpserve.Response:
        self.lookups += 1
        macs = [m for v in request.query.get("addresses", []) for m in v.split(",") if m]
        node_uuid = (request.query.get("node_uuid") or [""])[0]
        if not macs and not node_uuid:
            return self._error(400, "Either addresses or node_uuid is required")
        found = self.table.lookup_with_token(macs, node_uuid)
        if found is None:
            return self._error(404, f"Node with addresses {','.join(macs)} (uuid "
                                    f"{node_uuid or 'none'}) was not found.")
        node_id, token = found
        return self._json(200, {
            "node": {"uuid": node_id, "properties": {}, "instance_info": {},
                     "driver_internal_info": {}},
            "config": {"heartbeat_timeout": self.heartbeat_timeout_s,
                       "agent_token": token, "agent_token_required": True},
        })

    def _heartbeat(self, node_id: str, request: httpserve.Request) -> httpserve.Response:
        self.heartbeats += 1
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return self._error(400, "heartbeat body is not JSON")
        if not isinstance(body, dict):
            return self._error(400, "heartbeat body must be a JSON object")
        url = body.get("callback_url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return self._error(400, "callback_url must be an http(s) URL")
        verdict = self.table.heartbeat_with_token(node_id, body.get("agent_token"), url=url)
        if verdict == "unknown":
            return self._error(404, f"Node {node_id} could not be found.")
        if verdict == "token":
            self.refused += 1
            # The token's value is never logged, only whether one came.
            log.warning("refused heartbeat for node %s from %s: %s agent token", node_id,
                        request.client,
                        "wrong" if body.get("agent_token") else "missing")
            return self._error(401, "Invalid or missing agent token received.")
        return httpserve.Response(202, b"")

    def _continue_inspection(self, request: httpserve.Request) -> httpserve.Response:
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return self._error(400, "inspection data is not JSON")
        inventory = body.get("inventory") if isinstance(body, dict) else None
        if not isinstance(inventory, dict):
            return self._error(400, "inspection data has no inventory object")
        macs = [str(i.get("mac_address") or "") for i in inventory.get("interfaces") or []
                if isinstance(i, dict)]
        node_id = self.table.lookup(macs)
        if node_id is None or not self.table.expects_agent(node_id):
            return self._error(404, "No node waiting for inspection matches the inspection "
                                    "data's MAC addresses.")
        self.table.put_inspection(node_id, body)
        return self._json(202, {"uuid": node_id})

