"""One reconcile pass's working copy of a BareMetalHost, and the moves every handler shares.

Models are frozen; a pass collects its changes here (status, annotations, finalizers, events)
and the reconciler writes them once at the end, skipping writes when nothing changed. State
changes go only through `transition`, which consults the lifecycle table (fsm.advance), takes a
provisioning slot when the target state needs one (bmo.md 6.1: otherwise `delayed`), keeps the
operation history and copies the boot mode, as upstream's updateHostStateFrom does.
Status edits are typed: `set` and `set_provisioning` take only the fields of
`StatusChanges`/`ProvisionChanges`, checked by mypy and validated at run time (`change`).
"""

import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Unpack

import pydantic
import typing_extensions

from metalcubed.core import backoff, fsm, outcome, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import change, hardwaredata, meta

S = bmh.ProvisioningState
OS = bmh.OperationalStatus
ET = bmh.ErrorType

# Requeue delays of bmo.md 2.7.
HOST_ERROR_RETRY_DELAY_S = 10.0
UNMANAGED_RETRY_DELAY_S = 600.0
PROVISIONER_NOT_READY_RETRY_DELAY_S = 30.0
POWER_POLL_S = 60.0

_ERROR_EVENT_REASON: dict[ET, str] = {
    ET.REGISTRATION: "RegistrationError",
    ET.PROVISIONED_REGISTRATION: "ProvisionedRegistrationError",
    ET.INSPECTION: "InspectionError",
    ET.PREPARATION: "PreparationError",
    ET.PROVISIONING: "ProvisioningError",
    ET.POWER_MANAGEMENT: "PowerManagementError",
    ET.DETACH: "DetachError",
    ET.SERVICING: "ServicingError",
}

_HISTORY_OPERATION: dict[S, str] = {
    S.REGISTERING: "register",
    S.INSPECTING: "inspect",
    S.PROVISIONING: "provision",
    S.DEPROVISIONING: "deprovision",
}


@pydantic.with_config(change.STRICT)
class StatusChanges(typing_extensions.TypedDict, total=False):
    """The fields of BareMetalHostStatus a pass may set, with their types."""

    operational_status: bmh.OperationalStatus
    error_type: bmh.ErrorType
    error_message: str
    error_count: int
    provisioning_fail_count: int
    last_attempted_image: bmh.Image | None
    last_updated: meta.Time | None
    hardware_profile: str
    hardware: hardwaredata.HardwareDetails | None
    provisioning: bmh.ProvisionStatus
    good_credentials: bmh.CredentialsStatus
    tried_credentials: bmh.CredentialsStatus
    powered_on: bool
    operation_history: bmh.OperationHistory
    conditions: tuple[meta.Condition, ...]


@pydantic.with_config(change.STRICT)
class ProvisionChanges(typing_extensions.TypedDict, total=False):
    """The fields of status.provisioning a pass may set, with their types."""

    state: bmh.ProvisioningState
    id: str
    image: bmh.Image
    root_device_hints: bmh.RootDeviceHints | None
    boot_mode: bmh.BootMode | None
    raid: bmh.RAIDConfig | None
    firmware: bmh.FirmwareConfig | None
    custom_deploy: bmh.CustomDeploy | None


STATUS = change.Updater(bmh.BareMetalHostStatus, StatusChanges)
PROVISION = change.Updater(bmh.ProvisionStatus, ProvisionChanges)


@dataclass(frozen=True, slots=True, kw_only=True)
class HostReconcilerConfig:
    """Controller settings that change behaviour (upstream flags and env vars)."""

    max_provisioning_retries: int = 5
    """--max-provisioning-retries: provisioning attempts per image; 0 means unlimited."""


@dataclass(slots=True)
class PendingEvent:
    type: ports.EventType
    reason: str
    message: str


