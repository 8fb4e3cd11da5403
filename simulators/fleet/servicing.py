"""Servicing in the fleet model: the user's side of a firmware change, and what must hold after.

A workload `service` step (scenario.Action.SERVICE) changes firmware on a provisioned host the
way a user does, through the API only:

1. a HostUpdatePolicy allowing it (`onReboot` for settings and updates; or `onPreparing`, or
   none at all, where a provisioned host must NOT be serviced);
2. the BIOS settings into HostFirmwareSettings spec.settings and the firmware images into
   HostFirmwareComponents spec.updates (updating the objects the controllers created, or
   creating them);
3. once the controllers have seen the change (a condition of each written object observed its
   new generation), or after `REBOOT_WAIT_S` at most, the reboot annotation on the host.

The host stays unsettled (observer.held) from the request until the work shows in its status
(`operationalStatus: servicing`, or an error), or, when none shows, until it has rebooted and
stayed unchanged for `QUIET_S`; from there its status says whether it is at work (annotation,
servicing, power not as asked).

At the end `check` compares what each host's status says with the hardware's truth (the
machine's flashed versions and BIOS values), adding invariant violations:

- `image-lost`: a serviced host is no longer provisioned with the image it had, its disk no
  longer holds it, or it was written again (servicing must leave the workload untouched);
- `failure-invisible`: the change did not land on the hardware, yet the host shows no error
  (no `servicing error` on the host, no Valid=False on the firmware objects);
- `serviced-without-policy`: the hardware changed although no policy allowed servicing;
- `stuck-servicing`: a host still servicing at the end.

The report's `servicing` section counts requested / serviced / failed / unserviced hosts, time
from the reboot request to the host settling again, time in `servicing`, and the BMC's
failed flashes and restarts.
"""

import contextlib
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import simpy

from metalcubed.core import outcome, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import hostfirmwarecomponents as hfc
from metalcubed.core.api import hostfirmwaresettings as hfs
from metalcubed.core.api import hostupdatepolicy as hup
from metalcubed.core.api import meta
from metalcubed.simulators import hostmodel
from metalcubed.simulators.fleet import scenario
from metalcubed.simulators.fleet.machine import BIOS_REGISTRY, Machine
from metalcubed.simulators.fleet.observer import Observer

REBOOT_WAIT_S = 600.0
"""Longest wait for the controllers to see a firmware change before rebooting anyway."""

QUIET_S = 120.0
"""How long a rebooted host that shows no servicing must stay unchanged to count as settled."""

OS = bmh.OperationalStatus
_POLICIES = {
    scenario.UpdatePolicy.ON_REBOOT: hup.UpdatePolicy.ON_REBOOT,
    scenario.UpdatePolicy.ON_PREPARING: hup.UpdatePolicy.ON_PREPARING,
}


@dataclass(slots=True, eq=False)
class Request:
    """One host's service request and what it looked like before."""

    key: meta.ObjectKey
    machine: Machine
    step: scenario.Step
    settings: dict[str, str | int]
    firmware: tuple[scenario.FirmwareImage, ...]
    requested_at: float
    image_url: str
    """status.provisioning.image.url when the request was made."""
    writes: int
    """Image writes the machine had seen then."""
    firmware_before: dict[str, str]
    bios_before: dict[str, hostmodel.BiosValue]
    generations: dict[str, int] = field(default_factory=dict)
    """Kind -> generation written (the objects whose controllers must see the change)."""
    rebooted_at: float | None = None
    boots_at_reboot: int = 0
    last_change_at: float = 0.0
    servicing_since: float | None = None
    settled_at: float | None = None


