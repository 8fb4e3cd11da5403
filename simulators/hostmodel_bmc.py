"""Sim BMC capabilities: the core.bmc Protocols straight over `hostmodel.HostModel`, no sockets.

The Redfish and IPMI emulators put a protocol in front of a host model; these capabilities skip
the protocol and call the host model directly, so the provisioning engine can run in-process
(unit tests, the fleet model) against the same emulated server the lab uses. They are `Sim*`
implementations in the STYLE sense: they succeed in simulation, and they fail the way a real
BMC does when the host's `Faults` say so:

- `unreachable` (and `timeout_rate`), or a BMC restarting after a firmware update
  (`HostModel.bmc_rebooting`): `BmcUnreachable` (no waiting: in-process time is not wall
  time);
- `error_rate`: `BmcServerError` 500, drawn from the host's seeded RNG;
- `conflict_after_power_off_s`: `BmcRejected` 409 on power and boot writes in the window;
- `session_cap` (when 0): `BmcBusy` with the host's Retry-After;
- wrong credentials (when `SimBmcs.credentials` is set): `BmcAuthFailed`.

The decision is `hostmodel.Faults.draw`, the fault model the emulators and the fleet model
use too; `reply_error` turns its answer into core's DriverError, as the fleet model does.

Firmware updates are the host model's tasks (`HostModel.start_firmware_update`); the version an
image URL holds is read from its file name (`firmwareimage.version_from_url`), as nothing is
fetched in-process, and a URL naming no image fails its task as a failed download does.

Latency is not modelled here (the fleet model charges its own costs). A `SimBmcs` holds the
hosts by BMC address (as written in spec.bmc.address); `driver_for` is the engine's
`DriverFor`: whatever the scheme, the sim driver serves it (the scheme still decides virtual
media or network boot).
"""

from collections.abc import Mapping

from metalcubed.core import bmc, ports
from metalcubed.core.api import hardwaredata as hwd
from metalcubed.core.provisioning import engine
from metalcubed.simulators import firmwareimage, hostmodel, raidmodel

_POWER = {
    hostmodel.Power.ON: bmc.PowerState.ON,
    hostmodel.Power.OFF: bmc.PowerState.OFF,
    hostmodel.Power.POWERING_ON: bmc.PowerState.POWERING_ON,
    hostmodel.Power.POWERING_OFF: bmc.PowerState.POWERING_OFF,
}
_TO_HOST_DEVICE = {
    bmc.BootDevice.PXE: hostmodel.BootDevice.PXE,
    bmc.BootDevice.DISK: hostmodel.BootDevice.HDD,
    bmc.BootDevice.CDROM: hostmodel.BootDevice.CD,
    bmc.BootDevice.BIOS: hostmodel.BootDevice.BIOS_SETUP,
    bmc.BootDevice.UEFI_HTTP: hostmodel.BootDevice.UEFI_HTTP,
    bmc.BootDevice.NONE: hostmodel.BootDevice.NONE,
}
_FROM_HOST_DEVICE = {v: k for k, v in _TO_HOST_DEVICE.items()}
_MODES = {
    bmc.BootMode.UEFI: hostmodel.BootMode.UEFI,
    bmc.BootMode.LEGACY: hostmodel.BootMode.LEGACY,
}
_SLOTS = {bmc.MediaDevice.CD: hostmodel.MediaSlot.CD, bmc.MediaDevice.USB: hostmodel.MediaSlot.USB}
_BIOS_TYPES = {
    hostmodel.BiosType.ENUMERATION: bmc.BiosAttributeType.ENUMERATION,
    hostmodel.BiosType.STRING: bmc.BiosAttributeType.STRING,
    hostmodel.BiosType.INTEGER: bmc.BiosAttributeType.INTEGER,
    hostmodel.BiosType.BOOLEAN: bmc.BiosAttributeType.BOOLEAN,
}


