"""A Redfish BMC emulator: sushy-tools' emulator app serving `HostModel` hosts on 127.0.0.1.

sushy-tools (`sushy_tools.emulator.main.app`) gives the Redfish resource tree and its JSON
templates; this module plugs our emulated servers in behind it:

- `HostModelSystems`, a sushy-tools systems driver (subclass of its AbstractSystemsDriver, the
  interface its fake driver implements) backed by `simulators.hostmodel` hosts: power with
  transition timing, boot override (once/continuous) and mode, BIOS attributes (staged until
  the next boot) and registry, processors, memory, NICs, disks, firmware versions;
- `HostModelMedia`, its virtual media driver: the emulated BMC really fetches the image over
  HTTP (as a BMC does) and records it on the host;
- views that sushy-tools lacks or gets wrong for us, registered once on its app: Memory, a
  generated BIOS attribute registry, overlays on the system, processor, NIC, manager and root
  documents (manufacturer, serial, boot override persistence, SessionService links...), and,
  in sibling modules, storage.py (a RAID controller per system: drives, volumes created and
  deleted), firmware.py (FirmwareInventory, UpdateService.SimpleUpdate fetching the image, the
  TaskService over the host model's firmware tasks) and events.py (EventService subscriptions,
  events really POSTed to their destinations with their HttpHeaders);
- `_Gate`, a WSGI middleware per emulator in front of the app: basic auth and Redfish sessions
  (X-Auth-Token), and fault injection decided by `hostmodel.Faults.draw` (the fault model the
  fleet model and the Sim BMCs use too): latency, a session/concurrency cap
  answered 503 with Retry-After, 409 on power and boot writes for a window after a power off,
  a 5xx rate, and an unreachable switch (requests hang until the client gives up); a host
  whose BMC restarts (`HostModel.bmc_rebooting`) gets no answer either.

The sushy-tools app is a module singleton. Rather than one configuration per process, every
request carries its emulator in the WSGI environ (`metalcubed.emulator`), and the drivers look
their hosts up there: any number of `RedfishEmulator`s can run at once in one process, each with
its own hosts, credentials and faults. `memoize.PersistentDict` is replaced by `dict` so nothing
is written to disk.

Serving: werkzeug's threaded server on 127.0.0.1 with an ephemeral port, in a daemon thread;
`stop()` shuts it down and wakes any request held by a fault.
"""

import base64
import collections
import functools
import hmac
import json
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import flask
import requests
from sushy_tools import error as fishy  # type: ignore[import-untyped]
from sushy_tools.emulator import memoize  # type: ignore[import-untyped]
from sushy_tools.emulator.resources import vmedia as fishy_vmedia  # type: ignore[import-untyped]
from sushy_tools.emulator.resources.systems import base as fishy_systems  # type: ignore[import-untyped]
from werkzeug import serving

from metalcubed.simulators import hostmodel, raidmodel
from metalcubed.simulators.redfish import events, firmware, storage, views

ENVIRON_KEY = views.ENVIRON_KEY
MAX_IMAGE_BYTES = 8 * 1024**3
"""The emulated BMC refuses images larger than this (8 GiB)."""

_APP: flask.Flask = views.APP
_install_lock = threading.Lock()
_installed = False

WSGIEnviron = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[WSGIEnviron, StartResponse], Iterable[bytes]]

_current = views.current
_host = views.host
_lookup = views.lookup
_json = views.reply


_RESET = {
    "On": lambda h: h.power_on(),
    "ForceOn": lambda h: h.power_on(),
    "ForceOff": lambda h: h.power_off(hard=True),
    "GracefulShutdown": lambda h: h.power_off(hard=False),
    "GracefulRestart": lambda h: h.reboot(hard=False),
    "ForceRestart": lambda h: h.reboot(hard=True),
    "PowerCycle": lambda h: h.reboot(hard=True),
    "Nmi": lambda h: None,
}


