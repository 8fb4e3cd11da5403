"""The error family: each class says whether a runtime retries it (`retryable`)."""

from datetime import timedelta

import pytest

from metalcubed.core import bmc, bmcaddress, clock, outcome, queue, wiring

PERMANENT: list[BaseException] = [
    outcome.PermanentError("secret in another namespace"),
    outcome.SpecError("spec.bootMACAddress", "invalid MAC address"),
    outcome.Invalid("BareMetalHost", "ns/h", [("spec.online", "must be a boolean")]),
    outcome.IllegalTransition("available", "register"),
    bmc.UnsupportedCapability("ipmi://10.0.0.1", "bios", capability="Bios", implementation="ipmi"),
]
RETRYABLE: list[BaseException] = [
    outcome.TransientError("try again"),
    outcome.Conflict("BareMetalHost", "ns/h", "the object has been modified"),
    outcome.Gone("42"),
    outcome.NotFound("Secret", "ns/creds"),
    outcome.ProvisionerNotReady("starting"),
    bmc.BmcUnreachable("redfish://10.0.0.1", "power_state", "connection refused"),
    bmc.BmcBusy("redfish://10.0.0.1", "power_on", "503", retry_after_s=5.0),
    ValueError("a bug outside the family is retried, as controller-runtime does"),
]


@pytest.mark.parametrize("error", PERMANENT, ids=lambda e: type(e).__name__)
def test_permanent_errors_are_not_retried(error: BaseException) -> None:
    assert not outcome.is_retryable(error)


@pytest.mark.parametrize("error", RETRYABLE, ids=lambda e: type(e).__name__)
def test_retryable_errors_are_retried(error: BaseException) -> None:
    assert outcome.is_retryable(error)


def test_spec_error_subclasses_inherit_permanence() -> None:
    with pytest.raises(outcome.SpecError) as caught:
        bmcaddress.parse("nonsense://10.0.0.1")
    assert not outcome.is_retryable(caught.value)


def test_every_error_class_declares_retryable_as_a_bool() -> None:
    seen: list[type[outcome.MetalcubedError]] = []
    pending: list[type[outcome.MetalcubedError]] = [outcome.MetalcubedError]
    while pending:
        cls = pending.pop()
        seen.append(cls)
        pending.extend(cls.__subclasses__())
    assert len(seen) > 10
    for cls in seen:
        assert isinstance(cls.retryable, bool), cls.__qualname__


# --- through the one outcome-to-queue switch (core/wiring.py), as every runtime runs it --------


def _run_for(error: BaseException, *, hours: float) -> tuple[int, list[BaseException]]:
    """Reconcile one key that always raises `error` for `hours` of manual-clock time, the way
    the runtimes drive the queue; return the passes made and the errors recorded."""
    tick = clock.ManualClock()
    q: queue.WorkQueue[str] = queue.WorkQueue(tick)
    q.add("ns/host")
    passes = 0
    recorded: list[BaseException] = []
    end = tick.now() + timedelta(hours=hours)
    while True:
        key = q.get()
        if key is None:
            ready_at = q.next_ready_at()
            if ready_at is None or ready_at > end:
                return passes, recorded
            tick.set(ready_at)
            continue
        passes += 1
        action = wiring.action_for(error)
        if action.error is not None:
            recorded.append(action.error)
        wiring.apply(action, q, key)
        q.done(key)


@pytest.mark.parametrize(
    "error",
    [
        outcome.Invalid("BareMetalHost", "ns/host", [("status.errorType", "Unsupported value")]),
        outcome.SpecError("spec.bmc.address", "unknown BMC type"),
        outcome.PermanentError("secret in another namespace"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_permanent_error_is_recorded_once_and_not_retried(error: BaseException) -> None:
    passes, recorded = _run_for(error, hours=24)
    assert passes == 1
    assert recorded == [error]


def test_a_conflict_is_retried_with_backoff() -> None:
    error = outcome.Conflict("BareMetalHost", "ns/host", "the object has been modified")
    passes, recorded = _run_for(error, hours=1)
    # The first pass, then 5 ms doubling: 18 retries (about 1,311 s in all) reach the 1000 s
    # cap, and 2 more fit in the hour.
    assert passes == 1 + 18 + 2
    assert recorded == [error] * passes
