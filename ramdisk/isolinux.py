"""BIOS-bootable hybrid ISO images (ISOLINUX) built with pycdlib.

One format serves both artefacts: the deploy ISO a BMC inserts as virtual media (El Torito,
no emulation) and the tiny OS disk image, which is the same kind of ISO with an isohybrid
MBR, so that written raw onto a disk it boots from the disk (SeaBIOS), and leaves room for a
config drive partition after it. isolinux.bin and ldlinux.c32 come from Debian's isolinux and
syslinux-common packages.
"""

import io
from pathlib import Path

import pycdlib

from metalcubed.ramdisk import debs


def _config(params: str) -> bytes:
    return ("DEFAULT linux\nPROMPT 0\nTIMEOUT 0\n"
            f"LABEL linux\n  KERNEL /vmlinuz\n  INITRD /initrd.gz\n  APPEND {params}\n").encode()


def build(path: Path, *, kernel: Path, initrd: Path, params: str, label: str,
          isolinux_bin: Path, ldlinux: Path, hybrid: bool) -> None:
    """Write a bootable ISO at `path`: ISOLINUX loads `kernel` and `initrd` with kernel
    command line `params`. `hybrid` adds an MBR so the image also boots as a disk."""
    if len(label) > 32:
        raise debs.BuildError(f"ISO label {label!r} is longer than 32 characters")
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1, vol_ident=label, rock_ridge="1.09")
    iso.add_directory("/ISOLINUX", rr_name="isolinux")
    files = (
        ("/ISOLINUX/ISOLINUX.BIN;1", "isolinux.bin", isolinux_bin.read_bytes()),
        ("/ISOLINUX/LDLINUX.C32;1", "ldlinux.c32", ldlinux.read_bytes()),
        ("/ISOLINUX/ISOLINUX.CFG;1", "isolinux.cfg", _config(params)),
        ("/VMLINUZ.;1", "vmlinuz", kernel.read_bytes()),
        ("/INITRD.GZ;1", "initrd.gz", initrd.read_bytes()),
    )
    for iso_path, rr_name, data in files:
        iso.add_fp(io.BytesIO(data), len(data), iso_path, rr_name=rr_name)
    iso.add_eltorito("/ISOLINUX/ISOLINUX.BIN;1", "/ISOLINUX/BOOT.CAT;1", rr_bootcatname="boot.cat",
                     boot_load_size=4,
                     boot_info_table=True)
    if hybrid:
        iso.add_isohybrid()
    tmp = path.with_name(path.name + ".tmp")
    iso.write(str(tmp))
    iso.close()
    tmp.replace(path)
