"""Redfish parsers for firmware update tasks, storage controllers and volumes: the Redfish
values each maps, and hostile documents refused with a PayloadError naming the field."""

import json

import pytest

from metalcubed.controllers.bmc.redfish import parse
from metalcubed.core import bmc

SIMPLE_UPDATE = "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate"


def _task(state: str, *, status: str = "OK", percent: object = 40, body: object = None
          ) -> dict[str, object]:
    request = body if body is not None else json.dumps(
        {"ImageURI": "http://img/bios-2.fwimg", "Targets": ["/redfish/v1/Systems/1"]})
    return {"Id": "JID_1", "TaskState": state, "TaskStatus": status, "PercentComplete": percent,
            "Messages": [{"Message": "step 1"}, {"Message": "step 2"}],
            "Payload": {"TargetUri": SIMPLE_UPDATE, "JsonBody": request}}


@pytest.mark.parametrize(("state", "status", "expected"), [
    ("New", "OK", bmc.TaskState.RUNNING),
    ("Running", "OK", bmc.TaskState.RUNNING),
    ("Pending", "OK", bmc.TaskState.RUNNING),
    ("Completed", "OK", bmc.TaskState.COMPLETED),
    ("Completed", "Critical", bmc.TaskState.FAILED),
    ("Exception", "Critical", bmc.TaskState.FAILED),
    ("Killed", "Warning", bmc.TaskState.FAILED),
    ("Cancelled", "OK", bmc.TaskState.FAILED),
    ("SomethingNew", "OK", bmc.TaskState.RUNNING),
])
def test_task_states(state: str, status: str, expected: bmc.TaskState) -> None:
    task = parse.update_task(_task(state, status=status), "bios", "http://img/bios-2.fwimg")
    assert task.state is expected
    assert (task.id, task.percent, task.message) == ("JID_1", 40, "step 1; step 2")


def test_percent_is_clamped_and_optional() -> None:
    assert parse.update_task(_task("Running", percent=250), "bios", "u").percent == 100
    assert parse.update_task(_task("Running", percent=None), "bios", "u").percent is None
    with pytest.raises(parse.PayloadError, match="PercentComplete"):
        parse.update_task(_task("Running", percent="half"), "bios", "u")


def test_simple_update_request_from_payload() -> None:
    assert parse.simple_update_request(_task("Running")) == (
        "http://img/bios-2.fwimg", ("/redfish/v1/Systems/1",))
    # Some BMCs give the body as an object rather than a JSON string.
    as_object = _task("Running", body={"ImageURI": "http://x", "Targets": ["/t"]})
    assert parse.simple_update_request(as_object) == ("http://x", ("/t",))
    assert parse.simple_update_request({"Id": "2", "Payload": {"TargetUri": "/Reset"}}) is None
    assert parse.simple_update_request({"Id": "3"}) is None
    with pytest.raises(parse.PayloadError, match="JsonBody is not JSON"):
        parse.simple_update_request(_task("Running", body="{not json"))


def test_task_without_id_is_refused() -> None:
    with pytest.raises(parse.PayloadError, match=r"Task\.Id"):
        parse.update_task({"TaskState": "Running"}, "bios", "u")


STORAGE = {
    "Id": "RAID.Integrated.1-1", "Name": "PERC H740P",
    "StorageControllers": [{"MemberId": "0", "Name": "PERC H740P Mini",
                            "SupportedRAIDTypes": ["RAID0", "RAID1", "RAID10", "RAID99"]}],
}
DRIVE = {"Id": "Disk.Bay.0", "Name": "Disk 0", "CapacityBytes": 599550590976,
         "MediaType": "HDD"}


def test_storage_controller_levels_and_drives() -> None:
    ctrl = parse.storage_controller(STORAGE, [DRIVE])
    assert ctrl == bmc.StorageController(
        id="RAID.Integrated.1-1", name="PERC H740P Mini",
        raid_levels=frozenset({bmc.RaidLevel.RAID0, bmc.RaidLevel.RAID1, bmc.RaidLevel.RAID10}),
        drives=(bmc.PhysicalDrive(id="Disk.Bay.0", name="Disk 0", size_bytes=599550590976,
                                  rotational=True),))


def test_storage_without_raid_types_is_no_controller() -> None:
    assert parse.storage_controller({"Id": "AHCI", "StorageControllers": [{}]}, []) is None
    assert parse.storage_controller({"Id": "NVMe"}, [DRIVE]) is None


def test_volume() -> None:
    doc = {"Id": "Disk.Virtual.0", "Name": "root", "RAIDType": "RAID1",
           "CapacityBytes": 2**40,
           "Links": {"Drives": [{"@odata.id": "/redfish/v1/Systems/1/Storage/R/Drives/D0"},
                                {"@odata.id": "/redfish/v1/Systems/1/Storage/R/Drives/D1/"}]}}
    assert parse.volume(doc, "R") == bmc.Volume(
        id="Disk.Virtual.0", controller="R", name="root", level=bmc.RaidLevel.RAID1,
        size_bytes=2**40, drives=("D0", "D1"))
    assert parse.volume({"Id": "v", "RAIDType": "RAID00"}, "R").level is None


@pytest.mark.parametrize("doc", [
    [], {"Name": "no id"}, {"Id": "v", "CapacityBytes": "big"},
    {"Id": "v", "Links": {"Drives": "all"}}, {"Id": "v", "Links": {"Drives": [1]}},
])
def test_hostile_volumes_are_refused(doc: object) -> None:
    with pytest.raises(parse.PayloadError):
        parse.volume(doc, "R")


def test_raid_type_names_round_trip() -> None:
    for level in bmc.RaidLevel:
        assert parse.RAID_TYPE[level].startswith("RAID")
    assert parse.RAID_TYPE[bmc.RaidLevel.RAID10] == "RAID10"
