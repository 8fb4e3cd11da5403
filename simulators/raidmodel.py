"""An emulated RAID controller: the volumes a server's storage controller builds from its disks.

One `Storage` per emulated server, over the server's `hostmodel.Disk`s. The Redfish emulator
serves it as Storage/Volumes, and a Sim BMC may drive it directly, so both see the same rules:

- a volume spans whole drives, each drive in at most one volume;
- the level must be one the controller supports and have enough drives (`MIN_DRIVES`);
- its usable size follows the level (RAID-1: one drive; RAID-5: n-1; RAID-6: n-2; RAID-1+0:
  n/2; spanned levels likewise) over the smallest drive, and a requested size above that is
  refused;
- names are unique on the controller (creating an existing name again is refused; the port's
  idempotence is the driver's job: it looks before it creates).

Levels are Redfish RAIDType names ("RAID0", "RAID10"...). Refusals raise
`hostmodel.HostModelError` with a message naming what is wrong. Thread-safe.
"""

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from metalcubed.simulators import hostmodel

MIN_DRIVES = {"RAID0": 1, "RAID1": 2, "RAID5": 3, "RAID6": 4, "RAID10": 4, "RAID50": 6,
              "RAID60": 8}
"""Fewest drives per level (the levels an emulated controller may support)."""

DEFAULT_LEVELS = ("RAID0", "RAID1", "RAID5", "RAID10")
"""What the default emulated controller supports (no RAID-6: a request for it is refused)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Volume:
    id: str
    name: str
    level: str
    """Redfish RAIDType, e.g. "RAID1"."""
    size_bytes: int
    drives: tuple[str, ...]
    """Disk ids."""


def usable_bytes(level: str, sizes: Sequence[int]) -> int:
    """The largest volume `level` builds over drives of `sizes` (0 for too few drives)."""
    n = len(sizes)
    if n < MIN_DRIVES.get(level, 1) or not sizes:
        return 0
    data_drives = {
        "RAID0": n, "RAID1": 1, "RAID5": n - 1, "RAID6": n - 2, "RAID10": n // 2,
        "RAID50": n - 2, "RAID60": n - 4,
    }.get(level, 0)
    return data_drives * min(sizes)


class Storage:
    """One RAID controller over a server's disks; see the module docstring for the rules."""

    def __init__(self, disks: Sequence[hostmodel.Disk], *, controller_id: str = "1",
                 name: str = "Emulated RAID Controller",
                 levels: Sequence[str] = DEFAULT_LEVELS) -> None:
        self.controller_id = controller_id
        self.name = name
        self.levels = tuple(levels)
        self.disks = {d.id: d for d in disks}
        self._volumes: dict[str, Volume] = {}
        self._next = 1
        self._lock = threading.Lock()

    def volumes(self) -> tuple[Volume, ...]:
        with self._lock:
            return tuple(self._volumes.values())

    def volume(self, volume_id: str) -> Volume | None:
        with self._lock:
            return self._volumes.get(volume_id)

    def create_volume(self, *, name: str, level: str, drives: Sequence[str],
                      size_bytes: int | None = None) -> Volume:
        """Build a volume; raises HostModelError naming the level, drive, size or name at fault."""
        if level not in self.levels:
            raise hostmodel.HostModelError(
                f"RAIDType {level} is not supported by controller {self.controller_id}; "
                f"supported: {', '.join(self.levels)}")
        if not name:
            raise hostmodel.HostModelError("a volume needs a Name")
        if len(set(drives)) != len(drives):
            raise hostmodel.HostModelError("a drive is listed twice")
        with self._lock:
            if any(v.name == name for v in self._volumes.values()):
                raise hostmodel.HostModelError(f"a volume named {name} already exists")
            used = {d for v in self._volumes.values() for d in v.drives}
            for drive in drives:
                if drive not in self.disks:
                    raise hostmodel.HostModelError(f"no drive {drive} on this controller")
                if drive in used:
                    raise hostmodel.HostModelError(f"drive {drive} is already in a volume")
            if len(drives) < MIN_DRIVES[level]:
                raise hostmodel.HostModelError(
                    f"{level} needs at least {MIN_DRIVES[level]} drives, got {len(drives)}")
            most = usable_bytes(level, [self.disks[d].size_bytes for d in drives])
            if size_bytes is not None and size_bytes > most:
                raise hostmodel.HostModelError(
                    f"CapacityBytes {size_bytes} exceeds the {most} bytes {level} gives over "
                    f"these drives")
            if size_bytes is not None and size_bytes <= 0:
                raise hostmodel.HostModelError("CapacityBytes must be positive")
            volume = Volume(id=f"Volume.{self._next}", name=name, level=level,
                            size_bytes=most if size_bytes is None else size_bytes,
                            drives=tuple(drives))
            self._next += 1
            self._volumes[volume.id] = volume
            return volume

    def delete_volume(self, volume_id: str) -> None:
        """Remove the volume; HostModelError when there is none by that id."""
        with self._lock:
            if self._volumes.pop(volume_id, None) is None:
                raise hostmodel.HostModelError(f"no volume {volume_id}")
