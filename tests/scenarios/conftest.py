"""Helpers for scenario tests: build a scenario from YAML text, run it, get the report."""

from typing import Any

from metalcubed.simulators.fleet import report, scenario, simulation


def run(text: str, *, seed: int | None = None) -> tuple[dict[str, Any], simulation.RunOutcome]:
    spec = scenario.loads(text, source="<test>")
    outcome = simulation.Simulation(spec, seed=seed).run()
    return report.build(outcome), outcome


def fleet(groups: str, workload: str, *, extra: str = "") -> str:
    """A scenario with the given groups and workload sections (indented YAML bodies)."""
    return f"""
name: test
time_limit: 2d
images:
  os:
    url: http://images.example.com/os.raw
    checksum: http://images.example.com/os.raw.sha256sum
    size: 1GiB
groups:
{groups}
workload:
{workload}
{extra}
"""


LIFECYCLE = """
  - {action: enroll, at: 0s}
  - {action: provision, image: os, when: available}
  - {action: deprovision, when: provisioned}
"""
