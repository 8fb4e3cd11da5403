"""core/controllerset.py and compose() over several controllers: one cache per kind shared by
every controller that needs it, a workqueue per controller, each fed by its own watches."""

import threading
import time
from collections.abc import Callable, Iterable, Iterator

import prometheus_client
import pytest

from metalcubed.controllers import manager, memory
from metalcubed.controllers.kube import metrics
from metalcubed.core import controllerset, memory_store, outcome, wiring
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import hardwaredata as hwd
from metalcubed.core.api import meta
from metalcubed.core.provisioning import fixture
from metalcubed.core.testing import fakes

NS = "lab"


class Recording:
    """A reconciler that records the keys it is asked for."""

    def __init__(self) -> None:
        self.keys: list[meta.ObjectKey] = []
        self.lock = threading.Lock()

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        with self.lock:
            self.keys.append(key)
        return outcome.Outcome.done()


def _data_of_host(host: bmh.BareMetalHost, lookup: wiring.IndexLookup,
                  ) -> Iterable[meta.ObjectKey]:
    return (host.key,)


def _by_secret(secret: meta.Secret, lookup: wiring.IndexLookup) -> Iterable[meta.ObjectKey]:
    return lookup("data-secrets", f"{secret.metadata.namespace}/{secret.metadata.name}")


def _secret_names(data: hwd.HardwareData) -> Iterable[str]:
    yield f"{data.metadata.namespace}/{data.metadata.annotations.get('secret', '')}"


SECOND_WIRING = wiring.Wiring(
    name="second",
    kind=hwd.HardwareData,
    watches=(
        wiring.Watch(hwd.HardwareData, wiring.own_key),
        wiring.Watch(bmh.BareMetalHost, _data_of_host),
        wiring.Watch(meta.Secret, _by_secret, label_selector=wiring.SECRET_SELECTOR),
    ),
    indexes=(wiring.Index("data-secrets", hwd.HardwareData, _secret_names),),
)


def _def(w: wiring.Wiring) -> controllerset.ControllerDef:
    return controllerset.ControllerDef(w, lambda deps: Recording())


