"""Quantities as scenario files write them: durations (`90s`, `1h30m`) and sizes (`2.5GiB`).

A scenario reads better with units than with raw seconds or bytes, so the scenario parser
accepts both: a bare number is seconds (or bytes), a string carries its unit. Parsing is strict:
anything else is a `ValueError` whose message the scenario parser puts behind a field name.
"""

import re

_DURATION_UNITS_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")

_SIZE_UNITS = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)")


def parse_duration_s(value: object) -> float:
    """Seconds from a number (seconds) or a string such as `500ms`, `90s`, `1h30m`, `2.5m`.

    Raises ValueError for negative values or strings that are not a sequence of <number><unit>
    parts, TypeError for anything that is neither a number nor a string (booleans included).
    """
    if isinstance(value, bool):
        raise TypeError(f"expected a duration, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("-"):
            raise ValueError(f"duration must not be negative, got {value!r}")
        pos = 0
        seconds = 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _DURATION_UNITS_S[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise ValueError(
                f"expected a duration such as 30s, 5m, 1h30m or 500ms, got {value!r}"
            )
    else:
        raise TypeError(f"expected a duration, got {type(value).__name__} {value!r}")
    if seconds < 0:
        raise ValueError(f"duration must not be negative, got {value!r}")
    return seconds


def parse_size_bytes(value: object) -> int:
    """Bytes from a number (bytes) or a string such as `800MB`, `2.5GiB`, `1TB`."""
    if isinstance(value, bool):
        raise TypeError(f"expected a size, got {value!r}")
    if isinstance(value, int | float):
        size = float(value)
    elif isinstance(value, str):
        match = _SIZE.fullmatch(value.strip())
        if match is None:
            raise ValueError(f"expected a size such as 800MB or 2.5GiB, got {value!r}")
        size = float(match.group(1)) * _SIZE_UNITS[match.group(2)]
    else:
        raise TypeError(f"expected a size, got {type(value).__name__} {value!r}")
    if size <= 0:
        raise ValueError(f"size must be positive, got {value!r}")
    return int(size)


def format_duration(seconds: float) -> str:
    """A short human form: `850ms`, `42.0s`, `7m12s`, `3h05m`."""
    if seconds < 1.0:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60.0:
        return f"{seconds:.1f}s"
    if seconds < 3600.0:
        minutes, secs = divmod(round(seconds), 60)
        return f"{minutes}m{secs:02d}s"
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m"
