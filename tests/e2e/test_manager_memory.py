"""The composed manager (controllers/manager.py) driving hosts through the memory store.

Same wiring, runtime and reconciler as production, with the locked memory store instead of the
API server and fast fixture delays, so the event mapping (host filter, Secret index,
HardwareData owner) is checked in seconds without a cluster.
"""

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from metalcubed.controllers import manager, memory
from metalcubed.controllers.kube import metrics
from metalcubed.core import memory_store, wiring
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import hardwaredata as hwd
from metalcubed.core.api import meta
from metalcubed.core.provisioning import fixture
from metalcubed.core.testing import fakes

NS = "lab"
FAST = fixture.FixtureDelays(
    register_s=0.05, inspect_s=0.05, adopt_s=0.05, provision_s=0.05, deprovision_s=0.05,
    power_s=0.05, delete_s=0.05,
)
S = bmh.ProvisioningState


@dataclass
class Lab:
    store: memory.LockedStore
    events: fakes.RecordingEventRecorder
    composition: manager.Composition
    runtime_metrics: metrics.RuntimeMetrics

    def host(self, name: str) -> bmh.BareMetalHost:
        return self.store.get(bmh.BareMetalHost, meta.ObjectKey(NS, name))

    def state(self, name: str) -> S:
        return self.host(name).status.provisioning.state

    def reconciles(self) -> float:
        total = 0.0
        for family in self.runtime_metrics.reconcile_total.collect():
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
        return total


@pytest.fixture
def lab() -> Iterator[Lab]:
    clock = memory.WallClock()
    store = memory.LockedStore(memory_store.MemoryStore(clock=clock))
    registry = metrics.new_registry()
    rt = metrics.RuntimeMetrics(registry)
    recorder = fakes.RecordingEventRecorder()
    options = manager.ManagerOptions(namespace=NS, concurrency=4, provisioner="fixture",
                                      fixture_delays=FAST)
    composition = manager.compose(
        options, backend=store, recorder=recorder, registry=registry, runtime_metrics=rt,
        bmo_metrics=metrics.PrometheusMetrics(registry),
    )
    stop = threading.Event()
    thread = threading.Thread(target=composition.manager.run, args=(stop,), daemon=True)
    thread.start()
    assert composition.controller.started.wait(5)
    yield Lab(store, recorder, composition, rt)
    stop.set()
    thread.join(timeout=10)


