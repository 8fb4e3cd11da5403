"""`metalcubed manager` flags and variables over generated hostile values (issue 14, bad input):
each value is either accepted within the documented limits or refused with a ValueError (exit 2)
or an argparse error that names the flag or variable; never another exception, never NaN,
infinity, a negative duration, a port past 65535 or a concurrency past the limit in the options.

In process (`options_from` is what `metalcubed manager` runs before anything starts);
tests/unit/runtime/test_manager_cli.py runs whole commands for each class."""

import contextlib
import io
import math
import os
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from metalcubed.cli import main as cli
from metalcubed.cli import manager as manager_cli
from metalcubed.controllers import manager
from metalcubed.controllers.kube import health

VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["nan", "NaN", "inf", "-inf", "1e309", "1e300", "-1", "0", "-0", "1.5",
                     "9" * 5000, "100000", "257", "256", "31536001", " 7 ", "0x10", "٣",
                     "127.0.0.1:99999", ":-1", "[::1]:8080", "Bad_NS!", "a" * 64, "UPPER",
                     "team-a", "x.y", ""]),
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
FLAGS = [
    "--concurrency", "--kube-api-qps", "--kube-api-burst", "--metrics-bind-address",
    "--health-probe-bind-address", "--namespace", "--leader-election-namespace",
    "--leader-election-id", "--lease-duration-seconds", "--renew-deadline-seconds",
    "--retry-period-seconds", "--max-provisioning-retries", "--fixture-delay-scale",
    "--agent-timeout-seconds", "--engine-poll-seconds", "--ramdisk-timeout-seconds",
    "--agent-api-bind-address", "--agent-api-url",
]
VARIABLES = ["BMO_CONCURRENCY", "PROVISIONING_LIMIT", "LEASE_DURATION_SECONDS",
             "RENEW_DEADLINE_SECONDS", "RETRY_PERIOD_SECONDS", "WATCH_NAMESPACE",
             "POD_NAMESPACE", "DEPLOY_ISO_URL"]
BASE = ["manager", "--agent-api-bind-address=127.0.0.1:6385",
        "--boot-server-bind-address=127.0.0.1:6180"]
CLEAN = {k: v for k, v in os.environ.items() if k not in VARIABLES}


def _check(options: manager.ManagerOptions) -> None:
    """What no accepted value may leave in the options."""
    assert 1 <= options.concurrency <= manager.MAX_CONCURRENCY
    for value in (options.kube_api_qps, options.lease_duration_s, options.renew_deadline_s,
                  options.retry_period_s, options.agent_timeout_s, options.engine.poll_s,
                  options.engine.ramdisk_timeout_s):
        assert math.isfinite(value) and value > 0
    assert options.kube_api_burst >= 1 and options.max_provisioning_retries >= 0
    for address in (options.metrics_bind_address, options.health_probe_bind_address):
        at = health.parse_address(address)
        assert at is None or 0 <= at[1] <= 65535


def _options(argv: list[str], env: dict[str, str]) -> tuple[manager.ManagerOptions | None, str]:
    err = io.StringIO()
    with mock.patch.dict(os.environ, {**CLEAN, **env}, clear=True), \
            contextlib.redirect_stderr(err):
        try:
            args = cli.build_parser("manager").parse_args(argv)
        except SystemExit as exc:
            assert exc.code == 2
            return None, err.getvalue()
        try:
            return manager_cli.options_from(args), ""
        except ValueError as exc:
            return None, str(exc)


@settings(max_examples=400, deadline=None)
@given(flag=st.sampled_from(FLAGS), value=VALUES)
def test_a_hostile_flag_value_is_accepted_in_range_or_refused_by_name(
        flag: str, value: str) -> None:
    options, error = _options([*BASE, f"{flag}={value}"], {})
    if options is None:
        assert flag in error, error
    else:
        _check(options)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(VARIABLES), value=VALUES.filter(lambda v: "\x00" not in v))
def test_a_hostile_variable_is_accepted_in_range_or_refused_by_name(
        name: str, value: str) -> None:
    options, error = _options(list(BASE), {name: value})
    if options is None:
        assert name in error, error
    else:
        _check(options)
