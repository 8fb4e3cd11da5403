"""`metalcubed devenv` refuses bad flags up front (issue 14): exit 2 and one line naming the
flag, before any lab process starts (control.up is replaced by a tripwire), never a traceback.
And `down` leaves no file holding the BMC password (config.json, manifests)."""

import json
import stat
from pathlib import Path

import pytest

from metalcubed.cli import main as cli_main
from metalcubed.simulators.devenv import config as lab_config
from metalcubed.simulators.devenv import control


@pytest.fixture(autouse=True)
def no_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    def tripwire(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("bad input reached control.up: a lab would have started")

    monkeypatch.setattr(control, "up", tripwire)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = cli_main.main(["devenv", *argv])
    except SystemExit as exit_:  # argparse's error exit
        code = int(exit_.code or 0)
    return code, capsys.readouterr().err


CASES = [
    (["up", "--hosts", "2", "--timeout", "nan"], "--timeout", "finite"),
    (["up", "--hosts", "2", "--timeout", "inf"], "--timeout", "finite"),
    (["up", "--hosts", "2", "--timeout", "0"], "--timeout", "more than 0"),
    (["up", "--hosts", "2", "--timeout", "1e12"], "--timeout", "at most"),
    (["up", "--hosts", "-3"], "--hosts", "at least 1"),
    (["up", "--hosts", "0"], "--hosts", "at least 1"),
    (["up", "--hosts", "1000000000"], "--hosts", f"at most {lab_config.MAX_HOSTS:,}"),
    (["up", "--hosts", "9" * 5000], "--hosts", "expected a whole number"),
    (["up", "--hosts", "2", "--concurrency", "100000"], "--concurrency", "at most 256"),
    (["up", "--hosts", "2", "--hosts-per-process", "-1"], "--hosts-per-process", "at least 0"),
    (["up", "--hosts", "2", "--provisioning-limit", "0"], "--provisioning-limit", "at least 1"),
    (["down", "--timeout", "nan"], "--timeout", "finite"),
    (["down", "--timeout", "-1"], "--timeout", "at least 0"),
]


@pytest.mark.parametrize(("argv", "flag", "fragment"), CASES,
                         ids=[" ".join(c[0])[:40] for c in CASES])
def test_a_bad_flag_exits_2_naming_it(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                      argv: list[str], flag: str, fragment: str) -> None:
    code, err = run(capsys, *argv, "--dir", str(tmp_path / "lab"))
    assert code == 2, err
    assert flag in err and fragment in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "lab").exists()  # nothing was made


def test_a_file_as_dir_is_refused_by_every_action(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    for argv in (["up", "--hosts", "2"], ["status"], ["down"]):
        code, err = run(capsys, *argv, "--dir", str(a_file))
        assert (code, err.strip()) == (2, f"metalcubed devenv {argv[0]}: --dir: {a_file} is "
                                          "not a folder")
    code, err = run(capsys, "up", "--hosts", "2", "--dir", str(a_file / "lab"))
    assert code == 2 and f"--dir: cannot create {a_file / 'lab'}" in err, err
    assert a_file.read_text() == "mine"


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_a_bad_kubeconfig_is_refused_before_the_lab(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path, kind: str) -> None:
    path = tmp_path / "kubeconfig"
    if kind == "folder":
        path.mkdir()
    code, err = run(capsys, "up", "--hosts", "2", "--kubeconfig", str(path),
                    "--dir", str(tmp_path / "lab"))
    assert code == 2, err
    assert err.startswith(f"metalcubed devenv up: --kubeconfig: {path}: "), err
    assert ("no such file" if kind == "missing" else "is a folder") in err


def test_down_deletes_the_config_holding_the_password(tmp_path: Path) -> None:
    """config.json is written 0600 by `up` (it holds the BMC password); `down` removes it,
    with or without a lab process still running (here none: only the files go)."""
    config = lab_config.LabConfig(hosts=2, password="pw-config-7f3")
    control.write_private(tmp_path / control.CONFIG, config.to_json())
    assert stat.S_IMODE((tmp_path / control.CONFIG).stat().st_mode) == 0o600
    assert json.loads((tmp_path / control.CONFIG).read_text())["password"] == "pw-config-7f3"
    control.down(tmp_path, timeout_s=1)
    assert not (tmp_path / control.CONFIG).exists()
    assert all("pw-config-7f3" not in p.read_text(errors="replace")
               for p in tmp_path.rglob("*") if p.is_file())
