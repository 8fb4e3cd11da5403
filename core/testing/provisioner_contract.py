"""The Provisioner contract: one suite every `ports.Provisioner` implementation must pass unchanged.

The BareMetalHost reconciler talks to hardware only through `ports.ProvisionerFactory` and the
`Provisioner` it builds for each pass (upstream's provisioner interface, bmo.md section 4). The
fixture (upstream's test mode), the engine over simulated BMCs and the engine over the Redfish
and IPMI emulators must behave the same at that port, or a reconciler tested on one misbehaves
on another. This module is that promise as executable checks, written against core/ports.py
only:

- the lifecycle, driven the way the reconciler drives it (a new provisioner per call, the
  provisioner ID from registration on every later call, the requeue delay let pass between
  calls): register -> inspect -> prepare -> provision -> deprovision -> delete, each step until
  it completes (neither dirty nor failed) within a bounded number of calls;
- idempotence: calling a completed step again completes at once and changes nothing on the
  hardware (`harness.fingerprint`: power, boots, what the disk holds);
- power on and off (observed through `update_hardware_state`), adopt and detach (neither
  touches the hardware), has_capacity;
- bad input: an unparseable BMC address, a BMC that does not answer, wrong credentials end
  registration as `ProvisionResult.failed` with a message naming what failed (never a raise,
  never the password); an image that cannot be downloaded fails provisioning naming its URL,
  and the host deprovisions and deploys the right image afterwards. Upstream's fixture talks
  to no BMC, downloads nothing and accepts any address and credentials; its harness says so
  (`reaches_bmc=False`, no `missing_image`) and those checks are reported as not modelled (a
  skip), never as passed.

Time: a step that reports `dirty` asks to be called again after `requeue_after_s`; the suite
calls `harness.advance(requeue_after_s)` in between, which moves the implementation's manual
or simulated clock, or (real emulators) sleeps a capped while. A raised MetalcubedError is
transient by the port's contract: the suite retries it after `harness.transient_retry_s`, and
counts it against the same bound.

Use it from a test module (pytest collects the inherited `test_*` methods):

    class TestProvisionerContract(provisioner_contract.ProvisionerContract):
        @pytest.fixture(params=["fixture", "engine-sim", ...])
        def harness(self, request) -> provisioner_contract.ProvisionerHarness: ...

This module imports no test framework, so core/ stays free of it.
"""

import dataclasses
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import NoReturn

from metalcubed.core import outcome, ports
from metalcubed.core.api import baremetalhost as bmh

S = bmh.ProvisioningState

MAX_CALLS = 400
"""Calls a step may take before the suite fails it (a stuck step, not a slow one)."""


@dataclass(kw_only=True)
class ProvisionerHarness:
    """What an implementation's fixture hands the suite: a factory and one host, off."""

    factory: ports.ProvisionerFactory
    host: ports.HostData
    """A host whose BMC answers with these credentials (provisioner_id "")."""
    image: bmh.Image
    """An image the host can deploy (its checksum right)."""
    advance: Callable[[float], object]
    """Let this much hardware time pass (the requeue delay a step asked for)."""
    fingerprint: Callable[[], Hashable]
    """What the hardware shows now (power, boots, disk contents...): a completed step called
    again must leave it unchanged."""
    not_modelled: Callable[[str], NoReturn]
    """Called (never returns) when a check needs what the implementation does not model."""
    reaches_bmc: bool = True
    """False only for upstream's fixture, which talks to no BMC."""
    checks_credentials: bool = True
    """False when the BMCs accept any credentials (the fleet model: scenarios have none)."""
    unreachable_address: str = ""
    """A BMC address of the host's type where nothing answers ("" when not modelled)."""
    missing_image: bmh.Image | None = None
    """An image whose URL answers 404, with a checksum (None: the implementation downloads
    nothing, as the fixture)."""
    bmc_answers: Callable[[bool], None] | None = None
    """bmc_answers(False) makes the host's BMC stop answering, (True) answer again; None when
    the implementation has no BMC."""
    fill_capacity: Callable[[], None] | None = None
    """Make every provisioning slot busy with other hosts (None when the implementation always
    has capacity for this host, e.g. virtual media)."""
    transient_retry_s: float = 1.0
    max_calls: int = MAX_CALLS
    events: list[tuple[str, str]] = field(default_factory=list)
    """(reason, message) of everything the provisioners published, oldest first."""

    def provisioner(self, host: ports.HostData | None = None) -> ports.Provisioner:
        """A new provisioner for this pass (the reconciler builds one per reconcile)."""
        return self.factory.new_provisioner(
            host or self.host, lambda reason, message: self.events.append((reason, message))
        )


