"""Prometheus metrics for the manager: upstream BMO's names, controller-runtime's runtime series.

Two halves:
- `PrometheusMetrics` is the `ports.Metrics` adapter the reconcilers write through. Core names a
  metric by its full upstream name (`metal3_provisioning_state_change_total`) and passes the
  labels it knows; this module maps each name to a collector declared up front, with upstream's
  help text, label names and buckets (BMO `metrics.go`). Core's label keys are renamed to
  upstream's where they differ (`from`/`to` -> `prev_state`/`new_state`). Upstream also labels
  several series per host (`namespace`, `host`); those labels are left out here on purpose: one
  series per host and metric is unbounded cardinality at fleet scale, and nothing in BMO reads
  them back. An unknown name or a label mismatch is logged once and dropped (the port promises
  never to raise).
- `RuntimeMetrics` holds the series the runtime itself keeps, under controller-runtime's and
  client-go's names (`controller_runtime_reconcile_total`, `workqueue_depth`,
  `rest_client_requests_total`, `leader_election_master_status`, ...), so existing dashboards
  for Go controllers read a metalcubed manager unchanged.

Both register into one `CollectorRegistry` owned by the manager (not the process-global one, so
tests can build several managers in one process); `serve` exposes it over HTTP.
"""

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import prometheus_client as prom
from prometheus_client import core as prom_core
from prometheus_client import registry as prom_registry

from metalcubed.core import queue as core_queue

log = logging.getLogger(__name__)

SLOW_OPERATION_BUCKETS = (30.0, 90.0, 180.0, 360.0, 720.0, 1440.0)
"""Upstream's buckets for inspect/provision/deprovision durations (seconds)."""

_LABEL_ALIASES = {"from": "prev_state", "to": "new_state"}
"""Core's label key -> upstream's label name."""


@dataclass(frozen=True, slots=True)
class _Spec:
    help: str
    labels: tuple[str, ...] = ()
    histogram: bool = False
    buckets: tuple[float, ...] | None = None


BMO_METRICS: dict[str, _Spec] = {
    "metal3_reconcile_total": _Spec("The number of times hosts have been reconciled"),
    "metal3_reconcile_error_total": _Spec(
        "The number of times the operator has failed to reconcile a host"
    ),
    "metal3_host_error_total": _Spec(
        "The number of times hosts have entered an error state", ("error_type",)
    ),
    "metal3_operation_power_change_total": _Spec(
        "Number of times a host has been powered on or off", ("on_off",)
    ),
    "metal3_credentials_missing_total": _Spec(
        "Number of times a host's credentials are found to be missing"
    ),
    "metal3_credentials_invalid_total": _Spec(
        "Number of times a host's credentials are found to be invalid"
    ),
    "metal3_credentials_unhandled_error_total": _Spec(
        "Number of times getting a host's credentials fails in an unexpected way"
    ),
    "metal3_credentials_updated_total": _Spec("Number of times a host's credentials change"),
    "metal3_credentials_no_management_access_total": _Spec(
        "Number of times a host management interface is unavailable"
    ),
    "metal3_waiting_for_preprov_image_total": _Spec(
        "Number of times the preprovisioning image is required but not available"
    ),
    "metal3_host_config_data_error_total": _Spec(
        "Number of times the operator has failed to retrieve host configuration data",
        ("host_data_type",),
    ),
    "metal3_delayed__provisioning_total": _Spec(
        "The number of times hosts have been delayed while provisioning due a busy provisioner"
    ),
    "metal3_delayed__deprovisioning_total": _Spec(
        "The number of times hosts have been delayed while deprovisioning due a busy provisioner"
    ),
    "metal3_operation_register_duration_seconds": _Spec(
        "Length of time per registration per host", histogram=True
    ),
    "metal3_operation_inspect_duration_seconds": _Spec(
        "Length of time per hardware inspection per host",
        histogram=True,
        buckets=SLOW_OPERATION_BUCKETS,
    ),
    "metal3_operation_provision_duration_seconds": _Spec(
        "Length of time per hardware provision operation per host",
        histogram=True,
        buckets=SLOW_OPERATION_BUCKETS,
    ),
    "metal3_operation_deprovision_duration_seconds": _Spec(
        "Length of time per hardware deprovision operation per host",
        histogram=True,
        buckets=SLOW_OPERATION_BUCKETS,
    ),
    "metal3_provisioning_state_change_total": _Spec(
        "Number of times a state transition has occurred", ("prev_state", "new_state")
    ),
    "metal3_host_registration_required_total": _Spec(
        "Number of times a host is found to be unregistered"
    ),
    "metal3_host_unmanaged_total": _Spec("Number of times a host is found to be unmanaged"),
    "metal3_delete_without_deprovisioning_total": _Spec(
        "Number of times a host is deleted despite deprovisioning failing"
    ),
    "metal3_delete_without_powering_off_total": _Spec(
        "Number of times a host is deleted despite powering off failing"
    ),
    "metal3_provisioner_not_ready_total": _Spec("Number of times a host is not provision ready"),
    "metal3_delete_delayed_for_detached_total": _Spec(
        "Number of times a host delete action was delayed due to the detached annotation"
    ),
}
"""Every metric BMO exports (bmo.md section 11), declared once: name -> help, labels, type."""


