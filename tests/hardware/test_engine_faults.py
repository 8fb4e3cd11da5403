"""The engine under BMC faults, over real HTTP and UDP: slowed down, failed with a clear message,
recovered.

- a BMC at its session cap (503) and BMCs answering 409 right after a power off slow hosts down
  but never put them in error;
- a wrong password is a registration error; a bad image checksum is a provisioning error;
- a BMC that stops answering mid-provisioning puts the host in error with a message naming the
  BMC address and the operation, within bounded time, and the host is provisioned once the BMC
  answers again;
- unreachable BMC addresses give a registration error in bounded time.
"""

import socket
import time

import pytest

from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.provisioning import context
from metalcubed.simulators import hostmodel
from metalcubed.simulators.agent import emulator

from .world import HardwareWorld

pytestmark = pytest.mark.hardware
S = bmh.ProvisioningState
ET = bmh.ErrorType


def test_session_cap_503_slows_provisioning_but_does_not_fail_it() -> None:
    hosts = hostmodel.make_hosts(3, prefix="capped")
    with HardwareWorld(redfish_hosts=hosts, ipmi_hosts=[]) as w:
        keys = [w.enroll(m, "redfish-virtualmedia") for m in hosts]
        w.loop.run_until(lambda: w.all_in(keys, S.AVAILABLE))
        w.redfish.faults.session_cap = 0  # every request is over the cap: 503 + Retry-After
        w.redfish.faults.retry_after_s = 0.1
        for key in keys:
            w.edit(key, image=w.image_spec())
        deadline = time.monotonic() + 3
        w.loop.run_until(lambda: time.monotonic() > deadline)
        assert w.redfish.injected["503"] > 0
        for key in keys:
            status = w.loop.host(key).status
            assert status.error_type == ET.NONE, status.error_message
            assert status.provisioning.state in (S.AVAILABLE, S.PROVISIONING)
        w.redfish.faults.session_cap = None
        w.loop.run_until(lambda: w.all_in(keys, S.PROVISIONED))
        assert w.events.warnings() == []


def test_conflict_after_power_off_slows_hosts_but_does_not_fail_them() -> None:
    hosts = hostmodel.make_hosts(4, prefix="settling")
    for host in hosts:
        host.faults.conflict_after_power_off_s = 1.5  # power and boot writes: 409 / 0xC0
    with HardwareWorld(redfish_hosts=hosts[:2], ipmi_hosts=hosts[2:]) as w:
        keys = [w.enroll(hosts[0], "redfish-virtualmedia"), w.enroll(hosts[1], "redfish"),
                w.enroll(hosts[2], "ipmi"), w.enroll(hosts[3], "ipmi")]
        w.loop.run_until(lambda: w.all_in(keys, S.AVAILABLE))
        for key in keys:  # fast track: inspection's agent writes the image, no power cycle
            w.edit(key, image=w.image_spec())
        w.loop.run_until(lambda: w.all_in(keys, S.PROVISIONED))
        for key in keys:  # deprovisioning powers the OS off, then boots the ramdisk: 409s
            w.edit(key, image=None)
        w.loop.run_until(lambda: w.all_in(keys, S.AVAILABLE))
        assert w.redfish.injected["409"] > 0
        assert w.events.warnings() == []


def test_wrong_password_is_a_registration_error() -> None:
    hosts = hostmodel.make_hosts(2, prefix="locked")
    with HardwareWorld(redfish_hosts=hosts[:1], ipmi_hosts=hosts[1:]) as w:
        w.secret("wrong", {"username": "admin", "password": "hunter2-wrong"})
        keys = [w.enroll(hosts[0], "redfish-virtualmedia", credentials="wrong"),
                w.enroll(hosts[1], "ipmi", credentials="wrong")]
        w.loop.run_until(lambda: all(w.loop.host(k).status.error_type == ET.REGISTRATION
                                     for k in keys))
        for key in keys:
            status = w.loop.host(key).status
            assert status.provisioning.state == S.REGISTERING
            assert status.error_message.startswith("BMC authentication failed at ")
            assert w.addresses[key] in status.error_message
            assert "hunter2" not in status.error_message
        # Fixing the Secret's password registers the hosts.
        for key in keys:
            w.edit(key, bmc=bmh.BMCDetails(address=w.addresses[key], credentials_name="bmc"))
        w.loop.run_until(lambda: w.all_in(keys, S.AVAILABLE))


