"""The Agent contract (core/testing/agent_contract.py) over the stock Ironic Python Agent.

The same checks the emulator and the fleet model pass, with the engine's HTTP client against
IPA 13.0.0 from PyPI (tests/ipa/rig.py): each boot forgets the node's token (as the engine
does), takes the host's deploy ISO from the boot server and starts IPA with its parameters;
a reset from outside ends the IPA process. The host's side is read from what the test's
hardware manager and stand-ins record beside the disk file: wipes, and the poweroff or reboot
IPA ran.
"""

import datetime
import hashlib
import pathlib
import socket
import time
from collections.abc import Callable

import pytest

from metalcubed.controllers import agent_client
from metalcubed.core import agent
from metalcubed.core.testing import agent_contract
from tests.ipa.rig import MIB, Ipa, World, disk_image

pytestmark = pytest.mark.ipa

WAIT_S = 60.0


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {WAIT_S:.0f} s: {what}")
        time.sleep(0.05)


def _lines(path: pathlib.Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


class TestStockIpaAgentContract(agent_contract.AgentContract):
    @pytest.fixture
    def harness(self, world: World) -> agent_contract.AgentHarness:
        disk = world.new_disk("host")
        image = disk_image()[: 8 * MIB]  # an MBR and its partition: parted validates it
        url = world.images.add("os.raw", image)
        table = world.services.table
        running: list[Ipa] = []
        boots = [0]

        def stop() -> None:
            for ipa in running:
                if ipa.process.poll() is None:
                    ipa.process.terminate()
                    ipa.process.wait(timeout=10)
            running.clear()

        def boot() -> agent.AgentEndpoint:
            stop()
            table.forget_agent(world.node_id)  # as the engine does before booting the ramdisk
            boots[0] += 1
            ipa = world.start_ipa(world.deploy_iso_params(), name=f"boot-{boots[0]}", disk=disk)
            running.append(ipa)
            url_prefix = "http://127.0.0.1:"
            found: list[agent.AgentEndpoint] = []

            def heartbeat() -> bool:
                if ipa.process.poll() is not None:
                    raise AssertionError(f"IPA exited:\n{ipa.log_tail()}")
                endpoint = table.agent(world.node_id)
                if endpoint is None or not endpoint.url.startswith(url_prefix):
                    return False
                found.append(endpoint)
                return True

            _wait_until(heartbeat, "a heartbeat from the new IPA")
            return found[-1]

        def powered_off() -> bool:
            return "poweroff" in _lines(disk.parent / "power.log") and all(
                i.process.poll() is not None for i in running)

        return agent_contract.AgentHarness(
            port=agent_client.HttpAgent(timeout_s=30),
            boot=boot,
            reboot_to_disk=stop,
            image_url=url,
            checksum=(hashlib.sha256(image).hexdigest(), "sha256"),
            macs=("52:54:00:12:34:56",),
            wipes=lambda: len(_lines(disk.parent / "wipes")),
            boots=lambda: boots[0] + _lines(disk.parent / "power.log").count("reboot"),
            powered_off=powered_off,
            nowhere=agent.AgentEndpoint(
                node_id=world.node_id, url=f"http://127.0.0.1:{_closed_port()}", boot_id="none",
                heartbeat_at=datetime.datetime.now(datetime.UTC)),
            wait_until=_wait_until,
            not_modelled=lambda reason: pytest.skip(f"not modelled: {reason}"),
        )
