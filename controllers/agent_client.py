"""The Agent port over HTTP: Ironic Python Agent's command API (docs/agent.md).

The engine finds an agent's callback URL and its token in the node table (the agent's
heartbeat and lookup put them there) and talks to it as Ironic's conductor does:

- status: `GET {url}/v1/status` (`started_at`, `version`) and
  `GET {url}/v1/commands/?agent_token=...` (the commands of this boot, oldest first; the
  latest one the engine starts is the agent's state);
- inventory: `POST {url}/v1/commands/?wait=true` `poll.get_hardware_info`;
- cleaning: `clean.get_clean_steps` (waited for: it gives the hardware managers' versions),
  then `clean.execute_clean_step` with the `erase_devices_metadata` step;
- image write: `standby.prepare_image` with `image_info` (urls, os_hash_algo/os_hash_value or
  a checksum URL, disk_format, stream_raw_images, root device hints) and `configdrive`
  (the config-2 ISO, gzip+base64; controllers/bootiso.py);
- `standby.power_off`, and `standby.run_image` to reboot.

IPA does not echo a command's parameters; the image a write is for travels in
`image_info.id` (`image_id`), which IPA repeats in its result, and is remembered per command
for the RUNNING ones. Parsing is pure (`parse_*`), shared with the in-process adapter. Anything
the agent sends that does not fit (not JSON, missing or mistyped fields, over 16 MiB) is an
`AgentError` naming the agent's URL and the operation; nothing answering (refused, timed out,
404 for an agent that is gone) is `AgentUnavailable`. Tokens go in the query string and are
never part of an error message or log line.
"""

import base64
import binascii
import hashlib
import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import pydantic

from metalcubed.controllers import bootiso
from metalcubed.core import agent
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import hardwaredata as hwd

MAX_BODY = 16 * 1024 * 1024
DEFAULT_TIMEOUT_S = 10.0
MEMO_SIZE = 10_000

CLEAN_STEP = {"step": "erase_devices_metadata", "interface": "deploy", "priority": 99,
              "reboot_requested": False, "abortable": True, "requires_ramdisk": True}
"""Upstream's `metadata` automated cleaning: the one clean step the engine runs."""
RAID_STEPS = ("delete_configuration", "create_configuration")
"""Software RAID's clean steps (IPA's `raid` interface), run while preparing."""

_SHORT_NAMES = {
    "execute_clean_step": agent.CommandName.CLEAN_METADATA,
    "prepare_image": agent.CommandName.WRITE_IMAGE,
    "power_off": agent.CommandName.POWER_OFF,
    "run_image": agent.CommandName.REBOOT,
}
"""IPA reports a command by its name within the extension."""

