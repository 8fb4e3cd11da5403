"""The Agent port over HTTP: the deploy agents' API as documented in docs/agent.md.

The engine finds an agent's URL in its node table (the agent's heartbeat put it there) and
talks to it here: `GET {url}/v1/status` (boot id and latest command), `GET {url}/v1/inventory`,
`POST {url}/v1/commands` to start a command. The payloads are modelled on Ironic Python
Agent's (command_name / command_status / command_error, image_info with os_hash_algo and
os_hash_value, configdrive with meta_data / user_data / network_data).

Parsing is pure and kept apart from fetching (`parse_status`, `parse_command`,
`parse_inventory`), so the in-process agent adapter (simulators/agent) shares it. Anything the
agent sends that does not fit (not JSON, missing or mistyped fields, a body over 16 MiB) is an
`AgentError` naming the agent's URL and the operation; nothing answering (refused, timed out,
404 for an agent that is gone) is `AgentUnavailable`. Every request has a timeout.
"""

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import pydantic

from metalcubed.core import agent
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import hardwaredata as hwd

MAX_BODY = 16 * 1024 * 1024
DEFAULT_TIMEOUT_S = 10.0


class HttpAgent:
    """`core.agent.Agent` over HTTP+JSON. Stateless and thread-safe."""

    def __init__(self, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._timeout_s = timeout_s

    def status(self, endpoint: agent.AgentEndpoint) -> agent.AgentStatus:
        body = self._call(endpoint, "GET", "/v1/status", operation="get status")
        return parse_status(body, url=endpoint.url)

    def inventory(self, endpoint: agent.AgentEndpoint) -> hwd.HardwareDetails:
        body = self._call(endpoint, "GET", "/v1/inventory", operation="get inventory")
        return parse_inventory(body, url=endpoint.url)

    def start_clean(self, endpoint: agent.AgentEndpoint) -> agent.CommandStatus:
        return self._start(endpoint, agent.CommandName.CLEAN_METADATA, {})

    def start_write_image(
        self, endpoint: agent.AgentEndpoint, image: agent.ImageWrite
    ) -> agent.CommandStatus:
        return self._start(endpoint, agent.CommandName.WRITE_IMAGE, write_image_params(image))

    def start_power_off(self, endpoint: agent.AgentEndpoint) -> agent.CommandStatus:
        return self._start(endpoint, agent.CommandName.POWER_OFF, {})

    def start_reboot(self, endpoint: agent.AgentEndpoint) -> agent.CommandStatus:
        return self._start(endpoint, agent.CommandName.REBOOT, {})

    def _start(
        self, endpoint: agent.AgentEndpoint, name: agent.CommandName, params: dict[str, Any]
    ) -> agent.CommandStatus:
        operation = f"start {name.value}"
        body = self._call(
            endpoint, "POST", "/v1/commands", {"name": name.value, "params": params},
            operation=operation,
        )
        return parse_command(body, url=endpoint.url, operation=operation)

    def _call(
        self,
        endpoint: agent.AgentEndpoint,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        operation: str,
    ) -> object:
        url = endpoint.url.rstrip("/") + path
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as rsp:
                raw = rsp.read(MAX_BODY + 1)
        except urllib.error.HTTPError as err:
            detail = _error_detail(err)
            if err.code == 404:
                raise agent.AgentUnavailable(endpoint.url, operation, detail) from err
            raise agent.AgentError(
                endpoint.url, operation, f"HTTP {err.code}: {detail}"
            ) from err
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            reason = getattr(err, "reason", err)
            raise agent.AgentUnavailable(endpoint.url, operation, str(reason)) from err
        except OSError as err:
            raise agent.AgentUnavailable(endpoint.url, operation, str(err)) from err
        if len(raw) > MAX_BODY:
            raise agent.AgentError(endpoint.url, operation, "response larger than 16 MiB")
        try:
            return json.loads(raw)
        except ValueError as err:
            raise agent.AgentError(endpoint.url, operation, "response is not JSON") from err


def _error_detail(err: urllib.error.HTTPError) -> str:
    try:
        doc = json.loads(err.read(4096))
    except (ValueError, OSError):
        return err.reason if isinstance(err.reason, str) else "error"
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return str(doc["error"])
    return str(err.reason)


# --- payloads ------------------------------------------------------------------------------------


def write_image_params(image: agent.ImageWrite) -> dict[str, Any]:
    """The `standby.write_image` params for `image` (IPA's image_info and configdrive)."""
    info: dict[str, Any] = {
        "urls": [image.url],
        "os_hash_algo": image.checksum_type,
        "os_hash_value": image.checksum,
        "disk_format": image.disk_format,
    }
    if image.root_device is not None:
        info["root_device"] = image.root_device.model_dump(
            mode="json", by_alias=True, exclude_defaults=True
        )
    params: dict[str, Any] = {"image_info": info}
    if image.config_drive is not None:
        drive = image.config_drive
        params["configdrive"] = {
            "meta_data": dict(drive.meta_data),
            "user_data": drive.user_data,
            "network_data": drive.network_data,
        }
    return params


def parse_write_image_params(params: Mapping[str, Any]) -> agent.ImageWrite:
    """The agent's side of `write_image_params`; ValueError names what is wrong."""
    info = params.get("image_info")
    if not isinstance(info, dict):
        raise ValueError("image_info must be an object")
    urls = info.get("urls")
    if not isinstance(urls, list) or not urls or not isinstance(urls[0], str):
        raise ValueError("image_info.urls must be a list of URLs")
    checksum, algo, fmt = (info.get(k, "") for k in ("os_hash_value", "os_hash_algo",
                                                      "disk_format"))
    if not all(isinstance(v, str) for v in (checksum, algo, fmt)):
        raise ValueError("os_hash_value, os_hash_algo and disk_format must be strings")
    hints = info.get("root_device")
    try:
        root = bmh.RootDeviceHints.model_validate(hints) if hints else None
    except pydantic.ValidationError as err:
        raise ValueError(f"root_device: {err.errors()[0]['msg']}") from err
    drive = params.get("configdrive")
    config_drive = None
    if drive is not None:
        if not isinstance(drive, dict):
            raise ValueError("configdrive must be an object")
        meta = drive.get("meta_data") or {}
        if not isinstance(meta, dict):
            raise ValueError("configdrive.meta_data must be an object")
        config_drive = agent.ConfigDrive(
            user_data=_text(drive.get("user_data")),
            network_data=_text(drive.get("network_data")),
            meta_data={str(k): str(v) for k, v in meta.items()},
        )
    return agent.ImageWrite(
        url=urls[0], checksum=checksum, checksum_type=algo, disk_format=fmt or "raw",
        root_device=root, config_drive=config_drive,
    )


def _text(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def parse_status(body: object, *, url: str) -> agent.AgentStatus:
    doc = _object(body, url, "get status")
    boot_id, version = doc.get("boot_id"), doc.get("version", "")
    if not isinstance(boot_id, str) or not isinstance(version, str):
        raise agent.AgentError(url, "get status", "boot_id and version must be strings")
    command = doc.get("command")
    return agent.AgentStatus(
        boot_id=boot_id,
        version=version,
        command=None if command is None else parse_command(command, url=url,
                                                           operation="get status"),
    )


def parse_command(body: object, *, url: str, operation: str) -> agent.CommandStatus:
    doc = _object(body, url, operation)
    try:
        name = agent.CommandName(str(doc.get("command_name")))
        state = agent.CommandState(str(doc.get("command_status")))
    except ValueError as err:
        raise agent.AgentError(url, operation, f"unknown command name or status: {err}") from err
    cid, error = doc.get("id"), doc.get("command_error") or ""
    params = doc.get("command_params") or {}
    if not isinstance(cid, str) or not isinstance(error, str) or not isinstance(params, dict):
        raise agent.AgentError(url, operation, "malformed command")
    image_url, checksum = params.get("image_url", ""), params.get("image_checksum", "")
    if not isinstance(image_url, str) or not isinstance(checksum, str):
        raise agent.AgentError(url, operation, "malformed command_params")
    return agent.CommandStatus(
        id=cid, name=name, state=state, error=error, image_url=image_url, image_checksum=checksum
    )


def parse_inventory(body: object, *, url: str) -> hwd.HardwareDetails:
    """IPA's inventory document as HardwareDetails (what BMO stores from Ironic's inspection)."""
    operation = "get inventory"
    doc = _object(body, url, operation)
    inv = doc.get("inventory")
    if not isinstance(inv, dict):
        raise agent.AgentError(url, operation, "inventory must be an object")
    try:
        return _details(inv)
    except (TypeError, ValueError, KeyError, AttributeError, pydantic.ValidationError) as err:
        raise agent.AgentError(url, operation, f"malformed inventory: {err}") from err


def _details(inv: dict[str, Any]) -> hwd.HardwareDetails:
    vendor = inv.get("system_vendor") or {}
    firmware = vendor.get("firmware") or {}
    cpu = inv.get("cpu") or {}
    memory = inv.get("memory") or {}
    boot = inv.get("boot") or {}
    pxe_mac = str(boot.get("pxe_interface") or "").lower()
    nics = []
    for nic in inv.get("interfaces") or []:
        mac = str(nic.get("mac_address") or "").lower()
        nics.append(hwd.NIC(
            name=str(nic.get("name") or ""),
            mac=mac,
            model=str(nic.get("product") or ""),
            ip=str(nic.get("ipv4_address") or ""),
            speed_gbps=int(nic.get("speed_mbps") or 0) // 1000,
            pxe=bool(mac) and mac == pxe_mac,
        ))
    storage = []
    for disk in inv.get("disks") or []:
        name = str(disk["name"])
        rotational = bool(disk.get("rotational"))
        kind = hwd.DiskType.NVME if "nvme" in name else (
            hwd.DiskType.HDD if rotational else hwd.DiskType.SSD)
        by_path = str(disk.get("by_path") or "")
        storage.append(hwd.Storage(
            name=by_path or name,
            alternate_names=(name,) if by_path else (),
            rotational=rotational,
            type=kind,
            size_bytes=int(disk.get("size") or 0),
            vendor=str(disk.get("vendor") or ""),
            model=str(disk.get("model") or ""),
            serial_number=str(disk.get("serial") or ""),
            wwn=str(disk.get("wwn") or ""),
            hctl=str(disk.get("hctl") or ""),
        ))
    return hwd.HardwareDetails(
        system_vendor=hwd.HardwareSystemVendor(
            manufacturer=str(vendor.get("manufacturer") or ""),
            product_name=str(vendor.get("product_name") or ""),
            serial_number=str(vendor.get("serial_number") or ""),
        ),
        firmware=hwd.Firmware(bios=hwd.BIOS(
            vendor=str(firmware.get("vendor") or ""),
            version=str(firmware.get("version") or ""),
            date=str(firmware.get("build_date") or ""),
        )),
        ram_mebibytes=int(memory.get("physical_mb") or 0),
        nics=tuple(nics),
        storage=tuple(storage),
        cpu=hwd.CPU(
            arch=str(cpu.get("architecture") or ""),
            model=str(cpu.get("model_name") or ""),
            clock_megahertz=float(cpu.get("frequency") or 0.0),
            flags=tuple(str(f) for f in cpu.get("flags") or ()),
            count=int(cpu.get("count") or 0),
        ),
        hostname=str(inv.get("hostname") or ""),
    )


def _object(body: object, url: str, operation: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise agent.AgentError(url, operation, "response is not a JSON object")
    return body
