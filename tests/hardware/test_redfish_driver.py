"""The Redfish driver end to end against the sushy-tools emulator over real HTTP."""

import threading
import time

import pytest
import requests

from metalcubed.controllers.bmc.redfish import capabilities as rf
from metalcubed.controllers.bmc.redfish import client
from metalcubed.core import bmc, ports
from metalcubed.simulators import hostmodel
from metalcubed.simulators.redfish import emulator as redfish_emulator
from tests.hardware.conftest import redfish_access

pytestmark = pytest.mark.hardware
SOFT, HARD = ports.RebootMode.SOFT, ports.RebootMode.HARD


def test_power_on_then_soft_and_hard_off(redfish, hosts, clients) -> None:
    access = redfish_access(redfish, hosts[0])
    power = rf.RedfishPower(clients)
    assert power.power_state(access) is bmc.PowerState.OFF
    power.start_power_on(access)
    power.start_power_on(access)  # idempotent
    assert power.power_state(access) is bmc.PowerState.ON
    power.start_power_off(access, mode=SOFT)
    assert power.power_state(access) is bmc.PowerState.OFF
    power.start_reboot(access, mode=HARD)  # off: reboot powers on
    assert power.power_state(access) is bmc.PowerState.ON
    hosts[0].faults.ignore_soft_power_off = True
    power.start_power_off(access, mode=SOFT)
    assert power.power_state(access) is bmc.PowerState.ON  # the OS ignored it: escalate
    power.start_power_off(access, mode=HARD)
    assert power.power_state(access) is bmc.PowerState.OFF


def test_power_transition_is_observed_not_waited_for(redfish, hosts, clients) -> None:
    hosts[1].timing = hostmodel.PowerTiming(power_on_s=0.5)
    access = redfish_access(redfish, hosts[1])
    power = rf.RedfishPower(clients)
    power.start_power_on(access)
    # Still powering on: the call started the transition and did not wait for it.
    assert power.power_state(access) is bmc.PowerState.POWERING_ON
    deadline = time.monotonic() + 5
    while power.power_state(access) is not bmc.PowerState.ON:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_boot_device_once_and_persistent_and_boot_mode(redfish, hosts, clients) -> None:
    access = redfish_access(redfish, hosts[0])
    mgmt = rf.RedfishManagement(clients)
    mgmt.set_boot_device(access, bmc.BootDevice.PXE, persistence=bmc.Persistence.ONCE)
    assert mgmt.boot_setting(access) == bmc.BootSetting(
        device=bmc.BootDevice.PXE, persistence=bmc.Persistence.ONCE, mode=bmc.BootMode.UEFI)
    rf.RedfishPower(clients).start_power_on(access)
    assert hosts[0].boots[-1].device is hostmodel.BootDevice.PXE
    assert mgmt.boot_setting(access).device is bmc.BootDevice.NONE  # consumed by the boot
    mgmt.set_boot_device(access, bmc.BootDevice.DISK, persistence=bmc.Persistence.PERSISTENT)
    mgmt.set_boot_mode(access, bmc.BootMode.LEGACY)
    assert mgmt.boot_setting(access) == bmc.BootSetting(
        device=bmc.BootDevice.DISK, persistence=bmc.Persistence.PERSISTENT,
        mode=bmc.BootMode.LEGACY)
    mgmt.set_boot_device(access, bmc.BootDevice.NONE, persistence=bmc.Persistence.ONCE)
    assert mgmt.boot_setting(access).device is bmc.BootDevice.NONE


