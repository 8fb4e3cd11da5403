"""The provisioning engine, call by call, over in-process emulated hosts, BMCs and agents."""

import dataclasses
import datetime

import pytest

from metalcubed.core import agent, bmc, outcome, ports
from metalcubed.core import clock as clock_module
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.provisioning import context, engine, nodes, powersync
from metalcubed.simulators import hostmodel

from .rig import CREDS, DEPLOY_ISO, IMAGE, IMAGE_URL, Host, Rig, sha256

S = bmh.ProvisioningState
P = hostmodel.Power


def access_data(**changes: object) -> ports.ManagementAccessData:
    values: dict[str, object] = {
        "boot_mode": bmh.BootMode.UEFI,
        "automated_cleaning_mode": bmh.AutomatedCleaningMode.METADATA,
        "state": S.REGISTERING,
        "operational_status": bmh.OperationalStatus.OK,
        "current_image": None,
        "has_custom_deploy": False,
        "disable_power_off": False,
        "cpu_architecture": "",
        "disable_inspection": False,
        "inspection_mode": None,
    }
    values.update(changes)
    return ports.ManagementAccessData(**values)  # type: ignore[arg-type]


INSPECT = ports.InspectData(boot_mode=bmh.BootMode.UEFI, cpu_architecture="", inspection_mode=None)


def provision_data(image: bmh.Image | None = None, **config: str) -> ports.ProvisionData:
    return ports.ProvisionData(
        image=image or bmh.Image(url=IMAGE_URL, checksum=sha256(IMAGE), checksum_type=None,
                                 format=bmh.ImageFormat.QCOW2),
        host_config=ports.HostConfig(**config),
        boot_mode=bmh.BootMode.UEFI,
        hardware_profile="unknown",
        root_device_hints=bmh.RootDeviceHints(device_name="/dev/sda"),
        custom_deploy=None,
    )


def register(rig: Rig, host: Host, **kwargs: object) -> ports.ProvisionResult:
    result, node_id = rig.prov(host, **kwargs).register(
        access_data(), credentials_changed=True, restart_on_failure=False
    )
    assert node_id == nodes.node_id_for(host.key)
    return result


def inspect(rig: Rig, host: Host, *, passes: int = 5) -> ports.InspectOutcome:
    for _ in range(passes):
        got = rig.prov(host).inspect_hardware(
            INSPECT, restart_on_failure=False, refresh=False, force_reboot=False
        )
        if not got.result.dirty:
            return got
    return got


def run(rig: Rig, host: Host, call: str, *, passes: int = 8, **kwargs: object
        ) -> ports.ProvisionResult:
    for _ in range(passes):
        result: ports.ProvisionResult = getattr(rig.prov(host), call)(**kwargs)
        if not result.dirty:
            return result
        rig.clock.advance(result.requeue_after_s)
    return result


@pytest.fixture
def rig() -> Rig:
    return Rig()


# --- registration --------------------------------------------------------------------------------


def test_register_checks_the_bmc_and_records_the_node(rig: Rig) -> None:
    host = rig.add_host()
    assert register(rig, host) == ports.ProvisionResult.complete()
    node = rig.node(host)
    assert node is not None and node.macs == (host.mac,)
    assert node.bmc_address == "127.0.0.1:8000"
    assert ("Registered", "Registered new host") in rig.events


def test_register_of_a_known_node_makes_no_bmc_request(rig: Rig) -> None:
    host = rig.add_host()
    register(rig, host)
    before = rig.bmcs.requests
    result, _ = rig.prov(host).register(
        access_data(), credentials_changed=False, restart_on_failure=False
    )
    assert result == ports.ProvisionResult.complete()
    assert rig.bmcs.requests == before


def test_wrong_password_is_a_registration_failure_without_the_password(rig: Rig) -> None:
    host = rig.add_host()
    wrong = ports.Credentials(username="admin", password="s3cret-wrong")
    result = register(rig, host, credentials=wrong)
    assert "authentication failed" in result.error_message
    assert host.address in result.error_message
    assert "s3cret-wrong" not in result.error_message
    assert rig.node(host) is None


def test_unreachable_bmc_fails_registration_naming_address_and_operation(rig: Rig) -> None:
    host = rig.add_host()
    host.model.faults.unreachable = True
    result = register(rig, host)
    assert result.error_message.startswith("BMC unreachable at ")
    assert host.address in result.error_message and "get power state" in result.error_message