class HostModelSystems(fishy_systems.AbstractSystemsDriver):
    """sushy-tools systems driver over the current request's emulator hosts."""

    @property
    def driver(self) -> str:
        return "<metalcubed-hostmodel>"

    @property
    def systems(self) -> list[str]:
        return [host.uuid for host in _current().hosts]

    def uuid(self, identity: str) -> str:
        return _host(identity).uuid

    def name(self, identity: str) -> str:
        return _lookup(identity).name

    def get_power_state(self, identity: str) -> str:
        return _host(identity).power.value

    def set_power_state(self, identity: str, state: str) -> None:
        action = _RESET.get(state)
        if action is None:
            raise fishy.BadRequest(f"Reset type {state} is not supported")
        host = _host(identity)
        action(host)
        _current().events.publish(events.Event(
            event_type="Alert", message_id="ResourceEvent.1.0.ResourceChanged",
            message=f"System {host.name}: reset {state} requested",
            origin=f"/redfish/v1/Systems/{host.uuid}"))

    def get_boot_device(self, identity: str) -> str:
        return _host(identity).boot_override()[0].value

    def set_boot_device(self, identity: str, boot_source: str) -> None:
        host = _host(identity)
        try:
            device = hostmodel.BootDevice(boot_source)
        except ValueError as err:
            raise fishy.BadRequest(f"Unknown boot source {boot_source}") from err
        host.set_boot_device(device, persistent=host.boot_override()[1])

    def get_boot_mode(self, identity: str) -> str:
        return _host(identity).boot_mode.value

    def set_boot_mode(self, identity: str, boot_mode: str) -> None:
        try:
            mode = hostmodel.BootMode(boot_mode)
        except ValueError as err:
            raise fishy.BadRequest(f"Unknown boot mode {boot_mode}") from err
        _host(identity).set_boot_mode(mode)

    def get_secure_boot(self, identity: str) -> bool:
        return bool(_host(identity).bios().get("SecureBoot", False))

    def set_secure_boot(self, identity: str, secure: bool) -> None:
        self.set_bios(identity, {"SecureBoot": bool(secure)})

    def get_total_memory(self, identity: str) -> int:
        return _host(identity).inventory.ram_mib // 1024

    def get_total_cpus(self, identity: str) -> int:
        return sum(p.threads for p in _host(identity).inventory.processors)

    def get_bios(self, identity: str) -> dict[str, hostmodel.BiosValue]:
        return _host(identity).bios()

    def set_bios(self, identity: str, attributes: object) -> None:
        if not isinstance(attributes, dict):
            raise fishy.BadRequest("Attributes must be an object")
        try:
            _host(identity).stage_bios(attributes)
        except hostmodel.HostModelError as err:
            raise fishy.BadRequest(str(err)) from err

    def reset_bios(self, identity: str) -> None:
        _host(identity).reset_bios()

    def get_versions(self, identity: str) -> dict[str, str]:
        return {"BiosVersion": _host(identity).firmware().get("bios", "")}

    def set_versions(self, identity: str, firmware_versions: dict[str, str]) -> None:
        host = _host(identity)
        if "BiosVersion" in firmware_versions:
            host.set_firmware("bios", firmware_versions["BiosVersion"])

    def reset_versions(self, identity: str) -> None:
        return None

    def get_nics(self, identity: str) -> list[dict[str, str]]:
        return [{"id": nic.id, "mac": nic.mac} for nic in _host(identity).inventory.nics]

    def get_processors(self, identity: str) -> list[dict[str, Any]]:
        return [
            {"id": p.socket, "socket": p.socket, "vendor": p.vendor, "model": p.model,
             "cores": p.cores, "threads": p.threads}
            for p in _host(identity).inventory.processors
        ]

    def get_simple_storage_collection(self, identity: str) -> dict[str, Any]:
        disks = _host(identity).inventory.disks
        return {
            "Local": {
                "Id": "Local",
                "Name": "Local",
                "DeviceList": [{"Name": d.name, "CapacityBytes": d.size_bytes} for d in disks],
            }
        }

    def get_boot_image(self, identity: str, device: str) -> tuple[str | None, bool, bool]:
        media = _host(identity).media(_slot(device))
        return media.image_url or None, media.write_protected, media.inserted

    def set_boot_image(self, identity: str, device: str, boot_image: str | None = None,
                       write_protected: bool = True) -> None:
        # The media driver already recorded the image on the host.
        return None

    def get_http_boot_uri(self, identity: str) -> str | None:
        return None


def _slot(device: str) -> hostmodel.MediaSlot:
    try:
        return hostmodel.MediaSlot(device)
    except ValueError as err:
        raise fishy.NotFound(f"No virtual media device {device}") from err


_MEDIA_TYPES = {
    hostmodel.MediaSlot.CD: ["CD", "DVD"],
    hostmodel.MediaSlot.USB: ["Floppy", "USBStick"],
}
_MEDIA_NAMES = {
    hostmodel.MediaSlot.CD: "Virtual CD",
    hostmodel.MediaSlot.USB: "Virtual Removable Media",
}


