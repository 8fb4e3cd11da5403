"""The Agent port over an `AgentEmulator` in the same process: no sockets.

For in-process tests: the engine talks to the emulated agents through the HTTP client of
controllers/agent_client.py with its transport replaced by a direct call of the emulator's
routes (server.route), so both paths speak exactly the same protocol (IPA's command API).
Endpoints carry `inproc://<agent id>` URLs (the emulator's default when no HTTP server runs).
"""

import json
import urllib.parse

from metalcubed.controllers import agent_client
from metalcubed.simulators.agent import server
from metalcubed.simulators.agent.emulator import AgentEmulator


class InProcessAgent(agent_client.HttpAgent):
    """`core.agent.Agent` over an emulator's agents."""

    def __init__(self, emulator: AgentEmulator) -> None:
        super().__init__()
        self._emulator = emulator
        self.requests = 0

    def _send(self, method: str, url: str, data: bytes | None) -> tuple[int, bytes]:
        self.requests += 1
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "inproc":
            raise OSError(f"{url.split('?')[0]} is not an in-process agent")
        body = json.loads(data) if data else None
        status, doc = server.route(self._emulator, method, f"/agents/{parsed.netloc}{parsed.path}",
                                   urllib.parse.parse_qs(parsed.query), body)
        return status, json.dumps(doc).encode()
