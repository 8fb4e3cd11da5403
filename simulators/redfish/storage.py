"""The emulator's Storage: one RAID controller per system, its drives and its volumes.

`Storage/1` is the host's disks behind one controller (`raidmodel.Storage`), listed in
`StorageControllers` with its `SupportedRAIDTypes`; `Storage/1/Volumes` lists the volumes and
takes a POST (Name, RAIDType, optional CapacityBytes, Links.Drives) that builds one at once
(201 with its Location); `DELETE Storage/1/Volumes/<id>` removes one. A request the controller
refuses (a level it lacks, too few drives, a drive already used, a size above what the drives
give) is a 400 naming the reason.
"""

from typing import Any

import flask
from sushy_tools import error as fishy  # type: ignore[import-untyped]

from metalcubed.simulators import hostmodel, raidmodel
from metalcubed.simulators.redfish import views

_PROTOCOL = {hostmodel.DiskType.NVME: "NVMe", hostmodel.DiskType.SSD: "SATA",
             hostmodel.DiskType.HDD: "SAS"}
_VOLUME_TYPE = {"RAID0": "NonRedundant", "RAID1": "Mirrored", "RAID5": "StripedWithParity",
                "RAID6": "StripedWithParity", "RAID10": "SpannedMirrors",
                "RAID50": "SpannedStripesWithParity", "RAID60": "SpannedStripesWithParity"}


def _base(identity: str) -> str:
    return f"/redfish/v1/Systems/{identity}/Storage"


def _controller(identity: str, storage_id: str) -> raidmodel.Storage:
    storage = views.current().storage_of(views.lookup(identity))
    if storage_id != storage.controller_id:
        raise fishy.NotFound(f"no storage {storage_id}")
    return storage


def _collection(identity: str) -> flask.Response:
    storage = views.current().storage_of(views.lookup(identity))
    base = _base(identity)
    return views.reply({"@odata.type": "#StorageCollection.StorageCollection",
                        "@odata.id": base, "Name": "Storage Collection",
                        "Members@odata.count": 1,
                        "Members": [{"@odata.id": f"{base}/{storage.controller_id}"}]})


def _storage(identity: str, storage_id: str) -> flask.Response:
    storage = _controller(identity, storage_id)
    base = f"{_base(identity)}/{storage_id}"
    return views.reply({
        "@odata.type": "#Storage.v1_9_0.Storage", "@odata.id": base, "Id": storage_id,
        "Name": "Local Storage Controller",
        "Status": {"State": "Enabled", "Health": "OK"},
        "StorageControllers": [{
            "@odata.id": f"{base}#/StorageControllers/0", "MemberId": "0",
            "Name": storage.name, "Status": {"State": "Enabled", "Health": "OK"},
            "SupportedRAIDTypes": list(storage.levels),
            "SupportedDeviceProtocols": sorted({_PROTOCOL[d.type]
                                                for d in storage.disks.values()}),
        }],
        "Drives": [{"@odata.id": f"{base}/Drives/{d}"} for d in storage.disks],
        "Drives@odata.count": len(storage.disks),
        "Volumes": {"@odata.id": f"{base}/Volumes"},
    })


def _drive(identity: str, stg_id: str, drv_id: str) -> flask.Response:
    disk = _controller(identity, stg_id).disks.get(drv_id)
    if disk is None:
        raise fishy.NotFound(f"no drive {drv_id}")
    return views.reply({
        "@odata.type": "#Drive.v1_9_0.Drive",
        "@odata.id": f"{_base(identity)}/{stg_id}/Drives/{disk.id}",
        "Id": disk.id, "Name": disk.name, "CapacityBytes": disk.size_bytes,
        "MediaType": "HDD" if disk.rotational else "SSD",
        "Protocol": _PROTOCOL[disk.type], "Manufacturer": disk.vendor,
        "Model": disk.model, "SerialNumber": disk.serial,
        "Status": {"State": "Enabled", "Health": "OK"},
    })


def _volume_doc(identity: str, storage_id: str, volume: raidmodel.Volume) -> dict[str, Any]:
    base = f"{_base(identity)}/{storage_id}"
    return {
        "@odata.type": "#Volume.v1_6_0.Volume", "@odata.id": f"{base}/Volumes/{volume.id}",
        "Id": volume.id, "Name": volume.name, "RAIDType": volume.level,
        "VolumeType": _VOLUME_TYPE.get(volume.level, "RawDevice"),
        "CapacityBytes": volume.size_bytes, "Status": {"State": "Enabled", "Health": "OK"},
        "Links": {"Drives": [{"@odata.id": f"{base}/Drives/{d}"} for d in volume.drives]},
    }


def _drive_ids(request: dict[str, Any], identity: str, storage_id: str) -> list[str]:
    links = request.get("Links", {})
    drives = links.get("Drives") if isinstance(links, dict) else None
    if not isinstance(drives, list) or not drives:
        raise fishy.BadRequest("Links.Drives must list the drives of the volume")
    prefix = f"{_base(identity)}/{storage_id}/Drives/"
    ids = []
    for link in drives:
        path = link.get("@odata.id") if isinstance(link, dict) else None
        if not isinstance(path, str) or not path.startswith(prefix):
            raise fishy.BadRequest(f"Links.Drives: {path!r} is not a drive of this storage")
        ids.append(path[len(prefix):])
    return ids


def _volumes(identity: str, storage_id: str) -> flask.Response:
    storage = _controller(identity, storage_id)
    base = f"{_base(identity)}/{storage_id}/Volumes"
    if flask.request.method == "POST":
        request = views.body()
        name, level, size = (request.get("Name"), request.get("RAIDType"),
                             request.get("CapacityBytes"))
        if not isinstance(name, str) or not isinstance(level, str):
            raise fishy.BadRequest("Name and RAIDType are required strings")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
            raise fishy.BadRequest("CapacityBytes must be an integer")
        try:
            volume = storage.create_volume(name=name, level=level, size_bytes=size,
                                           drives=_drive_ids(request, identity, storage_id))
        except hostmodel.HostModelError as err:
            raise fishy.BadRequest(str(err)) from err
        return views.reply(_volume_doc(identity, storage_id, volume), 201,
                           {"Location": f"{base}/{volume.id}"})
    ids = [v.id for v in storage.volumes()]
    return views.reply({"@odata.type": "#VolumeCollection.VolumeCollection", "@odata.id": base,
                        "Name": "Volume Collection", "Members@odata.count": len(ids),
                        "Members": [{"@odata.id": f"{base}/{i}"} for i in ids]})


def _volume(identity: str, stg_id: str, vol_id: str) -> flask.Response:
    storage = _controller(identity, stg_id)
    if flask.request.method == "DELETE":
        try:
            storage.delete_volume(vol_id)
        except hostmodel.HostModelError as err:
            raise fishy.NotFound(str(err)) from err
        return flask.Response(status=204)
    volume = storage.volume(vol_id)
    if volume is None:
        raise fishy.NotFound(f"no volume {vol_id}")
    return views.reply(_volume_doc(identity, stg_id, volume))


def install() -> None:
    """Register the views on the sushy-tools app (once, from `emulator.install`)."""
    functions = views.APP.view_functions
    functions["storage_collection"] = _collection
    functions["storage"] = _storage
    functions["drive_resource"] = _drive
    functions["volumes_collection"] = _volumes
    functions["volume"] = _volume
    # sushy-tools' volume rule takes GET only: ours adds DELETE.
    views.add("/redfish/v1/Systems/<identity>/Storage/<stg_id>/Volumes/<vol_id>", "m3_volume",
              _volume, ("GET", "DELETE"))
