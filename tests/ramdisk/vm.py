"""A lab VM for the ramdisk tests: qemu (TCG) started directly, no libvirt.

Its network is qemu's user-mode stack with `restrict=on`: the guest gets DHCP (10.0.2.15,
server 10.0.2.2) and reaches nothing but the addresses forwarded here: 10.0.2.100:<port> goes
to 127.0.0.1:<host port> (the agent API, the image and report server) through relay.py, and
127.0.0.1:<agent port> on the host reaches the agent's port 9999. Nothing leaves the machine.
The VM is stopped by PID; its serial console is a file.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

GUEST_HOST = "10.0.2.100"
"""Where the guest reaches the host's forwarded services."""
MAC = "52:54:00:12:34:56"
RELAY = Path(__file__).with_name("relay.py")
INSTALL = "apt-get install -y --no-install-recommends qemu-system-x86 ipxe-qemu ovmf"
"""(make devenv-deps installs them.)"""
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")


def qemu_binary() -> str:
    found = shutil.which("qemu-system-x86_64")
    if found is None:
        pytest.fail(f"qemu-system-x86_64 is missing: {INSTALL}", pytrace=False)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Vm:
    """One TCG domain: 1 vCPU, `memory_mib`, a raw SATA disk, a virtio NIC with MAC; SeaBIOS,
    or OVMF with `uefi`."""

    def __init__(self, workdir: Path, *, forwards: Mapping[int, int], memory_mib: int = 256,
                 disk_bytes: int = 1 << 30, uefi: bool = False) -> None:
        self.workdir = workdir
        self.uefi = uefi
        if uefi:
            if not OVMF_CODE.exists():
                pytest.fail(f"{OVMF_CODE} is missing: {INSTALL}", pytrace=False)
            shutil.copyfile(OVMF_VARS, workdir / "OVMF_VARS.fd")
        self.forwards = dict(forwards)
        self.memory_mib = memory_mib
        self.disk = workdir / "disk.raw"
        with self.disk.open("wb") as f:
            f.truncate(disk_bytes)
        self.agent_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.serial = workdir / "serial-0.log"
        self.boots = 0

    def _netdev(self, tftp: Path | None) -> str:
        parts = ["user", "id=n0", "restrict=on", "net=10.0.2.0/24"]
        if tftp is not None:  # PXE: qemu's DHCP names boot.ipxe, its TFTP serves it
            parts += [f"tftp={tftp}", "bootfile=boot.ipxe"]
        for guest_port, host_port in self.forwards.items():
            parts.append(f"guestfwd=tcp:{GUEST_HOST}:{guest_port}-cmd:{sys.executable} "
                         f"{RELAY} 127.0.0.1 {host_port}")
        parts.append(f"hostfwd=tcp:127.0.0.1:{self.agent_port}-:9999")
        return ",".join(parts)

    def start(self, *, kernel: Path | None = None, initrd: Path | None = None,
              append: str = "", cdroms: tuple[Path, ...] = (), boot: str = "c",
              tftp: Path | None = None) -> None:
        """Power on: from the network (`boot="n"`: the NIC's iPXE ROM runs `tftp`/boot.ipxe),
        from CD (`boot="d"`), from disk (`"c"`), or a direct kernel boot."""
        assert self.proc is None or self.proc.poll() is not None, "VM is running"
        self.boots += 1
        self.serial = self.workdir / f"serial-{self.boots}.log"
        argv = [qemu_binary(), "-machine", "q35,accel=tcg", "-cpu", "max", "-smp", "1",
                "-m", str(self.memory_mib), "-nodefaults", "-display", "none", "-no-reboot",
                "-serial", f"file:{self.serial}", "-monitor", "none"]
        if self.uefi:
            argv += ["-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                     "-drive", f"if=pflash,format=raw,file={self.workdir / 'OVMF_VARS.fd'}"]
        argv += ["-netdev", self._netdev(tftp),
                "-device", f"virtio-net-pci,netdev=n0,mac={MAC}",
                "-drive", f"file={self.disk},format=raw,if=none,id=d0,cache=writethrough",
                "-device", "ide-hd,drive=d0,bus=ide.0,serial=MC-DISK-0"]
        for index, iso in enumerate(cdroms, start=1):
            argv += ["-drive", f"file={iso},format=raw,if=none,id=cd{index},media=cdrom,"
                               f"readonly=on",
                     "-device", f"ide-cd,drive=cd{index},bus=ide.{index}"]
        if kernel is not None:
            argv += ["-kernel", str(kernel), "-initrd", str(initrd), "-append", append]
        argv += ["-boot", f"order={boot}"]
        log = (self.workdir / f"qemu-{self.boots}.log").open("wb")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()

    def cpu_s(self) -> float:
        """CPU seconds the running qemu used so far (0 when it is not running)."""
        if not self.running():
            return 0.0
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def failed_to_start(self) -> str:
        """qemu's own complaint when it exited at once (e.g. a missing NIC ROM)."""
        if self.proc is None or self.proc.poll() is None:
            return ""
        return (self.workdir / f"qemu-{self.boots}.log").read_text(errors="replace")

    def console(self) -> str:
        try:
            return self.serial.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_exit(self, timeout_s: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout_s)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def wait_for(what: str, check, timeout_s: float, vm: Vm | None = None):  # type: ignore[no-untyped-def]
    """Poll `check` until it returns something truthy; fail naming `what` (with the VM's
    console tail) when `timeout_s` passes or the VM stops."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if vm is not None and vm.proc is not None and vm.proc.poll() is not None:
            break
        time.sleep(0.25)
    tail = "\n".join(vm.console().splitlines()[-25:]) if vm is not None else ""
    if vm is not None and "romfile" in vm.failed_to_start():
        pytest.fail(f"qemu has no iPXE ROM for the NIC: {INSTALL}\n{vm.failed_to_start()}",
                    pytrace=False)
    pytest.fail(f"{what}: not seen within {timeout_s:.0f} s\nconsole:\n{tail}", pytrace=False)
