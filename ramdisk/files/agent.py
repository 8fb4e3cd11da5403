"""metalcubed's deploy agent: runs inside the ramdisk and speaks Ironic Python Agent's wire format.

Standard library only (Debian's python3.11-minimal + part of libpython3.11-stdlib live in the
ramdisk); it never imports metalcubed. The wire format is docs/agent.md's:

- at start: `GET {api}/` (microversion), optionally `POST {api}/v1/continue_inspection`,
  `GET {api}/v1/lookup?addresses=<macs>` until a node answers (back-off), then
  `POST {api}/v1/heartbeat/<uuid>` at once and every 0.3..0.6 x heartbeat_timeout;
- serves IPA's command API on port 9999: `GET /v1/status`, `GET/POST /v1/commands/`,
  `GET /v1/commands/<id>`; commands poll.get_hardware_info, clean.get_clean_steps,
  clean.execute_clean_step (erase_devices_metadata), standby.prepare_image (raw image,
  checksum checked, config drive partition), standby.power_off, standby.run_image.

The inventory is read from the VM itself: /proc/cpuinfo, /proc/meminfo, SMBIOS (memory
devices, system and BIOS strings), /sys/block and /sys/class/net.
Log lines go to the console (ttyS0) prefixed with METALCUBED-AGENT:, never with the token.
"""

import base64
import fcntl
import gzip
import hashlib
import hmac
import http.server
import json
import os
import platform
import random
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

VERSION = "13.0.0"
"""The IPA version this agent's wire format follows (sent in heartbeats)."""
LISTEN_PORT = 9999
MIN_ROOT_BYTES = 512 * 1024 * 1024
"""Smallest disk taken as the root device without hints (IPA's is 4 GiB; lab disks are 1 GiB)."""
ERASE_BYTES = 1024 * 1024
CONFIG_DRIVE_MAX = 64 * 1024 * 1024
SECTOR = 512
STARTED_AT = time.time()
DHCP_ENV = "/run/metalcubed/dhcp.env"


def log(message: str) -> None:
    line = f"METALCUBED-AGENT: {message} uptime={_uptime():.1f}"
    print(line, flush=True)


def _uptime() -> float:
    try:
        with open("/proc/uptime") as f:
            return float(f.read().split()[0])
    except OSError:
        return 0.0


def _read(path: str, default: str = "") -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read().strip()
    except OSError:
        return default


# --- parameters ----------------------------------------------------------------------------------


def parse_params(text: str) -> dict[str, str]:
    params = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        params[key] = value if sep else ""
    return params


def _iso_label(device: str) -> str:
    try:
        with open(device, "rb") as f:
            f.seek(32768)
            pvd = f.read(2048)
    except OSError:
        return ""
    if pvd[1:6] != b"CD001":
        return ""
    return pvd[40:72].decode(errors="replace").strip()


def find_labelled(label: str) -> str:
    """The block device (whole disk or partition) holding an ISO 9660 labelled `label`."""
    for name in sorted(os.listdir("/sys/class/block")):
        if name.startswith(("loop", "ram")):
            continue
        device = "/dev/" + name
        if _iso_label(device) == label:
            return device
    return ""


def vmedia_params() -> dict[str, str]:
    """parameters.txt from the device labelled ir-vfd-dev (Ironic's virtual media floppy)."""
    device = find_labelled("ir-vfd-dev")
    if not device:
        return {}
    os.makedirs("/mnt/vfd", exist_ok=True)
    if subprocess.run(["mount", "-t", "iso9660", "-o", "ro", device, "/mnt/vfd"],
                      check=False).returncode != 0:
        log(f"cannot mount {device} (ir-vfd-dev)")
        return {}
    try:
        return parse_params(_read("/mnt/vfd/parameters.txt"))
    finally:
        subprocess.run(["umount", "/mnt/vfd"], check=False)


def load_params() -> dict[str, str]:
    params = parse_params(_read("/proc/cmdline"))
    if params.get("boot_method") == "vmedia":
        params.update(vmedia_params())
    return params


def dhcp_env() -> dict[str, str]:
    env = {}
    for line in _read(DHCP_ENV).splitlines():
        key, _, value = line.partition("=")
        env[key.strip()] = value.strip()
    return env


# --- inventory -----------------------------------------------------------------------------------


