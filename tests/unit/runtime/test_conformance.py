"""The runtime's adapters satisfy their ports (checked by mypy, STYLE 5)."""

from kubernetes import client as k8s

from metalcubed.controllers import memory
from metalcubed.controllers.kube import events, informer, leader, metrics, runtime, worker
from metalcubed.core import memory_store, outcome, ports
from metalcubed.core.api import meta

_backend = memory.LockedStore(memory_store.MemoryStore(clock=memory.WallClock()))
_secrets = informer.Informer(_backend, meta.Secret)
_store: ports.Store = informer.CachedStore(_backend, [_secrets])  # type: ignore[list-item]
_metrics: ports.Metrics = metrics.PrometheusMetrics(metrics.new_registry())
_recorder: ports.EventRecorder = events.K8sEventRecorder(k8s.ApiClient(),
                                                         reporting_instance="conformance")
_syncable: worker.Syncable = _secrets
_informer_runnable: runtime.Runnable = _secrets
_recorder_runnable: runtime.Runnable = events.K8sEventRecorder(k8s.ApiClient(),
                                                               reporting_instance="c")


class _Done:
    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        return outcome.Outcome.done()


_reconciler: worker.Reconciler = _Done()
_controller: runtime.Runnable = worker.Controller(
    "c", _reconciler, clock=memory.WallClock(), workers=1
)
_elector: runtime.Elector = leader.LeaderElector(
    k8s.ApiClient(), leader.LeaseConfig(namespace="ns", identity="me")
)


def test_adapters_are_built_without_touching_a_server() -> None:
    assert _store.list(meta.Secret) == []
    _metrics.inc("metal3_reconcile_total")
