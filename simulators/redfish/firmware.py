"""The emulator's UpdateService and TaskService: firmware inventory, SimpleUpdate and its tasks.

`POST /redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate` with `ImageURI` and one
`Targets` entry (a FirmwareInventory item, or, as sushy-tools accepts, a System for its BIOS or
a Manager for its BMC firmware): the BMC fetches the image over HTTP as a real one does, reads
the version it carries (`firmwareimage.parse`) and starts the host model's update
(`HostModel.start_firmware_update`: the modelled flash time, then the reboot that applies it,
with the fault model's failed flashes and BMC reboots). An image it cannot fetch (404, refused
connection) or use (not an image, an image for another component) still gets a task, which
ends in Exception with the reason (`HostModel.fail_firmware_update`), as on real BMCs, where
SimpleUpdate is accepted before the download. The answer is 202 with the task's URI in
Location and the Task in the body.

Tasks are the hosts' firmware tasks, served under `/redfish/v1/TaskService/Tasks/<uuid>.<id>`
with Redfish's TaskState (Running, Completed, Exception), PercentComplete (from the modelled
flash time), Messages and the standard `Payload` (the SimpleUpdate request), which is how a
client tells which image and target a task is about.
"""

import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

import flask
import requests
from sushy_tools import error as fishy  # type: ignore[import-untyped]

from metalcubed.simulators import firmwareimage, hostmodel
from metalcubed.simulators.redfish import views

INVENTORY = "/redfish/v1/UpdateService/FirmwareInventory"
TASKS = "/redfish/v1/TaskService/Tasks"
SIMPLE_UPDATE = "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate"
MAX_FIRMWARE_BYTES = 512 * 1024**2
"""The emulated BMC refuses firmware images larger than this (512 MiB)."""
FETCH_TIMEOUT_S = 10.0

_REDFISH_STATE = {
    hostmodel.TaskState.RUNNING: "Running",
    hostmodel.TaskState.COMPLETED: "Completed",
    hostmodel.TaskState.EXCEPTION: "Exception",
}


# --- inventory ---------------------------------------------------------------------------------


def _items() -> Iterator[tuple[str, str, hostmodel.HostModel, str]]:
    for host in views.current().hosts:
        for component, version in sorted(host.firmware().items()):
            yield f"{component}-{host.uuid}", component, host, version


def _inventory() -> flask.Response:
    members = [{"@odata.id": f"{INVENTORY}/{item_id}"} for item_id, *_ in _items()]
    return views.reply({
        "@odata.type": "#SoftwareInventoryCollection.SoftwareInventoryCollection",
        "@odata.id": INVENTORY, "Name": "Firmware Inventory",
        "Members@odata.count": len(members), "Members": members})


def _item(item_id: str) -> flask.Response:
    for candidate, component, host, version in _items():
        if candidate == item_id:
            related = (f"/redfish/v1/Managers/{host.uuid}" if component == "bmc"
                       else f"/redfish/v1/Systems/{host.uuid}")
            return views.reply({
                "@odata.type": "#SoftwareInventory.v1_3_0.SoftwareInventory",
                "@odata.id": f"{INVENTORY}/{item_id}",
                "Id": item_id, "Name": component.upper(), "Version": version,
                "Updateable": True,
                "RelatedItem": [{"@odata.id": related}],
                "Status": {"State": "Enabled", "Health": "OK"},
            })
    raise fishy.NotFound(f"no firmware inventory item {item_id}")


def update_service_overlay(doc: dict[str, Any]) -> None:
    """sushy-tools' UpdateService document, without the SoftwareInventory we do not serve."""
    doc.pop("SoftwareInventory", None)
    doc.pop("HttpPushUri", None)


# --- SimpleUpdate --------------------------------------------------------------------------------


def _target(target: object) -> tuple[hostmodel.HostModel, str]:
    """The host and component a SimpleUpdate target names."""
    if not isinstance(target, str):
        raise fishy.BadRequest("Targets must hold URIs (strings)")
    path = target.rstrip("/")
    em = views.current()
    for prefix, component in (("/redfish/v1/Systems/", "bios"), ("/redfish/v1/Managers/", "bmc")):
        if path.startswith(prefix):
            found = em.hosts_by_uuid.get(path[len(prefix):]) or em.hosts_by_name.get(
                path[len(prefix):])
            if found is None:
                raise fishy.BadRequest(f"Targets: no resource {target}")
            return found, component
    if path.startswith(INVENTORY + "/"):
        item_id = path[len(INVENTORY) + 1:]
        for candidate, component, host, _ in _items():
            if candidate == item_id:
                return host, component
    raise fishy.BadRequest(f"Targets: {target} is not a firmware inventory item, system or "
                           f"manager of this service")


def _fetch(url: str) -> bytes:
    """Download the image as the BMC does; ImageError with the reason when it cannot."""
    try:
        with requests.get(url, stream=True, timeout=FETCH_TIMEOUT_S) as rsp:
            if rsp.status_code >= 400:
                raise firmwareimage.ImageError(
                    f"cannot download the image from {url}: HTTP {rsp.status_code}")
            data = bytearray()
            for chunk in rsp.iter_content(chunk_size=65536):
                data += chunk
                if len(data) > MAX_FIRMWARE_BYTES:
                    raise firmwareimage.ImageError(
                        f"the image at {url} is larger than {MAX_FIRMWARE_BYTES} bytes")
            return bytes(data)
    except requests.RequestException as err:
        raise firmwareimage.ImageError(f"cannot download the image from {url}: "
                                       f"{type(err).__name__}") from err