class HostModelMedia(fishy_vmedia.BaseDriver):
    """sushy-tools virtual media driver: the BMC fetches the image, the host records it."""

    @property
    def devices(self) -> list[str]:
        return [slot.value for slot in hostmodel.MediaSlot]

    def get_device_name(self, identity: str, device: str) -> str:
        return _MEDIA_NAMES[_slot(device)]

    def get_device_media_types(self, identity: str, device: str) -> list[str]:
        return _MEDIA_TYPES[_slot(device)]

    def get_device_image_info(self, identity: str, device: str) -> Any:
        media = _lookup(identity).media(_slot(device))
        name = media.image_url.rsplit("/", 1)[-1] if media.image_url else ""
        return fishy_vmedia.DeviceInfo(name, media.image_url, media.inserted,
                                       media.write_protected, "", "", False)

    def insert_image(self, identity: str, device: str, image_url: str, inserted: bool = True,
                     write_protected: bool = True, username: str | None = None,
                     password: str | None = None) -> str:
        host = _lookup(identity)
        slot = _slot(device)
        if not isinstance(image_url, str) or not image_url.startswith(("http://", "https://")):
            raise fishy.BadRequest("Image must be an http(s) URL")
        if host.media(slot).inserted:
            raise fishy.Conflict(f"Virtual media {device} already has an image inserted")
        size = _fetch(image_url, (username, password) if username and password else None)
        host.insert_media(slot, image_url, size_bytes=size, write_protected=write_protected)
        return f"/emulated/{host.uuid}/{slot.value}"

    def eject_image(self, identity: str, device: str) -> None:
        _lookup(identity).eject_media(_slot(device))


def _fetch(url: str, auth: tuple[str, str] | None) -> int:
    """Download `url` as the BMC would, keeping only its size."""
    try:
        with requests.get(url, stream=True, auth=auth, timeout=30) as rsp:
            if rsp.status_code >= 400:
                raise fishy.FishyError(
                    f"Cannot download virtual media: got error {rsp.status_code} from the server",
                    code=502 if rsp.status_code >= 500 else 400,
                )
            size = 0
            for chunk in rsp.iter_content(chunk_size=65536):
                size += len(chunk)
                if size > MAX_IMAGE_BYTES:
                    raise fishy.BadRequest("Image is too large")
            return size
    except requests.RequestException as err:
        raise fishy.FishyError(f"Cannot download virtual media from {url}: {err}",
                               code=400) from err


# --- Views --------------------------------------------------------------------------------------


def _overlay(endpoint: str, patch: Callable[..., None]) -> None:
    """Post-process a stock GET view's JSON with `patch(doc, **view_args)`."""
    original = _APP.view_functions[endpoint]

    @functools.wraps(original)
    def view(**kwargs: Any) -> Any:
        response = original(**kwargs)
        if flask.request.method != "GET" or not isinstance(response, flask.Response):
            return response
        if response.status_code != 200:
            return response
        doc = json.loads(response.get_data())
        patch(doc, **kwargs)
        response.set_data(json.dumps(doc))
        return response

    _APP.view_functions[endpoint] = view


def _root(doc: dict[str, Any]) -> None:
    doc["SessionService"] = {"@odata.id": "/redfish/v1/SessionService"}
    doc["EventService"] = {"@odata.id": "/redfish/v1/EventService"}
    doc["Tasks"] = {"@odata.id": "/redfish/v1/TaskService"}
    doc["Links"] = {"Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"}}


_OVERRIDE_ENABLED = {True: "Continuous", False: "Once"}


def _system(doc: dict[str, Any], identity: str) -> None:
    host = _lookup(identity)
    inv = host.inventory
    device, persistent = host.boot_override()
    doc.update({
        "Manufacturer": inv.manufacturer,
        "Model": inv.model,
        "SerialNumber": inv.serial,
        "SKU": inv.sku,
        "SystemType": "Physical",
        "PowerState": host.power.value,
        "BiosVersion": host.firmware().get("bios", ""),
    })
    doc["ProcessorSummary"].update({
        "Count": len(inv.processors),
        "LogicalProcessorCount": sum(p.threads for p in inv.processors),
        "Model": inv.processors[0].model if inv.processors else "",
    })
    doc["MemorySummary"]["TotalSystemMemoryGiB"] = inv.ram_mib / 1024
    doc["Boot"] = {
        "BootSourceOverrideEnabled": (
            "Disabled" if device is hostmodel.BootDevice.NONE else _OVERRIDE_ENABLED[persistent]
        ),
        "BootSourceOverrideTarget": device.value,
        "BootSourceOverrideTarget@Redfish.AllowableValues": [d.value for d in hostmodel.BootDevice],
        "BootSourceOverrideMode": host.boot_mode.value,
    }
    doc["Memory"] = {"@odata.id": f"/redfish/v1/Systems/{identity}/Memory"}


