"""The scenario's workload: what the user does to the fleet, step by step, through the API.

Steps run in order. Each waits for its trigger: `at` a simulated time, or `when` every selected
host has settled in a state (or in error, or is gone), plus an optional `delay`; then it acts
on its hosts, all at once or in batches. A `per_host` step instead acts on each host as soon as
that host settles in its `when` state (a rolling pipeline). Actions are what a user (or CAPM3)
would write:

- enroll: a BMC credentials Secret and a BareMetalHost (online: false) per host;
- provision: spec.image and online: true;
- deprovision: no image, online: false;
- delete: delete the BareMetalHost;
- service: a firmware change on a provisioned host (HostUpdatePolicy, HostFirmwareSettings,
  HostFirmwareComponents, then the reboot annotation: servicing.py).

Writes go straight to the store (the user's client is not the controller's, so they are not
billed to a worker) as read-modify-write with retry on 409, like `kubectl edit`. Hosts that are
already gone are skipped.
"""

import contextlib
import random
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import simpy

from metalcubed.core import outcome, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta
from metalcubed.simulators.fleet import scenario
from metalcubed.simulators.fleet.observer import DELETED, ERROR, GROUP_LABEL, Observer
from metalcubed.simulators.fleet.servicing import Servicing


@dataclass(frozen=True, slots=True, kw_only=True)
class HostPlan:
    """One host of the fleet as the workload will enroll it."""

    name: str
    namespace: str
    group: str
    address: str
    boot_mac: str
    automated_cleaning_mode: bmh.AutomatedCleaningMode

    @property
    def key(self) -> meta.ObjectKey:
        return meta.ObjectKey(self.namespace, self.name)

    @property
    def secret_name(self) -> str:
        return f"{self.name}-bmc-secret"


