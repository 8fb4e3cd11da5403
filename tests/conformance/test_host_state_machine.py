"""Upstream BMO's host state machine tests, ported case by case (issue 9, items 4 to 7).

Source: metal3-io/baremetal-operator at commit 02aa5059e,
internal/controller/metal3.io/host_state_machine_test.go and, for the discovered host,
baremetalhost_controller_test.go. Every case id is "<UpstreamTest>/<upstream case>".

How upstream's harness maps onto ours. Upstream calls `hostStateMachine.ReconcileState` once
with `mockProvisioner`, which finishes every operation at once unless an error is set for it.
Here each case runs one `BareMetalHostReconciler.reconcile` pass (the public entry point) over
a memory store, with `Immediate`, a provisioner with the mock's behaviour. Our pass also does
what upstream's `Reconcile` does around `ReconcileState`, so each host carries what that needs:
our finalizer, and BMC details with a Secret that matches status.goodCredentials (upstream's
test hands the state machine `haveCreds=true` and that Secret). Hosts in none/unmanaged have no
BMC details, like upstream's builder's. "Dirty" (upstream: the result asks for the host to be
saved) is: the pass changed status other than the conditions and lastUpdated that every pass
recomputes.

Not ported: TestUpdateBootModeStatus (upstream unit of a helper we fold into `transition`;
covered by tests/unit/reconcilers), TestRegisterHost*PreprovisioningImage (registration does
not wait for a PreprovisioningImage here).
"""

import base64
import copy
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from metalcubed.core import outcome, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import hardwaredata as hwd
from metalcubed.core.api import meta
from metalcubed.core.memory_store import MemoryStore
from metalcubed.core.provisioning import fixture
from metalcubed.core.reconcilers import host as host_reconciler
from metalcubed.core.reconcilers import host_states
from metalcubed.core.reconcilers.hostwork import HostReconcilerConfig, HostWork

S = bmh.ProvisioningState
OS = bmh.OperationalStatus
ET = bmh.ErrorType

NS = "bar"
NAME = "foo"
SECRET = "bmc-creds"
SOFT_POWEROFF = "Continuing with hard poweroff after soft poweroff fails. More details: "
"""Upstream clarifySoftPoweroffFailure."""


# --- upstream's mockProvisioner --------------------------------------------------------------


class Immediate(fixture.FixtureProvisioner):
    """Upstream's mockProvisioner: each operation completes in the call that starts it, unless
    `ImmediateBackend.next_results` holds a result for it; calls that got no set result are
    remembered (upstream `calledNoError`). Methods upstream's mock does not have keep the
    fixture provisioner's behaviour."""

    def __init__(
        self,
        backend: "ImmediateBackend",
        host: ports.HostData,
        publish: Callable[[str, str], None],
    ) -> None:
        super().__init__(backend, host, publish)
        self._results = backend.next_results
        self._ok = backend.called_ok

    def _next(self, method: str) -> ports.ProvisionResult:
        result = self._results.get(method)
        if result is None:
            self._ok.add(method)
            return ports.ProvisionResult.complete()
        return result

    def register(
        self,
        data: ports.ManagementAccessData,
        *,
        credentials_changed: bool,
        restart_on_failure: bool,
    ) -> tuple[ports.ProvisionResult, str]:
        return self._next("register"), ""

    def inspect_hardware(
        self,
        data: ports.InspectData,
        *,
        restart_on_failure: bool,
        refresh: bool,
        force_reboot: bool,
    ) -> ports.InspectOutcome:
        return ports.InspectOutcome(
            result=self._next("inspect_hardware"), started=True, details=hwd.HardwareDetails()
        )

    def update_hardware_state(self) -> bool | None:
        return None

    def adopt(
        self, state: bmh.ProvisioningState, *, restart_on_failure: bool
    ) -> ports.ProvisionResult:
        return self._next("adopt")

    def prepare(
        self, data: ports.PrepareData, *, unprepared: bool, restart_on_failure: bool
    ) -> tuple[ports.ProvisionResult, bool]:
        result = self._next("prepare")
        return result, result.dirty

    def provision(self, data: ports.ProvisionData, *, force_reboot: bool) -> ports.ProvisionResult:
        return self._next("provision")

    def deprovision(
        self, *, restart_on_failure: bool, automated_cleaning_mode: bmh.AutomatedCleaningMode
    ) -> ports.ProvisionResult:
        return self._next("deprovision")

    def delete(self) -> ports.ProvisionResult:
        return self._next("delete")

    def detach(self, *, force: bool) -> ports.ProvisionResult:
        return self._next("detach")

    def power_on(self, *, force: bool) -> ports.ProvisionResult:
        return self._next("power_on")

    def power_off(self, mode: ports.RebootMode, *, force: bool) -> ports.ProvisionResult:
        return self._next("power_off")

    def has_power_failure(self) -> bool:
        return False

    def get_health(self) -> str:
        return ""


class ImmediateBackend(fixture.FixtureBackend):
    """The factory of `Immediate` provisioners and what the test sets and reads on them."""

    def __init__(self) -> None:
        super().__init__()
        self.next_results: dict[str, ports.ProvisionResult] = {}
        self.called_ok: set[str] = set()

    def new_provisioner(
        self, host: ports.HostData, publish: Callable[[str, str], None]
    ) -> Immediate:
        return Immediate(self, host, publish)

    def set_next_error(self, method: str, message: str) -> None:
        self.next_results[method] = ports.ProvisionResult.failed(message)

    def clear_next_error(self, method: str) -> None:
        self.next_results[method] = ports.ProvisionResult.complete()


UPSTREAM_METHOD = {
    "ValidateManagementAccess": "register",
    "InspectHardware": "inspect_hardware",
    "Provision": "provision",
    "Deprovision": "deprovision",
    "PowerOn": "power_on",
    "PowerOff": "power_off",
    "Adopt": "adopt",
}
"""Upstream mock method names -> our port's."""


# --- upstream's hostBuilder ---------------------------------------------------------------------


@dataclass
class Host:
    """Upstream `host(state)` and its builder methods, as data: online, spec.image
    "not-empty", empty root device hints, status image "" (needs provisioning), default
    profile and boot mode, good = tried credentials, operationalStatus OK, powered on."""

    state: S
    image_url: str | None = "not-empty"
    online: bool = True
    externally_provisioned: bool = False
    powered_on: bool = True
    operational_status: OS = OS.OK
    error: tuple[ET, str, int] | None = None
    status_image_url: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    deleting: bool = False
    with_finalizer: bool = False
    provisioning_fail_count: int = 0
    last_attempted_image: bmh.Image | None = None
    spec_image: bmh.Image | None = None
    credentials_name: str = SECRET
    error_count: int | None = None

    def disable_inspection(self) -> "Host":
        self.annotations[bmh.INSPECT_ANNOTATION] = "disabled"
        return self

    def set_detached(self, value: str = "true") -> "Host":
        self.annotations[bmh.DETACHED_ANNOTATION] = value
        return self