class SimBmcs:
    """The emulated hosts by BMC address; the shared state of every Sim capability."""

    def __init__(self, hosts: Mapping[str, hostmodel.HostModel] | None = None, *,
                 credentials: ports.Credentials | None = None) -> None:
        self.hosts: dict[str, hostmodel.HostModel] = dict(hosts or {})
        self.credentials = credentials
        """What every BMC accepts; None accepts anything."""
        self.requests = 0
        """BMC requests served (every capability call counts one)."""
        self.subscriptions: dict[str, list[bmc.EventSubscription]] = {}

    def add(self, address: str, host: hostmodel.HostModel) -> None:
        self.hosts[address] = host

    def host(self, access: bmc.BmcAccess, operation: str, *, write: bool = False
             ) -> hostmodel.HostModel:
        """The host behind `access`, after the faults it is configured with."""
        self.requests += 1
        host = self.hosts.get(access.address.address)
        if host is None:
            raise bmc.BmcUnreachable(access.display, operation, "no BMC at this address")
        faults = host.faults
        if faults.unreachable or host.bmc_rebooting():
            raise bmc.BmcUnreachable(access.display, operation, "connection timed out")
        wanted = self.credentials
        if wanted is not None and (access.credentials.username, access.credentials.password) \
                != (wanted.username, wanted.password):
            raise bmc.BmcAuthFailed(access.display, operation, "invalid username or password")
        reply = faults.draw(host.rng, write=write,
                            since_power_off_s=host.since_power_off_s() if write else None)
        if reply == hostmodel.Reply.OK:
            return host
        raise reply_error(reply, access, operation, retry_after_s=faults.retry_after_s)


def reply_error(reply: hostmodel.Reply, access: bmc.BmcAccess, operation: str, *,
                retry_after_s: float | None = None) -> bmc.DriverError:
    """The core DriverError a driver raises for a BMC's failed `reply` (after its retries)."""
    where = access.display
    if reply == hostmodel.Reply.TIMEOUT:
        return bmc.BmcUnreachable(where, operation, "timed out waiting for a response")
    if reply == hostmodel.Reply.UNAVAILABLE:
        return bmc.BmcBusy(where, operation, "maximum number of sessions reached",
                           retry_after_s=retry_after_s)
    if reply == hostmodel.Reply.CONFLICT:
        return bmc.BmcRejected(where, operation, "the system is settling after a power off",
                               status=409)
    return bmc.BmcServerError(where, operation, "Internal Server Error", status=500)


class _Sim:
    name = "sim"

    def __init__(self, bmcs: SimBmcs) -> None:
        self._bmcs = bmcs

    def validate(self, access: bmc.BmcAccess) -> None:
        return None

    def _host(self, access: bmc.BmcAccess, operation: str, *, write: bool = False
              ) -> hostmodel.HostModel:
        return self._bmcs.host(access, operation, write=write)


class SimPower(_Sim):
    def power_state(self, access: bmc.BmcAccess) -> bmc.PowerState:
        return _POWER[self._host(access, "get power state").power]

    def start_power_on(self, access: bmc.BmcAccess) -> None:
        self._host(access, "power on", write=True).power_on()

    def start_power_off(self, access: bmc.BmcAccess, *, mode: ports.RebootMode) -> None:
        self._host(access, "power off", write=True).power_off(hard=mode == ports.RebootMode.HARD)

    def start_reboot(self, access: bmc.BmcAccess, *, mode: ports.RebootMode) -> None:
        self._host(access, "reboot", write=True).reboot(hard=mode == ports.RebootMode.HARD)


class SimManagement(_Sim):
    def boot_setting(self, access: bmc.BmcAccess) -> bmc.BootSetting:
        host = self._host(access, "get boot device")
        device, persistent = host.boot_override()
        mode = bmc.BootMode.UEFI if host.boot_mode is hostmodel.BootMode.UEFI \
            else bmc.BootMode.LEGACY
        return bmc.BootSetting(
            device=_FROM_HOST_DEVICE.get(device, bmc.BootDevice.NONE),
            persistence=bmc.Persistence.PERSISTENT if persistent else bmc.Persistence.ONCE,
            mode=mode,
        )

    def set_boot_device(self, access: bmc.BmcAccess, device: bmc.BootDevice, *,
                        persistence: bmc.Persistence) -> None:
        host = self._host(access, "set boot device", write=True)
        host.set_boot_device(_TO_HOST_DEVICE[device],
                             persistent=persistence == bmc.Persistence.PERSISTENT)

    def set_boot_mode(self, access: bmc.BmcAccess, mode: bmc.BootMode) -> None:
        self._host(access, "set boot mode", write=True).set_boot_mode(_MODES[mode])


