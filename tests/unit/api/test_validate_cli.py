"""`metalcubed validate`: output lines, exit codes, YAML and file errors."""

import subprocess
import sys
from pathlib import Path

import pytest

from metalcubed.cli import main as cli
from tests.unit.api import crd_support

GOOD = """\
apiVersion: v1
kind: Secret
metadata:
  name: bmc-secret
data:
  username: YWRtaW4=
  password: cGFzc3dvcmQ=
---
apiVersion: metal3.io/v1alpha1
kind: BareMetalHost
metadata:
  name: worker-0
  creationTimestamp: 2026-01-02T03:04:05Z
spec:
  online: true
  bootMACAddress: "52:54:00:00:00:01"
  bmc:
    address: redfish-virtualmedia+http://192.168.111.1:8000/redfish/v1/Systems/1
    credentialsName: bmc-secret
  image:
    url: http://images/os.qcow2
    checksum: http://images/os.qcow2.sha256sum
    checksumType: auto
---
"""

BAD = """\
apiVersion: metal3.io/v1alpha1
kind: BareMetalHost
metadata:
  name: worker-1
  annotations:
    reboot.metal3.io: '{"mode": "warm"}'
spec:
  online: true
  bmc:
    address: ilo4://10.0.0.1
    credentialsName: bmc-secret
  image:
    url: http://images/os.qcow2
---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: w
---
apiVersion: metal3.io/v1alpha1
kind: BareMetalHost
metadata:
  name: worker-2
spec:
  bootMode: bios
"""

BROKEN = """\
apiVersion: metal3.io/v1alpha1
kind: BareMetalHost
metadata:
  name: worker-3
spec:
  online: true
---
apiVersion: metal3.io/v1alpha1
kind: BareMetalHost
spec:
  online: [true
"""

NOT_CHECKED = """\
apiVersion: metal3.io/v1alpha1
kind: HostClaim
metadata:
  name: worker-0
spec:
  online: true
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = cli.main(["validate", *args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_valid_files_exit_0_and_print_no_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines, err = run(capsys, write(tmp_path, "good.yaml", GOOD))
    assert (code, lines) == (0, [])
    assert "checked 2 object(s) in 1 file(s): 0 problem(s)" in err


def test_problems_are_one_line_each_with_file_document_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, "bad.yaml", BAD)
    code, lines, _ = run(capsys, bad)
    assert code == 1
    assert lines == [
        f"{bad}:1: spec.bmc.address: Unknown BMC type 'ilo4' for address ilo4://10.0.0.1: "
        "removed upstream: the ilo4 driver was removed in v0.12.0; use redfish",
        f"{bad}:1: spec.image.checksum: checksum is required for normal images",
        f"{bad}:1: metadata.annotations[reboot.metal3.io]: invalid mode in the reboot.metal3.io "
        'annotation, allowed are "hard", "soft" or ""',
        f"{bad}:2: kind: unknown kind Widget (apiVersion example.com/v1)",
        f"{bad}:3: spec.bootMode: Input should be 'UEFI', 'UEFISecureBoot' or 'legacy'",
        f"{bad}:3: spec.online: Required value",
    ]


def test_broken_yaml_reports_the_line_and_keeps_earlier_documents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = write(tmp_path, "broken.yaml", BROKEN)
    code, lines, _ = run(capsys, broken)
    assert code == 1
    assert lines == [
        f"{broken}:2: yaml: line 12, column 1: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence at line 11, column 11)"
    ]


def test_a_document_that_is_not_an_object_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "list.yaml", "- a\n- b\n")
    assert run(capsys, path)[:2] == (
        1,
        [f"{path}:1: object: expected a Kubernetes object, got list"],
    )


def test_missing_file_is_a_clear_error_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nope.yaml")
    good = write(tmp_path, "good.yaml", GOOD)
    code, lines, err = run(capsys, missing, good)
    assert code == 2
    assert lines == [f"{missing}: file: cannot read: No such file or directory"]
    assert "1 unreadable file(s)" in err


def test_kinds_not_modelled_yet_are_a_notice_unless_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "hostclaim.yaml", NOT_CHECKED)
    notice = (
        f"{path}:1: kind: not checked: metalcubed has no model for HostClaim "
        "(metal3.io/v1alpha1) yet"
    )
    assert run(capsys, path)[:2] == (0, [notice])
    assert run(capsys, "--strict", path)[:2] == (1, [notice])


def test_a_kubernetes_list_is_checked_item_by_item(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        "list.yaml",
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: metal3.io/v1alpha1, kind: BareMetalHost, metadata: {name: a},"
        " spec: {online: true}}\n"
        "- {apiVersion: metal3.io/v1alpha1, kind: BareMetalHost, metadata: {name: b}, spec: {}}\n",
    )
    assert run(capsys, path)[:2] == (1, [f"{path}:1: items[1].spec.online: Required value"])


def test_upstream_bmo_examples_validate(capsys: pytest.CaptureFixture[str]) -> None:
    files = [
        str(crd_support.EXAMPLES / name)
        for name in ("bmo-example-host.yaml", "bmo-example-host-bad-credentials.yaml")
    ]
    assert run(capsys, *files)[:2] == (0, [])


def test_the_installed_command_runs(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", BAD)
    result = subprocess.run(
        [sys.executable, "-m", "metalcubed.cli", "validate", bad],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert (
        result.stdout.splitlines()[3]
        == f"{bad}:2: kind: unknown kind Widget (apiVersion example.com/v1)"
    )


# --- --old: update rules --------------------------------------------------------------------

HOST = """\
apiVersion: metal3.io/v1alpha1
kind: BareMetalHost
metadata:
  name: worker-0
  {namespace}
