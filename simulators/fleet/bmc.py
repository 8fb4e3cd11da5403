"""A simulated BMC endpoint: latency, a session cap, and the ways real BMCs misbehave.

One `Bmc` serves one or more machines (a chassis manager serves several, and then they share
its session cap). A request holds a session for its whole round trip; past the cap the BMC
answers 503 at once (iDRAC's RAC0218, peers.md 4). Faults come from the scenario: a fraction
of requests answer 500, a fraction hang until the client's timeout (holding their session, so
hung requests crowd out others), and a power-on inside the window after a power-off gets 409
(iDRAC10 does this for up to ~60 s).

`request` is a simpy generator (`reply = yield from bmc.request(...)`) run inside the caller's
process: one scheduled timeout per request, no process of its own.
"""

import random
from collections import Counter
from collections.abc import Generator
from enum import IntEnum
from typing import Any

import simpy

from metalcubed.simulators.fleet import distribution as dist
from metalcubed.simulators.fleet import scenario
from metalcubed.simulators.fleet.machine import Machine


class Reply(IntEnum):
    OK = 200
    CONFLICT = 409
    SERVER_ERROR = 500
    UNAVAILABLE = 503
    TIMEOUT = 0
    """No answer within the client's timeout."""

    def describe(self) -> str:
        return {
            Reply.OK: "HTTP 200 OK",
            Reply.CONFLICT: "HTTP 409 Conflict",
            Reply.SERVER_ERROR: "HTTP 500 Internal Server Error",
            Reply.UNAVAILABLE: "HTTP 503 Service Unavailable: maximum number of sessions reached",
            Reply.TIMEOUT: "timed out waiting for a response",
        }[self]


class BmcStats:
    """Fleet-wide BMC traffic: requests by kind, replies by code, peak sessions on one BMC."""

    __slots__ = ("peak_sessions", "per_minute", "replies", "requests")

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.replies: Counter[str] = Counter()
        self.peak_sessions = 0
        self.per_minute: Counter[int] = Counter()
        """Requests per simulated minute (for the request-rate figure)."""


class Bmc:
    """One BMC endpoint."""

    __slots__ = (
        "_env",
        "_faults",
        "_latency",
        "_rng",
        "_stats",
        "_timeout_s",
        "address",
        "session_cap",
        "sessions",
    )

    def __init__(
        self,
        env: simpy.Environment,
        *,
        address: str,
        latency: dist.Distribution,
        session_cap: int,
        faults: scenario.BmcFaults,
        timeout_s: float,
        rng: random.Random,
        stats: BmcStats,
    ) -> None:
        self._env = env
        self._latency = latency
        self._faults = faults
        self._timeout_s = timeout_s
        self._rng = rng
        self._stats = stats
        self.address = address
        self.session_cap = session_cap
        self.sessions = 0

    def request(self, kind: str, machine: Machine) -> Generator[simpy.Event, Any, Reply]:
        """One request about `machine`; returns the reply once its round trip is over.

        The caller applies the effect (e.g. starts the power transition) only on Reply.OK.
        """
        stats = self._stats
        stats.requests[kind] += 1
        stats.per_minute[int(self._env.now // 60.0)] += 1
        rng = self._rng
        if self.sessions >= self.session_cap:
            reply = Reply.UNAVAILABLE
            yield self._env.timeout(self._latency.draw(rng) * 0.2)
            stats.replies[reply.name] += 1
            return reply
        self.sessions += 1
        if self.sessions > stats.peak_sessions:
            stats.peak_sessions = self.sessions
        try:
            faults = self._faults
            draw = rng.random()
            if draw < faults.timeout_rate:
                yield self._env.timeout(self._timeout_s)
                reply = Reply.TIMEOUT
            else:
                yield self._env.timeout(self._latency.draw(rng))
                if draw < faults.timeout_rate + faults.error_rate:
                    reply = Reply.SERVER_ERROR
                elif (
                    kind == "power_on"
                    and not machine.powered
                    and self._env.now - machine.power_changed_at < faults.conflict_after_power_off_s
                ):
                    reply = Reply.CONFLICT
                else:
                    reply = Reply.OK
        finally:
            self.sessions -= 1
        stats.replies[reply.name] += 1
        return reply