class ManualClock:
    def __init__(self) -> None:
        self.t = datetime(2021, 1, 18, 10, 18, tzinfo=UTC)

    def now(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


class Events:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def record(
        self, obj: meta.Resource, *, type: ports.EventType, reason: str, message: str
    ) -> None:
        self.reasons.append(reason)


class Metrics:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def inc(self, name: str, labels: dict[str, str] | None = None) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def observe(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        pass

    def count(self, name: str) -> int:
        return self.counts.get(name, 0)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class World:
    """One host in a memory store, our reconciler, and an `Immediate` provisioner."""

    def __init__(
        self,
        *,
        max_provisioning_retries: int = 5,
        backend: fixture.FixtureBackend | None = None,
    ) -> None:
        self.clock = ManualClock()
        self.store = MemoryStore(clock=self.clock)
        self.backend = ImmediateBackend()
        self.factory = backend or self.backend
        self.events = Events()
        self.metrics = Metrics()
        self.reconciler = host_reconciler.BareMetalHostReconciler(
            store=self.store,
            provisioner_factory=self.factory,
            clock=self.clock,
            events=self.events,
            rng=random.Random(1),
            config=HostReconcilerConfig(max_provisioning_retries=max_provisioning_retries),
            metrics=self.metrics,
        )
        self.key = meta.ObjectKey(NS, NAME)
        self.creds = self.add_secret(SECRET)

    def add_secret(self, name: str) -> bmh.CredentialsStatus:
        secret = self.store.create(
            meta.Secret(
                metadata=meta.ObjectMeta(name=name, namespace=NS),
                data={"username": _b64("admin"), "password": _b64("password")},
            )
        )
        return bmh.CredentialsStatus(
            credentials=meta.SecretReference(name=name, namespace=NS),
            credentials_version=secret.metadata.resource_version or "",
        )

    def add(self, h: Host) -> None:
        managed = h.state not in (S.NONE, S.UNMANAGED)
        bmc = (
            bmh.BMCDetails(address="ipmi://192.0.2.1:6233", credentials_name=h.credentials_name)
            if managed
            else bmh.NO_BMC
        )
        image = h.spec_image
        if image is None and h.image_url is not None:
            image = bmh.Image(url=h.image_url)
        spec = bmh.BareMetalHostSpec(
            online=h.online,
            bmc=bmc,
            boot_mac_address="00:5c:52:31:3a:9c",
            image=image,
            root_device_hints=bmh.RootDeviceHints(),
            externally_provisioned=h.externally_provisioned,
        )
        finalizers = (bmh.FINALIZER, "test") if h.with_finalizer else (bmh.FINALIZER,)
        created = self.store.create(
            bmh.BareMetalHost(
                metadata=meta.ObjectMeta(
                    name=NAME, namespace=NS, annotations=h.annotations, finalizers=finalizers
                ),
                spec=spec,
            )
        )
        error_type, error_message, error_count = h.error or (ET.NONE, "", 0)
        if h.error_count is not None:
            error_count = h.error_count
        status = bmh.BareMetalHostStatus.model_validate(
            {
                "hardwareProfile": "unknown",
                "operationalStatus": h.operational_status.value,
                "errorType": error_type.value,
                "errorMessage": error_message,
                "errorCount": error_count,
                "poweredOn": h.powered_on,
                "provisioningFailCount": h.provisioning_fail_count,
                "provisioning": {
                    "state": h.state.value,
                    "ID": "",
                    "bootMode": bmh.DEFAULT_BOOT_MODE.value,
                    "rootDeviceHints": {},
                    "image": {"url": h.status_image_url},
                    "raid": {"softwareRAIDVolumes": []},
                },
                "goodCredentials": self.creds.model_dump(by_alias=True, exclude_none=True),
                "triedCredentials": self.creds.model_dump(by_alias=True, exclude_none=True),
            }
        )
        if h.last_attempted_image is not None:
            status = status.model_copy(update={"last_attempted_image": h.last_attempted_image})
        self.store.update_status(created.model_copy(update={"status": status}))
        if h.deleting:
            self.store.delete(bmh.BareMetalHost, self.key)

    def host(self) -> bmh.BareMetalHost:
        return self.store.get(bmh.BareMetalHost, self.key)

    def status(self) -> bmh.BareMetalHostStatus:
        return self.host().status

    def edit_annotations(self, annotations: dict[str, str]) -> None:
        self.store.update(self.host().with_meta(annotations=annotations))

    def reconcile(self) -> bool:
        """One pass; whether it was dirty (see the module docstring)."""
        before = _comparable(self.status())
        result = self.reconciler.reconcile(self.key)
        if result.requeue_after_s:
            self.clock.advance(result.requeue_after_s)
        try:
            after = _comparable(self.status())
        except outcome.NotFound:
            return True
        return before != after


def _comparable(status: bmh.BareMetalHostStatus) -> dict[str, Any]:
    data = status.model_dump()
    data.pop("conditions", None)
    data.pop("last_updated", None)
    return data


def world_with(h: Host, **options: int) -> World:
    w = World(**options)
    w.add(h)
    return w


# --- TestProvisioningCapacity / TestDeprovisioningCapacity ------------------------------------


@dataclass(frozen=True)
class CapacityCase:
    host: Host
    has_capacity: bool
    expected_state: S
    expected_delayed: bool


PROVISIONING_CAPACITY = {
    "transition-to-inspecting-delayed": CapacityCase(
        Host(S.REGISTERING), False, S.REGISTERING, True
    ),
    "transition-to-provisioning-delayed": CapacityCase(Host(S.AVAILABLE), False, S.AVAILABLE, True),
    "transition-to-provisioning-delayed-deprecated-ready": CapacityCase(
        Host(S.READY), False, S.READY, True
    ),
    "transition-to-inspecting-ok": CapacityCase(Host(S.REGISTERING), True, S.INSPECTING, False),
    "transition-to-provisioning-ok": CapacityCase(Host(S.AVAILABLE), True, S.PROVISIONING, False),
    "already-delayed-delayed": CapacityCase(
        Host(S.AVAILABLE, operational_status=OS.DELAYED), False, S.AVAILABLE, True
    ),
    "already-delayed-ok": CapacityCase(
        Host(S.AVAILABLE, operational_status=OS.DELAYED), True, S.AVAILABLE, False
    ),
    "untracked-inspecting-delayed": CapacityCase(Host(S.INSPECTING), False, S.INSPECTING, True),
    "untracked-inspecting-ok": CapacityCase(Host(S.INSPECTING), True, S.PREPARING, False),
    "untracked-provisioning-delayed": CapacityCase(
        Host(S.PROVISIONING), False, S.PROVISIONING, True
    ),
    "untracked-provisioning-ok": CapacityCase(Host(S.PROVISIONING), True, S.PROVISIONED, False),
}


@pytest.mark.parametrize(
    "case",
    PROVISIONING_CAPACITY.values(),
    ids=[f"TestProvisioningCapacity/{name}" for name in PROVISIONING_CAPACITY],
)
def test_provisioning_capacity(case: CapacityCase) -> None:
    w = world_with(case.host)
    w.backend.capacity = case.has_capacity
    w.reconcile()
    status = w.status()
    assert status.provisioning.state == case.expected_state
    assert (status.operational_status == OS.DELAYED) == case.expected_delayed
    assert w.metrics.count("metal3_delayed__provisioning_total") == int(case.expected_delayed)


def test_delayed_provisioning_counted_on_every_delayed_pass() -> None:
    """TestProvisioningCapacity/already-delayed-delayed over several passes (issue 9 item 6:
    upstream's recordActionDelayed counts each delayed pass, not only the first)."""
    w = world_with(Host(S.AVAILABLE))
    w.backend.capacity = False
    for passes in range(1, 4):
        w.reconcile()
        assert w.status().operational_status == OS.DELAYED
        assert w.metrics.count("metal3_delayed__provisioning_total") == passes
    w.backend.capacity = True
    w.reconcile()  # the pass that finds a slot only clears the delay (upstream checkDelayedHost)
    assert w.status().operational_status == OS.OK
    assert w.status().provisioning.state == S.AVAILABLE
    w.reconcile()
    assert w.status().provisioning.state == S.PROVISIONING
    assert w.metrics.count("metal3_delayed__provisioning_total") == 3


def test_deprovisioning_capacity_transition_to_deprovisioning_ready() -> None:
    """TestDeprovisioningCapacity/transition-to-deprovisionig-ready."""
    w = world_with(Host(S.DEPROVISIONING))
    w.reconcile()
    assert w.status().provisioning.state == S.AVAILABLE
    assert w.status().operational_status != OS.DELAYED
    assert w.metrics.count("metal3_delayed__deprovisioning_total") == 0


# --- TestDetach ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DetachCase:
    host: Host
    annotated: bool
    expected_detach: bool
    expected_dirty: bool
    expected_operational_status: OS
    expected_state: S


DETACH = {
    "ProvisionedHost": DetachCase(Host(S.PROVISIONED), False, False, False, OS.OK, S.PROVISIONED),
    "DetachProvisionedHost": DetachCase(
        Host(S.PROVISIONED), True, True, True, OS.DETACHED, S.PROVISIONED
    ),
    "DeleteDetachedProvisionedHost": DetachCase(
        Host(S.PROVISIONED, operational_status=OS.DETACHED, deleting=True, with_finalizer=True),
        True,
        False,
        True,
        OS.DETACHED,
        S.DELETING,
    ),
    "DeleteDetachedExternallyProvisionedHost": DetachCase(
        Host(
            S.EXTERNALLY_PROVISIONED,
            operational_status=OS.DETACHED,
            deleting=True,
            with_finalizer=True,
        ),
        True,
        False,
        True,
        OS.DETACHED,
        S.DELETING,
    ),
    "ExternallyProvisionedHost": DetachCase(
        Host(S.EXTERNALLY_PROVISIONED, externally_provisioned=True),
        False,
        False,
        False,
        OS.OK,
        S.EXTERNALLY_PROVISIONED,
    ),
    "DetachExternallyProvisionedHost": DetachCase(
        Host(S.EXTERNALLY_PROVISIONED, externally_provisioned=True),
        True,
        True,
        True,
        OS.DETACHED,
        S.EXTERNALLY_PROVISIONED,
    ),
    "NoneHost": DetachCase(Host(S.NONE), True, False, True, OS.DISCOVERED, S.UNMANAGED),
    "UnmanagedHost": DetachCase(Host(S.UNMANAGED), True, False, False, OS.OK, S.UNMANAGED),
    "RegisteringHost": DetachCase(Host(S.REGISTERING), True, False, True, OS.OK, S.INSPECTING),
    "InspectingHost": DetachCase(Host(S.INSPECTING), True, False, True, OS.OK, S.PREPARING),
    "DetachAvailableHost": DetachCase(
        Host(S.AVAILABLE, image_url="", powered_on=False),
        True,
        True,
        True,
        OS.DETACHED,
        S.AVAILABLE,
    ),
    "AttachAvailableHost": DetachCase(
        Host(S.AVAILABLE, image_url="", powered_on=False), False, False, True, OS.OK, S.AVAILABLE
    ),
    "AvailableHost": DetachCase(Host(S.AVAILABLE), False, False, True, OS.OK, S.PROVISIONING),
    "DeprecatedReadyHost": DetachCase(Host(S.READY), False, False, True, OS.OK, S.PROVISIONING),
    "PreparingHost": DetachCase(Host(S.PREPARING), True, False, True, OS.OK, S.AVAILABLE),
    "ProvisioningHost": DetachCase(Host(S.PROVISIONING), True, False, True, OS.OK, S.PROVISIONED),
    "DeprovisioningHost": DetachCase(
        Host(S.DEPROVISIONING), True, False, True, OS.OK, S.AVAILABLE
    ),
    "DeletingHost": DetachCase(
        Host(S.DELETING, deleting=True, with_finalizer=True), True, False, False, OS.OK, S.DELETING
    ),
}


@pytest.mark.parametrize("case", DETACH.values(), ids=[f"TestDetach/{n}" for n in DETACH])
def test_detach(case: DetachCase) -> None:
    host = copy.deepcopy(case.host)
    if case.annotated:
        host.set_detached("true")
    w = world_with(host)
    dirty = w.reconcile()
    assert ("detach" in w.backend.called_ok) == case.expected_detach
    assert dirty == case.expected_dirty
    status = w.status()
    assert status.operational_status == case.expected_operational_status
    assert status.provisioning.state == case.expected_state


# --- TestDetachError ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clear_error", "remove_annotation", "expected_status"),
    [
        pytest.param(True, False, OS.DETACHED, id="TestDetachError/ProvisionerTemporaryError"),
        pytest.param(
            False, True, OS.OK, id="TestDetachError/AnnotationRemovedAfterDetachError"
        ),
    ],
)
def test_detach_error(clear_error: bool, remove_annotation: bool, expected_status: OS) -> None:
    """Item 5: a detach error is cleared on the next pass once the annotation is removed
    (status OK, count 0, no error type), as it is when the retried detach succeeds."""
    w = world_with(Host(S.PROVISIONED).set_detached("true"))
    w.backend.set_next_error("detach", "some error")
    assert w.reconcile()
    status = w.status()
    assert status.error_count == 1
    assert status.operational_status == OS.ERROR
    assert status.error_type == ET.DETACH
    assert status.provisioning.state == S.PROVISIONED

    if clear_error:
        w.backend.clear_next_error("detach")
    if remove_annotation:
        w.edit_annotations({})
    assert w.reconcile()
    status = w.status()
    assert status.error_count == 0
    assert status.operational_status == expected_status
    assert status.provisioning.state == S.PROVISIONED
    assert status.error_type == ET.NONE
    assert status.error_message == ""


# --- TestProvisioningCancelled -------------------------------------------------------------------


def _image(url: str) -> bmh.Image:
    return bmh.Image(url=url)


def _deploy(method: str) -> bmh.CustomDeploy:
    return bmh.CustomDeploy(method=method)


@dataclass(frozen=True)
class CancelCase:
    spec: dict[str, Any]
    status_image: str = ""
    status_deploy: str = ""
    error: tuple[ET, str, int] | None = None
    expected: bool = False


PROVISIONING_CANCELLED = {
    "with image url, unprovisioned": CancelCase({"image": _image("not-empty")}),
    "with custom deploy, unprovisioned": CancelCase(
        {"custom_deploy": _deploy("install_everything")}
    ),
    "with image, unprovisioned": CancelCase({"image": bmh.Image(url="")}, expected=True),
    "without, unprovisioned": CancelCase({}, expected=True),
    "with image url, offline": CancelCase({"image": _image("not-empty"), "online": False}),
    "with custom deploy, offline": CancelCase(
        {"custom_deploy": _deploy("install_everything"), "online": False}
    ),
    "provisioned with image": CancelCase({"image": _image("same")}, status_image="same"),
    "provisioned with error": CancelCase(
        {"image": _image("same")},
        status_image="same",
        error=(ET.PROVISIONED_REGISTRATION, "Adoption failed", 1),
    ),
    "provisioned with custom deploy": CancelCase(
        {"custom_deploy": _deploy("install_everything")}, status_deploy="install_everything"
    ),
    "removed image": CancelCase({}, status_image="same", expected=True),
    "removed custom deploy": CancelCase({}, status_deploy="install_everything", expected=True),
    "changed image": CancelCase(
        {"image": _image("not-empty")}, status_image="also-not-empty", expected=True
    ),
    "changed custom deploy": CancelCase(
        {"custom_deploy": _deploy("install_not_everything")},
        status_deploy="install_everything",
        expected=True,
    ),
    "changed image with custom deploy": CancelCase(
        {"image": _image("not-empty"), "custom_deploy": _deploy("install_everything")},
        status_image="also-not-empty",
        status_deploy="install_everything",
        expected=True,
    ),
    "changed custom deploy with image": CancelCase(
        {"image": _image("not-empty"), "custom_deploy": _deploy("install_not_everything")},
        status_image="not-empty",
        status_deploy="install_everything",
        expected=True,
    ),
    "removed custom deploy with image": CancelCase(
        {"image": _image("not-empty")},
        status_image="not-empty",
        status_deploy="install_everything",
        expected=True,
    ),
}


@pytest.mark.parametrize(
    "case",
    PROVISIONING_CANCELLED.values(),
    ids=[f"TestProvisioningCancelled/{name}" for name in PROVISIONING_CANCELLED],
)
def test_provisioning_cancelled(case: CancelCase) -> None:
    """A unit of one function (upstream calls hsm.provisioningCancelled() directly)."""
    spec = bmh.BareMetalHostSpec(online=case.spec.get("online", True), **{
        k: v for k, v in case.spec.items() if k != "online"
    })
    error_type, error_message, error_count = case.error or (ET.NONE, "", 0)
    status = bmh.BareMetalHostStatus(
        error_type=error_type,
        error_message=error_message,
        error_count=error_count,
        provisioning=bmh.ProvisionStatus(
            image=bmh.Image(url=case.status_image),
            custom_deploy=_deploy(case.status_deploy) if case.status_deploy else None,
        ),
    )
    host = bmh.BareMetalHost(
        metadata=meta.ObjectMeta(name="myhost", namespace="myns"), spec=spec, status=status
    )
    work = HostWork(
        host=host,
        status=status,
        annotations={},
        finalizers=[],
        now=datetime(2021, 1, 18, tzinfo=UTC),
        rng=random.Random(1),
        metrics=Metrics(),
    )
    assert host_states.provisioning_cancelled(work) == case.expected


# --- TestErrorCountIncreasedOnActionFailure ------------------------------------------------------


@dataclass(frozen=True)
class FailureCase:
    host: Host
    error_on: str
    original_error: str = "some error"
    expected_error: str = "some error"


ACTION_FAILURE = {
    "registration": FailureCase(Host(S.REGISTERING), "ValidateManagementAccess"),
    "inspecting": FailureCase(Host(S.INSPECTING), "InspectHardware"),
    "provisioning": FailureCase(Host(S.PROVISIONING, image_url="imageSpecUrl"), "Provision"),
    "deprovisioning": FailureCase(Host(S.DEPROVISIONING), "Deprovision"),
    "available-power-on": FailureCase(
        Host(S.AVAILABLE, image_url="", powered_on=False), "PowerOn"
    ),
    "available-power-off": FailureCase(
        Host(S.AVAILABLE, image_url="", online=False),
        "PowerOff",
        "some details",
        SOFT_POWEROFF + "some details",
    ),
    "deprecated-ready-power-on": FailureCase(
        Host(S.READY, image_url="", powered_on=False), "PowerOn"
    ),
    "deprecated-ready-power-off": FailureCase(
        Host(S.READY, image_url="", online=False),
        "PowerOff",
        "some details",
        SOFT_POWEROFF + "some details",
    ),
    "externally-provisioned-adopt-failed": FailureCase(
        Host(S.EXTERNALLY_PROVISIONED, externally_provisioned=True), "Adopt"
    ),
    "provisioned-adopt-failed": FailureCase(Host(S.PROVISIONED), "Adopt"),
}


@pytest.mark.parametrize(
    "case",
    ACTION_FAILURE.values(),
    ids=[f"TestErrorCountIncreasedOnActionFailure/{name}" for name in ACTION_FAILURE],
)
def test_error_count_increased_on_action_failure(case: FailureCase) -> None:
    """Includes item 4 (provisioned-adopt-failed: a provisioned host with no image in status
    is adopted, not deprovisioned) and item 6 (the soft power off wording)."""
    w = world_with(case.host)
    w.backend.set_next_error(UPSTREAM_METHOD[case.error_on], case.original_error)
    state = case.host.state
    assert w.reconcile()
    status = w.status()
    assert status.error_count == 1
    assert status.error_message == case.expected_error
    assert status.provisioning.state == state


# --- TestErrorCountClearedOnStateTransition ------------------------------------------------------


CLEARED_ON_TRANSITION = {
    "registering-to-inspecting": (Host(S.REGISTERING), S.INSPECTING),
    "registering-to-preparing": (Host(S.REGISTERING).disable_inspection(), S.PREPARING),
    "inspecting-to-preparing": (Host(S.INSPECTING), S.PREPARING),
    "matchprofile-to-preparing": (Host(S.MATCH_PROFILE), S.PREPARING),
    "preparing-to-ready": (Host(S.PREPARING), S.AVAILABLE),
    "provisioning-to-provisioned": (Host(S.PROVISIONING), S.PROVISIONED),
    "deprovisioning-to-ready": (Host(S.DEPROVISIONING), S.AVAILABLE),
    "deprovisioning-to-powering-off": (
        Host(S.DEPROVISIONING, deleting=True, with_finalizer=True),
        S.POWERING_OFF_BEFORE_DELETE,
    ),
    "powering-off-to-deleting": (
        Host(S.POWERING_OFF_BEFORE_DELETE, deleting=True, with_finalizer=True),
        S.DELETING,
    ),
}


@pytest.mark.parametrize(
    ("host", "target"),
    CLEARED_ON_TRANSITION.values(),
    ids=[f"TestErrorCountClearedOnStateTransition/{n}" for n in CLEARED_ON_TRANSITION],
)
def test_error_count_cleared_on_state_transition(host: Host, target: S) -> None:
    """Includes item 6: leaving match profile resets the error count."""
    host = copy.deepcopy(host)
    host.error_count = 1
    w = world_with(host)
    w.reconcile()
    status = w.status()
    assert status.provisioning.state == target
    assert status.error_count == 0


# --- TestErrorClean ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "new_secret"),
    [
        pytest.param(
            Host(
                S.INSPECTING,
                operational_status=OS.ERROR,
                error=(ET.REGISTRATION, "some error", 1),
            ),
            None,
            id="TestErrorClean/clean-after-registration-error",
        ),
        pytest.param(
            Host(S.AVAILABLE, operational_status=OS.ERROR, error=(ET.INSPECTION, "some error", 1)),
            "new-creds",
            id="TestErrorClean/clean-after-creds-change",
        ),
    ],
)
def test_error_clean(host: Host, new_secret: str | None) -> None:
    """Item 6: a registration that succeeds with new credentials clears any earlier error,
    not only a registration error."""
    w = World()
    host = copy.deepcopy(host)
    if new_secret is not None:
        w.add_secret(new_secret)
        host.credentials_name = new_secret
    w.add(host)
    w.reconcile()
    status = w.status()
    assert status.operational_status == OS.OK
    assert status.error_type == ET.NONE
    assert status.error_message == ""
    if new_secret is not None:
        assert status.good_credentials.credentials is not None
        assert status.good_credentials.credentials.name == new_secret


