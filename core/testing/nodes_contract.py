"""The Nodes contract: one suite every `core.provisioning.nodes.Nodes` implementation must pass.

The engine's only memory is its node records (identity, what the disk holds, what it waits
for) and the agents' heartbeats, behind the `Nodes` port. The memory table the fleet model
uses, the locked table the manager serves agents from, and any persisted table must behave
alike, or a restart or a runtime switch changes what the engine decides. Written against the
port only:

- `get` of an unknown node is None; `put` then `get` returns the record; a `put` replaces the
  whole record; `delete` forgets it and is a no-op when absent;
- `agent` is None until an agent heartbeats, then the endpoint of the latest heartbeat;
  `forget_agent` drops it (and is a no-op when there is none); `delete` drops it too; a
  heartbeat older than the implementation's agent timeout is not alive.

Heartbeats are not part of the port (they come in through the agent API), so the harness says
how an agent of a node heartbeats, and how to let time pass.
This module imports no test framework, so core/ stays free of it.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from metalcubed.core.provisioning import nodes


@dataclass(kw_only=True)
class NodesHarness:
    table: nodes.Nodes
    heartbeat: Callable[[str, str], None]
    """heartbeat(node_id, url): an agent of the node heartbeats from `url` (a new agent each
    time the url changes)."""
    advance: Callable[[float], object]
    """Let this many seconds pass on the table's clock."""
    agent_timeout_s: float | None
    """After this long without a heartbeat an agent is not alive; None: no timeout."""
    now: Callable[[], datetime]


def _node(node_id: str = "node-1", **changes: object) -> nodes.Node:
    node = nodes.Node(node_id=node_id, name="contract~host-1", bmc_address="192.0.2.1:623",
                      macs=("52:54:00:00:00:01",))
    return replace(node, **changes)  # type: ignore[arg-type]


class NodesContract:
    """The contract as pytest test methods; a subclass provides the `harness` fixture."""

    def test_an_unknown_node_has_no_record_and_no_agent(self, harness: NodesHarness) -> None:
        assert harness.table.get("unknown") is None
        assert harness.table.agent("unknown") is None

    def test_put_then_get_returns_the_record(self, harness: NodesHarness) -> None:
        node = _node()
        harness.table.put(node)
        assert harness.table.get(node.node_id) == node

    def test_put_replaces_the_whole_record(self, harness: NodesHarness) -> None:
        t = harness.table
        since = harness.now()
        t.put(_node(deployed=nodes.Deployment(image_url="http://images/os.raw"),
                    wait=nodes.Wait(purpose=nodes.Purpose.DEPLOY, since=since)))
        replaced = _node(macs=("52:54:00:00:00:02",))
        t.put(replaced)
        assert t.get(replaced.node_id) == replaced

    def test_delete_forgets_the_record_and_again_is_a_no_op(self, harness: NodesHarness) -> None:
        t = harness.table
        t.put(_node())
        t.delete("node-1")
        assert t.get("node-1") is None
        t.delete("node-1")
        t.delete("never-there")
        assert t.get("node-1") is None

    def test_agent_is_the_latest_heartbeat(self, harness: NodesHarness) -> None:
        h = harness
        h.table.put(_node())
        assert h.table.agent("node-1") is None
        h.heartbeat("node-1", "http://192.0.2.10:9999")
        first = h.table.agent("node-1")
        assert first is not None and first.node_id == "node-1"
        assert first.url == "http://192.0.2.10:9999"
        h.heartbeat("node-1", "http://192.0.2.11:9999")
        latest = h.table.agent("node-1")
        assert latest is not None and latest.url == "http://192.0.2.11:9999"
        assert latest.boot_id != first.boot_id, "a new agent kept the old agent's boot id"

    def test_forget_agent_drops_the_endpoint_and_keeps_the_record(
        self, harness: NodesHarness
    ) -> None:
        h = harness
        node = _node()
        h.table.put(node)
        h.heartbeat("node-1", "http://192.0.2.10:9999")
        h.table.forget_agent("node-1")
        assert h.table.agent("node-1") is None
        assert h.table.get("node-1") == node
        h.table.forget_agent("node-1")
        h.table.forget_agent("never-there")

    def test_delete_drops_the_agent(self, harness: NodesHarness) -> None:
        h = harness
        h.table.put(_node())
        h.heartbeat("node-1", "http://192.0.2.10:9999")
        h.table.delete("node-1")
        assert h.table.agent("node-1") is None
        h.table.put(_node())  # registered again: the old agent does not come back
        assert h.table.agent("node-1") is None

    def test_an_agent_without_heartbeats_dies_after_the_timeout(
        self, harness: NodesHarness
    ) -> None:
        h = harness
        h.table.put(_node())
        h.heartbeat("node-1", "http://192.0.2.10:9999")
        if h.agent_timeout_s is None:
            h.advance(24 * 3600.0)
            assert h.table.agent("node-1") is not None, "no timeout, yet the agent died"
            return
        h.advance(h.agent_timeout_s / 2)
        assert h.table.agent("node-1") is not None, "the agent died before its timeout"
        h.advance(h.agent_timeout_s)
        assert h.table.agent("node-1") is None, "the agent outlived its timeout"