def _ipv4(name: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def interfaces() -> list[dict[str, object]]:
    result: list[dict[str, object]] = []
    for name in sorted(os.listdir("/sys/class/net")):
        base = f"/sys/class/net/{name}"
        if name == "lo" or not os.path.exists(base + "/device"):
            continue
        speed = _read(base + "/speed", "-1")
        driver = os.path.basename(os.path.realpath(base + "/device/driver"))
        result.append({
            "name": name,
            "mac_address": _read(base + "/address").lower(),
            "ipv4_address": _ipv4(name),
            "ipv6_address": None,
            "has_carrier": _read(base + "/carrier", "0") == "1",
            "speed_mbps": int(speed) if speed.lstrip("-").isdigit() and int(speed) > 0 else None,
            "vendor": _read(base + "/device/vendor") or None,
            "product": _read(base + "/device/device") or None,
            "driver": driver,
            "lldp": None,
            "client_id": None,
            "biosdevname": None,
        })
    return result


def cpu() -> dict[str, object]:
    info = _read("/proc/cpuinfo")
    count, model, mhz, flags = 0, "", "", list[str]()
    for line in info.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "processor":
            count += 1
        elif key == "model name" and not model:
            model = value
        elif key == "cpu MHz" and not mhz:
            mhz = value
        elif key == "flags" and not flags:
            flags = value.split()
    return {"model_name": model, "frequency": mhz, "count": count,
            "architecture": platform.machine(), "flags": flags}


def _smbios(kind: int) -> list[bytes]:
    base = "/sys/firmware/dmi/entries"
    tables = []
    try:
        names = os.listdir(base)
    except OSError:
        return []
    for name in sorted(names):
        if name.split("-")[0] == str(kind):
            try:
                with open(f"{base}/{name}/raw", "rb") as f:
                    tables.append(f.read())
            except OSError:
                continue
    return tables


def memory() -> dict[str, object]:
    total_kb = 0
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            total_kb = int(line.split()[1])
    physical_mb = 0
    for raw in _smbios(17):  # SMBIOS memory device: size at 0x0C (MB, bit 15: KB units)
        if len(raw) < 0x0E:
            continue
        size = struct.unpack_from("<H", raw, 0x0C)[0]
        if size in (0, 0xFFFF):
            continue
        if size == 0x7FFF and len(raw) >= 0x20:
            physical_mb += struct.unpack_from("<I", raw, 0x1C)[0]
        elif size & 0x8000:
            physical_mb += (size & 0x7FFF) // 1024
        else:
            physical_mb += size
    if not physical_mb:
        physical_mb = -(-total_kb // 1024)
    return {"total": total_kb * 1024, "physical_mb": physical_mb}


def _serial(base: str) -> str | None:
    serial = _read(base + "/device/serial") or _read(base + "/serial")
    if serial:
        return serial
    try:
        with open(base + "/device/vpd_pg80", "rb") as f:
            page = f.read()
        return page[4:].decode(errors="replace").strip() or None
    except OSError:
        return None


def disks() -> list[dict[str, object]]:
    result = []
    for name in sorted(os.listdir("/sys/block")):
        base = f"/sys/block/{name}"
        if name.startswith(("loop", "ram", "sr", "zram", "fd")) or not os.path.exists(
                base + "/device"):
            continue
        if _read(base + "/removable", "0") == "1":
            continue
        device = os.path.realpath(base + "/device")
        hctl = os.path.basename(device) if os.path.basename(device).count(":") == 3 else None
        wwid = _read(base + "/device/wwid")
        result.append({
            "name": "/dev/" + name,
            "model": _read(base + "/device/model"),
            "vendor": _read(base + "/device/vendor"),
            "size": int(_read(base + "/size", "0")) * SECTOR,
            "rotational": _read(base + "/queue/rotational", "1") == "1",
            "serial": _serial(base),
            "wwn": wwid.removeprefix("naa.") if wwid.startswith("naa.") else None,
            "wwn_with_extension": None,
            "wwn_vendor_extension": None,
            "hctl": hctl,
            "by_path": None,
        })
    return result


def inventory(params: dict[str, str]) -> dict[str, object]:
    bootif = params.get("BOOTIF", "")
    pxe = bootif[3:].replace("-", ":").lower() if bootif.startswith("01-") else (
        bootif.replace("-", ":").lower() or None)
    dmi = "/sys/class/dmi/id/"
    return {
        "interfaces": interfaces(),
        "cpu": cpu(),
        "memory": memory(),
        "disks": disks(),
        "bmc_address": None,
        "bmc_v6address": None,
        "system_vendor": {
            "product_name": _read(dmi + "product_name"),
            "serial_number": _read(dmi + "product_serial"),
            "manufacturer": _read(dmi + "sys_vendor"),
            "firmware": {"vendor": _read(dmi + "bios_vendor"),
                         "version": _read(dmi + "bios_version"),
                         "build_date": _read(dmi + "bios_date")},
        },
        "boot": {"current_boot_mode": "uefi" if os.path.exists("/sys/firmware/efi") else "bios",
                 "pxe_interface": pxe},
        "hostname": socket.gethostname(),
    }


# --- disks ---------------------------------------------------------------------------------------


class CommandFailed(Exception):
    """A command's failure: `details` is what Ironic records (IPA's RESTError details)."""

    def __init__(self, message: str, details: str) -> None:
        super().__init__(details)
        self.message, self.details = message, details


def _size_bytes(device: str) -> int:
    """The size of a block device (or of a file standing in for one in tests)."""
    with open(device, "rb") as f:
        return f.seek(0, os.SEEK_END)


def erase_metadata(device: str) -> None:
    """IPA's erase_devices_metadata, in effect: the first MiB of every partition (filesystem
    signatures, a config drive's ISO header) and of the disk (MBR, GPT, an ISO's volume
    descriptors), and the disk's last MiB (GPT backup) are zeroed."""
    size = _size_bytes(device)
    zeros = b"\0" * min(ERASE_BYTES, size)
    name = os.path.basename(device)
    starts = []  # each partition's start, as wipefs would clear each one's signatures
    for part in os.listdir(f"/sys/block/{name}") if os.path.isdir(f"/sys/block/{name}") else ():
        if part.startswith(name) and os.path.exists(f"/sys/block/{name}/{part}/start"):
            starts.append(int(_read(f"/sys/block/{name}/{part}/start", "0")) * SECTOR)
    with open(device, "r+b", buffering=0) as f:
        for start in starts:
            f.seek(start)
            f.write(zeros[:max(0, min(len(zeros), size - start))])
        f.seek(0)
        f.write(zeros)
        if size > len(zeros):
            f.seek(size - len(zeros))
            f.write(zeros)
        os.fsync(f.fileno())
    _reread(device)


def _reread(device: str) -> None:
    try:
        with open(device, "rb") as f:
            fcntl.ioctl(f.fileno(), 0x125F)  # BLKRRPART
    except OSError:
        pass


def _hint_matches(disk: dict[str, object], hints: dict[str, object]) -> bool:
    for key, wanted in hints.items():
        if key == "size":
            need = int(str(wanted).removeprefix(">=").strip() or 0) * 1024 ** 3
            if int(disk["size"]) < need:  # type: ignore[call-overload]
                return False
            continue
        if key == "rotational":
            if disk["rotational"] != wanted:
                return False
            continue
        text = str(wanted)
        value = str(disk.get(key) or "")
        if text.startswith("<in> "):
            if text[5:].strip() not in value:
                return False
        elif value != text.removeprefix("s== ").strip():
            return False
    return True


def root_device(hints: dict[str, object] | None) -> str:
    candidates = disks()
    if hints:
        matching = [d for d in candidates if _hint_matches(d, hints)]
        if not matching:
            raise CommandFailed("Device not found",
                                f"No suitable device was found for deployment using these "
                                f"hints {hints}")
        return str(matching[0]["name"])
    big = [d for d in candidates if int(d["size"]) >= MIN_ROOT_BYTES]  # type: ignore[call-overload]
    if not big:
        raise CommandFailed("Device not found", "No suitable device was found for deployment "
                            f"- root device hints were not provided and all found block "
                            f"devices are smaller than {MIN_ROOT_BYTES} bytes.")
    return str(min(big, key=lambda d: int(d["size"]))["name"])  # type: ignore[call-overload]


_ALGOS = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}


def expected_checksum(info: dict[str, object], url: str) -> tuple[str, str]:
    """(algorithm, hex value) from os_hash_algo/os_hash_value or checksum (a value or the URL
    of a checksum file)."""
    algo, value = str(info.get("os_hash_algo") or ""), str(info.get("os_hash_value") or "")
    if not value:
        value = str(info.get("checksum") or "")
        if value.startswith(("http://", "https://")):
            value = _checksum_from_file(value, url)
        algo = _ALGOS.get(len(value), "")
    if algo not in ("md5", "sha1", "sha256", "sha512") or not value:
        raise CommandFailed("Invalid image", f"Unable to verify image with checksum "
                            f"{value!r}: unsupported hash algorithm {algo!r}")
    return algo, value.strip().lower()


def _checksum_from_file(checksum_url: str, image_url: str) -> str:
    text = _fetch(checksum_url).decode(errors="replace")
    name = os.path.basename(urllib.parse.urlparse(image_url).path)
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if len(lines) == 1 and len(lines[0]) == 1:
        return lines[0][0]
    for words in lines:
        if len(words) >= 2 and words[-1].lstrip("*") == name:
            return words[0]
    raise CommandFailed("Invalid image", f"Checksum file {checksum_url} has no checksum "
                        f"for {name}")


def _fetch(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=60) as rsp:
            return bytes(rsp.read())
    except (OSError, ValueError) as err:
        raise CommandFailed("Image download failed",
                            f"Error downloading image {url}: {err}") from err


def _open_image(url: str, attempts: int = 3):  # type: ignore[no-untyped-def]
    last: Exception | None = None
    for attempt in range(attempts):
        try:
            return urllib.request.urlopen(url, timeout=60)
        except urllib.error.HTTPError as err:
            if err.code < 500:  # the URL is wrong: retrying will not help
                raise CommandFailed("Image download failed",
                                    f"Error downloading image {url}: HTTP {err.code} "
                                    f"{err.reason}") from err
            last = err
            if attempt + 1 < attempts:
                time.sleep(2)
        except (OSError, ValueError) as err:
            last = err
            if attempt + 1 < attempts:
                time.sleep(2)
    raise CommandFailed("Image download failed", f"Error downloading image {url}: {last}")


def _mem_available() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def write_image(url: str, image_id: str, algo: str, value: str, device: str) -> None:
    """Download, verify and write. An image that fits in half the free memory is verified
    before a byte reaches the disk; a larger one is streamed and, on a mismatch, its start
    is erased so that the disk does not boot an unverified image."""
    digest = hashlib.new(algo)
    rsp = _open_image(url)
    with rsp:
        length = int(rsp.headers.get("Content-Length") or 0)
        in_memory = 0 < length < _mem_available() // 2
        if in_memory:
            chunks = []
            while chunk := rsp.read(1024 * 1024):
                digest.update(chunk)
                chunks.append(chunk)
            _verify(digest, value, url, image_id)
            with open(device, "r+b", buffering=0) as disk:
                for chunk in chunks:
                    disk.write(chunk)
                os.fsync(disk.fileno())
            return
        with open(device, "r+b", buffering=0) as disk:
            while chunk := rsp.read(1024 * 1024):
                digest.update(chunk)
                disk.write(chunk)
            os.fsync(disk.fileno())
    try:
        _verify(digest, value, url, image_id)
    except CommandFailed:
        erase_metadata(device)
        raise


def _verify(digest, value: str, url: str, image_id: str) -> None:  # type: ignore[no-untyped-def]
    actual = digest.hexdigest()
    if not hmac.compare_digest(actual, value):
        raise CommandFailed("Image checksum verification failed",
                            f"Image failed to verify against checksum. location: {url}; "
                            f"image ID: {image_id}; image checksum: {value}; verification "
                            f"checksum: {actual}")


def config_drive_bytes(text: str) -> bytes:
    if text.startswith(("http://", "https://")):
        text = _fetch(text).decode()
    try:
        data = base64.b64decode(text, validate=False)
    except ValueError as err:
        raise CommandFailed("Invalid config drive", f"config drive is not base64: {err}") from err
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) > CONFIG_DRIVE_MAX:
        raise CommandFailed("Invalid config drive",
                            f"config drive is {len(data)} bytes, over {CONFIG_DRIVE_MAX}")
    return data


