"""The BareMetalHost conditions (bmo.md 2.5), computed from state on every reconcile.

A condition keeps its lastTransitionTime while its status is unchanged, and the tuple is
rebuilt only when something differs, so an unchanged host gets no status write.
"""

from datetime import datetime

from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta

S = bmh.ProvisioningState
OS = bmh.OperationalStatus

MANAGEABLE = "Manageable"
AVAILABLE_FOR_PROVISIONING = "AvailableForProvisioning"
PROVISIONED = "Provisioned"
READY = "Ready"
PROGRESSING = "Progressing"
HEALTHY = "Healthy"

_T, _F, _U = "True", "False", "Unknown"

_PROGRESS_REASON: dict[S, str] = {
    S.REGISTERING: "Registering",
    S.MATCH_PROFILE: "Preparing",
    S.PREPARING: "Preparing",
    S.INSPECTING: "Inspecting",
    S.PROVISIONING: "Provisioning",
    S.DEPROVISIONING: "Deprovisioning",
    S.POWERING_OFF_BEFORE_DELETE: "PoweringOffBeforeDelete",
    S.DELETING: "Deleting",
}

_HEALTH = {"OK": (_T, "Healthy"), "Warning": (_F, "Warning"), "Critical": (_F, "CriticalError")}

Desired = tuple[tuple[str, str, str], ...]
"""(type, status, reason) per condition, in a fixed order."""


def desired(
    *,
    state: S,
    operational_status: OS,
    error_type: bmh.ErrorType,
    power_failure: bool,
    health: str,
) -> Desired:
    """What each condition should say for this observed state (bmo.md 2.5 table + overrides)."""
    if state in (S.NONE, S.UNMANAGED):
        manageable = (_F, "NotManaged")
        available = (_F, "NotAvailable")
        provisioned = ready = (_F, "NotProvisioned")
        progressing = (_F, "NotProgressing")
    elif state == S.REGISTERING:
        failed = error_type == bmh.ErrorType.REGISTRATION
        manageable = (_F, "RegistrationFailed" if failed else "Registering")
        available = (_F, "NotAvailable")
        provisioned = ready = (_F, "NotProvisioned")
        progressing = (_T, "Registering")
    elif state in (S.AVAILABLE, S.READY):
        manageable = (_T, "Manageable")
        available = (_T, "Available")
        provisioned = ready = (_F, "NotProvisioned")
        progressing = (_F, "NotProgressing")
    elif state in (S.PROVISIONED, S.EXTERNALLY_PROVISIONED):
        manageable = (_T, "Manageable")
        available = (_F, "NotAvailable")
        provisioned = ready = (_T, "Provisioned")
        progressing = (_F, "NotProgressing")
    else:
        manageable = (_T, "Manageable")
        available = (_F, "NotAvailable")
        provisioned = ready = (_F, "NotProvisioned")
        progressing = (_T, _PROGRESS_REASON[state])
    if operational_status == OS.ERROR:
        ready = (_F, "Error")
    elif operational_status == OS.SERVICING:
        ready = (_F, "Servicing")
    elif operational_status == OS.DETACHED:
        ready = (_F, "Detached")
        progressing = (_F, "Detached")
    if power_failure:
        manageable = (_F, "PowerFailure")
    health_cond = _HEALTH.get(health, (_U, "Unknown"))
    return (
        (MANAGEABLE, *manageable),
        (AVAILABLE_FOR_PROVISIONING, *available),
        (PROVISIONED, *provisioned),
        (READY, *ready),
        (PROGRESSING, *progressing),
        (HEALTHY, *health_cond),
    )


def apply(
    existing: tuple[meta.Condition, ...],
    want: Desired,
    *,
    generation: int | None,
    now: datetime,
) -> tuple[meta.Condition, ...]:
    """`existing` updated to `want`; the same tuple object when nothing changed."""
    if len(existing) == len(want) and all(
        c.type == t and c.status == s and c.reason == r and c.observed_generation == generation
        for c, (t, s, r) in zip(existing, want, strict=True)
    ):
        return existing  # the common case: a steady host
    by_type = {c.type: c for c in existing}
    changed = len(existing) != len(want)
    result: list[meta.Condition] = []
    for ctype, status, reason in want:
        old = by_type.get(ctype)
        if (
            old is not None
            and old.status == status
            and old.reason == reason
            and old.observed_generation == generation
        ):
            result.append(old)
            continue
        changed = True
        transition = old.last_transition_time if old is not None and old.status == status else now
        result.append(
            meta.Condition(
                type=ctype,
                status=status,
                reason=reason,
                observed_generation=generation,
                last_transition_time=transition,
            )
        )
    return tuple(result) if changed else existing