class HttpAgent:
    """`core.agent.Agent` over IPA's HTTP API. Thread-safe; remembers only which image each
    running write is for (bounded)."""

    def __init__(self, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._timeout_s = timeout_s
        self._images: OrderedDict[tuple[str, str], tuple[str, str]] = OrderedDict()
        self._steps: OrderedDict[tuple[str, str], str] = OrderedDict()
        """(agent URL, command id) -> the clean step it runs (IPA says so only once done)."""
        self._lock = threading.Lock()

    def status(self, endpoint: agent.AgentEndpoint) -> agent.AgentStatus:
        status = self._call(endpoint, "GET", "/v1/status", operation="get status")
        commands = self._call(endpoint, "GET", "/v1/commands/", operation="get status",
                              token=True)
        return parse_status(status, commands, url=endpoint.url, images=self._image_of,
                            steps=self._step_of)

    def inventory(self, endpoint: agent.AgentEndpoint) -> hwd.HardwareDetails:
        result = self._run(endpoint, "poll.get_hardware_info", {}, operation="get inventory",
                           wait=True)
        return parse_inventory({"inventory": result}, url=endpoint.url)

    def start_clean(self, endpoint: agent.AgentEndpoint) -> agent.CommandStatus:
        node, ports = node_document(endpoint.node_id), list[dict[str, Any]]()
        steps = self._run(endpoint, "clean.get_clean_steps", {"node": node, "ports": ports},
                          operation="get clean steps", wait=True)
        versions = steps.get("hardware_manager_version") if isinstance(steps, dict) else None
        if not isinstance(versions, dict):
            raise agent.AgentError(endpoint.url, "get clean steps",
                                   "no hardware_manager_version in the answer")
        return self._start(endpoint, agent.CommandName.CLEAN_METADATA, {
            "step": CLEAN_STEP, "node": node, "ports": ports, "clean_version": versions})

    def start_clean_step(self, endpoint: agent.AgentEndpoint,
                         step: agent.CleanStep) -> agent.CommandStatus:
        node, ports = node_document(endpoint.node_id), list[dict[str, Any]]()
        if step.target_raid_config is not None:
            node["target_raid_config"] = target_raid_config(step.target_raid_config)
        steps = self._run(endpoint, "clean.get_clean_steps", {"node": node, "ports": ports},
                          operation="get clean steps", wait=True)
        versions = steps.get("hardware_manager_version") if isinstance(steps, dict) else None
        if not isinstance(versions, dict):
            raise agent.AgentError(endpoint.url, "get clean steps",
                                   "no hardware_manager_version in the answer")
        doc = {"step": step.step, "interface": step.interface, "priority": 0,
               "reboot_requested": False, "abortable": False, "requires_ramdisk": True}
        return self._start(endpoint, agent.CommandName.CLEAN_METADATA, {
            "step": doc, "node": node, "ports": ports, "clean_version": versions},
            clean_step=step.step)

    def start_write_image(
        self, endpoint: agent.AgentEndpoint, image: agent.ImageWrite
    ) -> agent.CommandStatus:
        try:
            params = prepare_image_params(image, node_id=endpoint.node_id)
        except bootiso.IsoError as err:
            raise agent.AgentError(endpoint.url, "start standby.prepare_image",
                                   f"config drive: {err}") from err
        command = self._start(endpoint, agent.CommandName.WRITE_IMAGE, params,
                              image=(image.url, image.checksum))
        return command

    def start_power_off(self, endpoint: agent.AgentEndpoint) -> agent.CommandStatus:
        return self._start(endpoint, agent.CommandName.POWER_OFF, {})

    def start_reboot(self, endpoint: agent.AgentEndpoint) -> agent.CommandStatus:
        return self._start(endpoint, agent.CommandName.REBOOT, {})

    # --- plumbing --------------------------------------------------------------------------------

    def _image_of(self, url: str, command_id: str) -> tuple[str, str] | None:
        with self._lock:
            return self._images.get((url, command_id))

    def _step_of(self, url: str, command_id: str) -> str | None:
        with self._lock:
            return self._steps.get((url, command_id))

    def _remember(self, url: str, command_id: str, image: tuple[str, str]) -> None:
        with self._lock:
            self._images[(url, command_id)] = image
            while len(self._images) > MEMO_SIZE:
                self._images.popitem(last=False)

    def _start(self, endpoint: agent.AgentEndpoint, name: agent.CommandName,
               params: dict[str, Any], *, image: tuple[str, str] | None = None,
               clean_step: str = "") -> agent.CommandStatus:
        operation = f"start {name.value}"
        body = self._run(endpoint, name.value, params, operation=operation, raw=True)
        if image is not None and isinstance(body, dict) and isinstance(body.get("id"), str):
            self._remember(endpoint.url, body["id"], image)
        if clean_step and isinstance(body, dict) and isinstance(body.get("id"), str):
            with self._lock:
                self._steps[(endpoint.url, body["id"])] = clean_step
                while len(self._steps) > MEMO_SIZE:
                    self._steps.popitem(last=False)
        command = parse_command(body, url=endpoint.url, operation=operation,
                                images=self._image_of, steps=self._step_of)
        if command is None:
            raise agent.AgentError(endpoint.url, operation, "answer names another command")
        return command

    def _run(self, endpoint: agent.AgentEndpoint, name: str, params: dict[str, Any], *,
             operation: str, wait: bool = False, raw: bool = False) -> Any:
        """POST a command; with `wait`, the result of a finished command (else AgentError)."""
        body = self._call(endpoint, "POST", "/v1/commands/", {"name": name, "params": params},
                          operation=operation, token=True, wait=wait)
        if raw:
            return body
        doc = _object(body, endpoint.url, operation)
        if doc.get("command_status") != "SUCCEEDED":
            raise agent.AgentError(endpoint.url, operation,
                                   f"{name} {doc.get('command_status')}: "
                                   f"{error_text(doc.get('command_error'))}")
        return doc.get("command_result")

    def _call(
        self,
        endpoint: agent.AgentEndpoint,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        operation: str,
        token: bool = False,
        wait: bool = False,
    ) -> object:
        query: dict[str, str] = {}
        if wait:
            query["wait"] = "true"
        if token and endpoint.token:
            query["agent_token"] = endpoint.token
        url = endpoint.url.rstrip("/") + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        try:
            status, raw = self._send(method, url, data)
        except OSError as err:
            reason = getattr(err, "reason", err)
            raise agent.AgentUnavailable(endpoint.url, operation, str(reason)) from err
        if len(raw) > MAX_BODY:
            raise agent.AgentError(endpoint.url, operation, "response larger than 16 MiB")
        if status >= 400:
            detail = error_detail(raw) or f"HTTP {status}"
            gone = status == 404 and (not path.startswith("/v1/commands/")
                                      or "not running" in detail)
            if gone:
                raise agent.AgentUnavailable(endpoint.url, operation, detail)
            raise agent.AgentError(endpoint.url, operation, f"HTTP {status}: {detail}")
        try:
            return json.loads(raw)
        except ValueError as err:
            raise agent.AgentError(endpoint.url, operation, "response is not JSON") from err

    def _send(self, method: str, url: str, data: bytes | None) -> tuple[int, bytes]:
        """One request: (status, body); OSError when nothing answers (refused, timed out)."""
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as rsp:
                return int(rsp.status), bytes(rsp.read(MAX_BODY + 1))
        except urllib.error.HTTPError as err:
            try:
                return err.code, bytes(err.read(MAX_BODY + 1))
            except OSError:
                return err.code, b""


def error_detail(raw: bytes) -> str:
    """The message of an IPA (`faultstring`), Ironic (`error_message`) or other (`error`)
    error body; "" when there is none."""
    try:
        doc = json.loads(raw[:65536])
    except ValueError:
        return ""
    if isinstance(doc, dict):
        inner = doc.get("error_message", doc)
        if isinstance(inner, str):
            try:
                inner = json.loads(inner)
            except ValueError:
                return inner
        if isinstance(inner, dict):
            for key in ("faultstring", "error"):
                if isinstance(inner.get(key), str):
                    return str(inner[key])
    return ""


def error_text(error: object) -> str:
    """An IPA command_error as Ironic words it (get_command_error): a serialized RESTError's
    `details`, else its `message`; text as it is."""
    if error is None:
        return ""
    if isinstance(error, dict):
        for key in ("details", "message"):
            if isinstance(error.get(key), str) and error[key]:
                return str(error[key])
        return json.dumps(error)
    return str(error)


# --- payloads ------------------------------------------------------------------------------------


def node_document(node_id: str) -> dict[str, Any]:
    """The node as IPA's clean commands want it (it reads little more than the uuid)."""
    return {"uuid": node_id, "properties": {}, "instance_info": {},
            "driver_internal_info": {}}


_ID_PREFIX = "mc1-"


def image_id(url: str, checksum: str) -> str:
    """`image_info.id`: names the image and its checksum, so that IPA's result (which repeats
    the id) says what was written. Long ones are a digest (then only remembered)."""
    encoded = base64.urlsafe_b64encode(json.dumps([url, checksum]).encode()).decode()
    if len(encoded) <= 240:
        return _ID_PREFIX + encoded.rstrip("=")
    return "mch-" + hashlib.sha256(f"{url}\n{checksum}".encode()).hexdigest()


def image_of_id(value: str) -> tuple[str, str] | None:
    if not value.startswith(_ID_PREFIX):
        return None
    text = value[len(_ID_PREFIX):]
    try:
        doc = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error):
        return None
    if (isinstance(doc, list) and len(doc) == 2 and isinstance(doc[0], str)
            and isinstance(doc[1], str)):
        return doc[0], doc[1]
    return None


