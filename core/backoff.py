"""Upstream's failure backoff (bmo.md section 3), computed from status.errorCount.

Kept in core so the fleet model and a cluster wait exactly as long after the same failure:
the window doubles per error, from 1-2 min after the first up to 4h16m-8h32m from the ninth.
"""

import random

MAX_BACKOFF_COUNT = 9
"""Error counts above this do not lengthen the wait further."""

RETRY_COUNT = 3
"""During deletion, deprovisioning or powering off gives up once errorCount exceeds this."""


def backoff_window_s(error_count: int) -> tuple[float, float]:
    """The (exclusive low, inclusive high) bounds of the wait after `error_count` errors."""
    n = min(max(error_count, 0), MAX_BACKOFF_COUNT)
    base_s = (2.0**n) * 60.0
    return base_s / 2.0, base_s


def calculate_backoff_s(error_count: int, rng: random.Random) -> float:
    """Uniform in (base/2, base], base = 2^min(errorCount, 9) minutes."""
    low, high = backoff_window_s(error_count)
    return high - rng.random() * (high - low)