def _simple_update() -> flask.Response:
    request = views.body()
    image_url = request.get("ImageURI")
    if not isinstance(image_url, str) or not image_url.startswith(("http://", "https://")):
        raise fishy.BadRequest("ImageURI must be an http(s) URL")
    protocol = request.get("TransferProtocol", "HTTP")
    if protocol not in ("HTTP", "HTTPS"):
        raise fishy.BadRequest(f"TransferProtocol {protocol} is not supported (HTTP, HTTPS)")
    targets = request.get("Targets")
    if not isinstance(targets, list) or len(targets) != 1:
        raise fishy.BadRequest("Targets must list exactly one firmware inventory item")
    host, component = _target(targets[0])
    em = views.current()
    try:
        version = firmwareimage.parse(_fetch(image_url), component=component)
    except firmwareimage.ImageError as err:
        task = host.fail_firmware_update(component, image_url, str(err))
    else:
        try:
            task = host.start_firmware_update(component, image_url, version=version)
        except hostmodel.HostModelError as err:
            raise fishy.Conflict(str(err)) from err
    task_id = f"{host.uuid}.{task.id}"
    with em.lock:
        em.task_payloads[task_id] = (time.monotonic(), json.dumps(
            {"ImageURI": image_url, "Targets": targets, "TransferProtocol": protocol}))
    doc = _task_doc(host, task, task_id)
    return views.reply(doc, 202, {"Location": doc["@odata.id"]})


# --- TaskService ---------------------------------------------------------------------------------


def _tasks(hosts: Iterable[hostmodel.HostModel]
           ) -> Iterator[tuple[str, hostmodel.HostModel, hostmodel.FirmwareTask]]:
    for host in hosts:
        for task in host.firmware_tasks():
            yield f"{host.uuid}.{task.id}", host, task


def _task_doc(host: hostmodel.HostModel, task: hostmodel.FirmwareTask, task_id: str
              ) -> dict[str, Any]:
    em = views.current()
    with em.lock:
        started, payload = em.task_payloads.get(task_id, (time.monotonic(), "{}"))
    state = _REDFISH_STATE[task.state]
    if task.state is hostmodel.TaskState.RUNNING:
        duration = host.timing.firmware_update_s
        done = (time.monotonic() - started) / duration if duration > 0 else 1.0
        percent = max(0, min(99, int(100 * done)))
        message = f"Updating {task.component} firmware to {task.version}"
    elif task.state is hostmodel.TaskState.COMPLETED:
        percent, message = 100, f"{task.component} firmware is now {task.version}"
    else:
        percent, message = 100, task.message
    return {
        "@odata.type": "#Task.v1_4_3.Task",
        "@odata.id": f"{TASKS}/{task_id}",
        "Id": task_id,
        "Name": f"Firmware update of {task.component}",
        "TaskState": state,
        "TaskStatus": "Critical" if task.state is hostmodel.TaskState.EXCEPTION else "OK",
        "PercentComplete": percent,
        "Messages": [{"MessageId": _MESSAGE_IDS[task.state], "Message": message}],
        "Payload": {"TargetUri": SIMPLE_UPDATE, "HttpOperation": "POST", "HttpHeaders": [],
                    "JsonBody": payload},
    }


_MESSAGE_IDS = {
    hostmodel.TaskState.RUNNING: "TaskEvent.1.0.TaskStarted",
    hostmodel.TaskState.COMPLETED: "TaskEvent.1.0.TaskCompletedOK",
    hostmodel.TaskState.EXCEPTION: "TaskEvent.1.0.TaskAborted",
}


def _task_service() -> flask.Response:
    return views.reply({
        "@odata.type": "#TaskService.v1_1_2.TaskService", "@odata.id": "/redfish/v1/TaskService",
        "Id": "TaskService", "Name": "Task Service", "ServiceEnabled": True,
        "CompletedTaskOverWritePolicy": "Manual", "LifeCycleEventOnTaskStateChange": True,
        "Status": {"State": "Enabled", "Health": "OK"},
        "Tasks": {"@odata.id": TASKS}})


def _task_collection() -> flask.Response:
    ids = [task_id for task_id, *_ in _tasks(views.current().hosts)]
    return views.reply({"@odata.type": "#TaskCollection.TaskCollection", "@odata.id": TASKS,
                        "Name": "Task Collection", "Members@odata.count": len(ids),
                        "Members": [{"@odata.id": f"{TASKS}/{i}"} for i in ids]})


def _task(task_id: str) -> flask.Response:
    uuid, _, host_task = task_id.partition(".")
    found = views.current().hosts_by_uuid.get(uuid)
    if found is None:
        raise fishy.NotFound(f"no task {task_id}")
    try:
        task = found.firmware_task(host_task)
    except KeyError as err:
        raise fishy.NotFound(f"no task {task_id}") from err
    return views.reply(_task_doc(found, task, task_id))


def finished_tasks(hosts: Iterable[hostmodel.HostModel], seen: set[str]
                   ) -> Iterator[tuple[str, hostmodel.HostModel, hostmodel.FirmwareTask]]:
    """Tasks that ended and are not in `seen` (for the event service's task events)."""
    for task_id, host, task in _tasks(hosts):
        if task.state is not hostmodel.TaskState.RUNNING and task_id not in seen:
            yield task_id, host, task


def install() -> None:
    """Register the views on the sushy-tools app (once, from `emulator.install`)."""
    views.APP.view_functions["UpdateService.update_service_simple_update"] = _simple_update
    views.APP.view_functions["simple_task_service"] = _task_service
    views.add(INVENTORY, "m3_firmware_inventory", _inventory)
    views.add(INVENTORY + "/<item_id>", "m3_firmware_item", _item)
    views.add(TASKS, "m3_task_collection", _task_collection)
    views.add(TASKS + "/<task_id>", "m3_task", _task)