class Workload:
    """Runs the steps; `done` once every step has acted on (or skipped) every host.

    Bulk steps run in one simpy process, in order, each waiting for its trigger. A per-host
    step is activated when reached (the process moves straight on to the next step) and acts
    on each of its hosts once that host has been through the previous steps and settles in
    the step's `when` state; hosts that settle in error or are gone skip it. Progress is kept
    per host as the index of the last step applied to it.
    """

    def __init__(
        self,
        env: simpy.Environment,
        *,
        spec: scenario.Scenario,
        store: ports.Store,
        observer: Observer,
        hosts: dict[str, list[HostPlan]],
        rng: random.Random,
        servicing: Servicing | None = None,
    ) -> None:
        self._env = env
        self._spec = spec
        self._steps = spec.workload
        self._store = store
        self._observer = observer
        self._hosts = hosts
        self._rng = rng
        self._servicing = servicing
        self._plans = {plan.key: plan for plans in hosts.values() for plan in plans}
        self._progress: dict[meta.ObjectKey, int] = dict.fromkeys(self._plans, -1)
        self._finished_hosts = 0
        self._active = -1
        """The last step index the process has reached (bulk: acted; per-host: activated)."""
        self._loop_done = False
        self._waiting: tuple[tuple[str, ...], str, simpy.Event] | None = None
        self._changed: list[meta.ObjectKey] = []
        self._flush_scheduled = False
        self.done = False
        self.fired: list[tuple[str, float]] = []
        """(step name, simulated time it fired or, for per-host steps, was activated)."""
        env.process(self._run())

    # --- notifications from the observer ---------------------------------------------------------

    def check(self) -> None:
        """Re-evaluate the pending bulk condition (the observer calls this on changes)."""
        if self._waiting is None:
            return
        groups, label, event = self._waiting
        if self._observer.selection_settled(groups, label):
            self._waiting = None
            event.succeed()

    def host_changed(self, key: meta.ObjectKey) -> None:
        """A host's settled label changed; per-host steps look at it (deferred: no re-entry
        into the store while it is delivering)."""
        self._changed.append(key)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._env.timeout(0).callbacks.append(self._flush)

    def _flush(self, _event: simpy.Event) -> None:
        self._flush_scheduled = False
        changed, self._changed = self._changed, []
        for key in changed:
            self._advance(key)
        self._check_done()

    # --- the process -------------------------------------------------------------------------

    def _groups(self, step: scenario.Step) -> tuple[str, ...]:
        return step.groups or tuple(group.name for group in self._spec.groups)

    def _run(self) -> Generator[simpy.Event, Any, None]:
        env = self._env
        steps = self._steps
        for index, step in enumerate(steps):
            if step.per_host:
                continue  # activated with the bulk step before it
            groups = self._groups(step)
            if step.at_s is not None and step.at_s > env.now:
                yield env.timeout(step.at_s - env.now)
            elif step.when_state is not None:
                event = env.event()
                self._waiting = (groups, step.when_state, event)
                self.check()
                yield event
            if step.delay_s > 0:
                yield env.timeout(step.delay_s)
            self.fired.append((step.name, env.now))
            # The per-host steps that follow start now: they take each host as soon as this
            # step has acted on it (so early batches do not wait for the last one).
            last = index
            while last + 1 < len(steps) and steps[last + 1].per_host:
                last += 1
                self.fired.append((steps[last].name, env.now))
            self._active = last
            plans = [plan for group in groups for plan in self._hosts[group]]
            batch = step.batch_size or len(plans) or 1
            for start in range(0, len(plans), batch):
                if start and step.batch_interval_s > 0:
                    yield env.timeout(step.batch_interval_s)
                for plan in plans[start : start + batch]:
                    self._act(step, plan)
                    self._set_progress(plan.key, index)
                    self._advance(plan.key)
            for key in self._plans:
                if self._progress[key] < index:  # not selected by this step
                    self._set_progress(key, index)
                    self._advance(key)
        self._loop_done = True
        self._check_done()

    def _advance(self, key: meta.ObjectKey) -> None:
        """Apply the per-host steps this host is ready for."""
        record = self._observer.hosts.get(key)
        plan = self._plans[key]
        while True:
            index = self._progress[key] + 1
            if index > self._active:
                return
            step = self._steps[index]
            if not step.per_host:
                return  # bulk steps set progress themselves
            if step.groups and plan.group not in step.groups:
                self._set_progress(key, index)
                continue
            label = record.label if record is not None else None
            if label is not None and label == step.when_state:
                self._set_progress(key, index)
                self._act(step, plan)
                return
            if label in (ERROR, DELETED):
                self._set_progress(key, index)  # skipped: nothing more will happen to it
                continue
            return

    def _set_progress(self, key: meta.ObjectKey, index: int) -> None:
        if self._progress[key] >= index:
            return
        self._progress[key] = index
        if index == len(self._steps) - 1:
            self._finished_hosts += 1

    def _check_done(self) -> None:
        if not self.done and self._loop_done and self._finished_hosts == len(self._plans):
            self.done = True
            self._observer.on_change()

    # --- actions ---------------------------------------------------------------------------------

    def _act(self, step: scenario.Step, plan: HostPlan) -> None:
        if step.action == scenario.Action.ENROLL:
            self._enroll(plan)
        elif step.action == scenario.Action.PROVISION:
            image = self._spec.images[step.image]
            self._edit(
                plan,
                online=True,
                image=bmh.Image(
                    url=image.url,
                    checksum=image.checksum,
                    format=image.format,
                    checksum_type=bmh.ChecksumType.AUTO if image.checksum else None,
                ),
            )
        elif step.action == scenario.Action.DEPROVISION:
            self._edit(plan, online=False, image=None)
        elif step.action == scenario.Action.SERVICE:
            assert self._servicing is not None, "a scenario with a service step has Servicing"
            self._servicing.request(plan.key, step)
        else:
            with contextlib.suppress(outcome.NotFound):
                self._store.delete(bmh.BareMetalHost, plan.key)

    def _enroll(self, plan: HostPlan) -> None:
        store = self._store
        password = "%016x" % self._rng.getrandbits(64)  # noqa: UP031
        store.create(
            meta.Secret(
                metadata=meta.ObjectMeta(name=plan.secret_name, namespace=plan.namespace),
                string_data={"username": "admin", "password": password},
            )
        )
        store.create(
            bmh.BareMetalHost(
                metadata=meta.ObjectMeta(
                    name=plan.name, namespace=plan.namespace, labels={GROUP_LABEL: plan.group}
                ),
                spec=bmh.BareMetalHostSpec(
                    online=False,
                    bmc=bmh.BMCDetails(address=plan.address, credentials_name=plan.secret_name),
                    bootMACAddress=plan.boot_mac,
                    automated_cleaning_mode=plan.automated_cleaning_mode,
                ),
            )
        )

    def _edit(self, plan: HostPlan, *, online: bool, image: bmh.Image | None) -> None:
        store = self._store
        for _ in range(10):
            try:
                host = store.get(bmh.BareMetalHost, plan.key)
            except outcome.NotFound:
                return
            spec = host.spec.model_copy(update={"online": online, "image": image})
            if spec == host.spec:
                return
            try:
                store.update(host.model_copy(update={"spec": spec}))
                return
            except outcome.Conflict:
                continue
        raise outcome.TransientError(f"workload: {plan.key} kept changing under the edit")