def test_busy_bmc_slows_registration_down(rig: Rig) -> None:
    host = rig.add_host()
    host.model.faults.session_cap = 0
    host.model.faults.retry_after_s = 7.0
    assert register(rig, host) == ports.ProvisionResult.continuing(7.0)


def test_server_error_is_transient(rig: Rig) -> None:
    host = rig.add_host()
    host.model.faults.error_rate = 1.0
    with pytest.raises(outcome.TransientError):
        register(rig, host)


def test_bad_address_is_a_registration_failure(rig: Rig) -> None:
    host = rig.add_host()
    host.address = "idrac://10.0.0.1"
    result = register(rig, host)
    assert "Unknown BMC type 'idrac'" in result.error_message


def test_libvirt_needs_a_boot_mac(rig: Rig) -> None:
    host = rig.add_host()
    host.address = "libvirt://127.0.0.1:6233"
    rig.bmcs.add(host.address, host.model)
    result = register(rig, host, mac="")
    assert result.error_message == "BMC driver libvirt requires a BootMACAddress value"


def test_register_without_boot_mac_learns_macs_out_of_band(rig: Rig) -> None:
    host = rig.add_host()
    assert register(rig, host, mac="") == ports.ProvisionResult.complete()
    node = rig.node(host)
    assert node is not None
    assert node.macs == tuple(nic.mac for nic in host.model.inventory.nics)


# --- inspection ----------------------------------------------------------------------------------


def test_inspection_boots_the_deploy_iso_and_reads_the_agents_inventory(rig: Rig) -> None:
    host = rig.add_host()
    register(rig, host)
    first = rig.prov(host).inspect_hardware(
        INSPECT, restart_on_failure=False, refresh=False, force_reboot=False
    )
    assert first.started and first.result.dirty
    assert host.model.boots[-1].device is hostmodel.BootDevice.CD
    assert host.model.boots[-1].media_url == DEPLOY_ISO
    done = inspect(rig, host)
    assert done.result == ports.ProvisionResult.complete()
    details = done.details
    assert details is not None
    assert details.system_vendor.serial_number == host.model.inventory.serial
    assert [n.mac for n in details.nics] == [n.mac for n in host.model.inventory.nics]
    assert details.nics[0].pxe and details.ram_mebibytes == host.model.inventory.ram_mib
    # Fast track (the default): the agent keeps running for the next operation.
    assert host.model.power is P.ON
    assert rig.table.agent(nodes.node_id_for(host.key)) is not None
    node = rig.node(host)
    assert node is not None and node.wait is None


def test_without_fast_track_inspection_powers_the_host_off() -> None:
    rig = Rig(config=context.EngineConfig(deploy_iso_url=DEPLOY_ISO, fast_track=False))
    host = rig.add_host()
    register(rig, host)
    assert inspect(rig, host).details is not None
    assert host.model.power is P.OFF
    assert not host.model.media(hostmodel.MediaSlot.CD).inserted
    node = rig.node(host)
    assert node is not None and node.wait is None


def test_fast_track_provisioning_reuses_the_agent_left_by_inspection(rig: Rig) -> None:
    host = rig.add_host()
    register(rig, host)
    assert inspect(rig, host).details is not None
    assert len(host.model.boots) == 1
    rig.clock.advance(120)  # available for two minutes: within fast_track_timeout_s
    before = rig.bmcs.requests
    result = run(rig, host, "provision", data=provision_data(), force_reboot=False)
    assert result == ports.ProvisionResult.complete()
    assert rig.emulator.disk(host.model).image_url == IMAGE_URL
    # No second ramdisk boot: only the boot into the written disk.
    assert [b.device for b in host.model.boots] == [hostmodel.BootDevice.CD,
                                                    hostmodel.BootDevice.HDD]
    # Boot device, eject (a read and the eject) and the reboot: no power-state reads.
    assert rig.bmcs.requests - before == 4


def test_fast_track_does_not_reuse_an_agent_past_its_heartbeat_timeout(rig: Rig) -> None:
    host = rig.add_host()
    register(rig, host)
    assert inspect(rig, host).details is not None
    rig.clock.advance(context.EngineConfig().fast_track_timeout_s + 1)  # no heartbeat since
    assert rig.prov(host).provision(provision_data(), force_reboot=False).dirty
    # Booted again (a host found on is switched off first, then booted into the ramdisk).
    assert host.model.power is P.OFF or len(host.model.boots) == 2
    assert run(rig, host, "provision", data=provision_data(), force_reboot=False) == \
        ports.ProvisionResult.complete()
    assert [b.device for b in host.model.boots][:2] == [hostmodel.BootDevice.CD] * 2


