"""Stand-ins for the block-device tools IPA runs, over disks that are files (the IPA test).

The stock agent writes its config drive as a partition of the root disk: `parted` (real,
from the parted package) edits the disk file's partition table; what needs a kernel block
device is emulated here, for files under $METALCUBED_IPA_DISKS only: a partition N of disk
file D appears as the file D<N> (created by `partprobe D`), `lsblk -Po name,label D` lists
them (with no labels; the real lsblk answers for anything else, it only reads),
`blockdev --getsize64` is the file size, `mount`/`umount` of a
partition file accept an ISO 9660 image (the config drive) and nothing else, `udevadm settle`
and `sgdisk -v` succeed; `poweroff` and `reboot` are written to power.log beside the disks
and end the agent that ran them (its parent). For anything else each tool fails (exit 1):
nothing real is touched.
Installed by the test as symlinks named after the tools, first on the agent's PATH.
"""

import os
import signal
import struct
import sys

ROOT = os.environ.get("METALCUBED_IPA_DISKS", "/nonexistent")


def ours(path: str) -> bool:
    return os.path.realpath(path).startswith(os.path.realpath(ROOT) + os.sep)


def partitions(disk: str) -> list[int]:
    """Numbers of the primary MBR partitions of a disk file."""
    with open(disk, "rb") as f:
        mbr = f.read(512)
    if len(mbr) < 512 or mbr[510:512] != b"\x55\xaa":
        return []
    found = []
    for index in range(4):
        entry = mbr[446 + 16 * index: 462 + 16 * index]
        kind, count = entry[4], struct.unpack("<I", entry[12:16])[0]
        if kind and count:
            found.append(index + 1)
    return found


def _real(tool: str, args: list[str]) -> int:
    """Run the real (read-only) tool for anything that is not a test disk."""
    here = os.path.dirname(os.path.abspath(sys.argv[0]))
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        path = os.path.join(folder, tool)
        if os.path.abspath(folder) != here and os.access(path, os.X_OK):
            os.execv(path, [path, *args])
    return 1


def _lsblk(disk: str, args: list[str]) -> int:
    """KEY="value" pairs (-P) of the disk file and, unless --nodeps, its partition files."""
    columns = ["NAME"]
    for index, arg in enumerate(args):
        if arg.startswith("-o") and len(arg) > 2:
            columns = arg[2:].split(",")
        elif arg in ("-o", "--output") and index + 1 < len(args):
            columns = args[index + 1].split(",")
        elif arg.startswith("--output="):
            columns = arg.split("=", 1)[1].split(",")
        elif arg.startswith("-") and not arg.startswith("--") and "o" in arg[1:]:
            columns = args[index + 1].split(",")  # e.g. -Po name,label
    devices = [(disk, "disk")]
    if "--nodeps" not in args and "-d" not in args:
        devices += [(f"{disk}{n}", "part") for n in partitions(disk)]
    for path, kind in devices:
        values = {"NAME": os.path.basename(path), "KNAME": os.path.basename(path),
                  "TYPE": kind, "SIZE": str(os.path.getsize(path)) if os.path.exists(path)
                  else "0"}
        print(" ".join(f'{c.upper()}="{values.get(c.upper(), "")}"' for c in columns))
    return 0


def main() -> int:
    tool, args = os.path.basename(sys.argv[0]), sys.argv[1:]
    disk = next((a for a in args if ours(a)), "")
    if tool in ("poweroff", "reboot"):
        # IPA's standby.power_off / run_image: the host goes down. Record it beside the disks
        # and end this agent; nothing real is powered off or rebooted.
        if not os.path.isdir(ROOT):
            return 1
        with open(os.path.join(ROOT, "power.log"), "a") as f:
            f.write(tool + "\n")
        os.kill(os.getppid(), signal.SIGTERM)
        return 0
    if tool == "udevadm":
        return 0 if args[:1] == ["settle"] else 1
    if tool == "mount":  # mount -o ro -t auto <partition file> <directory>
        source = args[-2] if len(args) >= 2 else ""
        if not ours(source):
            return 32
        with open(source, "rb") as f:
            f.seek(0x8001)
            return 0 if f.read(5) == b"CD001" else 32
    if tool == "umount":
        return 0
    if not disk:
        return _real(tool, args) if tool == "lsblk" else 1
    target = disk
    if tool == "partprobe":
        numbers = partitions(target)
        for number in numbers:
            open(f"{target}{number}", "ab").close()
        if "-s" in args:
            print(f"{target}: msdos partitions {' '.join(map(str, numbers))}")
        return 0
    if tool == "lsblk":
        return _lsblk(disk, args)
    if tool == "blockdev" and "--getsize64" in args:
        print(os.path.getsize(target))
        return 0
    if tool == "sgdisk" and "-v" in args:
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
