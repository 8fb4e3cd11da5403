"""Helpers for the manager's end-to-end tests: run `metalcubed manager` as a user would (a
separate process, flags, a kubeconfig), read its probes and metrics, and look at hosts with the
official client. Every process started here is killed by PID by the test that started it.

(No tests in this module; it holds what test_e2e_*.py and test_manager_*.py share.)
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

GROUP, VERSION, PLURAL = "metal3.io", "v1alpha1", "baremetalhosts"
EXAMPLES = Path(__file__).resolve().parents[1] / "unit" / "api" / "upstream" / "examples"
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    predicate: Callable[[], bool], *, timeout_s: float = 30.0, interval_s: float = 0.1,
    what: str = "condition",
) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout_s} s")
        time.sleep(interval_s)


@dataclass
class ManagerProcess:
    """One `metalcubed manager` subprocess with its own probe and metrics ports."""

    kubeconfig: Path
    namespace: str
    log_path: Path
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    metrics_port: int = field(default_factory=free_port)
    health_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "ManagerProcess":
        argv = [
            sys.executable, "-m", "metalcubed.cli", "manager",
            "--kubeconfig", str(self.kubeconfig),
            "--namespace", self.namespace,
            "--metrics-bind-address", f"127.0.0.1:{self.metrics_port}",
            "--health-probe-bind-address", f"127.0.0.1:{self.health_port}",
            "--provisioner", "fixture",  # the default is the engine; its tests pass their own
            *self.args,
        ]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
            env={**os.environ, **self.env},
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        def ready() -> bool:
            assert self.alive(), f"manager exited early:\n{self.log()}"
            return self.http(self.health_port, "/readyz")[0] == 200

        wait_until(ready, timeout_s=timeout_s, what="manager /readyz")

    def http(self, port: int, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, ""

    def metrics(self) -> dict[str, float]:
        """Every sample of /metrics, keyed by its exposition line name (labels included)."""
        code, text = self.http(self.metrics_port, "/metrics")
        assert code == 200, f"/metrics answered {code}"
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def metric_sum(self, prefix: str) -> float:
        return sum(v for k, v in self.metrics().items() if k.split("{")[0] == prefix)

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, wait for a graceful exit; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def kill(self) -> None:
        """SIGKILL by PID (kill -9), then reap."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-5000:]
        except OSError:
            return ""


@contextlib.contextmanager
def running_manager(
    kubeconfig: Path, namespace: str, log_path: Path, *args: str, ready: bool = True,
    env: dict[str, str] | None = None,
) -> Iterator[ManagerProcess]:
    mgr = ManagerProcess(kubeconfig, namespace, log_path, tuple(args), env or {}).start()
    try:
        if ready:
            mgr.wait_ready()
        yield mgr
    finally:
        mgr.kill()


# --- hosts through the official client ---------------------------------------------------------


def hosts_api(api: k8s.ApiClient) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(api)


def get_host(api: k8s.ApiClient, ns: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = hosts_api(api).get_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, name
    )
    return obj


def list_hosts(api: k8s.ApiClient, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = hosts_api(api).list_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL
    )["items"]
    return items


def state(host: dict[str, Any]) -> str:
    return str(((host.get("status") or {}).get("provisioning") or {}).get("state") or "")


def patch_host(api: k8s.ApiClient, ns: str, name: str, patch: dict[str, Any]) -> None:
    hosts_api(api).patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, patch)


def host_exists(api: k8s.ApiClient, ns: str, name: str) -> bool:
    try:
        get_host(api, ns, name)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def events_for(api: k8s.ApiClient, ns: str, name: str) -> list[dict[str, Any]]:
    core = k8s.CoreV1Api(api)
    found = core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}")
    return [api.sanitize_for_serialization(e) for e in found.items]


def create_secret(api: k8s.ApiClient, ns: str, name: str, username: str = "admin",
                  password: str = "password") -> None:
    k8s.CoreV1Api(api).create_namespaced_secret(
        ns, {"metadata": {"name": name}, "stringData": {"username": username,
                                                       "password": password}},
    )


def create_host(api: k8s.ApiClient, ns: str, name: str, *, secret: str,
                annotations: dict[str, str] | None = None, **spec: Any) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "BareMetalHost",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"online": True, "bmc": {"address": "ipmi://192.0.2.10:623",
                                         "credentialsName": secret}, **spec},
    }
    hosts_api(api).create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
