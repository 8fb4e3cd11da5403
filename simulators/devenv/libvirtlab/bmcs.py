"""The lab's BMCs for real domains, as metal3-dev-env runs them: sushy-tools' Redfish emulator
with its libvirt driver, and virtualbmc (one IPMI endpoint per domain), all on 127.0.0.1.

Both run as child processes with their configuration in the lab directory; each is recorded
in the ledger with a mark (its config path: in sushy's command line, in vbmcd's environment)
so teardown signals only that process, never a recycled pid.
"""

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from metalcubed.simulators.devenv.libvirtlab import domainxml


class BmcError(RuntimeError):
    pass


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def sushy_config(*, port: int, pool: str, uuids: Sequence[str], auth_file: Path) -> str:
    loaders = {"UEFI": {"x86_64": domainxml.OVMF_CODE}, "Legacy": {"x86_64": None}}
    return "\n".join([
        "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'",
        f"SUSHY_EMULATOR_LISTEN_PORT = {port}",
        "SUSHY_EMULATOR_LIBVIRT_URI = 'qemu:///system'",
        f"SUSHY_EMULATOR_STORAGE_POOL = {pool!r}",
        f"SUSHY_EMULATOR_BOOT_LOADER_MAP = {loaders!r}",
        f"SUSHY_EMULATOR_SECURE_BOOT_DISABLED_NVRAM = {domainxml.OVMF_VARS!r}",
        f"SUSHY_EMULATOR_ALLOWED_INSTANCES = {list(uuids)!r}",
        f"SUSHY_EMULATOR_AUTH_FILE = {str(auth_file)!r}",
        "",
    ])


def htpasswd(username: str, password: str) -> str:
    import bcrypt

    digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=6)).decode()
    return f"{username}:{digest}\n"


class Sushy:
    """sushy-emulator serving the lab's domains (only those: ALLOWED_INSTANCES)."""

    def __init__(self, directory: Path, *, pool: str, uuids: Sequence[str], username: str,
                 password: str, log: IO[str] | None) -> None:
        self.port = free_port()
        self.config = directory / "sushy.conf"
        auth = directory / "sushy.htpasswd"
        auth.write_text(htpasswd(username, password))
        auth.chmod(0o600)
        self.config.write_text(sushy_config(port=self.port, pool=pool, uuids=uuids,
                                            auth_file=auth))
        self.credentials = (username, password)
        self._log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mark(self) -> str:
        return str(self.config)

    def start(self, timeout_s: float = 60.0) -> int:
        out = self._log if self._log is not None else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from sushy_tools.emulator.main import main; "
             "sys.exit(main())", "--config", str(self.config)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BmcError(f"sushy-emulator exited with status {self.proc.returncode} "
                               "(see lab.log)")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/redfish/v1/", timeout=2):
                    return self.proc.pid
            except urllib.error.HTTPError:
                return self.proc.pid  # it answers (the service root may want auth)
            except OSError:
                time.sleep(0.2)
        raise BmcError(f"sushy-emulator did not answer on {self.endpoint} in {timeout_s:.0f} s")

    def address(self, uuid: str, *, virtual_media: bool) -> str:
        scheme = "redfish-virtualmedia+http" if virtual_media else "redfish+http"
        return f"{scheme}://127.0.0.1:{self.port}/redfish/v1/Systems/{uuid}"

    def stop(self) -> None:
        _stop(self.proc)


def _stop(proc: "subprocess.Popen[bytes] | None", timeout_s: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class Vbmc:
    """vbmcd (vbmcd.py: with pyghmi's cipher-suite fix and cold resets) with its own config
    folder; one `vbmc add` + `vbmc start` per IPMI domain."""

    def __init__(self, directory: Path, *, username: str, password: str,
                 log: IO[str] | None) -> None:
        self.directory = directory / "vbmc"
        (self.directory / "domains").mkdir(mode=0o700, parents=True, exist_ok=True)
        self.config = self.directory / "virtualbmc.conf"
        self.server_port = free_port()
        self.config.write_text(
            f"[default]\nconfig_dir = {self.directory / 'domains'}\n"
            f"pid_file = {self.directory / 'vbmcd.pid'}\nserver_port = {self.server_port}\n"
            f"[log]\nlogfile = {self.directory / 'vbmcd.log'}\n")
        self.username = username
        self.password = password
        self._log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, int] = {}

    @property
    def mark(self) -> str:
        return str(self.config)

    def _env(self) -> dict[str, str]:
        return {**os.environ, "VIRTUALBMC_CONFIG": str(self.config)}

    def start(self) -> int:
        out = self._log if self._log is not None else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "metalcubed.simulators.devenv.libvirtlab.vbmcd",
             "--foreground"],
            env=self._env(), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BmcError(f"vbmcd exited with status {self.proc.returncode} "
                               "(see lab.log)")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.server_port)) == 0:
                    return self.proc.pid
            time.sleep(0.1)
        raise BmcError("vbmcd did not listen in 30 s")

    def _vbmc(self, *args: str) -> None:
        try:
            subprocess.run(["vbmc", *args], env=self._env(), check=True, capture_output=True,
                           timeout=60)
        except subprocess.CalledProcessError as err:
            raise BmcError(f"vbmc {' '.join(args[:2])}: "
                           f"{(err.stderr or err.stdout).decode(errors='replace').strip()}"
                           ) from err
        except (OSError, subprocess.TimeoutExpired) as err:
            raise BmcError(f"vbmc {' '.join(args[:2])}: {err}") from err

    def add(self, domain: str) -> str:
        """An IPMI BMC for `domain` on a free UDP port of 127.0.0.1; returns its address."""
        port = free_port(socket.SOCK_DGRAM)
        self._vbmc("add", domain, "--port", str(port), "--address", "127.0.0.1",
                   "--username", self.username, "--password", self.password,
                   "--libvirt-uri", "qemu:///system")
        self._vbmc("start", domain)
        self.ports[domain] = port
        return f"ipmi://127.0.0.1:{port}"

    def stop(self) -> None:
        _stop(self.proc)