# --- driving ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Driven:
    calls: int
    """How many calls the step took (1: it was complete at once)."""
    result: ports.ProvisionResult


def drive(
    h: ProvisionerHarness,
    step: Callable[[ports.Provisioner], ports.ProvisionResult],
    what: str,
    *,
    host: ports.HostData | None = None,
    expect_failure: bool = False,
) -> Driven:
    """Call `step` on a new provisioner per pass until it is not dirty.

    AssertionError naming `what` when it fails (unless `expect_failure`) or is still dirty after
    `h.max_calls` calls.
    """
    last = ""
    for calls in range(1, h.max_calls + 1):
        try:
            result = step(h.provisioner(host))
        except outcome.MetalcubedError as err:  # transient by the port's contract
            last = f"raised {type(err).__name__}: {err}"
            h.advance(h.transient_retry_s)
            continue
        if result.error_message:
            if expect_failure:
                return Driven(calls, result)
            raise AssertionError(f"{what} failed after {calls} calls: {result.error_message}")
        if not result.dirty:
            if expect_failure:
                raise AssertionError(f"{what} completed although it should have failed")
            return Driven(calls, result)
        last = f"dirty, requeue after {result.requeue_after_s}s"
        h.advance(result.requeue_after_s)
    raise AssertionError(f"{what} did not complete in {h.max_calls} calls (last: {last})")


def _access_data(state: S, *, disable_power_off: bool = False) -> ports.ManagementAccessData:
    return ports.ManagementAccessData(
        boot_mode=bmh.BootMode.UEFI,
        automated_cleaning_mode=bmh.AutomatedCleaningMode.METADATA,
        state=state,
        operational_status=bmh.OperationalStatus.OK,
        current_image=None,
        has_custom_deploy=False,
        disable_power_off=disable_power_off,
        cpu_architecture="x86_64",
        disable_inspection=False,
        inspection_mode=None,
    )


INSPECT = ports.InspectData(boot_mode=bmh.BootMode.UEFI, cpu_architecture="x86_64",
                            inspection_mode=bmh.InspectionMode.AGENT)
NOTHING_TO_PREPARE = ports.PrepareData(target_raid_config=None, actual_raid_config=None,
                                       root_device_hints=None)


def _provision_data(h: ProvisionerHarness) -> ports.ProvisionData:
    return ports.ProvisionData(
        image=h.image,
        host_config=ports.HostConfig(user_data="#cloud-config\nhostname: contract\n"),
        boot_mode=bmh.BootMode.UEFI,
        hardware_profile="unknown",
        root_device_hints=None,
        custom_deploy=None,
    )


def register(h: ProvisionerHarness, *, state: S = S.REGISTERING) -> Driven:
    """Register until complete, then use the provisioner ID on every later call."""
    ids: list[str] = []

    def step(p: ports.Provisioner) -> ports.ProvisionResult:
        result, provisioner_id = p.register(_access_data(state), credentials_changed=False,
                                            restart_on_failure=False)
        ids.append(provisioner_id)
        return result

    done = drive(h, step, "register")
    assert ids[-1], "registration returned no provisioner ID"
    h.host = dataclasses.replace(h.host, provisioner_id=ids[-1])
    return done


def inspect(h: ProvisionerHarness) -> tuple[Driven, list[ports.InspectOutcome]]:
    outcomes: list[ports.InspectOutcome] = []

    def step(p: ports.Provisioner) -> ports.ProvisionResult:
        got = p.inspect_hardware(INSPECT, restart_on_failure=False, refresh=False,
                                 force_reboot=False)
        outcomes.append(got)
        return got.result

    return drive(h, step, "inspect"), outcomes


