"""The lab's OS image: a small but genuine raw disk image, and its checksum.

A raw disk image of `size_mib` MiB, as `qemu-img create -f raw` plus `sfdisk` would make it: an
MBR partition table (one bootable Linux partition from sector 2048 to the end, signature
0x55AA), and a text file's worth of content at the start of the partition saying what it is.
`file` recognises it ("DOS/MBR boot sector; partition 1 : ID=0x83, active"); the deploy agents
verify its sha256 before "writing" it.
Deterministic: the same size gives the same bytes, so the checksum is stable across labs.
"""

import hashlib
import struct

SECTOR = 512
FIRST_SECTOR = 2048
NAME = "metalcubed-os.raw"
FORMAT = "raw"


def _chs(lba: int) -> bytes:
    """The CHS triple of an MBR entry; past 1024 cylinders it is the conventional 0xFEFFFF."""
    heads, sectors = 255, 63
    cylinder, rest = divmod(lba, heads * sectors)
    if cylinder > 1023:
        return b"\xfe\xff\xff"
    head, sector = divmod(rest, sectors)
    return bytes([head, ((cylinder >> 2) & 0xC0) | (sector + 1), cylinder & 0xFF])


def raw_disk(size_mib: int) -> bytes:
    """A raw disk image with one bootable Linux partition (see the module docstring)."""
    total = size_mib * 1024 * 1024 // SECTOR
    if total <= FIRST_SECTOR:
        raise ValueError(f"a disk image needs more than 1 MiB (got {size_mib} MiB)")
    count = total - FIRST_SECTOR
    entry = (b"\x80" + _chs(FIRST_SECTOR) + b"\x83" + _chs(total - 1)
             + struct.pack("<II", FIRST_SECTOR, count))
    mbr = bytearray(SECTOR)
    mbr[440:444] = struct.pack("<I", 0x4D335344)  # disk signature "DS3M"
    mbr[446:462] = entry
    mbr[510:512] = b"\x55\xaa"
    banner = (b"metalcubed lab OS image: a raw disk with one Linux partition, written by the "
              b"emulated deploy agent.\n")
    body = bytearray(size_mib * 1024 * 1024)
    body[:SECTOR] = mbr
    start = FIRST_SECTOR * SECTOR
    body[start:start + len(banner)] = banner
    return bytes(body)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