# --- TestDeleteWaitsForDetach --------------------------------------------------------------------


DELETE_WAITS_FOR_DETACH = {
    "detached-delay": (
        Host(S.PROVISIONED, operational_status=OS.DETACHED, deleting=True).set_detached(
            '{"deleteAction": "delay"}'
        ),
        S.PROVISIONED,
        OS.DETACHED,
    ),
    "detached-delete": (
        Host(S.PROVISIONED, operational_status=OS.DETACHED, deleting=True).set_detached(
            '{"deleteAction": "delete"}'
        ),
        S.DELETING,
        OS.DETACHED,
    ),
    "detached-not-json": (
        Host(S.PROVISIONED, operational_status=OS.DETACHED, deleting=True).set_detached("true"),
        S.DELETING,
        OS.DETACHED,
    ),
    "detached-no-annotation": (
        Host(S.PROVISIONED, operational_status=OS.DETACHED, deleting=True),
        S.PROVISIONED,
        OS.OK,
    ),
    "attached": (Host(S.PROVISIONED, deleting=True), S.DEPROVISIONING, OS.OK),
    "detached-annotation-delete-before-status": (
        Host(S.PROVISIONED, deleting=True).set_detached('{"deleteAction": "delete"}'),
        S.DELETING,
        OS.OK,
    ),
}


