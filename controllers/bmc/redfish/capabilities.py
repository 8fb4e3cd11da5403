"""The core.bmc capabilities over Redfish, with sushy.

Each capability walks sushy's resource objects from the service root (ComputerSystem, its
Bios, Processors, EthernetInterfaces, Storage, the Managers' or the System's VirtualMedia, the
UpdateService's FirmwareInventory and SimpleUpdate, the TaskService's Tasks, the EventService's
Subscriptions) and hands their JSON to the pure parsers in `parse`; no URL is built by hand,
links are followed. RAID is in raid.py. Every call goes through `client.Clients.call`, which
reuses the BMC's session, retries within a budget and translates errors. Writes check the
current state first, so repeating a call is a no-op.
"""

from collections.abc import Mapping
from typing import Any

import sushy  # type: ignore[import-untyped]
from sushy import exceptions as sushy_exc  # type: ignore[import-untyped]
from sushy import utils as sushy_utils  # type: ignore[import-untyped]
from sushy.resources import base as sushy_base  # type: ignore[import-untyped]
from sushy.resources.system import system as sushy_system  # type: ignore[import-untyped]

from metalcubed.controllers.bmc.redfish import client, parse, vendors
from metalcubed.core import bmc, outcome, ports
from metalcubed.core.api import hardwaredata as hwd

MAX_TASKS = 64
"""The most recent BMC tasks `update_tasks` reads (each is one GET)."""

DEFAULT_CLIENTS = client.Clients()
"""The process-wide session cache the capabilities share unless given their own."""

_RESET = {
    ports.RebootMode.SOFT: (sushy.ResetType.GRACEFUL_SHUTDOWN, sushy.ResetType.GRACEFUL_RESTART),
    ports.RebootMode.HARD: (sushy.ResetType.FORCE_OFF, sushy.ResetType.FORCE_RESTART),
}
_ENABLED = {
    bmc.Persistence.ONCE: sushy.BootSourceOverrideEnabled.ONCE,
    bmc.Persistence.PERSISTENT: sushy.BootSourceOverrideEnabled.CONTINUOUS,
}
_MODE = {
    bmc.BootMode.UEFI: sushy.BootSourceOverrideMode.UEFI,
    bmc.BootMode.LEGACY: sushy.BootSourceOverrideMode.LEGACY,
}


class _Redfish:
    """Shared plumbing: validation, the client cache, finding the ComputerSystem."""

    name = "redfish"

    def __init__(self, clients: client.Clients | None = None) -> None:
        self._clients = clients or DEFAULT_CLIENTS

    def validate(self, access: bmc.BmcAccess) -> None:
        if not access.address.type.http_transports:
            raise outcome.SpecError(
                "spec.bmc.address", f"scheme {access.address.scheme!r} is not a Redfish scheme")
        if not access.credentials.username:
            raise outcome.SpecError("spec.bmc.credentialsName", "the BMC username is empty")

    @staticmethod
    def _system(conn: sushy.Sushy, access: bmc.BmcAccess) -> sushy_system.System:
        return conn.get_system(access.address.system_id or None)

    def _call(self, access: bmc.BmcAccess, operation: str, fn: Any, *,
              idempotent: bool = True) -> Any:
        return self._clients.call(access, operation, fn, idempotent=idempotent)


RedfishBase = _Redfish
"""The shared plumbing, for capabilities in sibling modules (raid.py)."""


class RedfishPower(_Redfish):
    def power_state(self, access: bmc.BmcAccess) -> bmc.PowerState:
        result: bmc.PowerState = self._call(
            access, "get power state", lambda c: parse.power_state(self._system(c, access).json))
        return result

    def start_power_on(self, access: bmc.BmcAccess) -> None:
        def run(conn: sushy.Sushy) -> None:
            system = self._system(conn, access)
            if parse.power_state(system.json) in (bmc.PowerState.ON, bmc.PowerState.POWERING_ON):
                return
            system.reset_system(sushy.ResetType.ON)

        self._call(access, "power on", run)

    def start_power_off(self, access: bmc.BmcAccess, *, mode: ports.RebootMode) -> None:
        def run(conn: sushy.Sushy) -> None:
            system = self._system(conn, access)
            if parse.power_state(system.json) is bmc.PowerState.OFF:
                return
            system.reset_system(_RESET[mode][0])

        self._call(access, f"power off ({mode.value})", run)

    def start_reboot(self, access: bmc.BmcAccess, *, mode: ports.RebootMode) -> None:
        def run(conn: sushy.Sushy) -> None:
            system = self._system(conn, access)
            if parse.power_state(system.json) is bmc.PowerState.OFF:
                system.reset_system(sushy.ResetType.ON)
            else:
                system.reset_system(_RESET[mode][1])

        self._call(access, f"reboot ({mode.value})", run, idempotent=False)