class SimBoot(_Sim):
    def media_state(self, access: bmc.BmcAccess, *, device: bmc.MediaDevice) -> bmc.MediaState:
        media = self._host(access, "get virtual media").media(_SLOTS[device])
        return bmc.MediaState(device=device, inserted=media.inserted, image_url=media.image_url)

    def insert_media(self, access: bmc.BmcAccess, image_url: str, *,
                     device: bmc.MediaDevice) -> None:
        self._host(access, "insert virtual media").insert_media(_SLOTS[device], image_url)

    def eject_media(self, access: bmc.BmcAccess, *, device: bmc.MediaDevice) -> None:
        self._host(access, "eject virtual media").eject_media(_SLOTS[device])


class SimInspect(_Sim):
    def inspect(self, access: bmc.BmcAccess) -> hwd.HardwareDetails:
        return out_of_band_details(self._host(access, "inspect"))


def out_of_band_details(host: hostmodel.HostModel) -> hwd.HardwareDetails:
    """What a Redfish BMC reports about `host` without booting it."""
    return inventory_details(host.inventory, bios_version=host.firmware().get("bios", ""))


def inventory_details(
    inv: hostmodel.Inventory, *, bios_version: str = "", hostname: str = ""
) -> hwd.HardwareDetails:
    """A server's `hostmodel.Inventory` as inspection reports it: the one rendering the Sim
    BMCs, the emulators' hosts and the fleet model's machines share."""
    cpu = inv.processors[0] if inv.processors else None
    return hwd.HardwareDetails(
        system_vendor=hwd.HardwareSystemVendor(
            manufacturer=inv.manufacturer, product_name=inv.model, serial_number=inv.serial
        ),
        firmware=hwd.Firmware(bios=hwd.BIOS(
            vendor=inv.bios_vendor, version=bios_version, date=inv.bios_date
        )),
        ram_mebibytes=inv.ram_mib,
        nics=tuple(
            hwd.NIC(name=nic.id, mac=nic.mac, model=nic.model, speed_gbps=nic.speed_gbps,
                    pxe=nic.pxe)
            for nic in inv.nics
        ),
        storage=tuple(
            hwd.Storage(name=d.name, rotational=d.rotational, type=hwd.DiskType(d.type.value),
                        size_bytes=d.size_bytes, vendor=d.vendor, model=d.model,
                        serial_number=d.serial)
            for d in inv.disks
        ),
        cpu=hwd.CPU(
            arch=cpu.arch if cpu else "",
            model=cpu.model if cpu else "",
            clock_megahertz=float(cpu.max_speed_mhz) if cpu else 0.0,
            count=sum(p.threads for p in inv.processors),
        ),
        hostname=hostname,
    )


class SimBios(_Sim):
    def settings(self, access: bmc.BmcAccess) -> bmc.BiosSettings:
        host = self._host(access, "get BIOS settings")
        return bmc.BiosSettings(current=host.bios(), pending=host.bios_pending())

    def registry(self, access: bmc.BmcAccess) -> Mapping[str, bmc.BiosAttributeSchema]:
        host = self._host(access, "get BIOS registry")
        return registry_schema(tuple(host.registry.values()))

    def apply_settings(self, access: bmc.BmcAccess, changes: Mapping[str, bmc.BiosValue]) -> None:
        host = self._host(access, "apply BIOS settings")
        try:
            host.stage_bios(changes)
        except hostmodel.HostModelError as err:
            raise bmc.BmcRejected(access.display, "apply BIOS settings", str(err),
                                  status=400) from err


def registry_schema(
    attributes: tuple[hostmodel.BiosAttribute, ...],
) -> dict[str, bmc.BiosAttributeSchema]:
    """The emulated server's BIOS registry as the BMC port reports it (the Sim BMCs' and the
    fleet machines' one rendering)."""
    return {
        attr.name: bmc.BiosAttributeSchema(
            name=attr.name,
            type=_BIOS_TYPES[attr.type],
            allowable_values=attr.values,
            lower_bound=attr.lower,
            upper_bound=attr.upper,
            max_length=attr.max_length,
            read_only=attr.read_only,
            reset_required=attr.reset_required,
        )
        for attr in attributes
    }


