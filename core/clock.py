"""Clocks that core/ and the tests can own: time that moves only when told to.

core/ never reads the wall clock (DESIGN rule 1); it gets a `ports.Clock`. These two are the
deterministic implementations: `FixedClock` for a test that needs one instant, `ManualClock`
for code that waits (workqueue delays, backoff, timeouts) and a test or driver that moves time
forward explicitly. The fleet model brings its own clock over simpy's `env.now`; the wall clock
lives in controllers/memory.py (`WallClock`), outside core.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
"""The default start of test time: a fixed, timezone-aware UTC instant."""


@dataclass(frozen=True, slots=True)
class FixedClock:
    """A clock stopped at `at` (timezone-aware UTC)."""

    at: datetime = EPOCH

    def now(self) -> datetime:
        return self.at


class ManualClock:
    """A clock that moves only through `advance` and `set`; starts at `start` (UTC)."""

    __slots__ = ("_now",)

    def __init__(self, start: datetime = EPOCH) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        """Move forward by `seconds` (>= 0) and return the new time."""
        if seconds < 0:
            raise ValueError(f"time cannot go backwards (advance by {seconds})")
        self._now += timedelta(seconds=seconds)
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to `when`, which must not be earlier than now."""
        if when < self._now:
            raise ValueError(f"time cannot go backwards ({when} < {self._now})")
        self._now = when