class Servicing:
    """Writes the service requests and checks them (see the module docstring)."""

    def __init__(self, env: simpy.Environment, *, store: ports.Store, observer: Observer,
                 machines: Mapping[str, Machine], images: Mapping[str, scenario.FirmwareImage]
                 ) -> None:
        self._env = env
        self._store = store
        self._observer = observer
        self._machines = machines
        self._images = images
        self.requests: dict[meta.ObjectKey, Request] = {}
        self.in_servicing: list[float] = []
        """Seconds each visit to operationalStatus servicing lasted."""
        self.windows: list[float] = []
        """Seconds from the reboot request to the host settled again (the maintenance window)."""
        self.reboots_forced = 0
        """Reboots written after REBOOT_WAIT_S without the controllers having seen the change."""
        self._due: list[meta.ObjectKey] = []
        self._flush_scheduled = False
        store.watch(hfs.HostFirmwareSettings, self._firmware_changed)
        store.watch(hfc.HostFirmwareComponents, self._firmware_changed)
        store.watch(bmh.BareMetalHost, self._host_changed)

    # --- the request -----------------------------------------------------------------------------

    def request(self, key: meta.ObjectKey, step: scenario.Step) -> None:
        """Write the policy and the firmware objects' specs; the reboot follows."""
        store = self._store
        try:
            host = store.get(bmh.BareMetalHost, key)
        except outcome.NotFound:
            return
        machine = self._machines[key.name]
        req = Request(
            key=key, machine=machine, step=step,
            settings=dict(step.settings),
            firmware=tuple(self._images[name] for name in step.firmware),
            requested_at=self._env.now, image_url=host.status.provisioning.image.url,
            writes=machine.writes, firmware_before=dict(machine.firmware),
            bios_before=dict(machine.bios),
        )
        policy = _POLICIES.get(step.policy)
        if policy is not None:
            _apply(store, hup.HostUpdatePolicy, key, lambda obj: obj.model_copy(update={
                "spec": hup.HostUpdatePolicySpec(firmware_settings=policy,
                                                 firmware_updates=policy)}),
                   lambda: hup.HostUpdatePolicy(metadata=_meta(key)))
        if req.settings:
            def settings(obj: hfs.HostFirmwareSettings) -> hfs.HostFirmwareSettings:
                wanted = {**obj.spec.settings, **req.settings}
                return obj.model_copy(update={"spec": hfs.HostFirmwareSettingsSpec(
                    settings=wanted)})

            written = _apply(store, hfs.HostFirmwareSettings, key, settings,
                             lambda: hfs.HostFirmwareSettings(metadata=_meta(key)))
            req.generations[hfs.HostFirmwareSettings.KIND] = written
        if req.firmware:
            updates = tuple(hfc.FirmwareUpdate(component=image.component, url=image.url)
                            for image in req.firmware)

            def components(obj: hfc.HostFirmwareComponents) -> hfc.HostFirmwareComponents:
                kept = tuple(u for u in obj.spec.updates
                             if u.component not in {n.component for n in updates})
                return obj.model_copy(update={"spec": hfc.HostFirmwareComponentsSpec(
                    updates=kept + updates)})

            written = _apply(store, hfc.HostFirmwareComponents, key, components,
                             lambda: hfc.HostFirmwareComponents(metadata=_meta(key)))
            req.generations[hfc.HostFirmwareComponents.KIND] = written
        self.requests[key] = req  # from here its objects' changes are watched (not while written)
        self._observer.held.add(key)
        self._observer.relabel(host)
        timer = self._env.timeout(REBOOT_WAIT_S)
        timer.callbacks.append(lambda _e: self._reboot(key, forced=True))
        self._check_seen(key)

    def _firmware_changed(self, event: ports.WatchEvent[Any]) -> None:
        if event.object.key in self.requests:
            self._check_seen(event.object.key)

    def _check_seen(self, key: meta.ObjectKey) -> None:
        """Reboot once every written object has a condition observing its new generation."""
        req = self.requests[key]
        if req.rebooted_at is not None:
            return
        for kind_name, generation in req.generations.items():
            kind: type[hfs.HostFirmwareSettings] | type[hfc.HostFirmwareComponents] = (
                hfs.HostFirmwareSettings if kind_name == hfs.HostFirmwareSettings.KIND
                else hfc.HostFirmwareComponents)
            try:
                conditions = self._store.get(kind, key).status.conditions
            except outcome.NotFound:
                return
            if not any((c.observed_generation or 0) >= generation for c in conditions):
                return
        self._due.append(key)  # written after the store has delivered this change
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._env.timeout(0).callbacks.append(self._flush)

    def _flush(self, _event: simpy.Event) -> None:
        self._flush_scheduled = False
        due, self._due = self._due, []
        for key in due:
            self._reboot(key, forced=False)

    def _reboot(self, key: meta.ObjectKey, *, forced: bool) -> None:
        req = self.requests[key]
        if req.rebooted_at is not None:
            return
        req.rebooted_at = self._env.now
        req.boots_at_reboot = req.machine.boots
        if forced:
            self.reboots_forced += 1

        def annotate(host: bmh.BareMetalHost) -> bmh.BareMetalHost:
            annotations = {**host.metadata.annotations, bmh.REBOOT_ANNOTATION_PREFIX: ""}
            return host.model_copy(update={"metadata": host.metadata.model_copy(
                update={"annotations": annotations})})

        if not _apply(self._store, bmh.BareMetalHost, key, annotate, None):
            self._release(key)  # the host is gone: nothing to wait for

    def _release(self, key: meta.ObjectKey) -> None:
        self._observer.held.discard(key)
        with contextlib.suppress(outcome.NotFound):
            self._observer.relabel(self._store.get(bmh.BareMetalHost, key))

    # --- watching the hosts ------------------------------------------------------------------

    def _host_changed(self, event: ports.WatchEvent[bmh.BareMetalHost]) -> None:
        host = event.object
        req = self.requests.get(host.key)
        if req is None:
            return
        now = self._env.now
        servicing = host.status.operational_status == OS.SERVICING
        if servicing and req.servicing_since is None:
            req.servicing_since = now
        elif not servicing and req.servicing_since is not None:
            self.in_servicing.append(now - req.servicing_since)
            req.servicing_since = None
        rebooted_at = req.rebooted_at
        if rebooted_at is not None and host.key in self._observer.held:
            if servicing or host.status.operational_status == OS.ERROR:
                # The work shows: from here the host's own status says whether it is busy.
                self._release(host.key)
            elif not host.status.powered_on or req.machine.boots > req.boots_at_reboot:
                # Rebooted, and nothing shows (yet): a pass that only took the annotation off
                # looks settled for an instant before the next one starts servicing. Release
                # once the host has been quiet for QUIET_S (as a policy that allows nothing
                # leaves it).
                req.last_change_at = now
                timer = self._env.timeout(QUIET_S)
                timer.callbacks.append(functools.partial(self._quiet, host.key, now))
        if rebooted_at is not None and req.settled_at is None:
            record = self._observer.hosts.get(host.key)
            if record is not None and record.label is not None:
                req.settled_at = now
                self.windows.append(now - rebooted_at)

    def _quiet(self, key: meta.ObjectKey, changed_at: float, _event: simpy.Event) -> None:
        req = self.requests[key]
        if req.last_change_at != changed_at or key not in self._observer.held:
            return  # changed since, or released already
        self._release(key)
        record = self._observer.hosts.get(key)
        if req.settled_at is None and record is not None and record.label is not None \
                and req.rebooted_at is not None:
            req.settled_at = changed_at  # settled then; the quiet period only confirmed it
            self.windows.append(changed_at - req.rebooted_at)

    # --- the end -----------------------------------------------------------------------------

    def check(self) -> dict[str, int]:
        """Add invariant violations to the observer; return the host counts by outcome."""
        violations = self._observer.violations
        counts = {"requested": len(self.requests), "serviced": 0, "failed": 0,
                  "unserviced": 0, "status_disagrees": 0}
        for key, req in sorted(self.requests.items(), key=lambda kv: str(kv[0])):
            name = str(key)
            try:
                host: bmh.BareMetalHost | None = self._store.get(bmh.BareMetalHost, key)
            except outcome.NotFound:
                host = None
            machine = req.machine
            if host is None:
                violations.add("image-lost", f"{name}: the host is gone")
                continue
            status = host.status
            if status.operational_status == OS.SERVICING:
                violations.add("stuck-servicing", f"{name}: still servicing at the end")
            kept = status.provisioning.image.url
            if status.provisioning.state != bmh.ProvisioningState.PROVISIONED or \
                    kept != req.image_url or machine.disk_image != req.image_url or \
                    machine.writes != req.writes:
                violations.add(
                    "image-lost",
                    f"{name}: state {status.provisioning.state.value}, status image {kept!r}, "
                    f"disk {machine.disk_image!r} (had {req.image_url!r}), "
                    f"{machine.writes - req.writes} image writes since the request",
                )
            applied = self._applied(req)
            visible = self._error_visible(host)
            allowed = req.step.policy == scenario.UpdatePolicy.ON_REBOOT
            if not allowed:
                if self._touched(req):
                    violations.add("serviced-without-policy",
                                   f"{name}: firmware changed with policy {req.step.policy}")
                counts["unserviced"] += 1
            elif applied and not visible:
                counts["serviced"] += 1
                if not self._status_agrees(req):
                    counts["status_disagrees"] += 1
            elif visible:
                counts["failed"] += 1
            else:
                counts["unserviced"] += 1
                violations.add("failure-invisible", f"{name}: {self._missing(req)} on the "
                               "hardware, and no error on the host or its firmware objects")
        return counts

    def _applied(self, req: Request) -> bool:
        machine = req.machine
        return all(_same(n, machine.bios.get(n), v) for n, v in req.settings.items()) and all(
            machine.firmware.get(image.component) == image.version for image in req.firmware)

    def _touched(self, req: Request) -> bool:
        machine = req.machine
        return machine.firmware != req.firmware_before or any(
            machine.bios.get(n) != req.bios_before.get(n) for n in req.settings)

    def _missing(self, req: Request) -> str:
        machine = req.machine
        missing = [f"{n}={v}" for n, v in req.settings.items()
                   if not _same(n, machine.bios.get(n), v)]
        missing += [f"{i.component} {i.version} (runs {machine.firmware.get(i.component)})"
                    for i in req.firmware if machine.firmware.get(i.component) != i.version]
        return "not applied: " + ", ".join(missing)

    def _error_visible(self, host: bmh.BareMetalHost) -> bool:
        status = host.status
        if status.operational_status == OS.ERROR and status.error_type and status.error_message:
            return True
        for kind in (hfs.HostFirmwareSettings, hfc.HostFirmwareComponents):
            try:
                obj = self._store.get(kind, host.key)
            except outcome.NotFound:
                continue
            for condition in obj.status.conditions:  # type: ignore[attr-defined]
                if condition.type == "Valid" and condition.status == "False":
                    return True
        return False

    def _status_agrees(self, req: Request) -> bool:
        """The firmware objects' status reports what the hardware runs (informational)."""
        key = req.key
        try:
            components = self._store.get(hfc.HostFirmwareComponents, key).status.components \
                if req.firmware else ()
            settings = self._store.get(hfs.HostFirmwareSettings, key).status.settings \
                if req.settings else {}
        except outcome.NotFound:
            return False
        versions = {c.component: c.current_version for c in components}
        return all(versions.get(i.component) == i.version for i in req.firmware) and all(
            _same(n, settings.get(n), v) for n, v in req.settings.items())


