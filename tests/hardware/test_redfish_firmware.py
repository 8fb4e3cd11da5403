"""Firmware updates end to end: the Redfish driver (sushy SimpleUpdate + TaskService) against
the emulator over real HTTP, which fetches the image from a loopback server and runs the host
model's update (modelled flash time on a manual host clock, then the reboot that applies it)."""

import json
import queue
from collections.abc import Iterator

import pytest

from metalcubed.controllers import httpserve
from metalcubed.controllers.bmc import hardware
from metalcubed.controllers.bmc.redfish import capabilities as rf
from metalcubed.controllers.bmc.redfish import client
from metalcubed.core import bmc, ports
from metalcubed.simulators import firmwareimage, hostmodel, imageserver
from metalcubed.simulators.redfish import emulator as redfish_emulator
from tests.hardware.conftest import CREDS, redfish_access

pytestmark = pytest.mark.hardware
FLASH_S = 120.0


class HostClock:
    """The host model's clock: it moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> HostClock:
    return HostClock()


@pytest.fixture
def fw_hosts(clock: HostClock) -> list[hostmodel.HostModel]:
    timing = hostmodel.PowerTiming(firmware_update_s=FLASH_S)
    return [hostmodel.HostModel(name=f"fw-{i}", inventory=hostmodel.make_inventory(i),
                                timing=timing, clock=clock, seed=i) for i in range(2)]


@pytest.fixture
def fw_redfish(fw_hosts: list[hostmodel.HostModel]
               ) -> Iterator[redfish_emulator.RedfishEmulator]:
    with redfish_emulator.RedfishEmulator(fw_hosts, hang_s=1.0) as emulator:
        yield emulator


@pytest.fixture
def images() -> Iterator[imageserver.ImageServer]:
    server = imageserver.ImageServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _image(images: imageserver.ImageServer, component: str, version: str) -> str:
    return images.add(firmwareimage.file_name(component, version),
                      firmwareimage.make(component, version, padding=64 * 1024))


def _versions(fw: rf.RedfishFirmware, access: bmc.BmcAccess) -> dict[str, str]:
    return {c.component: c.version for c in fw.components(access)}


def test_bios_update_runs_as_a_task_then_reboots_the_host_into_the_new_version(
        fw_redfish, fw_hosts, clients, clock, images) -> None:
    host = fw_hosts[0]
    access = redfish_access(fw_redfish, host)
    fw = rf.RedfishFirmware(clients)
    rf.RedfishPower(clients).start_power_on(access)
    boots = len(host.boots)
    url = _image(images, "bios", "3.0.1")

    task = fw.start_update(access, "bios", url)
    assert (task.component, task.image_url, task.state) == ("bios", url, bmc.TaskState.RUNNING)
    assert task.percent is not None and 0 <= task.percent < 100
    assert fw.start_update(access, "bios", url).id == task.id  # running: not started twice
    assert len(host.firmware_tasks()) == 1
    assert [t.id for t in fw.update_tasks(access)] == [task.id]
    assert _versions(fw, access)["bios"] == "2.1.7"  # still flashing

    clock.now += FLASH_S + 1
    (done,) = fw.update_tasks(access)
    assert (done.id, done.state, done.percent) == (task.id, bmc.TaskState.COMPLETED, 100)
    assert _versions(fw, access)["bios"] == "3.0.1"
    assert len(host.boots) == boots + 1, "the update is applied by a reboot of the host"
    assert images.hits[url.rsplit("/", 1)[-1]] == 1, "the BMC fetched the image once"


def test_url_that_404s_ends_failed_with_the_bmcs_message(fw_redfish, fw_hosts, clients,
                                                         images) -> None:
    access = redfish_access(fw_redfish, fw_hosts[0])
    fw = rf.RedfishFirmware(clients)
    missing = images.url("bios-9.9.9.fwimg")
    task = fw.start_update(access, "bios", missing)
    assert task.state is bmc.TaskState.FAILED
    assert "HTTP 404" in task.message and missing in task.message
    assert fw.update_tasks(access)[-1].state is bmc.TaskState.FAILED
    assert _versions(fw, access)["bios"] == "2.1.7"


def test_image_for_another_component_fails(fw_redfish, fw_hosts, clients, images) -> None:
    access = redfish_access(fw_redfish, fw_hosts[0])
    fw = rf.RedfishFirmware(clients)
    url = _image(images, "bmc", "7.0.0")
    task = fw.start_update(access, "bios", url)
    assert task.state is bmc.TaskState.FAILED
    assert "for bmc, not bios" in task.message


def test_a_failed_flash_from_the_fault_model_keeps_the_old_version(
        fw_redfish, fw_hosts, clients, clock, images) -> None:
    host = fw_hosts[0]
    host.faults.update_failure_rate = 1.0
    access = redfish_access(fw_redfish, host)
    fw = rf.RedfishFirmware(clients)
    task = fw.start_update(access, "bios", _image(images, "bios", "3.0.1"))
    clock.now += FLASH_S + 1
    (done,) = fw.update_tasks(access)
    assert (done.id, done.state) == (task.id, bmc.TaskState.FAILED)
    assert done.message == hostmodel.UPDATE_FAILED_MESSAGE
    assert _versions(fw, access)["bios"] == "2.1.7"


def test_bmc_update_restarts_the_bmc_which_answers_nothing_meanwhile(
        fw_redfish, fw_hosts, clock, images) -> None:
    host = fw_hosts[0]
    host.faults.bmc_reboot_s = 60.0
    clients = client.Clients(client.ClientConfig(
        connect_timeout_s=0.5, read_timeout_s=0.5, connect_retry_delay_s=0.05,
        retry=client.RetryPolicy(attempts=2, budget_s=1.5, base_delay_s=0.05,
                                 max_delay_s=0.1, max_retry_after_s=0.1)))
    access = redfish_access(fw_redfish, host)
    fw = rf.RedfishFirmware(clients)
    task = fw.start_update(access, "bmc", _image(images, "bmc", "6.0.0"))
    clock.now += FLASH_S + 1
    with pytest.raises((bmc.BmcUnreachable, bmc.BmcBusy)):
        fw.components(access)
    # The other system behind the same endpoint still answers.
    assert _versions(fw, redfish_access(fw_redfish, fw_hosts[1]))["bmc"] == "5.10.00"
    clock.now += 61
    assert _versions(fw, access)["bmc"] == "6.0.0"
    assert fw.update_tasks(access)[-1].id == task.id


def test_tasks_are_per_system_on_a_shared_endpoint(fw_redfish, fw_hosts, clients,
                                                   images) -> None:
    fw = rf.RedfishFirmware(clients)
    first = redfish_access(fw_redfish, fw_hosts[0])
    task = fw.start_update(first, "bios", _image(images, "bios", "3.0.1"))
    assert [t.id for t in fw.update_tasks(first)] == [task.id]
    assert fw.update_tasks(redfish_access(fw_redfish, fw_hosts[1])) == ()


def test_unknown_component_is_rejected_before_any_update(fw_redfish, fw_hosts, clients,
                                                         images) -> None:
    access = redfish_access(fw_redfish, fw_hosts[0])
    with pytest.raises(bmc.BmcRejected) as info:
        rf.RedfishFirmware(clients).start_update(access, "nic:NIC.9", _image(images, "bios", "1"))
    assert "no nic:NIC.9 firmware" in str(info.value)
    assert fw_hosts[0].firmware_tasks() == ()


def test_ipmi_has_no_firmware_updates_in_upstreams_words() -> None:
    access = bmc.BmcAccess.of("ipmi://192.0.2.1", ports.Credentials(username="u", password="p"))
    driver = hardware.IPMI.compose()
    with pytest.raises(bmc.UnsupportedCapability) as info:
        driver.firmware.start_update(access, "bios", "http://192.0.2.2/bios-1.fwimg")
    assert "BMC driver ipmi does not support firmware updates" in str(info.value)
    assert info.value.retryable is False


def test_credentials_never_reach_the_task(fw_redfish, fw_hosts, clients, images) -> None:
    access = redfish_access(fw_redfish, fw_hosts[0])
    task = rf.RedfishFirmware(clients).start_update(access, "bios", _image(images, "bios", "3"))
    assert CREDS.password not in repr(task)


def test_only_the_newest_tasks_are_read(fw_redfish, fw_hosts, clients, images,
                                        monkeypatch) -> None:
    monkeypatch.setattr(rf, "MAX_TASKS", 2)
    access = redfish_access(fw_redfish, fw_hosts[0])
    fw = rf.RedfishFirmware(clients)
    started = [fw.start_update(access, "bios", images.url(f"bios-{i}.fwimg")).id
               for i in range(3)]  # none served: each task fails at once
    assert [t.id for t in fw.update_tasks(access)] == started[1:]


def test_task_events_reach_subscribers_but_not_for_older_tasks(
        fw_redfish, fw_hosts, clients, clock, images) -> None:
    got: queue.Queue[dict[str, object]] = queue.Queue()

    def receive(request: httpserve.Request) -> httpserve.Response:
        got.put(json.loads(request.body))
        return httpserve.Response(204)

    receiver = httpserve.HttpServer(receive, name="fw-events")
    receiver.start()
    try:
        access = redfish_access(fw_redfish, fw_hosts[0])
        fw = rf.RedfishFirmware(clients)
        fw.start_update(access, "bmc", images.url("bmc-0.fwimg"))  # fails before anyone listens
        rf.RedfishEvents(clients).subscribe(access, receiver.url, context="fw")
        task = fw.start_update(access, "bios", _image(images, "bios", "3.0.1"))
        clock.now += FLASH_S + 1
        event = got.get(timeout=10)["Events"][0]  # type: ignore[index]
        assert event["MessageId"] == "TaskEvent.1.0.TaskCompletedOK"
        assert event["OriginOfCondition"] == {
            "@odata.id": f"/redfish/v1/TaskService/Tasks/{task.id}"}
        assert got.empty(), "the task that ended before the subscription raised an event"
    finally:
        receiver.stop()


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"Targets": ["{system}"]}, 400, "ImageURI must be an http(s) URL"),
    ({"ImageURI": "ftp://x/bios-1.fwimg", "Targets": ["{system}"]}, 400, "ImageURI"),
    ({"ImageURI": "{image}"}, 400, "Targets must list exactly one"),
    ({"ImageURI": "{image}", "Targets": ["/redfish/v1/Chassis/1"]}, 400, "is not a firmware"),
    ({"ImageURI": "{image}", "Targets": ["{system}"], "TransferProtocol": "TFTP"}, 400,
     "TransferProtocol TFTP"),
    ({"ImageURI": "{image}", "Targets": ["{system}"]}, 202, "Running"),
    ({"ImageURI": "{bmc_image}", "Targets": ["{manager}"]}, 202, "Running"),
])
def test_simple_update_request_checks(fw_redfish, fw_hosts, images, body, status,
                                      words) -> None:
    """sushy-tools' convention (a System target for the BIOS, a Manager for the BMC) works too;
    a bad request is a 400 naming the property."""
    import requests

    host = fw_hosts[0]
    names = {"system": f"/redfish/v1/Systems/{host.uuid}",
             "manager": f"/redfish/v1/Managers/{host.uuid}",
             "image": _image(images, "bios", "4.0"), "bmc_image": _image(images, "bmc", "8.0")}

    def fill(value: object) -> object:
        if isinstance(value, list):
            return [fill(v) for v in value]
        return names.get(value.strip("{}"), value) if isinstance(value, str) else value

    filled = {key: fill(value) for key, value in body.items()}
    rsp = requests.post(f"{fw_redfish.endpoint}/redfish/v1/UpdateService/Actions/"
                        "UpdateService.SimpleUpdate", json=filled, auth=("admin", "password"),
                        timeout=10)
    assert rsp.status_code == status, rsp.text
    assert words in rsp.text
