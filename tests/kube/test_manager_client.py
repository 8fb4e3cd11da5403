"""The manager's client against the real API server: the QPS/burst limit holds and every
request is counted (controllers/kube/client.py)."""

import time

from metalcubed.controllers.kube import client, localcluster, metrics


def test_qps_and_burst_bound_the_request_rate(kube_cluster: localcluster.Cluster) -> None:
    registry = metrics.new_registry()
    rt = metrics.RuntimeMetrics(registry)
    configuration = client.load_configuration(str(kube_cluster.kubeconfig))
    api = client.new_client(configuration, qps=10.0, burst=3, connections=4, runtime_metrics=rt)
    try:
        from kubernetes import client as k8s

        core = k8s.CoreV1Api(api)
        began = time.monotonic()
        for _ in range(13):
            core.list_namespace(limit=1)
        elapsed = time.monotonic() - began
    finally:
        api.close()
    # 3 at once, then 10 more at 10 per second.
    assert elapsed >= 0.95, f"13 requests in {elapsed:.2f} s exceed qps 10 / burst 3"
    assert api.requests_by_method == {"GET": 13}
    host = configuration.host.removeprefix("https://")
    assert registry.get_sample_value(
        "rest_client_requests_total", {"code": "200", "method": "GET", "host": host}
    ) == 13