_WRITTEN = re.compile(r"image \((?P<id>[^)]*)\) written")


def prepare_image_params(image: agent.ImageWrite, *, node_id: str) -> dict[str, Any]:
    """`standby.prepare_image` params: Ironic's image_info, and the config drive ISO."""
    checksum = image.checksum.strip()
    info: dict[str, Any] = {
        "id": image_id(image.url, image.checksum),
        "urls": [image.url],
        "disk_format": image.disk_format,
        "container_format": "bare",
        "stream_raw_images": True,
        "image_type": "whole-disk",
        "node_uuid": node_id,
    }
    algo = (image.checksum_type or "").lower()
    if checksum.startswith(("http://", "https://")) or not algo or algo == "auto":
        # A checksum file URL, or a bare checksum: IPA finds the algorithm (by length).
        info["checksum"] = checksum
    else:
        info["os_hash_algo"] = algo
        info["os_hash_value"] = checksum
    if image.root_device is not None:
        info["root_hint"] = root_hint(image.root_device)
    params: dict[str, Any] = {"image_info": info}
    if image.config_drive is not None:
        params["configdrive"] = bootiso.encode_config_drive(
            bootiso.config_drive(image.config_drive))
    return params


_HINT_KEYS = {  # BMO's rootDeviceHints -> Ironic's root_device (and its operator)
    "device_name": ("name", "s== "), "hctl": ("hctl", "s== "), "model": ("model", "<in> "),
    "vendor": ("vendor", "<in> "), "serial_number": ("serial", "s== "),
    "wwn": ("wwn", "s== "), "wwn_with_extension": ("wwn_with_extension", "s== "),
    "wwn_vendor_extension": ("wwn_vendor_extension", "s== "),
}