@pytest.mark.parametrize(
    ("host", "expected_state", "expected_status"),
    DELETE_WAITS_FOR_DETACH.values(),
    ids=[f"TestDeleteWaitsForDetach/{n}" for n in DELETE_WAITS_FOR_DETACH],
)
def test_delete_waits_for_detach(host: Host, expected_state: S, expected_status: OS) -> None:
    w = world_with(host)
    w.reconcile()
    status = w.status()
    assert status.provisioning.state == expected_state
    assert status.operational_status == expected_status


# --- TestProvisioningRetryLimit ------------------------------------------------------------------


@dataclass(frozen=True)
class RetryCase:
    host: Host
    limit: int
    expected_state: S
    expected_fail_count: int
    expected_status: OS


RETRY_LIMIT = {
    "provisioning-error-increments-fail-count": RetryCase(
        Host(
            S.PROVISIONING,
            error=(ET.PROVISIONING, "deploy failed", 0),
            provisioning_fail_count=2,
        ),
        5,
        S.DEPROVISIONING,
        3,
        OS.OK,
    ),
    "retry-limit-reached-stays-available": RetryCase(
        Host(S.AVAILABLE, provisioning_fail_count=5, last_attempted_image=_image("not-empty")),
        5,
        S.AVAILABLE,
        5,
        OS.ERROR,
    ),
    "below-retry-limit-allows-provisioning": RetryCase(
        Host(S.AVAILABLE, provisioning_fail_count=4, last_attempted_image=_image("not-empty")),
        5,
        S.PROVISIONING,
        4,
        OS.OK,
    ),
    "image-url-change-resets-fail-count": RetryCase(
        Host(
            S.AVAILABLE,
            provisioning_fail_count=5,
            last_attempted_image=bmh.Image(url="old-image-url", checksum="abc123"),
            spec_image=bmh.Image(url="new-image-url", checksum="abc123"),
        ),
        5,
        S.PROVISIONING,
        0,
        OS.OK,
    ),
    "checksum-change-resets-fail-count": RetryCase(
        Host(
            S.AVAILABLE,
            provisioning_fail_count=5,
            last_attempted_image=bmh.Image(url="not-empty", checksum="old-checksum"),
            spec_image=bmh.Image(url="not-empty", checksum="new-checksum"),
        ),
        5,
        S.PROVISIONING,
        0,
        OS.OK,
    ),
    "same-image-does-not-reset-fail-count": RetryCase(
        Host(
            S.AVAILABLE,
            provisioning_fail_count=3,
            last_attempted_image=bmh.Image(url="not-empty", checksum="abc123"),
            spec_image=bmh.Image(url="not-empty", checksum="abc123"),
        ),
        5,
        S.PROVISIONING,
        3,
        OS.OK,
    ),
    "limit-zero-disables-retry-limit": RetryCase(
        Host(S.AVAILABLE, provisioning_fail_count=100, last_attempted_image=_image("not-empty")),
        0,
        S.PROVISIONING,
        100,
        OS.OK,
    ),
    "successful-provisioning-resets-fail-count": RetryCase(
        Host(S.PROVISIONING, provisioning_fail_count=3), 5, S.PROVISIONED, 0, OS.OK
    ),
}