def write_config_drive(device: str, data: bytes) -> str:
    """Add an MBR partition at the end of the disk and write the config-2 ISO into it (as IPA
    does for whole-disk images): returns the partition's device name."""
    size = _size_bytes(device)
    part_sectors = max(-(-len(data) // SECTOR), CONFIG_DRIVE_MAX // SECTOR)
    end = size // SECTOR - 1  # leave the last sector alone (GPT backup header's place)
    start = (end - part_sectors) // 2048 * 2048
    with open(device, "r+b", buffering=0) as disk:
        mbr = bytearray(disk.read(SECTOR))
        if mbr[510:512] != b"\x55\xaa":
            mbr = bytearray(SECTOR)
            mbr[440:444] = os.urandom(4)
            mbr[510:512] = b"\x55\xaa"
        entries = [mbr[446 + 16 * i:462 + 16 * i] for i in range(4)]
        if any(e[4] == 0xEE for e in entries):
            raise CommandFailed("Config drive failed", f"{device} has a GPT partition table; "
                                "this agent writes config drives on MBR disks only")
        used = [struct.unpack_from("<II", e, 8) for e in entries]
        if any(count and first + count > start for first, count in used):
            raise CommandFailed("Config drive failed",
                                f"no room for a config drive after the image on {device}")
        # An isohybrid image's first entry may have type 0 yet cover the image: "free"
        # means no sectors.
        free = [i for i, (e, (_, count)) in enumerate(zip(entries, used, strict=True))
                if e[4] == 0 and count == 0]
        if not free:
            raise CommandFailed("Config drive failed", f"{device} has no free MBR slot")
        slot = free[0]
        entry = bytearray(16)
        entry[1:4] = b"\xfe\xff\xff"  # CHS: use LBA
        entry[4] = 0x83
        entry[5:8] = b"\xfe\xff\xff"
        struct.pack_into("<II", entry, 8, start, part_sectors)
        mbr[446 + 16 * slot:462 + 16 * slot] = entry
        disk.seek(0)
        disk.write(bytes(mbr))
        disk.seek(start * SECTOR)
        disk.write(data)
        os.fsync(disk.fileno())
    _reread(device)
    return f"{device}{slot + 1}"


# --- commands ------------------------------------------------------------------------------------


CLEAN_STEPS = [{"step": "erase_devices_metadata", "interface": "deploy", "priority": 99,
                "reboot_requested": False, "abortable": True, "requires_ramdisk": True}]
HARDWARE_MANAGER_VERSION = {"generic_hardware_manager": "1.2"}


class Agent:
    """Command results of this boot, a lock saying whether one runs, and the token."""

    def __init__(self, params: dict[str, str]) -> None:
        self.params = params
        self.token = params.get("ipa-agent-token", "")
        self.commands: list[dict[str, object]] = []
        self.lock = threading.Lock()
        self.node_uuid = ""

    def busy(self) -> bool:
        return any(c["command_status"] == "RUNNING" for c in self.commands)

    def run(self, name: str, params: dict[str, object]) -> tuple[int, dict[str, object]]:
        extension, _, command = name.partition(".")
        handlers = {
            ("poll", "get_hardware_info"): (self._hardware_info, True),
            ("clean", "get_clean_steps"): (self._clean_steps, True),
            ("clean", "execute_clean_step"): (self._execute_clean_step, False),
            ("standby", "prepare_image"): (self._prepare_image, False),
            ("standby", "power_off"): (lambda p: self._power("poweroff"), True),
            ("standby", "run_image"): (lambda p: self._power("reboot"), True),
        }
        found = handlers.get((extension, command))
        if found is None:
            return 404, {"faultcode": "Client",
                         "faultstring": f"Command not found: {name}"}
        handler, sync = found
        if extension == "standby" and command == "prepare_image":
            problem = _check_image_info(params)
            if problem:
                return 400, {"faultcode": "Client", "faultstring": problem}
        result: dict[str, object] = {"id": str(uuid.uuid4()), "command_name": command,
                                     "command_status": "RUNNING", "command_error": None,
                                     "command_result": None, "command_params": None}
        with self.lock:
            if self.busy():
                return 409, {"faultcode": "Client", "faultstring": "Agent is busy"}
            self.commands.append(result)
        if sync:
            self._finish(result, handler, params)
        else:
            threading.Thread(target=self._finish, args=(result, handler, params),
                             daemon=True).start()
        return 200, result

    def _finish(self, result: dict[str, object], handler, params) -> None:  # type: ignore[no-untyped-def]
        log(f"command {result['command_name']} started")
        try:
            value = handler(params)
            status, error = "SUCCEEDED", None
        except CommandFailed as err:
            value, status = None, "FAILED"
            error = {"type": "CommandExecutionError", "code": 500, "message": err.message,
                     "details": err.details}
        except Exception as err:  # a bug here must still end the command
            value, status = None, "FAILED"
            error = {"type": type(err).__name__, "code": 500, "message": "Command failed",
                     "details": f"{type(err).__name__}: {err}"}
        with self.lock:
            result.update(command_result=value, command_error=error, command_status=status)
        log(f"command {result['command_name']} {status}"
            + (f": {error['details']}" if error else ""))

    def _hardware_info(self, params: dict[str, object]) -> dict[str, object]:
        return inventory(self.params)

    def _clean_steps(self, params: dict[str, object]) -> dict[str, object]:
        return {"clean_steps": {"GenericHardwareManager": CLEAN_STEPS},
                "hardware_manager_version": HARDWARE_MANAGER_VERSION}

    def _execute_clean_step(self, params: dict[str, object]) -> dict[str, object]:
        step = params.get("step")
        name = step.get("step") if isinstance(step, dict) else None
        if name != "erase_devices_metadata":
            raise CommandFailed("Clean step failed", f"Unsupported clean step {name!r}: this "
                                f"agent runs erase_devices_metadata only")
        for disk in disks():
            erase_metadata(str(disk["name"]))
            log(f"erased metadata of {disk['name']}")
        return {"clean_result": None, "clean_step": step}

    def _prepare_image(self, params: dict[str, object]) -> dict[str, object]:
        info = params["image_info"]
        assert isinstance(info, dict)
        url, image_id = str(info["urls"][0]), str(info["id"])
        if str(info.get("disk_format") or "raw") != "raw":
            raise CommandFailed("Invalid image", f"disk_format {info.get('disk_format')!r}: "
                                "this agent writes raw images only (no qemu-img)")
        algo, value = expected_checksum(info, url)
        hints = info.get("root_hint") or info.get("root_device")
        device = root_device(hints if isinstance(hints, dict) else None)
        log(f"writing {url} to {device}")
        write_image(url, image_id, algo, value, device)
        drive = params.get("configdrive")
        if isinstance(drive, str) and drive:
            part = write_config_drive(device, config_drive_bytes(drive))
            log(f"config drive written to {part}")
        return {"result": f"prepare_image: image ({image_id}) written to device {device} "
                          f"root_uuid=None"}

    def _power(self, action: str) -> None:
        def later() -> None:
            time.sleep(1.0)
            os.sync()
            log(f"{action} now")
            subprocess.run([action, "-f"], check=False)
        threading.Thread(target=later, daemon=True).start()


def _check_image_info(params: dict[str, object]) -> str:
    info = params.get("image_info")
    if not isinstance(info, dict):
        return "image_info must be an object"
    urls = info.get("urls")
    if not isinstance(urls, list) or not urls or not isinstance(urls[0], str):
        return "Image is missing the 'urls' field"
    if not isinstance(info.get("id"), str):
        return "Image is missing the 'id' field"
    if not (info.get("checksum") or info.get("os_hash_value")):
        return ("Image checksum is not available, either the 'checksum' field or the "
                "'os_hash_algo' and 'os_hash_value' fields pair must be set")
    return ""


# --- the command API -----------------------------------------------------------------------------


class Handler(http.server.BaseHTTPRequestHandler):
    agent: Agent
    server_version = "metalcubed-agent/" + VERSION

    def log_message(self, format: str, *args: object) -> None:  # no query strings (tokens)
        pass

    def _send(self, status: int, doc: object) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorised(self, query: dict[str, list[str]]) -> bool:
        token = self.agent.token
        given = (query.get("agent_token") or [""])[0]
        if token and not hmac.compare_digest(token.encode(), given.encode()):
            self._send(401, {"faultcode": "Client", "faultstring": "Token invalid."})
            return False
        return True

    def do_GET(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parts.query)
        path = parts.path.rstrip("/")
        if path == "/v1/status":
            self._send(200, {"started_at": STARTED_AT, "version": VERSION})
        elif path == "/v1/commands":
            if self._authorised(query):
                with self.agent.lock:
                    self._send(200, {"commands": list(self.agent.commands)})
        elif path.startswith("/v1/commands/"):
            if self._authorised(query):
                wanted = path.rsplit("/", 1)[1]
                wait = (query.get("wait") or [""])[0] == "true"
                found = self._command(wanted, wait)
                if found is None:
                    self._send(404, {"faultcode": "Client",
                                     "faultstring": f"Command {wanted} not found"})
                else:
                    self._send(200, found)
        else:
            self._send(404, {"faultcode": "Client", "faultstring": "Not found"})

    def _command(self, wanted: str, wait: bool) -> dict[str, object] | None:
        while True:
            with self.agent.lock:
                found = next((c for c in self.agent.commands if c["id"] == wanted), None)
                if found is None or not wait or found["command_status"] != "RUNNING":
                    return dict(found) if found else None
            time.sleep(0.2)

    def do_POST(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parts.query)
        if parts.path.rstrip("/") != "/v1/commands":
            self._send(404, {"faultcode": "Client", "faultstring": "Not found"})
            return
        if not self._authorised(query):
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            self._send(400, {"faultcode": "Client", "faultstring": "Body is not JSON"})
            return
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            self._send(400, {"faultcode": "Client", "faultstring": "Missing command name"})
            return
        params = body.get("params") or {}
        if not isinstance(params, dict):
            self._send(400, {"faultcode": "Client", "faultstring": "params must be an object"})
            return
        status, result = self.agent.run(body["name"], params)
        if status == 200 and (query.get("wait") or [""])[0] == "true":
            result = self._command(str(result["id"]), True) or result
        self._send(status, result)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


# --- the Ironic side -----------------------------------------------------------------------------


def _api(method: str, url: str, doc: object = None) -> tuple[int, object]:
    data = json.dumps(doc).encode() if doc is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", "application/json")
    request.add_header("X-OpenStack-Ironic-API-Version", "1.67")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as rsp:
            return rsp.status, json.loads(rsp.read() or b"null")
    except urllib.error.HTTPError as err:
        try:
            return err.code, json.loads(err.read() or b"null")
        except ValueError:
            return err.code, None


def main() -> int:
    params = load_params()
    env = dhcp_env()
    server_id = env.get("serverid") or env.get("router") or "127.0.0.1"
    api = params.get("ipa-api-url") or f"http://{server_id}:6385"
    api = api.rstrip("/")
    host = params.get("ipa-advertise-host") or env.get("ip") or "127.0.0.1"
    port = int(params.get("ipa-advertise-port") or LISTEN_PORT)
    agent = Agent(params)
    Handler.agent = agent
    httpd = Server(("0.0.0.0", LISTEN_PORT), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    log(f"listening on :{LISTEN_PORT}, callback http://{host}:{port}, api {api}")
    macs = [str(i["mac_address"]) for i in interfaces()]
    node_uuid = ""
    if params.get("ipa-inspection-collectors"):
        inspect_url = params.get("ipa-inspection-callback-url") or api + "/v1/continue_inspection"
        try:
            status, doc = _api("POST", inspect_url, {"inventory": inventory(params),
                                                     "error": None})
            if status < 300 and isinstance(doc, dict):
                node_uuid = str(doc.get("uuid") or "")
            log(f"inspection data sent: HTTP {status}")
        except OSError as err:
            log(f"inspection data not sent: {err}")
    delay = 1.0
    while True:
        query = {"addresses": ",".join(macs)}
        if node_uuid:
            query["node_uuid"] = node_uuid
        try:
            status, doc = _api("GET", f"{api}/v1/lookup?{urllib.parse.urlencode(query)}")
        except OSError as err:
            status, doc = 0, str(err)
        if status == 200 and isinstance(doc, dict) and isinstance(doc.get("node"), dict):
            break
        log(f"lookup: {status or doc}; retrying in {delay:.0f} s")
        time.sleep(delay)
        delay = min(delay * 1.5, 10.0)
    node, config = doc["node"], doc.get("config") or {}
    agent.node_uuid = str(node.get("uuid"))
    given = str(config.get("agent_token") or "")
    if given and given != "******":
        agent.token = given
    elif not agent.token:
        log("lookup hid the token and none was pre-generated: commands are refused")
    timeout = float(config.get("heartbeat_timeout") or 300)
    log(f"node {agent.node_uuid}; heartbeating every {0.3 * timeout:.0f}-{0.6 * timeout:.0f} s")
    while True:
        try:
            status, doc = _api("POST", f"{api}/v1/heartbeat/{agent.node_uuid}", {
                "callback_url": f"http://{host}:{port}", "agent_token": agent.token,
                "agent_version": VERSION})
        except OSError as err:
            status, doc = 0, str(err)
        if status != 202:
            log(f"heartbeat: {status or doc}")
            time.sleep(5)
            continue
        time.sleep(timeout * random.uniform(0.3, 0.6))


if __name__ == "__main__":
    sys.exit(main())