def _wait(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _secret(name: str = "creds", password: str = "secret") -> meta.Secret:
    return meta.Secret(
        metadata=meta.ObjectMeta(name=name, namespace=NS),
        string_data={"username": "admin", "password": password},
    )


def _host(name: str, *, creds: str = "creds", **annotations: str) -> bmh.BareMetalHost:
    return bmh.BareMetalHost(
        metadata=meta.ObjectMeta(name=name, namespace=NS, annotations=annotations),
        spec=bmh.BareMetalHostSpec(
            online=True, bmc=bmh.BMCDetails(address="ipmi://192.0.2.1", credentials_name=creds)
        ),
    )


IMAGE = bmh.Image(
    url="http://images/os.qcow2", checksum="abc", checksum_type=bmh.ChecksumType.SHA256
)


def test_host_goes_through_its_whole_lifecycle(lab: Lab) -> None:
    lab.store.create(_secret())
    lab.store.create(_host("h1"))
    _wait(lambda: lab.state("h1") == S.AVAILABLE)
    host = lab.host("h1")
    assert bmh.FINALIZER in host.metadata.finalizers
    assert lab.store.get(hwd.HardwareData, host.key).spec.hardware is not None

    lab.store.update(host.model_copy(update={"spec": host.spec.model_copy(
        update={"image": IMAGE})}))
    _wait(lambda: lab.state("h1") == S.PROVISIONED)

    host = lab.host("h1")
    lab.store.update(host.model_copy(update={"spec": host.spec.model_copy(
        update={"image": None})}))
    _wait(lambda: lab.state("h1") == S.AVAILABLE)

    lab.store.delete(bmh.BareMetalHost, host.key)
    _wait(lambda: not lab.store.list(bmh.BareMetalHost, namespace=NS))
    assert "Registered" in lab.events.reasons(host.key)


def test_a_labelled_secret_created_late_reconciles_the_host_at_once(lab: Lab) -> None:
    lab.store.create(_host("h1"))
    _wait(lambda: lab.host("h1").status.error_type == bmh.ErrorType.REGISTRATION)
    # The missing-Secret retry is 10 s away: only the Secret watch can make this quick, and it
    # sees only Secrets labelled as upstream's (an unlabelled one waits for the retry).
    secret = _secret()
    lab.store.create(secret.with_meta(labels={wiring.SECRET_LABEL[0]: wiring.SECRET_LABEL[1]}))
    _wait(lambda: lab.state("h1") == S.AVAILABLE, timeout_s=5)


def test_an_unlabelled_secret_is_labelled_when_a_host_first_reads_it(lab: Lab) -> None:
    lab.store.create(_secret())
    lab.store.create(_secret("unrelated"))
    lab.store.create(_host("h1"))
    _wait(lambda: lab.state("h1") == S.AVAILABLE)
    creds = lab.store.get(meta.Secret, meta.ObjectKey(NS, "creds"))
    assert creds.metadata.labels == {wiring.SECRET_LABEL[0]: wiring.SECRET_LABEL[1]}
    assert creds.value("password") == "secret"  # only the label was written
    cache = lab.composition.store.informer(meta.Secret)  # type: ignore[attr-defined]
    _wait(lambda: cache.get(creds.key) is not None)
    assert [s.metadata.name for s in cache.list()] == ["creds"]
    unrelated = lab.store.get(meta.Secret, meta.ObjectKey(NS, "unrelated"))
    assert unrelated.metadata.labels == {}
    # The Secret's changes reconcile the host through the (label-selected) watch.
    lab.store.update(creds.model_copy(update={"string_data": {"username": "a",
                                                              "password": ""}}))
    _wait(lambda: lab.host("h1").status.error_type == bmh.ErrorType.REGISTRATION)


def test_bad_credentials_are_recorded_once_without_a_retry_loop(lab: Lab) -> None:
    lab.store.create(_secret(password=""))
    lab.store.create(_host("h1"))
    _wait(lambda: lab.host("h1").status.error_type == bmh.ErrorType.REGISTRATION)
    host = lab.host("h1")
    assert "password" in host.status.error_message
    assert host.status.operational_status == bmh.OperationalStatus.ERROR
    queue = lab.composition.controller.queue
    _wait(queue.idle)
    # No retry loop: the next pass (if any) is scheduled well ahead, not at once.
    at = queue.next_ready_at()
    assert at is None or (at - memory.WallClock().now()).total_seconds() >= 5, (
        "a bad Secret must not spin the controller")
    assert "BMCCredentialError" in [e.reason for e in lab.events.warnings()]
    # Fixing the Secret is picked up through the Secret watch.
    fixed = lab.store.get(meta.Secret, meta.ObjectKey(NS, "creds"))
    lab.store.update(fixed.model_copy(update={"string_data": {"username": "a",
                                                              "password": "b"}}))
    _wait(lambda: lab.state("h1") == S.AVAILABLE)


def test_status_only_updates_do_not_trigger_reconciles(lab: Lab) -> None:
    lab.store.create(_secret())
    lab.store.create(_host("h1"))
    queue = lab.composition.controller.queue
    _wait(lambda: lab.state("h1") == S.AVAILABLE and queue.idle())

    def adds() -> int:
        return queue.stats()[1].adds

    before = adds()
    host = lab.host("h1")
    # With nothing else writing, the writer delivers its own watch event before returning, so
    # the handler has run (and would have queued the key) by the next line.
    lab.store.update_status(host.model_copy(update={"status": host.status.model_copy(
        update={"hardware_profile": "someone-else"})}))
    assert adds() == before, "a status-only update queued a reconcile"
    lab.store.update(lab.host("h1").with_meta(annotations={"note": "x"}))
    assert adds() == before + 1


def test_paused_host_is_left_alone(lab: Lab) -> None:
    lab.store.create(_secret())
    lab.store.create(_host("h1", **{bmh.PAUSED_ANNOTATION: ""}))
    queue = lab.composition.controller.queue
    _wait(lambda: lab.reconciles() >= 1 and queue.idle())
    assert lab.state("h1") == S.NONE  # looked at, left alone
    assert queue.next_ready_at() is None  # and not looked at again until it changes
    host = lab.host("h1")
    lab.store.update(host.with_meta(annotations={}))
    _wait(lambda: lab.state("h1") == S.AVAILABLE)


def test_detached_host_is_detached_and_reattached(lab: Lab) -> None:
    lab.store.create(_secret())
    lab.store.create(_host("h1"))
    _wait(lambda: lab.state("h1") == S.AVAILABLE)
    lab.store.update(lab.host("h1").with_meta(annotations={bmh.DETACHED_ANNOTATION: ""}))
    _wait(lambda: lab.host("h1").status.operational_status == bmh.OperationalStatus.DETACHED)
    lab.store.update(lab.host("h1").with_meta(annotations={}))
    _wait(lambda: lab.host("h1").status.operational_status == bmh.OperationalStatus.OK)
    assert lab.state("h1") == S.AVAILABLE


def test_many_hosts_converge(lab: Lab) -> None:
    lab.store.create(_secret())
    for i in range(40):
        lab.store.create(_host(f"h{i:02d}"))
    _wait(lambda: all(h.status.provisioning.state == S.AVAILABLE
                      for h in lab.store.list(bmh.BareMetalHost, namespace=NS)), timeout_s=20)


def test_host_update_filter_matches_upstream() -> None:
    host = _host("h").with_meta(generation=1, resource_version="1")
    status_only = host.model_copy(update={"status": host.status.model_copy(
        update={"error_count": 3})})
    assert not wiring.host_update_matters(host, status_only)
    assert wiring.host_update_matters(host, host.with_meta(generation=2))
    assert wiring.host_update_matters(host, host.with_meta(annotations={"a": "b"}))
    assert wiring.host_update_matters(host, host.with_meta(finalizers=("f",)))
    assert not wiring.host_update_matters(host, host.with_meta(labels={"a": "b"}))


def test_secrets_index_names_every_secret_a_host_reads() -> None:
    host = _host("h").model_copy(update={"spec": _host("h").spec.model_copy(update={
        "user_data": meta.SecretReference(name="ud"),
        "network_data": meta.SecretReference(name="nd", namespace="other"),
        "preprovisioning_network_data_name": "ppnd",
    })})
    assert list(wiring.secrets_of(host)) == [
        f"{NS}/creds", f"{NS}/ud", "other/nd", f"{NS}/ppnd",
    ]


def test_hardware_data_maps_to_its_owner_host() -> None:
    owned = hwd.HardwareData(metadata=meta.ObjectMeta(
        name="x", namespace=NS,
        owner_references=(meta.OwnerReference(api_version=bmh.API_VERSION,
                                              kind="BareMetalHost", name="h", uid="u"),),
    ))
    assert list(wiring.owner_host(owned)) == [meta.ObjectKey(NS, "h")]
    orphan = hwd.HardwareData(metadata=meta.ObjectMeta(name="h2", namespace=NS))
    assert list(wiring.owner_host(orphan)) == [meta.ObjectKey(NS, "h2")]


def test_concurrency_defaults_follow_upstream() -> None:
    assert manager.default_concurrency({"BMO_CONCURRENCY": "17"}) == 17
    assert 2 <= manager.default_concurrency({}) <= 8
    assert 2 <= manager.default_concurrency({"BMO_CONCURRENCY": "0"}) <= 8
    with pytest.raises(ValueError, match="BMO_CONCURRENCY"):
        manager.default_concurrency({"BMO_CONCURRENCY": "many"})
