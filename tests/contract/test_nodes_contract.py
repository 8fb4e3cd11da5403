"""The Nodes contract (core/testing/nodes_contract.py) over every implementation of the
engine's node-record port:

- memory: `NodeTable` (the fleet model and in-process rigs), with and without an agent timeout;
- locked: `controllers/lookup.py` `LockedNodeTable` (what the manager's agent API serves), its
  agents heartbeating the way the Ironic agent API has them: lookup by MAC for a token (handed
  out only while the record shows a ramdisk wait), then a heartbeat with it.
"""

from dataclasses import replace

import pytest

from metalcubed.controllers import lookup
from metalcubed.core import clock
from metalcubed.core.provisioning import nodes
from metalcubed.core.testing import nodes_contract

TIMEOUT_S = 300.0
MAC = "52:54:00:00:00:01"


def _memory(timeout_s: float | None) -> nodes_contract.NodesHarness:
    tick = clock.ManualClock()
    table = nodes.NodeTable(clock=tick, agent_timeout_s=timeout_s)

    def heartbeat(node_id: str, url: str) -> None:
        assert table.heartbeat(node_id, url=url, boot_id=url), "heartbeat of an unknown node"

    return nodes_contract.NodesHarness(
        table=table,
        heartbeat=heartbeat,
        advance=tick.advance,
        agent_timeout_s=timeout_s,
        now=tick.now,
    )


def _locked() -> nodes_contract.NodesHarness:
    tick = clock.ManualClock()
    table = lookup.LockedNodeTable(clock=tick, agent_timeout_s=TIMEOUT_S)

    def heartbeat(node_id: str, url: str) -> None:
        # The agent API hands a token out only while the engine waits for an agent it booted
        # (a ramdisk wait on the record, Ironic's lookup-allowed states): record that wait for
        # the lookup, as the engine does when it boots the ramdisk, then put the record back.
        record = table.get(node_id)
        assert record is not None, "heartbeat of an unknown node"
        if table.agent_token(node_id) is None:
            table.put(replace(record, wait=nodes.Wait(purpose=nodes.Purpose.DEPLOY,
                                                      since=tick.now())))
        found = table.lookup_with_token([MAC])
        table.put(record)
        assert found is not None and found[0] == node_id, "the agent's lookup found no node"
        token = table.agent_token(node_id)
        assert token is not None
        assert table.heartbeat_with_token(node_id, token, url=url) == "ok"

    return nodes_contract.NodesHarness(table=table, heartbeat=heartbeat, advance=tick.advance,
                                       agent_timeout_s=TIMEOUT_S, now=tick.now)


class TestNodesContract(nodes_contract.NodesContract):
    @pytest.fixture(params=["memory", "memory-no-timeout", "locked"])
    def harness(self, request: pytest.FixtureRequest) -> nodes_contract.NodesHarness:
        if request.param == "memory":
            return _memory(TIMEOUT_S)
        if request.param == "memory-no-timeout":
            return _memory(None)
        return _locked()
