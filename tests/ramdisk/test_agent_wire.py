"""The in-VM agent's command API on the host (it is standard-library Python): the engine's
client (controllers/agent_client.py) parses what it serves, and it refuses what IPA refuses.
Fast; the whole life in a VM is test_qemu_boot.py."""

import importlib.util
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from types import ModuleType

import pytest

from metalcubed.controllers import agent_client
from metalcubed.core import agent
from metalcubed.ramdisk import build

TOKEN = "t" * 43


@pytest.fixture(scope="module")
def module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ramdisk_agent", build.FILES / "agent.py")
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


@pytest.fixture
def endpoint(module: ModuleType) -> Iterator[agent.AgentEndpoint]:
    module.Handler.agent = module.Agent({"ipa-agent-token": TOKEN})
    server = module.Server(("127.0.0.1", 0), module.Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield agent.AgentEndpoint(node_id="n1", url=f"http://127.0.0.1:{server.server_port}",
                                  boot_id="", heartbeat_at=datetime.now(UTC), token=TOKEN)
    finally:
        server.shutdown()
        server.server_close()


def _post(url: str, doc: object) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=json.dumps(doc).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as rsp:
            return rsp.status, json.loads(rsp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_engine_reads_status_and_inventory(endpoint: agent.AgentEndpoint) -> None:
    client = agent_client.HttpAgent()
    status = client.status(endpoint)
    assert status.version == "13.0.0" and status.command is None
    details = client.inventory(endpoint)  # this host's own inventory, parsed as IPA's
    assert details.cpu.count >= 1 and details.ram_mebibytes > 0
    # get_hardware_info is a synchronous helper: the agent's state stays "no command".
    assert client.status(endpoint).command is None


def test_a_wrong_token_is_refused(endpoint: agent.AgentEndpoint) -> None:
    client = agent_client.HttpAgent()
    stolen = agent.AgentEndpoint(node_id="n1", url=endpoint.url, boot_id="",
                                 heartbeat_at=endpoint.heartbeat_at, token="x" * 43)
    with pytest.raises(agent.AgentError, match=r"HTTP 401: Token invalid\."):
        client.inventory(stolen)


@pytest.mark.parametrize(("name", "params", "status", "message"), [
    ("standby.prepare_image", {"image_info": {"id": "i", "urls": ["http://h/i.img"]}}, 400,
     "Image checksum is not available"),
    ("standby.prepare_image", {"image_info": {"id": "i"}}, 400, "missing the 'urls' field"),
    ("standby.cache_image", {}, 404, "Command not found: standby.cache_image"),
])
def test_bad_commands_get_ipa_errors(endpoint: agent.AgentEndpoint, name: str,
                                     params: dict[str, object], status: int,
                                     message: str) -> None:
    code, body = _post(f"{endpoint.url}/v1/commands/?agent_token={TOKEN}",
                       {"name": name, "params": params})
    assert code == status and message in str(body["faultstring"])
    assert agent_client.HttpAgent().status(endpoint).command is None  # nothing started


def test_an_unsupported_clean_step_fails_naming_it(endpoint: agent.AgentEndpoint) -> None:
    code, body = _post(f"{endpoint.url}/v1/commands/?agent_token={TOKEN}&wait=true", {
        "name": "clean.execute_clean_step",
        "params": {"step": {"step": "create_configuration", "interface": "raid"}}})
    assert code == 200 and body["command_status"] == "FAILED"
    error = body["command_error"]
    assert isinstance(error, dict) and "create_configuration" in error["details"]
