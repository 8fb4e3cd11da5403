"""The BareMetalHost lifecycle as plain data (bmo.md section 2).

States carry two flags: `stable` (a host may rest there: the steady-state power poll applies)
and `needs_capacity_to_enter` (entering it takes a provisioning slot, bmo.md 6.1). Transitions
are (source, event) -> destination pairs; `advance` is the only way a state changes and raises
`IllegalTransition` for anything not in the table. docs/lifecycle.md and its diagram are
generated from this table (`render_mermaid`), so the two cannot drift apart.
"""

from dataclasses import dataclass
from enum import StrEnum

from metalcubed.core import outcome
from metalcubed.core.api.baremetalhost import ProvisioningState as S


class Event(StrEnum):
    """Why a host changes state; verbs, as the transition table names them."""

    MANAGE = "manage"
    """BMC details are present: start registering."""
    DISCOVER = "discover"
    """A host without BMC details: leave it unmanaged."""
    INSPECT = "inspect"
    """Registered (or re-inspection asked for): inspect the hardware."""
    SKIP_INSPECTION = "skip inspection"
    """Inspection disabled: go straight to preparing."""
    PREPARE = "prepare"
    """Inspected, or settings changed on an available host: manual cleaning."""
    MAKE_AVAILABLE = "make available"
    """Prepared or deprovisioned: ready to be consumed."""
    PROVISION = "provision"
    """An image (or custom deploy) was set with online true."""
    COMPLETE_PROVISIONING = "complete provisioning"
    """The image is written and the host boots it."""
    ADOPT_EXTERNAL = "adopt external"
    """spec.externallyProvisioned: something else deployed the OS."""
    CLEAR_EXTERNAL = "clear external"
    """spec.externallyProvisioned cleared: treat the host as provisioned."""
    DEPROVISION = "deprovision"
    """Image removed or changed, provisioning failed, or a provisioned host is deleted."""
    POWER_OFF_BEFORE_DELETE = "power off before delete"
    """A managed, not provisioned host is being deleted."""
    DELETE = "delete"
    """Remove the host from the provisioner, then drop the finalizer."""


@dataclass(frozen=True, slots=True)
class StateInfo:
    stable: bool
    needs_capacity_to_enter: bool
    description: str


STATES: dict[S, StateInfo] = {
    S.NONE: StateInfo(False, False, "a new object, not looked at yet"),
    S.UNMANAGED: StateInfo(True, False, "no BMC address or credentials; polled every 10 min"),
    S.REGISTERING: StateInfo(False, False, "checking BMC credentials and enrolling the host"),
    S.MATCH_PROFILE: StateInfo(False, False, "legacy: goes straight on to preparing"),
    S.INSPECTING: StateInfo(False, True, "collecting the hardware inventory"),
    S.PREPARING: StateInfo(False, False, "manual cleaning: RAID, firmware settings and updates"),
    S.READY: StateInfo(True, False, "deprecated alias of available"),
    S.AVAILABLE: StateInfo(True, False, "ready to be consumed; power is managed"),
    S.PROVISIONING: StateInfo(False, True, "writing the image"),
    S.PROVISIONED: StateInfo(True, False, "running the image; power is managed"),
    S.EXTERNALLY_PROVISIONED: StateInfo(True, False, "deployed by something else; power only"),
    S.DEPROVISIONING: StateInfo(False, True, "removing the image and cleaning the disks"),
    S.POWERING_OFF_BEFORE_DELETE: StateInfo(False, False, "powering off before deletion"),
    S.DELETING: StateInfo(False, False, "removing the host from the provisioner"),
}

