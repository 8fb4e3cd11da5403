"""What a libvirt lab created on this machine, written down before each thing is created, and
the teardown that reads it.

The ledger (`<lab dir>/libvirt.json`) is the single source for `down`: the lab process runs
`teardown` when it stops, and `devenv down` runs it again afterwards, so a lab that failed half
way, or whose process was killed, still leaves no domain, network, pool, volume, process or
iptables chain behind. Every step tolerates a thing that is already gone, so teardown is
idempotent; a step that fails is logged and the others still run.
"""

import contextlib
import functools
import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from metalcubed.simulators.devenv.libvirtlab import daemons

log = logging.getLogger(__name__)

FILE = "libvirt.json"
URI = "qemu:///system"
VM_ROOT = Path("/var/lib/libvirt/metalcubed")
"""Disks, NVRAM and consoles live here, not in the lab directory: QEMU runs as libvirt-qemu,
which cannot reach a folder under /root."""


@dataclass(slots=True)
class Ledger:
    lab_id: str
    started_daemons: dict[str, int] = field(default_factory=dict)
    kvm_mode: str | None = None
    chains_before: list[str] | None = None
    network: str = ""
    pool: str = ""
    vm_dir: str = ""
    domains: list[str] = field(default_factory=list)
    processes: list[dict[str, object]] = field(default_factory=list)
    """{"pid": int, "mark": str}: a process of ours while its command line holds `mark`."""

    def save(self, directory: Path) -> None:
        tmp = directory / (FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, directory / FILE)


def load(directory: Path) -> Ledger | None:
    try:
        raw = json.loads((directory / FILE).read_text())
        return Ledger(**raw)
    except (OSError, ValueError, TypeError):
        return None


def process_is(pid: int, mark: str) -> bool:
    """`pid` is alive (not a zombie) and its command line or environment holds `mark`."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and (mark.encode() in cmdline or mark.encode() in environ)


def stop_process(pid: int, mark: str, timeout_s: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL, a recorded process still ours; True if it was running."""
    if not process_is(pid, mark):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while process_is(pid, mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    if process_is(pid, mark):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return True


def _step(what: str, action: Callable[[], None]) -> None:
    try:
        action()
    except Exception as err:  # one failed step must not keep the others from running
        log.warning("teardown: %s: %s", what, err)


def _remove_domain(conn: Any, name: str) -> None:
    import libvirt

    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError:
        return
    with contextlib.suppress(libvirt.libvirtError):
        if dom.isActive():
            dom.destroy()
    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
                      | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                      | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)


def _remove_network(conn: Any, name: str) -> None:
    import libvirt

    try:
        net = conn.networkLookupByName(name)
    except libvirt.libvirtError:
        return
    if net.isActive():
        net.destroy()
    net.undefine()


def _remove_pool(conn: Any, name: str) -> None:
    import libvirt

    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError:
        return
    if pool.isActive():
        with contextlib.suppress(libvirt.libvirtError):
            pool.refresh()
        for vol in pool.listAllVolumes():
            with contextlib.suppress(libvirt.libvirtError):
                vol.delete()
        pool.destroy()
    pool.undefine()


def others_in_use(conn: Any) -> bool:
    """Any domain defined or network active (after this lab's are gone): libvirtd serves
    someone else (another lab, a user), so the daemons this lab started stay up."""
    domains = [d.name() for d in conn.listAllDomains()]
    nets = [n.name() for n in conn.listAllNetworks() if n.isActive()]
    return bool(domains) or bool(nets)


def teardown(directory: Path) -> list[str]:
    """Undo everything the ledger in `directory` records; returns what it removed (for the
    log and for `down`'s report). Idempotent; removes the ledger when done."""
    ledger = load(directory)
    if ledger is None:
        return []
    removed: list[str] = []
    for proc in ledger.processes:
        pid, mark = int(proc["pid"]), str(proc["mark"])  # type: ignore[call-overload]
        if stop_process(pid, mark):
            removed.append(f"process {pid}")
    conn = None
    if ledger.domains or ledger.network or ledger.pool:
        conn = _connect()
    if conn is not None:
        for name in ledger.domains:
            _step(f"domain {name}", functools.partial(_remove_domain, conn, name))
            removed.append(f"domain {name}")
        if ledger.network:
            _step(f"network {ledger.network}",
                  functools.partial(_remove_network, conn, ledger.network))
            removed.append(f"network {ledger.network}")
        if ledger.pool:
            _step(f"pool {ledger.pool}", functools.partial(_remove_pool, conn, ledger.pool))
            removed.append(f"pool {ledger.pool}")
    if ledger.vm_dir:
        shutil.rmtree(ledger.vm_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            VM_ROOT.rmdir()
    if ledger.chains_before is not None:
        busy = conn is not None and any(n.isActive() for n in conn.listAllNetworks())
        if not busy:
            removed += [f"iptables chain {c}" for c in daemons.remove_chains(ledger.chains_before)]
    if ledger.started_daemons:
        if conn is None or not others_in_use(conn):
            if conn is not None:
                conn.close()
                conn = None
            daemons.stop(ledger.started_daemons)
            removed += [f"{n} (pid {p})" for n, p in ledger.started_daemons.items()]
        else:
            log.warning("teardown: libvirtd has other domains or networks: left running")
    if conn is not None:
        conn.close()
    daemons.restore_kvm(ledger.kvm_mode)
    remove_lab_files(directory)
    (directory / FILE).unlink(missing_ok=True)
    return removed


LAB_FILES = ("sushy.conf", "sushy.htpasswd", "virtlogd.pid", "libvirtd.pid")
LAB_FOLDERS = ("vbmc", "images")
"""What the backend writes into the lab directory besides the log: the BMCs' configurations
(vbmc's hold the BMC password in clear), the daemons' pid files, the built images (~50 MB)."""


def remove_lab_files(directory: Path) -> None:
    for name in LAB_FILES:
        (directory / name).unlink(missing_ok=True)
    for name in LAB_FOLDERS:
        shutil.rmtree(directory / name, ignore_errors=True)


def _connect() -> Any:
    """A connection to libvirtd, or None when it does not answer (then there is nothing to
    undefine through it; the files and processes are still removed)."""
    import libvirt

    if not daemons.libvirtd_answers():
        log.warning("teardown: libvirtd does not answer: nothing to undefine through it")
        return None
    try:
        return libvirt.open(URI)
    except libvirt.libvirtError as err:
        log.warning("teardown: cannot connect to libvirtd: %s", err)
        return None
