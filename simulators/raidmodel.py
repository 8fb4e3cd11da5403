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

`SimRaid` is the `core.bmc.Raid` capability straight over it (in process, for the Sim BMCs of
simulators/hostmodel_bmc.py), so the engine sees the same refusals with or without Redfish.
"""

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from metalcubed.core import bmc
from metalcubed.simulators import hostmodel

if TYPE_CHECKING:  # hostmodel_bmc may list SimRaid: no import cycle at run time
    from metalcubed.simulators import hostmodel_bmc

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


# --- The core.bmc Raid capability over it, in process (no protocol) ------------------------------

_TO_RAIDTYPE = {
    bmc.RaidLevel.RAID0: "RAID0", bmc.RaidLevel.RAID1: "RAID1", bmc.RaidLevel.RAID2: "RAID2",
    bmc.RaidLevel.RAID5: "RAID5", bmc.RaidLevel.RAID6: "RAID6", bmc.RaidLevel.RAID10: "RAID10",
    bmc.RaidLevel.RAID50: "RAID50", bmc.RaidLevel.RAID60: "RAID60",
}
_FROM_RAIDTYPE = {v: k for k, v in _TO_RAIDTYPE.items()}


class SimRaid:
    """`core.bmc.Raid` straight over each host's `Storage` (one per host, made on first use),
    with the Sim BMCs' fault model (`SimBmcs.host`); refusals are `BmcRejected` 400 as the
    Redfish emulator answers them. List it in a hardware type's `raid`."""

    name = "sim"

    def __init__(self, bmcs: "hostmodel_bmc.SimBmcs") -> None:
        self._bmcs = bmcs
        self._storage: dict[str, Storage] = {}
        self._lock = threading.Lock()

    def validate(self, access: bmc.BmcAccess) -> None:
        return None

    def _of(self, access: bmc.BmcAccess, operation: str, *, write: bool = False) -> Storage:
        host = self._bmcs.host(access, operation, write=write)
        with self._lock:
            storage = self._storage.get(host.uuid)
            if storage is None:
                storage = self._storage[host.uuid] = Storage(host.inventory.disks)
            return storage

    def controllers(self, access: bmc.BmcAccess) -> tuple[bmc.StorageController, ...]:
        storage = self._of(access, "list storage controllers")
        return (bmc.StorageController(
            id=storage.controller_id, name=storage.name,
            raid_levels=frozenset(_FROM_RAIDTYPE[lv] for lv in storage.levels),
            drives=tuple(bmc.PhysicalDrive(id=d.id, name=d.name, size_bytes=d.size_bytes,
                                           rotational=d.rotational)
                         for d in storage.disks.values())),)

    def volumes(self, access: bmc.BmcAccess) -> tuple[bmc.Volume, ...]:
        storage = self._of(access, "list volumes")
        return tuple(bmc.Volume(id=v.id, controller=storage.controller_id, name=v.name,
                                level=_FROM_RAIDTYPE.get(v.level), size_bytes=v.size_bytes,
                                drives=v.drives) for v in storage.volumes())

    def create_volume(self, access: bmc.BmcAccess, request: bmc.VolumeRequest) -> None:
        operation = f"create volume {request.name}"
        storage = self._of(access, operation, write=True)
        if request.controller != storage.controller_id:
            raise bmc.BmcRejected(access.display, operation,
                                  f"no storage controller {request.controller!r}", status=404)
        if any(v.name == request.name for v in storage.volumes()):
            return
        try:
            storage.create_volume(name=request.name, level=_TO_RAIDTYPE[request.level],
                                  drives=request.drives, size_bytes=request.size_bytes)
        except hostmodel.HostModelError as err:
            raise bmc.BmcRejected(access.display, operation, str(err), status=400) from err

    def delete_volume(self, access: bmc.BmcAccess, controller: str, volume_id: str) -> None:
        operation = f"delete volume {volume_id}"
        storage = self._of(access, operation, write=True)
        if controller == storage.controller_id and storage.volume(volume_id) is not None:
            storage.delete_volume(volume_id)
