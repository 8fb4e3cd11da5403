"""`metalcubed validate` over generated hostile files (issue 14, bad input): no input gives a
traceback, every line names the file, exit codes keep their meaning (0 valid, 1 problems found,
2 a file unreadable or over a limit), and time and memory stay bounded (alias bombs, /dev/zero).

In-process calls of the command's main function; a few subprocess runs for what only a real
process shows (a closed pipe, the environment of another subcommand)."""

import base64
import contextlib
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings

from metalcubed.cli import main as cli
from tests.properties import cli_strategies as hs

FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def validate(data: bytes, *extra: str) -> tuple[int, list[str], str, str]:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "hostile.yaml")
        Path(path).write_bytes(data)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["validate", path, *extra])
    return code, out.getvalue().splitlines(), err.getvalue(), path


def _check_contract(code: int, lines: list[str], err: str, path: str) -> None:
    assert code in (0, 1, 2), code
    assert "Traceback" not in err
    for line in lines:
        assert line.startswith(f"{path}:"), line  # every line names the file
        _where, _, rest = line.partition(": ")
        assert rest.partition(": ")[0], line  # ... and a field, "file" or "yaml"
    if code == 0:
        assert lines == []
    else:
        assert lines, "a failing run says why"
    if code == 2:
        assert any(": file: " in line or ": yaml: " in line for line in lines)


@FAST
@given(data=hs.hostile_file())
@example(data=hs.dump([{"apiVersion": "v1", "kind": "List",
                        "items": [dict(hs.HOST, spec={"rootDeviceHints": {
                            "minSizeGigabytes": hs.Raw("9" * 5000)}})]}]).encode())
@example(data=hs.dump([dict(hs.HOST, spec=hs.deep_list(500))]).encode())
@example(data=hs.alias_bomb(9, 10).encode())
@example(data="kind: BareMetalHost # café\n".encode("latin-1"))
def test_no_hostile_file_gives_a_traceback(data: bytes) -> None:
    _check_contract(*validate(data))


@FAST
@given(doc=hs.hostile_document(base=hs.HOST))
def test_hostile_hosts_are_judged_not_crashed(doc: object) -> None:
    code, lines, err, path = validate(hs.dump([doc]).encode())
    _check_contract(code, lines, err, path)


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        (hs.alias_bomb(9, 10), "expands to more than 1,000,000 nodes"),
        (hs.dump([dict(hs.HOST, spec=hs.deep_list(500))]), "nested deeper than 100 levels"),
        (hs.dump([dict(hs.HOST, spec={"rootDeviceHints": {
            "minSizeGigabytes": hs.Raw("9" * 5000)}})]), "an integer of 5000 digits"),
        ("a: &a [*a]\n", "recursive alias"),
    ],
    ids=["alias-bomb-10^9", "500-deep", "5000-digits", "recursive-alias"],
)
def test_limits_are_named_and_exit_2(text: str, limit: str) -> None:
    code, lines, _err, path = validate(text.encode())
    assert code == 2
    assert any(line.startswith(f"{path}:1: yaml: line ") and limit in line for line in lines)


def test_latin_1_file_names_the_byte_and_exits_2() -> None:
    code, lines, _err, path = validate("metadata: {name: café}\n".encode("latin-1"))
    assert code == 2
    assert lines == [f"{path}: file: not UTF-8 text (byte 0xe9 at offset 20); save it as UTF-8"]


def test_dev_zero_is_refused_at_the_size_limit() -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["validate", "/dev/zero"])
    assert code == 2
    assert out.getvalue().splitlines() == ["/dev/zero: file: larger than 32 MiB"]


