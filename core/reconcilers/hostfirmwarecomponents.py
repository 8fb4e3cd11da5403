"""The HostFirmwareComponents controller: upstream's hostfirmwarecomponents_controller.go.

A pass over the HostFirmwareComponents named like a host: skip the host when it is not enrolled,
detached or paused; read the firmware inventory through the host's provisioner into
`status.components`; and set the conditions the host's controller acts on:

- spec updates equal the ones last applied (status.updates): Valid True, ChangeDetected False
  (reason OK);
- they differ: ChangeDetected True, and Valid True, or False with reason InvalidComponent and
  the message naming the bad component (a component other than bmc, bios or nic:...), also as an
  Event `ValidationFailed`.

Written only when something changed; requeued after 1 minute while a change is pending, else 5.
"""

import random

from metalcubed.core import outcome, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import change, meta
from metalcubed.core.api import hostfirmwarecomponents as hfc_api
from metalcubed.core.reconcilers import hostsub

HFC = hfc_api.HostFirmwareComponents
_SETTLED_MAX = 100_000
"""Objects whose settled status is remembered (one per host); starts over past this."""


class HostFirmwareComponentsReconciler:
    def __init__(
        self,
        *,
        store: ports.Store,
        provisioner_factory: ports.ProvisionerFactory,
        clock: ports.Clock,
        events: ports.EventRecorder,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._factory = provisioner_factory
        self._clock = clock
        self._events = events
        self._settled: dict[meta.ObjectKey,
                            tuple[str, tuple[hfc_api.FirmwareComponentStatus, ...]]] = {}
        """Per object, the resourceVersion its last pass left and the inventory it computed
        status from: a periodic pass that reads the same finds nothing to compute."""

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        try:
            host = self._store.get(bmh.BareMetalHost, key)
        except outcome.NotFound:
            return outcome.Outcome.done()
        if hostsub.skip(host):
            return outcome.Outcome.after(hostsub.UNMANAGED_RETRY_DELAY_S)
        try:
            hfc = self._store.get(HFC, key)
        except outcome.NotFound:
            return outcome.Outcome.done()
        events: list[tuple[str, str]] = []
        try:
            prov = self._factory.new_provisioner(
                hostsub.host_data(self._store, host), lambda r, m: events.append((r, m)))
            components = prov.get_firmware_components()
        except outcome.MetalcubedError:
            return outcome.Outcome.after(hostsub.PROVISIONER_RETRY_DELAY_S)
        hfc = self._update_status(hfc, components, events)
        for reason, message in events:
            self._events.record(hfc, type=ports.EventType.NORMAL, reason=reason, message=message)
        if hostsub.is_true(hfc.status.conditions, hfc_api.CHANGE_DETECTED):
            return outcome.Outcome.after(hostsub.REQUEUE_DELAY_CHANGE_DETECTED_S)
        return outcome.Outcome.after(hostsub.REQUEUE_DELAY_S)

    def _update_status(
        self, hfc: HFC, components: tuple[hfc_api.FirmwareComponentStatus, ...],
        events: list[tuple[str, str]],
    ) -> HFC:
        key = hfc.key
        settled = self._settled.get(key)
        if settled is not None and settled[0] == hfc.metadata.resource_version \
                and settled[1] == components:
            return hfc  # the same object, read the same: the same status, no Event
        hfc = self._computed_status(hfc, components, events)
        version = hfc.metadata.resource_version
        if not events and version:  # a pass with Events is computed every time
            if len(self._settled) >= _SETTLED_MAX:
                self._settled.clear()
            self._settled[key] = (version, components)
        return hfc

    def _computed_status(
        self, hfc: HFC, components: tuple[hfc_api.FirmwareComponentStatus, ...],
        events: list[tuple[str, str]],
    ) -> HFC:
        old = hfc.status
        mismatch = old.updates != hfc.spec.updates
        generation = hfc.metadata.generation
        now = self._clock.now()
        conditions = old.conditions

        def set_(type_: str, status: bool, reason: str, message: str = "") -> None:
            nonlocal conditions
            conditions, _changed = hostsub.set_condition(
                conditions, type=type_, status=status, reason=reason, message=message,
                generation=generation, now=now)

        if mismatch:
            set_(hfc_api.CHANGE_DETECTED, True, hfc_api.REASON_VALID)
            problem = hfc_api.component_problem(hfc)
            if problem:
                message = f"Invalid Firmware Components: {problem}"
                events.append(("ValidationFailed", message))
                set_(hfc_api.VALID, False, hfc_api.REASON_INVALID, message)
            else:
                set_(hfc_api.VALID, True, hfc_api.REASON_VALID)
        else:
            set_(hfc_api.VALID, True, hfc_api.REASON_VALID)
            set_(hfc_api.CHANGE_DETECTED, False, hfc_api.REASON_VALID)
        if conditions == old.conditions and components == old.components:
            return hfc
        status = change.replace(old, {"components": components, "conditions": conditions,
                                      "last_updated": now})
        return self._store.update_status(change.replace(hfc, {"status": status}))
