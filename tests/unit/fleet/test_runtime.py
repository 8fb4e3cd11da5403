"""The fleet model's controller runtime: slots, bills, requeues, BMO's event filter."""

import random

import pytest
import simpy

from metalcubed.core import memory_store, outcome, ports, wiring
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta
from metalcubed.simulators.fleet import cost
from metalcubed.simulators.fleet import distribution as dist
from metalcubed.simulators.fleet.runtime import EPOCH, Controller, Informers, SimClock


class ScriptedReconciler:
    """Bills a fixed cost per pass and answers from a script (default: done)."""

    def __init__(self, env: simpy.Environment, meter: cost.Meter, bill_s: float) -> None:
        self.env = env
        self.meter = meter
        self.bill_s = bill_s
        self.passes: list[tuple[float, str]] = []
        self.script: dict[str, list[outcome.Outcome | Exception]] = {}

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        self.passes.append((self.env.now, key.name))
        self.meter.charge(self.bill_s)
        answers = self.script.get(key.name)
        if answers:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return outcome.Outcome.done()


def make(concurrency: int = 2, bill_s: float = 1.0) -> tuple[
    simpy.Environment, Controller, ScriptedReconciler
]:
    env = simpy.Environment()
    meter = cost.Meter(random.Random(0))
    reconciler = ScriptedReconciler(env, meter, bill_s)
    controller = Controller(
        env,
        clock=SimClock(env, EPOCH),
        reconciler=reconciler,
        concurrency=concurrency,
        meter=meter,
        watch_latency=dist.Fixed(value=0.1),
        reconcile_cpu=dist.Fixed(value=0.0),
        is_delayed=lambda key: False,
    )
    return env, controller, reconciler


def host(name: str, *, generation: int = 1, state: str = "") -> bmh.BareMetalHost:
    return bmh.BareMetalHost(
        metadata=meta.ObjectMeta(name=name, namespace="ns", generation=generation),
        spec=bmh.BareMetalHostSpec(online=False),
        status=bmh.BareMetalHostStatus(
            provisioning=bmh.ProvisionStatus(state=bmh.ProvisioningState(state))
        ),
    )


def added(name: str) -> ports.WatchEvent[bmh.BareMetalHost]:
    return ports.WatchEvent(ports.WatchEventType.ADDED, host(name))


def test_no_more_passes_in_flight_than_workers() -> None:
    env, controller, reconciler = make(concurrency=3, bill_s=1.0)
    for i in range(7):
        controller.on_watch(added(f"h{i}"))
    env.run(until=100)
    starts = sorted(round(t, 1) for t, _ in reconciler.passes)
    assert starts == [0.1] * 3 + [1.1] * 3 + [2.1]
    assert controller.stats.peak_busy == 3


def test_requeue_after_counts_from_the_end_of_the_pass() -> None:
    env, controller, reconciler = make(bill_s=2.0)
    reconciler.script["h"] = [outcome.Outcome.after(30.0)]
    controller.on_watch(added("h"))
    env.run(until=100)
    assert [round(t, 1) for t, _ in reconciler.passes] == [0.1, 32.1]


def test_transient_error_retries_with_rate_limited_backoff() -> None:
    env, controller, reconciler = make(bill_s=0.0)
    reconciler.script["h"] = [outcome.TransientError("busy")] * 3
    controller.on_watch(added("h"))
    env.run(until=100)
    gaps = [b - a for (a, _), (b, _) in zip(reconciler.passes, reconciler.passes[1:], strict=False)]
    assert gaps == pytest.approx([0.005, 0.01, 0.02], abs=1e-5)
    assert controller.stats.errors == {"TransientError": 3}


def test_permanent_error_is_not_retried() -> None:
    env, controller, reconciler = make()
    reconciler.script["h"] = [outcome.PermanentError("bad spec")]
    controller.on_watch(added("h"))
    env.run(until=10_000)
    assert len(reconciler.passes) == 1


