"""Hardware RAID over Redfish, with sushy: the System's Storage resources and their Volumes.

A controller is a Storage resource whose StorageControllers list RAID types; its id (what
spec.raid's `controller` names) is the Storage resource's Id. Volumes are created by POSTing
Name, RAIDType, optional CapacityBytes and Links.Drives to the Storage's Volumes, and deleted
with a DELETE. Creating a name that exists and deleting a volume that is gone send nothing.
"""

from collections.abc import Mapping
from typing import Any

import sushy  # type: ignore[import-untyped]
from sushy import exceptions as sushy_exc  # type: ignore[import-untyped]
from sushy.resources.system import system as sushy_system  # type: ignore[import-untyped]

from metalcubed.controllers.bmc.redfish import capabilities, parse
from metalcubed.core import bmc


class RedfishRaid(capabilities.RedfishBase):
    """The `core.bmc.Raid` capability (upstream's "redfish" RAID interface)."""

    @staticmethod
    def _storages(conn: sushy.Sushy, system: sushy_system.System) -> list[Any]:
        try:
            return list(system.storage.get_members())
        except (sushy_exc.MissingAttributeError, sushy_exc.ResourceNotFoundError):
            return []

    def _storage(self, conn: sushy.Sushy, access: bmc.BmcAccess, controller: str,
                 operation: str) -> Any:
        for storage in self._storages(conn, self._system(conn, access)):
            if storage.identity == controller:
                return storage
        raise bmc.BmcRejected(access.display, operation,
                              f"no storage controller {controller!r}", status=404)

    def controllers(self, access: bmc.BmcAccess) -> tuple[bmc.StorageController, ...]:
        def run(conn: sushy.Sushy) -> tuple[bmc.StorageController, ...]:
            found = []
            for storage in self._storages(conn, self._system(conn, access)):
                ctrl = parse.storage_controller(storage.json, [d.json for d in storage.drives])
                if ctrl is not None:
                    found.append(ctrl)
            return tuple(found)

        result: tuple[bmc.StorageController, ...] = self._call(
            access, "list storage controllers", run)
        return result

    def volumes(self, access: bmc.BmcAccess) -> tuple[bmc.Volume, ...]:
        def run(conn: sushy.Sushy) -> tuple[bmc.Volume, ...]:
            found: list[bmc.Volume] = []
            for storage in self._storages(conn, self._system(conn, access)):
                if not storage.json.get("Volumes"):
                    continue
                found.extend(parse.volume(v.json, storage.identity)
                             for v in storage.volumes.get_members())
            return tuple(found)

        result: tuple[bmc.Volume, ...] = self._call(access, "list volumes", run)
        return result

    def create_volume(self, access: bmc.BmcAccess, request: bmc.VolumeRequest) -> None:
        operation = f"create volume {request.name}"

        def run(conn: sushy.Sushy) -> None:
            storage = self._storage(conn, access, request.controller, operation)
            collection = storage.volumes
            if any(v.json.get("Name") == request.name for v in collection.get_members()):
                return
            links = {}
            for link in storage.json.get("Drives") or []:
                path = link.get("@odata.id", "") if isinstance(link, Mapping) else ""
                links[path.rstrip("/").rsplit("/", 1)[-1]] = path
            missing = [d for d in request.drives if d not in links]
            if missing:
                raise bmc.BmcRejected(access.display, operation,
                                      f"controller {request.controller} has no drive "
                                      f"{', '.join(missing)}", status=400)
            payload: dict[str, Any] = {
                "Name": request.name, "RAIDType": parse.RAID_TYPE[request.level],
                "Links": {"Drives": [{"@odata.id": links[d]} for d in request.drives]},
            }
            if request.size_bytes is not None:
                payload["CapacityBytes"] = request.size_bytes
            collection.create(payload)

        self._call(access, operation, run, idempotent=False)

    def delete_volume(self, access: bmc.BmcAccess, controller: str, volume_id: str) -> None:
        operation = f"delete volume {volume_id}"

        def run(conn: sushy.Sushy) -> None:
            storage = self._storage(conn, access, controller, operation)
            for member in storage.volumes.get_members():
                if member.identity == volume_id:
                    member.delete()
                    return

        self._call(access, operation, run)
