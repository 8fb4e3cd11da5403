"""Upstream's fixture provisioner (bmo.md "Fixture provisioner details"), for tests and models.

Every operation takes two calls: the first starts it and reports `dirty` with the fixture
delay, the next completes it. State lives in a `FixtureBackend` keyed by host, the way Ironic
keeps its node table, so a provisioner rebuilt for each reconcile (as upstream does) sees what
earlier calls did. Unlike upstream's single shared struct, state is per host: upstream's manager
shares one fixture between all hosts, which makes one host's power state leak into another's.

Failures are injected per method (and optionally per host) with `FixtureBackend.fail`: the next
`times` calls report `error_message` (a permanent failure the reconciler records) or raise a
`TransientError` (when `transient=True`).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from metalcubed.core import outcome, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import firmwareschema, meta
from metalcubed.core.api import hardwaredata as hwd
from metalcubed.core.api import hostfirmwarecomponents as hfc


@dataclass(frozen=True, slots=True, kw_only=True)
class FixtureDelays:
    """Requeue delays the fixture reports while an operation is in progress (upstream's)."""

    register_s: float = 5.0
    inspect_s: float = 2.0
    adopt_s: float = 3.0
    provision_s: float = 10.0
    deprovision_s: float = 10.0
    power_s: float = 3.0
    delete_s: float = 3.0


@dataclass(slots=True)
class _Failure:
    message: str
    times: int
    transient: bool


@dataclass(slots=True)
class FixtureNode:
    """What the fixture backend remembers about one host."""

    provisioner_id: str = ""
    registered: bool = False
    inspection_started: bool = False
    adopted: bool = False
    adopt_started: bool = False
    image_url: str = ""
    custom_deploy: str = ""
    provision_started: bool = False
    deprovision_started: bool = False
    powered_on: bool = False
    power_target: bool | None = None
    deleted: bool = False
    delete_started: bool = False
    detach_started: bool = False
    reboot_called: bool = False
    disable_power_off: bool = False
    data_image_url: str = ""
    """What the virtual CD holds ("" when empty)."""
    firmware_settings: dict[str, str] = field(default_factory=dict)
    """BIOS settings get_firmware_settings reports (empty, as upstream's fixture state)."""
    firmware_schema: dict[str, firmwareschema.SettingSchema] = field(default_factory=dict)
    firmware_components: tuple[hfc.FirmwareComponentStatus, ...] = ()
    subscriptions: dict[str, tuple[str, str, dict[str, str]]] = field(default_factory=dict)
    """BMC event subscriptions by id: (destination, context, http headers)."""
    calls: dict[str, int] = field(default_factory=dict)


def default_details() -> hwd.HardwareDetails:
    """The fixed inventory upstream's fixture returns (128 GiB, two NICs, two disks)."""
    return hwd.HardwareDetails.model_validate(
        {
            "systemVendor": {
                "manufacturer": "metalcubed",
                "productName": "fixture",
                "serialNumber": "fixture-serial",
            },
            "firmware": {"bios": {"date": "12/31/2025", "vendor": "fixture", "version": "1.0"}},
            "ramMebibytes": 128 * 1024,
            "nics": [
                {
                    "name": "nic-1",
                    "model": "virt-io",
                    "mac": "ab:cd:12:34:56:78",
                    "ip": "192.168.100.1",
                    "speedGbps": 1,
                    "pxe": True,
                },
                {"name": "nic-2", "model": "e1000", "mac": "00:11:22:33:44:55", "speedGbps": 1},
            ],
            "storage": [
                {"name": "/dev/sda", "rotational": False, "sizeBytes": 1024**4, "type": "SSD"},
                {
                    "name": "/dev/sdb",
                    "rotational": True,
                    "sizeBytes": 93 * 1024**4,
                    "type": "HDD",
                    "model": "Dell CFJ61",
                },
            ],
            "cpu": {
                "arch": "x86_64",
                "model": "FancyPants CPU",
                "clockMegahertz": 3000.0,
                "flags": ["fpu", "hypervisor", "sse", "vmx"],
                "count": 1,
            },
            "hostname": "fixture-host",
        }
    )


class FixtureBackend:
    """The shared state of all fixture provisioners (one per runtime), and its factory."""

    def __init__(self, *, delays: FixtureDelays | None = None) -> None:
        self.delays = delays or FixtureDelays()
        self.nodes: dict[meta.ObjectKey, FixtureNode] = {}
        self._failures: dict[tuple[str, meta.ObjectKey | None], _Failure] = {}
        self.details: Callable[[meta.ObjectKey], hwd.HardwareDetails] = lambda _k: _DETAILS
        self.capacity = True
        """What has_capacity answers (upstream's fixture always has capacity)."""

    # --- ProvisionerFactory ------------------------------------------------------------------

    def new_provisioner(
        self, host: ports.HostData, publish: Callable[[str, str], None]
    ) -> "FixtureProvisioner":
        return FixtureProvisioner(self, host, publish)

    # --- fault injection -----------------------------------------------------------------------

    def fail(
        self,
        method: str,
        *,
        message: str = "injected failure",
        times: int = 1,
        key: meta.ObjectKey | None = None,
        transient: bool = False,
    ) -> None:
        """Make the next `times` calls of `method` (for `key`, or any host) fail."""
        self._failures[(method, key)] = _Failure(message, times, transient)

    def clear_failures(self) -> None:
        self._failures.clear()

    def take_failure(self, method: str, key: meta.ObjectKey) -> _Failure | None:
        if not self._failures:
            return None
        for probe in ((method, key), (method, None)):
            failure = self._failures.get(probe)
            if failure is not None and failure.times > 0:
                failure.times -= 1
                return failure
        return None

    def node(self, key: meta.ObjectKey) -> FixtureNode:
        node = self.nodes.get(key)
        if node is None:
            node = self.nodes[key] = FixtureNode()
        return node


_DETAILS = default_details()


class FixtureProvisioner:
    """One host's view of the fixture backend (implements ports.Provisioner)."""

    def __init__(
        self, backend: FixtureBackend, host: ports.HostData, publish: Callable[[str, str], None]
    ) -> None:
        self._backend = backend
        self._host = host
        self._publish = publish
        self._node = backend.node(host.key)
        self._delays = backend.delays

    def _call(self, method: str) -> ports.ProvisionResult | None:
        node = self._node
        node.calls[method] = node.calls.get(method, 0) + 1
        failure = self._backend.take_failure(method, self._host.key)
        if failure is None:
            return None
        if failure.transient:
            raise outcome.TransientError(f"{method}: {failure.message}")
        return ports.ProvisionResult.failed(failure.message)

    def register(
        self,
        data: ports.ManagementAccessData,
        *,
        credentials_changed: bool,
        restart_on_failure: bool,
    ) -> tuple[ports.ProvisionResult, str]:
        failed = self._call("register")
        if failed is not None:
            return failed, self._host.provisioner_id
        node = self._node
        node.deleted = False
        node.disable_power_off = data.disable_power_off
        if not self._host.provisioner_id and not node.registered:
            node.registered = True
            node.provisioner_id = f"fixture-{self._host.key.namespace}-{self._host.key.name}"
            self._publish("Registered", "Registered new host")
            return ports.ProvisionResult.continuing(self._delays.register_s), node.provisioner_id
        node.registered = True
        return ports.ProvisionResult.complete(), node.provisioner_id or self._host.provisioner_id

    def inspect_hardware(
        self,
        data: ports.InspectData,
        *,
        restart_on_failure: bool,
        refresh: bool,
        force_reboot: bool,
    ) -> ports.InspectOutcome:
        failed = self._call("inspect_hardware")
        if failed is not None:
            self._node.inspection_started = False
            return ports.InspectOutcome(result=failed, started=False, details=None)
        node = self._node
        if not node.inspection_started:
            node.inspection_started = True
            return ports.InspectOutcome(
                result=ports.ProvisionResult.continuing(self._delays.inspect_s),
                started=True,
                details=None,
            )
        node.inspection_started = False
        return ports.InspectOutcome(
            result=ports.ProvisionResult.complete(),
            started=False,
            details=self._backend.details(self._host.key),
        )

    def update_hardware_state(self) -> bool | None:
        return self._node.powered_on

    def adopt(
        self, state: bmh.ProvisioningState, *, restart_on_failure: bool
    ) -> ports.ProvisionResult:
        failed = self._call("adopt")
        if failed is not None:
            return failed
        node = self._node
        if node.adopted:
            return ports.ProvisionResult.complete()
        if not node.adopt_started:
            node.adopt_started = True
            return ports.ProvisionResult.continuing(self._delays.adopt_s)
        node.adopted = True
        return ports.ProvisionResult.complete()

    def prepare(
        self, data: ports.PrepareData, *, unprepared: bool, restart_on_failure: bool
    ) -> tuple[ports.ProvisionResult, bool]:
        failed = self._call("prepare")
        if failed is not None:
            return failed, False
        return ports.ProvisionResult.complete(), unprepared

    def provision(self, data: ports.ProvisionData, *, force_reboot: bool) -> ports.ProvisionResult:
        failed = self._call("provision")
        node = self._node
        if failed is not None:
            node.provision_started = False
            return failed
        url = data.image.url if data.image else ""
        method = data.custom_deploy.method if data.custom_deploy else ""
        if node.image_url == url and node.custom_deploy == method and not node.provision_started:
            return ports.ProvisionResult.complete()
        if not node.provision_started:
            node.provision_started = True
            node.deprovision_started = False
            return ports.ProvisionResult.continuing(self._delays.provision_s)
        node.provision_started = False
        node.image_url = url
        node.custom_deploy = method
        node.adopted = True
        node.powered_on = True
        return ports.ProvisionResult.complete()

    def deprovision(
        self, *, restart_on_failure: bool, automated_cleaning_mode: bmh.AutomatedCleaningMode
    ) -> ports.ProvisionResult:
        failed = self._call("deprovision")
        node = self._node
        if failed is not None:
            node.deprovision_started = False
            return failed
        if not node.image_url and not node.custom_deploy and not node.deprovision_started:
            node.provision_started = False
            return ports.ProvisionResult.complete()
        if not node.deprovision_started:
            node.deprovision_started = True
            return ports.ProvisionResult.continuing(self._delays.deprovision_s)
        node.deprovision_started = False
        node.provision_started = False
        node.image_url = ""
        node.custom_deploy = ""
        return ports.ProvisionResult.complete()

    def delete(self) -> ports.ProvisionResult:
        failed = self._call("delete")
        if failed is not None:
            return failed
        return self._remove()

    def detach(self, *, force: bool) -> ports.ProvisionResult:
        failed = self._call("detach")
        if failed is not None:
            return failed
        return self._remove()

    def _remove(self) -> ports.ProvisionResult:
        node = self._node
        if node.deleted:
            return ports.ProvisionResult.complete()
        if not node.delete_started:
            node.delete_started = True
            return ports.ProvisionResult.continuing(self._delays.delete_s)
        node.delete_started = False
        node.deleted = True
        node.registered = False
        node.adopted = False
        node.adopt_started = False
        return ports.ProvisionResult.complete()

    def power_on(self, *, force: bool) -> ports.ProvisionResult:
        return self._power("power_on", target=True)

    def power_off(self, mode: ports.RebootMode, *, force: bool) -> ports.ProvisionResult:
        return self._power("power_off", target=False)

    def _power(self, method: str, *, target: bool) -> ports.ProvisionResult:
        failed = self._call(method)
        node = self._node
        if failed is not None:
            node.power_target = None
            return failed
        if node.powered_on == target:
            node.power_target = None
            return ports.ProvisionResult.complete()
        if node.power_target != target:
            node.power_target = target
            return ports.ProvisionResult.continuing(self._delays.power_s)
        if not target and node.disable_power_off:
            node.reboot_called = True
        else:
            node.powered_on = target
        node.power_target = None
        return ports.ProvisionResult.complete()

    def has_capacity(self) -> bool:
        return self._backend.capacity

    def has_power_failure(self) -> bool:
        return False

    def get_health(self) -> str:
        return "OK"

    # --- firmware (upstream's fixture: whatever the backend holds; servicing takes two calls) --

    def get_firmware_settings(self, *, include_schema: bool) -> ports.FirmwareSettings:
        self._raise_on_failure("get_firmware_settings")
        node = self._node
        return ports.FirmwareSettings(settings=dict(node.firmware_settings),
                                      schema=dict(node.firmware_schema) if include_schema
                                      else None)

    def get_firmware_components(self) -> tuple[hfc.FirmwareComponentStatus, ...]:
        self._raise_on_failure("get_firmware_components")
        return self._node.firmware_components

    def service(
        self, data: ports.ServicingData, *, unprepared: bool, restart_on_failure: bool
    ) -> tuple[ports.ProvisionResult, bool]:
        failed = self._call("service")
        if failed is not None:
            return failed, False
        if not unprepared:
            return ports.ProvisionResult.complete(), False
        # The target settings take effect (upstream's fixture only reports the two calls).
        self._node.firmware_settings.update(data.target_firmware_settings)
        return ports.ProvisionResult.continuing(self._backend.delays.power_s), True

    # --- DataImage and BMC event subscriptions -------------------------------------------------

    def _raise_on_failure(self, method: str) -> None:
        failed = self._call(method)
        if failed is not None:
            raise outcome.TransientError(f"{method}: {failed.error_message}")

    def get_data_image_status(self) -> bool:
        self._raise_on_failure("get_data_image_status")
        return bool(self._node.data_image_url)

    def attach_data_image(self, url: str) -> None:
        self._raise_on_failure("attach_data_image")
        self._node.data_image_url = url

    def detach_data_image(self) -> None:
        self._raise_on_failure("detach_data_image")
        self._node.data_image_url = ""

    def add_bmc_event_subscription(
        self, *, destination: str, context: str, http_headers: Mapping[str, str]
    ) -> tuple[ports.ProvisionResult, str]:
        failed = self._call("add_bmc_event_subscription")
        if failed is not None:
            return failed, ""
        subscription_id = f"{self._host.key.name}-{len(self._node.subscriptions) + 1}"
        self._node.subscriptions[subscription_id] = (destination, context, dict(http_headers))
        return ports.ProvisionResult.complete(), subscription_id

    def remove_bmc_event_subscription(self, subscription_id: str) -> ports.ProvisionResult:
        failed = self._call("remove_bmc_event_subscription")
        if failed is not None:
            return failed
        self._node.subscriptions.pop(subscription_id, None)
        return ports.ProvisionResult.complete()