@pytest.mark.parametrize(
    ("metadata", "field", "message"),
    [
        ({"labels": {"bad key": "x"}}, "metadata.labels",
         "name part must consist of alphanumeric characters"),
        ({"labels": {"app": "v" * 90}}, "metadata.labels[app]",
         "must be no more than 63 characters"),
        ({"labels": {"app": "-bad-"}}, "metadata.labels[app]", "a valid label must be"),
        ({"labels": {"example.com/" + "n" * 64: "x"}}, "metadata.labels",
         "name part must be no more than 63 characters"),
        ({"labels": {"Bad_Prefix!/name": "x"}}, "metadata.labels", "prefix part"),
        ({"annotations": {"a/b/c": "x"}}, "metadata.annotations", "qualified name"),
        ({"annotations": {"big": "x" * (256 * 1024)}}, "metadata.annotations",
         "may not be more than 262144 bytes"),
        ({"namespace": "Bad_NS!"}, "metadata.namespace", "RFC 1123 label"),
    ],
    ids=["label-key-space", "label-value-90", "label-value-dash", "label-name-64",
         "label-prefix", "annotation-key", "annotations-256k", "namespace"],
)
def test_validate_refuses_what_the_api_server_refuses(metadata: dict[str, object], field: str,
                                                       message: str) -> None:
    doc = dict(hs.HOST, metadata=dict({"name": "worker-0"}, **metadata))
    code, lines, _err, path = validate(hs.dump([doc]).encode())
    assert code == 1
    assert any(line.startswith(f"{path}:1: {field}: ") and message in line for line in lines), \
        lines


def test_labels_and_annotations_the_api_server_accepts_pass() -> None:
    doc = dict(hs.HOST, metadata={
        "name": "worker-0", "namespace": "metal3",
        "labels": {"app.kubernetes.io/name": "worker", "tier": "", "x": "v" * 63},
        "annotations": {"Example.COM/Mixed_Case": "y" * 1000, "note": ""}})
    code, lines, _err, _path = validate(hs.dump([doc]).encode())
    assert (code, lines) == (0, [])


# --- a handful of real processes ---------------------------------------------------------------


def _metalcubed(*args: str, env: dict[str, str] | None = None, shell: str | None = None
                ) -> subprocess.CompletedProcess[str]:
    command = (["bash", "-c", shell] if shell is not None
               else [sys.executable, "-m", "metalcubed.cli", *args])
    return subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_another_subcommands_environment_does_not_break_validate(tmp_path: Path) -> None:
    good = tmp_path / "x.yaml"
    good.write_text(hs.dump([hs.SECRET]))
    env = {"LEASE_DURATION_SECONDS": "abc", "PROVISIONING_LIMIT": "abc",
           "BMO_CONCURRENCY": "nan", "WATCH_NAMESPACE": "Bad_NS!"}
    done = _metalcubed("validate", str(good), env=env)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr


def test_closed_stdout_ends_crds_quietly_with_141() -> None:
    # `metalcubed crds | head -1`, deterministically: the reader is gone before the first write.
    read_end, write_end = os.pipe()
    os.close(read_end)
    err = io.StringIO()
    with os.fdopen(write_end, "w") as closed, contextlib.redirect_stdout(closed), \
            contextlib.redirect_stderr(err):
        code = cli.main(["crds"])
    assert code == 141
    assert err.getvalue() == ""


def test_crds_into_head_prints_no_traceback() -> None:
    done = _metalcubed(shell=f"{sys.executable} -m metalcubed.cli crds | head -1")
    assert done.stdout.startswith("# Generated by `metalcubed crds`")
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


def test_validate_dev_zero_process_exits_2() -> None:
    done = _metalcubed("validate", "/dev/zero")
    assert done.returncode == 2
    assert done.stdout.strip() == "/dev/zero: file: larger than 32 MiB"


def test_base64_of_hostile_secret_round_trips() -> None:
    # Core kinds are skipped, whatever they hold.
    doc = dict(hs.SECRET, data={"password": base64.b64encode(b"\xff" * 100).decode()})
    assert validate(hs.dump([doc]).encode())[0] == 0