class SimFirmware(_Sim):
    def components(self, access: bmc.BmcAccess) -> tuple[bmc.FirmwareComponent, ...]:
        host = self._host(access, "get firmware inventory")
        return tuple(
            bmc.FirmwareComponent(component=name, version=version, updateable=True)
            for name, version in sorted(host.firmware().items())
        )

    def start_update(self, access: bmc.BmcAccess, component: str, image_url: str
                     ) -> bmc.UpdateTask:
        """The host model's update; the version is the one the URL's file name carries
        (`firmwareimage.version_from_url`: nothing is fetched in-process), and a URL that
        names no image for `component` fails the task as a failed download does."""
        operation = f"update {component} firmware"
        host = self._host(access, operation)
        if component not in host.firmware():
            raise bmc.BmcRejected(access.display, operation,
                                  f"no firmware component {component}", status=400)
        for task in reversed(host.firmware_tasks()):
            if task.component == component and task.image_url == image_url and \
                    task.state is hostmodel.TaskState.RUNNING:
                return update_task(task)
        try:
            version = firmwareimage.version_from_url(image_url, component=component)
        except firmwareimage.ImageError as err:
            return update_task(host.fail_firmware_update(component, image_url, str(err)))
        try:
            return update_task(host.start_firmware_update(component, image_url, version=version))
        except hostmodel.HostModelError as err:  # another image of it is being flashed
            raise bmc.BmcRejected(access.display, operation, str(err), status=409) from err

    def update_tasks(self, access: bmc.BmcAccess) -> tuple[bmc.UpdateTask, ...]:
        host = self._host(access, "get update tasks")
        return tuple(update_task(task) for task in host.firmware_tasks())


_TASK_STATES = {
    hostmodel.TaskState.RUNNING: bmc.TaskState.RUNNING,
    hostmodel.TaskState.COMPLETED: bmc.TaskState.COMPLETED,
    hostmodel.TaskState.EXCEPTION: bmc.TaskState.FAILED,
}


def update_task(task: hostmodel.FirmwareTask) -> bmc.UpdateTask:
    """A host model's firmware task as the BMC port reports it."""
    running = task.state is hostmodel.TaskState.RUNNING
    return bmc.UpdateTask(id=task.id, component=task.component, image_url=task.image_url,
                          state=_TASK_STATES[task.state], percent=None if running else 100,
                          message=task.message)


class SimEvents(_Sim):
    def subscriptions(self, access: bmc.BmcAccess) -> tuple[bmc.EventSubscription, ...]:
        self._host(access, "list event subscriptions")
        return tuple(self._bmcs.subscriptions.get(access.address.address, ()))

    def subscribe(self, access: bmc.BmcAccess, destination: str, *, context: str = "",
                  http_headers: Mapping[str, str] | None = None) -> bmc.EventSubscription:
        self._host(access, "subscribe to events")
        subs = self._bmcs.subscriptions.setdefault(access.address.address, [])
        sub = bmc.EventSubscription(id=f"sub-{len(subs) + 1}", destination=destination,
                                    context=context)
        subs.append(sub)
        return sub

    def unsubscribe(self, access: bmc.BmcAccess, subscription_id: str) -> None:
        self._host(access, "unsubscribe from events")
        subs = self._bmcs.subscriptions.get(access.address.address, [])
        subs[:] = [s for s in subs if s.id != subscription_id]


def hardware_type(bmcs: SimBmcs) -> bmc.HardwareType:
    """The `sim` hardware type: one Sim implementation per capability (RAID: the emulated
    controller of raidmodel.py, the Redfish emulator's)."""
    return bmc.HardwareType(
        name="sim",
        power=(SimPower(bmcs),),
        management=(SimManagement(bmcs),),
        boot=(SimBoot(bmcs),),
        inspect=(SimInspect(bmcs),),
        bios=(SimBios(bmcs),),
        firmware=(SimFirmware(bmcs),),
        events=(SimEvents(bmcs),),
        raid=(raidmodel.SimRaid(bmcs),),
    )


def driver_for(bmcs: SimBmcs) -> engine.DriverFor:
    """The engine's `DriverFor` over `bmcs` (the sim driver for every address)."""
    driver = hardware_type(bmcs).compose()
    return lambda access: driver
