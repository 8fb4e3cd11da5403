"""A fault campaign in the normal suite: many seeds of faults-1000 at a few hundred hosts.

Each seed is a different interleaving of BMC errors, agent crashes and dead hosts through the
reconciler and provisioning engine that ship; none may break an invariant (illegal
transition, host lost or unsettled, host consumed twice, counters that disagree with the
store) or raise an exception that is not a MetalcubedError (a bug). Two seeds are run twice and
must give identical reports. 12 seeds x 200 hosts and 2 reruns: about a minute of CPU.
benchmarks/campaign.py runs the large campaign (100 seeds x 1,000 hosts) the same way.
"""

from typing import Any

import pytest

from benchmarks import campaign

HOSTS = 200
SEEDS = tuple(range(101, 113))
RERUN = (101, 107)

_runs: dict[int, dict[str, Any]] = {}


def _run(seed: int) -> dict[str, Any]:
    if seed not in _runs:
        _runs[seed] = campaign.run_seed(seed, HOSTS)
    return _runs[seed]


@pytest.mark.parametrize("seed", SEEDS)
def test_no_seed_breaks_an_invariant(seed: int) -> None:
    data = _run(seed)
    assert data["hosts"] == HOSTS
    assert campaign.verdict(data) == []
    assert data["invariants"]["count"] == 0
    # The faults happened: the campaign is not a fault-free run in disguise.
    assert data["errors_by_type"] or data["controller"]["errors"]


@pytest.mark.parametrize("seed", RERUN)
def test_same_seed_gives_an_identical_report(seed: int) -> None:
    assert campaign.comparable(campaign.run_seed(seed, HOSTS)) == campaign.comparable(_run(seed))


def test_the_seeds_are_different_runs() -> None:
    makespans = {_run(seed)["makespan_s"] for seed in SEEDS}
    assert len(makespans) > len(SEEDS) // 2
