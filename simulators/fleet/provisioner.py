"""The Provisioner port over the simulated conductor, behaving as upstream's Ironic provisioner.

BMO calls `ports.Provisioner` methods; upstream's ironic provisioner turns each call into one or
two Ironic API requests (read the node, maybe change its provision state) and answers from the
node's state: `continuing` (dirty, poll again in 10 s, or 3 s for quick operations, plus 0-25 %
jitter) while Ironic works, `failed(last_error)` when it failed, complete when done. This module
does the same over `conductor.Conductor`, state by state, including upstream's recovery moves
when `restart_on_failure` is set (manage after a failed inspection or cleaning, redeploy after
a failed deploy with a new image) and HasCapacity's PROVISIONING_LIMIT count (virtual media
hosts always have capacity, bmo.md 6.1).

Every Ironic API request is charged to the reconcile pass that made it (`cost.Meter`), so the
fleet model's workers are busy for as long as the real ones would be (DESIGN rule 4).
"""

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from metalcubed.core import outcome, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta
from metalcubed.simulators.fleet import cost, scenario
from metalcubed.simulators.fleet.bmc import Bmc
from metalcubed.simulators.fleet.conductor import (
    Conductor,
    ConductorError,
    Node,
    NodeLocked,
    NodeState,
)
from metalcubed.simulators.fleet.machine import Machine

NS = NodeState
_INSPECTING = frozenset({NS.INSPECTING, NS.INSPECT_WAIT})
_CLEANING = frozenset({NS.CLEANING, NS.CLEAN_WAIT})
_DEPLOYING = frozenset({NS.DEPLOYING, NS.DEPLOY_WAIT})
_NOT_YET_MANAGED = frozenset({NS.ENROLL, NS.VERIFYING})


@dataclass(frozen=True, slots=True, kw_only=True)
class Inventory:
    """What one BMC address reaches in the simulated world."""

    machine: Machine
    bmc: Bmc
    virtual_media: bool


class SimProvisionerFactory:
    """Builds a SimProvisioner per reconcile (as upstream builds one per pass)."""

    def __init__(
        self,
        *,
        conductor: Conductor,
        inventory: Mapping[str, Inventory],
        images: Mapping[str, scenario.Image],
        settings: scenario.ProvisionerSettings,
        provisioning_limit: int,
        meter: cost.Meter,
        rng: random.Random,
    ) -> None:
        self._conductor = conductor
        self._inventory = inventory
        self._images = {image.url: image for image in images.values()}
        self._settings = settings
        self._limit = provisioning_limit
        self._meter = meter
        self._rng = rng
        self._cache: dict[meta.ObjectKey, SimProvisioner] = {}

    def new_provisioner(
        self, host: ports.HostData, publish: Callable[[str, str], None]
    ) -> "SimProvisioner":
        # One object per host, reset for each pass: what it holds between calls of one pass
        # (the node looked up) is forgotten, as a fresh upstream provisioner would.
        provisioner = self._cache.get(host.key)
        if provisioner is None or provisioner.host_address != host.bmc_address:
            provisioner = SimProvisioner(
                host=host,
                inventory=self._inventory.get(host.bmc_address),
                conductor=self._conductor,
                images=self._images,
                settings=self._settings,
                provisioning_limit=self._limit,
                meter=self._meter,
                rng=self._rng,
            )
            self._cache[host.key] = provisioner
        else:
            provisioner.reset(host)
        return provisioner