def test_status_only_updates_do_not_trigger_a_pass() -> None:
    env, controller, reconciler = make()
    controller.on_watch(added("h"))
    env.run(until=10)
    status_only = host("h", state="registering")
    controller.on_watch(ports.WatchEvent(ports.WatchEventType.MODIFIED, status_only))
    env.run(until=20)
    assert len(reconciler.passes) == 1
    controller.on_watch(ports.WatchEvent(ports.WatchEventType.MODIFIED, host("h", generation=2)))
    env.run(until=30)
    assert len(reconciler.passes) == 2


def test_watch_events_arrive_after_the_writers_bill_and_the_latency() -> None:
    env, controller, reconciler = make()
    controller._meter.charge(5.0)  # a write made 5 s into another pass
    controller.on_watch(added("h"))
    controller._meter.start()
    env.run(until=20)
    assert reconciler.passes[0][0] == pytest.approx(5.1)


def test_an_idle_controller_schedules_nothing() -> None:
    env, controller, reconciler = make()
    reconciler.script["h"] = [outcome.Outcome.done()]
    controller.on_watch(added("h"))
    env.run()  # returns only once nothing at all is scheduled
    assert env.now == pytest.approx(1.1) and len(reconciler.passes) == 1


def test_controllers_share_one_cache_and_each_queues_its_own_keys() -> None:
    """Two controllers over `Informers`: the store is watched once per kind, a change reaches
    every controller watching the kind, each maps it with its own Wiring into its own queue,
    and a shared index answers both (core/wiring's host index of Secrets)."""
    env = simpy.Environment()
    clock = SimClock(env, EPOCH)
    meter = cost.Meter(random.Random(0))
    secrets_only = wiring.Wiring(
        name="secrets",
        kind=meta.Secret,
        watches=(wiring.Watch(meta.Secret, wiring.own_key),
                 wiring.Watch(bmh.BareMetalHost, lambda h, lookup: [
                     meta.ObjectKey("ns", h.spec.bmc.credentials_name)])),
        indexes=(wiring.Index(wiring.SECRETS_INDEX, bmh.BareMetalHost, wiring.secrets_of),),
    )
    hosts = ScriptedReconciler(env, meter, 1.0)
    secrets = ScriptedReconciler(env, meter, 1.0)
    common = {"clock": clock, "concurrency": 2, "meter": meter,
              "watch_latency": dist.Fixed(value=0.1), "reconcile_cpu": dist.Fixed(value=0.0)}
    first = Controller(env, reconciler=hosts, **common)  # type: ignore[arg-type]
    second = Controller(env, reconciler=secrets, wiring_=secrets_only,  # type: ignore[arg-type]
                        **common)
    informers = Informers([first, second])
    assert set(informers.kinds) == set(wiring.BAREMETALHOST.kinds) | {meta.Secret}
    store = memory_store.MemoryStore(clock=clock)
    informers.watch(store)
    store.create(meta.Secret(metadata=meta.ObjectMeta(name="creds", namespace="ns")))
    store.create(bmh.BareMetalHost(
        metadata=meta.ObjectMeta(name="h", namespace="ns"),
        spec=bmh.BareMetalHostSpec(online=False, bmc=bmh.BMCDetails(
            address="redfish://10.0.0.1", credentials_name="creds"))))
    env.run(until=10)
    # The host controller: the host itself, then the Secret it reads (through the index).
    assert [name for _, name in hosts.passes] == ["h"]
    # The other controller: its Secret, asked for twice (created; named by the new host),
    # within the watch latency: one pass.
    assert [name for _, name in secrets.passes] == ["creds"]
    store.update(store.get(meta.Secret, meta.ObjectKey("ns", "creds")).model_copy(
        update={"string_data": {"password": "new"}}))
    env.run(until=20)
    assert [name for _, name in hosts.passes] == ["h", "h"]  # found via the shared index
    assert [name for _, name in secrets.passes] == ["creds", "creds"]
    assert first.stats.passes == 2 and second.stats.passes == 2
