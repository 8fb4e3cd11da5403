"""`Unsupported<X>`: the implementation a hardware type lists for a capability it cannot do.

Every operation raises `UnsupportedCapability` naming the capability and the hardware type, so
the engine records a clear error instead of pretending (STYLE 6: unsupported is not simulated).
`validate` passes: a host without BIOS management is a valid host. RAID has its unsupported
implementation in core (`bmc.NoRaid`), the default of every hardware type.
"""

from collections.abc import Mapping
from typing import NoReturn

from metalcubed.core import bmc
from metalcubed.core.api import hardwaredata as hwd


class _Unsupported:
    capability = ""

    def __init__(self, hardware_type: str) -> None:
        self.hardware_type = hardware_type

    @property
    def name(self) -> str:
        return f"no-{self.capability}"

    def validate(self, access: bmc.BmcAccess) -> None:
        return None

    def _fail(self, access: bmc.BmcAccess, operation: str) -> NoReturn:
        raise bmc.UnsupportedCapability(access.address.address, operation,
                                        capability=self.capability,
                                        implementation=self.hardware_type)


class UnsupportedBoot(_Unsupported):
    capability = "virtual-media"

    def media_state(self, access: bmc.BmcAccess, *, device: bmc.MediaDevice) -> bmc.MediaState:
        self._fail(access, f"get {device.value} media")

    def insert_media(self, access: bmc.BmcAccess, image_url: str, *,
                     device: bmc.MediaDevice) -> None:
        self._fail(access, f"insert {device.value} media")

    def eject_media(self, access: bmc.BmcAccess, *, device: bmc.MediaDevice) -> None:
        self._fail(access, f"eject {device.value} media")


class UnsupportedInspect(_Unsupported):
    capability = "inspect"

    def inspect(self, access: bmc.BmcAccess) -> hwd.HardwareDetails:
        self._fail(access, "inspect hardware")


class UnsupportedBios(_Unsupported):
    capability = "bios"

    def settings(self, access: bmc.BmcAccess) -> bmc.BiosSettings:
        self._fail(access, "get BIOS settings")

    def registry(self, access: bmc.BmcAccess) -> Mapping[str, bmc.BiosAttributeSchema]:
        self._fail(access, "get BIOS registry")

    def apply_settings(self, access: bmc.BmcAccess, changes: Mapping[str, bmc.BiosValue]
                       ) -> None:
        self._fail(access, "apply BIOS settings")


class UnsupportedFirmware(_Unsupported):
    capability = "firmware"

    def components(self, access: bmc.BmcAccess) -> tuple[bmc.FirmwareComponent, ...]:
        self._fail(access, "get firmware components")

    def start_update(self, access: bmc.BmcAccess, component: str, image_url: str
                     ) -> bmc.UpdateTask:
        self._fail(access, f"update {component} firmware")

    def update_tasks(self, access: bmc.BmcAccess) -> tuple[bmc.UpdateTask, ...]:
        self._fail(access, "list firmware update tasks")


class UnsupportedEvents(_Unsupported):
    capability = "events"

    def subscriptions(self, access: bmc.BmcAccess) -> tuple[bmc.EventSubscription, ...]:
        self._fail(access, "list event subscriptions")

    def subscribe(self, access: bmc.BmcAccess, destination: str, *, context: str = "",
                  http_headers: Mapping[str, str] | None = None) -> bmc.EventSubscription:
        self._fail(access, "create event subscription")

    def unsubscribe(self, access: bmc.BmcAccess, subscription_id: str) -> None:
        self._fail(access, "delete event subscription")
