"""Properties of the lifecycle table itself, and that the published diagram matches it."""

import collections
import importlib.util
import pathlib

import pytest

from metalcubed.core import fsm, outcome
from metalcubed.core.api import baremetalhost as bmh

S = bmh.ProvisioningState


def _reachable(start: S) -> set[S]:
    graph = collections.defaultdict(set)
    for (src, _event), dst in fsm.TRANSITIONS.items():
        graph[src].add(dst)
    seen, todo = {start}, [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_every_state_is_in_the_table() -> None:
    assert set(fsm.STATES) == set(S)


def test_every_state_is_reachable_from_the_initial_state() -> None:
    # match profile and ready are legacy values: reachable only through restored status.
    assert _reachable(S.NONE) | {S.MATCH_PROFILE, S.READY} == set(S)


@pytest.mark.parametrize(
    "state", [s for s in S if s != S.DELETING], ids=lambda s: s.value or "none"
)
def test_every_state_has_a_path_to_deleting(state: S) -> None:
    assert S.DELETING in _reachable(state)


def test_illegal_transition_raises() -> None:
    with pytest.raises(outcome.IllegalTransition) as err:
        fsm.advance(S.PROVISIONED, fsm.Event.INSPECT)
    assert err.value.state == "provisioned" and err.value.event == "inspect"


def test_capacity_states_are_upstreams() -> None:
    assert {s for s in S if fsm.needs_capacity(s)} == {
        S.INSPECTING,
        S.PROVISIONING,
        S.DEPROVISIONING,
    }


def test_published_diagram_matches_the_table() -> None:
    path = pathlib.Path(__file__).parents[3] / "docs" / "gen_lifecycle.py"
    spec = importlib.util.spec_from_file_location("gen_lifecycle", path)
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    text = gen.DOC.read_text()
    assert gen.render(text) == text, "docs/lifecycle.md is stale: run python docs/gen_lifecycle.py"
    for (_src, event), dst in fsm.TRANSITIONS.items():
        assert f"| {event.value} | `{dst.value}` |" in text
