"""Power management of stable hosts and the reboot annotations (bmo.md 2.6 and 8).

Runs in available, provisioned and externally provisioned. Desired power is spec.online,
except while a reboot annotation asks for a power cycle: the host is powered off, the bare
`reboot.metal3.io` annotation is removed once it is off (so it comes back on), and keyed
`reboot.metal3.io/<key>` annotations hold it off until their owners remove them.
"""

from typing import TYPE_CHECKING

from metalcubed.core import annotations, outcome, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.reconcilers import servicing
from metalcubed.core.reconcilers.hostwork import ET, POWER_POLL_S, HostWork, S

if TYPE_CHECKING:
    from metalcubed.core.reconcilers.host_states import Deps

SOFT_FAILURE_PREFIX = "Continuing with hard poweroff after soft poweroff fails. More details: "
"""Upstream clarifySoftPoweroffFailure: put before a failed soft power off's message."""


def manage(w: HostWork, deps: "Deps") -> outcome.Outcome:
    prov = w.provisioner()
    observed = prov.update_hardware_state()
    reboot = annotations.reboot_request(w.annotations)
    if observed is not None and observed != w.status.powered_on:
        w.set(powered_on=observed)
        if w.status.error_type == ET.POWER_MANAGEMENT:
            w.clear_error()
        if not observed and reboot is not None and not reboot.keyed:
            # Off now, with a one-shot reboot to take away: the power state is written on a
            # pass of its own first (upstream writes every observed change so: actionUpdate),
            # so whoever sees the annotation gone has seen the host off. The metadata write
            # goes before the status write: in one pass a client would see the annotation
            # gone while status still says on. Other changes stay in the pass (an extra pass
            # each costs a saturated controller: firmware-1000's windows grew 20 %).
            return outcome.Outcome.after(0)
    rebooting = reboot is not None and (w.state != S.AVAILABLE or reboot.force)
    desired = w.spec.online and not rebooting
    if rebooting and not w.status.powered_on and reboot is not None and not reboot.keyed:
        # Off now: the one-shot reboot is done; on the next pass the host powers back on.
        w.annotations.pop(bmh.REBOOT_ANNOTATION_PREFIX, None)
        desired = w.spec.online
    if servicing.should_check(w):
        # Off and wanted on (a reboot), or servicing already: firmware changes a
        # HostUpdatePolicy allows are applied now (upstream doServiceIfNeeded, H5).
        serviced = servicing.service_if_needed(w, deps.store)
        if serviced is not None:
            return serviced
    if desired == w.status.powered_on:
        if w.status.error_type == ET.POWER_MANAGEMENT:
            w.clear_error_and_count()
        elif w.status.error_count and w.status.error_type == ET.NONE:
            w.set(error_count=0)
        return outcome.Outcome.after(POWER_POLL_S)
    force = w.status.error_type == ET.POWER_MANAGEMENT
    soft_off = False
    if desired:
        result = prov.power_on(force=force)
    else:
        if reboot is not None and not reboot.valid:
            w.event(
                "InvalidAnnotationValue",
                "invalid reboot annotation value; using a soft reboot",
                warning=True,
            )
        hard = (reboot is not None and reboot.hard) or w.status.error_count > 0
        soft_off = not hard
        result = prov.power_off(
            ports.RebootMode.SOFT if soft_off else ports.RebootMode.HARD, force=force
        )
    if result.error_message:
        message = result.error_message
        if soft_off and not force:
            message = SOFT_FAILURE_PREFIX + message
        return w.record_failure(ET.POWER_MANAGEMENT, message)
    if result.dirty:
        return outcome.Outcome.after(result.requeue_after_s)
    w.set(powered_on=desired)
    w.metrics.inc("metal3_operation_power_change_total", {"on_off": "on" if desired else "off"})
    w.event(
        "PowerOn" if desired else "PowerOff", "Host powered on" if desired else "Host powered off"
    )
    return outcome.Outcome.after(0)