def _collector_name(name: str) -> str:
    # prometheus_client appends `_total` to counters itself and refuses a name that has it.
    return name.removesuffix("_total")


class PrometheusMetrics:
    """`ports.Metrics` over prometheus_client collectors. Thread-safe; never raises."""

    def __init__(self, registry: prom.CollectorRegistry) -> None:
        self._counters: dict[str, prom.Counter] = {}
        self._histograms: dict[str, prom.Histogram] = {}
        self._labels: dict[str, tuple[str, ...]] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        for name, spec in BMO_METRICS.items():
            self._labels[name] = spec.labels
            if spec.histogram:
                self._histograms[name] = prom.Histogram(
                    name, spec.help, spec.labels, registry=registry,
                    buckets=spec.buckets or prom.Histogram.DEFAULT_BUCKETS,
                )
            else:
                self._counters[name] = prom.Counter(
                    _collector_name(name), spec.help, spec.labels, registry=registry
                )

    def inc(self, name: str, labels: dict[str, str] | None = None) -> None:
        counter = self._counters.get(name)
        if counter is None:
            self._warn(name, "is not a declared counter")
            return
        try:
            (counter.labels(**self._values(name, labels)) if self._labels[name] else counter).inc()
        except ValueError as exc:  # pragma: no cover - only a malformed label value
            self._warn(name, f"rejected labels {labels}: {exc}")

    def observe(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        histogram = self._histograms.get(name)
        if histogram is None:
            self._warn(name, "is not a declared histogram")
            return
        try:
            target = histogram.labels(**self._values(name, labels)) if self._labels[name] \
                else histogram
            target.observe(value)
        except ValueError as exc:  # pragma: no cover - only a malformed label value
            self._warn(name, f"rejected labels {labels}: {exc}")

    def _values(self, name: str, labels: Mapping[str, str] | None) -> dict[str, str]:
        """Upstream's label names, each with core's value ("" when core gave none)."""
        given = {_LABEL_ALIASES.get(k, k): v for k, v in (labels or {}).items()}
        return {label: given.get(label, "") for label in self._labels[name]}

    def _warn(self, name: str, why: str) -> None:
        with self._lock:
            if name in self._warned:
                return
            self._warned.add(name)
        log.warning("metric %s %s; dropped", name, why)


class RuntimeMetrics:
    """The runtime's own series, under controller-runtime's and client-go's names."""

    def __init__(self, registry: prom.CollectorRegistry) -> None:
        self.registry = registry
        self._queues: _QueueCollector | None = None
        self.reconcile_total = prom.Counter(
            "controller_runtime_reconcile", "Total number of reconciliations per controller",
            ("controller", "result"), registry=registry,
        )
        self.reconcile_errors = prom.Counter(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller", ("controller",),
            registry=registry,
        )
        self.reconcile_panics = prom.Counter(
            "controller_runtime_reconcile_panics",
            "Total number of reconciliations that raised an unexpected exception",
            ("controller",), registry=registry,
        )
        self.terminal_errors = prom.Counter(
            "controller_runtime_terminal_reconcile_errors",
            "Total number of terminal reconciliation errors per controller", ("controller",),
            registry=registry,
        )
        self.reconcile_time = prom.Histogram(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller", ("controller",),
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
            registry=registry,
        )
        self.max_concurrent = prom.Gauge(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller", ("controller",),
            registry=registry,
        )
        self.active_workers = prom.Gauge(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller", ("controller",),
            registry=registry,
        )
        self.queue_work_duration = prom.Histogram(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes.",
            ("name", "controller"),
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0),
            registry=registry,
        )
        self.rest_requests = prom.Counter(
            "rest_client_requests",
            "Number of HTTP requests, partitioned by status code, method, and host.",
            ("code", "method", "host"), registry=registry,
        )
        self.rest_latency = prom.Histogram(
            "rest_client_request_duration_seconds",
            "Request latency in seconds. Broken down by verb.", ("verb",),
            buckets=(0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0),
            registry=registry,
        )
        self.rate_limiter_wait = prom.Histogram(
            "rest_client_rate_limiter_duration_seconds",
            "Client side rate limiter latency in seconds. Broken down by verb.", ("verb",),
            buckets=(0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0),
            registry=registry,
        )
        self.leader_status = prom.Gauge(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates "
            "backup, 1 indicates master.", ("name",), registry=registry,
        )
        self.events_sent = prom.Counter(
            "metalcubed_events", "Kubernetes Events written, by outcome (created, "
            "aggregated, dropped, failed)", ("outcome",), registry=registry,
        )
        self.informer_events = prom.Counter(
            "metalcubed_informer_events", "Watch events applied to the informer cache",
            ("kind", "type"), registry=registry,
        )


    def watch_queue(
        self, name: str, stats: Callable[[], tuple[int, core_queue.QueueMetrics]]
    ) -> None:
        """Export a workqueue's depth and counters (read at scrape time, no per-add cost).
        Every controller's queue is one labelled series of the same families (one collector:
        a registry refuses a family registered twice)."""
        if self._queues is None:
            self._queues = _QueueCollector()
            self.registry.register(self._queues)
        self._queues.add(name, stats)