class SimProvisioner:
    """One host's provisioner for one reconcile pass."""

    __slots__ = (
        "_conductor",
        "_host",
        "_images",
        "_inventory",
        "_latency",
        "_limit",
        "_looked_up",
        "_meter",
        "_node",
        "_rng",
        "_settings",
        "host_address",
    )

    def __init__(
        self,
        *,
        host: ports.HostData,
        inventory: Inventory | None,
        conductor: Conductor,
        images: Mapping[str, scenario.Image],
        settings: scenario.ProvisionerSettings,
        provisioning_limit: int,
        meter: cost.Meter,
        rng: random.Random,
    ) -> None:
        self._host = host
        self._inventory = inventory
        self._conductor = conductor
        self._images = images
        self._settings = settings
        self._limit = provisioning_limit
        self._meter = meter
        self._rng = rng
        self._latency = settings.api_latency
        self._node: Node | None = None
        self._looked_up = False
        self.host_address = host.bmc_address

    def reset(self, host: ports.HostData) -> None:
        """Start a new pass for `host` (same BMC address)."""
        self._host = host
        self._node = None
        self._looked_up = False

    # --- helpers -----------------------------------------------------------------------------

    @property
    def _name(self) -> str:
        key = self._host.key
        return f"{key.namespace}~{key.name}"

    def _api(self) -> None:
        """Charge one Ironic API request to the current reconcile pass."""
        meter = self._meter
        meter.bill_s += self._latency.draw(meter.rng)

    def _lookup(self) -> Node | None:
        if not self._looked_up:
            self._api()
            self._looked_up = True
            found = None
            if self._host.provisioner_id:
                found = self._conductor.find(self._host.provisioner_id)
            self._node = found or self._conductor.find(self._name)
        return self._node

    def _registered(self) -> Node:
        node = self._lookup()
        if node is None:
            raise outcome.TransientError(f"node {self._name} is not registered")
        return node

    def _continuing(self, delay_s: float) -> ports.ProvisionResult:
        jitter = self._settings.poll_jitter * self._rng.random()
        return ports.ProvisionResult.continuing(delay_s * (1.0 + jitter))

    def _slow(self) -> ports.ProvisionResult:
        return self._continuing(self._settings.poll_s)

    def _quick(self) -> ports.ProvisionResult:
        return self._continuing(self._settings.quick_poll_s)

    def _act(
        self, action: Callable[[], None], then: ports.ProvisionResult
    ) -> ports.ProvisionResult:
        """Run a conductor verb as one API request; a locked node means "busy, retry soon"."""
        self._api()
        try:
            action()
        except NodeLocked:
            return self._quick()
        except ConductorError as err:
            raise outcome.TransientError(str(err)) from err
        return then

    # --- the port ------------------------------------------------------------------------------

    def register(
        self,
        data: ports.ManagementAccessData,
        *,
        credentials_changed: bool,
        restart_on_failure: bool,
    ) -> tuple[ports.ProvisionResult, str]:
        node = self._lookup()
        if node is None:
            inventory = self._inventory
            if inventory is None:
                return (
                    ports.ProvisionResult.failed(
                        f"Failed to connect to the BMC at {self._host.bmc_address}"
                    ),
                    "",
                )
            self._api()
            try:
                node = self._conductor.create(
                    name=self._name,
                    address=self._host.bmc_address,
                    machine=inventory.machine,
                    bmc=inventory.bmc,
                    virtual_media=inventory.virtual_media,
                )
            except ConductorError as err:
                return ports.ProvisionResult.failed(str(err)), ""
            self._node = node
        node.automated_clean = (
            data.automated_cleaning_mode == bmh.AutomatedCleaningMode.METADATA
        )
        state = node.state
        if state == NS.ENROLL:
            if node.last_error and not restart_on_failure:
                return ports.ProvisionResult.failed(node.last_error), node.uuid
            return self._act(lambda: self._conductor.manage(node), self._quick()), node.uuid
        if state == NS.VERIFYING:
            return self._quick(), node.uuid
        return ports.ProvisionResult.complete(), node.uuid

    def inspect_hardware(
        self,
        data: ports.InspectData,
        *,
        restart_on_failure: bool,
        refresh: bool,
        force_reboot: bool,
    ) -> ports.InspectOutcome:
        node = self._registered()
        state = node.state
        if state in _INSPECTING:
            return ports.InspectOutcome(result=self._slow(), started=False, details=None)
        if state == NS.INSPECT_FAILED:
            if not restart_on_failure:
                return ports.InspectOutcome(
                    result=ports.ProvisionResult.failed(node.last_error), started=False,
                    details=None,
                )
            result = self._act(lambda: self._conductor.manage(node), self._quick())
            return ports.InspectOutcome(result=result, started=False, details=None)
        if state in _NOT_YET_MANAGED:
            return ports.InspectOutcome(result=self._quick(), started=False, details=None)
        if state == NS.MANAGEABLE and (refresh or not node.inspected):
            result = self._act(lambda: self._conductor.inspect(node), self._slow())
            return ports.InspectOutcome(result=result, started=result.dirty, details=None)
        if state == NS.AVAILABLE and refresh:
            result = self._act(lambda: self._conductor.manage(node), self._quick())
            return ports.InspectOutcome(result=result, started=False, details=None)
        return ports.InspectOutcome(
            result=ports.ProvisionResult.complete(),
            started=False,
            details=node.machine.hardware_details(),
        )

    def update_hardware_state(self) -> bool | None:
        node = self._lookup()
        return None if node is None else node.powered

    def adopt(
        self, state: bmh.ProvisioningState, *, restart_on_failure: bool
    ) -> ports.ProvisionResult:
        node = self._registered()
        if node.state == NS.MANAGEABLE:
            return self._act(lambda: self._conductor.adopt(node), self._quick())
        if node.state in _NOT_YET_MANAGED:
            return self._quick()
        return ports.ProvisionResult.complete()

    def prepare(
        self, data: ports.PrepareData, *, unprepared: bool, restart_on_failure: bool
    ) -> tuple[ports.ProvisionResult, bool]:
        # Manual cleaning (RAID, firmware) is not modelled: nothing to do, nothing started.
        self._registered()
        return ports.ProvisionResult.complete(), False

    def provision(self, data: ports.ProvisionData, *, force_reboot: bool) -> ports.ProvisionResult:
        node = self._registered()
        state = node.state
        url = data.image.url if data.image is not None else ""
        if state == NS.MANAGEABLE:
            return self._act(lambda: self._conductor.provide(node), self._slow())
        if state in _CLEANING or state in _DEPLOYING:
            return self._slow()
        if state == NS.CLEAN_FAILED:
            return ports.ProvisionResult.failed(node.last_error)
        if state == NS.AVAILABLE or (state == NS.DEPLOY_FAILED and node.instance_url != url):
            image = self._images.get(url)
            size = image.size_bytes if image is not None else 2 * 2**30
            image_format = (
                data.image.format.value
                if data.image is not None and data.image.format is not None
                else bmh.ImageFormat.RAW.value
            )
            return self._act(
                lambda: self._conductor.deploy(
                    node, url=url, size_bytes=size, image_format=image_format
                ),
                self._slow(),
            )
        if state == NS.DEPLOY_FAILED:
            return ports.ProvisionResult.failed(node.last_error)
        if state == NS.ACTIVE:
            return ports.ProvisionResult.complete()
        return self._quick()

    def deprovision(
        self, *, restart_on_failure: bool, automated_cleaning_mode: bmh.AutomatedCleaningMode
    ) -> ports.ProvisionResult:
        node = self._registered()
        node.automated_clean = automated_cleaning_mode == bmh.AutomatedCleaningMode.METADATA
        state = node.state
        if state in (NS.ACTIVE, NS.DEPLOY_FAILED, NS.DEPLOY_WAIT) or (
            state == NS.ERROR and restart_on_failure
        ):
            return self._act(lambda: self._conductor.undeploy(node), self._slow())
        if state == NS.ERROR:
            return ports.ProvisionResult.failed(node.last_error)
        if state == NS.DELETING or state in _CLEANING or state == NS.DEPLOYING:
            return self._slow()
        if state == NS.CLEAN_FAILED:
            if not restart_on_failure:
                return ports.ProvisionResult.failed(node.last_error)
            return self._act(lambda: self._conductor.manage(node), self._quick())
        if state == NS.MANAGEABLE:
            return self._act(lambda: self._conductor.provide(node), self._slow())
        if state == NS.INSPECT_WAIT:
            return self._act(lambda: self._conductor.abort(node), self._quick())
        if state == NS.INSPECTING:
            return self._quick()
        return ports.ProvisionResult.complete()

    def delete(self) -> ports.ProvisionResult:
        node = self._lookup()
        if node is None:
            return ports.ProvisionResult.complete()
        self._api()
        self._conductor.delete(node)
        self._node = None
        return ports.ProvisionResult.complete()

    def detach(self, *, force: bool) -> ports.ProvisionResult:
        node = self._lookup()
        if node is None:
            return ports.ProvisionResult.complete()
        if not force and self._conductor.locked(node):
            return self._quick()
        self._api()
        self._conductor.delete(node)
        self._node = None
        return ports.ProvisionResult.complete()

    def power_on(self, *, force: bool) -> ports.ProvisionResult:
        return self._power(True, force=force)

    def power_off(self, mode: ports.RebootMode, *, force: bool) -> ports.ProvisionResult:
        return self._power(False, force=force)

    def _power(self, on: bool, *, force: bool) -> ports.ProvisionResult:
        node = self._registered()
        if node.target_power is not None:
            return self._quick()
        if node.power_error and not force:
            return ports.ProvisionResult.failed(node.power_error)
        if node.powered == on and node.machine.powered == on:
            node.power_error = ""
            return ports.ProvisionResult.complete()
        return self._act(lambda: self._conductor.set_power(node, on), self._quick())

    def has_capacity(self) -> bool:
        inventory = self._inventory
        if inventory is None or inventory.virtual_media:
            return True
        # Upstream lists every node (uuid, name, provision_state, boot_interface).
        self._api()
        self._meter.charge(self._settings.list_cost_per_node_s * len(self._conductor))
        node = self._lookup()
        return self._conductor.has_pxe_capacity(node.name if node else self._name, self._limit)

    def has_power_failure(self) -> bool:
        return False

    def get_health(self) -> str:
        return "OK"
