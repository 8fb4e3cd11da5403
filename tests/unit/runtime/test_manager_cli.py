"""`metalcubed manager` flags and environment: the engine's settings, and bad values refused with
exit status 2 and a message naming the flag or variable, before any API server is contacted."""

import subprocess
import sys
from pathlib import Path

import pytest

from metalcubed.cli import main as cli
from metalcubed.cli import manager as manager_cli
from metalcubed.controllers import manager
from metalcubed.controllers.kube import metricsauth

ENGINE_FLAGS = ("--agent-api-bind-address", "--agent-api-url", "--boot-server-bind-address",
                "--boot-server-url")
LOOPBACK = ("--agent-api-bind-address", "127.0.0.1:6385",
            "--boot-server-bind-address", "127.0.0.1:6180")
FIXTURE = ("--provisioner", "fixture")
UPSTREAM_ENV = ("DEPLOY_ISO_URL", "DEPLOY_KERNEL_URL", "DEPLOY_RAMDISK_URL", "PROVISIONING_LIMIT",
                "LEASE_DURATION_SECONDS", "RENEW_DEADLINE_SECONDS", "RETRY_PERIOD_SECONDS",
                "BMO_CONCURRENCY", "WATCH_NAMESPACE", "POD_NAMESPACE")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in UPSTREAM_ENV:
        monkeypatch.delenv(name, raising=False)


def _options(*argv: str) -> manager.ManagerOptions:
    args = cli.build_parser().parse_args(["manager", *argv])
    return manager_cli.options_from(args)


def _run(argv: list[str]) -> int:
    try:
        return cli.main(["manager", *argv])
    except SystemExit as exc:  # argparse rejects a bad type or choice itself
        return int(exc.code or 0)