@pytest.mark.parametrize(
    "case", RETRY_LIMIT.values(), ids=[f"TestProvisioningRetryLimit/{n}" for n in RETRY_LIMIT]
)
def test_provisioning_retry_limit(case: RetryCase) -> None:
    w = world_with(case.host, max_provisioning_retries=case.limit)
    w.reconcile()
    status = w.status()
    assert status.provisioning.state == case.expected_state
    assert status.provisioning_fail_count == case.expected_fail_count
    assert status.operational_status == case.expected_status
    if case.expected_status == OS.ERROR:
        assert status.error_message == (
            f"provisioning failed {case.expected_fail_count} times, retry limit"
            f" ({case.limit}) reached; change image or reset provisioningFailCount to retry"
        )


# --- item 4 over many passes, item 7: baremetalhost_controller_test.go --------------------------


def test_status_annotation_provisioned_host_without_image_stays_provisioned() -> None:
    """TestStatusAnnotation_EmptyStatus, with a restored status that names no image (item 4):
    the host is adopted and its power managed, pass after pass; never deprovisioned. Runs the
    fixture provisioner (operations take two calls), as upstream's controller tests do."""
    real = fixture.FixtureBackend()
    w = World(backend=real)
    restored = {
        "operationalStatus": "OK",
        "lastUpdated": "2020-04-15T15:00:50Z",
        "hardwareProfile": "StatusProfile",
        "provisioning": {"state": "provisioned", "ID": "", "image": {"url": ""}},
        "goodCredentials": w.creds.model_dump(by_alias=True, exclude_none=True),
        "triedCredentials": w.creds.model_dump(by_alias=True, exclude_none=True),
        "poweredOn": True,
    }
    w.store.create(
        bmh.BareMetalHost(
            metadata=meta.ObjectMeta(
                name=NAME,
                namespace=NS,
                annotations={bmh.STATUS_ANNOTATION: json.dumps(restored)},
            ),
            spec=bmh.BareMetalHostSpec(
                online=True,
                bmc=bmh.BMCDetails(address="ipmi://192.0.2.1:6233", credentials_name=SECRET),
                image=bmh.Image(url="foo", checksum="123"),
            ),
        )
    )
    for _ in range(20):
        w.reconcile()
        status = w.status()
        assert status.hardware_profile == "StatusProfile"
        assert status.provisioning.state == S.PROVISIONED
    node = real.node(w.key)
    assert node.calls.get("deprovision", 0) == 0
    assert node.calls.get("adopt", 0) > 0
    assert node.adopted
    assert status.operational_status == OS.OK and status.error_type == ET.NONE
    assert bmh.STATUS_ANNOTATION not in w.host().metadata.annotations