def root_hint(hints: bmh.RootDeviceHints) -> dict[str, Any]:
    """BMO's rootDeviceHints as Ironic's root_device property (BMO's MakeHintMap)."""
    doc: dict[str, Any] = {}
    for field, (key, operator) in _HINT_KEYS.items():
        value = getattr(hints, field)
        if value:
            doc[key] = operator + value
    if hints.min_size_gigabytes:
        doc["size"] = f">= {hints.min_size_gigabytes}"
    if hints.rotational is not None:
        doc["rotational"] = hints.rotational
    return doc


def parse_root_hint(doc: Mapping[str, Any]) -> bmh.RootDeviceHints:
    """`root_hint` back as BMO's hints (ValueError for anything else)."""
    fields: dict[str, Any] = {}
    for field, (key, operator) in _HINT_KEYS.items():
        value = doc.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ValueError(f"root_hint.{key} must be a string")
        fields[field] = value.removeprefix(operator).strip()
    size = doc.get("size")
    if size is not None:
        text = str(size).removeprefix(">=").strip()
        if not text.isdigit():
            raise ValueError("root_hint.size must be '>= <GiB>'")
        fields["min_size_gigabytes"] = int(text)
    if "rotational" in doc:
        if not isinstance(doc["rotational"], bool):
            raise ValueError("root_hint.rotational must be a boolean")
        fields["rotational"] = doc["rotational"]
    unknown = set(doc) - {k for k, _ in _HINT_KEYS.values()} - {"size", "rotational"}
    if unknown:
        raise ValueError(f"root_hint has unknown keys {sorted(unknown)}")
    try:
        return bmh.RootDeviceHints.model_validate(fields)
    except pydantic.ValidationError as err:
        raise ValueError(f"root_hint: {err.errors()[0]['msg']}") from err


def parse_prepare_image_params(params: Mapping[str, Any]) -> agent.ImageWrite:
    """The agent's side of `prepare_image_params`; ValueError names what is wrong."""
    info = params.get("image_info")
    if not isinstance(info, dict):
        raise ValueError("image_info must be an object")
    urls = info.get("urls")
    if not isinstance(urls, list) or not urls or not isinstance(urls[0], str):
        raise ValueError("image_info.urls must be a list of URLs")
    if not isinstance(info.get("id"), str) or not info["id"]:
        raise ValueError("image_info.id must be a non-empty string")
    checksum, algo, fmt = (info.get(k) or "" for k in ("os_hash_value", "os_hash_algo",
                                                        "disk_format"))
    if not checksum:
        checksum = info.get("checksum") or ""
    if not all(isinstance(v, str) for v in (checksum, algo, fmt)):
        raise ValueError("checksum, os_hash_value, os_hash_algo and disk_format must be "
                         "strings")
    if not checksum:
        raise ValueError("Image checksum is not available, either the 'checksum' field or "
                         "the 'os_hash_algo' and 'os_hash_value' fields pair must be set")
    hints = info.get("root_hint")
    root = None
    if hints:
        if not isinstance(hints, dict):
            raise ValueError("root_hint must be an object")
        root = parse_root_hint(hints)
    drive = params.get("configdrive")
    config_drive = None
    if drive is not None:
        if not isinstance(drive, str):
            raise ValueError("configdrive must be a gzip+base64 string")
        try:
            config_drive = read_config_drive(bootiso.decode_config_drive(drive))
        except bootiso.IsoError as err:
            raise ValueError(f"configdrive: {err}") from err
    return agent.ImageWrite(
        url=urls[0], checksum=checksum, checksum_type=algo, disk_format=fmt or "raw",
        root_device=root, config_drive=config_drive,
    )


def read_config_drive(iso: bytes) -> agent.ConfigDrive:
    """A config-2 ISO back as texts (what the host's cloud-init would read)."""
    label, files = bootiso.read_files(iso, what="config drive")
    if label != bootiso.CONFIG_DRIVE_LABEL:
        raise bootiso.IsoError(f"config drive is labelled {label!r}, not config-2")
    try:
        meta = json.loads(files.get("openstack/latest/meta_data.json", b"{}"))
    except ValueError as err:
        raise bootiso.IsoError(f"meta_data.json is not JSON: {err}") from err
    if not isinstance(meta, dict):
        raise bootiso.IsoError("meta_data.json is not an object")
    return agent.ConfigDrive(
        user_data=files.get("openstack/latest/user_data", b"").decode(errors="replace"),
        network_data=files.get("openstack/latest/network_data.json", b"").decode(
            errors="replace"),
        meta_data={str(k): v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()},
    )


