"""`compose` with the engine (controllers/manager.py): the engine's services start with the
controller and stop with it, on real loopback sockets; until they run, the provisioner is not
ready; readiness fails only on a leader whose services are not up."""

import json
import socket
import threading
import urllib.error
import urllib.request

import pytest

from metalcubed.controllers import manager, memory
from metalcubed.controllers.kube import metrics
from metalcubed.core import controllerset, memory_store, outcome, wiring
from metalcubed.core.testing import fakes


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as rsp:
            json.loads(rsp.read())
            return int(rsp.status)
    except urllib.error.HTTPError as err:
        return err.code


def _compose() -> manager.Composition:
    clock = memory.WallClock()
    store = memory.LockedStore(memory_store.MemoryStore(clock=clock))
    registry = metrics.new_registry()
    options = manager.ManagerOptions(
        namespace="lab", concurrency=2, provisioner="engine",
        agent_api_bind_address="127.0.0.1:0", boot_server_bind_address="127.0.0.1:0",
    )
    return manager.compose(
        options, backend=store, recorder=fakes.RecordingEventRecorder(), registry=registry,
        runtime_metrics=metrics.RuntimeMetrics(registry),
        bmo_metrics=metrics.PrometheusMetrics(registry), clock=clock,
    )


@pytest.fixture
def composed() -> manager.Composition:
    return _compose()  # builds only: nothing listens until a test runs the manager


def test_the_composition_watches_what_core_wiring_names(composed: manager.Composition) -> None:
    # compose runs BMO's controllers unless told otherwise (`build` picks by --controllers)
    assert [i.kind for i in composed.informers] == list(
        controllerset.shared_caches(controllerset.BMO_CONTROLLERS))
    assert composed.controller.name == wiring.BAREMETALHOST.name


def test_the_engine_is_not_ready_before_its_services_run(composed: manager.Composition) -> None:
    services = composed.services
    assert services is not None and composed.provisioner_factory is services
    assert services.ready() is None  # not leading: nothing to serve, a standby is ready
    with pytest.raises(outcome.ProvisionerNotReady):
        services.new_provisioner(None, lambda reason, message: None)  # type: ignore[arg-type]


def test_services_run_with_the_manager_and_stop_with_it(composed: manager.Composition) -> None:
    services = composed.services
    assert services is not None
    stop = threading.Event()
    thread = threading.Thread(target=composed.manager.run, args=(stop,), daemon=True)
    thread.start()
    try:
        # The controller waits for the services as for a cache: once it runs, they listen.
        assert composed.controller.started.wait(10)
        assert services.ready() is None
        assert composed.manager.probes.ready()
        api = services.services.lookup_url
        assert api.startswith("http://127.0.0.1:")
        assert _get(f"{api}/v1") == 200  # Ironic's version document
        assert services.services.boot_url.startswith("http://127.0.0.1:")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert services.ready() == "engine services not running"
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{api}/v1", timeout=5)


def test_a_taken_port_stops_the_manager_naming_the_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        clock = memory.WallClock()
        registry = metrics.new_registry()
        composition = manager.compose(
            manager.ManagerOptions(namespace="lab", agent_api_bind_address=f"127.0.0.1:{port}",
                                   boot_server_bind_address="127.0.0.1:0"),
            backend=memory.LockedStore(memory_store.MemoryStore(clock=clock)),
            recorder=fakes.RecordingEventRecorder(), registry=registry, runtime_metrics=None,
            bmo_metrics=metrics.PrometheusMetrics(registry), clock=clock,
        )
        assert composition.manager.run(threading.Event()) == 1  # a runnable failed
        assert composition.services is not None
        assert not composition.controller.started.is_set()