class RedfishManagement(_Redfish):
    def boot_setting(self, access: bmc.BmcAccess) -> bmc.BootSetting:
        result: bmc.BootSetting = self._call(
            access, "get boot device", lambda c: parse.boot_setting(self._system(c, access).json))
        return result

    def set_boot_device(self, access: bmc.BmcAccess, device: bmc.BootDevice, *,
                        persistence: bmc.Persistence) -> None:
        def run(conn: sushy.Sushy) -> None:
            system = self._system(conn, access)
            current = parse.boot_setting(system.json)
            if current.device is device and (
                    device is bmc.BootDevice.NONE or current.persistence is persistence):
                return
            if device is bmc.BootDevice.NONE:
                system.set_system_boot_options(enabled=sushy.BootSourceOverrideEnabled.DISABLED)
                return
            system.set_system_boot_options(
                target=sushy.BootSource(parse.TARGET_OF[device]), enabled=_ENABLED[persistence])

        self._call(access, f"set boot device {device.value}", run)

    def set_boot_mode(self, access: bmc.BmcAccess, mode: bmc.BootMode) -> None:
        def run(conn: sushy.Sushy) -> None:
            system = self._system(conn, access)
            if parse.boot_setting(system.json).mode is mode:
                return
            system.set_system_boot_options(mode=_MODE[mode])

        self._call(access, f"set boot mode {mode.value}", run)


class RedfishVirtualMedia(_Redfish):
    """Virtual media through the System's or the Managers' VirtualMedia collections."""

    name = "redfish-virtual-media"

    def _slot(self, conn: sushy.Sushy, access: bmc.BmcAccess, device: bmc.MediaDevice) -> Any:
        system = self._system(conn, access)
        vendor = vendors.for_manufacturer(parse.manufacturer(system.json))
        places = [lambda: system.virtual_media.get_members(),
                  lambda: [m for mgr in system.managers for m in mgr.virtual_media.get_members()]]
        if not vendor.virtual_media_on_system:
            places.reverse()
        for place in places:
            try:
                members = place()
            except (sushy_exc.MissingAttributeError, sushy_exc.ResourceNotFoundError):
                continue
            for member in members:
                if device in parse.media_devices(member.json):
                    return member
        raise bmc.UnsupportedCapability(access.address.address, f"find {device.value} slot",
                                        capability=f"virtual media {device.value}",
                                        implementation=self.name)

    def media_state(self, access: bmc.BmcAccess, *, device: bmc.MediaDevice) -> bmc.MediaState:
        result: bmc.MediaState = self._call(
            access, f"get {device.value} media",
            lambda c: parse.media_state(self._slot(c, access, device).json, device))
        return result

    def insert_media(self, access: bmc.BmcAccess, image_url: str, *,
                     device: bmc.MediaDevice) -> None:
        def run(conn: sushy.Sushy) -> None:
            slot = self._slot(conn, access, device)
            state = parse.media_state(slot.json, device)
            if state.inserted and state.image_url == image_url:
                return
            if state.inserted:
                slot.eject_media()
                slot.refresh(force=True)
            slot.insert_media(image_url, inserted=True, write_protected=True)

        self._call(access, f"insert {device.value} media", run)

    def eject_media(self, access: bmc.BmcAccess, *, device: bmc.MediaDevice) -> None:
        def run(conn: sushy.Sushy) -> None:
            slot = self._slot(conn, access, device)
            if parse.media_state(slot.json, device).inserted:
                slot.eject_media()

        self._call(access, f"eject {device.value} media", run)


class _Memory(sushy_base.ResourceBase):
    identity = sushy_base.Field("Id", required=True)


class _MemoryCollection(sushy_base.ResourceCollectionBase):
    @property
    def _resource_type(self) -> type[_Memory]:
        return _Memory


def _members(get: Any) -> list[Any]:
    """Members' JSON of an optional sub-collection; [] when the BMC does not link it."""
    try:
        return [m.json for m in get().get_members()]
    except (sushy_exc.MissingAttributeError, sushy_exc.ResourceNotFoundError):
        return []


