"""spec.raid through the BareMetalHost controller and the engine, against the Redfish emulator:
the volumes are built while the host is preparing and status.provisioning.raid records them,
as upstream; a level the controller lacks leaves the host in preparing with a preparation
error naming the field."""

import base64
import dataclasses
import random
from collections.abc import Iterator

import pytest

from metalcubed.controllers import agent_client, lookup, manager, memory
from metalcubed.core import memory_store
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta
from metalcubed.core.provisioning import context, engine
from metalcubed.core.reconcilers import host as host_reconciler
from metalcubed.core.reconcilers.hostwork import HostReconcilerConfig
from metalcubed.simulators import hostmodel
from metalcubed.simulators.redfish import emulator as redfish_emulator
from tests.hardware.conftest import CREDS

pytestmark = pytest.mark.hardware

NS = "lab"
GB = 10**9


@pytest.fixture
def model() -> hostmodel.HostModel:
    disks = tuple(hostmodel.Disk(id=f"Disk.{i}", name=f"/dev/sd{'abcd'[i]}", size_bytes=960 * GB,
                                 serial=f"S{i}") for i in range(4))
    return hostmodel.HostModel(name="raid-host", inventory=dataclasses.replace(
        hostmodel.make_inventory(0), disks=disks))


@pytest.fixture
def emulator(model: hostmodel.HostModel) -> Iterator[redfish_emulator.RedfishEmulator]:
    with redfish_emulator.RedfishEmulator([model]) as running:
        yield running


class Events:
    def record(self, obj: meta.Resource, **kw: object) -> None:
        return None


def _drive(emulator: redfish_emulator.RedfishEmulator, model: hostmodel.HostModel,
           raid: dict[str, object], stop: bmh.ProvisioningState) -> bmh.BareMetalHost:
    clock = memory.WallClock()
    store = memory_store.MemoryStore(clock=clock)
    eng = engine.Engine(drivers=manager.production_drivers(),
                        agents=agent_client.HttpAgent(timeout_s=5),
                        nodes_port=lookup.LockedNodeTable(clock=clock), clock=clock,
                        config=context.EngineConfig(poll_s=0.05, short_poll_s=0.05))
    store.create(meta.Secret(metadata=meta.ObjectMeta(name="bmc", namespace=NS), data={
        "username": base64.b64encode(CREDS.username.encode()).decode(),
        "password": base64.b64encode(CREDS.password.encode()).decode()}))
    key = store.create(bmh.BareMetalHost(
        metadata=meta.ObjectMeta(name="raid-host", namespace=NS,
                                 annotations={bmh.INSPECT_ANNOTATION: bmh.INSPECT_DISABLED}),
        spec=bmh.BareMetalHostSpec.model_validate({
            "online": False, "bootMACAddress": model.inventory.nics[0].mac,
            "bmc": {"address": emulator.bmc_address(model, "redfish"), "credentialsName": "bmc"},
            "raid": raid}))).key
    reconciler = host_reconciler.BareMetalHostReconciler(
        store=store, provisioner_factory=eng, clock=clock, events=Events(),
        rng=random.Random(1), config=HostReconcilerConfig())
    host = store.get(bmh.BareMetalHost, key)
    for _ in range(60):  # passes, not time: each asks for at most a short poll
        host = store.get(bmh.BareMetalHost, key)
        if host.status.provisioning.state == stop or host.status.error_type:
            break
        reconciler.reconcile(key)
    return store.get(bmh.BareMetalHost, key)


def test_the_host_prepares_its_raid_and_status_records_it(
    emulator: redfish_emulator.RedfishEmulator, model: hostmodel.HostModel
) -> None:
    raid = {"hardwareRAIDVolumes": [{"name": "os", "level": "1"},
                                    {"name": "data", "level": "1"}]}
    host = _drive(emulator, model, raid, bmh.ProvisioningState.AVAILABLE)
    assert host.status.provisioning.state == bmh.ProvisioningState.AVAILABLE, (
        host.status.error_message)
    assert host.status.provisioning.raid == bmh.RAIDConfig.model_validate(raid)
    assert sorted((v.name, v.level) for v in emulator.storage_of(model).volumes()) == [
        ("data", "RAID1"), ("os", "RAID1")]


def test_a_level_the_controller_lacks_is_a_preparation_error_naming_the_field(
    emulator: redfish_emulator.RedfishEmulator, model: hostmodel.HostModel
) -> None:
    host = _drive(emulator, model, {"hardwareRAIDVolumes": [{"level": "6"}]},
                  bmh.ProvisioningState.AVAILABLE)
    assert host.status.provisioning.state == bmh.ProvisioningState.PREPARING
    assert host.status.error_type == bmh.ErrorType.PREPARATION
    assert host.status.operational_status == bmh.OperationalStatus.ERROR
    assert host.status.error_message.startswith(
        "spec.raid.hardwareRAIDVolumes[0].level: RAID level 6 is not supported by controller 1")
    assert emulator.storage_of(model).volumes() == ()
