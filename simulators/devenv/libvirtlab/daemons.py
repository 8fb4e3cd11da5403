"""libvirt's daemons on a machine without systemd, /dev/kvm's mode, and libvirt's iptables
chains: what the lab changes on the host, each undone by `down`.

- `virtlogd` and `libvirtd` are started by hand (`-d -p PIDFILE`) when libvirt's socket does
  not answer; the lab records their pids and stops only those it started, by pid.
- /dev/kvm is `0600 root:root` where no udev runs. libvirt then re-probes QEMU on every
  define (44-68 s each, TCG domains too), so the lab sets it to `0660 root:kvm` and puts the
  old mode back at the end.
- Starting a libvirt network creates libvirt's iptables chains (LIBVIRT_INP, ..._FWX); they stay,
  empty, after the network is gone. The lab removes the ones that did not exist before it and
  are empty again.
"""

import contextlib
import grp
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

SOCKET = Path("/var/run/libvirt/libvirt-sock")
KVM = Path("/dev/kvm")
CHAINS = {"filter": ("LIBVIRT_INP", "LIBVIRT_OUT", "LIBVIRT_FWO", "LIBVIRT_FWI", "LIBVIRT_FWX"),
          "nat": ("LIBVIRT_PRT",), "mangle": ("LIBVIRT_PRT",)}
"""libvirt's own chains (libvirt 9: network/bridge_driver_linux.c) and the built-in chain
each is jumped to from."""
_PARENTS = {"LIBVIRT_INP": "INPUT", "LIBVIRT_OUT": "OUTPUT", "LIBVIRT_FWO": "FORWARD",
            "LIBVIRT_FWI": "FORWARD", "LIBVIRT_FWX": "FORWARD", "LIBVIRT_PRT": "POSTROUTING"}


class HostSetupError(RuntimeError):
    pass


def libvirtd_answers() -> bool:
    """libvirt's system socket accepts a connection (a daemon serves it)."""
    import libvirt

    if not SOCKET.exists():
        return False
    try:
        conn = libvirt.open("qemu:///system")
    except libvirt.libvirtError:
        return False
    conn.close()
    return True


def _pid_alive(pid: int, name: str) -> bool:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return comm == name and state != "Z"


def _read_pid(path: Path) -> int | None:
    for _ in range(50):  # the daemon writes it just after forking
        with contextlib.suppress(OSError, ValueError):
            text = path.read_text().strip()
            if text and int(text) > 0:
                return int(text)
        time.sleep(0.1)
    return None


def start(run_dir: Path) -> dict[str, int]:
    """Start virtlogd and libvirtd unless libvirt already answers; {name: pid} of those this
    call started (the pid files live in `run_dir`)."""
    started: dict[str, int] = {}
    if libvirtd_answers():
        return started
    for name in ("virtlogd", "libvirtd"):
        pidfile = run_dir / f"{name}.pid"
        pidfile.unlink(missing_ok=True)
        if name == "virtlogd" and Path("/var/run/libvirt/virtlogd-sock").exists() \
                and _running("virtlogd"):
            continue
        try:
            subprocess.run([f"/usr/sbin/{name}", "-d", "-p", str(pidfile)], check=True,
                           capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as err:
            detail = getattr(err, "stderr", b"") or b""
            raise HostSetupError(f"could not start {name}: {err} "
                                 f"{detail.decode(errors='replace').strip()}") from err
        pid = _read_pid(pidfile)
        if pid is None:
            raise HostSetupError(f"{name} started but wrote no pid into {pidfile}")
        started[name] = pid
    deadline = time.monotonic() + 30
    while not libvirtd_answers():
        if time.monotonic() > deadline:
            raise HostSetupError("libvirtd started but its socket did not answer in 30 s")
        time.sleep(0.1)
    return started


def _running(name: str) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _pid_alive(int(entry.name), name):
            return True
    return False


def stop(pids: dict[str, int], timeout_s: float = 15.0) -> None:
    """SIGTERM each recorded daemon still running under its own name, then SIGKILL."""
    for name in ("libvirtd", "virtlogd"):
        pid = pids.get(name)
        if pid is None or not _pid_alive(pid, name):
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _pid_alive(pid, name) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _pid_alive(pid, name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def fix_kvm() -> str | None:
    """Make /dev/kvm 0660 root:kvm; returns its old `mode:uid:gid` to restore, or None when
    there is no /dev/kvm or nothing had to change."""
    try:
        st = KVM.stat()
    except OSError:
        return None
    try:
        kvm_gid = grp.getgrnam("kvm").gr_gid
    except KeyError:
        return None
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o060 == 0o060 and st.st_gid == kvm_gid:
        return None
    os.chown(KVM, st.st_uid, kvm_gid)
    KVM.chmod(0o660)
    return f"{mode:o}:{st.st_uid}:{st.st_gid}"


def restore_kvm(old: str | None) -> None:
    if not old:
        return
    mode, uid, gid = old.split(":")
    with contextlib.suppress(OSError):
        os.chown(KVM, int(uid), int(gid))
        KVM.chmod(int(mode, 8))


def hardware_kvm() -> bool:
    """Real hardware virtualization: /dev/kvm, a vmx or svm CPU flag, and not the PVM module
    (which starts KVM guests whose kernels then never get past their decompressor)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return (KVM.exists() and not Path("/sys/module/kvm_pvm").exists()
            and any(f" {flag}" in flags for flag in ("vmx", "svm")))


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True,
                          timeout=30, check=False)


def existing_chains() -> list[str]:
    """`table/CHAIN` of libvirt's chains present now."""
    found = []
    for table, chains in CHAINS.items():
        out = _iptables("-t", table, "-S").stdout
        for chain in chains:
            if f"-N {chain}\n" in out + "\n":
                found.append(f"{table}/{chain}")
    return found


def remove_chains(keep: list[str]) -> list[str]:
    """Remove libvirt's chains not in `keep` that are empty (no rule of a network left);
    returns those removed."""
    removed = []
    for entry in existing_chains():
        if entry in keep:
            continue
        table, chain = entry.split("/")
        rules = [r for r in _iptables("-t", table, "-S", chain).stdout.splitlines()
                 if r.startswith("-A ")]
        if rules:
            continue
        parent = _PARENTS[chain]
        while _iptables("-t", table, "-D", parent, "-j", chain).returncode == 0:
            pass
        if _iptables("-t", table, "-X", chain).returncode == 0:
            removed.append(entry)
    return removed