def test_discovered_host() -> None:
    """TestDiscoveredHost: no BMC address or credentials -> discovered, no error."""
    w = World()
    w.store.create(
        bmh.BareMetalHost(
            metadata=meta.ObjectMeta(name="missing-bmc-address", namespace=NS),
            spec=bmh.BareMetalHostSpec(online=False, bmc=bmh.NO_BMC),
        )
    )
    key = meta.ObjectKey(NS, "missing-bmc-address")
    for _ in range(5):
        w.reconciler.reconcile(key)
    status = w.store.get(bmh.BareMetalHost, key).status
    assert status.operational_status == OS.DISCOVERED
    assert status.provisioning.state == S.UNMANAGED
    assert status.error_type == ET.NONE and status.error_message == ""


def test_discovered_host_without_spec() -> None:
    """Item 7: upstream's examples/demo-hosts.yaml "demo-discovered" host has no spec at all;
    upstream stores it and leaves it unmanaged until BMC details arrive (the model defaults
    a missing spec to one without BMC details)."""
    demo = {
        "apiVersion": "metal3.io/v1alpha1",
        "kind": "BareMetalHost",
        "metadata": {"name": "demo-discovered", "namespace": NS},
    }
    w = World()
    w.store.create(bmh.BareMetalHost.model_validate(demo))
    key = meta.ObjectKey(NS, "demo-discovered")
    for _ in range(5):
        result = w.reconciler.reconcile(key)
    host = w.store.get(bmh.BareMetalHost, key)
    assert host.status.provisioning.state == S.UNMANAGED
    assert host.status.operational_status == OS.DISCOVERED
    assert host.status.error_type == ET.NONE
    assert result.requeue_after_s == 600
    assert "Discovered" in w.events.reasons


# --- baremetalhost_controller_test.go, over the fixture provisioner (upstream's tryReconcile) ----


class Controller:
    """Upstream's controller-test harness: `newDefaultHost` in a store with the default BMC
    Secret, reconciled pass after pass by the fixture provisioner (`tryReconcile`, at most 25
    passes, each followed by the requeue delay on a manual clock)."""

    def __init__(self, name: str, **spec: Any) -> None:
        self.backend = fixture.FixtureBackend()
        self.world = World(backend=self.backend)
        self.key = meta.ObjectKey(NS, name)
        spec.setdefault(
            "bmc", bmh.BMCDetails(address="ipmi://192.168.122.1:6233", credentials_name=SECRET)
        )
        spec.setdefault("online", False)
        spec.setdefault("hardware_profile", "libvirt")
        spec.setdefault("boot_mac_address", "00:5c:52:31:3a:9c")
        self.world.store.create(
            bmh.BareMetalHost(
                metadata=meta.ObjectMeta(name=name, namespace=NS),
                spec=bmh.BareMetalHostSpec(**spec),
            )
        )

    def host(self) -> bmh.BareMetalHost:
        return self.world.store.get(bmh.BareMetalHost, self.key)

    def try_reconcile(self, done: Callable[[bmh.BareMetalHost], bool]) -> bmh.BareMetalHost:
        for _ in range(25):
            result = self.world.reconciler.reconcile(self.key)
            host = self.host()
            if done(host):
                return host
            assert result.requeue_after_s is not None, f"pass ended with no requeue: {host.status}"
            self.world.clock.advance(result.requeue_after_s)
        raise AssertionError(f"Exceeded 25 iterations: {self.host().status!r}")

    def wait_for_state(self, state: S) -> bmh.BareMetalHost:
        return self.try_reconcile(lambda h: h.status.provisioning.state == state)

    def edit_spec(self, **changes: Any) -> None:
        host = self.host()
        spec = host.spec.model_copy(update=changes)
        self.world.store.update(host.model_copy(update={"spec": spec}))


def test_externally_provisioned_transitions_registered_to_externally_provisioned() -> None:
    """TestExternallyProvisionedTransitions/registered to externally provisioned."""
    c = Controller("ext-1", online=True, externally_provisioned=True)
    c.wait_for_state(S.EXTERNALLY_PROVISIONED)


