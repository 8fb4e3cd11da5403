"""The error family: each class says whether a runtime retries it (`retryable`)."""

import pytest

from metalcubed.core import bmc, bmcaddress, outcome

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
