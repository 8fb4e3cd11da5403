"""`metalcubed devenv up|status|down` as a user runs them: separate processes, a lab directory.

The lab runs in the background (its own session), its BMC emulators in a process of their own;
every test stops what it started (`down`, and a finalizer that kills by pid whatever a failed
test left behind) and checks that no process of the lab survives.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from metalcubed.cli import main as cli
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta
from metalcubed.simulators.devenv import control

pytestmark = [pytest.mark.hardware, pytest.mark.slow]


def devenv(*args: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "metalcubed.cli", "devenv", *args],
                          capture_output=True, text=True, timeout=timeout_s)


@pytest.fixture
def lab_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "lab"
    yield directory
    # Whatever a failing test left running: stop it by pid (the same path `down` takes).
    control.down(directory, timeout_s=10)


def _lab_pids(directory: Path) -> list[int]:
    state = json.loads((directory / "state.json").read_text())
    return [int(state["pid"]), *(int(p) for p in state["lab"]["bmcProcesses"])]


def _wait_gone(pids: list[int], timeout_s: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while any(control.is_ours(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if control.is_ours(p)]


def test_up_provision_status_down_as_a_user(lab_dir: Path) -> None:
    up = devenv("up", "--hosts", "4", "--bmc", "mixed", "--provision", "--dir", str(lab_dir))
    assert up.returncode == 0, up.stderr
    assert "4 hosts" in up.stdout and "hosts: 4 provisioned" in up.stdout
    pids = _lab_pids(lab_dir)
    assert all(control.is_ours(p) for p in pids) and len(pids) == 2  # lab + one BMC process

    status = devenv("status", "--json", "--dir", str(lab_dir))
    assert status.returncode == 0, status.stderr
    doc: dict[str, Any] = json.loads(status.stdout)
    assert doc["summary"] == {"hosts": 4, "byState": {"provisioned": 4}, "errors": 0,
                              "delayed": 0, "poweredOn": 4}
    rows = doc["hosts"]
    assert [r["name"] for r in rows] == ["host-0", "host-1", "host-2", "host-3"]
    assert [r["scheme"] for r in rows] == ["redfish-virtualmedia+http", "ipmi", "redfish+http",
                                           "ipmi"]
    redfish = doc["lab"]["redfishEndpoints"][0]
    assert rows[0]["bmcEndpoint"] == redfish and rows[2]["bmcEndpoint"] == redfish
    assert rows[1]["bmcEndpoint"].startswith("127.0.0.1:")
    assert rows[1]["bmcEndpoint"].endswith("/udp")
    assert all(r["poweredOn"] and r["image"] == doc["lab"]["image"]["url"] for r in rows)
    assert all(r["credentialsValidated"] and not r["errorType"] for r in rows)
    assert len(doc["lab"]["image"]["checksum"]) == 64

    table = devenv("status", "--dir", str(lab_dir))
    assert table.returncode == 0
    assert "host-3" in table.stdout and "provisioned" in table.stdout

    # The manifests a user would kubectl apply: a Secret and a BareMetalHost per host.
    for row in rows:
        secret_doc, host_doc = yaml.safe_load_all(
            (lab_dir / "manifests" / f"{row['name']}.yaml").read_text())
        secret = meta.Secret.from_wire(secret_doc)
        host = bmh.BareMetalHost.from_wire(host_doc)
        assert host.spec.bmc.address == row["bmcAddress"]
        assert host.spec.bmc.credentials_name == secret.metadata.name
        assert secret.value("username") == "admin" and secret.value("password")
        assert "status" not in host_doc
    assert (lab_dir / "config.json").stat().st_mode & 0o077 == 0  # it holds the BMC password

    again = devenv("up", "--hosts", "1", "--dir", str(lab_dir))
    assert again.returncode == 1
    assert "already running" in again.stderr

    down = devenv("down", "--dir", str(lab_dir))
    assert down.returncode == 0, down.stderr
    assert f"pid {pids[0]}" in down.stdout and "1 BMC process" in down.stdout
    assert _wait_gone(pids, timeout_s=1) == []
    assert not (lab_dir / "state.json").exists()
    assert not (lab_dir / "config.json").exists()  # the BMC password goes with the lab
    assert not (lab_dir / "manifests").exists()

    repeat = devenv("down", "--dir", str(lab_dir))
    assert repeat.returncode == 0 and "no lab is running" in repeat.stdout
    gone = devenv("status", "--dir", str(lab_dir))
    assert gone.returncode == 1 and "no lab is running" in gone.stderr


def test_bmc_processes_die_with_a_killed_lab_and_down_cleans_up(lab_dir: Path) -> None:
    up = devenv("up", "--hosts", "2", "--bmc", "ipmi", "--dir", str(lab_dir))
    assert up.returncode == 0, up.stderr
    lab_pid, *bmc_pids = _lab_pids(lab_dir)
    os.kill(lab_pid, signal.SIGKILL)
    # Their stdin is a pipe from the lab process: they stop on their own when it dies.
    assert _wait_gone([lab_pid, *bmc_pids]) == []
    status = devenv("status", "--dir", str(lab_dir))
    assert status.returncode == 1 and "no lab is running" in status.stderr
    down = devenv("down", "--dir", str(lab_dir))
    assert down.returncode == 0 and "no lab is running" in down.stdout
    assert not (lab_dir / "state.json").exists()


def test_up_returns_once_hosts_are_registered_even_while_delayed_for_a_slot(
    lab_dir: Path,
) -> None:
    # Network-booted hosts inspect PROVISIONING_LIMIT at a time; the others pass registration
    # and wait, `delayed`, retrying with upstream's backoff (minutes): `up` does not wait them.
    up = devenv("up", "--hosts", "6", "--bmc", "ipmi", "--provisioning-limit", "2",
                "--dir", str(lab_dir))
    assert up.returncode == 0, up.stderr
    doc = json.loads(devenv("status", "--json", "--dir", str(lab_dir)).stdout)
    assert all(r["credentialsValidated"] and not r["errorType"] for r in doc["hosts"])
    delayed = [r for r in doc["hosts"] if r["operationalStatus"] == "delayed"]
    assert delayed and doc["summary"]["delayed"] == len(delayed)
    assert all(r["state"] == "registering" for r in delayed)
    assert devenv("down", "--dir", str(lab_dir)).returncode == 0


# --- bad input: exit status 2 and a message naming the flag (no lab is started) --------------


def _cli(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exc:  # argparse rejects an unknown choice itself
        return int(exc.code or 0)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        pytest.param(["--hosts", "0"], "--hosts", id="zero-hosts"),
        pytest.param(["--hosts", "-3"], "--hosts", id="negative-hosts"),
        pytest.param(["--hosts", "2", "--bmc", "idrac"], "--bmc", id="unknown-bmc"),
        pytest.param(["--hosts", "2", "--kubeconfig", "/nonexistent/kubeconfig"],
                     "--kubeconfig", id="missing-kubeconfig"),
        pytest.param(["--hosts", "2", "--namespace", "Not_A_Namespace"], "--namespace",
                     id="bad-namespace"),
        pytest.param(["--hosts", "2", "--provisioning-limit", "0"], "--provisioning-limit",
                     id="zero-provisioning-limit"),
    ],
)
def test_bad_input_names_the_flag_and_exits_2(
    args: list[str], flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(["devenv", "up", *args, "--dir", str(tmp_path)]) == 2
    assert flag in capsys.readouterr().err
    assert not (tmp_path / "lab.pid").exists()


def test_unreachable_kubeconfig_is_bad_input(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "lab",
        "clusters": [{"name": "lab", "cluster": {"server": "https://127.0.0.1:1",
                                                 "insecure-skip-tls-verify": True}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "lab"}}],
        "users": [{"name": "lab", "user": {"token": "t"}}],
    }))
    code = _cli(["devenv", "up", "--hosts", "2", "--kubeconfig", str(kubeconfig),
                 "--dir", str(tmp_path / "lab")])
    err = capsys.readouterr().err
    assert code == 2
    assert "--kubeconfig" in err and "unreachable" in err and "127.0.0.1:1" in err