# --- answers -------------------------------------------------------------------------------------

ImageOf = Callable[[str, str], tuple[str, str] | None]


def _no_images(url: str, command_id: str) -> tuple[str, str] | None:
    return None


def _no_steps(url: str, command_id: str) -> str | None:
    return None


def parse_status(status: object, commands: object, *, url: str,
                 images: ImageOf = _no_images,
                 steps: Callable[[str, str], str | None] = _no_steps) -> agent.AgentStatus:
    """GET /v1/status and GET /v1/commands/ as the port's AgentStatus (boot id: the agent's
    start time, which changes with every boot)."""
    doc = _object(status, url, "get status")
    started, version = doc.get("started_at"), doc.get("version", "")
    if not isinstance(started, (int, float, str)) or isinstance(started, bool) or not isinstance(
            version, str):
        raise agent.AgentError(url, "get status", "started_at and version are missing")
    listing = _object(commands, url, "get status").get("commands")
    if not isinstance(listing, list):
        raise agent.AgentError(url, "get status", "commands must be a list")
    latest = None
    for item in listing:
        command = parse_command(item, url=url, operation="get status", images=images,
                                steps=steps)
        if command is not None:
            latest = command
    return agent.AgentStatus(boot_id=str(started), version=version, command=latest)


def parse_command(body: object, *, url: str, operation: str,
                  images: ImageOf = _no_images,
                  steps: Callable[[str, str], str | None] = _no_steps,
                  ) -> agent.CommandStatus | None:
    """One IPA command result; None for a command the engine does not start (e.g. the
    synchronous get_clean_steps or get_hardware_info)."""
    doc = _object(body, url, operation)
    cid, name, status = doc.get("id"), doc.get("command_name"), doc.get("command_status")
    if not isinstance(cid, str) or not isinstance(name, str) or not isinstance(status, str):
        raise agent.AgentError(url, operation, "malformed command: id, command_name and "
                                               "command_status must be strings")
    short = name.split(".", 1)[-1]
    known = _SHORT_NAMES.get(short)
    if known is None:
        return None
    if status == "VERSION_MISMATCH":
        state, error = agent.CommandState.FAILED, "hardware manager version mismatch"
    else:
        try:
            state = agent.CommandState(status)
        except ValueError as err:
            raise agent.AgentError(url, operation, f"unknown command status {status!r}") from err
        error = error_text(doc.get("command_error")) if state is agent.CommandState.FAILED else ""
    image = ("", "")
    if known is agent.CommandName.WRITE_IMAGE:
        image = images(url, cid) or _written_image(doc.get("command_result")) or ("", "")
    step = ""
    if known is agent.CommandName.CLEAN_METADATA:
        step = steps(url, cid) or _clean_step(doc.get("command_result")) or ""
    return agent.CommandStatus(id=cid, name=known, state=state, error=error,
                               image_url=image[0], image_checksum=image[1], clean_step=step)


def _clean_step(result: object) -> str | None:
    """The step a finished execute_clean_step ran (IPA repeats it in its result)."""
    step = result.get("clean_step") if isinstance(result, dict) else None
    name = step.get("step") if isinstance(step, dict) else None
    return name if isinstance(name, str) else None


def target_raid_config(raid: bmh.RAIDConfig) -> dict[str, Any]:
    """spec.raid's software volumes as Ironic's target_raid_config (BMO's
    buildTargetSoftwareRAIDCfg): controller "software", hints as root_device maps."""
    disks = []
    for volume in raid.software_raid_volumes or ():
        disks.append({
            "size_gb": volume.size_gibibytes or "MAX",
            "raid_level": volume.level,
            "controller": "software",
            "is_root_volume": volume.root_volume,
            "physical_disks": [root_hint(h) for h in volume.physical_disks],
        })
    return {"logical_disks": disks}


def _written_image(result: object) -> tuple[str, str] | None:
    text = result.get("result") if isinstance(result, dict) else None
    match = _WRITTEN.search(text) if isinstance(text, str) else None
    return image_of_id(match.group("id")) if match else None


def parse_inventory(body: object, *, url: str) -> hwd.HardwareDetails:
    """IPA's inventory (`{"inventory": {...}}`, as inspection data and poll.get_hardware_info
    carry it) as HardwareDetails (what BMO stores from Ironic's inspection)."""
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