def test_fast_track_off_boots_the_ramdisk_again_for_provisioning() -> None:
    rig = Rig(config=context.EngineConfig(deploy_iso_url=DEPLOY_ISO, fast_track=False))
    host = rig.add_host()
    register(rig, host)
    inspect(rig, host)
    assert run(rig, host, "provision", data=provision_data(), force_reboot=False) == \
        ports.ProvisionResult.complete()
    assert [b.device for b in host.model.boots] == [hostmodel.BootDevice.CD] * 2 + \
        [hostmodel.BootDevice.HDD]


# --- power state sync ----------------------------------------------------------------------------


def test_power_state_is_read_from_the_bmc_once_per_sync_interval(rig: Rig) -> None:
    host = rig.add_host(power=P.ON)
    register(rig, host)  # reads the power state (proves access)
    interval = context.EngineConfig().power_sync_interval_s
    before = rig.bmcs.requests
    for _ in range(5):  # BMO's steady-state polls within one interval
        assert rig.prov(host).update_hardware_state() is True
        rig.clock.advance(interval / 6)
    assert rig.bmcs.requests == before
    rig.clock.advance(interval)
    assert rig.prov(host).update_hardware_state() is True
    assert rig.bmcs.requests == before + 1
    # A change made behind the engine's back shows at the next sync, as with Ironic.
    host.model.power_off(hard=True)
    assert rig.prov(host).update_hardware_state() is True
    rig.clock.advance(interval)
    assert rig.prov(host).update_hardware_state() is False


def test_a_power_action_invalidates_the_synced_power_state(rig: Rig) -> None:
    host = rig.add_host()
    register(rig, host)
    assert rig.prov(host).update_hardware_state() is False
    assert run(rig, host, "power_on", force=False) == ports.ProvisionResult.complete()
    before = rig.bmcs.requests
    assert rig.prov(host).update_hardware_state() is True  # the action's own read, reused
    assert rig.bmcs.requests == before


def test_waiting_for_the_agent_reads_the_power_state_once_per_sync_interval(rig: Rig) -> None:
    rig.emulator.deploy_iso_urls.clear()  # the ISO boots, no agent comes up
    host = rig.add_host()
    register(rig, host)
    inspect(rig, host, passes=1)
    inspect(rig, host, passes=1)  # the first wait reads the state the boot left
    reads_before = rig.bmcs.requests
    poll = context.EngineConfig().poll_s
    for _ in range(5):  # 50 s of 10-second polls
        rig.clock.advance(poll)
        assert inspect(rig, host, passes=1).result.dirty
    assert rig.bmcs.requests - reads_before <= 1


def test_pxe_hosts_network_boot_the_ramdisk(rig: Rig) -> None:
    host = rig.add_host(scheme="ipmi")
    register(rig, host)
    assert inspect(rig, host).details is not None
    assert host.model.boots[-1].device is hostmodel.BootDevice.PXE
    assert not host.model.media(hostmodel.MediaSlot.CD).inserted


def test_a_powered_on_host_is_rebooted_into_the_ramdisk(rig: Rig) -> None:
    host = rig.add_host(power=P.ON)
    register(rig, host)
    assert inspect(rig, host).details is not None
    assert len(host.model.boots) == 1


def test_fast_inspection_reads_the_bmc_and_boots_nothing(rig: Rig) -> None:
    host = rig.add_host()
    register(rig, host)
    data = ports.InspectData(boot_mode=bmh.BootMode.UEFI, cpu_architecture="",
                             inspection_mode=bmh.InspectionMode.FAST)
    got = rig.prov(host).inspect_hardware(data, restart_on_failure=False, refresh=False,
                                          force_reboot=False)
    assert got.result == ports.ProvisionResult.complete() and got.details is not None
    assert got.details.system_vendor.manufacturer == "Metalcubed"
    assert host.model.boots == []