def test_virtual_media_insert_boot_and_eject(redfish, hosts, clients, image_server) -> None:
    access = redfish_access(redfish, hosts[2])
    media = rf.RedfishVirtualMedia(clients)
    url = f"{image_server}/ramdisk.iso"
    media.insert_media(access, url, device=bmc.MediaDevice.CD)
    media.insert_media(access, url, device=bmc.MediaDevice.CD)  # idempotent
    assert media.media_state(access, device=bmc.MediaDevice.CD) == bmc.MediaState(
        device=bmc.MediaDevice.CD, inserted=True, image_url=url)
    assert hosts[2].media(hostmodel.MediaSlot.CD).size_bytes == 256 * 1024  # the BMC fetched it
    rf.RedfishManagement(clients).set_boot_device(access, bmc.BootDevice.CDROM,
                                                  persistence=bmc.Persistence.ONCE)
    rf.RedfishPower(clients).start_power_on(access)
    assert hosts[2].boots[-1].media_url == url
    media.eject_media(access, device=bmc.MediaDevice.CD)
    media.eject_media(access, device=bmc.MediaDevice.CD)  # idempotent
    assert not media.media_state(access, device=bmc.MediaDevice.CD).inserted


def test_virtual_media_with_unreachable_image_is_rejected(redfish, hosts, clients) -> None:
    access = redfish_access(redfish, hosts[0])
    with pytest.raises(bmc.BmcRejected) as info:
        rf.RedfishVirtualMedia(clients).insert_media(
            access, "http://127.0.0.1:9/missing.iso", device=bmc.MediaDevice.CD)
    assert info.value.status == 400


def test_inspect(redfish, hosts, clients) -> None:
    details = rf.RedfishInspect(clients).inspect(redfish_access(redfish, hosts[1]))
    inv = hosts[1].inventory
    assert details.system_vendor.serial_number == inv.serial
    assert details.ram_mebibytes == inv.ram_mib
    assert details.cpu.count == sum(p.threads for p in inv.processors)
    assert [n.mac for n in details.nics] == [n.mac for n in inv.nics]
    assert [d.size_bytes for d in details.storage] == [d.size_bytes for d in inv.disks]


def test_bios_read_registry_apply(redfish, hosts, clients) -> None:
    access = redfish_access(redfish, hosts[0])
    bios = rf.RedfishBios(clients)
    assert bios.settings(access).current["ProcVirtualization"] == "Enabled"
    assert bios.registry(access)["PxeRetryCount"].upper_bound == 10
    bios.apply_settings(access, {"ProcVirtualization": "Disabled", "PxeRetryCount": 5})
    assert bios.settings(access).pending == {"ProcVirtualization": "Disabled", "PxeRetryCount": 5}
    rf.RedfishPower(clients).start_power_on(access)  # firmware applies staged settings
    assert bios.settings(access).current["PxeRetryCount"] == 5
    with pytest.raises(bmc.BmcRejected) as info:
        bios.apply_settings(access, {"PxeRetryCount": 99})
    assert info.value.status == 400 and info.value.operation == "apply BIOS settings"


def test_firmware_and_event_subscriptions(redfish, hosts, clients) -> None:
    access = redfish_access(redfish, hosts[1])
    components = {c.component: c.version for c in rf.RedfishFirmware(clients).components(access)}
    assert components == hosts[1].firmware()
    events = rf.RedfishEvents(clients)
    sub = events.subscribe(access, "https://hooks.example/metal3", context="ns/host")
    assert events.subscriptions(access) == (sub,)
    events.unsubscribe(access, sub.id)
    events.unsubscribe(access, sub.id)  # already gone: no-op
    assert events.subscriptions(access) == ()


def test_one_session_per_bmc_and_user(redfish, hosts, clients) -> None:
    power = rf.RedfishPower(clients)
    for host in hosts:
        for _ in range(5):
            power.power_state(redfish_access(redfish, host))
    assert redfish.sessions_created == 1
    assert clients.sessions_opened == 1


def test_wrong_password_is_auth_failed_and_not_retried(redfish, hosts, clients) -> None:
    access = redfish_access(redfish, hosts[0],
                            creds=ports.Credentials(username="admin", password="wrong-pw"))
    with pytest.raises(bmc.BmcAuthFailed) as info:
        rf.RedfishPower(clients).power_state(access)
    assert "wrong-pw" not in str(info.value)
    assert info.value.operation == "get power state"
    assert "127.0.0.1" in str(info.value)


