"""Bootable hybrid ISO images, BIOS (ISOLINUX) and UEFI (an ESP image, esp.py), with pycdlib.

One format serves both artefacts: the deploy ISO a BMC inserts as virtual media (El Torito,
no emulation: ISOLINUX for BIOS, the ESP for UEFI) and the tiny OS disk image, which is the
same kind of ISO with an isohybrid MBR (and an EFI partition entry), so that written raw
onto a disk it boots from the disk, and leaves room for a config drive partition after it.
isolinux.bin and ldlinux.c32 come from Debian's isolinux and syslinux-common packages.
"""

import io
import os
import struct
from pathlib import Path

import pycdlib

from metalcubed.ramdisk import debs

MIB = 1024 * 1024


def _config(params: str) -> bytes:
    return ("DEFAULT linux\nPROMPT 0\nTIMEOUT 0\n"
            f"LABEL linux\n  KERNEL /vmlinuz\n  INITRD /initrd.gz\n  APPEND {params}\n").encode()


def build(path: Path, *, kernel: Path, initrd: Path, params: str, label: str,
          isolinux_bin: Path, ldlinux: Path, isohdpfx: Path, hybrid: bool,
          esp: Path | None = None) -> None:
    """Write a bootable ISO at `path`: ISOLINUX (BIOS) and the `esp` image (UEFI, El Torito
    platform 0xEF) load `kernel` and `initrd` with kernel command line `params`. `hybrid`
    adds ISOLINUX's isohybrid MBR (`isohdpfx`) so that the image also boots as a disk."""
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
    ) + ((("/EFIBOOT.IMG;1", "efiboot.img", esp.read_bytes()),) if esp is not None else ())
    for iso_path, rr_name, data in files:
        iso.add_fp(io.BytesIO(data), len(data), iso_path, rr_name=rr_name)
    iso.add_eltorito("/ISOLINUX/ISOLINUX.BIN;1", "/ISOLINUX/BOOT.CAT;1", rr_bootcatname="boot.cat",
                     boot_load_size=4, boot_info_table=True)
    if esp is not None:
        iso.add_eltorito("/EFIBOOT.IMG;1", "/ISOLINUX/BOOT.CAT;1", efi=True, platform_id=0xEF)
    tmp = path.with_name(path.name + ".tmp")
    try:
        iso.write(str(tmp))
        if hybrid:
            loader = iso.get_record(iso_path="/ISOLINUX/ISOLINUX.BIN;1").extent_location()
            efi = (iso.get_record(iso_path="/EFIBOOT.IMG;1").extent_location() * 4,
                   -(-esp.stat().st_size // 512)) if esp is not None else None
            _isohybrid(tmp, isohdpfx.read_bytes(), loader * 4, efi)
    except pycdlib.pycdlibexception.PyCdlibException as err:
        raise debs.BuildError(f"cannot build {path.name}: {err}") from err
    finally:
        iso.close()
    tmp.replace(path)


def _entry(first: int, sectors: int, kind: int, active: bool = False) -> bytes:
    entry = bytearray(16)
    entry[0] = 0x80 if active else 0
    entry[1:4], entry[4], entry[5:8] = b"\xfe\xff\xff", kind, b"\xfe\xff\xff"  # LBA only
    struct.pack_into("<II", entry, 8, first, sectors)
    return bytes(entry)


def _isohybrid(image: Path, code: bytes, loader_sector: int,
               efi: tuple[int, int] | None) -> None:
    """What syslinux's `isohybrid` does: ISOLINUX's MBR code, which loads isolinux.bin from
    the 512-byte sector stored at offset 432; an active partition over the whole image (type
    0 when there is an EFI partition, so firmware does not see two overlapping partitions),
    an 0xEF partition over the ESP; the image padded to whole MiB. UEFI firmware boots such a
    disk through the El Torito EFI entry or the 0xEF partition."""
    size = image.stat().st_size
    padded = -(-size // MIB) * MIB
    mbr = bytearray(code[:432].ljust(432, b"\0"))
    mbr += struct.pack("<II", loader_sector, 0) + os.urandom(4) + b"\0\0"
    mbr += _entry(0, padded // 512, 0x00 if efi else 0x17, active=True)
    mbr += _entry(*efi, 0xEF) if efi else bytes(16)
    mbr += bytes(32) + b"\x55\xaa"
    with image.open("r+b") as f:
        f.write(mbr)
        f.truncate(padded)
