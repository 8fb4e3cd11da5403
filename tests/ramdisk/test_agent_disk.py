"""The agent's disk work on a file standing in for the disk (fast; the VM test does it on a
real SATA disk): checksum before or after writing, the config drive partition, metadata
erasure."""

import hashlib
import http.server
import importlib.util
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from metalcubed.controllers import bootiso
from metalcubed.core import agent
from metalcubed.ramdisk import build

MIB = 1024 * 1024
IMAGE = bytes(range(256)) * 4096 + b"\x55\xaa"  # 1 MiB + 2 bytes of non-zero data


@pytest.fixture(scope="module")
def module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ramdisk_agent", build.FILES / "agent.py")
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


class _Images(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/missing.img":
            self.send_error(404)
            return
        self.send_response(200)
        if self.path == "/sized.img":  # with a length: verified in memory first
            self.send_header("Content-Length", str(len(IMAGE)))
            self.end_headers()
        else:  # no length: streamed onto the disk, checked at the end
            self.send_header("Connection", "close")
            self.end_headers()
        self.wfile.write(IMAGE)


@pytest.fixture(scope="module")
def images() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    path = tmp_path / "disk"
    path.write_bytes(b"\x01" * (72 * MIB))
    return path


@pytest.mark.parametrize("name", ["sized.img", "streamed.img"])
def test_a_good_image_is_written(module: ModuleType, images: str, disk: Path,
                                 name: str) -> None:
    digest = hashlib.sha256(IMAGE).hexdigest()
    module.write_image(f"{images}/{name}", "i", "sha256", digest, str(disk))
    assert disk.read_bytes()[:len(IMAGE)] == IMAGE


def test_a_bad_image_that_fits_in_memory_never_reaches_the_disk(
        module: ModuleType, images: str, disk: Path) -> None:
    with pytest.raises(module.CommandFailed, match="Image failed to verify against checksum"):
        module.write_image(f"{images}/sized.img", "i", "sha256", "0" * 64, str(disk))
    assert disk.read_bytes() == b"\x01" * (72 * MIB)


def test_a_bad_streamed_image_is_erased(module: ModuleType, images: str, disk: Path) -> None:
    with pytest.raises(module.CommandFailed) as failed:
        module.write_image(f"{images}/streamed.img", "i", "sha256", "0" * 64, str(disk))
    assert f"verification checksum: {hashlib.sha256(IMAGE).hexdigest()}" in failed.value.details
    data = disk.read_bytes()
    assert data[:MIB] == bytes(MIB) and data[-MIB:] == bytes(MIB)


def test_the_config_drive_gets_its_own_partition_at_the_end(module: ModuleType,
                                                            disk: Path) -> None:
    image = bytearray(512)
    image[446:462] = bytes([0x80, 0, 0, 0, 0x17, 0, 0, 0]) + struct.pack("<II", 0, 2048)
    image[510:] = b"\x55\xaa"
    with disk.open("r+b") as f:
        f.write(image)
    iso = bootiso.config_drive(agent.ConfigDrive(meta_data={"local-hostname": "h0"}))
    encoded = bootiso.encode_config_drive(iso)
    part = module.write_config_drive(str(disk), module.config_drive_bytes(encoded))
    assert part == f"{disk}2"
    mbr = disk.read_bytes()[:512]
    assert mbr[446:462] == bytes(image[446:462])  # the image's own partition is kept
    kind, (start, count) = mbr[462 + 4], struct.unpack_from("<II", mbr, 462 + 8)
    assert kind == 0x83 and count == 64 * MIB // 512 and start % 2048 == 0
    assert (start + count) * 512 <= 72 * MIB
    assert disk.read_bytes()[start * 512:start * 512 + len(iso)] == iso


def test_a_gpt_disk_is_refused_for_the_config_drive(module: ModuleType, disk: Path) -> None:
    mbr = bytearray(512)
    mbr[446 + 4] = 0xEE
    mbr[510:] = b"\x55\xaa"
    with disk.open("r+b") as f:
        f.write(mbr)
    with pytest.raises(module.CommandFailed, match="GPT partition table"):
        module.write_config_drive(str(disk), b"x" * 4096)


def test_erasing_metadata_zeroes_both_ends(module: ModuleType, disk: Path) -> None:
    module.erase_metadata(str(disk))
    data = disk.read_bytes()
    assert data[:MIB] == bytes(MIB) and data[-MIB:] == bytes(MIB)
    assert data[MIB:-MIB] == b"\x01" * (70 * MIB)


def test_a_missing_image_fails_naming_its_url(module: ModuleType, images: str,
                                              disk: Path) -> None:
    with pytest.raises(module.CommandFailed, match=r"Error downloading image .*/missing\.img: "
                                                   r"HTTP 404"):
        module.write_image(f"{images}/missing.img", "i", "sha256", "0" * 64, str(disk))
    assert disk.read_bytes() == b"\x01" * (72 * MIB)
