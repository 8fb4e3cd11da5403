"""The agents' API over HTTP: every emulated agent of an `AgentEmulator`, on one loopback port.

An agent's callback URL is `http://127.0.0.1:<port>/agents/<boot id>`; under it:

- `GET  .../v1/status` → `{"boot_id", "version", "node_uuid", "started_at", "command"}` (the
  latest command, or null);
- `GET  .../v1/commands` → `{"commands": [...]}` (oldest first), `GET .../v1/commands/<id>`;
- `POST .../v1/commands` `{"name": ..., "params": {...}}` → 202 with the command; 409 while
  another command runs, 400 for an unknown command or bad params;
- `GET  .../v1/inventory` → `{"inventory": {...}}` (IPA's inventory document).

An agent whose host rebooted or powered off answers 404 (it is gone). docs/agent.md has the
payloads.
"""

from typing import Any

from metalcubed.simulators.agent._http import JsonServer
from metalcubed.simulators.agent.emulator import AgentEmulator, Refused


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
        parts = [p for p in path.split("/") if p]
        if len(parts) < 4 or parts[0] != "agents" or parts[2] != "v1":
            return 404, {"error": f"no route for {method} {path}"}
        agent_id, rest = parts[1], parts[3:]
        em = self.emulator
        try:
            if method == "GET" and rest == ["status"]:
                return 200, em.status(agent_id)
            if method == "GET" and rest == ["inventory"]:
                return 200, em.inventory(agent_id)
            if method == "GET" and rest == ["commands"]:
                return 200, em.commands(agent_id)
            if method == "GET" and len(rest) == 2 and rest[0] == "commands":
                for command in em.commands(agent_id)["commands"]:
                    if command["id"] == rest[1]:
                        return 200, command
                return 404, {"error": f"no command {rest[1]}"}
            if method == "POST" and rest == ["commands"]:
                doc = body or {}
                name, params = doc.get("name"), doc.get("params", {})
                if not isinstance(name, str) or not isinstance(params, dict):
                    return 400, {"error": "name must be a string and params an object"}
                return 202, em.start_command(agent_id, name, params)
        except Refused as refused:
            return refused.status, {"error": refused.message}
        return 404, {"error": f"no route for {method} {path}"}
