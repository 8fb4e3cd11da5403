"""The agents' API over HTTP: every emulated agent of an `AgentEmulator`, on one loopback port.

An agent's callback URL is `http://127.0.0.1:<port>/agents/<agent id>`; under it, IPA's API
(docs/agent.md):

- `GET  .../v1/status` → `{"started_at", "version"}`;
- `GET  .../v1/commands/?agent_token=T` → `{"commands": [...]}` (oldest first);
- `GET  .../v1/commands/<id>?agent_token=T[&wait=true]`;
- `POST .../v1/commands/?agent_token=T[&wait=true]` `{"name": "<ext>.<command>", "params":
  {...}}` → the command result; 401 without the agent's token, 409 while another command
  runs, 400 for bad params, 404 for an unknown extension.

Errors have IPA's body, `{"faultcode", "faultstring"}`. An agent whose host rebooted or powered
off answers 404 (it is gone). `route` is the same API without a socket (inprocess.py).
"""

from typing import Any

from metalcubed.simulators.agent._http import JsonServer
from metalcubed.simulators.agent.emulator import AgentEmulator, Refused


def _fault(status: int, message: str) -> tuple[int, object]:
    return status, {"faultcode": "Server" if status >= 500 else "Client", "faultstring": message}


def route(em: AgentEmulator, method: str, path: str, query: dict[str, list[str]],
          body: dict[str, Any] | None) -> tuple[int, object]:
    parts = [p for p in path.split("/") if p]
    if len(parts) < 3 or parts[0] != "agents" or parts[2] != "v1":
        return _fault(404, f"The resource could not be found: {method} {path}")
    agent_id, rest = parts[1], parts[3:]
    tokens = query.get("agent_token")
    token = tokens[0] if tokens else None
    wait = (query.get("wait") or [""])[0].lower() == "true"
    try:
        if method == "GET" and rest == ["status"]:
            return 200, em.status(agent_id)
        if method == "GET" and rest == ["commands"]:
            return 200, em.commands(agent_id, token)
        if method == "GET" and len(rest) == 2 and rest[0] == "commands":
            return 200, em.command(agent_id, rest[1], token, wait=wait)
        if method == "POST" and rest == ["commands"]:
            doc = body or {}
            name, params = doc.get("name"), doc.get("params")
            if not isinstance(name, str) or not isinstance(params, dict):
                return _fault(400, "Missing or invalid name or params")
            return 200, em.start_command(agent_id, name, params, token, wait=wait)
    except Refused as refused:
        return _fault(refused.status, refused.message)
    return _fault(404, f"The resource could not be found: {method} {path}")


class AgentServer:
    def __init__(self, emulator: AgentEmulator) -> None:
        self.emulator = emulator
        self.requests = 0
        self._server = JsonServer(self._route, name="agent-api")

    def start(self) -> str:
        url = self._server.start()
        self.emulator.url_for = lambda agent_id: f"{url}/agents/{agent_id}"
        return url

    def stop(self) -> None:
        self._server.stop()

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any] | None
    ) -> tuple[int, object]:
        self.requests += 1
        return route(self.emulator, method, path, query, body)
