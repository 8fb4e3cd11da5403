"""Timing distributions of the fleet model: how long a POST, an image write or a BMC call takes.

Scenarios describe each duration as a distribution, the way people quote them: a fixed value, a
uniform range, a normal mean and spread, or a lognormal given by its median and 99th percentile
("POST takes 3 minutes, 8 at worst"). The lognormal is the usual shape for service and boot
times: never negative, with a long right tail. Every draw takes the caller's `random.Random`, so
one seed reproduces one run.
"""

import math
import random
from dataclasses import dataclass, field

Z_99 = 2.3263478740408408
"""The standard normal's 99th percentile: ln(p99 / median) = sigma * Z_99 for a lognormal."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Fixed:
    value: float

    def draw(self, rng: random.Random) -> float:
        return self.value

    @property
    def median(self) -> float:
        return self.value


@dataclass(frozen=True, slots=True, kw_only=True)
class Uniform:
    low: float
    high: float

    def draw(self, rng: random.Random) -> float:
        return self.low + (self.high - self.low) * rng.random()

    @property
    def median(self) -> float:
        return (self.low + self.high) / 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Normal:
    """A normal distribution clamped at zero (a duration or a rate is never negative)."""

    mean: float
    stddev: float

    def draw(self, rng: random.Random) -> float:
        return max(0.0, rng.gauss(self.mean, self.stddev))

    @property
    def median(self) -> float:
        return self.mean


@dataclass(frozen=True, slots=True, kw_only=True)
class LogNormal:
    """A lognormal given by its median and 99th percentile (p99 >= median > 0)."""

    median: float
    p99: float
    mu: float = field(init=False, repr=False, compare=False)
    sigma: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Derived once: draws are on the hot path (every API call and BMC request).
        object.__setattr__(self, "mu", math.log(self.median))
        object.__setattr__(self, "sigma", math.log(self.p99 / self.median) / Z_99)

    def draw(self, rng: random.Random) -> float:
        if self.sigma == 0.0:
            return self.median
        return math.exp(self.mu + self.sigma * rng.gauss(0.0, 1.0))


Distribution = Fixed | Uniform | Normal | LogNormal
