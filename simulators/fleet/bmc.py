"""A simulated BMC in the fleet model: latency billed to the pass, a session cap, and faults.

One `Bmc` serves one or more machines (a chassis manager serves several, and then they share
its session cap). What it answers is decided by `hostmodel.Faults.draw`, the fault model the
Redfish and IPMI emulators and the in-process Sim BMCs use too: the scenario's `faults.bmc`
become a `Faults` per BMC (500 rate, hang rate, 409 on power and boot writes inside the window
after a power off, the session cap), with the profile's latency as its latency.

While the BMC reboots (`reboot`: after a BMC firmware update, or a fault during an update) every
request hangs until the client's timeout.

A request is answered at once, in the zero simulated time of a reconcile pass, and its drawn
latency (or the client's timeout, for a hung request) is charged to the pass (`cost.Meter`,
DESIGN rule 4). It holds a session of its BMC from when the pass's earlier requests are
answered until its own latency has passed, so the session cap (503) bites when several
workers use a shared BMC at once, not between the requests of one pass.
"""

import random

import simpy

from metalcubed.simulators import hostmodel
from metalcubed.simulators.fleet import cost
from metalcubed.simulators.fleet.machine import Machine

Reply = hostmodel.Reply

WRITES = frozenset({"power_on", "power_off", "reboot", "set_boot_device", "set_boot_mode"})
"""Power and boot writes: what a BMC settling after a power off refuses with 409."""


class BmcStats:
    """Fleet-wide BMC traffic: requests by kind, replies by code, peak sessions on one BMC."""

    __slots__ = ("peak_sessions", "per_minute", "replies", "requests")

    def __init__(self) -> None:
        self.requests: dict[str, int] = {}
        self.replies: dict[str, int] = {}
        self.peak_sessions = 0
        self.per_minute: dict[int, int] = {}
        """Requests per simulated minute (for the request-rate figure)."""


class Bmc:
    """One simulated BMC endpoint (see the module docstring)."""

    __slots__ = ("_env", "_rng", "_stats", "_timeout_s", "_windows", "address", "down_from",
                 "down_until", "faults", "reboots")

    def __init__(
        self,
        env: simpy.Environment,
        *,
        address: str,
        faults: hostmodel.Faults,
        timeout_s: float,
        rng: random.Random,
        stats: BmcStats,
    ) -> None:
        self._env = env
        self.faults = faults
        self._timeout_s = timeout_s
        self._rng = rng
        self._stats = stats
        self.address = address
        self._windows: list[tuple[float, float]] = []
        """(start, end) of the requests in flight or scheduled (simulated seconds)."""
        self.down_from = 0.0
        self.down_until = 0.0
        """The BMC reboots between these (simulated seconds): requests hang until the client
        times out, as they do against a real BMC that is restarting."""
        self.reboots = 0

    def reboot(self, at_s: float, duration_s: float) -> None:
        """The BMC restarts at `at_s` (after a BMC firmware update, or a fault during one) and
        answers nothing for `duration_s`."""
        self.reboots += 1
        if self.down_until <= self._env.now:
            self.down_from, self.down_until = at_s, at_s + duration_s
        else:  # one outage known already (shared BMC): the span covering both
            self.down_from = min(self.down_from, at_s)
            self.down_until = max(self.down_until, at_s + duration_s)

    def request(self, kind: str, machine: Machine, meter: cost.Meter) -> Reply:
        """One request about `machine`; charges its round trip to `meter`."""
        now = self._env.now
        stats = self._stats
        requests = stats.requests
        requests[kind] = requests.get(kind, 0) + 1
        minute = int(now // 60.0)
        per_minute = stats.per_minute
        per_minute[minute] = per_minute.get(minute, 0) + 1
        faults = self.faults
        start = now + meter.bill_s
        windows = self._windows
        in_flight = 0
        if windows:
            windows = self._windows = [w for w in windows if w[1] > now]
            for begin, end in windows:
                if begin <= start < end:
                    in_flight += 1
        write = kind in WRITES
        since_off = (
            now - machine.power_changed_at if write and not machine.powered else None
        )
        rng = self._rng
        if self.down_from <= start < self.down_until:
            reply = Reply.TIMEOUT
        else:
            reply = faults.draw(rng, in_flight=in_flight, write=write,
                                since_power_off_s=since_off)
        if reply == Reply.UNAVAILABLE:
            meter.charge(faults.latency(rng) * 0.2)  # refused at once
        else:
            took = self._timeout_s if reply == Reply.TIMEOUT else faults.latency(rng)
            windows.append((start, start + took))
            if in_flight + 1 > stats.peak_sessions:
                stats.peak_sessions = in_flight + 1
            meter.charge(took)
        name = reply.name
        replies = stats.replies
        replies[name] = replies.get(name, 0) + 1
        return reply