def provision(h: ProvisionerHarness) -> Driven:
    data = _provision_data(h)
    return drive(h, lambda p: p.provision(data, force_reboot=False), "provision")


def deprovision(h: ProvisionerHarness) -> Driven:
    return drive(h, lambda p: p.deprovision(
        restart_on_failure=False, automated_cleaning_mode=bmh.AutomatedCleaningMode.METADATA),
        "deprovision")


def power_on(h: ProvisionerHarness) -> Driven:
    return drive(h, lambda p: p.power_on(force=False), "power on")


def power_off(h: ProvisionerHarness, mode: ports.RebootMode) -> Driven:
    return drive(h, lambda p: p.power_off(mode, force=False), f"{mode.value} power off")


def again_changes_nothing(
    h: ProvisionerHarness, step: Callable[[ports.Provisioner], ports.ProvisionResult], what: str
) -> None:
    """A completed step called again completes on the first call and touches no hardware."""
    before = h.fingerprint()
    result = step(h.provisioner())
    assert not result.error_message, f"{what} again failed: {result.error_message}"
    assert not result.dirty, f"{what} again started new work"
    assert h.fingerprint() == before, f"{what} again changed the hardware"


def registrations(h: ProvisionerHarness) -> int:
    """How many "Registered" events (upstream's reason for a newly enrolled host) were
    published."""
    return sum(1 for reason, _ in h.events if reason == "Registered")


def powered(h: ProvisionerHarness) -> bool | None:
    return h.provisioner().update_hardware_state()


def _wait_for(h: ProvisionerHarness, predicate: Callable[[], bool], what: str, *,
              step_s: float = 1.0) -> None:
    """Let hardware time pass (no other call) until `predicate` holds, h.max_calls steps."""
    for _ in range(h.max_calls):
        if predicate():
            return
        h.advance(step_s)
    raise AssertionError(f"not reached in {h.max_calls} steps of {step_s}s: {what}")


def wait_powered(h: ProvisionerHarness, want: bool, what: str, *, step_s: float = 1.0) -> None:
    """Let hardware time pass (no other call) until `update_hardware_state` reads `want`."""
    seen: list[bool | None] = []
    for _ in range(h.max_calls):
        seen.append(powered(h))
        if seen[-1] is want:
            return
        h.advance(step_s)
    raise AssertionError(f"{what}: never read {want} (last reads: {seen[-5:]})")


