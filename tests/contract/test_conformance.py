"""Protocol conformance of the store, clock and recorder implementations (checked by mypy),
plus the recording fake's behaviour."""

from random import Random

from metalcubed.controllers import memory
from metalcubed.core import clock, memory_store, ports
from metalcubed.core.api import meta
from metalcubed.core.testing import fakes

_clock: ports.Clock = clock.ManualClock()
_fixed: ports.Clock = clock.FixedClock()
_wall: ports.Clock = memory.WallClock()
_store: ports.Store = memory_store.MemoryStore(clock=_clock, rng=Random(0))
_locked: ports.Store = memory.LockedStore(memory_store.MemoryStore(clock=_clock))
_recorder: ports.EventRecorder = fakes.RecordingEventRecorder()


def test_recording_event_recorder_keeps_events_in_order() -> None:
    tick = clock.ManualClock()
    recorder = fakes.RecordingEventRecorder(tick)
    secret = meta.Secret(metadata=meta.ObjectMeta(name="s", namespace="n", uid="u1"))
    other = meta.Secret(metadata=meta.ObjectMeta(name="o", namespace="n"))
    recorder.record(secret, type=ports.EventType.NORMAL, reason="Registered", message="ok")
    tick.advance(5)
    recorder.record(other, type=ports.EventType.WARNING, reason="BMCError", message="down")
    assert recorder.reasons() == ["Registered", "BMCError"]
    assert recorder.reasons(secret.key) == ["Registered"]
    assert [e.reason for e in recorder.warnings()] == ["BMCError"]
    first = recorder.events[0]
    assert (first.kind, first.uid, first.at) == ("Secret", "u1", clock.EPOCH)
    recorder.clear()
    assert recorder.events == []


def test_manual_clock_moves_only_forward() -> None:
    tick = clock.ManualClock()
    assert tick.advance(1.5) == clock.EPOCH.replace(microsecond=500000, second=1)
    try:
        tick.advance(-1)
    except ValueError:
        return
    raise AssertionError("advance(-1) accepted")