class RedfishInspect(_Redfish):
    def inspect(self, access: bmc.BmcAccess) -> hwd.HardwareDetails:
        def run(conn: sushy.Sushy) -> hwd.HardwareDetails:
            system = self._system(conn, access)
            drives: list[Any] = []
            try:
                for storage in system.storage.get_members():
                    drives.extend(d.json for d in storage.drives)
            except (sushy_exc.MissingAttributeError, sushy_exc.ResourceNotFoundError):
                pass
            simple = [] if drives else _members(lambda: system.simple_storage)
            memory: list[Any] = []
            if not (system.json.get("MemorySummary") or {}).get("TotalSystemMemoryGiB"):
                memory = _members(lambda: _MemoryCollection(
                    conn._conn, sushy_utils.get_sub_resource_path_by(system, "Memory"),
                    redfish_version=system.redfish_version))
            return parse.hardware_details(
                system.json,
                processors=_members(lambda: system.processors),
                memory=memory,
                nics=_members(lambda: system.ethernet_interfaces),
                drives=drives,
                simple_storage=simple,
            )

        result: hwd.HardwareDetails = self._call(access, "inspect hardware", run)
        return result


class RedfishBios(_Redfish):
    def settings(self, access: bmc.BmcAccess) -> bmc.BiosSettings:
        def run(conn: sushy.Sushy) -> bmc.BiosSettings:
            bios = self._system(conn, access).bios
            try:
                pending: dict[str, Any] | None = {"Attributes": bios.pending_attributes}
            except (sushy_exc.MissingAttributeError, sushy_exc.ResourceNotFoundError):
                pending = None
            return parse.bios_settings(bios.json, pending)

        result: bmc.BiosSettings = self._call(access, "get BIOS settings", run)
        return result

    def registry(self, access: bmc.BmcAccess) -> Mapping[str, bmc.BiosAttributeSchema]:
        def run(conn: sushy.Sushy) -> Mapping[str, bmc.BiosAttributeSchema]:
            registry = self._system(conn, access).bios.get_attribute_registry()
            return parse.bios_registry(registry.json) if registry is not None else {}

        result: Mapping[str, bmc.BiosAttributeSchema] = self._call(
            access, "get BIOS registry", run)
        return result

    def apply_settings(self, access: bmc.BmcAccess, changes: Mapping[str, bmc.BiosValue]
                       ) -> None:
        def run(conn: sushy.Sushy) -> None:
            bios = self._system(conn, access).bios
            try:
                pending: dict[str, Any] | None = {"Attributes": bios.pending_attributes}
            except (sushy_exc.MissingAttributeError, sushy_exc.ResourceNotFoundError):
                pending = None
            state = parse.bios_settings(bios.json, pending)
            effective = {**state.current, **state.pending}
            todo = {k: v for k, v in changes.items() if effective.get(k) != v}
            if todo:
                bios.set_attributes(todo)

        self._call(access, "apply BIOS settings", run)


