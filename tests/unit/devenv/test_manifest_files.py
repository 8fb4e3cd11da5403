"""The lab's manifests hold every host's BMC password: readable by the owner only, and gone
after `devenv down` (issue 14, security item 4). Real files in a temporary directory."""

import stat
from pathlib import Path

from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta
from metalcubed.simulators.devenv import control, lab

PASSWORD = "pw-owner-only-51c"


def _objects(count: int) -> list[tuple[meta.Secret, bmh.BareMetalHost]]:
    pairs = []
    for i in range(count):
        secret = meta.Secret(metadata=meta.ObjectMeta(name=f"host-{i}-bmc", namespace="lab"),
                             string_data={"username": "admin", "password": PASSWORD})
        host = bmh.BareMetalHost.from_wire({
            "apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost",
            "metadata": {"name": f"host-{i}", "namespace": "lab"},
            "spec": {"bmc": {"address": f"redfish+http://127.0.0.1:8000/redfish/v1/Systems/{i}",
                             "credentialsName": f"host-{i}-bmc"}, "online": True}})
        pairs.append((secret, host))
    return pairs


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_manifests_are_written_owner_only(tmp_path: Path) -> None:
    folder = tmp_path / control.MANIFESTS
    lab.Lab.write_manifests(folder, _objects(3))
    files = sorted(folder.glob("*.yaml"))
    assert [f.name for f in files] == ["host-0.yaml", "host-1.yaml", "host-2.yaml"]
    assert PASSWORD in files[0].read_text()  # what the file is for
    assert _mode(folder) == 0o700
    assert {_mode(f) for f in files} == {0o600}


def test_an_existing_open_folder_is_closed_to_others(tmp_path: Path) -> None:
    folder = tmp_path / control.MANIFESTS
    folder.mkdir(mode=0o755)
    (folder / "host-9.yaml").write_text("left over")
    lab.Lab.write_manifests(folder, _objects(1))
    assert _mode(folder) == 0o700
    assert [f.name for f in folder.glob("*.yaml")] == ["host-0.yaml"]


def test_down_removes_the_manifests(tmp_path: Path) -> None:
    folder = tmp_path / control.MANIFESTS
    lab.Lab.write_manifests(folder, _objects(2))
    control.down(tmp_path, timeout_s=1)  # no lab process is running: only the files go
    assert not folder.exists()
    control.down(tmp_path, timeout_s=1)  # idempotent