class _QueueCollector(prom_registry.Collector):
    """client-go's workqueue series, read from the core queues' own counters on scrape."""

    def __init__(self) -> None:
        self._queues: dict[str, Callable[[], tuple[int, core_queue.QueueMetrics]]] = {}

    def add(self, name: str, stats: Callable[[], tuple[int, core_queue.QueueMetrics]]) -> None:
        self._queues[name] = stats

    def collect(self) -> Iterator[prom_core.Metric]:
        labels = ["name", "controller"]
        gauge = prom_core.GaugeMetricFamily(
            "workqueue_depth", "Current depth of workqueue", labels=labels
        )
        adds = prom_core.CounterMetricFamily(
            "workqueue_adds", "Total number of adds handled by workqueue", labels=labels
        )
        retries = prom_core.CounterMetricFamily(
            "workqueue_retries", "Total number of retries handled by workqueue", labels=labels
        )
        waited = prom_core.SummaryMetricFamily(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            labels=labels,
        )
        for name, stats in list(self._queues.items()):
            depth, m = stats()
            values = [name, name]
            gauge.add_metric(values, depth)
            adds.add_metric(values, m.adds)
            retries.add_metric(values, m.retries)
            waited.add_metric(values, count_value=m.gets, sum_value=m.wait_s_total)
        yield gauge
        yield adds
        yield retries
        yield waited


def new_registry() -> prom.CollectorRegistry:
    """A registry with the process and platform collectors (RSS, CPU seconds, fds) added.

    The `*_created` series prometheus_client adds to counters are turned off (process-wide):
    Go controllers do not export them and dashboards do not expect them.
    """
    prom.disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = prom.CollectorRegistry(auto_describe=True)
    prom.ProcessCollector(registry=registry)
    prom.PlatformCollector(registry=registry)
    prom.GCCollector(registry=registry)
    return registry