TRANSITIONS: dict[tuple[S, Event], S] = {
    (S.NONE, Event.MANAGE): S.REGISTERING,
    (S.NONE, Event.DISCOVER): S.UNMANAGED,
    (S.NONE, Event.DELETE): S.DELETING,
    (S.UNMANAGED, Event.MANAGE): S.REGISTERING,
    (S.UNMANAGED, Event.DELETE): S.DELETING,
    (S.REGISTERING, Event.INSPECT): S.INSPECTING,
    (S.REGISTERING, Event.SKIP_INSPECTION): S.PREPARING,
    (S.REGISTERING, Event.ADOPT_EXTERNAL): S.EXTERNALLY_PROVISIONED,
    (S.REGISTERING, Event.DELETE): S.DELETING,
    (S.MATCH_PROFILE, Event.PREPARE): S.PREPARING,
    (S.MATCH_PROFILE, Event.POWER_OFF_BEFORE_DELETE): S.POWERING_OFF_BEFORE_DELETE,
    (S.MATCH_PROFILE, Event.DELETE): S.DELETING,
    (S.INSPECTING, Event.PREPARE): S.PREPARING,
    (S.INSPECTING, Event.POWER_OFF_BEFORE_DELETE): S.POWERING_OFF_BEFORE_DELETE,
    (S.INSPECTING, Event.DELETE): S.DELETING,
    (S.PREPARING, Event.MAKE_AVAILABLE): S.AVAILABLE,
    (S.PREPARING, Event.POWER_OFF_BEFORE_DELETE): S.POWERING_OFF_BEFORE_DELETE,
    (S.PREPARING, Event.DELETE): S.DELETING,
    (S.READY, Event.INSPECT): S.INSPECTING,
    (S.READY, Event.PREPARE): S.PREPARING,
    (S.READY, Event.PROVISION): S.PROVISIONING,
    (S.READY, Event.ADOPT_EXTERNAL): S.EXTERNALLY_PROVISIONED,
    (S.READY, Event.POWER_OFF_BEFORE_DELETE): S.POWERING_OFF_BEFORE_DELETE,
    (S.READY, Event.DELETE): S.DELETING,
    (S.AVAILABLE, Event.INSPECT): S.INSPECTING,
    (S.AVAILABLE, Event.PREPARE): S.PREPARING,
    (S.AVAILABLE, Event.PROVISION): S.PROVISIONING,
    (S.AVAILABLE, Event.ADOPT_EXTERNAL): S.EXTERNALLY_PROVISIONED,
    (S.AVAILABLE, Event.POWER_OFF_BEFORE_DELETE): S.POWERING_OFF_BEFORE_DELETE,
    (S.AVAILABLE, Event.DELETE): S.DELETING,
    (S.PROVISIONING, Event.COMPLETE_PROVISIONING): S.PROVISIONED,
    (S.PROVISIONING, Event.DEPROVISION): S.DEPROVISIONING,
    (S.PROVISIONING, Event.DELETE): S.DELETING,
    (S.PROVISIONED, Event.DEPROVISION): S.DEPROVISIONING,
    (S.PROVISIONED, Event.DELETE): S.DELETING,
    (S.EXTERNALLY_PROVISIONED, Event.CLEAR_EXTERNAL): S.PROVISIONED,
    (S.EXTERNALLY_PROVISIONED, Event.POWER_OFF_BEFORE_DELETE): S.POWERING_OFF_BEFORE_DELETE,
    (S.EXTERNALLY_PROVISIONED, Event.DELETE): S.DELETING,
    (S.DEPROVISIONING, Event.MAKE_AVAILABLE): S.AVAILABLE,
    (S.DEPROVISIONING, Event.POWER_OFF_BEFORE_DELETE): S.POWERING_OFF_BEFORE_DELETE,
    (S.DEPROVISIONING, Event.DELETE): S.DELETING,
    (S.POWERING_OFF_BEFORE_DELETE, Event.DELETE): S.DELETING,
}
"""Every allowed change. DELETE from a provisioned or provisioning state is only taken for a
detached host (nothing to deprovision); otherwise deletion routes through DEPROVISION."""


def advance(state: S, event: Event) -> S:
    """The state that `event` leads to from `state`; raises IllegalTransition otherwise."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise outcome.IllegalTransition(str(state), str(event)) from None


def is_stable(state: S) -> bool:
    return STATES[state].stable


def needs_capacity(state: S) -> bool:
    return STATES[state].needs_capacity_to_enter


def _node_id(state: S) -> str:
    return "none" if state == S.NONE else state.value.replace(" ", "_")


def render_mermaid() -> str:
    """The lifecycle diagram (Mermaid stateDiagram) generated from TRANSITIONS."""
    lines = ["stateDiagram-v2"]
    for state in STATES:
        label = state.value or "(none)"
        lines.append(f'    state "{label}" as {_node_id(state)}')
    lines.append("    [*] --> none")
    for (src, event), dst in TRANSITIONS.items():
        lines.append(f"    {_node_id(src)} --> {_node_id(dst)}: {event.value}")
    lines.append("    deleting --> [*]: finalizer removed")
    return "\n".join(lines)
