"""The local control plane: certificates, kubeconfig, CLI start/stop from separate processes."""

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from metalcubed.controllers.kube import localcluster

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def test_build_script_defaults_match_the_python_constants() -> None:
    script = localcluster.build_script().read_text()
    assert f"KV=${{KUBE_VERSION:-{localcluster.KUBE_VERSION}}}" in script
    assert f"EV=${{ETCD_VERSION:-{localcluster.ETCD_VERSION}}}" in script


def test_tests_wrapper_delegates_to_the_packaged_build_script() -> None:
    wrapper = (Path(__file__).parent / "build-kube.sh").read_text()
    assert "controllers/kube/build-kube.sh" in wrapper


def test_pki_serves_loopback_and_authenticates_admin_as_system_masters(tmp_path: Path) -> None:
    pki = localcluster.ensure_pki(tmp_path)
    serving = x509.load_pem_x509_certificate(pki.serving_cert.read_bytes())
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    admin = x509.load_pem_x509_certificate(pki.admin_cert.read_bytes())
    orgs = [a.value for a in admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert orgs == ["system:masters"]
    usage = admin.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert oct(pki.admin_key.stat().st_mode & 0o777) == "0o600"


def test_pki_is_generated_once_per_directory(tmp_path: Path) -> None:
    first = localcluster.ensure_pki(tmp_path).ca_cert.read_bytes()
    assert localcluster.ensure_pki(tmp_path).ca_cert.read_bytes() == first


def test_session_cluster_answers_kubectl(kubectl: Kubectl) -> None:
    out = kubectl("get", "ns", "-o", "name").stdout.split()
    assert "namespace/default" in out and "namespace/kube-system" in out
    assert "v1.36" in kubectl("version").stdout


def test_session_cluster_serves_our_crds_with_short_names(kubectl: Kubectl) -> None:
    names = kubectl("api-resources", "--api-group=metal3.io", "-o", "name").stdout.split()
    assert set(names) >= {"baremetalhosts.metal3.io", "hardwaredata.metal3.io"}
    assert kubectl("get", "bmh", "-A").returncode == 0


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metalcubed.cli", "kube", *args],
        capture_output=True, text=True, timeout=180, env=env,
    )


def test_cli_start_then_stop_from_separate_processes(
    kube_binaries: localcluster.Binaries, tmp_path: Path
) -> None:
    directory = tmp_path / "cluster"
    env = dict(os.environ, **{localcluster.BIN_ENV: str(kube_binaries.directory)})
    started = _cli("start", "--dir", str(directory), env=env)
    try:
        assert started.returncode == 0, started.stderr
        kubeconfig = started.stdout.strip()
        assert kubeconfig == str(directory / "kubeconfig")
        assert re.search(r"started in [0-9.]+ s", started.stderr)
        cluster = localcluster.load(directory)
        assert cluster is not None and localcluster.is_running(cluster)
        assert kube_binaries.kubectl is not None
        got = subprocess.run(
            [str(kube_binaries.kubectl), "--kubeconfig", kubeconfig, "get", "ns", "default"],
            capture_output=True, text=True, timeout=60,
        )
        assert got.returncode == 0, got.stderr
        again = _cli("start", "--dir", str(directory), env=env)
        assert again.returncode == 0 and "already running" in again.stderr
        assert _cli("status", "--dir", str(directory), env=env).returncode == 0
    finally:
        stopped = _cli("stop", "--dir", str(directory), env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert "kube-apiserver" in stopped.stderr and "etcd" in stopped.stderr
    assert not any(localcluster.is_alive(p) for p in cluster.processes)
    assert localcluster.load(directory) is None
    assert "nothing was running" in _cli("stop", "--dir", str(directory), env=env).stderr


def test_build_script_reuses_a_complete_cache_without_go(
    kube_binaries: localcluster.Binaries, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / f"k8s-{localcluster.KUBE_VERSION}-etcd-{localcluster.ETCD_VERSION}"
    out.mkdir()
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl"):
        source = kube_binaries.directory / name
        if not source.exists():
            pytest.skip(f"{name} not in {kube_binaries.directory}")
        (out / name).symlink_to(source)
    monkeypatch.setenv(localcluster.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(localcluster.BIN_ENV, raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no Go: a cache hit must not need it
    assert localcluster.find_binaries() == localcluster.Binaries(directory=out)
    assert localcluster.build_binaries(progress=None).directory == out


def test_bin_override_without_binaries_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(localcluster.BIN_ENV, str(tmp_path))
    with pytest.raises(localcluster.LocalClusterError, match="holds no kube-apiserver"):
        localcluster.find_binaries()


def test_build_without_go_fails_naming_the_build_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(localcluster.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(localcluster.BIN_ENV, raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert localcluster.find_binaries() is None
    with pytest.raises(localcluster.LocalClusterError, match=r"exit 3.*build-kube\.sh"):
        localcluster.build_binaries(progress=None)
