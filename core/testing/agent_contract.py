"""The Agent contract: one suite every `core.agent.Agent` implementation must pass unchanged.

The engine drives deploy agents only through the Agent port (core/agent.py): the in-process
agent emulator (fleet rigs, unit tests), the HTTP client against the agent emulator's server,
and the HTTP client against a stock Ironic Python Agent must answer alike, or the engine that
works in simulation fails on a real ramdisk. This module is that promise as executable checks,
written against core/agent.py only:

- a freshly booted agent reports a stable boot id, its version and no command (the boot id
  in `status` is the agent's own, IPA's started_at, not necessarily the endpoint's); its
  inventory describes the host
  (the NICs' MACs the harness names, disks, CPU);
- clean and write-image are asynchronous commands: `start_*` returns the command (RUNNING or
  already finished), `status` reports the same command until it SUCCEEDED or FAILED; a
  successful clean wiped the disk once; a write records the image URL and checksum, and a wrong
  checksum, or an image that cannot be downloaded, FAILS with the agent's words (naming the
  image), not a raise;
- after the host reboots the old agent is gone (`AgentUnavailable`) and the next boot has a
  new boot id (and, with tokens, a new token); reboot and power off asked of the agent
  happen on the hardware;
- a command without the agent's token (or with another) is refused (`AgentError`) and does
  nothing;
- an endpoint where no agent answers is `AgentUnavailable`, never another error.

Hardware time: commands run on the agent's threads (HTTP) or inline (in-process). Every check
that waits goes through `harness.wait_until(predicate, what)`, which polls within a bound and
fails naming `what`.

Use it from a test module (pytest collects the inherited `test_*` methods):

    class TestAgentContract(agent_contract.AgentContract):
        @pytest.fixture(params=["in-process", "http"])
        def harness(self, request) -> agent_contract.AgentHarness: ...

A stock IPA harness (tests/ipa/) joins the same way: subclass AgentContract with a `harness`
fixture whose `boot` starts IPA against the lookup service and returns its endpoint.
This module imports no test framework, so core/ stays free of it.
"""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from metalcubed.core import agent
from metalcubed.core.testing.store_contract import raises

WaitUntil = Callable[[Callable[[], bool], str], None]

A = agent.CommandState


@dataclass(kw_only=True)
class AgentHarness:
    """What an implementation's fixture hands the suite: one host it can boot into the ramdisk."""

    port: agent.Agent
    boot: Callable[[], agent.AgentEndpoint]
    """Boot the host into the deploy ramdisk; the endpoint of its agent once it heartbeats."""
    reboot_to_disk: Callable[[], None]
    """Reset the host from outside (a BMC hard reset) so it boots its disk, not the ramdisk."""
    image_url: str
    """An image the agent can download."""
    checksum: tuple[str, str]
    """The image's right checksum and its type ("" to let the agent detect it)."""
    macs: tuple[str, ...]
    """The host's NIC MACs, as the inventory must report them."""
    wipes: Callable[[], int]
    """How many times the host's disks were wiped so far (hardware-side)."""
    boots: Callable[[], int]
    """How many times the host has booted so far (hardware-side)."""
    powered_off: Callable[[], bool]
    """Whether the host is off now (hardware-side)."""
    nowhere: agent.AgentEndpoint
    """An endpoint where no agent answers."""
    wait_until: WaitUntil
    not_modelled: Callable[[str], NoReturn]
    offers_power_commands: bool = True
    """Whether the agent offers reboot and power off (False: the fleet model's agent, whose
    engine never asks; the checks are reported as not modelled)."""
    checks_token: bool = True
    """Whether commands need the endpoint's agent token (Ironic's agent_secret_token, IPA
    refuses a command without it); False for an agent model with no tokens."""


def _finished(h: AgentHarness, endpoint: agent.AgentEndpoint, command_id: str
              ) -> agent.CommandStatus:
    """The command with this id, once it is no longer RUNNING."""
    seen: list[agent.CommandStatus] = []

    def done() -> bool:
        command = h.port.status(endpoint).command
        assert command is not None, "the agent forgot the command it started"
        assert command.id == command_id, f"latest command {command.id}, started {command_id}"
        seen.append(command)
        return command.state is not A.RUNNING

    h.wait_until(done, f"command {command_id} finished")
    return seen[-1]


