"""The threaded workqueue and the controller worker loop (controllers/kube/worker.py)."""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from metalcubed.controllers import memory
from metalcubed.controllers.kube import metrics, worker
from metalcubed.core import outcome
from metalcubed.core import queue as core_queue
from metalcubed.core.api import meta

KEY = meta.ObjectKey("ns", "a")


def _queue() -> worker.SharedQueue[str]:
    clock = memory.WallClock()
    return worker.SharedQueue(core_queue.WorkQueue(clock), clock)


@contextmanager
def _timer(q: worker.SharedQueue[str]) -> Iterator[None]:
    thread = threading.Thread(target=q.run_timer, daemon=True)
    thread.start()
    try:
        yield
    finally:
        q.shutdown()
        thread.join(timeout=2)


def test_get_blocks_until_a_key_is_added() -> None:
    q = _queue()
    got: list[str | None] = []
    taker = threading.Thread(target=lambda: got.append(q.get()))
    taker.start()
    time.sleep(0.05)
    assert got == []
    q.add("k")
    taker.join(timeout=2)
    assert got == ["k"]


def test_shutdown_releases_blocked_workers() -> None:
    q = _queue()
    got: list[str | None] = []
    takers = [threading.Thread(target=lambda: got.append(q.get())) for _ in range(3)]
    for t in takers:
        t.start()
    q.shutdown()
    for t in takers:
        t.join(timeout=2)
    assert got == [None, None, None]


def test_delayed_key_is_served_when_due_not_before() -> None:
    q = _queue()
    with _timer(q):
        began = time.monotonic()
        q.add_after("k", 0.2)
        assert q.get() == "k"
        waited = time.monotonic() - began
    assert 0.19 <= waited < 0.6


def test_delayed_keys_wake_every_idle_worker() -> None:
    """Many keys due at once are served in parallel, not one after the other."""
    q = _queue()
    served: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        while (key := q.get()) is not None:
            time.sleep(0.2)  # a slow reconcile
            with lock:
                served.append(time.monotonic())
            q.done(key)

    with _timer(q):
        workers = [threading.Thread(target=work, daemon=True) for _ in range(5)]
        for w in workers:
            w.start()
        time.sleep(0.05)  # all idle
        began = time.monotonic()
        for i in range(5):
            q.add_after(f"k{i}", 0.1)
        deadline = time.monotonic() + 3
        while len(served) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(served) == 5
    assert max(served) - began < 0.55, "keys due together were served serially"


def test_an_earlier_delay_preempts_a_later_one() -> None:
    q = _queue()
    with _timer(q):
        q.add_after("late", 5.0)
        time.sleep(0.05)  # the timer now sleeps towards the late key
        began = time.monotonic()
        q.add_after("early", 0.1)
        assert q.get() == "early"
        assert time.monotonic() - began < 0.5


def test_a_key_added_while_processing_comes_back_after_done() -> None:
    q = _queue()
    q.add("k")
    assert q.get() == "k"
    q.add("k")
    assert q.idle() is False
    q.done("k")
    assert q.get() == "k"


# --- the controller ------------------------------------------------------------------------


class _Scripted:
    """A reconciler that runs `script(key, call_number)` and records concurrency per key."""

    def __init__(self, script: Callable[[meta.ObjectKey, int], outcome.Outcome]) -> None:
        self.script = script
        self.calls: dict[meta.ObjectKey, int] = {}
        self.running: set[meta.ObjectKey] = set()
        self.overlaps = 0
        self.lock = threading.Lock()

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        with self.lock:
            if key in self.running:
                self.overlaps += 1
            self.running.add(key)
            n = self.calls[key] = self.calls.get(key, 0) + 1
        try:
            return self.script(key, n)
        finally:
            with self.lock:
                self.running.discard(key)


@contextmanager
def _running(c: worker.Controller) -> Iterator[threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=c.run, args=(stop,), daemon=True)
    thread.start()
    assert c.started.wait(2)
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=5)


def _controller(rec: worker.Reconciler, workers: int = 4) -> worker.Controller:
    registry = metrics.new_registry()
    return worker.Controller(
        "test", rec, clock=memory.WallClock(), workers=workers,
        runtime_metrics=metrics.RuntimeMetrics(registry),
    )


def _wait(predicate: Callable[[], bool], timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.01)