def test_inspection_times_out_when_no_agent_comes_up(rig: Rig) -> None:
    rig.emulator.deploy_iso_urls.clear()  # the ISO boots, but no agent ever starts
    host = rig.add_host()
    register(rig, host)
    assert inspect(rig, host, passes=1).result.dirty
    rig.clock.advance(context.EngineConfig().ramdisk_timeout_s - 1)
    assert inspect(rig, host, passes=1).result.dirty
    assert len(host.model.boots) == 1  # waiting, not rebooting
    rig.clock.advance(2)
    failed = inspect(rig, host, passes=1)
    assert failed.result.error_message == "timeout reached while inspecting the node"
    again = inspect(rig, host, passes=1)  # the host is on: switched off first
    assert again.started and len(host.model.boots) == 1
    inspect(rig, host, passes=1)  # then booted into the ramdisk again
    assert len(host.model.boots) == 2


def test_a_host_switched_off_while_booting_is_powered_on_again(rig: Rig) -> None:
    rig.emulator.deploy_iso_urls.clear()
    host = rig.add_host()
    register(rig, host)
    inspect(rig, host, passes=1)
    host.model.power_off(hard=True)
    assert inspect(rig, host, passes=1).result.dirty
    assert host.model.power is P.ON


# --- provisioning --------------------------------------------------------------------------------


def test_provision_writes_the_image_and_config_drive_then_boots_the_disk(rig: Rig) -> None:
    host = rig.add_host()
    register(rig, host)
    data = provision_data(user_data="#cloud-config\nhostname: h0\n", network_data='{"links": []}')
    result = run(rig, host, "provision", data=data, force_reboot=False)
    assert result == ports.ProvisionResult.complete()
    disk = rig.emulator.disk(host.model)
    assert disk.image_url == IMAGE_URL and disk.size_bytes == len(IMAGE)
    assert disk.device == "/dev/sda"
    assert disk.config_drive is not None
    assert disk.config_drive.user_data == "#cloud-config\nhostname: h0\n"
    assert disk.config_drive.network_data == '{"links": []}'
    assert disk.config_drive.meta_data["metal3-name"] == host.key.name
    assert disk.config_drive.meta_data["uuid"] == nodes.node_id_for(host.key)
    assert host.model.boot_override() == (hostmodel.BootDevice.HDD, True)
    assert not host.model.media(hostmodel.MediaSlot.CD).inserted
    assert host.model.power is P.ON and disk.os_boots == 1
    node = rig.node(host)
    assert node is not None and node.deployed == nodes.Deployment(
        image_url=IMAGE_URL, checksum=sha256(IMAGE))
    # Called again: nothing more to do, nothing touched.
    boots = len(host.model.boots)
    assert rig.prov(host).provision(data, force_reboot=False) == ports.ProvisionResult.complete()
    assert len(host.model.boots) == boots


def test_bad_checksum_is_a_provisioning_failure(rig: Rig) -> None:
    host = rig.add_host()
    register(rig, host)
    bad = bmh.Image(url=IMAGE_URL, checksum="0" * 64)
    result = run(rig, host, "provision", data=provision_data(bad), force_reboot=False)
    assert result.error_message.startswith(
        f"Image provisioning failed (url: {IMAGE_URL}): Image failed to verify against checksum."
    )
    assert rig.emulator.disk(host.model).image_url == ""


@pytest.mark.parametrize("algo", ["md5", "sha256", "sha512"])
def test_checksum_types_and_checksum_files(rig: Rig, algo: str) -> None:
    import hashlib

    host = rig.add_host()
    register(rig, host)
    rig.files[IMAGE_URL + ".sum"] = f"{hashlib.new(algo, IMAGE).hexdigest()}  os.qcow2\n".encode()
    image = bmh.Image(url=IMAGE_URL, checksum=IMAGE_URL + ".sum",
                      checksum_type=bmh.ChecksumType(algo))
    assert run(rig, host, "provision", data=provision_data(image), force_reboot=False) == \
        ports.ProvisionResult.complete()


def test_missing_image_is_a_provisioning_failure(rig: Rig) -> None:
    host = rig.add_host()
    register(rig, host)
    image = bmh.Image(url="http://images.test/missing.raw", checksum="a" * 32)
    result = run(rig, host, "provision", data=provision_data(image), force_reboot=False)
    assert "Error downloading image" in result.error_message


def test_live_iso_boots_the_iso_every_time(rig: Rig) -> None:
    host = rig.add_host()
    register(rig, host)
    iso = bmh.Image(url="http://images.test/live.iso", format=bmh.ImageFormat.LIVE_ISO)
    result = rig.prov(host).provision(provision_data(iso), force_reboot=False)
    assert result == ports.ProvisionResult.complete()
    assert host.model.media(hostmodel.MediaSlot.CD).image_url == "http://images.test/live.iso"
    assert host.model.boot_override() == (hostmodel.BootDevice.CD, True)
    assert host.model.boots[-1].media_url == "http://images.test/live.iso"
    assert rig.emulator.current(host.model) is None


