"""What the fleet's BMC capabilities share: a host's `Target` (its machine, BMC endpoint and the
BMC's own settings) and `Link`, the base of every capability (engine.py: power, boot, media,
inspection; firmware.py: BIOS and firmware updates).

`Link._call` is one BMC request as a driver makes it: the endpoint answers (latency billed to the
pass, the one fault model `hostmodel.Faults`), a hung request, or a 5xx or 503 on a read, is
retried up to `provisioner.bmc_retries` times with each wait charged, and what still fails is
raised as core's `DriverError` family (`hostmodel_bmc.reply_error`).
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import simpy

from metalcubed.core import bmc
from metalcubed.simulators import hostmodel_bmc
from metalcubed.simulators.fleet.bmc import Bmc, Reply
from metalcubed.simulators.fleet.machine import BootDevice, Machine

if TYPE_CHECKING:
    from metalcubed.simulators.fleet.engine import FleetEngine

READS = frozenset({"get_power_state", "get_boot", "get_media", "inspect", "get_bios",
                   "get_bios_registry", "get_firmware", "get_tasks"})
"""Requests that are GETs: a driver retries them on 5xx as well as on timeouts."""


@dataclass(slots=True, eq=False, kw_only=True)
class Target:
    """What one BMC address reaches: the machine, its endpoint, and the BMC's own settings."""

    machine: Machine
    endpoint: Bmc
    virtual_media: bool
    media_url: str = ""
    persistent: BootDevice = BootDevice.DISK
    once: BootDevice | None = None
    """A one-time override, used up by the next boot."""
    boot_mode: bmc.BootMode = bmc.BootMode.UEFI
    pending: simpy.Event | None = None
    """The power transition under way (None or processed: settled)."""
    pending_on: bool = False
    steady: bool = False
    """The host is in a steady state (available, provisioned, externally provisioned), where
    its power-state reads are the periodic sync Ironic does too (counted apart)."""
    tasks: list[bmc.UpdateTask] | None = None
    """The BMC's firmware update tasks, oldest first (firmware.py); None until the first."""


class Link:
    """A capability's view of its target, with the driver's retries and the error mapping."""

    name = "fleet"

    def __init__(self, fleet: "FleetEngine", target: Target) -> None:
        self._fleet = fleet
        self._t = target

    def validate(self, access: bmc.BmcAccess) -> None:
        return None

    def _call(self, access: bmc.BmcAccess, kind: str, operation: str) -> Machine:
        fleet = self._fleet
        settings = fleet.settings
        meter = fleet.meter
        target = self._t
        fleet.stats.bmc_calls[operation] += 1
        attempts = settings.bmc_retries
        read = kind in READS
        while True:
            reply = target.endpoint.request(kind, target.machine, meter)
            if reply == Reply.OK:
                return target.machine
            retryable = reply == Reply.TIMEOUT or (
                read and reply in (Reply.SERVER_ERROR, Reply.UNAVAILABLE)
            )
            if not retryable or attempts <= 1:
                break
            attempts -= 1
            meter.charge(settings.bmc_retry_interval_s)
        raise hostmodel_bmc.reply_error(reply, access, operation)

    # --- power transitions on the machine ---------------------------------------------------

    def _settling(self) -> bool:
        pending = self._t.pending
        return pending is not None and not pending.processed

    def _on(self) -> None:
        target = self._t
        machine = target.machine
        event = machine.power_on()
        generation = machine.generation
        target.pending, target.pending_on = event, True
        event.callbacks.append(lambda _e: self._fleet.booted(target, generation))

    def _off(self) -> simpy.Event:
        target = self._t
        event = target.machine.power_off()
        target.pending, target.pending_on = event, False
        return event

    def _cycle(self) -> None:
        """Power off, then on again (a reset, or the reboot that applies a firmware update)."""
        machine = self._t.machine
        off = self._off()
        generation = machine.generation
        self._t.pending_on = True  # the whole reset reads as powering on

        def then_on(_event: simpy.Event) -> None:
            if machine.generation == generation:
                self._on()

        off.callbacks.append(then_on)
