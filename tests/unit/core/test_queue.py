"""The workqueue: dedupe, per-key serialization, delays, rate limiting, wake-up time, metrics."""

from datetime import timedelta

import pytest

from metalcubed.core import clock, queue
from metalcubed.core.api import meta


@pytest.fixture
def tick() -> clock.ManualClock:
    return clock.ManualClock()


@pytest.fixture
def q(tick: clock.ManualClock) -> queue.WorkQueue[str]:
    return queue.WorkQueue(tick)


def drain(q: queue.WorkQueue[str]) -> list[str]:
    keys = []
    while (key := q.get()) is not None:
        keys.append(key)
        q.done(key)
    return keys


def test_key_added_twice_is_handed_out_once(q: queue.WorkQueue[str]) -> None:
    q.add("a")
    q.add("a")
    assert len(q) == 1
    assert drain(q) == ["a"]
    assert q.metrics.adds == 1


def test_ready_keys_come_out_fifo(q: queue.WorkQueue[str]) -> None:
    for key in ("c", "a", "b"):
        q.add(key)
    assert drain(q) == ["c", "a", "b"]


def test_get_on_empty_queue_returns_none(q: queue.WorkQueue[str]) -> None:
    assert q.get() is None


def test_processing_key_is_not_handed_to_a_second_worker(q: queue.WorkQueue[str]) -> None:
    q.add("a")
    assert q.get() == "a"
    q.add("a")
    assert q.get() is None
    assert q.depth == 1 and q.processing == 1


def test_key_readded_while_processing_is_requeued_on_done(q: queue.WorkQueue[str]) -> None:
    q.add("a")
    q.add("b")
    assert q.get() == "a"
    q.add("a")
    q.add("a")
    q.done("a")
    assert drain(q) == ["b", "a"]


def test_done_without_processing_is_an_error(q: queue.WorkQueue[str]) -> None:
    with pytest.raises(ValueError):
        q.done("never")


def test_add_after_becomes_ready_only_when_due(
    q: queue.WorkQueue[str], tick: clock.ManualClock
) -> None:
    q.add_after("a", 5)
    assert q.get() is None
    assert q.next_ready_at() == tick.now() + timedelta(seconds=5)
    tick.advance(4.999)
    assert q.get() is None
    tick.advance(0.001)
    assert q.get() == "a"


def test_add_after_earliest_time_wins(q: queue.WorkQueue[str], tick: clock.ManualClock) -> None:
    start = tick.now()
    q.add_after("a", 10)
    q.add_after("a", 3)
    q.add_after("a", 7)
    assert q.next_ready_at() == start + timedelta(seconds=3)
    tick.advance(3)
    assert drain(q) == ["a"]
    tick.advance(10)
    assert drain(q) == []
    assert q.next_ready_at() is None


def test_add_after_zero_is_immediate(q: queue.WorkQueue[str]) -> None:
    q.add_after("a", 0)
    assert q.get() == "a"


def test_delayed_keys_join_in_time_order(q: queue.WorkQueue[str], tick: clock.ManualClock) -> None:
    q.add_after("late", 2)
    q.add_after("early", 1)
    q.add("now")
    tick.advance(5)
    assert drain(q) == ["now", "early", "late"]


def test_delayed_entry_still_fires_after_an_immediate_add(
    q: queue.WorkQueue[str], tick: clock.ManualClock
) -> None:
    q.add_after("a", 1)
    q.add("a")
    assert drain(q) == ["a"]
    tick.advance(1)
    assert drain(q) == ["a"]


def test_delayed_key_due_while_processing_waits_for_done(
    q: queue.WorkQueue[str], tick: clock.ManualClock
) -> None:
    q.add("a")
    assert q.get() == "a"
    q.add_after("a", 1)
    tick.advance(1)
    assert q.get() is None
    q.done("a")
    assert q.get() == "a"


def test_next_ready_at_is_now_when_a_key_is_ready(
    q: queue.WorkQueue[str], tick: clock.ManualClock
) -> None:
    q.add_after("a", 60)
    q.add("b")
    assert q.next_ready_at() == tick.now()


def test_next_ready_at_is_none_when_only_processing(q: queue.WorkQueue[str]) -> None:
    q.add("a")
    q.get()
    q.add("a")
    assert q.next_ready_at() is None


