"""The EFI system partition image that makes the ISOs boot on UEFI too.

A FAT image (made with Debian's mtools, run from its unpacked package) holding systemd-boot
(Debian's systemd-boot-efi) as the removable-media loader /EFI/BOOT/BOOTX64.EFI, one loader
entry, and the kernel and initrd themselves: systemd-boot loads them from its own partition,
so the entry needs no filesystem driver for ISO 9660.
"""

import os
import subprocess
from pathlib import Path

from metalcubed.ramdisk import debs

MIB = 1024 * 1024


def _mtools(mtools: Path, *args: str) -> None:
    done = subprocess.run([str(mtools), "-c", *args], capture_output=True, text=True,
                          check=False, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    if done.returncode != 0:
        raise debs.BuildError(f"mtools {args[0]} failed: {(done.stderr or done.stdout).strip()}")


def build(path: Path, *, mtools: Path, loader: Path, kernel: Path, initrd: Path,
          params: str) -> None:
    """Write the ESP image at `path`: systemd-boot booting `kernel` + `initrd` with `params`
    at once (timeout 0)."""
    payload = loader.stat().st_size + kernel.stat().st_size + initrd.stat().st_size
    size_mib = -(-payload // MIB) + 2
    image = str(path)
    with path.open("wb") as f:
        f.truncate(size_mib * MIB)
    _mtools(mtools, "mformat", "-i", image, "-v", "ESP", "-h", "64", "-s", "32", "-T",
            str(size_mib * MIB // 512), "::")
    _mtools(mtools, "mmd", "-i", image, "::/EFI", "::/EFI/BOOT", "::/loader",
            "::/loader/entries")
    entry = path.with_name(path.name + ".entry")
    config = path.with_name(path.name + ".loader")
    entry.write_text(f"title metalcubed\nlinux /vmlinuz\ninitrd /initrd.gz\noptions {params}\n")
    config.write_text("default metalcubed.conf\ntimeout 0\n")
    try:
        for source, target in ((loader, "::/EFI/BOOT/BOOTX64.EFI"), (kernel, "::/vmlinuz"),
                               (initrd, "::/initrd.gz"), (config, "::/loader/loader.conf"),
                               (entry, "::/loader/entries/metalcubed.conf")):
            _mtools(mtools, "mcopy", "-i", image, str(source), target)
    finally:
        entry.unlink(missing_ok=True)
        config.unlink(missing_ok=True)