def test_live_iso_needs_virtual_media(rig: Rig) -> None:
    host = rig.add_host(scheme="ipmi")
    register(rig, host)
    iso = bmh.Image(url="http://images.test/live.iso", format=bmh.ImageFormat.LIVE_ISO)
    result = rig.prov(host).provision(provision_data(iso), force_reboot=False)
    assert "boots over the network" in result.error_message


def test_conflict_after_power_off_slows_provisioning_but_does_not_fail_it(rig: Rig) -> None:
    host = rig.add_host(power=P.ON)
    register(rig, host)
    host.model.power_off(hard=True)
    host.model.faults.conflict_after_power_off_s = 3600.0
    data = provision_data()
    result = rig.prov(host).provision(data, force_reboot=False)
    assert result == ports.ProvisionResult.continuing(context.EngineConfig().busy_retry_s)
    host.model.faults.conflict_after_power_off_s = 0.0
    assert run(rig, host, "provision", data=data, force_reboot=False) == \
        ports.ProvisionResult.complete()


def test_bmc_gone_mid_provisioning_fails_with_its_address_then_recovers(rig: Rig) -> None:
    rig.emulator.deploy_iso_urls.clear()  # the agent does not come up: the engine polls power
    host = rig.add_host()
    register(rig, host)
    data = provision_data()
    assert rig.prov(host).provision(data, force_reboot=False).dirty
    host.model.faults.unreachable = True
    failed = rig.prov(host).provision(data, force_reboot=False)
    assert failed.error_message.startswith(
        f"Image provisioning failed (url: {IMAGE_URL}): BMC unreachable at {host.address}"
    )
    host.model.faults.unreachable = False
    rig.emulator.deploy_iso_urls.add(DEPLOY_ISO)
    host.model.power_off(hard=True)  # a fresh boot brings the agent up
    assert run(rig, host, "provision", data=data, force_reboot=False) == \
        ports.ProvisionResult.complete()


def test_custom_deploy_is_refused(rig: Rig) -> None:
    host = rig.add_host()
    register(rig, host)
    data = ports.ProvisionData(image=None, host_config=ports.HostConfig(),
                               boot_mode=bmh.BootMode.UEFI, hardware_profile="",
                               root_device_hints=None,
                               custom_deploy=bmh.CustomDeploy(method="install_coreos"))
    result = rig.prov(host).provision(data, force_reboot=False)
    assert "custom deploy method 'install_coreos' is not supported" in result.error_message


# --- deprovisioning ------------------------------------------------------------------------------


def deprovision(rig: Rig, host: Host, *, cleaning: bmh.AutomatedCleaningMode =
                bmh.AutomatedCleaningMode.METADATA) -> ports.ProvisionResult:
    return run(rig, host, "deprovision", restart_on_failure=False,
               automated_cleaning_mode=cleaning)


def test_deprovision_cleans_the_disk_and_powers_off(rig: Rig) -> None:
    host = rig.add_host()
    register(rig, host)
    run(rig, host, "provision", data=provision_data(), force_reboot=False)
    assert deprovision(rig, host) == ports.ProvisionResult.complete()
    disk = rig.emulator.disk(host.model)
    assert disk.image_url == "" and disk.config_drive is None and disk.wipes == 1
    assert host.model.power is P.OFF
    node = rig.node(host)
    assert node is not None and node.deployed is None and node.wait is None
    # A repeated call finds the host clean and off: nothing is booted again.
    boots = len(host.model.boots)
    assert deprovision(rig, host) == ports.ProvisionResult.complete()
    assert len(host.model.boots) == boots


def test_deprovision_without_cleaning_keeps_the_disk(rig: Rig) -> None:
    host = rig.add_host()
    register(rig, host)
    run(rig, host, "provision", data=provision_data(), force_reboot=False)
    result = deprovision(rig, host, cleaning=bmh.AutomatedCleaningMode.DISABLED)
    assert result == ports.ProvisionResult.complete()
    assert rig.emulator.disk(host.model).image_url == IMAGE_URL
    assert host.model.power is P.OFF