def _processor(doc: dict[str, Any], identity: str, processor_id: str) -> None:
    for proc in _lookup(identity).inventory.processors:
        if proc.socket == processor_id:
            doc["MaxSpeedMHz"] = proc.max_speed_mhz
            doc["TotalCores"] = proc.cores
            doc["TotalThreads"] = proc.threads


def _nic(doc: dict[str, Any], identity: str, nic_id: str) -> None:
    for nic in _lookup(identity).inventory.nics:
        if nic.id == nic_id:
            doc["SpeedMbps"] = nic.speed_gbps * 1000
            doc["LinkStatus"] = "LinkUp"


def _manager(doc: dict[str, Any], identity: str) -> None:
    host = _lookup(identity)
    doc["FirmwareVersion"] = host.firmware().get("bmc", "")
    doc["Model"] = f"{host.inventory.manufacturer} BMC"


def _system_patch(identity: str) -> flask.Response | None:
    """PATCH of a system's Boot: sushy-tools ignores BootSourceOverrideEnabled; we keep it."""
    body = flask.request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("Boot"), dict):
        return None
    host = _lookup(identity)
    boot = body["Boot"]
    target, enabled, mode = (boot.get("BootSourceOverrideTarget"),
                             boot.get("BootSourceOverrideEnabled"),
                             boot.get("BootSourceOverrideMode"))
    if enabled not in (None, "Once", "Continuous", "Disabled"):
        raise fishy.BadRequest(f"Invalid BootSourceOverrideEnabled {enabled}")
    if mode is not None:
        try:
            host.set_boot_mode(hostmodel.BootMode(mode))
        except ValueError as err:
            raise fishy.BadRequest(f"Invalid BootSourceOverrideMode {mode}") from err
    current, persistent = host.boot_override()
    if enabled == "Disabled":
        host.set_boot_device(hostmodel.BootDevice.NONE, persistent=False)
        return flask.Response(status=204)
    if enabled is not None:
        persistent = enabled == "Continuous"
    device = current
    if target is not None:
        try:
            device = hostmodel.BootDevice(target)
        except ValueError as err:
            raise fishy.BadRequest(f"Invalid BootSourceOverrideTarget {target}") from err
    host.set_boot_device(device, persistent=persistent)
    return flask.Response(status=204)


def _wrap_patch(endpoint: str, handler: Callable[..., flask.Response | None]) -> None:
    original = _APP.view_functions[endpoint]

    @functools.wraps(original)
    def view(**kwargs: Any) -> Any:
        if flask.request.method == "PATCH":
            response = handler(**kwargs)
            if response is not None:
                return response
        return original(**kwargs)

    _APP.view_functions[endpoint] = view


def _bios_settings(identity: str) -> flask.Response:
    host = _lookup(identity)
    if flask.request.method == "PATCH":
        body = flask.request.get_json(silent=True)
        attributes = body.get("Attributes") if isinstance(body, dict) else None
        if not isinstance(attributes, dict):
            raise fishy.BadRequest("PATCH needs an Attributes object")
        try:
            host.stage_bios(attributes)
        except hostmodel.HostModelError as err:
            raise fishy.BadRequest(str(err)) from err
        return flask.Response(status=204)
    return _json({
        "@odata.type": "#Bios.v1_0_0.Bios",
        "@odata.id": f"/redfish/v1/Systems/{identity}/BIOS/Settings",
        "Id": "Settings",
        "Name": "BIOS Configuration Pending Settings",
        "AttributeRegistry": "BiosAttributeRegistryP89.v1_0_0",
        "Attributes": host.bios_pending(),
    })


_UNIQUE_BIOS_ATTRIBUTES = frozenset({"SystemServiceTag", "AssetTag"})


