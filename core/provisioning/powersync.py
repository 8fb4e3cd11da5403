"""The last power state read from each host's BMC, reused until the sync interval has passed.

Upstream BMO asks Ironic for a host's power state on every steady-state pass, and Ironic
answers from its node record, which its conductor refreshes from the BMC every
`sync_power_state_interval` (60 s) and after each power action; hosts in a wait state are not
synced at all. The engine keeps the same bound on BMC traffic: `Ctx.power_synced()` answers
from here while the value is younger than the interval, and reads the BMC (then records the
answer) only when it is older. Reads that must see the hardware now (registration proving
access, the race-free ramdisk boot, a power action's own polling) read the BMC and refresh
the record; every power action the engine starts forgets it, so a transition is never
answered from a stale value.

Only settled states (on, off) are kept: a host seen powering on or off is read again. The
record is a cache: a restarted engine starts without it and pays one BMC read per host.
"""

from dataclasses import dataclass
from datetime import datetime

from metalcubed.core import bmc

_SETTLED = frozenset({bmc.PowerState.ON, bmc.PowerState.OFF})


@dataclass(frozen=True, slots=True)
class Synced:
    state: bmc.PowerState
    at: datetime


class PowerSync:
    """Last settled power state per node id; not thread-safe (one pass per host at a time).

    After the engine asks for a power change (`expect`), a read that still shows the old state
    is not kept (some BMCs report a host on for a moment after a force off), so the host is
    read again until it shows the state asked for, as Ironic polls a power action until it is
    done; after `interval_s` whatever the BMC says is kept.
    """

    __slots__ = ("_expected", "_interval_s", "_last")

    def __init__(self, *, interval_s: float) -> None:
        self._interval_s = interval_s
        self._last: dict[str, Synced] = {}
        self._expected: dict[str, Synced] = {}
        """Node id -> the power state the engine asked for, and when."""

    def fresh(self, node_id: str, now: datetime) -> bmc.PowerState | None:
        """The recorded state when read less than the interval ago, else None."""
        synced = self._last.get(node_id)
        if synced is None or (now - synced.at).total_seconds() >= self._interval_s:
            return None
        return synced.state

    def last(self, node_id: str) -> bmc.PowerState | None:
        """The recorded state, however old (None when unknown or changing)."""
        synced = self._last.get(node_id)
        return None if synced is None else synced.state

    def record(self, node_id: str, state: bmc.PowerState, now: datetime) -> None:
        expected = self._expected.get(node_id)
        if expected is not None:
            if state != expected.state and \
                    (now - expected.at).total_seconds() < self._interval_s:
                self._last.pop(node_id, None)  # not there yet: read again next time
                return
            del self._expected[node_id]
        if state in _SETTLED:
            self._last[node_id] = Synced(state, now)
        else:
            self._last.pop(node_id, None)

    def expect(self, node_id: str, state: bmc.PowerState, now: datetime) -> None:
        """The engine asked for `state`: forget the last read until the BMC shows it."""
        self._last.pop(node_id, None)
        self._expected[node_id] = Synced(state, now)

    def forget(self, node_id: str) -> None:
        self._last.pop(node_id, None)
        self._expected.pop(node_id, None)