class AgentContract:
    """The contract as pytest test methods; a subclass provides the `harness` fixture."""

    def test_a_fresh_agent_has_no_command(self, harness: AgentHarness) -> None:
        endpoint = harness.boot()
        status = harness.port.status(endpoint)
        assert status.command is None
        assert status.boot_id and status.version
        assert harness.port.status(endpoint).boot_id == status.boot_id, "boot id not stable"

    def test_inventory_describes_the_host(self, harness: AgentHarness) -> None:
        details = harness.port.inventory(harness.boot())
        assert {n.mac.lower() for n in details.nics} >= {m.lower() for m in harness.macs}
        assert details.storage and all(d.size_bytes > 0 for d in details.storage)
        assert details.cpu.arch and details.ram_mebibytes > 0

    def test_clean_runs_to_success_and_wipes_once(self, harness: AgentHarness) -> None:
        h = harness
        endpoint = h.boot()
        wipes = h.wipes()
        started = h.port.start_clean(endpoint)
        assert started.name is agent.CommandName.CLEAN_METADATA
        done = _finished(h, endpoint, started.id)
        assert (done.name, done.state, done.error) == (started.name, A.SUCCEEDED, "")
        assert h.wipes() == wipes + 1

    def test_write_image_with_its_checksum_succeeds(self, harness: AgentHarness) -> None:
        h = harness
        endpoint = h.boot()
        good, kind = h.checksum
        started = h.port.start_write_image(endpoint, agent.ImageWrite(
            url=h.image_url, checksum=good, checksum_type=kind))
        assert started.name is agent.CommandName.WRITE_IMAGE
        done = _finished(h, endpoint, started.id)
        assert done.state is A.SUCCEEDED, done.error
        assert (done.image_url, done.image_checksum) == (h.image_url, good)

    def test_write_image_with_a_wrong_checksum_fails(self, harness: AgentHarness) -> None:
        h = harness
        endpoint = h.boot()
        wrong = "0" * 64 if h.checksum[0] != "0" * 64 else "1" * 64
        started = h.port.start_write_image(endpoint, agent.ImageWrite(
            url=h.image_url, checksum=wrong, checksum_type="sha256"))
        done = _finished(h, endpoint, started.id)
        assert done.state is A.FAILED
        assert "checksum" in done.error.lower(), done.error

    def test_write_image_of_a_missing_image_fails_naming_it(self, harness: AgentHarness) -> None:
        h = harness
        endpoint = h.boot()
        missing = h.image_url.rsplit("/", 1)[0] + "/no-such-image.raw"
        started = h.port.start_write_image(endpoint, agent.ImageWrite(
            url=missing, checksum="0" * 64, checksum_type="sha256"))
        done = _finished(h, endpoint, started.id)
        assert done.state is A.FAILED
        assert missing in done.error, done.error
        assert (done.image_url, done.image_checksum) == (missing, "0" * 64)

    def test_a_second_command_follows_the_first(self, harness: AgentHarness) -> None:
        """The latest command is what status reports (the engine's record of this boot)."""
        h = harness
        endpoint = h.boot()
        first = h.port.start_clean(endpoint)
        _finished(h, endpoint, first.id)
        good, kind = h.checksum
        second = h.port.start_write_image(endpoint, agent.ImageWrite(
            url=h.image_url, checksum=good, checksum_type=kind))
        assert second.id != first.id
        assert _finished(h, endpoint, second.id).state is A.SUCCEEDED

    def test_an_agent_is_gone_after_its_host_reboots(self, harness: AgentHarness) -> None:
        h = harness
        endpoint = h.boot()
        before = h.port.status(endpoint)
        h.reboot_to_disk()
        with raises(agent.AgentUnavailable):
            h.port.status(endpoint)
        again = h.boot()
        assert again.boot_id != endpoint.boot_id
        if h.checks_token:
            assert endpoint.token and again.token != endpoint.token, "a token outlived its boot"
        assert h.port.status(again).boot_id != before.boot_id, "a new boot, the same boot id"

    def test_reboot_from_the_agent_boots_the_host_again(self, harness: AgentHarness) -> None:
        h = harness
        if not h.offers_power_commands:
            h.not_modelled("the agent offers no reboot or power off")
        endpoint = h.boot()
        boots = h.boots()
        command = h.port.start_reboot(endpoint)
        assert command.name is agent.CommandName.REBOOT
        h.wait_until(lambda: h.boots() > boots, "the host booted again")

    def test_power_off_from_the_agent_turns_the_host_off(self, harness: AgentHarness) -> None:
        h = harness
        if not h.offers_power_commands:
            h.not_modelled("the agent offers no reboot or power off")
        endpoint = h.boot()
        command = h.port.start_power_off(endpoint)
        assert command.name is agent.CommandName.POWER_OFF
        h.wait_until(h.powered_off, "the host off")
        with raises(agent.AgentUnavailable):
            h.port.status(endpoint)

    def test_a_command_without_the_agent_token_is_refused(self, harness: AgentHarness) -> None:
        h = harness
        if not h.checks_token:
            h.not_modelled("the agents have no tokens")
        endpoint = h.boot()
        wipes = h.wipes()
        for token in ("", "x" * 43):
            with raises(agent.AgentError):
                h.port.start_clean(dataclasses.replace(endpoint, token=token))
        assert h.wipes() == wipes, "a command without the right token ran"
        assert h.port.status(endpoint).command is None

    def test_no_agent_at_the_endpoint_is_unavailable(self, harness: AgentHarness) -> None:
        h = harness
        for name, call in (
            ("status", lambda: h.port.status(h.nowhere)),
            ("inventory", lambda: h.port.inventory(h.nowhere)),
            ("start_clean", lambda: h.port.start_clean(h.nowhere)),
        ):
            with raises(agent.AgentUnavailable) as caught:
                call()
            assert caught, name
