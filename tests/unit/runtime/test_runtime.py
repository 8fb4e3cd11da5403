"""The manager's runnables, leadership gating and ordered shutdown (controllers/kube/runtime.py)."""

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from metalcubed.controllers.kube import runtime


@dataclass
class Probe:
    """A runnable that records when it ran and stopped."""

    name: str
    need_leader_election: bool
    log: list[str]
    fail: bool = False
    started: threading.Event = field(default_factory=threading.Event)

    def run(self, stop: threading.Event) -> None:
        self.log.append(f"start {self.name}")
        self.started.set()
        if self.fail:
            raise RuntimeError("broken runnable")
        stop.wait()
        self.log.append(f"stop {self.name}")


class ScriptedElector:
    """Leads after `lead`, loses the lease when `lose` is set."""

    def __init__(self) -> None:
        self.lead = threading.Event()
        self.lose = threading.Event()
        self.released = threading.Event()

    def run(self, stop: threading.Event, *, on_started_leading: Callable[[], None],
            on_stopped_leading: Callable[[], None]) -> None:
        while not self.lead.wait(0.01):
            if stop.is_set():
                return
        on_started_leading()
        while not stop.is_set():
            if self.lose.wait(0.01):
                on_stopped_leading()
                return
        self.released.set()


def _run(manager: runtime.Manager, stop: threading.Event) -> tuple[threading.Thread, list[int]]:
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(manager.run(stop)), daemon=True)
    thread.start()
    return thread, code


def test_leader_runnables_wait_for_the_lease() -> None:
    log: list[str] = []
    cache = Probe("cache", False, log)
    controller = Probe("controller", True, log)
    elector = ScriptedElector()
    manager = runtime.Manager(elector=elector)
    manager.add(cache)
    manager.add(controller)
    stop = threading.Event()
    thread, code = _run(manager, stop)
    assert cache.started.wait(2)
    assert not controller.started.wait(0.2)
    elector.lead.set()
    assert controller.started.wait(2)
    stop.set()
    thread.join(5)
    assert code == [0]
    assert elector.released.is_set()
    # Ordered shutdown: the controller stops before the caches it reads.
    assert log.index("stop controller") < log.index("stop cache")


def test_losing_the_lease_stops_the_controllers_and_exits_1() -> None:
    log: list[str] = []
    controller = Probe("controller", True, log)
    elector = ScriptedElector()
    manager = runtime.Manager(elector=elector)
    manager.add(controller)
    stop = threading.Event()
    thread, code = _run(manager, stop)
    elector.lead.set()
    assert controller.started.wait(2)
    elector.lose.set()
    thread.join(5)
    assert code == [1]
    assert "stop controller" in log


def test_a_failing_runnable_stops_the_manager_with_exit_1() -> None:
    log: list[str] = []
    manager = runtime.Manager()
    manager.add(Probe("healthy", False, log))
    manager.add(Probe("broken", False, log, fail=True))
    thread, code = _run(manager, threading.Event())
    thread.join(5)
    assert code == [1]
    assert "stop healthy" in log


def test_without_leader_election_everything_starts_at_once() -> None:
    log: list[str] = []
    controller = Probe("controller", True, log)
    manager = runtime.Manager()
    manager.add(controller)
    stop = threading.Event()
    thread, code = _run(manager, stop)
    assert controller.started.wait(2)
    assert manager.is_leader
    stop.set()
    thread.join(5)
    assert code == [0]
