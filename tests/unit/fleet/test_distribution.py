"""Timing distributions: each draws what its parameters say, reproducibly."""

import random

import pytest

from metalcubed.simulators.fleet import distribution as dist


def _sorted_draws(d: dist.Distribution, n: int = 20_000, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    return sorted(d.draw(rng) for _ in range(n))


def test_lognormal_has_the_median_and_p99_it_was_given() -> None:
    draws = _sorted_draws(dist.LogNormal(median=120.0, p99=600.0))
    assert draws[len(draws) // 2] == pytest.approx(120.0, rel=0.05)
    assert draws[int(len(draws) * 0.99)] == pytest.approx(600.0, rel=0.1)
    assert draws[0] > 0


def test_lognormal_with_p99_equal_to_median_is_fixed() -> None:
    assert set(_sorted_draws(dist.LogNormal(median=5.0, p99=5.0), n=100)) == {5.0}


def test_uniform_stays_in_range_and_spreads() -> None:
    draws = _sorted_draws(dist.Uniform(low=10.0, high=20.0))
    assert 10.0 <= draws[0] < 10.1 and 19.9 < draws[-1] <= 20.0


def test_normal_is_clamped_at_zero() -> None:
    draws = _sorted_draws(dist.Normal(mean=1.0, stddev=5.0))
    assert draws[0] == 0.0
    assert draws[len(draws) // 2] == pytest.approx(1.0, abs=0.2)


def test_same_seed_same_draws() -> None:
    d = dist.LogNormal(median=3.0, p99=30.0)
    assert _sorted_draws(d, n=50, seed=1) == _sorted_draws(d, n=50, seed=1)
    assert _sorted_draws(d, n=50, seed=1) != _sorted_draws(d, n=50, seed=2)
