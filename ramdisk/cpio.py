"""A gzip'd cpio "newc" archive, the format the Linux kernel unpacks as its initramfs.

Written here rather than by a cpio binary (Debian's build hosts often lack one): entries
are given as a mapping, so the archive is reproducible (fixed mtime, owner root, sorted)
and needs no root to hold device nodes such as /dev/console.
"""

import gzip
import stat
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Entry:
    """One archive member: a file (data or source path), a directory, a symlink or a node."""

    mode: int
    data: bytes | Path = b""
    rdev: tuple[int, int] = (0, 0)


def file(data: bytes | Path, mode: int = 0o644) -> Entry:
    return Entry(stat.S_IFREG | mode, data)


def directory(mode: int = 0o755) -> Entry:
    return Entry(stat.S_IFDIR | mode)


def symlink(target: str) -> Entry:
    return Entry(stat.S_IFLNK | 0o777, target.encode())


def char_device(major: int, minor: int, mode: int = 0o600) -> Entry:
    return Entry(stat.S_IFCHR | mode, b"", (major, minor))


def _header(ino: int, entry: Entry, size: int, name: bytes) -> bytes:
    fields = (ino, entry.mode, 0, 0, 2 if stat.S_ISDIR(entry.mode) else 1, 0, size, 0, 0,
              entry.rdev[0], entry.rdev[1], len(name) + 1, 0)
    return b"070701" + b"".join(b"%08X" % value for value in fields)


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


def write(entries: dict[str, Entry], path: Path, *, level: int = 6) -> None:
    """Write `entries` (archive path without leading slash -> Entry) as a gzip'd newc cpio.
    Parent directories must be listed too; they sort before their contents."""
    with path.open("wb") as raw_file, gzip.GzipFile(
            filename="", fileobj=raw_file, mode="wb", compresslevel=level, mtime=0) as out:
        for ino, name in enumerate(sorted(entries), start=1):
            entry = entries[name]
            data = entry.data.read_bytes() if isinstance(entry.data, Path) else entry.data
            raw = name.encode()
            head = _header(ino, entry, len(data), raw) + raw + b"\0"
            out.write(head + _pad(len(head)) + data + _pad(len(data)))
        trailer = _header(0, Entry(0), 0, b"TRAILER!!!") + b"TRAILER!!!\0"
        out.write(trailer + _pad(len(trailer)))
