"""Checks the subcommands share, so that bad input is refused up front and by name.

- Exit codes mean the same everywhere: 0 ok, 1 a result (an SLO missed, a manifest invalid),
  2 bad input (a flag, a variable, a file), reported before any work starts.
- `read_input` reads a file (or stdin) of at most `yamlinput.MAX_BYTES` as UTF-8, so
  `validate /dev/zero` or a Latin-1 scenario is one line naming the file, not a traceback.
- `output_file` / `output_dir` check where a report will go before a run of minutes: a path
  that is a folder, a folder that is missing or read-only, a device that is full.
- `number` / `whole` are argparse types with bounds: NaN, infinities and out-of-range values
  are refused with the flag's name (argparse prefixes it).
"""

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

from metalcubed.core import yamlinput

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class BadInput(Exception):
    """Input we refuse; the message names the flag, variable or file."""


def read_input(path: str) -> str:
    """The text of `path` ('-' for stdin), bounded and decoded; BadInput otherwise."""
    limit = yamlinput.MAX_BYTES
    try:
        if path == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with open(path, "rb") as handle:
                data = handle.read(limit + 1)
    except OSError as err:
        raise BadInput(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        return yamlinput.decode(data, path)
    except ValueError as err:
        raise BadInput(str(err)) from None


def _writable_folder(flag: str, folder: Path, what: str) -> None:
    if not folder.exists():
        raise BadInput(f"{flag}: the folder {folder} of {what} does not exist")
    if not folder.is_dir():
        raise BadInput(f"{flag}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BadInput(f"{flag}: the folder {folder} is not writable")
    try:
        free = os.statvfs(folder).f_bavail
    except OSError:
        return
    if free == 0:
        raise BadInput(f"{flag}: no space left on the device of {folder}")


def output_file(flag: str, path: str) -> None:
    """A file we will write at the end of a run ('-' is stdout)."""
    if path == "-":
        return
    target = Path(path)
    if target.is_dir():
        raise BadInput(f"{flag}: {path} is a folder, not a file")
    if target.exists() and not os.access(target, os.W_OK):
        raise BadInput(f"{flag}: {path} is not writable")
    _writable_folder(flag, target.parent if str(target.parent) else Path("."), path)


def output_dir(flag: str, path: str | Path) -> None:
    """A folder we will write into, created with its parents if missing: its nearest existing
    ancestor must be a writable folder."""
    folder = Path(path).absolute()
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if existing != folder and not existing.is_dir():
        raise BadInput(f"{flag}: cannot create {path}: {existing} is not a folder")
    _writable_folder(flag, existing, str(path))


def number(*, minimum: float | None = None, maximum: float | None = None,
           above: float | None = None) -> Callable[[str], float]:
    """An argparse type: a finite float within bounds (`above` is exclusive)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {text}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be more than {above:g}, got {text}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum:g}, got {text}")
        return value

    return parse


def whole(*, minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse type: an integer in [minimum, maximum] (no 5,000-digit surprises)."""

    def parse(text: str) -> int:
        stripped = text.strip().lstrip("+-")
        if not (stripped.isascii() and stripped.isdigit()) or len(stripped) > 30:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:40]!r}")
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:,}, got {value:,}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum:,}, got {value:,}")
        return value

    return parse