def test_rate_limited_backoff_doubles_per_failure_and_resets_on_forget(
    q: queue.WorkQueue[str], tick: clock.ManualClock
) -> None:
    delays = []
    for _ in range(4):
        start = tick.now()
        q.add_rate_limited("a")
        at = q.next_ready_at()
        assert at is not None
        delays.append((at - start).total_seconds())
        tick.set(at)
        assert drain(q) == ["a"]
    assert delays == pytest.approx([0.005, 0.01, 0.02, 0.04])
    assert q.num_requeues("a") == 4
    q.forget("a")
    assert q.num_requeues("a") == 0
    start = tick.now()
    q.add_rate_limited("a")
    assert q.next_ready_at() == start + timedelta(seconds=0.005)
    assert q.metrics.retries == 5


def test_backoff_is_per_key(q: queue.WorkQueue[str], tick: clock.ManualClock) -> None:
    for _ in range(3):  # a fails three times: its next retry waits 40 ms
        q.add_rate_limited("a")
        tick.advance(1)
        assert drain(q) == ["a"]
    q.add_rate_limited("a")
    q.add_rate_limited("b")
    assert (q.num_requeues("a"), q.num_requeues("b")) == (4, 1)
    tick.advance(0.005)
    assert drain(q) == ["b"]
    tick.advance(0.035)
    assert drain(q) == ["a"]


def test_exponential_backoff_caps_at_max() -> None:
    backoff = queue.ItemExponentialBackoff()
    now = clock.EPOCH
    delays = [backoff.when("k", now) for _ in range(2000)]
    assert delays[-1] == 1000.0
    assert max(delays) == 1000.0
    assert delays[17] == pytest.approx(0.005 * 2**17)  # 655 s, still under the cap


def test_token_bucket_allows_burst_then_spaces_at_qps() -> None:
    bucket = queue.BucketRateLimiter(qps=10, burst=100)
    now = clock.EPOCH
    burst = [bucket.when(i, now) for i in range(100)]
    assert burst == [0.0] * 100
    assert bucket.when("x", now) == pytest.approx(0.1)
    assert bucket.when("y", now) == pytest.approx(0.2)
    later = now + timedelta(seconds=0.3)  # refills 3 tokens: pays back the 2 reservations
    assert bucket.when("z", later) == 0.0


def test_default_limiter_takes_the_larger_delay(tick: clock.ManualClock) -> None:
    q: queue.WorkQueue[int] = queue.WorkQueue(tick)
    start = tick.now()
    for key in range(101):  # 101 distinct first failures: per-key says 5 ms each
        q.add_rate_limited(key)
    # the 101st exceeds the burst of 100: the bucket's 100 ms beats the per-key 5 ms
    assert q.delayed == 101
    tick.advance(0.005)
    assert len(q) == 100
    tick.set(start + timedelta(seconds=0.1))
    assert len(q) == 101


def test_object_keys_work_as_queue_keys(tick: clock.ManualClock) -> None:
    q: queue.WorkQueue[meta.ObjectKey] = queue.WorkQueue(tick)
    q.add(meta.ObjectKey("ns", "h1"))
    q.add(meta.ObjectKey("ns", "h1"))
    assert q.get() == meta.ObjectKey("ns", "h1")
    assert q.get() is None


def test_metrics_count_adds_gets_and_wait(
    q: queue.WorkQueue[str], tick: clock.ManualClock
) -> None:
    q.add("a")
    q.add("a")
    q.add_after("b", 1)
    tick.advance(3)  # b became ready 2 s ago, a 3 s ago
    assert drain(q) == ["a", "b"]
    assert (q.metrics.adds, q.metrics.gets) == (2, 2)
    assert q.metrics.wait_s_total == pytest.approx(5.0)
    assert q.metrics.longest_wait_s == pytest.approx(3.0)
    assert q.depth == 0


def test_many_keys_stay_fast(tick: clock.ManualClock) -> None:
    q: queue.WorkQueue[int] = queue.WorkQueue(tick)
    for key in range(20_000):
        q.add_after(key, (key * 7919) % 1000 / 10)
    tick.advance(100)
    out = []
    while (ready := q.get()) is not None:
        out.append(ready)
        q.done(ready)
    assert sorted(out) == list(range(20_000))
