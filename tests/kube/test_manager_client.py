"""The manager's client against the real API server: every request takes a token from the
QPS/burst limit and is counted (controllers/kube/client.py).

The limiter runs on a manual clock here (its `clock` and `sleep` are injected), so the test
checks the waits it imposes, not how long the run took.
"""

import pytest
from kubernetes import client as k8s

from metalcubed.controllers.kube import client, localcluster, metrics


class _ManualTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_qps_and_burst_bound_the_request_rate(kube_cluster: localcluster.Cluster) -> None:
    registry = metrics.new_registry()
    rt = metrics.RuntimeMetrics(registry)
    configuration = client.load_configuration(str(kube_cluster.kubeconfig))
    api = client.new_client(configuration, qps=10.0, burst=3, connections=4, runtime_metrics=rt)
    assert (api.throttle.bucket.qps, api.throttle.bucket.burst) == (10.0, 3)
    t = _ManualTime()
    api.throttle = client.Throttle(10.0, 3, clock=t.clock, sleep=t.sleep)
    try:
        core = k8s.CoreV1Api(api)
        for _ in range(13):
            core.list_namespace(limit=1)
    finally:
        api.close()
    # 3 at once, then 10 more at 10 per second: each waits 0.1 s for its token.
    assert t.slept == pytest.approx([0.1] * 10)
    assert api.requests_by_method == {"GET": 13}
    host = configuration.host.removeprefix("https://")
    assert registry.get_sample_value(
        "rest_client_requests_total", {"code": "200", "method": "GET", "host": host}
    ) == 13
    assert registry.get_sample_value(
        "rest_client_rate_limiter_duration_seconds_count", {"verb": "GET"}
    ) == 13
