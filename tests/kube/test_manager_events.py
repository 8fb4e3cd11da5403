"""The Events recorder against the real API server: fields, aggregation, spam filter."""

import threading
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from metalcubed.controllers.kube import events, metrics
from metalcubed.core import ports
from metalcubed.core.api import meta
from tests.kube import test_e2e_support as e2e


@pytest.fixture
def recorder(kube_api: k8s.ApiClient) -> Iterator[events.K8sEventRecorder]:
    rec = events.K8sEventRecorder(kube_api, reporting_instance="test-instance")
    stop = threading.Event()
    thread = threading.Thread(target=rec.run, args=(stop,), daemon=True)
    thread.start()
    yield rec
    stop.set()
    thread.join(timeout=10)


def _subject(api: k8s.ApiClient, ns: str, name: str = "subject") -> meta.Secret:
    e2e.create_secret(api, ns, name)
    raw = k8s.CoreV1Api(api).read_namespaced_secret(name, ns)
    return meta.Secret(metadata=meta.ObjectMeta(
        name=name, namespace=ns, uid=raw.metadata.uid,
        resource_version=raw.metadata.resource_version,
    ))


def test_event_carries_upstream_source_and_the_object(
    recorder: events.K8sEventRecorder, kube_api: k8s.ApiClient, kube_namespace: str
) -> None:
    obj = _subject(kube_api, kube_namespace)
    recorder.record(obj, type=ports.EventType.WARNING, reason="BMCCredentialError",
                    message="Missing BMC connection detail 'password'")
    e2e.wait_until(lambda: bool(e2e.events_for(kube_api, kube_namespace, "subject")),
                   timeout_s=10, what="event written")
    (event,) = e2e.events_for(kube_api, kube_namespace, "subject")
    assert event["type"] == "Warning"
    assert event["reason"] == "BMCCredentialError"
    assert event["source"]["component"] == "metal3-baremetal-controller"
    assert event["reportingComponent"] == "metal3.io/baremetal-controller"
    assert event["reportingInstance"] == "test-instance"
    assert event["involvedObject"]["uid"] == obj.metadata.uid
    assert event["involvedObject"]["kind"] == "Secret"
    assert event["count"] == 1


def test_repeated_event_is_aggregated_into_a_count(
    recorder: events.K8sEventRecorder, kube_api: k8s.ApiClient, kube_namespace: str
) -> None:
    obj = _subject(kube_api, kube_namespace)
    for _ in range(3):
        recorder.record(obj, type=ports.EventType.NORMAL, reason="PowerOn", message="on")
    recorder.record(obj, type=ports.EventType.NORMAL, reason="PowerOn", message="other")

    def settled() -> bool:
        found = e2e.events_for(kube_api, kube_namespace, "subject")
        return sorted(e["count"] for e in found) == [1, 3]

    e2e.wait_until(settled, timeout_s=10, what="two Events, counts 3 and 1")


def test_an_object_in_a_loop_is_spam_filtered(
    kube_api: k8s.ApiClient, kube_namespace: str
) -> None:
    registry = metrics.new_registry()
    counted = metrics.RuntimeMetrics(registry)
    recorder = events.K8sEventRecorder(kube_api, reporting_instance="test-instance",
                                       runtime_metrics=counted)
    stop = threading.Event()
    thread = threading.Thread(target=recorder.run, args=(stop,), daemon=True)
    thread.start()
    try:
        obj = _subject(kube_api, kube_namespace)
        for i in range(40):
            recorder.record(obj, type=ports.EventType.NORMAL, reason="Loop", message=f"n{i}")

        def outcomes() -> dict[str, float]:
            return {s.labels["outcome"]: s.value
                    for family in counted.events_sent.collect() for s in family.samples
                    if s.name.endswith("_total")}

        # Every Event recorded has been dealt with (written, or filtered as spam).
        e2e.wait_until(lambda: sum(outcomes().values()) == 40, timeout_s=20,
                       what="all 40 Events dealt with")
        assert outcomes() == {"created": 25, "spam_filtered": 15}
        assert len(e2e.events_for(kube_api, kube_namespace, "subject")) == 25
    finally:
        stop.set()
        thread.join(timeout=10)