def _same(name: str, actual: object, wanted: str | int) -> bool:
    """Whether the BIOS value `actual` is what the user asked for (compared as the API would:
    as text, booleans case-insensitively)."""
    if actual is None:
        return False
    attr = BIOS_REGISTRY.get(name)
    if attr is not None and attr.type is hostmodel.BiosType.BOOLEAN:
        return str(actual).lower() == str(wanted).lower()
    return str(actual) == str(wanted)


def _meta(key: meta.ObjectKey) -> meta.ObjectMeta:
    return meta.ObjectMeta(name=key.name, namespace=key.namespace)


def _apply(store: ports.Store, kind: type[Any], key: meta.ObjectKey,
           change: Callable[[Any], Any], new: Callable[[], Any] | None) -> int:
    """Read-modify-write with retry on 409 (like `kubectl edit`); create from `new()` when
    missing. Returns the generation written (0 when nothing was)."""
    store_ = store
    for _ in range(10):
        try:
            current = store_.get(kind, key)
        except outcome.NotFound:
            if new is None:
                return 0
            try:
                return store_.create(change(new())).metadata.generation or 0
            except outcome.Conflict:  # created meanwhile (AlreadyExists)
                continue
        changed = change(current)
        if changed == current:
            return current.metadata.generation or 0
        try:
            return store_.update(changed).metadata.generation or 0
        except outcome.Conflict:
            continue
    raise outcome.TransientError(f"workload: {kind.KIND} {key} kept changing under the edit")