def _wait(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def two() -> Iterator[tuple[memory.LockedStore, manager.Composition, Recording]]:
    clock = memory.WallClock()
    store = memory.LockedStore(memory_store.MemoryStore(clock=clock))
    registry = metrics.new_registry()
    recording = Recording()
    second = controllerset.ControllerDef(SECOND_WIRING, lambda deps: recording)
    options = manager.ManagerOptions(namespace=NS, concurrency=2, provisioner="fixture",
                                     fixture_delays=fixture.FixtureDelays())
    composition = manager.compose(
        options, backend=store, recorder=fakes.RecordingEventRecorder(), registry=registry,
        runtime_metrics=metrics.RuntimeMetrics(registry),
        bmo_metrics=metrics.PrometheusMetrics(registry),
        controllers=(controllerset.BAREMETALHOST, second),
    )
    stop = threading.Event()
    thread = threading.Thread(target=composition.manager.run, args=(stop,), daemon=True)
    thread.start()
    assert all(c.started.wait(5) for c in composition.controllers.values())
    yield store, composition, recording
    stop.set()
    thread.join(timeout=10)


def test_controllers_share_one_cache_per_kind_and_each_gets_its_own_keys(
    two: tuple[memory.LockedStore, manager.Composition, Recording],
) -> None:
    store, composition, recording = two
    assert list(composition.controllers) == ["baremetalhost", "second"]
    assert composition.controller is composition.controllers["baremetalhost"]
    kinds = [i.kind for i in composition.informers]
    assert sorted(k.KIND for k in kinds) == ["BareMetalHost", "HardwareData", "Secret"]
    secret_cache = composition.store.informer(meta.Secret)  # type: ignore[attr-defined]
    assert secret_cache.label_selector == wiring.SECRET_SELECTOR

    key = meta.ObjectKey(NS, "d1")
    store.create(hwd.HardwareData(metadata=meta.ObjectMeta(
        name="d1", namespace=NS, annotations={"secret": "s1"})))
    _wait(lambda: key in recording.keys)
    # A host named like it maps to it (the second controller's own mapper) and the BMH
    # controller reconciles the host itself: one watch event, two queues.
    host = bmh.BareMetalHost(metadata=meta.ObjectMeta(name="d1", namespace=NS),
                             spec=bmh.BareMetalHostSpec(online=False))
    before = len(recording.keys)
    store.create(host)
    _wait(lambda: len(recording.keys) > before)
    bmh_queue = composition.controllers["baremetalhost"].queue
    _wait(lambda: bmh_queue.stats()[1].gets >= 1)
    # A labelled Secret reaches the second controller through its index on the shared cache.
    before = len(recording.keys)
    store.create(meta.Secret(metadata=meta.ObjectMeta(
        name="s1", namespace=NS,
        labels={wiring.SECRET_LABEL[0]: wiring.SECRET_LABEL[1]})))
    _wait(lambda: len(recording.keys) > before)
    assert set(recording.keys) == {key}
    # Each queue is exported under its controller's name (one collector for all of them).
    exported = prometheus_client.generate_latest(
        composition.registry).decode()  # type: ignore[arg-type]
    for name in ("baremetalhost", "second"):
        assert f'workqueue_adds_total{{controller="{name}",name="{name}"}}' in exported


def test_watches_of_one_kind_with_different_selectors_are_refused() -> None:
    other = wiring.Wiring("other", meta.Secret, (wiring.Watch(meta.Secret, wiring.own_key),), ())
    with pytest.raises(ValueError, match="baremetalhost and other watch Secret"):
        controllerset.shared_caches(
            (controllerset.BAREMETALHOST, _def(other)))


def test_an_index_declared_twice_with_different_functions_is_refused() -> None:
    clash = wiring.Wiring("clash", bmh.BareMetalHost, (),
                          (wiring.Index(wiring.SECRETS_INDEX, bmh.BareMetalHost, lambda h: ()),))
    with pytest.raises(ValueError, match="'secrets' on BareMetalHost"):
        controllerset.shared_indexes(
            (controllerset.BAREMETALHOST, _def(clash)))
    same = wiring.Wiring("same", bmh.BareMetalHost, (), wiring.BAREMETALHOST.indexes)
    shared = controllerset.shared_indexes(
        (controllerset.BAREMETALHOST, _def(same)))
    assert len(shared) == 1


def test_select_names_unknown_controllers() -> None:
    assert controllerset.select(["baremetalhost"]) == (controllerset.BAREMETALHOST,)
    with pytest.raises(ValueError, match=r"unknown controller.*nope.*available: baremetalhost"):
        controllerset.select(["nope"])


def test_the_firmware_controllers_run_after_the_host_controller_with_upstreams_filter() -> None:
    names = [c.name for c in controllerset.CONTROLLERS]
    assert names[0] == "baremetalhost"
    assert {"hostfirmwaresettings", "hostfirmwarecomponents"} <= set(names)
    hfs_wiring = controllerset.HOSTFIRMWARESETTINGS.wiring
    host = bmh.BareMetalHost(metadata=meta.ObjectMeta(name="h", namespace=NS, generation=1),
                             spec=bmh.BareMetalHostSpec(online=True))
    watch = wiring.watch_for(hfs_wiring, bmh.BareMetalHost)
    assert watch is not None
    lookup: wiring.IndexLookup = lambda name, value: ()  # noqa: E731
    # A host's status-only or annotation change is not worth a pass; spec and owners are.
    assert wiring.keys_for_change(watch, host, host.with_meta(annotations={"a": "b"}),
                                  lookup) == []
    assert wiring.keys_for_change(watch, host, host.with_meta(generation=2), lookup) == [
        meta.ObjectKey(NS, "h")]
    owned = host.with_meta(owner_references=(meta.OwnerReference(
        api_version="v1", kind="X", name="x", uid="1"),))
    assert wiring.keys_for_change(watch, host, owned, lookup) == [meta.ObjectKey(NS, "h")]
    assert controllerset.shared_caches(controllerset.CONTROLLERS)[meta.Secret] == \
        wiring.SECRET_SELECTOR