def _bios_registry() -> flask.Response:
    hosts = _current().hosts
    registry = hosts[0].registry if hosts else {}
    attributes = []
    for attr in registry.values():
        entry: dict[str, Any] = {
            "AttributeName": attr.name,
            "Type": attr.type.value,
            "ReadOnly": attr.read_only,
            "ResetRequired": attr.reset_required,
            "DefaultValue": attr.default,
            # Per-system values (service tags, asset tags) are unique across systems.
            "IsSystemUniqueProperty": attr.name in _UNIQUE_BIOS_ATTRIBUTES,
        }
        if attr.values:
            entry["Value"] = [{"ValueName": v, "ValueDisplayName": v} for v in attr.values]
        if attr.lower is not None:
            entry["LowerBound"] = attr.lower
        if attr.upper is not None:
            entry["UpperBound"] = attr.upper
        if attr.max_length is not None:
            entry["MaxLength"] = attr.max_length
        attributes.append(entry)
    return _json({
        "@odata.type": "#AttributeRegistry.v1_1_1.AttributeRegistry",
        "@odata.id": "/redfish/v1/Systems/Bios/BiosRegistry",
        "Id": "BiosAttributeRegistryP89.v1_0_0",
        "Name": "BIOS Attribute Registry",
        "Language": "en",
        "OwningEntity": "Metalcubed",
        "RegistryVersion": "1.1.1",
        "RegistryEntries": {"Attributes": attributes},
    })


def _memory_collection(identity: str) -> flask.Response:
    host = _lookup(identity)
    base = f"/redfish/v1/Systems/{identity}/Memory"
    return _json({"@odata.type": "#MemoryCollection.MemoryCollection", "@odata.id": base,
                  "Name": "Memory Module Collection",
                  "Members@odata.count": len(host.inventory.memory),
                  "Members": [{"@odata.id": f"{base}/{m.id}"} for m in host.inventory.memory]})


def _memory(identity: str, memory_id: str) -> flask.Response:
    for module in _lookup(identity).inventory.memory:
        if module.id == memory_id:
            return _json({
                "@odata.type": "#Memory.v1_7_0.Memory",
                "@odata.id": f"/redfish/v1/Systems/{identity}/Memory/{module.id}",
                "Id": module.id, "Name": module.id, "CapacityMiB": module.size_mib,
                "OperatingSpeedMhz": module.speed_mhz, "MemoryDeviceType": module.memory_type,
                "Status": {"State": "Enabled", "Health": "OK"},
            })
    raise fishy.NotFound()


_add = views.add


def install() -> None:
    """Configure the sushy-tools app for host-model emulation. Idempotent; once per process."""
    global _installed
    with _install_lock:
        if _installed:
            return
        memoize.PersistentDict = dict  # type: ignore[misc,assignment]  # RAM-only state
        _APP.config.update(SUSHY_EMULATOR_FEATURE_SET="full", SUSHY_EMULATOR_FAKE_DRIVER=False)
        logging.getLogger(_APP.name).setLevel(logging.WARNING)
        # Pre-fill the app's memoized driver properties with ours.
        cache = _APP.__dict__.setdefault("_cache", {})
        key: tuple[frozenset[object], frozenset[object]] = (frozenset(), frozenset())
        app_cls = type(_APP)
        cache[app_cls.systems.fget.__wrapped__] = {key: HostModelSystems()}  # type: ignore[attr-defined]
        cache[app_cls.vmedia.fget.__wrapped__] = {  # type: ignore[attr-defined]
            key: HostModelMedia(_APP.config, _APP.logger)
        }
        _overlay("root_resource", lambda doc: _root(doc))
        _overlay("system_resource", _system)
        _wrap_patch("system_resource", _system_patch)
        _overlay("processor", _processor)
        _overlay("ethernet_interface", _nic)
        _overlay("manager_resource", _manager)
        _overlay("UpdateService.update_service_resource",
                 lambda doc: firmware.update_service_overlay(doc))
        _APP.view_functions["bios_settings"] = _bios_settings
        _APP.view_functions["bios_registry"] = _bios_registry
        _add("/redfish/v1/Systems/<identity>/Memory", "m3_memory_collection", _memory_collection)
        _add("/redfish/v1/Systems/<identity>/Memory/<memory_id>", "m3_memory", _memory)
        storage.install()
        firmware.install()
        events.install()
        _installed = True


# --- Auth, sessions and faults: the WSGI gate ---------------------------------------------------

_OPEN_PATHS = frozenset({"", "redfish", "redfish/v1", "redfish/v1/odata", "redfish/v1/$metadata"})
_SESSIONS = "redfish/v1/SessionService/Sessions"


def _error_body(message: str, code: str = "Base.1.0.GeneralError") -> bytes:
    return json.dumps({"error": {"code": code, "message": message,
                                 "@Message.ExtendedInfo": [{"MessageId": code,
                                                            "Message": message}]}}).encode()