class ProvisionerContract:
    """The contract as pytest test methods; a subclass provides the `harness` fixture."""

    # --- registration ---------------------------------------------------------------------------

    def test_register_completes_with_a_provisioner_id(self, harness: ProvisionerHarness) -> None:
        h = harness
        register(h)
        assert h.host.provisioner_id
        assert registrations(h) == 1

    def test_register_again_changes_nothing(self, harness: ProvisionerHarness) -> None:
        h = harness
        register(h)
        first_id = h.host.provisioner_id

        def step(p: ports.Provisioner) -> ports.ProvisionResult:
            result, provisioner_id = p.register(_access_data(S.REGISTERING),
                                                credentials_changed=False,
                                                restart_on_failure=False)
            assert provisioner_id == first_id
            return result

        again_changes_nothing(h, step, "register")
        assert registrations(h) == 1, "registered twice"

    def test_a_new_host_is_off_and_has_capacity(self, harness: ProvisionerHarness) -> None:
        h = harness
        register(h)
        assert powered(h) is False
        assert h.provisioner().has_capacity()
        assert not h.provisioner().has_power_failure()
        assert h.provisioner().get_health() in ("OK", "Warning", "Critical", "")

    def test_no_capacity_while_every_slot_is_busy(self, harness: ProvisionerHarness) -> None:
        h = harness
        if h.fill_capacity is None:
            h.not_modelled("this host never waits for a provisioning slot")
        register(h)
        h.fill_capacity()
        assert not h.provisioner().has_capacity()

    # --- the lifecycle --------------------------------------------------------------------------

    def test_inspection_reports_the_hardware(
        self, harness: ProvisionerHarness
    ) -> None:
        h = harness
        register(h)
        _, outcomes = inspect(h)
        assert any(o.started for o in outcomes), "no call reported the inspection started"
        details = outcomes[-1].details
        assert details is not None, "inspection completed without hardware details"
        assert details.nics and details.storage and details.ram_mebibytes > 0
        assert all(o.details is None for o in outcomes[:-1]), "details before completion"
        # Whether the host is left on is not the port's business: with fast track (Metal3's
        # Ironic default) the agent keeps running for the next step; without it, off.

    def test_fast_inspection_reads_the_hardware_and_boots_nothing(
        self, harness: ProvisionerHarness
    ) -> None:
        """spec.inspectionMode fast: out-of-band inventory, the host is not booted."""
        h = harness
        register(h)
        before = h.fingerprint()
        outcomes: list[ports.InspectOutcome] = []
        fast = dataclasses.replace(INSPECT, inspection_mode=bmh.InspectionMode.FAST)

        def step(p: ports.Provisioner) -> ports.ProvisionResult:
            got = p.inspect_hardware(fast, restart_on_failure=False, refresh=False,
                                     force_reboot=False)
            outcomes.append(got)
            return got.result

        drive(h, step, "fast inspection")
        assert outcomes[-1].details is not None, "fast inspection completed without details"
        assert h.fingerprint() == before, "fast inspection touched the hardware"

    def test_inspect_again_reports_the_same_hardware(self, harness: ProvisionerHarness) -> None:
        """Re-inspection (the inspect annotation) completes again with the same details."""
        h = harness
        register(h)
        _, outcomes = inspect(h)
        _, again = inspect(h)
        assert again[-1].details is not None
        assert again[-1].details == outcomes[-1].details

    def test_prepare_with_nothing_to_do_completes_at_once(
        self, harness: ProvisionerHarness
    ) -> None:
        h = harness
        register(h)
        inspect(h)

        def step(p: ports.Provisioner) -> ports.ProvisionResult:
            result, _started = p.prepare(NOTHING_TO_PREPARE, unprepared=True,
                                         restart_on_failure=False)
            return result

        again_changes_nothing(h, step, "prepare with nothing to do")

    def test_provision_deploys_and_powers_the_host_on(self, harness: ProvisionerHarness) -> None:
        h = harness
        register(h)
        inspect(h)
        before = h.fingerprint()
        done = provision(h)
        assert done.calls > 1, "provisioning completed without doing anything"
        assert h.fingerprint() != before, "the harness's fingerprint does not see a deployment"
        # The engine completes once the reboot into the disk is started (long operations are
        # started, never waited on); the host must then come on with no further call.
        assert powered(h) is not False, "provisioned, and the host reads off"
        wait_powered(h, True, "the provisioned host on")
        data = _provision_data(h)
        again_changes_nothing(h, lambda p: p.provision(data, force_reboot=False), "provision")

    def test_deprovision_undoes_provision(self, harness: ProvisionerHarness) -> None:
        h = harness
        register(h)
        inspect(h)
        provision(h)
        done = deprovision(h)
        assert done.calls > 1, "deprovisioning completed without doing anything"
        again_changes_nothing(h, lambda p: p.deprovision(
            restart_on_failure=False, automated_cleaning_mode=bmh.AutomatedCleaningMode.METADATA),
            "deprovision")
        redeploy = provision(h)
        assert redeploy.calls > 1, "provisioning after deprovisioning deployed nothing"

    def test_delete_completes_and_again_changes_nothing(self, harness: ProvisionerHarness) -> None:
        h = harness
        register(h)
        drive(h, lambda p: p.delete(), "delete")
        again_changes_nothing(h, lambda p: p.delete(), "delete")

    def test_after_delete_the_host_registers_anew(self, harness: ProvisionerHarness) -> None:
        h = harness
        register(h)
        inspect(h)
        provision(h)
        deprovision(h)
        drive(h, lambda p: p.delete(), "delete")
        h.host = dataclasses.replace(h.host, provisioner_id="")
        register(h)
        assert registrations(h) == 2

    def test_an_image_that_cannot_be_downloaded_fails_provisioning_naming_it(
        self, harness: ProvisionerHarness
    ) -> None:
        h = harness
        if h.missing_image is None:
            h.not_modelled("the implementation downloads no image")
        register(h)
        inspect(h)
        data = dataclasses.replace(_provision_data(h), image=h.missing_image)
        failed = drive(h, lambda p: p.provision(data, force_reboot=False), "provision",
                       expect_failure=True)
        assert h.missing_image.url in failed.result.error_message, failed.result.error_message
        deprovision(h)  # the failed deployment is cleaned up like any other
        provision(h)  # and the right image deploys afterwards

    # --- power ----------------------------------------------------------------------------------

    def test_power_on_then_again_changes_nothing(self, harness: ProvisionerHarness) -> None:
        h = harness
        register(h)
        power_on(h)
        assert powered(h) is True
        again_changes_nothing(h, lambda p: p.power_on(force=False), "power on")

    def test_hard_power_off_then_again_changes_nothing(self, harness: ProvisionerHarness) -> None:
        h = harness
        register(h)
        power_on(h)
        power_off(h, ports.RebootMode.HARD)
        assert powered(h) is False
        again_changes_nothing(h, lambda p: p.power_off(ports.RebootMode.HARD, force=False),
                              "hard power off")

    def test_soft_power_off_reaches_off(self, harness: ProvisionerHarness) -> None:
        h = harness
        register(h)
        power_on(h)
        power_off(h, ports.RebootMode.SOFT)
        assert powered(h) is False

    def test_with_power_off_disabled_power_off_reboots_instead(
        self, harness: ProvisionerHarness
    ) -> None:
        """spec.disablePowerOff: a power off becomes a reboot, and the host stays on. As the
        reconciler does, every pass registers (with the flag) before it asks for the power off.
        """
        h = harness
        register(h)
        power_on(h)
        before = h.fingerprint()

        def step(p: ports.Provisioner) -> ports.ProvisionResult:
            registered, _ = p.register(_access_data(S.PROVISIONED, disable_power_off=True),
                                       credentials_changed=False, restart_on_failure=False)
            if registered.dirty or registered.error_message:
                return registered
            return p.power_off(ports.RebootMode.HARD, force=False)

        drive(h, step, "power off with power off disabled")
        assert powered(h) is not False, "the host was powered off although that is disabled"
        wait_powered(h, True, "the rebooted host on")
        assert h.fingerprint() != before, "power off with power off disabled did not reboot"

    def test_a_bmc_that_stops_answering_is_a_power_failure_until_it_answers(
        self, harness: ProvisionerHarness
    ) -> None:
        """The power state is unknown (None) and has_power_failure is set while the BMC is
        gone, within the implementation's power sync (hardware time passes, no other call);
        both clear once it answers again."""
        h = harness
        if h.bmc_answers is None:
            h.not_modelled("the implementation has no BMC")
        register(h)
        h.bmc_answers(False)

        def failing() -> bool:
            p = h.provisioner()
            return p.update_hardware_state() is None and p.has_power_failure()

        _wait_for(h, failing, "a power failure while the BMC does not answer")
        h.bmc_answers(True)

        def answering() -> bool:
            p = h.provisioner()
            return p.update_hardware_state() is False and not p.has_power_failure()

        _wait_for(h, answering, "the power state read again once the BMC answers")

    # --- adopt and detach ------------------------------------------------------------------------

    def test_adopt_touches_no_hardware(self, harness: ProvisionerHarness) -> None:
        h = harness
        register(h)
        before = h.fingerprint()
        drive(h, lambda p: p.adopt(S.PROVISIONED, restart_on_failure=False), "adopt")
        assert h.fingerprint() == before, "adopt changed the hardware"
        again_changes_nothing(h, lambda p: p.adopt(S.PROVISIONED, restart_on_failure=False),
                              "adopt")

    def test_detach_touches_no_hardware_and_the_host_registers_again(
        self, harness: ProvisionerHarness
    ) -> None:
        h = harness
        register(h)
        inspect(h)
        provision(h)
        before = h.fingerprint()
        drive(h, lambda p: p.detach(force=False), "detach")
        assert h.fingerprint() == before, "detach changed the hardware"
        again_changes_nothing(h, lambda p: p.detach(force=False), "detach")
        register(h, state=S.PROVISIONED)  # the detached annotation removed: back again
        assert h.fingerprint() == before, "registering a detached host changed the hardware"

    # --- bad input ------------------------------------------------------------------------------

    def _register_fails(self, h: ProvisionerHarness, host: ports.HostData) -> str:
        def step(p: ports.Provisioner) -> ports.ProvisionResult:
            result, _ = p.register(_access_data(S.REGISTERING), credentials_changed=True,
                                   restart_on_failure=False)
            return result

        failed = drive(h, step, "register", host=host, expect_failure=True)
        return failed.result.error_message

    def test_an_unparseable_bmc_address_fails_registration(
        self, harness: ProvisionerHarness
    ) -> None:
        h = harness
        if not h.reaches_bmc:
            h.not_modelled("upstream's fixture talks to no BMC and accepts any address")
        bad = dataclasses.replace(h.host, bmc_address="no-such-scheme://192.0.2.1")
        message = self._register_fails(h, bad)
        assert "no-such-scheme" in message, message

    def test_a_bmc_that_does_not_answer_fails_registration(
        self, harness: ProvisionerHarness
    ) -> None:
        h = harness
        if not h.reaches_bmc:
            h.not_modelled("upstream's fixture talks to no BMC")
        if not h.unreachable_address:
            h.not_modelled("no BMC address where nothing answers")
        bad = dataclasses.replace(h.host, bmc_address=h.unreachable_address)
        message = self._register_fails(h, bad)
        assert "unreachable" in message.lower() or "no answer" in message.lower(), message
        register(h)  # the address corrected: registration completes

    def test_wrong_credentials_fail_registration_without_the_password(
        self, harness: ProvisionerHarness
    ) -> None:
        h = harness
        if not h.reaches_bmc or not h.checks_credentials:
            h.not_modelled("the BMCs accept any credentials (upstream's fixture has none)")
        wrong = ports.Credentials(username=h.host.bmc_credentials.username,
                                  password="contract-wrong-password")
        bad = dataclasses.replace(h.host, bmc_credentials=wrong)
        message = self._register_fails(h, bad)
        assert "authentication" in message.lower(), message
        assert "contract-wrong-password" not in message

        def fixed(p: ports.Provisioner) -> ports.ProvisionResult:  # the Secret corrected
            result, _ = p.register(_access_data(S.REGISTERING), credentials_changed=True,
                                   restart_on_failure=True)
            return result

        drive(h, fixed, "register with the corrected credentials")

    # --- DataImage and BMC event subscriptions ---------------------------------------------------

    def test_a_data_image_goes_into_the_virtual_cd_and_out_again(
        self, harness: ProvisionerHarness
    ) -> None:
        h = harness
        register(h)
        try:
            before = h.provisioner().get_data_image_status()
        except outcome.MetalcubedError as err:
            # A driver without virtual media (IPMI, network boot) says so; nothing else fails.
            assert "virtual media" in str(err), err
            return
        assert before is False
        h.provisioner().attach_data_image(h.image.url)
        h.provisioner().attach_data_image(h.image.url)  # the same image again: no change
        assert h.provisioner().get_data_image_status() is True
        h.provisioner().detach_data_image()
        assert h.provisioner().get_data_image_status() is False
        h.provisioner().detach_data_image()  # nothing inserted: a no-op

    def test_an_event_subscription_is_created_and_removed(
        self, harness: ProvisionerHarness
    ) -> None:
        h = harness
        register(h)
        result, subscription_id = h.provisioner().add_bmc_event_subscription(
            destination="http://127.0.0.1:9/contract/", context="contract",
            http_headers={"X-Contract": "yes"})
        if result.error_message:
            # A driver without an event service (IPMI) fails the step, naming it.
            assert "event subscriptions" in result.error_message, result
            return
        assert result == ports.ProvisionResult.complete() and subscription_id
        removed = h.provisioner().remove_bmc_event_subscription(subscription_id)
        assert removed == ports.ProvisionResult.complete()
        again = h.provisioner().remove_bmc_event_subscription(subscription_id)
        assert again == ports.ProvisionResult.complete()
