"""ISO 9660 images the manager hands to hosts, built with pycdlib (no external tools).

- the config drive (`config_drive`, `encode_config_drive`): volume label `config-2`, Rock
  Ridge and Joliet names, `openstack/latest/meta_data.json`, `user_data`,
  `network_data.json`, as Ironic builds it; IPA takes it as the `configdrive` parameter of
  `standby.prepare_image`, gzip-compressed and base64-encoded, and writes it to a partition
  of the root disk;
- the per-host virtual-media deploy ISO (`deploy_iso`): from the deploy kernel and ramdisk,
  with the agent's parameters (`ipa-api-url`, `ipa-agent-token`, `boot_method=vmedia`, ...)
  on the kernel command line of its boot configuration (GRUB and ISOLINUX files, as Ironic
  writes them); given an EFI system partition image (Ironic's bootloader image) it is the
  UEFI El Torito boot image, without one the ISO is not bootable (no legacy BIOS boot); a
  host with a PreprovisioningImage's network data also gets it as `metal3/nmstate.yaml`;
- the parameters image (`parameters_image`): labelled `ir-vfd-dev` with `parameters.txt`
  (`key=value` separated by white space), what IPA reads when its kernel command line says
  `boot_method=vmedia` and the ISO is a prebuilt one (DEPLOY_ISO_URL) whose command line
  cannot carry per-host values.

`read_agent_params` is the other side (the agent emulator reads its API URL and token from the
ISO it boots). Every failure is `IsoError` naming the image.
"""

import base64
import contextlib
import gzip
import io
import json
import pathlib
import shlex
from collections.abc import Mapping
from typing import IO, BinaryIO, cast

import pycdlib
import pycdlib.pycdlibexception

from metalcubed.core import agent, outcome

CONFIG_DRIVE_LABEL = "config-2"
PARAMETERS_LABEL = "ir-vfd-dev"
PARAMETERS_FILE = "parameters.txt"
KERNEL = "vmlinuz"
RAMDISK = "initrd"
GRUB_CFG = "/EFI/BOOT/grub.cfg"
ISOLINUX_CFG = "/isolinux/isolinux.cfg"
ESP_IMAGE = "boot/efiboot.img"
NMSTATE_FILE = "metal3/nmstate.yaml"
"""The ramdisk's network configuration (the PreprovisioningImage's network data Secret, key
`nmstate`), in a per-host deploy ISO built for a host that names one."""


class IsoError(outcome.MetalcubedError):
    """An image could not be built or read."""


def _new(label: str) -> pycdlib.PyCdlib:
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident=label, rock_ridge="1.09", joliet=3)
    return iso


def _iso_name(name: str, index: int) -> str:
    """A unique ISO 9660 level-3 name (the real name is in Rock Ridge and Joliet)."""
    stem, _, ext = name.upper().replace("-", "_").replace(".", "_", name.count(".") - 1
                                                               ).partition(".")
    clean = "".join(c if c.isalnum() or c == "_" else "_" for c in stem)[:24] or "F"
    return f"{clean}{index}.{ext[:3] or 'BIN'};1"


def _build(label: str, files: Mapping[str, bytes | pathlib.Path],
           out: IO[bytes] | None = None, *, efi_boot: str = "") -> bytes:
    """An ISO with `files` (paths like "openstack/latest/meta_data.json"; contents as bytes, or
    files on disk, read while the ISO is written). Written to `out` when given (then b"" is
    returned: a deploy ISO holds the whole ramdisk and is never kept in memory). `efi_boot`
    names the file that is the UEFI El Torito boot image (an EFI system partition image)."""
    iso = _new(label)
    iso_paths: dict[str, str] = {}
    dirs: dict[str, str] = {"": ""}
    opened: list[BinaryIO] = []
    target = cast(BinaryIO, out) if out is not None else io.BytesIO()
    try:
        for index, (path, data) in enumerate(sorted(files.items())):
            parts = path.strip("/").split("/")
            parent = ""
            for depth, name in enumerate(parts[:-1]):
                key = "/".join(parts[: depth + 1])
                if key not in dirs:
                    iso_dir = f"{dirs[parent]}/D{len(dirs)}"
                    iso.add_directory(iso_dir, rr_name=name, joliet_path=f"/{key}")
                    dirs[key] = iso_dir
                parent = key
            if isinstance(data, pathlib.Path):
                source: BinaryIO = data.open("rb")
                opened.append(source)
                size = data.stat().st_size
            else:
                source, size = io.BytesIO(data), len(data)
            iso_path = f"{dirs[parent]}/{_iso_name(parts[-1], index)}"
            iso_paths[path] = iso_path
            iso.add_fp(source, size, iso_path, rr_name=parts[-1],
                       joliet_path=f"/{path.strip('/')}")
        if efi_boot:
            iso.add_eltorito(iso_paths[efi_boot], bootcatfile="/BOOT.CAT;1",
                             platform_id=0xEF, efi=True, media_name="noemul")
        iso.write_fp(target)
    except (pycdlib.pycdlibexception.PyCdlibException, OSError) as err:
        raise IsoError(f"cannot build the {label} image: {err}") from err
    finally:
        iso.close()
        for source in opened:
            source.close()
    return target.getvalue() if isinstance(target, io.BytesIO) and out is None else b""


# --- config drive ---------------------------------------------------------------------------------


def config_drive(drive: agent.ConfigDrive) -> bytes:
    """The config-2 ISO of `drive` (meta data as JSON; user and network data as given)."""
    files: dict[str, bytes] = {
        "openstack/latest/meta_data.json": json.dumps(dict(drive.meta_data),
                                                      sort_keys=True).encode(),
    }
    if drive.user_data:
        files["openstack/latest/user_data"] = drive.user_data.encode()
    if drive.network_data:
        files["openstack/latest/network_data.json"] = _network_json(drive.network_data)
    return _build(CONFIG_DRIVE_LABEL, files)