class RedfishFirmware(_Redfish):
    def components(self, access: bmc.BmcAccess) -> tuple[bmc.FirmwareComponent, ...]:
        def run(conn: sushy.Sushy) -> tuple[bmc.FirmwareComponent, ...]:
            system = self._system(conn, access)
            vendor = vendors.for_manufacturer(parse.manufacturer(system.json))
            items = _members(lambda: conn.get_update_service().firmware_inventory)
            mine = {system.path, *(m.path for m in system.managers)}
            items = [i for i in items if _related_to(i, mine)]
            found = parse.firmware_components(items, vendor.classify_firmware)
            if found:
                return found
            # No FirmwareInventory: what the System and its Manager report.
            fallback = [{"Name": "BIOS", "Version": system.json.get("BiosVersion") or ""}]
            fallback += [{"Name": "BMC", "Version": m.json.get("FirmwareVersion") or ""}
                         for m in system.managers[:1]]
            return parse.firmware_components(
                [f for f in fallback if f["Version"]], vendors.GENERIC.classify_firmware)

        result: tuple[bmc.FirmwareComponent, ...] = self._call(
            access, "get firmware components", run)
        return result

    @staticmethod
    def _targets(conn: sushy.Sushy, system: sushy_system.System) -> dict[str, str]:
        """Update target URI -> component, for this system only: its FirmwareInventory items
        (classified by vendor), the System itself (bios) and its Managers (bmc)."""
        vendor = vendors.for_manufacturer(parse.manufacturer(system.json))
        managers = [m.path for m in system.managers]
        targets = {system.path.rstrip("/"): "bios",
                   **{path.rstrip("/"): "bmc" for path in managers[:1]}}
        mine = {system.path, *managers}
        for item in _members(lambda: conn.get_update_service().firmware_inventory):
            component = vendor.classify_firmware(item) if _related_to(item, mine) else None
            path = item.get("@odata.id") if isinstance(item, Mapping) else None
            if component is not None and isinstance(path, str):
                targets[path.rstrip("/")] = component
        return targets

    @staticmethod
    def _tasks(conn: sushy.Sushy, targets: Mapping[str, str]) -> list[bmc.UpdateTask]:
        try:
            collection = conn.get_task_service().tasks
            # A BMC keeps every job it ever ran (iDRAC's queue holds hundreds): the newest
            # MAX_TASKS are enough to find the updates still worth looking at.
            members = [collection.get_member(path)
                       for path in list(collection.members_identities)[-MAX_TASKS:]]
        except (sushy_exc.MissingAttributeError, sushy_exc.ResourceNotFoundError):
            return []
        found = []
        for member in members:
            request = parse.simple_update_request(member.json)
            if request is None:
                continue
            image_url, uris = request
            components = [targets[u.rstrip("/")] for u in uris if u.rstrip("/") in targets]
            if components:  # a task about this system (one BMC may serve several)
                found.append(parse.update_task(member.json, components[0], image_url))
        return found

    def start_update(self, access: bmc.BmcAccess, component: str, image_url: str
                     ) -> bmc.UpdateTask:
        operation = f"update {component} firmware"

        def run(conn: sushy.Sushy) -> bmc.UpdateTask:
            system = self._system(conn, access)
            targets = self._targets(conn, system)
            for task in reversed(self._tasks(conn, targets)):
                if (task.component, task.image_url, task.state) == (
                        component, image_url, bmc.TaskState.RUNNING):
                    return task
            # Prefer the inventory item over the System/Manager URI a BMC also accepts.
            uris = sorted((u for u, c in targets.items() if c == component),
                          key=lambda u: "/FirmwareInventory/" not in u)
            if not uris:
                raise bmc.BmcRejected(access.display, operation,
                                      f"the BMC lists no {component} firmware", status=404)
            protocol = (sushy.UPDATE_PROTOCOL_HTTPS if image_url.startswith("https://")
                        else sushy.UPDATE_PROTOCOL_HTTP)
            monitor = conn.get_update_service().simple_update(
                image_url, targets=[uris[0]], transfer_protocol=protocol)
            task = monitor.task
            doc = task.json if task is not None else conn._conn.get(
                path=monitor.task_monitor_uri).json()
            return parse.update_task(doc, component, image_url)

        result: bmc.UpdateTask = self._call(access, operation, run, idempotent=False)
        return result

    def update_tasks(self, access: bmc.BmcAccess) -> tuple[bmc.UpdateTask, ...]:
        def run(conn: sushy.Sushy) -> tuple[bmc.UpdateTask, ...]:
            system = self._system(conn, access)
            return tuple(self._tasks(conn, self._targets(conn, system)))

        result: tuple[bmc.UpdateTask, ...] = self._call(
            access, "list firmware update tasks", run)
        return result


def _related_to(item: Any, paths: set[str]) -> bool:
    """False only for an inventory item whose RelatedItem links name other resources
    (a BMC serving several systems lists all their firmware in one inventory)."""
    related = item.get("RelatedItem") if isinstance(item, Mapping) else None
    if not isinstance(related, list) or not related:
        return True
    links = {r.get("@odata.id", "").rstrip("/") for r in related if isinstance(r, Mapping)}
    return bool(links & {p.rstrip("/") for p in paths})


class RedfishEvents(_Redfish):
    def subscriptions(self, access: bmc.BmcAccess) -> tuple[bmc.EventSubscription, ...]:
        def run(conn: sushy.Sushy) -> tuple[bmc.EventSubscription, ...]:
            members = conn.get_event_service().subscriptions.get_members()
            return tuple(parse.subscription(m.json) for m in members)

        result: tuple[bmc.EventSubscription, ...] = self._call(
            access, "list event subscriptions", run)
        return result

    def subscribe(self, access: bmc.BmcAccess, destination: str, *, context: str = "",
                  http_headers: Mapping[str, str] | None = None) -> bmc.EventSubscription:
        payload: dict[str, Any] = {"Destination": destination, "Context": context,
                                   "Protocol": "Redfish", "EventTypes": ["Alert"]}
        if http_headers:
            payload["HttpHeaders"] = [{k: v} for k, v in http_headers.items()]

        def run(conn: sushy.Sushy) -> bmc.EventSubscription:
            created = conn.get_event_service().subscriptions.create(payload)
            if created is None:
                raise parse.PayloadError("subscription created without a Location")
            return parse.subscription(created.json)

        result: bmc.EventSubscription = self._call(
            access, "create event subscription", run, idempotent=False)
        return result

    def unsubscribe(self, access: bmc.BmcAccess, subscription_id: str) -> None:
        def run(conn: sushy.Sushy) -> None:
            for member in conn.get_event_service().subscriptions.get_members():
                if member.identity == subscription_id:
                    member.delete()
                    return

        self._call(access, "delete event subscription", run)