def test_externally_provisioned_transitions_externally_provisioned_to_provisioned() -> None:
    """TestExternallyProvisionedTransitions/externally provisioned to provisioned: the image
    is copied to status, so the host is not deprovisioned."""
    c = Controller(
        "ext-2",
        online=True,
        externally_provisioned=True,
        image=bmh.Image(url="foo", checksum="123"),
    )
    c.wait_for_state(S.EXTERNALLY_PROVISIONED)
    c.edit_spec(externally_provisioned=False)
    host = c.try_reconcile(
        lambda h: h.status.provisioning.state == S.PROVISIONED
        and h.status.provisioning.image.url == "foo"
    )
    assert host.status.provisioning.image.checksum == "123"
    assert host.status.provisioning.custom_deploy is None
    for _ in range(5):  # and it stays there
        c.world.reconciler.reconcile(c.key)
    assert c.host().status.provisioning.state == S.PROVISIONED
    assert c.backend.node(c.key).calls.get("deprovision", 0) == 0


def test_externally_provisioned_transitions_copies_custom_deploy_to_status() -> None:
    """TestExternallyProvisionedTransitions/externally provisioned to provisioned copies
    customDeploy to status."""
    c = Controller(
        "ext-3",
        online=True,
        externally_provisioned=True,
        custom_deploy=bmh.CustomDeploy(method="install_everything"),
    )
    c.wait_for_state(S.EXTERNALLY_PROVISIONED)
    c.edit_spec(externally_provisioned=False)
    host = c.try_reconcile(
        lambda h: h.status.provisioning.state == S.PROVISIONED
        and h.status.provisioning.custom_deploy is not None
        and h.status.provisioning.custom_deploy.method == "install_everything"
    )
    assert host.status.provisioning.image.url == ""


def test_externally_provisioned_transitions_without_image_deprovisions() -> None:
    """TestExternallyProvisionedTransitions/externally provisioned without image deprovisions:
    with neither image nor custom deploy in spec, the host is deprovisioned."""
    c = Controller("ext-4", online=True, externally_provisioned=True)
    c.wait_for_state(S.EXTERNALLY_PROVISIONED)
    c.edit_spec(externally_provisioned=False)
    c.wait_for_state(S.DEPROVISIONING)


def test_externally_provisioned_transitions_preparing_to_externally_provisioned() -> None:
    """TestExternallyProvisionedTransitions/preparing to externally provisioned."""
    c = Controller("ext-5", online=True)
    c.wait_for_state(S.PREPARING)
    c.edit_spec(externally_provisioned=True)
    c.wait_for_state(S.EXTERNALLY_PROVISIONED)


def test_update_good_credentials_on_new_secret() -> None:
    """TestUpdateGoodCredentialsOnNewSecret: a second good Secret becomes goodCredentials."""
    c = Controller("creds-1", online=True)
    c.try_reconcile(lambda h: bool(h.status.good_credentials.credentials_version))
    c.world.add_secret("bmc-creds-valid2")
    c.edit_spec(bmc=bmh.BMCDetails(address="ipmi://192.168.122.1:6233",
                                   credentials_name="bmc-creds-valid2"))
    c.try_reconcile(
        lambda h: h.status.good_credentials.credentials is not None
        and h.status.good_credentials.credentials.name == "bmc-creds-valid2"
    )


def test_update_good_credentials_on_bad_secret() -> None:
    """TestUpdateGoodCredentialsOnBadSecret: a Secret without a username is not recorded as
    good; goodCredentials keep naming the Secret that worked."""
    c = Controller("creds-2", online=True)
    c.try_reconcile(lambda h: bool(h.status.good_credentials.credentials_version))
    c.world.store.create(
        meta.Secret(
            metadata=meta.ObjectMeta(name="bmc-creds-no-user", namespace=NS),
            data={"username": _b64(""), "password": _b64("Pass")},
        )
    )
    c.edit_spec(bmc=bmh.BMCDetails(address="ipmi://192.168.122.1:6233",
                                   credentials_name="bmc-creds-no-user"))
    host = c.try_reconcile(lambda h: h.status.error_type == ET.REGISTRATION)
    assert host.status.good_credentials.credentials is not None
    assert host.status.good_credentials.credentials.name == SECRET


# --- item 4 with the provisioning engine: the running server is not wiped ------------------------


@pytest.mark.parametrize("engine_restarted", [False, True], ids=["same-engine", "engine-restarted"])
def test_provisioned_host_whose_status_lost_its_image_keeps_its_disk(
    engine_restarted: bool,
) -> None:
    """TestErrorCountIncreasedOnActionFailure/provisioned-adopt-failed and TestDetach/
    ProvisionedHost end to end (item 4, the destructive case): a host provisioned by the engine
    whose status is rewritten without status.provisioning.image (another controller, a restored
    status) stays provisioned; its disk is neither wiped nor re-imaged, also when the engine's
    node table lost the host (a restart: the node is adopted back)."""
    from tests.unit.provisioning import loop as prov_loop
    from tests.unit.provisioning import rig as prov_rig

    rig = prov_rig.Rig()
    store = MemoryStore(clock=rig.clock)
    reconciler = host_reconciler.BareMetalHostReconciler(
        store=store,
        provisioner_factory=rig.engine,
        clock=rig.clock,
        events=Events(),
        rng=random.Random(1),
    )
    run = prov_loop.Loop(reconciler, store, clock=rig.clock, max_delay_s=120.0)
    store.create(
        meta.Secret(
            metadata=meta.ObjectMeta(name="bmc", namespace=prov_rig.NS),
            data={"username": _b64("admin"), "password": _b64("password")},
        )
    )
    machine = rig.add_host(scheme="redfish-virtualmedia+http")
    image = bmh.Image(
        url=prov_rig.IMAGE_URL,
        checksum=prov_rig.sha256(prov_rig.IMAGE),
        checksum_type=bmh.ChecksumType.SHA256,
    )
    key = store.create(
        bmh.BareMetalHost(
            metadata=meta.ObjectMeta(name=machine.key.name, namespace=prov_rig.NS),
            spec=bmh.BareMetalHostSpec(
                online=True,
                bmc=bmh.BMCDetails(address=machine.address, credentials_name="bmc"),
                boot_mac_address=machine.mac,
                image=image,
            ),
        )
    ).key
    run.add([key])
    run.run_until(lambda: run.host(key).status.provisioning.state == S.PROVISIONED)
    disk = rig.emulator.disk(machine.model)
    assert disk.image_url == prov_rig.IMAGE_URL and disk.os_boots == 1

    host = run.host(key)
    lost = host.status.provisioning.model_copy(update={"image": bmh.Image(url="")})
    store.update_status(
        host.model_copy(update={"status": host.status.model_copy(update={"provisioning": lost})})
    )
    if engine_restarted:
        rig.engine.forget(host.status.provisioning.id)
    run.poke(key)
    start = run.passes
    run.run_until(lambda: run.passes >= start + 40)

    status = run.host(key).status
    assert status.provisioning.state == S.PROVISIONED
    assert status.error_type == ET.NONE
    assert status.powered_on
    assert disk.wipes == 0
    assert disk.image_url == prov_rig.IMAGE_URL and disk.os_boots == 1
    assert not run.errors


