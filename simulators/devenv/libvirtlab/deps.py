"""What the libvirt lab needs on this machine, and the exact command that installs it.

`up` installs nothing behind the user's back: `missing()` lists what is absent and
`DepsError` says the one command to run (`make devenv-deps` does the same).
"""

import importlib.util
import os
import shutil

APT_PACKAGES = (
    "libvirt-daemon-system", "libvirt-daemon-driver-qemu", "libvirt-clients",
    "qemu-system-x86", "qemu-utils", "ovmf", "ipxe-qemu", "dnsmasq-base", "ipmitool",
    "pkg-config", "libvirt-dev", "gcc", "python3-dev",
)
"""Debian packages: the daemons, QEMU and its firmware (SeaBIOS, OVMF, iPXE ROMs), qemu-img,
dnsmasq for the network's DHCP, ipmitool, and what libvirt-python builds against (the deploy
ramdisk is built from downloaded Debian packages: nothing to install for it). qemu-utils and
dnsmasq-base are only Recommends of the daemon packages, so they are named."""
PIP_PACKAGES = ("libvirt-python", "sushy-tools", "virtualbmc")
APT_COMMAND = ("apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
               "--no-install-recommends " + " ".join(APT_PACKAGES))
PIP_COMMAND = "python3 -m pip install " + " ".join(PIP_PACKAGES)

_FILES = {
    "/usr/sbin/libvirtd": "libvirt-daemon-system",
    "/usr/sbin/virtlogd": "libvirt-daemon-system",
    "/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so":
        "libvirt-daemon-driver-qemu",
    "/usr/bin/virsh": "libvirt-clients",
    "/usr/bin/qemu-system-x86_64": "qemu-system-x86",
    "/usr/bin/qemu-img": "qemu-utils",
    "/usr/share/OVMF/OVMF_CODE_4M.fd": "ovmf",
    "/usr/lib/ipxe/qemu/efi-virtio.rom": "ipxe-qemu",
    "/usr/sbin/dnsmasq": "dnsmasq-base",
    "/usr/bin/ipmitool": "ipmitool",
    "/usr/bin/pkg-config": "pkg-config",
    "/usr/include/libvirt/libvirt.h": "libvirt-dev",
}
_MODULES = {"libvirt": "libvirt-python", "sushy_tools": "sushy-tools",
            "virtualbmc": "virtualbmc"}
_COMMANDS = {"vbmcd": "virtualbmc", "vbmc": "virtualbmc"}


class DepsError(RuntimeError):
    """Something the lab needs is missing; the message says what and how to install it."""


def missing_packages() -> list[str]:
    return sorted({pkg for path, pkg in _FILES.items() if not os.path.exists(path)})


def missing_python() -> list[str]:
    gone = {pkg for mod, pkg in _MODULES.items() if importlib.util.find_spec(mod) is None}
    gone |= {pkg for cmd, pkg in _COMMANDS.items() if shutil.which(cmd) is None}
    return sorted(gone)


def check() -> None:
    """Raise DepsError naming every missing package with the command that installs it, or
    when not root (libvirt's system daemon, /dev/kvm and the bridge need root)."""
    problems = []
    apt, pip = missing_packages(), missing_python()
    if apt:
        problems.append(f"Debian packages missing: {' '.join(apt)}; install with: {APT_COMMAND}")
    if pip:
        problems.append(f"Python packages missing: {' '.join(pip)}; install with: {PIP_COMMAND}")
    if problems:
        raise DepsError("--backend libvirt: " + " | ".join(problems)
                        + " (or run: make devenv-deps)")
    if os.geteuid() != 0:
        raise DepsError("--backend libvirt: needs root (libvirt's system daemon, /dev/kvm and "
                        "the network bridge); run it as root")