def test_help_offers_the_engine_as_default_and_its_flags() -> None:
    done = subprocess.run([sys.executable, "-m", "metalcubed.cli", "manager", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "{engine,fixture}" in text and "default engine" in text
    for flag in ENGINE_FLAGS:
        assert flag in text
    for name in ("DEPLOY_ISO_URL", "DEPLOY_KERNEL_URL", "DEPLOY_RAMDISK_URL",
                 "PROVISIONING_LIMIT"):
        assert name in text


def test_engine_settings_come_from_flags_and_upstream_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEPLOY_KERNEL_URL", "http://10.0.0.2:6180/files/ipa.kernel")
    monkeypatch.setenv("DEPLOY_RAMDISK_URL", "http://10.0.0.2:6180/files/ipa.initramfs")
    monkeypatch.setenv("PROVISIONING_LIMIT", "7")
    options = _options("--agent-api-bind-address", ":6385",
                       "--agent-api-url", "http://10.0.0.2:6385/",
                       "--boot-server-bind-address", "0.0.0.0:6180",
                       "--boot-server-url", "http://10.0.0.2:6180",
                       "--engine-poll-seconds", "2.5")
    assert options.provisioner == "engine"
    config = manager.engine_service_config(options)
    assert (config.api_host, config.api_port) == ("0.0.0.0", 6385)
    assert config.api_external_url == "http://10.0.0.2:6385"
    assert (config.boot_host, config.boot_port) == ("0.0.0.0", 6180)
    assert config.boot_external_url == "http://10.0.0.2:6180"
    assert config.deploy_kernel_url.endswith("/ipa.kernel")
    assert config.deploy_ramdisk_url.endswith("/ipa.initramfs")
    assert config.provisioning_limit == 7
    assert config.engine.poll_s == 2.5


def test_the_fixture_needs_no_engine_flags() -> None:
    options = _options("--provisioner", "fixture", "--fixture-delay-scale", "0.5")
    assert options.provisioner == "fixture"
    assert options.fixture_delays.register_s > 0


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        pytest.param([*LOOPBACK], {"PROVISIONING_LIMIT": "abc"}, "PROVISIONING_LIMIT",
                     id="limit-not-a-number"),
        pytest.param([*LOOPBACK], {"PROVISIONING_LIMIT": "0"}, "PROVISIONING_LIMIT",
                     id="limit-zero"),
        pytest.param([*LOOPBACK], {"LEASE_DURATION_SECONDS": "abc"}, "LEASE_DURATION_SECONDS",
                     id="lease-duration"),
        pytest.param([*LOOPBACK], {"DEPLOY_ISO_URL": "ftp://x/ipa.iso"}, "DEPLOY_ISO_URL",
                     id="iso-url-scheme"),
        pytest.param([*LOOPBACK], {"DEPLOY_KERNEL_URL": "http://x/k"}, "DEPLOY_RAMDISK_URL",
                     id="kernel-without-ramdisk"),
        pytest.param([], {}, "--agent-api-url", id="wildcard-bind-without-url"),
        pytest.param(["--agent-api-bind-address", "nonsense", "--agent-api-url", "http://a"],
                     {}, "--agent-api-bind-address", id="bind-not-host-port"),
        pytest.param(["--agent-api-bind-address", "127.0.0.1:99999"], {},
                     "--agent-api-bind-address", id="bind-port-out-of-range"),
        pytest.param([*LOOPBACK, "--boot-server-url", "boot.example"], {}, "--boot-server-url",
                     id="boot-url-not-a-url"),
        pytest.param([*LOOPBACK, "--agent-api-url", "http://"], {}, "--agent-api-url",
                     id="agent-url-without-host"),
        pytest.param([*LOOPBACK, "--engine-poll-seconds", "0"], {}, "--engine-poll-seconds",
                     id="poll-zero"),
        pytest.param([*LOOPBACK, "--engine-poll-seconds", "abc"], {}, "--engine-poll-seconds",
                     id="poll-not-a-number"),
        pytest.param([*LOOPBACK, "--boot-files-dir", "/nonexistent/dir"], {},
                     "--boot-files-dir", id="files-dir-missing"),
        pytest.param(["--provisioner", "ironic"], {}, "--provisioner", id="unknown-provisioner"),
        pytest.param(["--provisioner", "fixture", "--concurrency", "-1"], {}, "--concurrency",
                     id="negative-concurrency"),
        pytest.param(["--provisioner", "fixture", "--metrics-bind-address", "x"], {},
                     "--metrics-bind-address", id="metrics-address"),
        # Issue 14, bad input, class by class.
        pytest.param([*FIXTURE, "--metrics-bind-address", "127.0.0.1:99999"], {},
                     "--metrics-bind-address", id="metrics-port-out-of-range"),
        pytest.param([*FIXTURE, "--health-probe-bind-address", ":-1"], {},
                     "--health-probe-bind-address", id="health-port-negative"),
        pytest.param([*FIXTURE, "--metrics-bind-address", "127.0.0.1:" + "9" * 5000], {},
                     "--metrics-bind-address", id="metrics-port-5000-digits"),
        pytest.param([*FIXTURE, "--concurrency", "100000"], {}, "--concurrency",
                     id="concurrency-past-limit"),
        pytest.param([*FIXTURE], {"BMO_CONCURRENCY": "100000"}, "BMO_CONCURRENCY",
                     id="env-concurrency-past-limit"),
        pytest.param([*FIXTURE, "--kube-api-qps", "-5"], {}, "--kube-api-qps", id="qps-negative"),
        pytest.param([*FIXTURE, "--kube-api-qps", "nan"], {}, "--kube-api-qps", id="qps-nan"),
        pytest.param([*FIXTURE, "--kube-api-qps", "inf"], {}, "--kube-api-qps", id="qps-inf"),
        pytest.param([*FIXTURE, "--kube-api-burst", "0"], {}, "--kube-api-burst",
                     id="burst-zero"),
        pytest.param([*FIXTURE, "--max-provisioning-retries", "-1"], {},
                     "--max-provisioning-retries", id="retries-negative"),
        pytest.param([*FIXTURE, "--namespace", "Bad_NS!"], {}, "--namespace",
                     id="namespace-not-dns-label"),
        pytest.param([*FIXTURE, "--namespace", "a" * 64], {}, "--namespace",
                     id="namespace-too-long"),
        pytest.param([*FIXTURE], {"WATCH_NAMESPACE": "Bad_NS!"}, "WATCH_NAMESPACE",
                     id="env-namespace-not-dns-label"),
        pytest.param([*FIXTURE, "--leader-election-namespace", "x y"], {},
                     "--leader-election-namespace", id="lease-namespace"),
        pytest.param([*FIXTURE], {"POD_NAMESPACE": "UPPER"}, "POD_NAMESPACE",
                     id="env-pod-namespace"),
        pytest.param([*FIXTURE, "--leader-election-id", "Lease!"], {}, "--leader-election-id",
                     id="lease-name"),
        pytest.param([*FIXTURE, "--lease-duration-seconds", "nan"], {},
                     "--lease-duration-seconds", id="lease-nan"),
        pytest.param([*FIXTURE, "--renew-deadline-seconds", "-1"], {},
                     "--renew-deadline-seconds", id="renew-negative"),
        pytest.param([*FIXTURE], {"RETRY_PERIOD_SECONDS": "nan"}, "RETRY_PERIOD_SECONDS",
                     id="env-retry-nan"),
        pytest.param([*FIXTURE, "--lease-duration-seconds", "5"], {},
                     "--lease-duration-seconds", id="lease-shorter-than-renew"),
        pytest.param([*FIXTURE, "--retry-period-seconds", "9"], {}, "--retry-period-seconds",
                     id="retry-too-close-to-renew"),
        pytest.param([*FIXTURE, "--fixture-delay-scale", "nan"], {}, "--fixture-delay-scale",
                     id="delay-scale-nan"),
        pytest.param([*FIXTURE, "--fixture-delay-scale", "1e300"], {},
                     "--fixture-delay-scale", id="delay-scale-huge"),
        pytest.param([*LOOPBACK, "--agent-timeout-seconds", "nan"], {},
                     "--agent-timeout-seconds", id="agent-timeout-nan"),
        pytest.param([*LOOPBACK, "--ramdisk-timeout-seconds", "inf"], {},
                     "--ramdisk-timeout-seconds", id="ramdisk-timeout-inf"),
        pytest.param([*LOOPBACK, "--engine-poll-seconds", "1e300"], {},
                     "--engine-poll-seconds", id="poll-past-a-year"),
        pytest.param([*FIXTURE, "--metrics-secure", "--metrics-cert-path", "/nonexistent"],
                     {}, "--metrics-cert-path", id="metrics-cert-dir-missing"),
        pytest.param([*FIXTURE, "--metrics-secure", "--metrics-cert-path", "/"], {},
                     "--metrics-cert-name", id="metrics-cert-file-missing"),
        pytest.param([*FIXTURE, "--metrics-cert-path", "/"], {}, "--metrics-secure",
                     id="metrics-cert-without-secure"),
    ],
)
def test_bad_values_exit_2_naming_the_flag_or_variable(
    argv: list[str], env: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # An unreachable kubeconfig: a bad value must be refused before it is read.
    assert _run(["--kubeconfig", str(tmp_path / "none"), *argv]) == 2
    err = capsys.readouterr().err
    assert named in err
    assert "Traceback" not in err


def test_a_bad_variable_is_named_by_the_real_command_too(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "metalcubed.cli", "manager", "--kubeconfig",
         str(tmp_path / "none"), *LOOPBACK],
        capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "PROVISIONING_LIMIT": "abc",
             "PYTHONPATH": ":".join(sys.path)},
    )
    assert done.returncode == 2
    assert "PROVISIONING_LIMIT='abc' is not an integer" in done.stderr
    assert "Traceback" not in done.stderr