def test_done_forgets_the_key() -> None:
    rec = _Scripted(lambda key, n: outcome.Outcome.done())
    c = _controller(rec)
    with _running(c):
        c.enqueue(KEY)
        _wait(lambda: rec.calls.get(KEY) == 1)
        time.sleep(0.1)
    assert rec.calls[KEY] == 1


def test_after_requeues_after_the_delay() -> None:
    stamps: list[float] = []

    def script(key: meta.ObjectKey, n: int) -> outcome.Outcome:
        stamps.append(time.monotonic())
        return outcome.Outcome.after(0.15) if n == 1 else outcome.Outcome.done()

    rec = _Scripted(script)
    c = _controller(rec)
    with _running(c):
        c.enqueue(KEY)
        _wait(lambda: rec.calls.get(KEY) == 2)
    assert stamps[1] - stamps[0] >= 0.14


def test_transient_error_is_retried_with_backoff_then_forgotten() -> None:
    def script(key: meta.ObjectKey, n: int) -> outcome.Outcome:
        if n < 4:
            raise outcome.TransientError("flaky")
        return outcome.Outcome.done()

    rec = _Scripted(script)
    c = _controller(rec)
    with _running(c):
        c.enqueue(KEY)
        _wait(lambda: rec.calls.get(KEY) == 4)
        assert c.queue.num_requeues(KEY) == 0  # forgotten after the success


def test_retry_after_is_honoured() -> None:
    stamps: list[float] = []

    def script(key: meta.ObjectKey, n: int) -> outcome.Outcome:
        stamps.append(time.monotonic())
        if n == 1:
            raise outcome.TransientError("busy", retry_after_s=0.2)
        return outcome.Outcome.done()

    rec = _Scripted(script)
    c = _controller(rec)
    with _running(c):
        c.enqueue(KEY)
        _wait(lambda: rec.calls.get(KEY) == 2)
    assert stamps[1] - stamps[0] >= 0.19


def test_permanent_error_is_not_retried() -> None:
    def script(key: meta.ObjectKey, n: int) -> outcome.Outcome:
        raise outcome.PermanentError("cannot handle it")

    rec = _Scripted(script)
    c = _controller(rec)
    with _running(c):
        c.enqueue(KEY)
        _wait(lambda: rec.calls.get(KEY) == 1)
        time.sleep(0.2)
    assert rec.calls[KEY] == 1


def test_unexpected_exception_keeps_the_worker_alive_and_retries() -> None:
    def script(key: meta.ObjectKey, n: int) -> outcome.Outcome:
        if key == KEY and n == 1:
            raise RuntimeError("a reconciler bug")
        return outcome.Outcome.done()

    rec = _Scripted(script)
    c = _controller(rec, workers=1)
    with _running(c):
        c.enqueue(KEY)
        _wait(lambda: rec.calls.get(KEY) == 2)
        other = meta.ObjectKey("ns", "b")
        c.enqueue(other)
        _wait(lambda: rec.calls.get(other) == 1)


def test_one_worker_per_key_while_many_workers_run() -> None:
    def script(key: meta.ObjectKey, n: int) -> outcome.Outcome:
        time.sleep(0.005)
        return outcome.Outcome.after(0) if n < 20 else outcome.Outcome.done()

    rec = _Scripted(script)
    c = _controller(rec, workers=8)
    keys = [meta.ObjectKey("ns", f"h{i}") for i in range(10)]
    with _running(c):
        for _ in range(3):
            for key in keys:
                c.enqueue(key)
        _wait(lambda: all(rec.calls.get(k) == 20 for k in keys), timeout_s=10)
    assert rec.overlaps == 0


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="workers"):
        _controller(_Scripted(lambda k, n: outcome.Outcome.done()), workers=0)


def test_controller_waits_for_its_caches() -> None:
    class Cache:
        def __init__(self) -> None:
            self.synced = threading.Event()

        def wait_synced(self, stop: threading.Event, timeout_s: float | None = None) -> bool:
            while not self.synced.wait(0.01):
                if stop.is_set():
                    return False
            return True

    cache = Cache()
    rec = _Scripted(lambda k, n: outcome.Outcome.done())
    c = worker.Controller("t", rec, clock=memory.WallClock(), workers=1, caches=[cache])
    stop = threading.Event()
    thread = threading.Thread(target=c.run, args=(stop,), daemon=True)
    thread.start()
    c.enqueue(KEY)
    time.sleep(0.1)
    assert rec.calls == {}
    cache.synced.set()
    _wait(lambda: rec.calls.get(KEY) == 1)
    stop.set()
    thread.join(timeout=5)