class _Gate:
    """Per-emulator WSGI middleware: auth, sessions, fault injection, then the sushy-tools app."""

    def __init__(self, emulator: "RedfishEmulator", app: WSGIApp) -> None:
        self.emulator = emulator
        self.app = app
        self.in_flight = 0

    def __call__(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        em = self.emulator
        environ[ENVIRON_KEY] = em
        path = environ.get("PATH_INFO", "").strip("/")
        method = environ.get("REQUEST_METHOD", "GET")
        host = em.host_for_path(path)
        with em.lock:
            em.request_count += 1
            if method != "GET":
                em.writes.append((time.monotonic(), method, path))
        # The one BMC fault model (hostmodel.Faults.draw), as the fleet model and the Sim BMCs
        # use it: the emulator's own faults (unreachable, session cap, hangs, 500s), then the
        # addressed host's (the same, plus 409 on power and boot writes after a power off).
        write = host is not None and self._is_power_or_boot_write(path, method)
        with em.lock:
            reply = em.faults.draw(em.rng, in_flight=self.in_flight)
            if reply is hostmodel.Reply.OK and host is not None:
                reply = host.faults.draw(host.rng, in_flight=0, write=write,
                                         since_power_off_s=host.since_power_off_s()
                                         if write else None)
        # A BMC restarting (after a BMC firmware update, or a fault) answers nothing about its
        # host; with one host, nothing at all.
        bmc_host = host or (em.hosts[0] if len(em.hosts) == 1 else None)
        if reply is hostmodel.Reply.OK and bmc_host is not None and bmc_host.bmc_rebooting():
            reply = hostmodel.Reply.TIMEOUT
        if reply is hostmodel.Reply.TIMEOUT:
            with em.lock:
                em.injected["unreachable"] += 1
            em.stopping.wait(em.hang_s)
            return self._reply(start_response, 503, _error_body("unreachable"))
        with em.lock:
            self.in_flight += 1
            delay = em.faults.latency(em.rng) + (host.faults.latency(host.rng) if host else 0.0)
        try:
            if reply is hostmodel.Reply.UNAVAILABLE:
                return self._busy(start_response, "too many concurrent requests")
            if delay > 0:
                em.stopping.wait(delay)
            if reply is hostmodel.Reply.SERVER_ERROR:
                with em.lock:
                    em.injected["500"] += 1
                return self._reply(start_response, 500, _error_body("injected internal error"))
            if path == _SESSIONS and method == "POST":
                return self._create_session(environ, start_response)
            if path not in _OPEN_PATHS and not self._authorized(environ):
                return self._reply(start_response, 401, _error_body(
                    "Authentication required", "Base.1.0.InsufficientPrivilege"),
                    [("WWW-Authenticate", 'Basic realm="metalcubed"')])
            if path.startswith(_SESSIONS + "/") and method == "DELETE":
                with em.lock:
                    token = next((t for t, s in em.sessions.items()
                                  if s == path.rsplit("/", 1)[-1]), None)
                    if token is None:
                        return self._reply(start_response, 404, _error_body("no such session"))
                    del em.sessions[token]
                return self._reply(start_response, 204, b"")
            if path.startswith("redfish/v1/SessionService"):
                return self._session_service(path, start_response)
            if reply is hostmodel.Reply.CONFLICT:
                with em.lock:
                    em.injected["409"] += 1
                return self._reply(start_response, 409, _error_body(
                    "The system is settling after a power off; try again later",
                    "Base.1.0.ResourceInUse"))
            return self.app(environ, start_response)
        finally:
            with em.lock:
                self.in_flight -= 1

    @staticmethod
    def _is_power_or_boot_write(path: str, method: str) -> bool:
        if method == "POST" and path.endswith("Actions/ComputerSystem.Reset"):
            return True
        return method == "PATCH" and path.count("/") == 3  # redfish/v1/Systems/<id>

    def _authorized(self, environ: WSGIEnviron) -> bool:
        em = self.emulator
        token = environ.get("HTTP_X_AUTH_TOKEN")
        if token:
            with em.lock:
                return token in em.sessions
        header = environ.get("HTTP_AUTHORIZATION", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return em.check_credentials(user, password)

    def _create_session(self, environ: WSGIEnviron, start_response: StartResponse
                        ) -> Iterable[bytes]:
        em = self.emulator
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.loads(environ["wsgi.input"].read(length) or b"{}")
            user, password = body["UserName"], body["Password"]
        except (ValueError, KeyError, TypeError):
            return self._reply(start_response, 400, _error_body("UserName and Password needed"))
        if not isinstance(user, str) or not isinstance(password, str) \
                or not em.check_credentials(user, password):
            return self._reply(start_response, 401, _error_body(
                "Invalid username or password", "Base.1.0.InsufficientPrivilege"))
        with em.lock:
            if em.faults.session_cap is not None and len(em.sessions) >= em.faults.session_cap:
                over = True
            else:
                over = False
                token = secrets.token_hex(16)
                session_id = str(len(em.sessions) + 1) + "-" + secrets.token_hex(4)
                em.sessions[token] = session_id
                em.sessions_created += 1
        if over:
            return self._busy(start_response, "session limit reached")
        location = f"/redfish/v1/SessionService/Sessions/{session_id}"
        doc = {"@odata.id": location, "Id": session_id, "Name": "User Session",
               "UserName": user}
        return self._reply(start_response, 201, json.dumps(doc).encode(),
                           [("X-Auth-Token", token), ("Location", location)])

    def _session_service(self, path: str, start_response: StartResponse) -> Iterable[bytes]:
        em = self.emulator
        if path == "redfish/v1/SessionService":
            doc: dict[str, Any] = {
                "@odata.id": "/redfish/v1/SessionService", "Id": "SessionService",
                "Name": "Session Service", "ServiceEnabled": True, "SessionTimeout": 1800,
                "Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"}}
        elif path == _SESSIONS:
            with em.lock:
                ids = list(em.sessions.values())
            doc = {"@odata.id": "/" + _SESSIONS, "Name": "Sessions",
                   "Members@odata.count": len(ids),
                   "Members": [{"@odata.id": f"/{_SESSIONS}/{i}"} for i in ids]}
        else:
            session_id = path.rsplit("/", 1)[-1]
            with em.lock:
                known = session_id in em.sessions.values()
            if not known:
                return self._reply(start_response, 404, _error_body("no such session"))
            doc = {"@odata.id": f"/{path}", "Id": session_id, "Name": "User Session"}
        return self._reply(start_response, 200, json.dumps(doc).encode())

    def _busy(self, start_response: StartResponse, why: str) -> Iterable[bytes]:
        with self.emulator.lock:
            self.emulator.injected["503"] += 1
        retry = self.emulator.faults.retry_after_s
        return self._reply(start_response, 503, _error_body(f"Service busy: {why}"),
                           [("Retry-After", f"{retry:g}")])

    @staticmethod
    def _reply(start_response: StartResponse, status: int, body: bytes,
               headers: list[tuple[str, str]] | None = None) -> Iterable[bytes]:
        reason = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request",
                  401: "Unauthorized", 404: "Not Found", 409: "Conflict",
                  500: "Internal Server Error", 503: "Service Unavailable"}[status]
        all_headers = [("Content-Type", "application/json"),
                       ("Content-Length", str(len(body)))] + (headers or [])
        start_response(f"{status} {reason}", all_headers)
        return [body]


