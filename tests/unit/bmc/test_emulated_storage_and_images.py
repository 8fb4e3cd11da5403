"""The emulated RAID controller's rules (simulators/raidmodel.py) and firmware images
(simulators/firmwareimage.py), which the Redfish emulator and the Sim BMCs share."""

import pytest

from metalcubed.simulators import firmwareimage, hostmodel, raidmodel

GB = 10**9


def _storage() -> raidmodel.Storage:
    disks = [hostmodel.Disk(id=f"D{i}", name=f"/dev/sd{i}", size_bytes=(100 + i) * GB)
             for i in range(6)]
    return raidmodel.Storage(disks)


@pytest.mark.parametrize(("level", "count", "usable"), [
    ("RAID0", 3, 300 * GB), ("RAID1", 2, 100 * GB), ("RAID5", 4, 300 * GB),
    ("RAID10", 4, 200 * GB), ("RAID5", 2, 0), ("RAID6", 4, 200 * GB),
])
def test_usable_bytes(level: str, count: int, usable: int) -> None:
    # Over the smallest drive: a larger one adds nothing.
    sizes = [100 * GB] + [150 * GB] * (count - 1)
    assert raidmodel.usable_bytes(level, sizes) == usable


def test_create_and_delete() -> None:
    storage = _storage()
    vol = storage.create_volume(name="root", level="RAID1", drives=["D0", "D1"])
    assert (vol.size_bytes, vol.drives) == (100 * GB, ("D0", "D1"))
    assert storage.volumes() == (vol,)
    storage.delete_volume(vol.id)
    assert storage.volumes() == ()
    with pytest.raises(hostmodel.HostModelError, match="no volume"):
        storage.delete_volume(vol.id)


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"name": "a", "level": "RAID6", "drives": ["D0", "D1", "D2", "D3"]}, "not supported"),
    ({"name": "a", "level": "RAID1", "drives": ["D0"]}, "at least 2 drives"),
    ({"name": "a", "level": "RAID1", "drives": ["D0", "D0"]}, "listed twice"),
    ({"name": "a", "level": "RAID0", "drives": ["D9"]}, "no drive D9"),
    ({"name": "", "level": "RAID0", "drives": ["D0"]}, "needs a Name"),
    ({"name": "a", "level": "RAID1", "drives": ["D0", "D1"], "size_bytes": 101 * GB},
     "exceeds"),
    ({"name": "a", "level": "RAID0", "drives": ["D0"], "size_bytes": 0}, "positive"),
])
def test_refusals(kwargs: dict[str, object], words: str) -> None:
    storage = _storage()
    with pytest.raises(hostmodel.HostModelError, match=words):
        storage.create_volume(**kwargs)  # type: ignore[arg-type]
    assert storage.volumes() == ()


def test_names_and_drives_are_not_shared() -> None:
    storage = _storage()
    storage.create_volume(name="a", level="RAID0", drives=["D0"])
    with pytest.raises(hostmodel.HostModelError, match="already exists"):
        storage.create_volume(name="a", level="RAID0", drives=["D1"])
    with pytest.raises(hostmodel.HostModelError, match="D0 is already in a volume"):
        storage.create_volume(name="b", level="RAID1", drives=["D0", "D1"])


def test_image_round_trip_and_refusals() -> None:
    data = firmwareimage.make("bios", "2.4.1", padding=10)
    assert firmwareimage.parse(data, component="bios") == "2.4.1"
    with pytest.raises(firmwareimage.ImageError, match="for bios, not bmc"):
        firmwareimage.parse(data, component="bmc")
    for junk in (b"", b"\xff\xfe garbage", b"<html>404</html>", b"METALCUBED-FIRMWARE bios\n"):
        with pytest.raises(firmwareimage.ImageError, match="not a firmware image"):
            firmwareimage.parse(junk, component="bios")


def test_version_from_url() -> None:
    name = firmwareimage.file_name("bmc", "6.10.20")
    assert firmwareimage.version_from_url(f"http://img/fw/{name}?sig=1", component="bmc") \
        == "6.10.20"
    with pytest.raises(firmwareimage.ImageError, match="does not name"):
        firmwareimage.version_from_url("http://img/fw/latest.bin", component="bmc")
    with pytest.raises(firmwareimage.ImageError, match="for bios, not bmc"):
        firmwareimage.version_from_url("http://img/bios-1.0.fwimg", component="bmc")