@pytest.mark.timeout(30)  # a hang guard; the retry budget shows as the call succeeding
def test_session_cap_503_is_retried_within_budget(redfish, hosts, clients) -> None:
    power = rf.RedfishPower(clients)
    access = redfish_access(redfish, hosts[0])
    power.power_state(access)  # log in first
    redfish.faults.session_cap = 1
    redfish.faults.retry_after_s = 0.2
    hosts[1].faults.latency = hostmodel.fixed_latency(0.4)
    slow = threading.Thread(target=requests.get, args=(redfish.system_url(hosts[1]),),
                            kwargs={"auth": ("admin", "password"), "timeout": 5})
    slow.start()
    time.sleep(0.1)  # the slow request holds the only slot
    state = power.power_state(access)
    slow.join()
    assert state is bmc.PowerState.OFF
    assert redfish.injected["503"] >= 1


def test_conflict_after_power_off_is_retried(redfish, hosts, clients) -> None:
    hosts[0].faults.conflict_after_power_off_s = 0.4
    access = redfish_access(redfish, hosts[0])
    power = rf.RedfishPower(clients)
    power.start_power_on(access)
    power.start_power_off(access, mode=HARD)
    power.start_power_on(access)  # 409 while the host settles, then accepted
    assert redfish.injected["409"] >= 1
    assert power.power_state(access) is bmc.PowerState.ON


def test_conflict_beyond_budget_surfaces_as_rejected_409(redfish, hosts) -> None:
    stingy = client.Clients(client.ClientConfig(retry=client.RetryPolicy(
        attempts=2, base_delay_s=0.01, max_delay_s=0.01)))
    hosts[0].faults.conflict_after_power_off_s = 30.0
    access = redfish_access(redfish, hosts[0])
    power = rf.RedfishPower(stingy)
    power.start_power_on(access)
    power.start_power_off(access, mode=HARD)
    with pytest.raises(bmc.BmcRejected) as info:
        power.start_power_on(access)
    assert info.value.status == 409


def test_server_errors_are_retried(redfish, hosts, clients) -> None:
    hosts[2].faults.error_rate = 0.3
    access = redfish_access(redfish, hosts[2])
    power = rf.RedfishPower(clients)
    for _ in range(20):
        assert power.power_state(access) is bmc.PowerState.OFF
    assert redfish.injected["500"] > 0


@pytest.mark.timeout(30)  # a hang guard, not a speed check
def test_refused_connection_is_unreachable(clients) -> None:
    access = bmc.BmcAccess.of("redfish+http://127.0.0.1:9/redfish/v1/Systems/1",
                              ports.Credentials(username="admin", password="password"))
    with pytest.raises(bmc.BmcUnreachable) as info:
        rf.RedfishPower(clients).power_state(access)
    assert info.value.operation == "get power state"


@pytest.mark.timeout(30)  # a hang guard: the read timeout shows in the error
def test_hanging_bmc_is_unreachable_within_bounded_time(redfish, hosts) -> None:
    impatient = client.Clients(client.ClientConfig(read_timeout_s=0.5, connect_retry_delay_s=0.05))
    access = redfish_access(redfish, hosts[0])
    rf.RedfishPower(impatient).power_state(access)
    hosts[0].faults.unreachable = True
    with pytest.raises(bmc.BmcUnreachable, match="timed out"):
        rf.RedfishPower(impatient).power_state(access)


def test_tls_is_verified_unless_disabled(hosts, clients) -> None:
    with redfish_emulator.RedfishEmulator(hosts, tls=True) as secure:
        verified = redfish_access(secure, hosts[0])
        with pytest.raises(bmc.BmcUnreachable, match="TLS"):
            rf.RedfishPower(clients).power_state(verified)
        unverified = redfish_access(secure, hosts[0], verify=False)
        assert rf.RedfishPower(clients).power_state(unverified) is bmc.PowerState.OFF
