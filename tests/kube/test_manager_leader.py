"""Leader election over a real coordination.k8s.io Lease (controllers/kube/leader.py), with
short timings: mutual exclusion, release on stop, takeover after expiry, loss detection."""

import threading
import time
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


@contextmanager
def _campaign(api: k8s.ApiClient, ns: str, identity: str) -> Iterator[Candidate]:
    c = Candidate(leader.LeaderElector(api, _config(ns, identity)))
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
        with _campaign(kube_api, kube_namespace, "b") as b:
            time.sleep(1.5)  # several retry periods
            assert not b.started.is_set() and not b.elector.is_leader
            assert _holder(kube_api, kube_namespace) == "a"
            a.stop.set()  # graceful: releases the lease
            began = time.monotonic()
            assert b.started.wait(5)
            assert time.monotonic() - began < 1.5, "release did not hand over promptly"
            assert _holder(kube_api, kube_namespace) == "b"
            assert not a.lost.is_set()


def test_a_dead_holder_is_replaced_after_the_lease_expires(
    kube_api: k8s.ApiClient, kube_namespace: str
) -> None:
    # "a" takes the lease and then vanishes without releasing it (as after kill -9).
    dead = leader.LeaderElector(kube_api, _config(kube_namespace, "a"))
    assert dead._try_acquire_or_renew()
    with _campaign(kube_api, kube_namespace, "b") as b:
        began = time.monotonic()
        assert b.started.wait(10)
        waited = time.monotonic() - began
    assert 3.0 - 0.5 <= waited <= 3.0 + 2.0, f"took over after {waited:.1f} s"
    lease = k8s.CoordinationV1Api(kube_api).read_namespaced_lease("test-lease", kube_namespace)
    assert lease.spec.lease_transitions == 1


def test_a_holder_that_cannot_renew_reports_the_loss(
    kube_api: k8s.ApiClient, kube_namespace: str
) -> None:
    with _campaign(kube_api, kube_namespace, "a") as a:
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
        began = time.monotonic()
        assert a.lost.wait(10), "loss of the lease not reported"
        assert time.monotonic() - began <= 2.0 + 1.0
        assert not a.elector.is_leader
        assert _holder(kube_api, kube_namespace) == "thief"
