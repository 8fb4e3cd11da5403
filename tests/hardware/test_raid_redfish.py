"""Hardware RAID while preparing: the engine builds spec.raid's volumes on the Redfish emulator's
storage controller (Storage/Volumes over real HTTP, through the production sushy driver)."""

import dataclasses
from collections.abc import Iterator

import pytest

from metalcubed.controllers import agent_client, lookup, manager, memory
from metalcubed.core import ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta
from metalcubed.core.provisioning import engine
from metalcubed.simulators import hostmodel
from metalcubed.simulators.ipmi import emulator as ipmi_emulator
from metalcubed.simulators.redfish import emulator as redfish_emulator
from tests.hardware.conftest import CREDS

pytestmark = pytest.mark.hardware

GB = 10**9


@pytest.fixture
def model() -> hostmodel.HostModel:
    disks = tuple(
        hostmodel.Disk(id=f"Disk.{i}", name=f"/dev/sd{'abcde'[i]}", size_bytes=960 * GB,
                       serial=f"S{i}")
        for i in range(5))
    inventory = dataclasses.replace(hostmodel.make_inventory(0), disks=disks)
    return hostmodel.HostModel(name="raid-0", inventory=inventory)


@pytest.fixture
def emulator(model: hostmodel.HostModel) -> Iterator[redfish_emulator.RedfishEmulator]:
    with redfish_emulator.RedfishEmulator([model]) as running:
        yield running


def _engine() -> engine.Engine:
    clock = memory.WallClock()
    return engine.Engine(drivers=manager.production_drivers(),
                         agents=agent_client.HttpAgent(timeout_s=5),
                         nodes_port=lookup.LockedNodeTable(clock=clock), clock=clock)


def _host(address: str) -> ports.HostData:
    return ports.HostData(key=meta.ObjectKey("lab", "raid-0"), bmc_address=address,
                          bmc_credentials=CREDS, disable_certificate_verification=False,
                          boot_mac_address="52:54:00:00:00:01", provisioner_id="")


def _prepare(eng: engine.Engine, address: str, raid: dict[str, object],
             actual: dict[str, object] | None = None) -> ports.ProvisionResult:
    data = ports.PrepareData(
        target_raid_config=bmh.RAIDConfig.model_validate(raid),
        actual_raid_config=bmh.RAIDConfig.model_validate(actual) if actual else None,
        root_device_hints=None)
    events: list[str] = []
    for _ in range(12):
        prov = eng.new_provisioner(_host(address), lambda reason, message: events.append(reason))
        result, started = prov.prepare(data, unprepared=True, restart_on_failure=False)
        assert started
        if not result.dirty:
            return result
    raise AssertionError(f"prepare did not finish: {events}")


def _volumes(emulator: redfish_emulator.RedfishEmulator,
             model: hostmodel.HostModel) -> list[tuple[str, str, tuple[str, ...]]]:
    return sorted((v.name, v.level, v.drives) for v in emulator.storage_of(model).volumes())


def test_spec_raid_volumes_are_built_then_replaced_then_cleared(
    emulator: redfish_emulator.RedfishEmulator, model: hostmodel.HostModel
) -> None:
    eng = _engine()
    address = emulator.bmc_address(model, "redfish")
    first = {"hardwareRAIDVolumes": [{"name": "os", "level": "1"},
                                     {"name": "data", "level": "5", "sizeGibibytes": 100}]}
    assert _prepare(eng, address, first).error_message == ""
    assert _volumes(emulator, model) == [
        ("data", "RAID5", ("Disk.2", "Disk.3", "Disk.4")), ("os", "RAID1", ("Disk.0", "Disk.1"))]
    (data,) = [v for v in emulator.storage_of(model).volumes() if v.name == "data"]
    assert data.size_bytes == 100 * 1024**3

    again = _prepare(eng, address, first, actual=first)  # a second pass changes nothing
    assert again.error_message == "" and len(emulator.storage_of(model).volumes()) == 2

    second = {"hardwareRAIDVolumes": [{"name": "os", "level": "1"},
                                      {"name": "scratch", "level": "0",
                                       "physicalDisks": ["Disk.4"], "controller": "1"}]}
    assert _prepare(eng, address, second, actual=first).error_message == ""
    assert _volumes(emulator, model) == [
        ("os", "RAID1", ("Disk.0", "Disk.1")), ("scratch", "RAID0", ("Disk.4",))]

    assert _prepare(eng, address, {"hardwareRAIDVolumes": []}, actual=second).error_message == ""
    assert _volumes(emulator, model) == []


def test_a_level_the_controller_lacks_is_a_field_named_failure(
    emulator: redfish_emulator.RedfishEmulator, model: hostmodel.HostModel
) -> None:
    result = _prepare(_engine(), emulator.bmc_address(model, "redfish"),
                      {"hardwareRAIDVolumes": [{"level": "6"}]})
    assert result.error_message.startswith(
        "spec.raid.hardwareRAIDVolumes[0].level: RAID level 6 is not supported by controller 1 "
        "(it supports ")
    assert _volumes(emulator, model) == []


def test_hardware_raid_on_ipmi_is_refused_as_upstream() -> None:
    with ipmi_emulator.IpmiEmulator(hostmodel.make_hosts(1)) as ipmi:
        result = _prepare(_engine(), ipmi.bmc_address(ipmi.hosts[0]),
                          {"hardwareRAIDVolumes": [{"level": "1"}]})
    assert result.error_message == (
        "spec.raid.hardwareRAIDVolumes: RAID settings are defined, but the node's driver no-raid "
        "does not support RAID")