def test_metrics_listen_on_loopback_and_probes_on_every_interface_by_default() -> None:
    options = _options(*FIXTURE)
    assert options.metrics_bind_address == "127.0.0.1:8080"
    assert options.health_probe_bind_address == ":9440"
    assert not options.metrics_secure
    assert manager.ManagerOptions().metrics_bind_address == "127.0.0.1:8080"


def test_the_limits_themselves_are_accepted() -> None:
    options = _options(*FIXTURE, "--concurrency", str(manager.MAX_CONCURRENCY),
                       "--namespace", "team-a", "--lease-duration-seconds", "20",
                       "--engine-poll-seconds", str(manager_cli.MAX_SECONDS))
    assert options.concurrency == manager.MAX_CONCURRENCY
    assert options.namespace == "team-a"


def test_secure_metrics_load_the_given_certificate_or_make_one(tmp_path: Path) -> None:
    """The self-signed pair loads; a given pair that is not a certificate is refused by name."""
    cert, key = metricsauth.self_signed()
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    assert metricsauth.server_context(tmp_path / "tls.crt", tmp_path / "tls.key")
    assert metricsauth.server_context()
    (tmp_path / "tls.crt").write_text("not a certificate")
    with pytest.raises(ValueError, match="--metrics-cert-path"):
        metricsauth.server_context(tmp_path / "tls.crt", tmp_path / "tls.key")