def test_deprovision_after_a_failed_write_cleans_with_the_running_agent(rig: Rig) -> None:
    host = rig.add_host()
    register(rig, host)
    bad = bmh.Image(url=IMAGE_URL, checksum="0" * 64)
    run(rig, host, "provision", data=provision_data(bad), force_reboot=False)
    boots = len(host.model.boots)
    assert deprovision(rig, host) == ports.ProvisionResult.complete()
    assert len(host.model.boots) == boots  # the agent that failed the write did the cleaning
    assert rig.emulator.disk(host.model).wipes == 1


def test_deprovision_of_a_live_iso_ejects_it(rig: Rig) -> None:
    host = rig.add_host()
    register(rig, host)
    iso = bmh.Image(url="http://images.test/live.iso", format=bmh.ImageFormat.LIVE_ISO)
    rig.prov(host).provision(provision_data(iso), force_reboot=False)
    assert deprovision(rig, host) == ports.ProvisionResult.complete()
    assert not host.model.media(hostmodel.MediaSlot.CD).inserted
    assert host.model.power is P.OFF


# --- adopt, power, delete ------------------------------------------------------------------------


def test_adopt_records_a_deployment_that_deprovision_then_cleans(rig: Rig) -> None:
    host = rig.add_host(power=P.ON)
    register(rig, host)
    prov = rig.prov(host)
    assert prov.adopt(S.EXTERNALLY_PROVISIONED, restart_on_failure=False) == \
        ports.ProvisionResult.complete()
    node = rig.node(host)
    assert node is not None and node.deployed is not None and node.deployed.adopted
    assert deprovision(rig, host) == ports.ProvisionResult.complete()
    assert rig.emulator.disk(host.model).wipes == 1


def test_power_on_and_hard_power_off(rig: Rig) -> None:
    host = rig.add_host()
    register(rig, host)
    assert run(rig, host, "power_on", force=False) == ports.ProvisionResult.complete()
    assert rig.prov(host).update_hardware_state() is True
    assert run(rig, host, "power_off", mode=ports.RebootMode.HARD, force=False) == \
        ports.ProvisionResult.complete()
    assert rig.prov(host).update_hardware_state() is False


def test_a_soft_power_off_the_os_ignores_fails_after_the_timeout(rig: Rig) -> None:
    host = rig.add_host(power=P.ON)
    register(rig, host)
    host.model.faults.ignore_soft_power_off = True
    soft = ports.RebootMode.SOFT
    assert rig.prov(host).power_off(soft, force=False).dirty
    rig.clock.advance(context.EngineConfig().soft_power_off_timeout_s + 1)
    failed = rig.prov(host).power_off(soft, force=False)
    assert failed.error_message.startswith("soft power off did not complete")
    # The reconciler then asks for a hard power off.
    assert run(rig, host, "power_off", mode=ports.RebootMode.HARD, force=True) == \
        ports.ProvisionResult.complete()
    assert host.model.power is P.OFF


def test_power_state_unknown_when_the_bmc_is_gone(rig: Rig) -> None:
    host = rig.add_host()
    register(rig, host)
    host.model.faults.unreachable = True
    rig.clock.advance(context.EngineConfig().power_sync_interval_s)  # the next sync fails
    prov = rig.prov(host)
    assert prov.update_hardware_state() is None
    assert prov.has_power_failure()


def test_delete_and_detach_forget_the_node(rig: Rig) -> None:
    host = rig.add_host()
    register(rig, host)
    assert rig.prov(host).delete() == ports.ProvisionResult.complete()
    assert rig.node(host) is None
    register(rig, host)
    assert rig.prov(host).detach(force=False) == ports.ProvisionResult.complete()
    assert rig.node(host) is None


# --- capacity ------------------------------------------------------------------------------------


def test_virtual_media_hosts_always_have_capacity() -> None:
    rig = Rig(config=context.EngineConfig(deploy_iso_url=DEPLOY_ISO, provisioning_limit=0))
    host = rig.add_host()
    assert rig.prov(host).has_capacity()


def test_pxe_hosts_share_the_provisioning_limit() -> None:
    rig = Rig(config=context.EngineConfig(deploy_iso_url=DEPLOY_ISO, provisioning_limit=2))
    hosts = [rig.add_host(scheme="ipmi") for _ in range(3)]
    rig.busy = {hosts[0].key, hosts[1].key}
    assert rig.prov(hosts[0]).has_capacity()  # already holds a slot
    assert not rig.prov(hosts[2]).has_capacity()
    rig.busy = {hosts[0].key}
    assert rig.prov(hosts[2]).has_capacity()


