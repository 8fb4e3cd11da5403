"""Starting, asking and stopping a background lab: the client side of `metalcubed devenv`.

A lab lives in a directory (default `~/.cache/metalcubed/devenv`, or `$XDG_CACHE_HOME/...`):

| file | written by | what |
|---|---|---|
| config.json | `up` | the LabConfig (mode 0600: it holds the BMC password; deleted by `down`) |
| lab.pid | `up` | the lab process's pid, from the moment it is started |
| lab.log | the lab process | its log (and its BMC processes') |
| state.json | the lab process, once ready | pid, control endpoint, services, BMC processes |
| failed.json | the lab process | why it could not start |
| manifests/ | the lab process | `<host>.yaml`: the host's Secret and BareMetalHost (0600) |

Files holding the BMC password are the owner's only; `down` deletes them (the manifests and
config.json).
`up` refuses to start a second lab in the same directory. `down` sends SIGTERM to the lab
process, which stops everything it started; after `timeout_s` it sends SIGKILL to it and to
any BMC process still alive (they also exit on their own when the lab process dies, since their
stdin is a pipe from it). A pid is only signalled while /proc says it still runs one of our
modules, so a recycled pid is never hit.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metalcubed.simulators.devenv import config as lab_config
from metalcubed.simulators.devenv import status

CONFIG = "config.json"
STATE = "state.json"
FAILED = "failed.json"
LOG = "lab.log"
PID = "lab.pid"
MANIFESTS = "manifests"
MODULE_MARK = b"metalcubed.simulators.devenv"


def write_private(path: Path, text: str) -> None:
    """Write `text` atomically, readable by the owner only (it may hold the BMC password)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class DevenvError(Exception):
    """A failure to report to the user (exit status 1)."""


class NotRunning(DevenvError):
    pass


def default_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "metalcubed" / "devenv"


# --- processes ----------------------------------------------------------------------------------


