"""The engine's firmware work against the Redfish emulator over real HTTP, through the
production drivers (sushy): BIOS settings and the attribute registry read into what
HostFirmwareSettings and FirmwareSchema show, the firmware inventory, and a servicing job (BIOS
settings staged and applied by a reboot, then a firmware update fetched by the BMC from a
loopback image server and flashed in modelled time). One manual clock drives the host model and
the engine, so the flash time and the engine's waits are virtual."""

from collections.abc import Iterator

import pytest

from metalcubed.controllers import agent_client, lookup, manager
from metalcubed.core import clock as clocks
from metalcubed.core import ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import firmwareschema, meta
from metalcubed.core.api import hostfirmwarecomponents as hfc
from metalcubed.core.api import hostfirmwaresettings as hfs
from metalcubed.core.provisioning import engine
from metalcubed.simulators import firmwareimage, hostmodel, imageserver
from metalcubed.simulators.redfish import emulator as redfish_emulator
from tests.hardware.conftest import CREDS

pytestmark = pytest.mark.hardware
FLASH_S = 300.0
KEY = meta.ObjectKey("lab", "fw-0")


@pytest.fixture
def clock() -> clocks.ManualClock:
    return clocks.ManualClock()


@pytest.fixture
def model(clock: clocks.ManualClock) -> hostmodel.HostModel:
    return hostmodel.HostModel(
        name="fw-0", inventory=hostmodel.make_inventory(0), power=hostmodel.Power.ON,
        timing=hostmodel.PowerTiming(firmware_update_s=FLASH_S),
        clock=lambda: clock.now().timestamp())


@pytest.fixture
def emulator(model: hostmodel.HostModel) -> Iterator[redfish_emulator.RedfishEmulator]:
    with redfish_emulator.RedfishEmulator([model], hang_s=1.0) as running:
        yield running


@pytest.fixture
def images() -> Iterator[imageserver.ImageServer]:
    server = imageserver.ImageServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _engine(clock: clocks.ManualClock) -> engine.Engine:
    return engine.Engine(drivers=manager.production_drivers(),
                         agents=agent_client.HttpAgent(timeout_s=5),
                         nodes_port=lookup.LockedNodeTable(clock=clock), clock=clock)


def _data(address: str) -> ports.HostData:
    return ports.HostData(key=KEY, bmc_address=address, bmc_credentials=CREDS,
                          disable_certificate_verification=False,
                          boot_mac_address="52:54:00:00:00:01", provisioner_id="")


def _registered(eng: engine.Engine, address: str) -> list[tuple[str, str]]:
    events: list[tuple[str, str]] = []
    result, _ = eng.new_provisioner(_data(address), lambda r, m: events.append((r, m))).register(
        ports.ManagementAccessData(
            boot_mode=bmh.BootMode.UEFI,
            automated_cleaning_mode=bmh.AutomatedCleaningMode.METADATA,
            state=bmh.ProvisioningState.PROVISIONED, operational_status=bmh.OperationalStatus.OK,
            current_image=None, has_custom_deploy=False, disable_power_off=False,
            cpu_architecture="", disable_inspection=False, inspection_mode=None),
        credentials_changed=True, restart_on_failure=False)
    assert result == ports.ProvisionResult.complete(), result
    return events