spec:
  online: true
  bootMACAddress: "{mac}"
  bmc:
    address: {address}
    credentialsName: bmc-secret
{status}"""
PROVISIONED = "status:\n  provisioning: {state: provisioned, ID: x}\n"
REGISTERING = "status:\n  provisioning: {state: registering, ID: x}\n"


def host_yaml(
    *, mac: str = "52:54:00:00:00:01", address: str = "redfish://10.0.0.1/redfish/v1/Systems/1",
    namespace: str = "", status: str = "",
) -> str:
    ns = f"namespace: {namespace}" if namespace else ""
    return HOST.format(mac=mac, address=address, namespace=ns, status=status)


def test_old_applies_upstreams_update_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = write(tmp_path, "new.yaml", host_yaml(mac="52:54:00:00:00:02", address="ipmi://10.9.9.9"))
    old = write(tmp_path, "old.yaml", host_yaml(namespace="metal3", status=PROVISIONED))
    code, lines, _ = run(capsys, new, "--old", old)
    assert code == 1
    assert lines == [
        f"{new}:1: spec.bmc.address: BMC address can not be changed if the BMH is not in the "
        "Registering state, or if the BMH is not detached",
        f"{new}:1: spec.bootMACAddress: bootMACAddress can not be changed once it is set",
    ]
    # Without --old the same manifest is a valid create.
    assert run(capsys, new)[:2] == (0, [])


def test_old_status_is_the_stored_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The API server keeps the stored status on a main-resource update: a status written in
    the manifest cannot unlock a rule (here: the address may move while registering)."""
    new = write(tmp_path, "new.yaml", host_yaml(address="ipmi://10.9.9.9", status=PROVISIONED))
    old = write(tmp_path, "old.yaml", host_yaml(status=REGISTERING))
    assert run(capsys, new, "--old", old)[:2] == (0, [])
    new = write(tmp_path, "new2.yaml", host_yaml(address="ipmi://10.9.9.9", status=REGISTERING))
    old = write(tmp_path, "old2.yaml", host_yaml(status=PROVISIONED))
    assert run(capsys, new, "--old", old)[0] == 1


def test_old_without_a_counterpart_is_a_create_with_a_notice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = write(tmp_path, "new.yaml", host_yaml())
    old = write(tmp_path, "old.yaml", "")
    code, lines, _ = run(capsys, new, "--old", old)
    assert (code, lines) == (
        0, [f"{new}:1: metadata.name: no stored object in {old}: checked as a create"])


def test_old_with_two_namespaces_needs_the_manifest_to_name_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = write(tmp_path, "new.yaml", host_yaml(mac="52:54:00:00:00:02"))
    stored = host_yaml(namespace="a") + "---\n" + host_yaml(namespace="b")
    old = write(tmp_path, "old.yaml", stored)
    code, lines, _ = run(capsys, new, "--old", old)
    assert (code, lines) == (1, [
        f"{new}:1: metadata.name: 2 stored objects in {old} match; "
        "set metadata.namespace to pick one"])
    named = write(tmp_path, "named.yaml", host_yaml(mac="52:54:00:00:00:02", namespace="b"))
    assert run(capsys, named, "--old", old)[:2] == (1, [
        f"{named}:1: spec.bootMACAddress: bootMACAddress can not be changed once it is set"])


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "cannot read: No such file or directory"),
        ("a: [1\n", "yaml: line 2, column 1"),
        ("- a\n", "expected a Kubernetes object, got list"),
        ("apiVersion: v1\nkind: List\nitems: [3]\n", "expected a Kubernetes object, got int"),
    ],
)
def test_a_bad_old_file_is_exit_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, reason: str
) -> None:
    new = write(tmp_path, "new.yaml", host_yaml())
    old = str(tmp_path / "old.yaml")
    if content is not None:
        write(tmp_path, "old.yaml", content)
    code, lines, err = run(capsys, new, "--old", old)
    assert (code, lines) == (2, [])
    assert f"--old {old}" in err and reason in err
    assert "Traceback" not in err


def test_old_and_files_cannot_both_be_stdin(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, err = run(capsys, "-", "--old", "-")
    assert (code, lines) == (2, [])
    assert "--old -" in err
