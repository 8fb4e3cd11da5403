"""Software RAID while preparing: the engine boots the ramdisk and has the deploy agent run the
software RAID clean steps (delete_configuration, erase_devices_metadata, create_configuration
with the node's target RAID config), over the agent's real HTTP API on 127.0.0.1."""

import dataclasses

import pytest

from metalcubed.core import ports
from metalcubed.core.api import baremetalhost as bmh
from tests.hardware.test_agent_http import Lab, add_host, lab, until_done  # noqa: F401

pytestmark = [pytest.mark.hardware]


def _prepare_data(raid: dict[str, object], actual: dict[str, object] | None = None
                  ) -> ports.PrepareData:
    return ports.PrepareData(
        target_raid_config=bmh.RAIDConfig.model_validate(raid),
        actual_raid_config=bmh.RAIDConfig.model_validate(actual) if actual else None,
        root_device_hints=None)


RAID1 = {"softwareRAIDVolumes": [{"level": "1", "rootVolume": True, "physicalDisks": [
    {"deviceName": "/dev/sda"}, {"deviceName": "/dev/nvme0n1"}]}]}


def test_the_agent_builds_the_software_raid_of_spec_raid(lab: Lab) -> None:  # noqa: F811
    model, prov = add_host(lab, 41)
    data = _prepare_data(RAID1)
    result = until_done(lambda: prov.prepare(data, unprepared=True,
                                             restart_on_failure=False)[0])
    assert result.error_message == "" and not result.dirty
    disk = lab.agents.disk(model)
    assert disk.software_raid == (("1", ("/dev/sda", "/dev/nvme0n1")),)
    assert disk.wipes == 1  # erase_devices_metadata ran between delete and create
    # Applied: the host controller now says so, and a further pass changes nothing.
    again = prov.prepare(dataclasses.replace(data, actual_raid_config=data.target_raid_config),
                         unprepared=False, restart_on_failure=False)[0]
    assert again == ports.ProvisionResult.complete() and disk.wipes == 1

    removed = until_done(lambda: prov.prepare(
        _prepare_data({"softwareRAIDVolumes": []}, actual=RAID1), unprepared=True,
        restart_on_failure=False)[0])
    assert removed.error_message == "" and lab.agents.disk(model).software_raid == ()


def test_a_raid_the_disks_cannot_hold_fails_with_the_agents_reason(lab: Lab) -> None:  # noqa: F811
    model, prov = add_host(lab, 42)
    data = _prepare_data({"softwareRAIDVolumes": [{"level": "1", "physicalDisks": [
        {"deviceName": "/dev/sda"}, {"deviceName": "/dev/sda"}]}]})
    result = until_done(lambda: prov.prepare(data, unprepared=True,
                                             restart_on_failure=False)[0])
    assert result.error_message.startswith(
        "spec.raid.softwareRAIDVolumes: software RAID step create_configuration failed: ")
    assert "needs at least 2 different disks" in result.error_message
    assert lab.agents.disk(model).software_raid == ()
