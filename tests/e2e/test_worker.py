"""The threaded workqueue and the controller worker loop (controllers/kube/worker.py), on real
worker threads: polled waits for the threads, so these run with the threaded tests, not in
tests/unit."""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest

from metalcubed.controllers import memory
from metalcubed.controllers.kube import metrics, worker
from metalcubed.core import clock, outcome, ports
from metalcubed.core import queue as core_queue
from metalcubed.core.api import meta

KEY = meta.ObjectKey("ns", "a")


def _queue(clk: ports.Clock | None = None) -> worker.SharedQueue[str]:
    clk = clk or memory.WallClock()
    return worker.SharedQueue(core_queue.WorkQueue(clk), clk)


def _in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    got: list[object] = []
    thread = threading.Thread(target=lambda: got.append(fn()), daemon=True)
    thread.start()
    return thread, got


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
    taker, got = _in_thread(q.get)
    q.add("k")
    taker.join(timeout=5)
    assert got == ["k"]  # not None: it waited for the key instead of returning empty-handed


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
    clk = clock.ManualClock()
    q = _queue(clk)
    with _timer(q):
        q.add_after("k", 0.2)
        assert q.next_ready_at() == clk.now() + timedelta(seconds=0.2)
        assert q.idle()  # nothing ready: the clock has not moved
        taker, got = _in_thread(q.get)
        clk.advance(0.2)
        taker.join(timeout=5)
    assert got == ["k"]


def test_delayed_keys_wake_every_idle_worker() -> None:
    """Many keys due at once are served in parallel, not one after the other: each of five
    workers holds its key until all five hold one."""
    clk = clock.ManualClock()
    q = _queue(clk)
    barrier = threading.Barrier(5, timeout=10)
    served: list[str] = []
    serial: list[str] = []

    def work() -> None:
        key = q.get()
        assert key is not None
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            serial.append(key)
        served.append(key)
        q.done(key)

    with _timer(q):
        workers = [threading.Thread(target=work, daemon=True) for _ in range(5)]
        for w in workers:
            w.start()
        for i in range(5):
            q.add_after(f"k{i}", 0.1)
        clk.advance(0.1)
        for w in workers:
            w.join(timeout=15)
    assert sorted(served) == [f"k{i}" for i in range(5)]
    assert serial == [], "keys due together were served one after the other"


def test_an_earlier_delay_preempts_a_later_one() -> None:
    clk = clock.ManualClock()
    q = _queue(clk)
    with _timer(q):
        q.add_after("late", 3600.0)  # the timer now sleeps towards the late key
        q.add_after("early", 0.1)
        assert q.next_ready_at() == clk.now() + timedelta(seconds=0.1)
        clk.advance(0.1)
        taker, got = _in_thread(q.get)
        taker.join(timeout=5)  # a timer still asleep towards "late" would not wake it
        assert got == ["early"], "the timer did not wake for the earlier key"


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


def _controller(rec: worker.Reconciler, workers: int = 4,
                clk: ports.Clock | None = None) -> worker.Controller:
    registry = metrics.new_registry()
    return worker.Controller(
        "test", rec, clock=clk or memory.WallClock(), workers=workers,
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
        _wait(lambda: rec.calls.get(KEY) == 1 and c.queue.idle())
        assert c.queue.next_ready_at() is None  # nothing scheduled: no second pass can come
        assert c.queue.num_requeues(KEY) == 0


def test_after_requeues_after_the_delay() -> None:
    clk = clock.ManualClock()
    rec = _Scripted(lambda key, n: outcome.Outcome.after(0.3) if n == 1 else outcome.Outcome.done())
    c = _controller(rec, clk=clk)
    with _running(c):
        c.enqueue(KEY)
        _wait(lambda: rec.calls.get(KEY) == 1 and c.queue.idle())
        assert c.queue.next_ready_at() == clk.now() + timedelta(seconds=0.3)
        assert rec.calls[KEY] == 1  # the clock has not moved: the key is not due
        clk.advance(0.3)
        _wait(lambda: rec.calls.get(KEY) == 2)


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
    def script(key: meta.ObjectKey, n: int) -> outcome.Outcome:
        if n == 1:
            raise outcome.TransientError("busy", retry_after_s=0.3)
        return outcome.Outcome.done()

    clk = clock.ManualClock()
    rec = _Scripted(script)
    c = _controller(rec, clk=clk)
    with _running(c):
        c.enqueue(KEY)
        _wait(lambda: rec.calls.get(KEY) == 1 and c.queue.idle())
        assert c.queue.next_ready_at() == clk.now() + timedelta(seconds=0.3)
        clk.advance(0.3)
        _wait(lambda: rec.calls.get(KEY) == 2)


def test_permanent_error_is_not_retried() -> None:
    def script(key: meta.ObjectKey, n: int) -> outcome.Outcome:
        raise outcome.PermanentError("cannot handle it")

    rec = _Scripted(script)
    c = _controller(rec)
    with _running(c):
        c.enqueue(KEY)
        _wait(lambda: rec.calls.get(KEY) == 1 and c.queue.idle())
        assert c.queue.next_ready_at() is None  # forgotten: nothing will bring it back
        assert c.queue.num_requeues(KEY) == 0


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
            self.waiting = threading.Event()

        def wait_synced(self, stop: threading.Event, timeout_s: float | None = None) -> bool:
            self.waiting.set()
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
    assert cache.waiting.wait(5)
    assert not c.started.is_set()  # no worker runs while the cache is not synced
    cache.synced.set()
    _wait(lambda: rec.calls.get(KEY) == 1)
    stop.set()
    thread.join(timeout=5)
