"""Stateful property tests: random spec edits, provisioner faults and reconciles.

Hypothesis interleaves the operations a user, a flaky backend and the runtime produce, and
checks after every step that the invariants of the lifecycle hold.
"""

import json

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from metalcubed.core import backoff, outcome
from metalcubed.core.api import baremetalhost as bmh

from ..unit.reconcilers.conftest import IMAGE, Harness

S = bmh.ProvisioningState
ET = bmh.ErrorType

FAILABLE = [
    "register",
    "inspect_hardware",
    "prepare",
    "provision",
    "deprovision",
    "power_on",
    "power_off",
    "adopt",
    "delete",
    "detach",
]
SIDE_EFFECTS = [
    "inspect_hardware",
    "prepare",
    "provision",
    "deprovision",
    "power_on",
    "power_off",
    "delete",
    "detach",
]
STEADY = {600.0, 60.0}


class HostLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.h = Harness(max_provisioning_retries=3)
        self.h.add_secret()
        self.key = self.h.add_host()
        self.deleted = False
        self.generation = 0

    def _host(self) -> bmh.BareMetalHost | None:
        try:
            return self.h.host(self.key)
        except outcome.NotFound:
            return None

    # --- the runtime ------------------------------------------------------------------------

    @precondition(lambda self: not self.deleted)
    @rule(passes=st.integers(min_value=1, max_value=8))
    def reconcile(self, passes: int) -> None:
        for _ in range(passes):
            before = self._host()
            if before is None:
                return
            try:
                result = self.h.reconciler.reconcile(self.key)
            except outcome.TransientError:
                continue  # the runtime retries with its rate limiter
            after = self._host()
            if (
                after is not None
                and after.status.error_count == before.status.error_count + 1
                and after.status.error_type != ET.NONE
            ):
                low, high = backoff.backoff_window_s(after.status.error_count)
                assert result.requeue_after_s is not None
                assert low < result.requeue_after_s <= high
            if result.requeue_after_s:
                self.h.clock.advance(result.requeue_after_s)

    # --- the user -----------------------------------------------------------------------------

    @precondition(lambda self: not self.deleted)
    @rule(image=st.sampled_from([None, IMAGE, bmh.Image(url="http://img/v2.raw", checksum="a")]))
    def set_image(self, image: bmh.Image | None) -> None:
        self.h.edit_spec(self.key, image=image)

    @precondition(lambda self: not self.deleted)
    @rule(online=st.booleans())
    def set_online(self, online: bool) -> None:
        self.h.edit_spec(self.key, online=online)

    @precondition(lambda self: not self.deleted)
    @rule(
        name=st.sampled_from(
            [
                bmh.PAUSED_ANNOTATION,
                bmh.DETACHED_ANNOTATION,
                bmh.REBOOT_ANNOTATION_PREFIX,
                "reboot.metal3.io/test",
                bmh.INSPECT_ANNOTATION,
            ]
        ),
        value=st.sampled_from([None, "", json.dumps({"mode": "hard"}), "{not json"]),
    )
    def annotate(self, name: str, value: str | None) -> None:
        self.h.set_annotation(self.key, name, value)

    # --- the backend ----------------------------------------------------------------------------

    @precondition(lambda self: not self.deleted)
    @rule(method=st.sampled_from(FAILABLE), times=st.integers(1, 3), transient=st.booleans())
    def inject_failure(self, method: str, times: int, transient: bool) -> None:
        self.h.backend.fail(method, message=f"injected {method}", times=times, transient=transient)

    # --- properties that need a quiet world ---------------------------------------------------

    def _settle(self) -> float | None:
        """Clear faults and user holds, then reconcile until the host rests; its requeue delay."""
        self.h.backend.clear_failures()
        for _ in range(120):
            try:
                result = self.h.reconciler.reconcile(self.key)
            except outcome.TransientError:
                continue
            if result.is_done or result.requeue_after_s in STEADY:
                return result.requeue_after_s
            self.h.clock.advance(result.requeue_after_s or 0)
        return None

    @precondition(lambda self: not self.deleted)
    @rule()
    def unchanged_world_twice_has_no_new_side_effect(self) -> None:
        if self._settle() is None:
            return
        host = self.h.host(self.key)
        calls = dict(self.h.backend.node(self.key).calls)
        events = len(self.h.events.items)
        self.h.reconciler.reconcile(self.key)
        again = self.h.host(self.key)
        assert again.metadata.resource_version == host.metadata.resource_version
        now = self.h.backend.node(self.key).calls
        assert {m: now.get(m, 0) for m in SIDE_EFFECTS} == {
            m: calls.get(m, 0) for m in SIDE_EFFECTS
        }
        assert len(self.h.events.items) == events

    @precondition(lambda self: not self.deleted)
    @rule()
    def delete_finishes_when_the_provisioner_works(self) -> None:
        self.h.backend.clear_failures()
        for name in (bmh.PAUSED_ANNOTATION, bmh.DETACHED_ANNOTATION):
            self.h.set_annotation(self.key, name, None)
        self.h.store.delete(bmh.BareMetalHost, self.key)
        for _ in range(200):
            if self._host() is None:
                break
            try:
                result = self.h.reconciler.reconcile(self.key)
            except outcome.TransientError:
                continue
            self.h.clock.advance(result.requeue_after_s or 0)
        assert self._host() is None, f"not deleted: {self.h.host(self.key).status!r}"
        self.deleted = True

    @precondition(lambda self: self.deleted)
    @rule()
    def enroll_another_host(self) -> None:
        self.generation += 1
        self.key = self.h.add_host(f"host-{self.generation}")
        self.deleted = False

    # --- invariants ----------------------------------------------------------------------------

    @invariant()
    def state_is_known(self) -> None:
        host = self._host()
        if host is not None:
            assert host.status.provisioning.state in set(S)

    @invariant()
    def provisioned_implies_image_recorded(self) -> None:
        host = self._host()
        if host is not None and host.status.provisioning.state == S.PROVISIONED:
            assert host.status.provisioning.image.url

    @invariant()
    def error_type_comes_with_a_message(self) -> None:
        host = self._host()
        if host is not None and host.status.error_type != ET.NONE:
            assert host.status.error_message
            assert host.status.error_count >= 1


TestHostLifecycle = HostLifecycle.TestCase
TestHostLifecycle.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