def _network_json(text: str) -> bytes:
    """network_data.json: the Secret holds JSON or YAML (BMO accepts both)."""
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise IsoError(f"networkData is neither JSON nor YAML: {err}") from err
    return json.dumps(doc).encode()


def encode_config_drive(iso: bytes) -> str:
    """What IPA's `configdrive` parameter carries: gzip, then base64."""
    return base64.b64encode(gzip.compress(iso, mtime=0)).decode()


def decode_config_drive(text: str) -> bytes:
    try:
        return gzip.decompress(base64.b64decode(text, validate=True))
    except (ValueError, OSError) as err:
        raise IsoError(f"configdrive is not gzip+base64: {err}") from err


# --- reading --------------------------------------------------------------------------------------


def read_files(data: bytes, *, what: str = "image") -> tuple[str, dict[str, bytes]]:
    """(volume label, {Rock Ridge path: content}) of an ISO built here (or any RR ISO)."""
    iso = pycdlib.PyCdlib()
    try:
        iso.open_fp(io.BytesIO(data))
        label = iso.pvd.volume_identifier.decode().strip()
        files: dict[str, bytes] = {}
        facade = iso.get_rock_ridge_facade() if iso.has_rock_ridge() else None
        if facade is None:
            raise IsoError(f"{what} has no Rock Ridge names")
        for root, _dirs, names in iso.walk(rr_path="/"):
            for name in names:
                path = f"{root.rstrip('/')}/{name}"
                out = io.BytesIO()
                iso.get_file_from_iso_fp(out, rr_path=path)
                files[path.lstrip("/")] = out.getvalue()
    except pycdlib.pycdlibexception.PyCdlibException as err:
        raise IsoError(f"{what} is not a readable ISO 9660 image: {err}") from err
    finally:
        with contextlib.suppress(pycdlib.pycdlibexception.PyCdlibException):
            iso.close()
    return label, files


# --- deploy ISO and parameters --------------------------------------------------------------------


def kernel_params(params: Mapping[str, str]) -> str:
    """`key=value ...` (values must not hold white space: IPA splits on it)."""
    for key, value in params.items():
        if not key or any(c.isspace() for c in key + value) or "=" in key:
            raise IsoError(f"agent parameter {key!r} has white space or '=' in its name")
    return " ".join(f"{k}={v}" if v else k for k, v in params.items())


def deploy_iso(*, kernel: bytes | pathlib.Path, ramdisk: bytes | pathlib.Path,
               params: Mapping[str, str], label: str = "VMEDIA_BOOT_ISO",
               esp: bytes | pathlib.Path | None = None, out: IO[bytes] | None = None,
               extra_files: Mapping[str, bytes] | None = None) -> bytes:
    """A deploy ISO with the kernel, ramdisk and boot configs carrying `params` (written to
    `out` when given, see `_build`). With `esp` (an EFI system partition image holding a
    GRUB that reads /EFI/BOOT/grub.cfg from the CD, as Ironic's bootloader image does) the
    ISO boots on UEFI: the ESP is its El Torito boot image."""
    line = kernel_params(params)
    grub = (f"set default=0\nset timeout=5\nmenuentry \"boot_partition\" {{\n"
            f"  linux /{KERNEL} {line}\n  initrd /{RAMDISK}\n}}\n")
    isolinux = (f"default boot\nlabel boot\nkernel /{KERNEL}\n"
                f"append initrd=/{RAMDISK} text {line} --\n")
    files: dict[str, bytes | pathlib.Path] = {
        KERNEL: kernel, RAMDISK: ramdisk,
        GRUB_CFG.lstrip("/"): grub.encode(), ISOLINUX_CFG.lstrip("/"): isolinux.encode(),
    }
    if esp is not None:
        files[ESP_IMAGE] = esp
    files.update(extra_files or {})  # e.g. NMSTATE_FILE
    return _build(label, files, out, efi_boot=ESP_IMAGE if esp is not None else "")


def parameters_image(params: Mapping[str, str]) -> bytes:
    """The `ir-vfd-dev` image with parameters.txt (for a prebuilt deploy ISO)."""
    return _build(PARAMETERS_LABEL, {PARAMETERS_FILE: (kernel_params(params) + "\n").encode()})


def parse_params(text: str) -> dict[str, str]:
    """`key=value` words as IPA reads /proc/cmdline and parameters.txt (others ignored)."""
    params: dict[str, str] = {}
    for word in text.split():
        if "=" in word:
            key, value = word.split("=", 1)
            params[key] = value
    return params


def read_agent_params(data: bytes) -> dict[str, str]:
    """The agent parameters an image carries: parameters.txt of an ir-vfd-dev image, or the
    kernel command line of a deploy ISO's GRUB config."""
    label, files = read_files(data, what="boot image")
    if label == PARAMETERS_LABEL and PARAMETERS_FILE in files:
        return parse_params(files[PARAMETERS_FILE].decode(errors="replace"))
    grub = files.get(GRUB_CFG.lstrip("/"))
    if grub is None:
        raise IsoError(f"boot image {label!r} has neither {PARAMETERS_FILE} nor {GRUB_CFG}")
    for line in grub.decode(errors="replace").splitlines():
        words = shlex.split(line, posix=False)
        if words and words[0] == "linux":
            return parse_params(" ".join(words[2:]))
    raise IsoError(f"boot image {label!r}: {GRUB_CFG} has no linux line")
