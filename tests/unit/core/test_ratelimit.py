"""The one token bucket (x/time/rate reservations), driven by a manual clock."""

import pytest

from metalcubed.core import clock, ratelimit


def _seconds(tick: clock.ManualClock) -> float:
    return (tick.now() - clock.EPOCH).total_seconds()


def test_a_full_bucket_allows_the_burst_at_once() -> None:
    bucket = ratelimit.TokenBucket(qps=10, burst=3)
    assert [bucket.reserve(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]


def test_past_the_burst_each_caller_waits_for_its_own_token() -> None:
    bucket = ratelimit.TokenBucket(qps=2, burst=1)
    # Reservations queue: the 4th caller waits for the 3rd refill, not the 1st.
    assert [bucket.reserve(0.0) for _ in range(4)] == pytest.approx([0.0, 0.5, 1.0, 1.5])


def test_tokens_refill_at_qps_up_to_the_burst_only() -> None:
    tick = clock.ManualClock()
    bucket = ratelimit.TokenBucket(qps=10, burst=5)
    for _ in range(5):
        bucket.reserve(_seconds(tick))
    tick.advance(0.2)  # two tokens back
    assert [bucket.reserve(_seconds(tick)) for _ in range(3)] == pytest.approx([0.0, 0.0, 0.1])
    tick.advance(3600.0)  # an idle hour refills the burst, no more
    waits = [bucket.reserve(_seconds(tick)) for _ in range(6)]
    assert waits[:5] == [0.0] * 5
    assert waits[5] == pytest.approx(0.1)


def test_waiters_repay_their_reservations_before_a_later_caller_is_free() -> None:
    bucket = ratelimit.TokenBucket(qps=10, burst=1)
    assert bucket.reserve(0.0) == 0.0
    assert bucket.reserve(0.0) == pytest.approx(0.1)
    assert bucket.reserve(0.0) == pytest.approx(0.2)
    # 0.25 s later two tokens have refilled, both already promised: still 0.05 s to wait.
    assert bucket.reserve(0.25) == pytest.approx(0.05)


def test_time_going_backwards_refills_nothing() -> None:
    bucket = ratelimit.TokenBucket(qps=1, burst=1)
    assert bucket.reserve(10.0) == 0.0
    assert bucket.reserve(5.0) == pytest.approx(1.0)
    assert bucket.reserve(10.0) == pytest.approx(2.0)


def test_zero_qps_means_no_limit() -> None:
    bucket = ratelimit.TokenBucket(qps=0, burst=0)
    assert {bucket.reserve(0.0) for _ in range(10_000)} == {0.0}


def test_a_limited_bucket_needs_a_burst_of_one_at_least() -> None:
    with pytest.raises(ValueError, match="burst must be at least 1"):
        ratelimit.TokenBucket(qps=5, burst=0)


def test_allow_takes_a_token_only_when_one_is_there() -> None:
    bucket = ratelimit.TokenBucket(qps=1 / 300, burst=2)  # the Event spam filter's shape
    assert [bucket.allow(0.0) for _ in range(3)] == [True, True, False]
    assert not bucket.allow(299.0)  # a refused call reserved nothing...
    assert bucket.allow(300.0)  # ...so one token is back after 5 minutes
    assert not bucket.allow(300.0)


def test_allow_and_reserve_share_the_tokens() -> None:
    bucket = ratelimit.TokenBucket(qps=1, burst=1)
    assert bucket.reserve(0.0) == 0.0
    assert not bucket.allow(0.0)
    assert bucket.reserve(0.0) == pytest.approx(1.0)
    assert not bucket.allow(1.5)  # the reservation holds the token refilled by then
    assert bucket.allow(3.0)
