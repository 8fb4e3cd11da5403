"""core/wiring.py: the BareMetalHost controller's watches, filter, mappers and the one
outcome-to-queue switch, and both runtimes (kube worker, fleet model) acting on it alike."""

import random
from collections.abc import Hashable
from datetime import datetime

import pytest
import simpy

from metalcubed.controllers.kube import worker
from metalcubed.core import clock, outcome, ports, wiring
from metalcubed.core import queue as core_queue
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import hardwaredata as hwd
from metalcubed.core.api import meta
from metalcubed.simulators.fleet import cost
from metalcubed.simulators.fleet import distribution as dist
from metalcubed.simulators.fleet import runtime as fleet_runtime

NS = "ns"
V = wiring.Verdict


def _host(name: str = "h", *, generation: int = 1, creds: str = "creds",
          **spec: object) -> bmh.BareMetalHost:
    return bmh.BareMetalHost(
        metadata=meta.ObjectMeta(name=name, namespace=NS, generation=generation),
        spec=bmh.BareMetalHostSpec.model_validate({
            "online": True, "bmc": {"address": "ipmi://192.0.2.1", "credentialsName": creds},
            **spec,
        }),
    )


def _secret(name: str = "creds", *, version: str | None = None) -> meta.Secret:
    return meta.Secret(metadata=meta.ObjectMeta(name=name, namespace=NS,
                                                 resource_version=version),
                       string_data={"username": "u", "password": "p"})


def _index(*hosts: bmh.BareMetalHost) -> wiring.IndexTable:
    (index,) = wiring.BAREMETALHOST.indexes
    table = wiring.IndexTable(index)
    for host in hosts:
        table.put(host)
    return table


def _lookup(table: wiring.IndexTable) -> wiring.IndexLookup:
    return lambda name, value: table.keys(value)


def _watch(kind: type[meta.Resource]) -> "wiring.Watch[meta.Resource]":
    found = wiring.watch_for(wiring.BAREMETALHOST, kind)
    assert found is not None
    return found


NO_INDEX: wiring.IndexLookup = lambda name, value: ()  # noqa: E731


# --- the wiring as data ---------------------------------------------------------------------


def test_the_host_controller_watches_hosts_secrets_and_hardware_data() -> None:
    w = wiring.BAREMETALHOST
    assert w.kind is bmh.BareMetalHost
    assert w.kinds == (bmh.BareMetalHost, meta.Secret, hwd.HardwareData)
    assert [i.name for i in w.indexes] == [wiring.SECRETS_INDEX]
    assert _watch(bmh.BareMetalHost).update_filter is wiring.host_update_matters
    assert _watch(meta.Secret).update_filter is None
    assert wiring.watch_for(wiring.Wiring("none", bmh.BareMetalHost, (), ()),
                            bmh.BareMetalHost) is None


# --- the host update filter -----------------------------------------------------------------


def test_host_filter_passes_spec_annotation_finalizer_and_deletion_changes_only() -> None:
    host = _host()
    status_only = host.model_copy(update={"status": host.status.model_copy(update={
        "error_message": "changed"})})
    assert not wiring.host_update_matters(host, status_only)
    assert not wiring.host_update_matters(host, host.with_meta(labels={"a": "b"}))
    assert not wiring.host_update_matters(host, host.with_meta(resource_version="99"))
    assert wiring.host_update_matters(host, host.with_meta(generation=2))
    assert wiring.host_update_matters(host, host.with_meta(annotations={"a": "b"}))
    assert wiring.host_update_matters(host, host.with_meta(finalizers=("f",)))
    assert wiring.host_update_matters(
        host, host.with_meta(deletion_timestamp=datetime(2026, 1, 1, tzinfo=clock.EPOCH.tzinfo)))


def test_a_filtered_host_update_asks_for_no_key_but_adds_and_deletes_always_do() -> None:
    watch = _watch(bmh.BareMetalHost)
    host = _host()
    key = meta.ObjectKey(NS, "h")
    assert wiring.keys_for_change(watch, host, host.with_meta(labels={"x": "y"}), NO_INDEX) == []
    assert wiring.keys_for_change(watch, host, host.with_meta(generation=2), NO_INDEX) == [key]
    assert wiring.keys_for_change(watch, None, host, NO_INDEX) == [key]
    assert wiring.keys_for_change(watch, host, None, NO_INDEX) == [key]


# --- the Secret index and mapper ------------------------------------------------------------


def test_secrets_of_names_credentials_and_config_drive_secrets() -> None:
    host = _host(
        userData={"name": "ud"}, networkData={"name": "nd", "namespace": "other"},
        metaData={"name": "md"}, preprovisioningNetworkDataName="ppnd",
    )
    assert list(wiring.secrets_of(host)) == [
        f"{NS}/creds", f"{NS}/ud", "other/nd", f"{NS}/md", f"{NS}/ppnd"]
    assert list(wiring.secrets_of(_host(creds=""))) == []