# --- BIOS ----------------------------------------------------------------------------------------


def test_prepare_stages_bios_settings_and_reboots_to_apply_them(rig: Rig) -> None:
    host = rig.add_host()
    register(rig, host)
    target = {"ProcVirtualization": "Disabled", "PxeRetryCount": "5"}
    data = ports.PrepareData(target_raid_config=None, actual_raid_config=None,
                             root_device_hints=None, target_firmware_settings=target)
    for _ in range(5):
        result, started = rig.prov(host).prepare(data, unprepared=True, restart_on_failure=False)
        if not result.dirty:
            break
    assert result == ports.ProvisionResult.complete() and started
    assert host.model.bios()["ProcVirtualization"] == "Disabled"
    assert host.model.bios()["PxeRetryCount"] == 5
    assert len(host.model.boots) == 1


def test_prepare_with_an_invalid_bios_value_fails(rig: Rig) -> None:
    host = rig.add_host()
    register(rig, host)
    data = ports.PrepareData(target_raid_config=None, actual_raid_config=None,
                             root_device_hints=None,
                             target_firmware_settings={"ProcVirtualization": "Maybe"})
    result, _ = rig.prov(host).prepare(data, unprepared=True, restart_on_failure=False)
    assert "ProcVirtualization must be one of" in result.error_message


def test_prepare_with_nothing_to_do_touches_nothing(rig: Rig) -> None:
    host = rig.add_host()
    register(rig, host)
    before = rig.bmcs.requests
    data = ports.PrepareData(target_raid_config=None, actual_raid_config=None,
                             root_device_hints=None)
    assert rig.prov(host).prepare(data, unprepared=False, restart_on_failure=False) == \
        (ports.ProvisionResult.complete(), False)
    assert rig.bmcs.requests == before


# --- restart safety ------------------------------------------------------------------------------


def test_a_new_engine_over_the_same_records_carries_on(rig: Rig) -> None:
    rig.emulator.deploy_iso_urls.clear()
    host = rig.add_host()
    register(rig, host)
    data = provision_data()
    assert rig.prov(host).provision(data, force_reboot=False).dirty  # booted, agent not up yet
    restarted = engine.Engine(drivers=rig.engine._drivers, agents=rig.agents,
                              nodes_port=rig.table, clock=rig.clock, config=rig.engine.config)
    rig.engine = restarted
    assert restarted.new_provisioner(rig.data(host), print).provision(data, force_reboot=False) \
        .dirty
    assert len(host.model.boots) == 1  # still waiting for the same boot: no second power cycle
    # The ramdisk comes up (modelled as a second boot from the ISO, with an agent this time).
    rig.emulator.deploy_iso_urls.add(DEPLOY_ISO)
    host.model.set_boot_device(hostmodel.BootDevice.CD, persistent=False)
    host.model.reboot(hard=True)
    assert run(rig, host, "provision", data=data, force_reboot=False) == \
        ports.ProvisionResult.complete()
    assert len([b for b in host.model.boots if b.media_url == DEPLOY_ISO]) == 2


def test_lost_records_are_rebuilt_by_registration_and_adopt(rig: Rig) -> None:
    host = rig.add_host()
    register(rig, host)
    run(rig, host, "provision", data=provision_data(), force_reboot=False)
    rig.table.delete(nodes.node_id_for(host.key))  # the records are gone (a restart)
    result, _ = rig.prov(host).register(access_data(state=S.PROVISIONED),
                                        credentials_changed=False, restart_on_failure=False)
    assert result == ports.ProvisionResult.complete()
    assert rig.prov(host).adopt(S.PROVISIONED, restart_on_failure=False) == \
        ports.ProvisionResult.complete()
    assert deprovision(rig, host) == ports.ProvisionResult.complete()
    assert rig.emulator.disk(host.model).wipes == 1


def test_agent_errors_are_failures_naming_the_agent(rig: Rig) -> None:
    host = rig.add_host()
    register(rig, host)
    run(rig, host, "provision", data=provision_data(), force_reboot=False)

    class Broken:
        def __getattr__(self, name: str) -> object:
            def fail(*args: object, **kwargs: object) -> object:
                raise agent.AgentError("inproc://x", name, "malformed command")
            return fail

    rig.engine._agents = Broken()  # type: ignore[assignment]
    rig.emulator.deploy_iso_urls.add(DEPLOY_ISO)
    host.model.reboot(hard=True)
    result = rig.prov(host).deprovision(restart_on_failure=False,
                                        automated_cleaning_mode=bmh.AutomatedCleaningMode.METADATA)
    assert result.error_message.startswith(
        "Image deprovisioning failed: deploy agent at inproc://x failed"
    )


