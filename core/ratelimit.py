"""The one token bucket: client-go's rate limit (golang.org/x/time/rate reservations), pure.

Every rate limit uses this class: the workqueue's overall retry limit (client-go's
DefaultControllerRateLimiter: 10 per second, burst 100), the kube client's QPS/burst limit
(`--kube-api-qps`/`--kube-api-burst`), the fleet model's charge for that same client limit, and
the Event recorder's per-object spam filter (burst 25, one token per 5 minutes). Sharing it is
what makes the simulated throttling the real one.

Semantics (x/time/rate's `Reserve`): the bucket holds at most `burst` tokens and refills at
`qps` tokens per second. Each `reserve(now_s)` takes one token and returns how long the caller
must wait before acting: 0 while tokens are left, otherwise the time until its token will have
refilled. Tokens may go negative, so waiting callers hold reservations and are served in order
(the fourth caller on an empty bucket at 2 qps waits 1.5 s, not 0.5 s). `allow(now_s)` is
x/time/rate's `Allow`: take a token if one is there, otherwise take nothing and say no (for a
filter that drops rather than delays). `qps <= 0` means no limit (client-go: a negative QPS
disables its limiter).

Time is the caller's: `now_s` is seconds on any monotonic scale (wall monotonic in the kube
client, simulated seconds in the fleet model); a time earlier than the last one seen refills
nothing. Not thread-safe by itself: the kube client holds a lock around it.
"""


class TokenBucket:
    """`qps` tokens per second into a bucket of `burst`; `reserve` takes one (see the module)."""

    __slots__ = ("_last_s", "_tokens", "burst", "qps")

    def __init__(self, *, qps: float, burst: int) -> None:
        if burst < 1 and qps > 0:
            raise ValueError(f"burst must be at least 1 when qps > 0, got {burst}")
        self.qps = float(qps)
        self.burst = int(burst)
        self._tokens = float(burst)
        self._last_s: float | None = None

    def reserve(self, now_s: float) -> float:
        """Take one token at `now_s`; return the seconds to wait before using it (>= 0)."""
        qps = self.qps
        if qps <= 0:
            return 0.0
        self._refill(now_s)
        self._tokens -= 1.0
        tokens = self._tokens
        return 0.0 if tokens >= 0 else -tokens / qps

    def allow(self, now_s: float) -> bool:
        """Take one token at `now_s` if one is there; otherwise take none and return False."""
        if self.qps <= 0:
            return True
        self._refill(now_s)
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _refill(self, now_s: float) -> None:
        last = self._last_s
        if last is None or now_s > last:
            if last is not None:
                self._tokens = min(float(self.burst), self._tokens + (now_s - last) * self.qps)
            self._last_s = now_s
