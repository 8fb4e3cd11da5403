"""RAID planning (core/provisioning/raid.py): spec.raid volumes resolved against the BMC's
controllers, and the field-named refusals, without a BMC."""

import pytest

from metalcubed.core import bmc
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.provisioning import raid
from metalcubed.core.provisioning.context import StepFailed

L = bmc.RaidLevel
TB = 10**12


def _drive(i: int, *, rotational: bool = False) -> bmc.PhysicalDrive:
    return bmc.PhysicalDrive(id=f"Disk.{i}", name=f"disk{i}", size_bytes=TB,
                             rotational=rotational)


CTL = bmc.StorageController(
    id="RAID.1", name="PERC", raid_levels=frozenset({L.RAID0, L.RAID1, L.RAID5, L.RAID10}),
    drives=(_drive(0), _drive(1), _drive(2, rotational=True), _drive(3, rotational=True),
            _drive(4, rotational=True)))


def vol(level: str, **kw: object) -> bmh.HardwareRAIDVolume:
    return bmh.HardwareRAIDVolume.model_validate({"level": level, **kw})


def test_volumes_take_free_drives_in_order_and_the_levels_minimum() -> None:
    planned = raid.plan((vol("1", name="os"), vol("0")), (CTL,))
    assert [(p.request.name, p.request.level, p.request.drives) for p in planned] == [
        ("os", L.RAID1, ("Disk.0", "Disk.1")), ("volume1", L.RAID0, ("Disk.2",))]
    assert all(p.request.controller == "RAID.1" for p in planned)


def test_rotational_count_and_size_are_honoured() -> None:
    (p,) = raid.plan((vol("5", rotational=True, numberOfPhysicalDisks=3,
                          sizeGibibytes=100),), (CTL,))
    assert p.request.drives == ("Disk.2", "Disk.3", "Disk.4")
    assert p.request.size_bytes == 100 * raid.GIB


def test_a_level_the_controller_lacks_names_the_field_and_what_it_supports() -> None:
    with pytest.raises(StepFailed) as err:
        raid.plan((vol("1"), vol("6")), (CTL,))
    assert err.value.message == (
        "spec.raid.hardwareRAIDVolumes[1].level: RAID level 6 is not supported by controller "
        "RAID.1 (it supports 0, 1, 1+0, 5)")


def test_too_few_drives_names_number_of_physical_disks() -> None:
    with pytest.raises(StepFailed) as err:
        raid.plan((vol("1+0", rotational=False),), (CTL,))
    assert err.value.message.startswith(
        "spec.raid.hardwareRAIDVolumes[0].numberOfPhysicalDisks: RAID level 1+0 needs 4 "
        "non-rotational drives")


def test_named_disks_and_controller_are_checked() -> None:
    with pytest.raises(StepFailed) as err:
        raid.plan((vol("1", controller="RAID.1", physicalDisks=["Disk.0", "Disk.9"]),), (CTL,))
    assert err.value.message.startswith(
        "spec.raid.hardwareRAIDVolumes[0].physicalDisks: controller RAID.1 has no drive "
        "'Disk.9'")
    with pytest.raises(StepFailed) as err:
        raid.plan((vol("1", controller="NVMe.1"),), (CTL,))
    assert err.value.message.startswith("spec.raid.hardwareRAIDVolumes[0].controller: no RAID "
                                        "controller 'NVMe.1'")


def test_the_second_controller_is_used_when_the_first_lacks_the_level() -> None:
    other = bmc.StorageController(id="RAID.2", name="HBA", raid_levels=frozenset({L.RAID6}),
                                  drives=tuple(_drive(i) for i in range(10, 14)))
    (p,) = raid.plan((vol("6"),), (CTL, other))
    assert p.request.controller == "RAID.2"


@pytest.mark.parametrize(
    ("interface", "config", "wanted"),
    [
        pytest.param("no-raid", {"hardwareRAIDVolumes": [{"level": "1"}]},
                     "spec.raid.hardwareRAIDVolumes: RAID settings are defined, but the node's "
                     "driver no-raid does not support RAID", id="no-raid"),
        pytest.param("redfish", {"hardwareRAIDVolumes": [{"level": "1", "name": "a"},
                                                         {"level": "0", "name": "a"}]},
                     "spec.raid.hardwareRAIDVolumes[1].name: the names(a) of volume[1] and "
                     "volume[0] are repeated", id="repeated-names"),
        pytest.param("redfish", {"softwareRAIDVolumes": [{"level": "0"}]},
                     "spec.raid.softwareRAIDVolumes[0].level: the level in first volume of "
                     "software raid must be RAID1", id="software-first-not-raid1"),
    ],
)
def test_upstreams_refusals(interface: str, config: dict[str, object], wanted: str) -> None:
    with pytest.raises(StepFailed) as err:
        raid.check(interface, bmh.RAIDConfig.model_validate(config))
    assert err.value.message == wanted
