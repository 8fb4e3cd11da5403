"""Hostile scenario files (issue 14): every bad value is a ScenarioError naming the key or the
file, never a traceback, a NaN that slips past the range checks, or a run that cannot end."""

from pathlib import Path

import pytest

from metalcubed.core import yamlinput
from metalcubed.simulators.fleet import scenario

BASE = """\
name: t
time_limit: {time_limit}
controller: {{kube_api_qps: {qps}}}
provisioner: {{poll: {poll}, quick_poll: {quick_poll}, bmc_retry_interval: {retry},
  ramdisk_timeout: {ramdisk}}}
profiles:
  p: {{qcow2_convert_mbps: {mbps}, disk_write_mbps: {write}}}
groups:
  - {{name: a, count: 2, profile: p, bmc: redfish}}
images:
  img: {{url: "http://x/img.raw", checksum: {checksum}, size: {size}}}
faults:
  bmc: {{error_rate: {error_rate}}}
  hosts: {{post_hang: {post_hang}}}
workload:
  - {{action: enroll, at: 0s, batch_size: 1, batch_interval: {batch}}}
  - {{action: provision, image: img, when: available}}
slos:
  makespan: {{metric: makespan_s, max: {makespan}}}
  qps: {{metric: bmc.requests, max: {requests}}}
"""
GOOD = {
    "time_limit": "24h", "qps": 20, "poll": "10s", "quick_poll": "3s", "retry": "4s",
    "ramdisk": "30m", "mbps": 800, "write": 500, "checksum": "a" * 64, "size": "1GiB",
    "error_rate": "1%", "post_hang": 0.01, "batch": "1s", "makespan": "2h", "requests": 1000,
}
KEYS = {
    "time_limit": "time_limit",
    "qps": "controller.kube_api_qps",
    "poll": "provisioner.poll",
    "quick_poll": "provisioner.quick_poll",
    "retry": "provisioner.bmc_retry_interval",
    "ramdisk": "provisioner.ramdisk_timeout",
    "mbps": "profiles.p.qcow2_convert_mbps",
    "write": "profiles.p.disk_write_mbps",
    "size": "images.img.size",
    "error_rate": "faults.bmc.error_rate",
    "post_hang": "faults.hosts.post_hang",
    "batch": "workload[0].batch_interval",
    "makespan": "slos.makespan.max",
    "requests": "slos.qps.max",
}


def text(**changes: object) -> str:
    return BASE.format(**{**GOOD, **changes})


def errors_of(document: str) -> dict[str, str]:
    with pytest.raises(scenario.ScenarioError) as caught:
        scenario.loads(document)
    return {err.field: err.message for err in caught.value.errors}


def test_the_base_document_parses() -> None:
    assert scenario.loads(text()).host_count == 2


DURATIONS = ("time_limit", "poll", "quick_poll", "retry", "ramdisk", "batch", "makespan")
HUGE = '"' + "9" * 400 + '{unit}"'  # float("9" * 400) is inf, without an OverflowError
NON_FINITE = [(key, value) for key in sorted(KEYS) for value in (".nan", ".inf", "-.inf")]
NON_FINITE += [(key, HUGE.format(unit="s")) for key in DURATIONS]
NON_FINITE += [("size", HUGE.format(unit="B")), ("size", "1.0e+400")]
NON_FINITE += [(key, '"nan%"') for key in ("error_rate", "post_hang")]


@pytest.mark.parametrize(("key", "value"), NON_FINITE)
def test_a_non_finite_value_is_refused_naming_the_key(key: str, value: str) -> None:
    errors = errors_of(text(**{key: value}))
    assert KEYS[key] in errors, errors
    if not value.startswith("-"):  # -.inf may be refused as negative first: also right
        assert "finite" in errors[KEYS[key]], errors


def test_an_integer_beyond_a_float_is_refused() -> None:
    """yamlinput caps integers at 100 digits; `parse` is also called with built data."""
    data = yamlinput.load(text())
    data["controller"]["kube_api_qps"] = 10**400
    with pytest.raises(scenario.ScenarioError) as caught:
        scenario.parse(data)
    [error] = caught.value.errors
    assert error.field == "controller.kube_api_qps" and "finite" in error.message


@pytest.mark.parametrize("key", ["poll", "quick_poll", "retry"])
@pytest.mark.parametrize("value", ["0", "0s", "1ms"])
def test_a_requeue_delay_of_zero_is_refused(key: str, value: str) -> None:
    """At 0 a host requeues at the same simulated instant forever: time stops and the time
    limit never fires. Refused before the run, naming the key and the minimum."""
    errors = errors_of(text(**{key: value}))
    assert "at least 100ms" in errors[KEYS[key]], errors


def test_the_minimum_requeue_delay_is_accepted() -> None:
    spec = scenario.loads(text(poll="100ms", quick_poll=0.1, retry="0.1s"))
    assert spec.provisioner.poll_s == spec.provisioner.quick_poll_s == scenario.MIN_POLL_S


def test_a_latin1_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "café.yaml"
    path.write_bytes(text().replace("name: t", "name: caf\u00e9").encode("latin-1"))
    with pytest.raises(scenario.ScenarioError) as caught:
        scenario.load(path)
    assert caught.value.source == str(path)
    [error] = caught.value.errors
    assert error.field == "(file)" and "not UTF-8" in error.message and "0xe9" in error.message


def test_an_alias_bomb_is_refused_within_the_yaml_limits() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    errors = errors_of("\n".join(lines) + "\n")
    [(where, message)] = errors.items()
    assert where.startswith("line ") and "nodes" in message


def test_deep_nesting_and_a_huge_integer_are_yaml_errors() -> None:
    deep = errors_of("name: " + "[" * 500 + "]" * 500 + "\n")
    assert "deeper than" in next(iter(deep.values()))
    huge = errors_of(f"name: t\nseed: {'9' * 5000}\n")
    assert f"at most {yamlinput.MAX_INT_DIGITS}" in next(iter(huge.values()))


def test_a_file_past_the_size_limit_is_refused_without_reading_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(yamlinput, "MAX_BYTES", 64)
    path = tmp_path / "big.yaml"
    path.write_text(text())
    errors = errors_of_file(path)
    assert "larger than" in errors["(file)"]


def errors_of_file(path: Path) -> dict[str, str]:
    with pytest.raises(scenario.ScenarioError) as caught:
        scenario.load(path)
    return {err.field: err.message for err in caught.value.errors}
