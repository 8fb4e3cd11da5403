"""Leader election over a real coordination.k8s.io Lease (controllers/kube/leader.py), with
short timings: mutual exclusion, release on stop, takeover after expiry, loss detection.

Each candidate judges expiry and its renew deadline by its own monotonic clock; the tests give
it a manual one and move it, so "not before the lease expires" is checked in that clock's time,
never with a stopwatch."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from kubernetes import client as k8s

from metalcubed.controllers.kube import leader
from tests.kube import test_e2e_support as e2e


@dataclass
class Candidate:
    elector: leader.LeaderElector
    stop: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)
    lost: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


def _config(ns: str, identity: str) -> leader.LeaseConfig:
    return leader.LeaseConfig(namespace=ns, identity=identity, name="test-lease",
                              lease_duration_s=3.0, renew_deadline_s=2.0, retry_period_s=0.3)


class ManualMonotonic:
    """A monotonic clock that moves only when told (thread-safe)."""

    def __init__(self) -> None:
        self._t = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._t

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._t += seconds


def _advance_until(clock: ManualMonotonic, done: threading.Event, *, step_s: float = 0.25,
                   limit_s: float = 60.0) -> float:
    """Move `clock` forward in steps until `done`; returns how far it moved."""
    moved = 0.0
    while not done.wait(0.05):
        assert moved < limit_s, f"nothing happened in {limit_s:.0f} s of the candidate's time"
        clock.advance(step_s)
        moved += step_s
    return moved


def _has_seen_the_lease(c: Candidate) -> bool:
    return c.elector._observed is not None


@contextmanager
def _campaign(api: k8s.ApiClient, ns: str, identity: str,
              clock: ManualMonotonic | None = None) -> Iterator[Candidate]:
    c = Candidate(leader.LeaderElector(api, _config(ns, identity),
                                       monotonic=clock or ManualMonotonic()))
    c.thread = threading.Thread(
        target=c.elector.run, args=(c.stop,),
        kwargs={"on_started_leading": c.started.set, "on_stopped_leading": c.lost.set},
        daemon=True,
    )
    c.thread.start()
    try:
        yield c
    finally:
        c.stop.set()
        c.thread.join(timeout=10)


def _holder(api: k8s.ApiClient, ns: str) -> str | None:
    lease = k8s.CoordinationV1Api(api).read_namespaced_lease("test-lease", ns)
    holder: str | None = lease.spec.holder_identity
    return holder


def test_only_one_candidate_leads_and_release_hands_over_fast(
    kube_api: k8s.ApiClient, kube_namespace: str
) -> None:
    with _campaign(kube_api, kube_namespace, "a") as a:
        assert a.started.wait(5)
        # b's clock never moves: it can take over only when a releases the lease.
        with _campaign(kube_api, kube_namespace, "b") as b:
            e2e.wait_until(lambda: _has_seen_the_lease(b), timeout_s=5, what="b saw the lease")
            assert not b.elector.is_leader
            assert _holder(kube_api, kube_namespace) == "a"
            a.stop.set()  # graceful: releases the lease
            assert b.started.wait(10), "release did not hand over"
            assert _holder(kube_api, kube_namespace) == "b"
            assert not a.lost.is_set()


def test_a_dead_holder_is_replaced_after_the_lease_expires(
    kube_api: k8s.ApiClient, kube_namespace: str
) -> None:
    # "a" takes the lease and then vanishes without releasing it (as after kill -9).
    dead = leader.LeaderElector(kube_api, _config(kube_namespace, "a"))
    assert dead._try_acquire_or_renew()
    clock = ManualMonotonic()
    with _campaign(kube_api, kube_namespace, "b", clock) as b:
        e2e.wait_until(lambda: _has_seen_the_lease(b), timeout_s=5, what="b saw the lease")
        assert not b.elector.is_leader
        moved = _advance_until(clock, b.started)
    lease_duration_s = 3.0
    assert moved >= lease_duration_s, f"took over after {moved} s of its clock, before expiry"
    lease = k8s.CoordinationV1Api(kube_api).read_namespaced_lease("test-lease", kube_namespace)
    assert lease.spec.lease_transitions == 1


def test_a_holder_that_cannot_renew_reports_the_loss(
    kube_api: k8s.ApiClient, kube_namespace: str
) -> None:
    clock = ManualMonotonic()
    with _campaign(kube_api, kube_namespace, "a", clock) as a:
        assert a.started.wait(5)
        # Someone else overwrites the Lease (as a partitioned holder would find it).
        coordination = k8s.CoordinationV1Api(kube_api)

        def steal() -> bool:
            lease = coordination.read_namespaced_lease("test-lease", kube_namespace)
            lease.spec.holder_identity = "thief"
            lease.spec.lease_duration_seconds = 60
            try:
                coordination.replace_namespaced_lease("test-lease", kube_namespace, lease)
            except k8s.ApiException as exc:
                if exc.status == 409:
                    return False
                raise
            return True

        e2e.wait_until(steal, timeout_s=5, interval_s=0.05, what="lease stolen")
        # The loss is reported once the renew deadline (2 s) passes on a's own clock.
        moved = _advance_until(clock, a.lost, step_s=0.1)
        assert moved >= 2.0 - 0.1 - 0.3, f"loss reported after {moved} s, before the deadline"
        assert not a.elector.is_leader
        assert _holder(kube_api, kube_namespace) == "thief"