def is_ours(pid: int) -> bool:
    """`pid` runs a devenv module (lab or BMC shard) and is not a zombie."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return MODULE_MARK in cmdline and state != "Z"


def _signal(pid: int, sig: signal.Signals) -> None:
    if is_ours(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    left = [p for p in pids if is_ours(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if is_ours(p)]
    return left


# --- state ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Running:
    directory: Path
    pid: int
    url: str
    """The control endpoint; "" while the lab is still starting."""
    lab: dict[str, Any]

    @property
    def bmc_pids(self) -> list[int]:
        return [int(p) for p in self.lab.get("bmcProcesses", [])]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _recorded_pid(directory: Path) -> int | None:
    try:
        return int((directory / PID).read_text().strip())
    except (OSError, ValueError):
        return None


def running(directory: Path) -> Running | None:
    """The lab running in `directory`, if its process is alive."""
    state = _read_json(directory / STATE)
    pid = int(state["pid"]) if state else _recorded_pid(directory)
    if pid is None or not is_ours(pid):
        return None
    if state is None:
        return Running(directory, pid, "", {})
    return Running(directory, pid, str(state["url"]), dict(state.get("lab", {})))


# --- up -------------------------------------------------------------------------------------------


def check_kubeconfig(path: str) -> None:
    """Raise ConfigError("--kubeconfig", ...) unless `path` reaches an API server serving the
    metal3.io CRDs."""
    from kubernetes import client as k8s

    from metalcubed.controllers.kube import client as kube_client

    if not Path(path).is_file():
        raise lab_config.ConfigError("--kubeconfig", f"{path}: no such file")
    try:
        configuration = kube_client.load_configuration(path)
    except ValueError as err:
        raise lab_config.ConfigError("--kubeconfig", f"{path}: {err}") from err
    configuration.retries = 0
    api = k8s.ApiClient(configuration)
    try:
        try:
            k8s.VersionApi(api).get_code(_request_timeout=5)
        except k8s.ApiException as err:
            raise lab_config.ConfigError(
                "--kubeconfig", f"the API server at {configuration.host} refused us: HTTP "
                f"{err.status} {err.reason}") from err
        except Exception as err:  # urllib3 raises many kinds; all mean "cannot reach it"
            raise lab_config.ConfigError(
                "--kubeconfig", f"the API server at {configuration.host} is unreachable "
                f"({type(err).__name__})") from err
        try:
            k8s.CustomObjectsApi(api).list_namespaced_custom_object(
                "metal3.io", "v1alpha1", "default", "baremetalhosts", limit=1,
                _request_timeout=5)
        except k8s.ApiException as err:
            if err.status == 404:
                raise lab_config.ConfigError(
                    "--kubeconfig", f"the API server at {configuration.host} does not serve "
                    "BareMetalHosts: install the CRDs first (metalcubed crds | kubectl apply "
                    "-f -)") from err
            raise lab_config.ConfigError(
                "--kubeconfig", f"cannot list BareMetalHosts at {configuration.host}: HTTP "
                f"{err.status} {err.reason}") from err
    finally:
        api.close()


def up(config: lab_config.LabConfig, directory: Path, *, start_timeout_s: float = 180.0
       ) -> Running:
    """Start a lab in the background and return once it is up (hosts enrolled).

    Raises ConfigError for bad settings, DevenvError when a lab already runs there or this one
    fails to start (with the reason from its log).
    """
    lab_config.check(config)
    if config.backend == "libvirt":  # a first run builds the deploy ramdisk and OS image
        start_timeout_s = max(start_timeout_s, 1200.0)
    directory = directory.resolve()
    if config.kubeconfig is not None:
        config = lab_config.LabConfig(**{**_fields(config),
                                         "kubeconfig": str(Path(config.kubeconfig).resolve())})
        check_kubeconfig(config.kubeconfig or "")
    directory.mkdir(parents=True, exist_ok=True)
    current = running(directory)
    if current is not None:
        raise DevenvError(f"a lab is already running in {directory} (pid {current.pid}); "
                          "stop it first with: metalcubed devenv down"
                          + ("" if directory == default_dir() else f" --dir {directory}"))
    for name in (STATE, FAILED, PID):
        (directory / name).unlink(missing_ok=True)
    write_private(directory / CONFIG, config.to_json())
    with open(directory / LOG, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "metalcubed.simulators.devenv.process",
             "--dir", str(directory)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )
    (directory / PID).write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + start_timeout_s
    while True:
        state = _read_json(directory / STATE)
        if state is not None:
            return Running(directory, int(state["pid"]), str(state["url"]),
                           dict(state.get("lab", {})))
        failed = _read_json(directory / FAILED)
        code = proc.poll()
        if failed is not None or code is not None:
            proc.wait(timeout=30)
            (directory / PID).unlink(missing_ok=True)
            _teardown_libvirt(directory)  # whatever a failed libvirt lab left, if anything
            reason = (failed or {}).get("error") or f"the lab process exited with status {code}"
            raise DevenvError(f"the lab did not start: {reason} (log: {directory / LOG})")
        if time.monotonic() > deadline:
            _stop(proc.pid, [], timeout_s=60)
            (directory / PID).unlink(missing_ok=True)
            _teardown_libvirt(directory)
            raise DevenvError(f"the lab did not start within {start_timeout_s:.0f} s "
                              f"(log: {directory / LOG})")
        time.sleep(0.1)


def _fields(config: lab_config.LabConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in config.__dataclass_fields__}


# --- asking ---------------------------------------------------------------------------------------


def call(lab: Running, path: str, *, method: str = "GET", timeout_s: float = 30.0
         ) -> dict[str, Any]:
    """One request to the lab's control endpoint."""
    if not lab.url:
        raise DevenvError(f"the lab in {lab.directory} is still starting (pid {lab.pid})")
    request = urllib.request.Request(f"{lab.url}{path}", method=method,
                                     data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as rsp:
            doc = json.loads(rsp.read())
    except (OSError, ValueError) as err:
        raise DevenvError(f"the lab's control endpoint {lab.url} did not answer: {err}") from err
    if not isinstance(doc, dict):
        raise DevenvError(f"the lab's control endpoint {lab.url} answered nonsense")
    return doc


def require(directory: Path) -> Running:
    lab = running(directory)
    if lab is None:
        raise NotRunning(f"no lab is running in {directory} (start one with: metalcubed "
                         "devenv up --hosts N)")
    return lab


def snapshot(directory: Path) -> dict[str, Any]:
    """What `devenv status --json` prints: from the lab's memory store, or from the API
    server when the lab runs against one."""
    lab = require(directory)
    if lab.lab.get("store") != "kubernetes" or lab.lab.get("backend") == "libvirt":
        return call(lab, "/status")  # the libvirt lab adds each VM's domain and state
    return _kube_snapshot(lab)


def _kube_snapshot(lab: Running) -> dict[str, Any]:
    from metalcubed.controllers.kube import client as kube_client
    from metalcubed.controllers.kube import store as kube_store
    from metalcubed.core.api import baremetalhost as bmh

    configuration = kube_client.load_configuration(lab.lab["kubeconfig"])
    api = kube_client.new_client(configuration, qps=0, burst=1, connections=2)
    try:
        hosts = kube_store.K8sStore(api).list(
            bmh.BareMetalHost, namespace=lab.lab["namespace"],
            label_selector=f"metalcubed.io/devenv={lab.lab['id']}")
    finally:
        api.close()
    host_rows = status.rows(hosts)
    return {"lab": lab.lab, "summary": status.summary(host_rows), "hosts": host_rows,
            "events": []}


def provision(directory: Path) -> dict[str, Any]:
    return call(require(directory), "/provision", method="POST")


# --- down -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stopped:
    lab: int | None
    """The lab process's pid, if it was running."""
    bmc: tuple[int, ...]
    """BMC processes that were still running."""
    libvirt: tuple[str, ...] = ()
    """What a libvirt lab's ledger still held (domains, network, pool, processes, chains) and
    `down` removed: left by a lab process that died or failed half way."""

    def __bool__(self) -> bool:
        return self.lab is not None or bool(self.bmc) or bool(self.libvirt)


def _stop(pid: int, bmc_pids: list[int], *, timeout_s: float) -> Stopped:
    """SIGTERM `pid`, wait, then SIGKILL it and any BMC process left."""
    result = Stopped(pid if is_ours(pid) else None, tuple(p for p in bmc_pids if is_ours(p)))
    _signal(pid, signal.SIGTERM)
    for p in _wait_gone([pid], timeout_s):
        _signal(p, signal.SIGKILL)
    # BMC processes exit when the lab process does (their stdin closes); kill any that hang.
    for p in _wait_gone(bmc_pids, 5.0):
        _signal(p, signal.SIGKILL)
    _wait_gone([pid, *bmc_pids], 5.0)
    return result


def down(directory: Path, *, timeout_s: float = 120.0) -> Stopped:
    """Stop the lab in `directory` and everything it started. Idempotent: a second call (or
    one with no lab) returns an empty (false) Stopped."""
    state = _read_json(directory / STATE) or {}
    pid = int(state["pid"]) if "pid" in state else _recorded_pid(directory)
    bmc_pids = [int(p) for p in state.get("lab", {}).get("bmcProcesses", [])]
    stopped = Stopped(None, ())
    if pid is not None:
        stopped = _stop(pid, bmc_pids, timeout_s=timeout_s)
    removed = _teardown_libvirt(directory)
    if removed and not stopped:
        stopped = Stopped(None, (), tuple(removed))
    elif removed:
        stopped = Stopped(stopped.lab, stopped.bmc, tuple(removed))
    for name in (STATE, PID, CONFIG):  # config.json holds the BMC password too
        (directory / name).unlink(missing_ok=True)
    remove_manifests(directory)
    return stopped


def _teardown_libvirt(directory: Path) -> list[str]:
    """Undo what a libvirt lab's ledger still records (the lab process normally did it and
    removed the ledger; after a kill -9 or a failed start it is still there)."""
    from metalcubed.simulators.devenv.libvirtlab import ledger

    if ledger.load(directory) is None:
        return []
    return ledger.teardown(directory)


def remove_manifests(directory: Path) -> None:
    """Delete the lab's manifests (they hold the BMC password); only our `*.yaml` files, and
    the folder once empty."""
    folder = directory / MANIFESTS
    for path in folder.glob("*.yaml"):
        path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()


Snapshot = dict[str, Any]


def wait_for(directory: Path, done: Callable[[Snapshot], bool], *, timeout_s: float,
             on_progress: Callable[[Snapshot], None] | None = None, poll_s: float = 0.5
             ) -> Snapshot:
    """Poll the lab's status until `done(snapshot)` holds or `timeout_s` passes; returns the
    last snapshot (check it with `done` again to know which)."""
    deadline = time.monotonic() + timeout_s
    while True:
        snap = snapshot(directory)
        if on_progress is not None:
            on_progress(snap)
        if done(snap) or time.monotonic() > deadline:
            return snap
        time.sleep(poll_s)
