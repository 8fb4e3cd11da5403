"""Metrics under upstream's names, the probe and scrape endpoints, the client's rate limit."""

import pathlib
import re
import threading
import urllib.error
import urllib.request

import prometheus_client as prom
import pytest

from metalcubed.controllers.kube import client, health, metrics
from metalcubed.core import ports

CORE = pathlib.Path(__file__).resolve().parents[3] / "core"


def _sample(registry: prom.CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels or None)


def test_every_metric_core_names_is_declared() -> None:
    literal = re.compile(r"\"(metal3_[a-z_]+)\"")
    used = {m for path in CORE.rglob("*.py") for m in literal.findall(path.read_text())}
    used |= {f"metal3_delayed__{k}_total" for k in ("provisioning", "deprovisioning")}
    used |= {f"metal3_operation_{op}_duration_seconds"
             for op in ("register", "inspect", "provision", "deprovision")}
    assert used - set(metrics.BMO_METRICS) == set()


def test_counters_use_upstream_names_and_labels() -> None:
    registry = metrics.new_registry()
    m: ports.Metrics = metrics.PrometheusMetrics(registry)
    m.inc("metal3_reconcile_total")
    m.inc("metal3_provisioning_state_change_total", {"from": "registering", "to": "inspecting"})
    m.inc("metal3_host_error_total", {"error_type": "registration error"})
    m.observe("metal3_operation_inspect_duration_seconds", 42.0)
    assert _sample(registry, "metal3_reconcile_total") == 1
    assert _sample(registry, "metal3_provisioning_state_change_total",
                   prev_state="registering", new_state="inspecting") == 1
    assert _sample(registry, "metal3_host_error_total", error_type="registration error") == 1
    assert _sample(registry, "metal3_operation_inspect_duration_seconds_bucket", le="90.0") == 1
    assert _sample(registry, "metal3_operation_inspect_duration_seconds_bucket", le="30.0") == 0


def test_unknown_metric_or_labels_never_raise() -> None:
    m = metrics.PrometheusMetrics(metrics.new_registry())
    m.inc("metal3_no_such_total")
    m.observe("metal3_reconcile_total", 1.0)
    m.inc("metal3_host_error_total", {"unexpected": "x"})


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_probes_report_failing_checks() -> None:
    probes = health.Probes()
    ready = threading.Event()
    probes.add_ready_check("caches", lambda: None if ready.is_set() else "not synced")
    server = health.HttpServer(("127.0.0.1", 0), probes.routes(), name="health")
    server.start()
    try:
        base = f"http://127.0.0.1:{server.address[1]}"
        assert _get(base + "/healthz") == (200, "ok")
        code, body = _get(base + "/readyz")
        assert code == 500 and "[-]caches failed: not synced" in body
        ready.set()
        assert _get(base + "/readyz") == (200, "ok")
        code, body = _get(base + "/readyz?verbose")
        assert code == 200 and "[+]caches ok" in body
        assert _get(base + "/readyz/caches")[0] == 200
        assert _get(base + "/readyz/nope")[0] == 404
        assert _get(base + "/other")[0] == 404
    finally:
        server.stop()


def test_metrics_endpoint_serves_the_registry() -> None:
    registry = metrics.new_registry()
    metrics.PrometheusMetrics(registry).inc("metal3_reconcile_total")
    server = health.HttpServer(("127.0.0.1", 0), health.metrics_route(registry), name="metrics")
    server.start()
    try:
        code, body = _get(f"http://127.0.0.1:{server.address[1]}/metrics")
    finally:
        server.stop()
    assert code == 200
    assert "metal3_reconcile_total 1.0" in body
    assert "process_resident_memory_bytes" in body
    assert "_created" not in body


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (":8080", ("0.0.0.0", 8080)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::1]:9440", ("::1", 9440)),
        ("0", None),
        ("", None),
    ],
    ids=["all-interfaces", "ephemeral", "ipv6", "disabled", "empty"],
)
def test_bind_addresses_use_go_syntax(text: str, expected: tuple[str, int] | None) -> None:
    assert health.parse_address(text) == expected


def test_bind_address_without_port_is_rejected() -> None:
    with pytest.raises(ValueError, match="host:port"):
        health.parse_address("localhost")


class _FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    t = _FakeTime()
    bucket = client.Throttle(10.0, 3, clock=t.clock, sleep=t.sleep)
    waits = [bucket.acquire() for _ in range(5)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(0.1)
    assert waits[4] == pytest.approx(0.1)  # the previous waiter slept its turn
    t.now += 10.0
    assert [bucket.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]


def test_token_bucket_reservations_queue_concurrent_callers() -> None:
    t = _FakeTime()
    bucket = client.Throttle(2.0, 1, clock=t.clock, sleep=t.sleep)
    assert [bucket.reserve() for _ in range(4)] == pytest.approx([0.0, 0.5, 1.0, 1.5])


def test_token_bucket_without_qps_is_unlimited() -> None:
    t = _FakeTime()
    bucket = client.Throttle(0.0, 1, clock=t.clock, sleep=t.sleep)
    assert [bucket.acquire() for _ in range(1000)] == [0.0] * 1000
    assert t.slept == []
