"""`metalcubed sim` and the flags of every subcommand over generated hostile input (issue 14, bad
input): no input gives a traceback, every error names the file and field or the flag, nothing
NaN or infinite reaches a run, and exit codes keep their meaning (0 SLOs met, 1 missed, 2 bad
input, reported before anything runs).

The scenario property calls the loader `sim` runs before anything else, in process; a handful of
whole runs check the exit codes."""

import argparse
import contextlib
import io
import math
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from metalcubed.cli import checks, sim
from metalcubed.cli import main as cli
from metalcubed.core import yamlinput
from metalcubed.simulators.fleet import scenario
from tests.properties import cli_strategies as hs

QUICKSTART = Path(__file__).resolve().parents[2] / "scenarios" / "quickstart.yaml"
BASE = yaml.safe_load(QUICKSTART.read_text())
FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _scenario_file(folder: str, data: bytes) -> str:
    path = str(Path(folder) / "hostile-scenario.yaml")
    Path(path).write_bytes(data)
    return path


def _load(data: bytes) -> tuple[str, scenario.Scenario | None, str]:
    """(path, the scenario or None, the error message)."""
    with tempfile.TemporaryDirectory() as folder:
        path = _scenario_file(folder, data)
        try:
            return path, sim.load_scenario(path), ""
        except (checks.BadInput, scenario.ScenarioError) as err:
            return path, None, str(err)


@FAST
@given(data=hs.hostile_file(documents=hs.hostile_document(base=BASE)))
@example(data=QUICKSTART.read_text().replace("time_limit: 6h", "time_limit: .nan").encode())
@example(data=QUICKSTART.read_text().replace("size: 2GiB", "size: .inf").encode())
@example(data=QUICKSTART.read_text().replace("size: 2GiB", f"size: {'9' * 400}B").encode())
@example(data=QUICKSTART.read_text().replace("count: 30", f"count: {'9' * 5000}").encode())
@example(data=QUICKSTART.read_text().replace("name: quickstart", "name: café").encode("latin-1"))
def test_no_hostile_scenario_gives_a_traceback(data: bytes) -> None:
    path, spec, error = _load(data)
    if spec is None:
        assert path in error  # the file is named ...
        assert error.strip(), "an error says what is wrong"
    else:
        assert list(yamlinput.non_finite(spec)) == []  # ... and nothing NaN reaches a run
        assert spec.host_count <= sim.MAX_HOSTS


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("time_limit: 6h", "time_limit: .nan", "time_limit: must be a finite number, got nan"),
        ("size: 2GiB", "size: .inf", "images.ubuntu.size: must be a finite number, got inf"),
        ("count: 30", f"count: {'9' * 5000}", "an integer of 5000 digits"),
        ("count: 30", "count: 3000000", "3,000,020 hosts; metalcubed sim runs at most 100,000"),
        ("kube_api_qps: 20", "kube_api_qps: .nan", "controller.kube_api_qps: must be a finite"),
    ],
    ids=["time-limit-nan", "size-inf", "5000-digits", "too-many-hosts", "qps-nan"],
)
def test_bad_scenario_values_exit_2_naming_the_field(tmp_path: Path, old: str, new: str,
                                                    field: str) -> None:
    text = QUICKSTART.read_text()
    assert old in text
    path = _scenario_file(str(tmp_path), text.replace(old, new).encode())
    out = tmp_path / "report.json"
    code, err = _run("sim", path, "--quiet", "--json", str(out))
    assert code == 2
    assert (field in err and path in err) or "100,000" in err
    assert not out.exists()  # refused before the run


def test_a_nan_percentage_exits_2_naming_the_field(tmp_path: Path) -> None:
    text = (QUICKSTART.parent / "faults-1000.yaml").read_text()
    assert "error_rate: 1%" in text
    path = _scenario_file(str(tmp_path), text.replace("error_rate: 1%", "error_rate: nan%")
                          .encode())
    code, err = _run("sim", path, "--quiet")
    assert code == 2
    assert "faults.bmc.error_rate: must be a finite number, got nan" in err


def _run(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:  # argparse's exit for a bad flag
            code = int(exc.code or 0)
    return code, err.getvalue()


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--json", "{tmp}", "is a folder, not a file"),
        ("--json", "{tmp}/missing/report.json", "does not exist"),
        ("--json", "{file}/report.json", "is not a folder"),
        ("--plot", "{file}", "is not a folder"),
        ("--plot", "{file}/plots", "is not a folder"),
    ],
    ids=["json-folder", "json-missing-folder", "json-under-file", "plot-file", "plot-under-file"],
)
def test_report_paths_are_checked_before_the_run(tmp_path: Path, flag: str, value: str,
                                                 says: str) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    target = value.format(tmp=tmp_path, file=a_file)
    code, err = _run("sim", "--quiet", flag, target)
    assert code == 2
    assert err.startswith(f"metalcubed sim: {flag}: ") and says in err


def test_a_full_device_for_json_exits_2_naming_the_flag() -> None:
    code, err = _run("sim", "--quiet", "--json", "/dev/full")
    assert code == 2
    assert "--json" in err and "No space left on device" in err


# --- flags of every subcommand ---------------------------------------------------------------

FLAG_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["nan", "NaN", "inf", "-inf", "1e309", "-1", "0", "-0", "1.5", "1e5",
                     "9" * 5000, "1000000000", "100000", "100001", " 7 ", "0x10", "٣"]),
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
NUMERIC_FLAGS = [
    (["sim"], "--hosts", 1, sim.MAX_HOSTS),
    (["sim"], "--seed", 0, sim.MAX_SEED),
    (["kube", "start"], "--timeout", 0, 86400),
]


@settings(max_examples=300, deadline=None)
@given(case=st.sampled_from(NUMERIC_FLAGS), text=FLAG_TEXT)
def test_numeric_flags_take_finite_values_in_range_or_name_the_flag(
        case: tuple[list[str], str, float, float], text: str) -> None:
    command, flag, low, high = case
    parser = cli.build_parser(command[0])
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            args = parser.parse_args([*command, f"{flag}={text}"])
        except SystemExit as exc:
            assert exc.code == 2
            assert f"argument {flag}: " in err.getvalue()
            return
    value = getattr(args, flag.lstrip("-").replace("-", "_"))
    assert math.isfinite(value) and low <= value <= high
    if flag == "--timeout":
        assert value > 0


def test_every_subcommand_builds_whatever_the_environment(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    for name in ("LEASE_DURATION_SECONDS", "RENEW_DEADLINE_SECONDS", "RETRY_PERIOD_SECONDS",
                 "PROVISIONING_LIMIT", "BMO_CONCURRENCY"):
        monkeypatch.setenv(name, "abc")
    for command in cli.SUBCOMMANDS:
        if command == "manager":
            continue  # reads them: its own tests check it names the variable
        assert isinstance(cli.build_parser(command), argparse.ArgumentParser)