def test_a_secret_change_reconciles_every_host_that_reads_it_and_no_other() -> None:
    table = _index(_host("a"), _host("b"), _host("c", creds="other"))
    keys = wiring.keys_for_change(_watch(meta.Secret), _secret(version="1"), _secret(version="2"),
                                  _lookup(table))
    assert keys == [meta.ObjectKey(NS, "a"), meta.ObjectKey(NS, "b")]
    assert wiring.keys_for_change(_watch(meta.Secret), None, _secret("unused"),
                                  _lookup(table)) == []


def test_the_index_follows_a_host_that_switches_secrets_and_forgets_deleted_hosts() -> None:
    table = _index(_host("a"))
    table.put(_host("a", creds="new", generation=2))
    assert table.keys(f"{NS}/creds") == []
    assert table.keys(f"{NS}/new") == [meta.ObjectKey(NS, "a")]
    table.delete(meta.ObjectKey(NS, "a"))
    assert table.keys(f"{NS}/new") == []


# --- the HardwareData mapper ----------------------------------------------------------------


def test_hardware_data_maps_to_its_owner_else_the_host_of_its_name() -> None:
    owned = hwd.HardwareData(metadata=meta.ObjectMeta(
        name="hd", namespace=NS, owner_references=(meta.OwnerReference(
            api_version="metal3.io/v1alpha1", kind="BareMetalHost", name="h", uid="u"),)))
    orphan = hwd.HardwareData(metadata=meta.ObjectMeta(name="h2", namespace=NS))
    watch = _watch(hwd.HardwareData)
    assert wiring.keys_for_change(watch, None, owned, NO_INDEX) == [meta.ObjectKey(NS, "h")]
    assert wiring.keys_for_change(watch, orphan, None, NO_INDEX) == [meta.ObjectKey(NS, "h2")]
    # An owner that moved reconciles both hosts, each once.
    assert wiring.keys_for_change(watch, orphan.with_meta(name="h"), owned, NO_INDEX) == [
        meta.ObjectKey(NS, "h")]


# --- the outcome -> queue action switch: one table for both runtimes --------------------------

CASES: list[tuple[str, outcome.Outcome | Exception, V, float | None, str]] = [
    ("done", outcome.Outcome.done(), V.DONE, None, "success"),
    ("after 0", outcome.Outcome.after(0), V.REQUEUE_AFTER, 0.0, "requeue"),
    ("after 30", outcome.Outcome.after(30), V.REQUEUE_AFTER, 30.0, "requeue_after"),
    ("transient", outcome.TransientError("busy"), V.RETRY, None, "error"),
    ("transient retry_after", outcome.TransientError("busy", retry_after_s=7.0),
     V.RETRY_AFTER, 7.0, "error"),
    ("conflict", outcome.Conflict("BareMetalHost", "ns/h", "stale"), V.RETRY, None, "error"),
    ("not found", outcome.NotFound("Secret", "ns/creds"), V.RETRY, None, "error"),
    ("permanent", outcome.PermanentError("bad"), V.STOP, None, "error"),
    ("spec error", outcome.SpecError("spec.bmc.address", "empty"), V.STOP, None, "error"),
    ("invalid", outcome.Invalid("BareMetalHost", "ns/h", [("spec.x", "bad")]), V.STOP, None,
     "error"),
    ("illegal transition", outcome.IllegalTransition("ready", "provision"), V.STOP, None,
     "error"),
    ("a bug", ValueError("oops"), V.RETRY, None, "error"),
]
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize(("name", "result", "verdict", "delay", "label"), CASES, ids=IDS)
def test_action_for_every_kind_of_result(
    name: str, result: outcome.Outcome | Exception, verdict: V, delay: float | None, label: str
) -> None:
    action = wiring.action_for(result)
    assert action.verdict is verdict
    assert action.delay_s == delay
    assert action.result == label
    assert action.is_error == isinstance(result, Exception)
    assert action.unexpected == (name == "a bug")


class RecordingQueue(core_queue.WorkQueue[meta.ObjectKey]):
    """The core workqueue, recording the calls a runtime makes after a pass."""

    def __init__(self, clk: ports.Clock) -> None:
        super().__init__(clk)
        self.calls: list[tuple[str, float | None]] = []
        self.recording = False

    def forget(self, key: Hashable) -> None:
        if self.recording:
            self.calls.append(("forget", None))
        super().forget(key)  # type: ignore[arg-type]

    def add_after(self, key: meta.ObjectKey, delay_s: float) -> None:
        if self.recording:
            self.calls.append(("add_after", delay_s))
        super().add_after(key, delay_s)

    def add_rate_limited(self, key: meta.ObjectKey) -> None:
        if self.recording:
            self.calls.append(("add_rate_limited", None))
            self.recording = False  # its own add_after is the limiter's, not the runtime's
            super().add_rate_limited(key)
            self.recording = True
            return
        super().add_rate_limited(key)