def test_bad_checksum_is_a_provisioning_error() -> None:
    hosts = hostmodel.make_hosts(2, prefix="corrupt")
    with HardwareWorld(redfish_hosts=hosts[:1], ipmi_hosts=hosts[1:]) as w:
        keys = [w.enroll(hosts[0], "redfish-virtualmedia"), w.enroll(hosts[1], "ipmi")]
        w.loop.run_until(lambda: w.all_in(keys, S.AVAILABLE))
        for key in keys:
            w.edit(key, image=w.image_spec(checksum="f" * 64))
        w.loop.run_until(lambda: all(w.loop.host(k).status.error_type == ET.PROVISIONING
                                     for k in keys))
        for key in keys:
            message = w.loop.host(key).status.error_message
            assert message.startswith(f"Image provisioning failed (url: {w.image_url}): "
                                      "Image failed to verify against checksum.")
            assert w.lab.agents is not None
            assert w.lab.agents.disk(w.models[key]).image_url == ""


def test_bmc_gone_mid_provisioning_is_an_error_and_the_host_recovers() -> None:
    hosts = hostmodel.make_hosts(1, prefix="vanishing")
    # Without fast track, provisioning boots the ramdisk again: the BMC is needed mid-way.
    config = context.EngineConfig(poll_s=0.2, short_poll_s=0.1, busy_retry_s=0.2,
                                  ramdisk_timeout_s=30.0, fast_track=False)
    with HardwareWorld(redfish_hosts=hosts, ipmi_hosts=[], config=config) as w:
        key = w.enroll(hosts[0], "redfish-virtualmedia")
        w.loop.run_until(lambda: w.all_in([key], S.AVAILABLE))
        assert w.lab.agents is not None
        w.lab.agents.timing = emulator.AgentTiming(boot_s=2.0, heartbeat_s=0.2)  # slow ramdisk
        w.edit(key, image=w.image_spec())
        w.loop.run_until(lambda: w.state(key) == S.PROVISIONING and hosts[0].boots[-1].media_url
                         != "" and len(hosts[0].boots) == 2)
        w.redfish.faults.unreachable = True  # requests hang; the driver times out
        # Bounded: the poll fails with a message if the error takes longer than this.
        w.loop.run_until(lambda: w.loop.host(key).status.error_type == ET.PROVISIONING,
                         timeout_s=15)
        message = w.loop.host(key).status.error_message
        assert f"BMC unreachable at {w.addresses[key]} during " in message
        w.redfish.faults.unreachable = False
        w.lab.agents.timing = emulator.AgentTiming(heartbeat_s=0.2)
        w.loop.run_until(lambda: w.state(key) == S.PROVISIONED, timeout_s=60)
        status = w.loop.host(key).status
        assert status.error_type == ET.NONE and status.provisioning.image.url == w.image_url


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("scheme", ["redfish-virtualmedia+http", "ipmi"])
def test_unreachable_bmc_is_a_registration_error_in_bounded_time(scheme: str) -> None:
    hosts = hostmodel.make_hosts(1, prefix="nowhere")
    with HardwareWorld(redfish_hosts=[], ipmi_hosts=[]) as w:
        port = _closed_port()
        address = (f"ipmi://127.0.0.1:{port}" if scheme == "ipmi" else
                   f"{scheme}://127.0.0.1:{port}/redfish/v1/Systems/{hosts[0].uuid}")
        host = bmh.BareMetalHost.model_validate({
            "metadata": {"name": "nowhere", "namespace": "metal3"},
            "spec": {"online": True, "bmc": {"address": address, "credentialsName": "bmc"},
                     "bootMACAddress": hosts[0].inventory.nics[0].mac},
        })
        key = w.store.create(host).key
        w.loop.add([key])
        started = time.monotonic()
        # Bounded: the poll fails with a message if the error takes longer than this.
        w.loop.run_until(lambda: w.loop.host(key).status.error_type == ET.REGISTRATION,
                         timeout_s=20)
        took = time.monotonic() - started  # reported, not asserted
        message = w.loop.host(key).status.error_message
        assert message.startswith(f"BMC unreachable at {address} during ")
        print(f"\n{scheme}: unreachable BMC -> registration error in {took:.1f}s")
