"""Emulated firmware images: what a firmware update URL serves, and the version inside it.

A real BMC fetches the image at SimpleUpdate's ImageURI, checks it is an image for the
component, and flashes the version it carries. The emulated BMCs do the same with a small text
image: a first line `METALCUBED-FIRMWARE <component> <version>`, then any padding. `make` builds
one (tests and the lab serve it over HTTP), `parse` reads it back and refuses anything else
with a message naming what is wrong (the BMC's task fails with it).

Models that fetch nothing (the in-process Sim BMCs, the fleet model) use `version_from_url`,
which reads the version from a file name written by `file_name` (`bios-2.3.0.fwimg`), so a
scenario's URLs mean the same version everywhere.
"""

import re

MAGIC = "METALCUBED-FIRMWARE"
MAX_HEADER_BYTES = 256
_NAME = re.compile(r"(?:^|/)(?P<component>[a-z][a-z0-9:._]*)-(?P<version>[0-9][0-9A-Za-z._+-]*)"
                   r"\.fwimg$")


class ImageError(ValueError):
    """Not a usable firmware image (the message says why)."""


def make(component: str, version: str, *, padding: int = 0) -> bytes:
    """An image of `component` at `version`, padded with `padding` bytes (to model its size)."""
    return f"{MAGIC} {component} {version}\n".encode() + b"\0" * padding


def file_name(component: str, version: str) -> str:
    """The conventional file name of that image, e.g. "bios-2.3.0.fwimg"."""
    return f"{component}-{version}.fwimg"


def parse(data: bytes, *, component: str) -> str:
    """The version the image carries for `component`; ImageError when it has none."""
    head = data[:MAX_HEADER_BYTES].split(b"\n", 1)[0]
    try:
        magic, image_component, version = head.decode("ascii").split(" ")
    except (UnicodeDecodeError, ValueError) as err:
        raise ImageError("not a firmware image (unrecognised header)") from err
    if magic != MAGIC or not version:
        raise ImageError("not a firmware image (unrecognised header)")
    if image_component != component:
        raise ImageError(f"the image is for {image_component}, not {component}")
    return version


def version_from_url(url: str, *, component: str) -> str:
    """The version a URL named by `file_name` holds; ImageError naming the URL otherwise."""
    path = url.split("?", 1)[0].split("#", 1)[0]
    match = _NAME.search(path)
    if match is None:
        raise ImageError(f"{url} does not name a firmware image (<component>-<version>.fwimg)")
    if match["component"] != component:
        raise ImageError(f"{url} is an image for {match['component']}, not {component}")
    return match["version"]