EXPECTED_CALLS = {
    V.DONE: [("forget", None)],
    V.REQUEUE_AFTER: [("forget", None), ("add_after", "delay")],
    V.RETRY_AFTER: [("add_after", "delay")],
    V.RETRY: [("add_rate_limited", None)],
    V.STOP: [("forget", None)],
}


class Scripted:
    def __init__(self, answer: outcome.Outcome | Exception) -> None:
        self.answer = answer
        self.passes = 0

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        """The answer on the first pass, done after (a zero requeue must not spin)."""
        self.passes += 1
        if self.passes > 1:
            return outcome.Outcome.done()
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def _kube_calls(answer: outcome.Outcome | Exception) -> list[tuple[str, float | None]]:
    clk = clock.ManualClock()
    controller = worker.Controller("baremetalhost", Scripted(answer), clock=clk, workers=1)
    recording = RecordingQueue(clk)
    controller.queue = worker.SharedQueue(recording, clk)
    key = meta.ObjectKey(NS, "h")
    controller.queue.add(key)
    assert controller.queue.get() == key
    recording.recording = True
    controller._process(key)
    return recording.calls


def _fleet_calls(answer: outcome.Outcome | Exception) -> list[tuple[str, float | None]]:
    env = simpy.Environment()
    clk = fleet_runtime.SimClock(env, fleet_runtime.EPOCH)
    reconciler = Scripted(answer)
    controller = fleet_runtime.Controller(
        env, clock=clk, reconciler=reconciler, concurrency=1,
        meter=cost.Meter(random.Random(0)), watch_latency=dist.Fixed(value=0.1),
        reconcile_cpu=dist.Fixed(value=0.0), is_delayed=lambda key: False,
    )
    recording = RecordingQueue(clk)
    controller.queue = recording
    controller.on_watch(ports.WatchEvent(ports.WatchEventType.ADDED, _host()))
    recording.recording = True
    env.run(until=0.5)  # the pass at t=0.1 (and a second one if it asked for one)
    assert reconciler.passes >= 1
    # The first pass's actions only.
    return recording.calls[:len(EXPECTED_CALLS[wiring.action_for(answer).verdict])]


@pytest.mark.parametrize(("name", "result", "verdict", "delay", "label"), CASES, ids=IDS)
def test_kube_worker_and_fleet_runtime_take_the_same_action(
    name: str, result: outcome.Outcome | Exception, verdict: V, delay: float | None, label: str
) -> None:
    expected = [(call, delay if arg == "delay" else None)
                for call, arg in EXPECTED_CALLS[verdict]]
    kube = _kube_calls(result)
    assert kube == expected
    assert _fleet_calls(result) == kube


# --- the fleet model simulates the same event mapping ----------------------------------------


class Counting:
    def __init__(self) -> None:
        self.passes: list[str] = []

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        self.passes.append(key.name)
        return outcome.Outcome.done()


def test_fleet_runtime_maps_secret_and_hardware_data_changes_to_hosts() -> None:
    from metalcubed.core import memory_store

    env = simpy.Environment()
    clk = fleet_runtime.SimClock(env, fleet_runtime.EPOCH)
    store = memory_store.MemoryStore(clock=clk)
    reconciler = Counting()
    controller = fleet_runtime.Controller(
        env, clock=clk, reconciler=reconciler, concurrency=2,
        meter=cost.Meter(random.Random(0)), watch_latency=dist.Fixed(value=0.1),
        reconcile_cpu=dist.Fixed(value=0.0), is_delayed=lambda key: False,
    )
    controller.watch(store)
    store.create(_secret())
    store.create(_host("a"))
    store.create(_host("b", creds="other"))
    env.run(until=1)
    assert sorted(reconciler.passes) == ["a", "b"]

    secret = store.get(meta.Secret, meta.ObjectKey(NS, "creds"))
    store.update(secret.model_copy(update={"string_data": {"username": "u", "password": "q"}}))
    env.run(until=2)
    assert sorted(reconciler.passes) == ["a", "a", "b"]  # only the host reading it

    host = store.get(bmh.BareMetalHost, meta.ObjectKey(NS, "b"))
    store.update_status(host.model_copy(update={"status": host.status.model_copy(update={
        "error_message": "x"})}))
    env.run(until=3)
    assert sorted(reconciler.passes) == ["a", "a", "b"]  # status-only: filtered

    store.create(hwd.HardwareData(metadata=meta.ObjectMeta(name="b", namespace=NS)))
    env.run(until=4)
    assert sorted(reconciler.passes) == ["a", "a", "b", "b"]
