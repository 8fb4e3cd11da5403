"""Hardware RAID end to end: the Redfish driver against the emulator's storage controller over
real HTTP (Storage, its StorageControllers' RAID types, Drives, Volumes created and deleted)."""

import pytest

from metalcubed.controllers.bmc import hardware
from metalcubed.controllers.bmc.redfish import raid as redfish_raid
from metalcubed.core import bmc, ports
from metalcubed.simulators import hostmodel
from tests.hardware.conftest import redfish_access

pytestmark = pytest.mark.hardware


def _host(disks: int) -> hostmodel.HostModel:
    inventory = hostmodel.make_inventory(7)
    extra = tuple(hostmodel.Disk(id=f"Disk.{i}", name=f"/dev/sd{chr(98 + i)}",
                                 size_bytes=(1000 + i) * 10**9, type=hostmodel.DiskType.HDD)
                  for i in range(2, disks))
    return hostmodel.HostModel(name="raid-0", inventory=hostmodel.Inventory(
        manufacturer=inventory.manufacturer, serial=inventory.serial,
        processors=inventory.processors, memory=inventory.memory, nics=inventory.nics,
        disks=inventory.disks + extra))


@pytest.fixture
def hosts() -> list[hostmodel.HostModel]:
    return [_host(disks=5)]


def test_controller_lists_its_levels_and_drives(redfish, hosts, clients) -> None:
    access = redfish_access(redfish, hosts[0])
    (ctrl,) = redfish_raid.RedfishRaid(clients).controllers(access)
    assert ctrl.id == "1"
    assert ctrl.raid_levels == frozenset({bmc.RaidLevel.RAID0, bmc.RaidLevel.RAID1,
                                          bmc.RaidLevel.RAID5, bmc.RaidLevel.RAID10})
    assert [d.id for d in ctrl.drives] == [f"Disk.{i}" for i in range(5)]
    assert ctrl.drives[2].rotational and not ctrl.drives[0].rotational
    assert ctrl.drives[2].size_bytes == 1002 * 10**9


def test_create_read_and_delete_volumes(redfish, hosts, clients) -> None:
    access = redfish_access(redfish, hosts[0])
    raid = redfish_raid.RedfishRaid(clients)
    mirror = bmc.VolumeRequest(name="root", level=bmc.RaidLevel.RAID1, controller="1",
                               drives=("Disk.2", "Disk.3"), size_bytes=200 * 2**30)
    raid.create_volume(access, mirror)
    raid.create_volume(access, mirror)  # exists by name: no second volume
    stripe = bmc.VolumeRequest(name="data", level=bmc.RaidLevel.RAID0, controller="1",
                               drives=("Disk.4",))
    raid.create_volume(access, stripe)
    volumes = {v.name: v for v in raid.volumes(access)}
    assert set(volumes) == {"root", "data"}
    assert (volumes["root"].level, volumes["root"].drives, volumes["root"].size_bytes) == (
        bmc.RaidLevel.RAID1, ("Disk.2", "Disk.3"), 200 * 2**30)
    assert volumes["data"].size_bytes == 1004 * 10**9  # no size: the whole drive
    raid.delete_volume(access, "1", volumes["root"].id)
    raid.delete_volume(access, "1", volumes["root"].id)  # gone: no-op
    assert [v.name for v in raid.volumes(access)] == ["data"]


@pytest.mark.parametrize(("request_", "words"), [
    (bmc.VolumeRequest(name="r6", level=bmc.RaidLevel.RAID6, controller="1",
                       drives=("Disk.1", "Disk.2", "Disk.3", "Disk.4")),
     "RAIDType RAID6 is not supported by controller 1"),
    (bmc.VolumeRequest(name="r5", level=bmc.RaidLevel.RAID5, controller="1",
                       drives=("Disk.2", "Disk.3")), "RAID5 needs at least 3 drives"),
    (bmc.VolumeRequest(name="big", level=bmc.RaidLevel.RAID1, controller="1",
                       drives=("Disk.2", "Disk.3"), size_bytes=10**13), "exceeds"),
    (bmc.VolumeRequest(name="x", level=bmc.RaidLevel.RAID0, controller="1",
                       drives=("Disk.9",)), "has no drive Disk.9"),
    (bmc.VolumeRequest(name="x", level=bmc.RaidLevel.RAID0, controller="RAID.Slot.4",
                       drives=("Disk.1",)), "no storage controller 'RAID.Slot.4'"),
])
def test_refusals_name_the_reason(redfish, hosts, clients, request_, words) -> None:
    access = redfish_access(redfish, hosts[0])
    raid = redfish_raid.RedfishRaid(clients)
    with pytest.raises(bmc.BmcRejected) as info:
        raid.create_volume(access, request_)
    assert words in str(info.value)
    assert raid.volumes(access) == ()


def test_a_drive_in_a_volume_cannot_join_another(redfish, hosts, clients) -> None:
    access = redfish_access(redfish, hosts[0])
    raid = redfish_raid.RedfishRaid(clients)
    raid.create_volume(access, bmc.VolumeRequest(
        name="a", level=bmc.RaidLevel.RAID0, controller="1", drives=("Disk.2",)))
    with pytest.raises(bmc.BmcRejected) as info:
        raid.create_volume(access, bmc.VolumeRequest(
            name="b", level=bmc.RaidLevel.RAID1, controller="1", drives=("Disk.2", "Disk.3")))
    assert "Disk.2 is already in a volume" in str(info.value)


def test_hardware_types_offer_raid_as_upstream() -> None:
    creds = ports.Credentials(username="u", password="p")
    assert hardware.REDFISH.allowed(bmc.Capability.RAID) == ("redfish", "no-raid")
    ipmi = hardware.IPMI.compose()
    assert ipmi.raid.name == "no-raid"
    with pytest.raises(bmc.UnsupportedCapability) as info:
        ipmi.raid.controllers(bmc.BmcAccess.of("ipmi://192.0.2.1", creds))
    assert "BMC driver ipmi does not support configuring RAID" in str(info.value)
