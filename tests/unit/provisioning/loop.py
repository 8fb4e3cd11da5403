"""A minimal runtime for tests: reconcile BareMetalHosts in due-time order until a goal holds.

Like the workqueue, it calls `reconcile(key)` for one host at a time, requeues by the returned
delay, and retries a raised TransientError after `error_retry_s`. Time is virtual: when the next
pass is not due yet, the loop moves its manual clock forward (no sleeping, no wall-clock bound;
`max_passes` is the liveness bound). `max_delay_s` compresses long requeues (upstream's minutes
of error backoff and the 60 s power poll). The lab rig over real sockets
(tests/hardware/world.py) waits in real time instead, by overriding `wait`.
"""

from collections.abc import Callable, Iterable

from metalcubed.core import clock as clocks
from metalcubed.core import outcome, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta
from metalcubed.core.reconcilers import host as host_reconciler


class Loop:
    def __init__(
        self,
        reconciler: host_reconciler.BareMetalHostReconciler,
        store: ports.Store,
        *,
        clock: ports.Clock,
        max_delay_s: float,
        error_retry_s: float = 0.5,
    ) -> None:
        self.reconciler = reconciler
        self.store = store
        self.clock = clock
        self.max_delay_s = max_delay_s
        self.error_retry_s = error_retry_s
        self.due: dict[meta.ObjectKey, float] = {}
        self.passes = 0
        self.errors: list[str] = []

    def _now(self) -> float:
        return self.clock.now().timestamp()

    def add(self, keys: Iterable[meta.ObjectKey]) -> None:
        for key in keys:
            self.due[key] = self._now()

    def wait(self, seconds: float) -> bool:
        """The next pass is `seconds` away: move the manual clock there (True: run it now)."""
        assert isinstance(self.clock, clocks.ManualClock), \
            "Loop runs in virtual time (a ManualClock); tests/hardware/world.py waits for real"
        self.clock.advance(seconds)
        return True

    def run_until(self, goal: Callable[[], bool], *, max_passes: int = 5000) -> None:
        limit = self.passes + max_passes
        while not goal():
            assert self.passes < limit, f"goal not reached in {max_passes} passes: {self.report()}"
            if not self.due:
                raise AssertionError("nothing left to reconcile and the goal does not hold")
            key = min(self.due, key=lambda k: self.due[k])
            wait = self.due[key] - self._now()
            if wait > 0 and not self.wait(wait):
                continue
            self.passes += 1
            try:
                result = self.reconciler.reconcile(key)
            except outcome.TransientError as err:
                self.errors.append(str(err))
                self.due[key] = self._now() + self.error_retry_s
                continue
            if result.requeue_after_s is None:
                self.due.pop(key, None)
            else:
                self.due[key] = self._now() + min(result.requeue_after_s, self.max_delay_s)

    def report(self) -> str:
        """Where every host stands (for a failed goal's message)."""
        lines = []
        for key in sorted(self.due, key=str):
            try:
                status = self.host(key).status
            except outcome.NotFound:
                continue
            lines.append(f"{key.name}: {status.provisioning.state.value} "
                         f"{status.operational_status.value} {status.error_message[:160]}")
        return "\n" + "\n".join(lines)

    def poke(self, key: meta.ObjectKey) -> None:
        """A watch event: reconcile `key` now."""
        self.due[key] = self._now()

    def host(self, key: meta.ObjectKey) -> bmh.BareMetalHost:
        return self.store.get(bmh.BareMetalHost, key)

    def gone(self, key: meta.ObjectKey) -> bool:
        try:
            self.store.get(bmh.BareMetalHost, key)
        except outcome.NotFound:
            return True
        return False

    def states(self, keys: Iterable[meta.ObjectKey]) -> dict[str, str]:
        return {k.name: self.host(k).status.provisioning.state.value for k in keys}