class _QuietHandler(serving.WSGIRequestHandler):
    """werkzeug's handler without the per-request access log line."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


# --- The emulator -------------------------------------------------------------------------------


class RedfishEmulator:
    """N emulated hosts behind one Redfish endpoint on 127.0.0.1 (one BMC serving N systems).

    Use as a context manager, or call `start()` and `stop()`. Credentials are checked by basic
    auth and by the SessionService; `faults` applies to every request, each host's own
    `faults` to the requests for that host.
    """

    def __init__(
        self,
        hosts: Sequence[hostmodel.HostModel],
        *,
        faults: hostmodel.Faults | None = None,
        credentials: tuple[str, str] = ("admin", "password"),
        tls: bool = False,
        hang_s: float = 60.0,
        seed: int = 0,
        event_retry_interval_s: float = 1.0,
        event_verify_tls: bool | str = True,
    ) -> None:
        install()
        self.hosts = list(hosts)
        self.hosts_by_uuid = {h.uuid: h for h in self.hosts}
        self.hosts_by_name = {h.name: h for h in self.hosts}
        self.faults = faults or hostmodel.Faults()
        self._credentials = credentials
        self.tls = tls
        self.hang_s = hang_s
        """How long an `unreachable` fault holds a request (the client times out first)."""
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self.sessions: dict[str, str] = {}
        """Live sessions: token -> session id."""
        self.sessions_created = 0
        self.request_count = 0
        self.writes: collections.deque[tuple[float, str, str]] = collections.deque(maxlen=10000)
        """The last writes received (monotonic time, method, path), oldest first: what a BMC's
        audit log would show; tests and the lab read it to explain what happened to a host."""
        self.injected: collections.Counter[str] = collections.Counter()
        """Faults injected so far, by kind: "503", "409", "500", "unreachable"."""
        self.events = events.Events(retry_interval_s=event_retry_interval_s,
                                    verify_tls=event_verify_tls, idle=self._task_events,
                                    on_first_subscription=self._forget_old_tasks)
        """Event subscriptions and their delivery (see events.py)."""
        self.task_payloads: dict[str, tuple[float, str]] = {}
        """Firmware task id -> (monotonic start, the SimpleUpdate request as JSON)."""
        self._reported_tasks: set[str] = set()
        self._storage: dict[str, raidmodel.Storage] = {}
        self.stopping = threading.Event()
        self._server: serving.BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def storage_of(self, host: hostmodel.HostModel) -> raidmodel.Storage:
        """The host's RAID controller (created over its disks on first use)."""
        with self.lock:
            storage = self._storage.get(host.uuid)
            if storage is None:
                storage = self._storage[host.uuid] = raidmodel.Storage(host.inventory.disks)
            return storage

    def _forget_old_tasks(self) -> None:
        """Tasks that ended while nobody subscribed raise no event later."""
        with self.lock:
            self._reported_tasks.update(
                task_id for task_id, *_ in firmware.finished_tasks(self.hosts, set()))

    def _task_events(self) -> list[events.Event]:
        """Events for the firmware tasks that ended since the last call (delivery worker)."""
        with self.lock:
            found = list(firmware.finished_tasks(self.hosts, self._reported_tasks))
            self._reported_tasks.update(task_id for task_id, *_ in found)
        out = []
        for task_id, _, task in found:
            ok = task.state is hostmodel.TaskState.COMPLETED
            out.append(events.Event(
                event_type="Alert",
                message_id="TaskEvent.1.0.TaskCompletedOK" if ok else "TaskEvent.1.0.TaskAborted",
                message=(f"The firmware update of {task.component} to {task.version} completed"
                         if ok else f"The firmware update of {task.component} failed: "
                         f"{task.message}"),
                severity="OK" if ok else "Critical",
                origin=f"{firmware.TASKS}/{task_id}"))
        return out

    def check_credentials(self, user: str, password: str) -> bool:
        good_user, good_password = self._credentials
        return hmac.compare_digest(user.encode(), good_user.encode()) and hmac.compare_digest(
            password.encode(), good_password.encode())

    def host_for_path(self, path: str) -> hostmodel.HostModel | None:
        """The host a request path is about (Systems/<id>/..., Managers/<id>/...), if any."""
        parts = path.split("/")
        if len(parts) >= 4 and parts[2] in ("Systems", "Managers"):
            return self.hosts_by_uuid.get(parts[3]) or self.hosts_by_name.get(parts[3])
        return None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return self._server.server_port

    @property
    def endpoint(self) -> str:
        """Base URL, e.g. "http://127.0.0.1:43121"."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def system_url(self, host: hostmodel.HostModel) -> str:
        return f"{self.endpoint}/redfish/v1/Systems/{host.uuid}"

    def bmc_address(self, host: hostmodel.HostModel, scheme: str = "redfish") -> str:
        """A `spec.bmc.address` for `host`, e.g. "redfish+http://127.0.0.1:43121/redfish/v1/
        Systems/<uuid>" (the +http/+https suffix follows the emulator's transport)."""
        suffix = "+https" if self.tls else "+http"
        return f"{scheme}{suffix}://127.0.0.1:{self.port}/redfish/v1/Systems/{host.uuid}"

    def start(self) -> "RedfishEmulator":
        if self._server is not None:
            return self
        self.stopping.clear()
        server = serving.make_server(
            "127.0.0.1", 0, _Gate(self, _APP), threaded=True, request_handler=_QuietHandler,
            ssl_context="adhoc" if self.tls else None,
        )
        server.daemon_threads = True  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="redfish-emulator",
                                        daemon=True)
        self._thread.start()
        self.events.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.events.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None
        for host in self.hosts:
            host.close()

    def __enter__(self) -> "RedfishEmulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_ready(url: str, timeout_s: float = 5.0) -> None:
    """Poll GET `url` until it answers (for emulators started in another process)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            requests.get(url, timeout=1, verify=False)
            return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
