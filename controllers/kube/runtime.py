"""The manager: runs the runnables (informers, controllers, event sender, HTTP endpoints),
gates the ones that need leadership on the Lease, and shuts everything down in order.

controller-runtime's manager (style anchor A1) reduced to what metalcubed needs:
- Everything is a runnable: `run(stop)` blocks until `stop` is set. A runnable declares
  `need_leader_election`; informers and the event sender do not (a standby replica keeps warm
  caches and can take over at once), controllers do.
- With leader election, leader runnables start when the Lease is acquired. Losing it is fatal:
  the controllers are stopped and `run` returns exit code 1 so the process exits and restarts,
  as controller-runtime does ("leader election lost").
- Shutdown (SIGTERM, or the caller's `stop`) is graceful and ordered: controllers first (each
  worker finishes the reconcile it is in, up to the controller's timeout), then the Lease is
  released (so a standby takes over only after the last write), then queued Events are
  flushed, then the informers and the HTTP endpoints stop.
- A runnable that raises stops the manager with exit code 1 (no half-running process).
"""

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Protocol

from metalcubed.controllers.kube import health

log = logging.getLogger(__name__)


class Runnable(Protocol):
    name: str
    need_leader_election: bool

    def run(self, stop: threading.Event) -> None: ...


class Elector(Protocol):
    """What the manager needs of leader election (leader.LeaderElector)."""

    def run(
        self,
        stop: threading.Event,
        *,
        on_started_leading: Callable[[], None],
        on_stopped_leading: Callable[[], None],
    ) -> None: ...


@dataclass(slots=True)
class _Started:
    runnable: Runnable
    stop: threading.Event
    thread: threading.Thread


class _Phase:
    """Shutdown order: lower phases stop first."""

    CONTROLLERS = 0
    EVENTS = 1
    CACHES = 2


def _phase(runnable: Runnable) -> int:
    if runnable.need_leader_election:
        return _Phase.CONTROLLERS
    if runnable.name == "event-recorder":
        return _Phase.EVENTS
    return _Phase.CACHES


@dataclass(slots=True)
class Manager:
    """Owns the runnables and their threads; see the module docstring."""

    elector: Elector | None = None
    servers: Sequence[health.HttpServer] = ()
    probes: health.Probes = field(default_factory=health.Probes)
    _runnables: list[Runnable] = field(default_factory=list)
    _started: list[_Started] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _leading: bool = False
    _lost: threading.Event = field(default_factory=threading.Event)
    _failed: threading.Event = field(default_factory=threading.Event)
    _elector_stop: threading.Event = field(default_factory=threading.Event)
    _elector_thread: threading.Thread | None = None

    def add(self, runnable: Runnable) -> None:
        self._runnables.append(runnable)

    @property
    def is_leader(self) -> bool:
        return self._leading

    def run(self, stop: threading.Event) -> int:
        """Run until `stop` is set (exit code 0), the lease is lost or a runnable fails (1)."""
        for server in self.servers:
            server.start()
        for runnable in self._runnables:
            if not runnable.need_leader_election:
                self._start(runnable)
        if self.elector is None:
            self._start_leader_runnables()
        else:
            elector = self.elector
            self._elector_thread = threading.Thread(
                target=elector.run,
                args=(self._elector_stop,),
                kwargs={
                    "on_started_leading": self._start_leader_runnables,
                    "on_stopped_leading": self._lost.set,
                },
                name="leader-election",
                daemon=True,
            )
            self._elector_thread.start()
        while not (stop.is_set() or self._lost.is_set() or self._failed.is_set()):
            stop.wait(0.2)
        if self._lost.is_set():
            log.error("leader election lost: stopping")
        elif self._failed.is_set():
            log.error("a runnable failed: stopping")
        else:
            log.info("stop requested: shutting down gracefully")
        self._shutdown()
        return 1 if (self._lost.is_set() or self._failed.is_set()) else 0

    # --- starting ------------------------------------------------------------------------------

    def _start_leader_runnables(self) -> None:
        with self._lock:
            if self._leading:
                return
            self._leading = True
        log.info("leading: starting controllers")
        for runnable in self._runnables:
            if runnable.need_leader_election:
                self._start(runnable)

    def _start(self, runnable: Runnable) -> None:
        stop = threading.Event()
        thread = threading.Thread(
            target=self._guard, args=(runnable, stop), name=runnable.name, daemon=True
        )
        with self._lock:
            self._started.append(_Started(runnable, stop, thread))
        thread.start()

    def _guard(self, runnable: Runnable, stop: threading.Event) -> None:
        try:
            runnable.run(stop)
        except Exception:
            log.exception("runnable %s failed", runnable.name)
            self._failed.set()

    # --- stopping ------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        with self._lock:
            started = list(self._started)
        self._stop_phase(started, _Phase.CONTROLLERS)
        if self._elector_thread is not None:
            self._elector_stop.set()  # releases the lease (after the controllers stopped)
            self._elector_thread.join(timeout=10)
        self._stop_phase(started, _Phase.EVENTS)
        self._stop_phase(started, _Phase.CACHES)
        for server in self.servers:
            server.stop()

    @staticmethod
    def _stop_phase(started: list[_Started], phase: int) -> None:
        group = [s for s in started if _phase(s.runnable) == phase]
        for s in group:
            s.stop.set()
        for s in group:
            s.thread.join(timeout=60)
            if s.thread.is_alive():
                log.warning("runnable %s did not stop in time", s.runnable.name)


def stop_on_signals(
    stop: threading.Event, *, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT),
    on_second: Callable[[], None] | None = None,
) -> None:
    """Set `stop` on the first SIGTERM/SIGINT; a second one calls `on_second` (default: exit 1
    at once), as controller-runtime's SetupSignalHandler does. Main thread only."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("second signal %d: exiting now", signum)
            if on_second is not None:
                on_second()
                return
            import os

            os._exit(1)
        log.info("signal %d: stopping", signum)
        stop.set()

    for sig in signals:
        signal.signal(sig, handler)
