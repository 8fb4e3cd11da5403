"""Same scenario and seed, same report (wall time aside); another seed, another run."""

import json
import subprocess
import sys

from metalcubed.simulators.fleet import report
from tests.scenarios.conftest import LIFECYCLE, fleet, run

TEXT = fleet(
    "  - {name: pxe, count: 30, profile: edge-1u, bmc: redfish}\n"
    "  - {name: vm, count: 20, profile: generic, bmc: redfish-virtualmedia}\n",
    LIFECYCLE,
    extra="faults: {bmc: {error_rate: 0.02}, hosts: {agent_crash: 0.05}}",
)


def _without_wall(data: dict[str, object]) -> str:
    return report.dumps({k: v for k, v in data.items() if k != "wall_s"})


def test_same_seed_gives_identical_json() -> None:
    first, _ = run(TEXT, seed=11)
    second, _ = run(TEXT, seed=11)
    assert _without_wall(first) == _without_wall(second)


def test_another_seed_gives_another_run() -> None:
    first, _ = run(TEXT, seed=11)
    other, _ = run(TEXT, seed=12)
    assert first["makespan_s"] != other["makespan_s"]


CLUSTERS = fleet(
    "  - {name: vm, count: 24, profile: generic, bmc: redfish-virtualmedia}\n",
    "  - {action: enroll, at: 0s}\n",
    extra="""
clusters:
  count: 2
  replicas: 12
  image: os
  steps:
    - {name: shrink, action: scale, when: running, replicas: 2}
    - {name: teardown, action: delete, when: running}
""",
)
"""Two clusters whose MachineSets lose Machines and are then deleted: the order of their
Machines' deletion (the memory store's garbage collector) once came from a set."""


def test_hash_randomization_does_not_leak_into_results(tmp_path: object) -> None:
    """Two interpreters with different PYTHONHASHSEEDs produce the same report."""
    _same_in_two_interpreters("TEXT")


def test_cluster_runs_repeat_in_another_interpreter() -> None:
    _same_in_two_interpreters("CLUSTERS")


def _same_in_two_interpreters(text: str) -> None:
    code = (
        "import json, sys\n"
        "from tests.scenarios.conftest import run\n"
        f"from tests.scenarios.test_reproducible import {text} as TEXT, _without_wall\n"
        "sys.stdout.write(_without_wall(run(TEXT, seed=3)[0]))\n"
    )
    outputs = []
    for hash_seed in ("1", "2", "3"):
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True,
            env={"PYTHONHASHSEED": hash_seed, "PATH": "/usr/bin:/bin"},
            cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]),
        )
        outputs.append(json.loads(proc.stdout))
    assert outputs[0] == outputs[1]
