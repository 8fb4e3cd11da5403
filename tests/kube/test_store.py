"""K8sStore beyond the shared contract: error mapping and the watch's reflector behaviour.

Most tests use the session's cluster. Provoking 410 Gone needs a server whose watches read
etcd directly (the watch cache serves any version it still holds, compacted in etcd or not),
so the last tests start a second control plane with `--watch-cache=false` and compact etcd
through its HTTP gateway.
"""

import json
import logging
import socket
import threading
import time
import urllib.request
import warnings
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from kubernetes import client as k8s
from kubernetes import config as kconfig

from metalcubed.controllers.kube import localcluster, store
from metalcubed.core import outcome, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta
from tests.kube.conftest import wait_until

ADDED, MODIFIED, DELETED = (
    ports.WatchEventType.ADDED,
    ports.WatchEventType.MODIFIED,
    ports.WatchEventType.DELETED,
)


def _host(namespace: str, name: str, **spec: Any) -> bmh.BareMetalHost:
    return bmh.BareMetalHost(
        metadata=meta.ObjectMeta(name=name, namespace=namespace),
        spec=bmh.BareMetalHostSpec(online=False, **spec),
    )


def _secret(namespace: str, name: str, **labels: str) -> meta.Secret:
    return meta.Secret(metadata=meta.ObjectMeta(name=name, namespace=namespace, labels=labels))


# --- errors ----------------------------------------------------------------------------------


def test_schema_violation_is_invalid_naming_the_field(
    kube_store: store.K8sStore, kube_namespace: str
) -> None:
    host = _host(kube_namespace, "bad-boot-mode")
    # model_copy does not validate: this is how a buggy writer would send a bad value.
    bad = host.model_copy(update={"spec": host.spec.model_copy(update={"boot_mode": "BIOS"})})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydantic warns about serialising the bad enum value
        with pytest.raises(outcome.Invalid) as caught:
            kube_store.create(bad)
    assert [field for field, _ in caught.value.causes] == ["spec.bootMode"]
    assert "UEFI" in caught.value.causes[0][1]  # the message lists the supported values


def test_malformed_label_selector_is_invalid(
    kube_store: store.K8sStore, kube_namespace: str
) -> None:
    with pytest.raises(outcome.Invalid):
        kube_store.list(meta.Secret, namespace=kube_namespace, label_selector="a in (")


class Unserved(meta.Resource):
    """A kind whose CRD is not installed."""

    API_VERSION: ClassVar[str] = "test.metalcubed.io/v1"
    KIND: ClassVar[str] = "Unserved"
    PLURAL: ClassVar[str] = "unserveds"


def test_kind_without_crd_is_not_found_for_reads_and_watches(
    kube_store: store.K8sStore, kube_namespace: str
) -> None:
    with pytest.raises(outcome.NotFound):
        kube_store.list(Unserved, namespace=kube_namespace)
    with pytest.raises(outcome.NotFound):
        kube_store.watch(Unserved, lambda _e: None, namespace=kube_namespace)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_unreachable_server_is_transient_and_chained() -> None:
    config = k8s.Configuration()
    config.host = f"https://127.0.0.1:{_closed_port()}"
    config.verify_ssl = False
    config.retries = False
    api = k8s.ApiClient(config)
    try:
        with pytest.raises(outcome.TransientError) as caught:
            store.K8sStore(api, request_timeout_s=2).get(meta.Secret, meta.ObjectKey("a", "b"))
        assert caught.value.__cause__ is not None
        assert not isinstance(caught.value, outcome.Conflict | outcome.Gone)
    finally:
        api.close()


# --- watch -----------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.events: list[ports.WatchEvent[meta.Resource]] = []
        self.lock = threading.Lock()

    def __call__(self, event: ports.WatchEvent[Any]) -> None:
        with self.lock:
            self.events.append(event)

    def seen(self) -> list[tuple[ports.WatchEventType, str]]:
        with self.lock:
            return [(e.type, e.object.metadata.name) for e in self.events]


def test_watch_resumes_when_the_server_ends_the_stream(
    kube_api: k8s.ApiClient, kube_namespace: str
) -> None:
    short = store.K8sStore(kube_api, watch_timeout_s=1)  # the server closes it after 1-2 s
    events = Recorder()
    watch = short.watch(meta.Secret, events, namespace=kube_namespace)
    try:
        names = []
        for n in range(4):
            names.append(short.create(_secret(kube_namespace, f"s{n}")).metadata.name)
            time.sleep(1.2)  # several reconnects happen between the writes
        # A last write is the barrier: events arrive in resourceVersion order, so once it is
        # seen, any loss or repeat of the earlier ones has shown.
        names.append(short.create(_secret(kube_namespace, "zz-barrier")).metadata.name)
        wait_until(lambda: (ADDED, "zz-barrier") in events.seen(), timeout_s=10)
        assert events.seen() == [(ADDED, name) for name in names]  # none lost, none repeated
    finally:
        watch.stop()


def test_watch_reports_synced_after_the_initial_objects(
    kube_store: store.K8sStore, kube_namespace: str
) -> None:
    for n in range(3):
        kube_store.create(_secret(kube_namespace, f"pre{n}"))
    events = Recorder()
    watch = kube_store.watch(meta.Secret, events, namespace=kube_namespace)
    try:
        assert isinstance(watch, store.K8sWatch)
        assert watch.wait_synced(10)
        assert events.seen() == [(ADDED, f"pre{n}") for n in range(3)]
    finally:
        watch.stop()


