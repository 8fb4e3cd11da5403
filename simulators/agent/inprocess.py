"""The Agent port over an `AgentEmulator` in the same process: no sockets.

For the fleet model and in-process tests: the engine talks to the emulated agents through the
same Agent port as over HTTP, and the emulator's documents go through the same parsers as the
HTTP client's (controllers/agent_client.py), so both paths read the same protocol. Endpoints
carry `inproc://<boot id>` URLs (the emulator's default when no HTTP server runs).
"""

from metalcubed.controllers import agent_client
from metalcubed.core import agent
from metalcubed.core.api import hardwaredata as hwd
from metalcubed.simulators.agent.emulator import AgentEmulator, Refused


class InProcessAgent:
    """`core.agent.Agent` over an emulator's agents."""

    def __init__(self, emulator: AgentEmulator) -> None:
        self._emulator = emulator
        self.requests = 0

    def _agent_id(self, endpoint: agent.AgentEndpoint, operation: str) -> str:
        self.requests += 1
        prefix = "inproc://"
        if not endpoint.url.startswith(prefix):
            raise agent.AgentUnavailable(endpoint.url, operation, "not an in-process agent")
        return endpoint.url[len(prefix):]

    def _refused(self, endpoint: agent.AgentEndpoint, operation: str, err: Refused
                 ) -> agent.AgentUnavailable | agent.AgentError:
        if err.status == 404:
            return agent.AgentUnavailable(endpoint.url, operation, err.message)
        return agent.AgentError(endpoint.url, operation, f"HTTP {err.status}: {err.message}")

    def status(self, endpoint: agent.AgentEndpoint) -> agent.AgentStatus:
        agent_id = self._agent_id(endpoint, "get status")
        try:
            doc = self._emulator.status(agent_id)
        except Refused as err:
            raise self._refused(endpoint, "get status", err) from err
        return agent_client.parse_status(doc, url=endpoint.url)

    def inventory(self, endpoint: agent.AgentEndpoint) -> hwd.HardwareDetails:
        agent_id = self._agent_id(endpoint, "get inventory")
        try:
            doc = self._emulator.inventory(agent_id)
        except Refused as err:
            raise self._refused(endpoint, "get inventory", err) from err
        return agent_client.parse_inventory(doc, url=endpoint.url)

    def _start(self, endpoint: agent.AgentEndpoint, name: agent.CommandName,
               params: dict[str, object]) -> agent.CommandStatus:
        operation = f"start {name.value}"
        agent_id = self._agent_id(endpoint, operation)
        try:
            doc = self._emulator.start_command(agent_id, name.value, dict(params))
        except Refused as err:
            raise self._refused(endpoint, operation, err) from err
        return agent_client.parse_command(doc, url=endpoint.url, operation=operation)

    def start_clean(self, endpoint: agent.AgentEndpoint) -> agent.CommandStatus:
        return self._start(endpoint, agent.CommandName.CLEAN_METADATA, {})

    def start_write_image(self, endpoint: agent.AgentEndpoint, image: agent.ImageWrite
                          ) -> agent.CommandStatus:
        return self._start(endpoint, agent.CommandName.WRITE_IMAGE,
                           agent_client.write_image_params(image))

    def start_power_off(self, endpoint: agent.AgentEndpoint) -> agent.CommandStatus:
        return self._start(endpoint, agent.CommandName.POWER_OFF, {})

    def start_reboot(self, endpoint: agent.AgentEndpoint) -> agent.CommandStatus:
        return self._start(endpoint, agent.CommandName.REBOOT, {})
