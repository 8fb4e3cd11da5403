"""`metalcubed sim` as CI uses it: exit codes, the JSON report's keys, plots, bad input."""

import json
from pathlib import Path

import pytest

from metalcubed.cli import main as cli

SMALL = """
name: small
time_limit: 1d
images:
  os:
    url: http://images.example.com/os.raw
    checksum: http://images.example.com/os.raw.sha256sum
    size: 1GiB
groups:
  - {name: g, count: 8, profile: vm, bmc: redfish-virtualmedia}
workload:
  - {action: enroll, at: 0s}
  - {action: provision, image: os, when: available}
slos:
  all-provisioned: {metric: final_states.provisioned, min: all}
"""


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return str(path)


def test_a_passing_run_exits_0_and_writes_the_contracted_keys(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    code = cli.main(["sim", _write(tmp_path, SMALL), "--json", str(out), "--quiet"])
    assert code == 0
    data = json.loads(out.read_text())
    for key in ("scenario", "seed", "hosts", "final_states", "makespan_s", "wall_s",
                "state_durations_s", "errors_by_type", "slo", "invariants"):
        assert key in data, key
    assert data["final_states"] == {"provisioned": 8}
    assert set(data["state_durations_s"]["inspecting"]) >= {"p50", "p95", "p99"}
    assert data["slo"]["all-provisioned"] == {
        "metric": "final_states.provisioned", "op": ">=", "target": 8.0, "actual": 8.0,
        "ok": True,
    }
    assert data["invariants"]["ok"] is True and data["invariants"]["violations"] == []


def test_a_missed_slo_exits_1(tmp_path: Path) -> None:
    text = SMALL + "  fast: {metric: makespan_s, max: 1s}\n"
    assert cli.main(["sim", _write(tmp_path, text), "--quiet"]) == 1


def test_hosts_and_seed_flags_are_applied(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    cli.main(["sim", _write(tmp_path, SMALL), "--hosts", "3", "--seed", "9", "--json",
              str(out), "--quiet"])
    data = json.loads(out.read_text())
    assert data["hosts"] == 3 and data["seed"] == 9


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (("count: 8", "count: -8"), "groups[0].count"),
        (("profile: vm", "profile: cray-1"), "groups[0].profile"),
        (("time_limit: 1d", "time_limit: -1d"), "time_limit"),
        (("time_limit: 1d", "time_limit: 1d\ncolour: blue"), "colour"),
        (("size: 1GiB", "size: lots"), "images.os.size"),
    ],
    ids=["negative count", "unknown profile", "negative duration", "unknown key", "bad size"],
)
def test_a_malformed_scenario_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: tuple[str, str], field: str
) -> None:
    code = cli.main(["sim", _write(tmp_path, SMALL.replace(*edit)), "--quiet"])
    assert code == 2
    assert field in capsys.readouterr().err


def test_p99_below_median_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = SMALL + "profiles:\n  slow: {post: {lognormal: {median: 5m, p99: 2m}}}\n"
    assert cli.main(["sim", _write(tmp_path, text)]) == 2
    assert "profiles.slow.post.lognormal.p99" in capsys.readouterr().err


def test_a_bad_flag_exits_2(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["sim", _write(tmp_path, SMALL), "--hosts", "0"])
    assert caught.value.code == 2


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    assert cli.main(["sim", str(tmp_path / "nope.yaml"), "--quiet"]) == 2


def test_plots_are_written(tmp_path: Path) -> None:
    cli.main(["sim", _write(tmp_path, SMALL), "--plot", str(tmp_path / "plots"), "--quiet"])
    for name in ("states.png", "durations.png"):
        png = tmp_path / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_summary_shows_the_verdict_and_the_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli.main(["sim", _write(tmp_path, SMALL)])
    out = capsys.readouterr().out
    for text in ("PASS", "Hosts by final state", "Time per state visit", "Throughput",
                 "BMC requests", "makespan"):
        assert text in out, text


def test_no_argument_runs_the_embedded_quickstart(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    assert cli.main(["sim", "--json", str(out), "--quiet"]) == 0
    data = json.loads(out.read_text())
    assert data["scenario"] == "quickstart" and data["hosts"] == 50


def test_reaching_the_time_limit_exits_1_as_an_invariant_failure(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    text = SMALL.replace("time_limit: 1d", "time_limit: 2m")
    assert cli.main(["sim", _write(tmp_path, text), "--json", str(out), "--quiet"]) == 1
    data = json.loads(out.read_text())
    assert data["time_limit_hit"] is True and data["makespan_s"] == 120.0
    assert data["invariants"]["by_invariant"]["time-limit"] == 1
    assert data["invariants"]["by_invariant"]["host-lost"] >= 1  # hosts still busy at 2 min