# --- TestMissingBMCParameters, TestFixSecret, TestBreakThenFixSecret ------------------------------


def _secret(c: Controller, name: str, username: str, password: str) -> None:
    c.world.store.create(
        meta.Secret(
            metadata=meta.ObjectMeta(name=name, namespace=NS),
            data={"username": _b64(username), "password": _b64(password)},
        )
    )


MISSING_BMC_PARAMETERS = {
    "secret without username": (
        ("bmc-creds-no-user", "", "Pass"),
        bmh.BMCDetails(address="ipmi://192.168.122.1:6233", credentials_name="bmc-creds-no-user"),
        "Validation error with BMC credentials:"
        " Missing BMC connection detail 'username' in credentials",
    ),
    "secret without password": (
        ("bmc-creds-no-pass", "User", ""),
        bmh.BMCDetails(address="ipmi://192.168.122.1:6233", credentials_name="bmc-creds-no-pass"),
        "Validation error with BMC credentials:"
        " Missing BMC connection details 'password' in credentials",
    ),
    "missing address": (
        ("bmc-creds-ok", "User", "Pass"),
        bmh.BMCDetails(address="", credentials_name="bmc-creds-ok"),
        "Empty BMC address Missing BMC connection detail 'Address'",
    ),
    "missing secret": (
        ("bmc-creds-ok", "User", "Pass"),
        bmh.BMCDetails(address="ipmi://192.168.122.1:6233", credentials_name=""),
        "No BMC CredentialsName defined The BMC secret reference is empty",
    ),
    "no such secret": (
        ("bmc-creds-ok", "User", "Pass"),
        bmh.BMCDetails(
            address="ipmi://192.168.122.1:6233", credentials_name="this-secret-does-not-exist"
        ),
        "BMC CredentialsName secret doesn't exist"
        f" The BMC secret {NS}/this-secret-does-not-exist does not exist",
    ),
}


@pytest.mark.parametrize(
    ("secret", "bmc", "message"),
    MISSING_BMC_PARAMETERS.values(),
    ids=[f"TestMissingBMCParameters/{n}" for n in MISSING_BMC_PARAMETERS],
)
def test_missing_bmc_parameters(
    secret: tuple[str, str, str], bmc: bmh.BMCDetails, message: str
) -> None:
    """Registration error, operationalStatus error; the message is upstream's (its error
    types' Error() strings in baremetalhost_controller.go, errors.go, bmc/credentials.go)."""
    c = Controller("missing-bmc", bmc=bmc)
    _secret(c, *secret)
    host = c.try_reconcile(lambda h: h.status.error_message != "")
    assert host.status.operational_status == OS.ERROR
    assert host.status.error_type == ET.REGISTRATION
    assert host.status.error_message == message


def test_fix_secret() -> None:
    """TestFixSecret: fixing the Secret clears the error."""
    bmc = bmh.BMCDetails(address="ipmi://192.168.122.1:6233", credentials_name="bmc-creds-no-user")
    c = Controller("fix-secret", bmc=bmc)
    _secret(c, "bmc-creds-no-user", "", "Pass")
    c.try_reconcile(lambda h: h.status.error_message != "")
    key = meta.ObjectKey(NS, "bmc-creds-no-user")
    secret = c.world.store.get(meta.Secret, key)
    c.world.store.update(
        secret.model_copy(update={"data": {**secret.data, "username": _b64("username")}})
    )
    host = c.try_reconcile(lambda h: h.status.error_message == "")
    assert host.status.error_type == ET.NONE and host.status.operational_status == OS.OK


def test_break_then_fix_secret() -> None:
    """TestBreakThenFixSecret: a registered host whose Secret breaks shows the error, and
    loses it once the Secret is fixed."""
    bmc = bmh.BMCDetails(
        address="ipmi://192.168.122.1:6233", credentials_name="bmc-creds-toggle-user"
    )
    c = Controller("break-then-fix-secret", bmc=bmc)
    _secret(c, "bmc-creds-toggle-user", "User", "Pass")
    c.try_reconcile(lambda h: h.status.provisioning.id != "")
    key = meta.ObjectKey(NS, "bmc-creds-toggle-user")
    secret = c.world.store.get(meta.Secret, key)
    good = secret.data["username"]
    c.world.store.update(secret.model_copy(update={"data": {**secret.data, "username": ""}}))
    c.try_reconcile(lambda h: h.status.error_message != "")
    secret = c.world.store.get(meta.Secret, key)
    c.world.store.update(secret.model_copy(update={"data": {**secret.data, "username": good}}))
    host = c.try_reconcile(lambda h: h.status.error_message == "")
    assert host.status.error_type == ET.NONE and host.status.operational_status == OS.OK


# --- TestDeleteHost ----------------------------------------------------------------------------

DELETE_HOST: dict[str, tuple[dict[str, Any], bool, str]] = {
    "with-finalizer": ({}, False, ""),
    "without-bmc": ({"bmc": bmh.NO_BMC}, False, ""),
    "fix-secret": (
        {
            "bmc": bmh.BMCDetails(
                address="ipmi://192.168.122.1:6233", credentials_name="bmc-creds-no-user"
            ),
            "hardware_profile": "",
        },
        False,
        "",
    ),
    "host-with-hw-details": ({}, True, ""),
    "provisioned-host": ({"image": bmh.Image(url="image-url", checksum="image-checksum")}, True,
                         "image-url"),
}


@pytest.mark.parametrize(
    ("spec", "hardware", "status_image"),
    DELETE_HOST.values(),
    ids=[f"TestDeleteHost/{n}" for n in DELETE_HOST],
)
def test_delete_host(spec: dict[str, Any], hardware: bool, status_image: str) -> None:
    """A deleted host (state none, a made-up provisioner id; some without BMC details or with
    a Secret that lacks a username) is removed from the provisioner and then from the store."""
    c = Controller("delete-me", **spec)
    _secret(c, "bmc-creds-no-user", "", "Pass")
    host = c.host()
    c.world.store.update(host.with_meta(finalizers=(bmh.FINALIZER,)))
    host = c.host()
    status = host.status.model_copy(
        update={
            "hardware": hwd.HardwareDetails() if hardware else None,
            "provisioning": host.status.provisioning.model_copy(
                update={"id": "made-up-id", "image": bmh.Image(
                    url=status_image, checksum="image-checksum" if status_image else "")}
            ),
        }
    )
    c.world.store.update_status(host.model_copy(update={"status": status}))
    c.world.store.delete(bmh.BareMetalHost, c.key)
    for _ in range(25):
        try:
            result = c.world.reconciler.reconcile(c.key)
            c.host()
        except outcome.NotFound:
            break
        assert result.requeue_after_s is not None, f"pass ended: {c.host().status!r}"
        c.world.clock.advance(result.requeue_after_s)
    else:
        raise AssertionError(f"not deleted in 25 passes: {c.host().status!r}")
    assert c.backend.node(c.key).deleted