def test_settings_registry_and_inventory_read_over_redfish(
    emulator: redfish_emulator.RedfishEmulator, model: hostmodel.HostModel,
    clock: clocks.ManualClock,
) -> None:
    eng = _engine(clock)
    address = emulator.bmc_address(model, "redfish")
    _registered(eng, address)
    prov = eng.new_provisioner(_data(address), lambda r, m: None)
    read = prov.get_firmware_settings(include_schema=True)
    assert read.settings["ProcVirtualization"] == "Enabled"
    assert read.settings["PxeRetryCount"] == "3"
    assert read.schema is not None
    assert read.schema["PxeRetryCount"].attribute_type == firmwareschema.AttributeType.INTEGER
    assert (read.schema["PxeRetryCount"].lower_bound,
            read.schema["PxeRetryCount"].upper_bound) == (0, 10)
    assert read.schema["SystemServiceTag"].read_only
    # What a HostFirmwareSettings spec may ask of this registry (the controller's check).
    errors = hfs.invalid_settings({"PxeRetryCount": 11, "SystemServiceTag": "x"},
                                  read.settings, read.schema)
    assert [(e.field, e.message) for e in errors] == [
        ("spec.settings[PxeRetryCount]",
         "Setting PxeRetryCount is invalid, integer 11 is above maximum value 10"),
        ("spec.settings[SystemServiceTag]", "Setting SystemServiceTag is invalid, it is ReadOnly"),
    ]
    components = {c.component: c for c in prov.get_firmware_components()}
    assert components["bios"].current_version == components["bios"].initial_version == "2.1.7"


def test_a_servicing_job_applies_settings_and_flashes_over_redfish(
    emulator: redfish_emulator.RedfishEmulator, model: hostmodel.HostModel,
    clock: clocks.ManualClock, images: imageserver.ImageServer,
) -> None:
    eng = _engine(clock)
    address = emulator.bmc_address(model, "redfish")
    _registered(eng, address)
    url = images.add(firmwareimage.file_name("bios", "2.4.0"),
                     firmwareimage.make("bios", "2.4.0", padding=4096))
    data = ports.ServicingData(
        target_firmware_settings={"ProcVirtualization": "Disabled", "PxeRetryCount": "6"},
        actual_firmware_settings={"ProcVirtualization": "Enabled", "PxeRetryCount": "3"},
        target_firmware_components=(hfc.FirmwareUpdate(component="bios", url=url),),
        has_firmware_spec=True)
    events: list[tuple[str, str]] = []
    passes = 0
    result, started = eng.new_provisioner(_data(address), lambda r, m: events.append((r, m))) \
        .service(data, unprepared=True, restart_on_failure=False)
    assert started
    while result.dirty:
        passes += 1
        assert passes < 60, "servicing did not finish"
        clock.advance(result.requeue_after_s)
        result, started = eng.new_provisioner(_data(address), lambda r, m: events.append((r, m))) \
            .service(data, unprepared=False, restart_on_failure=False)
        assert not started
    assert result == ports.ProvisionResult.complete(), result
    assert model.bios()["ProcVirtualization"] == "Disabled"
    assert model.bios()["PxeRetryCount"] == 6
    assert model.firmware()["bios"] == "2.4.0"
    assert images.hits[url.rsplit("/", 1)[-1]] == 1, "the BMC fetched the image once"
    assert ("FirmwareUpdated", f"Firmware component bios updated from {url}") in events
    after = {c.component: c for c in eng.new_provisioner(_data(address), lambda r, m: None)
             .get_firmware_components()}
    assert (after["bios"].initial_version, after["bios"].current_version,
            after["bios"].last_version_flashed) == ("2.1.7", "2.4.0", "2.4.0")


def test_an_update_that_404s_fails_the_job_with_the_bmcs_message(
    emulator: redfish_emulator.RedfishEmulator, model: hostmodel.HostModel,
    clock: clocks.ManualClock, images: imageserver.ImageServer,
) -> None:
    eng = _engine(clock)
    address = emulator.bmc_address(model, "redfish")
    _registered(eng, address)
    missing = images.url("bios-9.9.9.fwimg")
    data = ports.ServicingData(
        target_firmware_components=(hfc.FirmwareUpdate(component="bios", url=missing),),
        has_firmware_spec=True)
    result, _ = eng.new_provisioner(_data(address), lambda r, m: None).service(
        data, unprepared=True, restart_on_failure=False)
    for _ in range(10):
        if not result.dirty:
            break
        clock.advance(result.requeue_after_s)
        result, _ = eng.new_provisioner(_data(address), lambda r, m: None).service(
            data, unprepared=False, restart_on_failure=False)
    assert f"firmware update of bios from {missing} failed" in result.error_message
    assert "404" in result.error_message
    assert model.firmware()["bios"] == "2.1.7"