@dataclass(slots=True)
class HostWork:
    """The host as read, plus the changes this pass wants to write."""

    host: bmh.BareMetalHost
    status: bmh.BareMetalHostStatus
    annotations: dict[str, str]
    finalizers: list[str]
    now: datetime
    rng: random.Random
    metrics: ports.Metrics
    prov: ports.Provisioner | None = None
    events: list[PendingEvent] = field(default_factory=list)

    @property
    def state(self) -> S:
        return self.status.provisioning.state

    @property
    def deleting(self) -> bool:
        return self.host.metadata.deletion_timestamp is not None

    @property
    def spec(self) -> bmh.BareMetalHostSpec:
        return self.host.spec

    def provisioner(self) -> ports.Provisioner:
        if self.prov is None:  # pragma: no cover - the pipeline builds it before any handler
            raise outcome.IllegalTransition(str(self.state), "provisioner used before it exists")
        return self.prov

    # --- status edits ------------------------------------------------------------------------

    def set(self, **changes: Unpack[StatusChanges]) -> None:
        """Apply `changes` to the status; raises pydantic.ValidationError on an unknown field
        or a value of the wrong type."""
        self.status = STATUS.apply(self.status, changes)

    def set_provisioning(self, **changes: Unpack[ProvisionChanges]) -> None:
        """Apply `changes` to status.provisioning (as `set`)."""
        self.set(provisioning=PROVISION.apply(self.status.provisioning, changes))

    def event(self, reason: str, message: str, *, warning: bool = False) -> None:
        kind = ports.EventType.WARNING if warning else ports.EventType.NORMAL
        self.events.append(PendingEvent(kind, reason, message))

    def record_failure(self, error_type: ET, message: str) -> outcome.Outcome:
        """Upstream recordActionFailure: error on status, errorCount+1, event, backoff requeue."""
        count = self.status.error_count + 1
        self.set(
            operational_status=OS.ERROR,
            error_type=error_type,
            error_message=message,
            error_count=count,
        )
        self.event(_ERROR_EVENT_REASON[error_type], message, warning=True)
        self.metrics.inc("metal3_host_error_total", {"error_type": error_type.value})
        return outcome.Outcome.after(backoff.calculate_backoff_s(count, self.rng))

    def clear_error(self) -> None:
        """Upstream ClearError: operationalStatus OK, no error; errorCount is kept (only a
        success resets it)."""
        status = self.status
        if (
            status.operational_status != OS.OK
            or status.error_type != ET.NONE
            or status.error_message
        ):
            self.set(operational_status=OS.OK, error_type=ET.NONE, error_message="")

    def clear_error_and_count(self) -> None:
        self.clear_error()
        if self.status.error_count:
            self.set(error_count=0)

    def restart_on_failure(self, error_type: ET) -> bool:
        return self.status.error_type == error_type

    # --- state changes -------------------------------------------------------------------------

    def transition(self, event: fsm.Event) -> outcome.Outcome:
        """Move to the state `event` leads to; `delayed` when no provisioning slot is free."""
        source = self.state
        target = fsm.advance(source, event)
        if fsm.needs_capacity(target) and not self.provisioner().has_capacity():
            return self.delay(target)
        if self.status.operational_status == OS.DELAYED:
            self.set(operational_status=OS.OK)
        self._record_history(source, target)
        if target in (S.REGISTERING, S.INSPECTING, S.PROVISIONING):
            self.set_provisioning(boot_mode=self.spec.boot_mode or bmh.DEFAULT_BOOT_MODE)
        self.set_provisioning(state=target)
        self.metrics.inc(
            "metal3_provisioning_state_change_total", {"from": source.value, "to": target.value}
        )
        return outcome.Outcome.after(0)

    def delay(self, target: S) -> outcome.Outcome:
        """Upstream recordActionDelayed: operationalStatus delayed, and the delayed counter
        (deprovisioning when `target` is, else provisioning) counted on every delayed pass."""
        if self.status.operational_status != OS.DELAYED:
            self.set(operational_status=OS.DELAYED)
        kind = "deprovisioning" if target == S.DEPROVISIONING else "provisioning"
        self.metrics.inc(f"metal3_delayed__{kind}_total")
        return outcome.Outcome.after(backoff.calculate_backoff_s(1, self.rng))

    def _record_history(self, source: S, target: S) -> None:
        history = self.status.operation_history
        updates: dict[str, bmh.OperationMetric] = {}
        ended = _HISTORY_OPERATION.get(source)
        if ended is not None and ended != _HISTORY_OPERATION.get(target):
            metric: bmh.OperationMetric = getattr(history, ended)
            updates[ended] = bmh.OperationMetric(start=metric.start, end=self.now)
            if metric.start is not None:
                seconds = (self.now - metric.start).total_seconds()
                self.metrics.observe(f"metal3_operation_{ended}_duration_seconds", seconds)
        started = _HISTORY_OPERATION.get(target)
        if started is not None:
            updates[started] = bmh.OperationMetric(start=self.now)
        if updates:
            self.set(operation_history=change.replace(history, updates))