def test_driver_errors_carry_no_credentials(rig: Rig) -> None:
    err = bmc.BmcAuthFailed("redfish://admin:hunter2@10.0.0.1/redfish/v1", "get power", "401")
    assert "hunter2" not in str(err)
    assert CREDS.password not in repr(CREDS)


def test_adopt_while_deprovisioning_leaves_the_record_alone(rig: Rig) -> None:
    host = rig.add_host(power=P.ON)
    register(rig, host)
    node_id = nodes.node_id_for(host.key)
    record = rig.table.get(node_id)
    assert record is not None
    tearing_down = nodes.Wait(purpose=nodes.Purpose.TEAR_DOWN, since=rig.clock.now())
    rig.table.put(dataclasses.replace(record, wait=tearing_down))
    assert rig.prov(host).adopt(S.DEPROVISIONING, restart_on_failure=False) == \
        ports.ProvisionResult.complete()
    after = rig.table.get(node_id)
    assert after is not None and after.deployed is None and after.wait == tearing_down


def test_node_table_lookup_by_mac_follows_puts_and_deletes() -> None:
    table = nodes.NodeTable(clock=clock_module.ManualClock())
    table.put(nodes.Node(node_id="a", name="ns~a", bmc_address="10.0.0.1:443",
                         macs=("52:54:00:00:00:0A",)))
    table.put(nodes.Node(node_id="b", name="ns~b", bmc_address="10.0.0.2:443",
                         macs=("52-54-00-00-00-0b",)))
    assert table.lookup(["52:54:00:00:00:0a"]) == "a"
    assert table.lookup(["52:54:00:00:00:0B", "ff:ff:ff:ff:ff:ff"]) == "b"
    table.put(nodes.Node(node_id="a", name="ns~a", bmc_address="10.0.0.1:443",
                         macs=("52:54:00:00:00:0c",)))  # a's NIC replaced
    assert table.lookup(["52:54:00:00:00:0a"]) is None
    assert table.lookup(["52:54:00:00:00:0c"]) == "a"
    table.delete("b")
    assert table.lookup(["52:54:00:00:00:0b"]) is None
    assert table.lookup([], "10.0.0.1:443") == "a"  # by BMC address when it is unique


def test_a_read_still_showing_the_old_power_state_is_not_kept_after_a_power_change() -> None:
    sync = powersync.PowerSync(interval_s=60.0)
    t0 = clock_module.EPOCH
    sync.record("n", bmc.PowerState.ON, t0)
    sync.expect("n", bmc.PowerState.OFF, t0)  # the engine asked for a power off
    # Some BMCs still say "on" for a moment after a force off: read again, do not keep it.
    sync.record("n", bmc.PowerState.ON, t0 + datetime.timedelta(seconds=2))
    assert sync.last("n") is None
    sync.record("n", bmc.PowerState.OFF, t0 + datetime.timedelta(seconds=5))
    assert sync.last("n") == bmc.PowerState.OFF
    assert sync.fresh("n", t0 + datetime.timedelta(seconds=66)) is None  # interval passed
    # A host that never gets there is believed after the interval.
    sync.expect("n", bmc.PowerState.ON, t0)
    sync.record("n", bmc.PowerState.OFF, t0 + datetime.timedelta(seconds=61))
    assert sync.last("n") == bmc.PowerState.OFF


def test_deployment_times_out_with_ironics_callback_message(rig: Rig) -> None:
    rig.emulator.deploy_iso_urls.clear()  # the ISO boots, but no agent ever starts
    host = rig.add_host()
    register(rig, host)
    assert rig.prov(host).provision(provision_data(), force_reboot=False).dirty
    rig.clock.advance(context.EngineConfig().ramdisk_timeout_s + 1)
    failed = rig.prov(host).provision(provision_data(), force_reboot=False)
    assert failed.error_message == (
        f"Image provisioning failed (url: {IMAGE_URL}): "
        f"Timeout reached while waiting for callback for node {nodes.node_id_for(host.key)}"
    )
