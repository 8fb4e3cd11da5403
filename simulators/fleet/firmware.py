"""BIOS settings and firmware updates in the fleet model: core.bmc's Bios and Firmware over a
`Machine` behind its fleet `Bmc`.

The hardware is the emulated server's (hostmodel): the BIOS attribute registry is
`hostmodel.DEFAULT_BIOS_REGISTRY`, a staged setting applies at the next boot (machine.py), and a
firmware update is a task that flashes for the profile's `firmware_update` time and then does
the reboot that applies it: a power cycle of a host that is on (bios), or a restart of the BMC
(bmc), during which the BMC answers nothing for the profile's `bmc_reboot` time. What goes
wrong is `hostmodel.Faults.draw_update`, the fault model the emulators use: a flash that fails
(the task ends FAILED, the old version stays), a BMC that restarts partway through the flash.
An image URL the scenario does not serve ends its task FAILED with an HTTP 404, as a BMC
reports a download it could not make.

Every call is one BMC request through `link.Link._call` (latency billed, retries, faults), like the
other fleet capabilities. Only Redfish-class schemes get these; IPMI hosts list the
`Unsupported` implementations, as their real drivers do.
"""

from collections.abc import Mapping

from metalcubed.core import bmc
from metalcubed.simulators import hostmodel, hostmodel_bmc
from metalcubed.simulators.fleet import link
from metalcubed.simulators.fleet.machine import BIOS_REGISTRY

REGISTRY: Mapping[str, bmc.BiosAttributeSchema] = hostmodel_bmc.registry_schema(
    tuple(BIOS_REGISTRY.values())
)
"""What every machine's BMC publishes as its BIOS attribute registry (built once)."""

NOT_FOUND = "Error downloading firmware image {url}: HTTP 404 Not Found"


class FleetBios(link.Link):
    def settings(self, access: bmc.BmcAccess) -> bmc.BiosSettings:
        machine = self._call(access, "get_bios", "get BIOS settings")
        return bmc.BiosSettings(current=dict(machine.bios), pending=dict(machine.bios_pending))

    def registry(self, access: bmc.BmcAccess) -> Mapping[str, bmc.BiosAttributeSchema]:
        self._call(access, "get_bios_registry", "get BIOS registry")
        return REGISTRY

    def apply_settings(self, access: bmc.BmcAccess, changes: Mapping[str, bmc.BiosValue]) -> None:
        operation = "apply BIOS settings"
        machine = self._call(access, "set_bios", operation)
        for name, value in changes.items():
            attr = BIOS_REGISTRY.get(name)
            problem = f"unknown BIOS attribute {name}" if attr is None else attr.check(value)
            if problem is not None:
                raise bmc.BmcRejected(access.display, operation, problem, status=400)
        for name, value in changes.items():
            if machine.bios.get(name) != value or name in machine.bios_pending:
                machine.bios_pending[name] = value


class FleetFirmware(link.Link):
    def components(self, access: bmc.BmcAccess) -> tuple[bmc.FirmwareComponent, ...]:
        machine = self._call(access, "get_firmware", "get firmware inventory")
        return tuple(
            bmc.FirmwareComponent(component=name, version=version, updateable=True)
            for name, version in sorted(machine.firmware.items())
        )

    def update_tasks(self, access: bmc.BmcAccess) -> tuple[bmc.UpdateTask, ...]:
        self._call(access, "get_tasks", "get update tasks")
        return tuple(self._t.tasks or ())

    def start_update(self, access: bmc.BmcAccess, component: str, image_url: str
                     ) -> bmc.UpdateTask:
        operation = f"update {component} firmware"
        machine = self._call(access, "firmware_update", operation)
        if component not in machine.firmware:
            raise bmc.BmcRejected(
                access.display, operation,
                f"no firmware component {component}; known: {', '.join(sorted(machine.firmware))}",
                status=400,
            )
        target = self._t
        tasks = target.tasks
        if tasks is None:
            tasks = target.tasks = []
        for task in reversed(tasks):
            if task.component == component and task.image_url == image_url and \
                    task.state == bmc.TaskState.RUNNING:
                return task
        fleet = self._fleet
        stats = fleet.stats
        stats.firmware_updates += 1
        index = len(tasks)
        image = fleet.firmware.get(image_url)
        if image is None or not image.served or image.component != component:
            message = NOT_FOUND.format(url=image_url) if image is None or not image.served \
                else f"the image at {image_url} is for {image.component}, not {component}"
            failed = bmc.UpdateTask(id=f"task-{index + 1}", component=component,
                                    image_url=image_url, state=bmc.TaskState.FAILED,
                                    message=message)
            stats.updates_failed += 1
            tasks.append(failed)
            return failed
        task = bmc.UpdateTask(id=f"task-{index + 1}", component=component, image_url=image_url,
                              state=bmc.TaskState.RUNNING, percent=0)
        tasks.append(task)
        endpoint = target.endpoint
        rng = fleet.rng
        profile = machine.profile
        fate = endpoint.faults.draw_update(rng)
        duration = profile.firmware_update.draw(rng)
        env = fleet.env
        if fate.bmc_reboots:
            stats.bmc_reboots += 1
            endpoint.reboot(env.now + duration * fate.reboot_at, profile.bmc_reboot.draw(rng))
        done = env.timeout(duration)
        done.callbacks.append(lambda _e: self._finish(index, fate, image.version))
        return task

    def _finish(self, index: int, fate: hostmodel.UpdateFate, version: str) -> None:
        """The flash ended: record it on the task, then the reboot that applies it."""
        target = self._t
        tasks = target.tasks
        assert tasks is not None
        task = tasks[index]
        fleet = self._fleet
        if fate.fails:
            fleet.stats.updates_failed += 1
            tasks[index] = _replace(task, bmc.TaskState.FAILED, hostmodel.UPDATE_FAILED_MESSAGE)
            return
        machine = target.machine
        machine.firmware[task.component] = version
        tasks[index] = _replace(task, bmc.TaskState.COMPLETED, "")
        if task.component == "bmc":
            fleet.stats.bmc_reboots += 1
            target.endpoint.reboot(fleet.env.now, machine.profile.bmc_reboot.draw(fleet.rng))
        elif machine.powered and not self._settling():
            self._cycle()


def _replace(task: bmc.UpdateTask, state: bmc.TaskState, message: str) -> bmc.UpdateTask:
    return bmc.UpdateTask(id=task.id, component=task.component, image_url=task.image_url,
                          state=state, percent=100, message=message)
