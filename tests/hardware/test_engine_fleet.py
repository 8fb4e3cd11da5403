"""Twenty hosts, Redfish (virtual media and PXE) and IPMI mixed, through the whole lifecycle.

Over real HTTP and UDP on 127.0.0.1: the BareMetalHost reconciler drives the provisioning
engine, which drives the real Redfish (sushy) and IPMI (pyghmi) drivers against the emulators,
and the emulated deploy agents, which download the image from the image server. Every host
goes enroll -> inspect -> available -> provision -> provisioned -> deprovision -> available ->
delete, and nothing ever shows an error.
"""

import time

import pytest

from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import hardwaredata as hwd
from metalcubed.core.api import meta
from metalcubed.core.provisioning import nodes
from metalcubed.simulators import hostmodel

from .world import HardwareWorld

pytestmark = [pytest.mark.hardware, pytest.mark.slow]
S = bmh.ProvisioningState
USER_DATA = "#cloud-config\nssh_authorized_keys: [ssh-ed25519 AAAAC3 test@metalcubed]\n"


def test_twenty_mixed_hosts_full_lifecycle() -> None:
    timing = hostmodel.PowerTiming(power_on_s=0.3, soft_off_s=0.2, hard_off_s=0.05)
    hosts = hostmodel.make_hosts(20, prefix="node", timing=timing)
    redfish_hosts, ipmi_hosts = hosts[:12], hosts[12:]
    with HardwareWorld(redfish_hosts=redfish_hosts, ipmi_hosts=ipmi_hosts) as w:
        w.secret("user-data", {"userData": USER_DATA})
        schemes = ["redfish-virtualmedia"] * 8 + ["redfish"] * 4 + ["ipmi"] * 8
        keys = [w.enroll(model, scheme) for model, scheme in zip(hosts, schemes, strict=True)]
        figures: dict[str, float] = {}

        figures["enroll+inspect -> available"] = w.timed(lambda: w.all_in(keys, S.AVAILABLE))
        for key in keys:
            hardware = w.store.get(hwd.HardwareData, key).spec.hardware
            assert hardware is not None
            assert hardware.system_vendor.serial_number == w.models[key].inventory.serial
            assert [n.mac for n in hardware.nics] == [n.mac for n in w.models[key].inventory.nics]

        for key in keys:
            w.edit(key, image=w.image_spec(), user_data=meta.SecretReference(name="user-data"))
        figures["provision -> provisioned"] = w.timed(lambda: w.all_in(keys, S.PROVISIONED))
        assert w.events.warnings() == []
        agents = w.lab.agents
        assert agents is not None
        # The last reboot into the OS may still be in POST (power-on takes 0.3 s here).
        deadline = time.monotonic() + 5
        while any(agents.disk(m).os_boots == 0 for m in hosts) and time.monotonic() < deadline:
            time.sleep(0.05)
        for key in keys:
            disk = agents.disk(w.models[key])
            assert disk.image_url == w.image_url and disk.size_bytes == len(w.image)
            assert disk.config_drive is not None and disk.config_drive.user_data == USER_DATA
            assert disk.os_boots == 1
            assert w.models[key].power is hostmodel.Power.ON
        vmedia_boots = [b for m in hosts[:8] for b in m.boots if b.device.value == "Cd"]
        pxe_boots = [b for m in hosts[8:] for b in m.boots if b.device.value == "Pxe"]
        # One ramdisk boot each: fast track (the default) deploys with inspection's agent.
        assert len(vmedia_boots) == 8 and len(pxe_boots) == 12
        assert w.lab.images.hits["os.qcow2"] == 20

        for key in keys:
            w.edit(key, image=None)
        figures["deprovision -> available"] = w.timed(lambda: w.all_in(keys, S.AVAILABLE))
        for key in keys:
            assert agents.disk(w.models[key]).wipes == 1

        for key in keys:
            w.store.delete(bmh.BareMetalHost, key)
            w.loop.poke(key)
        figures["delete -> gone"] = w.timed(lambda: all(w.loop.gone(k) for k in keys))
        assert w.lab.table.nodes() == []
        assert all(w.lab.table.get(nodes.node_id_for(k)) is None for k in keys)

        assert w.events.warnings() == []
        assert w.loop.errors == []
        summary = ", ".join(f"{k}: {v:.1f}s" for k, v in figures.items())
        print(f"\n20 hosts (8 redfish-virtualmedia, 4 redfish PXE, 8 ipmi): {summary}; "
              f"{w.loop.passes} reconciles, {w.redfish.request_count} Redfish requests, "
              f"{w.lab.lookup.heartbeats} heartbeats")