def test_stop_inside_handler_ends_delivery(
    kube_store: store.K8sStore, kube_namespace: str
) -> None:
    for n in range(3):
        kube_store.create(_secret(kube_namespace, f"x{n}"))
    events = Recorder()
    holder: list[ports.Watch] = []
    ready = threading.Event()

    def stop_at_first(event: ports.WatchEvent[Any]) -> None:
        ready.wait(5)
        events(event)
        holder[0].stop()

    holder.append(kube_store.watch(meta.Secret, stop_at_first, namespace=kube_namespace))
    ready.set()
    wait_until(lambda: len(events.seen()) >= 1)
    kube_store.create(_secret(kube_namespace, "later"))
    holder[0].stop()  # from this thread it returns once the reflector thread has ended
    assert len(events.seen()) == 1


def test_relist_events_bridge_the_gap() -> None:
    def at(name: str, rv: str) -> meta.Secret:
        return _secret("ns", name).with_meta(resource_version=rv)

    known = {o.key: o for o in (at("kept", "1"), at("changed", "2"), at("gone", "3"))}
    listed = [at("changed", "7"), at("kept", "1"), at("new", "8")]
    events = store.relist_events(known, listed)
    assert [(e.type, e.object.metadata.name, e.object.metadata.resource_version)
            for e in events] == [(MODIFIED, "changed", "7"), (ADDED, "new", "8"),
                                 (DELETED, "gone", "3")]


# --- 410 Gone, with a watch-cache-less server ----------------------------------------------


@pytest.fixture(scope="module")
def etcd_cluster(
    kube_binaries: localcluster.Binaries, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[localcluster.Cluster]:
    directory = tmp_path_factory.mktemp("kube-no-watch-cache")
    cluster = localcluster.start(
        directory,
        binaries=kube_binaries,
        lifetime=localcluster.Lifetime.TIED,
        apiserver_args=["--watch-cache=false"],
    )
    try:
        yield cluster
    finally:
        localcluster.stop(directory)


@pytest.fixture
def etcd_api(etcd_cluster: localcluster.Cluster) -> Iterator[k8s.ApiClient]:
    api = kconfig.new_client_from_config(config_file=str(etcd_cluster.kubeconfig))
    yield api
    api.close()


@pytest.fixture
def etcd_store(etcd_api: k8s.ApiClient) -> store.K8sStore:
    return store.K8sStore(etcd_api, watch_timeout_s=1)


def _compact(cluster: localcluster.Cluster, revision: str) -> None:
    etcd = cluster.process("etcd")
    assert etcd is not None
    request = urllib.request.Request(
        f"http://127.0.0.1:{etcd.port}/v3/kv/compaction",
        data=json.dumps({"revision": revision, "physical": True}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200


def test_watch_from_compacted_version_raises_gone(
    etcd_cluster: localcluster.Cluster, etcd_store: store.K8sStore
) -> None:
    created = etcd_store.create(_secret("default", "compacted"))
    latest = etcd_store.update(created.with_meta(labels={"n": "1"}))
    latest = etcd_store.update(latest.with_meta(labels={"n": "2"}))
    assert latest.metadata.resource_version is not None
    _compact(etcd_cluster, latest.metadata.resource_version)
    with pytest.raises(outcome.Gone):
        etcd_store.watch(meta.Secret, lambda _e: None, namespace="default",
                         resource_version=created.metadata.resource_version)


def test_watch_relists_after_gone_mid_stream_and_keeps_delivering(
    etcd_cluster: localcluster.Cluster,
    etcd_api: k8s.ApiClient,
    etcd_store: store.K8sStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=store.__name__)
    mine, other = "relist-mine", "relist-other"
    for namespace in (mine, other):
        k8s.CoreV1Api(etcd_api).create_namespace({"metadata": {"name": namespace}})
    events = Recorder()
    watch = etcd_store.watch(meta.Secret, events, namespace=mine)
    try:
        etcd_store.create(_secret(mine, "before"))
        wait_until(lambda: events.seen() == [(ADDED, "before")], timeout_s=10)
        # Writes elsewhere move etcd past our last version; compacting there makes the
        # watch's next resume (within 1-2 s) a 410.
        last = etcd_store.create(_secret(other, "elsewhere"))
        for n in range(3):
            last = etcd_store.update(last.with_meta(labels={"n": str(n)}))
        assert last.metadata.resource_version is not None
        _compact(etcd_cluster, last.metadata.resource_version)
        wait_until(lambda: "expired; relisted" in caplog.text, timeout_s=15)
        etcd_store.create(_secret(mine, "after"))
        etcd_store.create(_secret(mine, "zz-barrier"))  # in order: once seen, all has shown
        wait_until(lambda: (ADDED, "zz-barrier") in events.seen(), timeout_s=10)
        assert events.seen() == [(ADDED, "before"), (ADDED, "after"), (ADDED, "zz-barrier")]
    finally:
        watch.stop()


def test_write_into_missing_namespace_names_the_namespace(kube_store: store.K8sStore) -> None:
    with pytest.raises(outcome.NotFound) as caught:
        kube_store.create(_secret("no-such-namespace", "s"))
    assert (caught.value.kind, caught.value.key) == ("Namespace", "no-such-namespace")
