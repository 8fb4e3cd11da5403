"""Twenty hosts, Redfish and IPMI mixed, through the whole lifecycle in the devenv lab.

The lab as `metalcubed devenv up --hosts 20 --bmc mixed` composes it (simulators/devenv/lab.py),
with its BMC emulators inside the test process so the emulated servers can be inspected:
the composed controller (informers, threaded workqueue, workers) runs the BareMetalHost
reconciler over the memory store; the provisioning engine drives the production drivers
(sushy against the sushy-tools emulator over HTTP, pyghmi against pyghmi BMCs over UDP) and
the deploy agents (over HTTP), which download the OS image from the image server and check its
sha256. Every host goes enroll -> inspect -> available -> provision -> provisioned ->
deprovision -> available -> delete, with no error and no Warning event on the way.
"""

import time
from collections.abc import Callable, Iterator

import pytest

from metalcubed.core import outcome
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import hardwaredata as hwd
from metalcubed.simulators import hostmodel
from metalcubed.simulators.devenv import config, lab

pytestmark = [pytest.mark.hardware, pytest.mark.slow]
S = bmh.ProvisioningState


@pytest.fixture
def fleet() -> Iterator[lab.Lab]:
    cfg = config.LabConfig(hosts=20, bmc=config.BmcMix.MIXED, hosts_per_process=0,
                           concurrency=8, password="lab-secret-20")
    with lab.Lab(cfg) as running:
        yield running


def _histories(fleet: lab.Lab) -> str:
    """What each emulated server went through (power requests, transitions, boots)."""
    lines = []
    for model in fleet.shards[0].models if fleet.shards else []:
        boots = [b.device.value for b in model.boots]
        tail = "; ".join(f"{t:.2f} {what}" for t, what in list(model.history)[-14:])
        lines.append(f"{model.name} boots={boots}: {tail}")
    return "\n" + "\n".join(lines)


def _wait(fleet: lab.Lab, goal: Callable[[], bool], *, what: str, timeout_s: float = 90.0
          ) -> float:
    started = time.monotonic()
    while not goal():
        if time.monotonic() - started > timeout_s:
            rows = [f"{r['name']}: {r['state']} {r['errorType']} {r['errorMessage'][:120]}"
                    for r in fleet.snapshot()["hosts"]]
            pytest.fail(f"{what}: not reached in {timeout_s:.0f} s\n" + "\n".join(rows)
                        + _histories(fleet))
        time.sleep(0.05)
    return time.monotonic() - started


def _all_in(fleet: lab.Lab, state: S) -> Callable[[], bool]:
    def check() -> bool:
        hosts = fleet.host_objects()
        return len(hosts) == len(fleet.hosts) and all(
            h.status.provisioning.state == state for h in hosts)
    return check


def test_twenty_mixed_hosts_enroll_inspect_provision_deprovision_delete(fleet: lab.Lab) -> None:
    assert fleet.store is not None
    store = fleet.store
    shard = fleet.shards[0]
    models = {m.name: m for m in shard.models}
    agents = shard.agents
    schemes = [h.scheme for h in fleet.hosts]
    assert schemes.count("ipmi") == 10
    assert schemes.count("redfish-virtualmedia") == 5 and schemes.count("redfish") == 5
    figures: dict[str, float] = {}

    # Enroll -> inspect -> available: inventories come from the emulated servers.
    figures["enroll -> available"] = _wait(fleet, _all_in(fleet, S.AVAILABLE), what="available")
    for key in fleet.keys:
        model = models[key.name]
        hardware = store.get(hwd.HardwareData, key).spec.hardware
        assert hardware is not None
        assert hardware.system_vendor.serial_number == model.inventory.serial
        assert [n.mac for n in hardware.nics] == [n.mac for n in model.inventory.nics]
        host = store.get(bmh.BareMetalHost, key)
        assert host.status.error_type == bmh.ErrorType.NONE
        assert host.status.good_credentials.credentials is not None

    # Provision: the agents download the image and check its sha256 before writing it.
    assert fleet.provision() == 20
    figures["provision -> provisioned"] = _wait(fleet, _all_in(fleet, S.PROVISIONED),
                                                what="provisioned")
    deadline = time.monotonic() + 5  # the last reboot into the OS may still be in POST
    while any(agents.disk(m).os_boots == 0 for m in models.values()) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    for key in fleet.keys:
        model = models[key.name]
        disk = agents.disk(model)
        assert disk.image_url == fleet.image_url
        assert disk.checksum == fleet.image_checksum
        assert disk.size_bytes == fleet.config.image_size_mib * 1024 * 1024
        assert disk.os_boots == 1
        assert model.power is hostmodel.Power.ON
        host = store.get(bmh.BareMetalHost, key)
        assert host.status.provisioning.image.url == fleet.image_url
        assert host.status.powered_on
    assert fleet.images.hits["metalcubed-os.raw"] == 20
    by_name = dict(zip([h.name for h in fleet.hosts], schemes, strict=True))
    vmedia = [m for n, m in models.items() if by_name[n] == "redfish-virtualmedia"]
    network = [m for n, m in models.items() if by_name[n] != "redfish-virtualmedia"]
    # The ramdisk boots from the virtual CD on virtual-media hosts, over the network on the
    # others: once for inspection and deployment with fast track (the engine's default, as
    # Metal3's ironic-image), else once each. At least that, not exactly: while it waits for
    # the agent, the engine boots a host again that it finds off.
    ramdisk_boots = 1 if fleet.engine_config().fast_track else 2
    boots = {m.name: [b.device.value for b in m.boots] for m in models.values()}
    for model in vmedia:
        assert boots[model.name].count("Cd") >= ramdisk_boots, boots
        assert "Pxe" not in boots[model.name], boots
    for model in network:
        assert boots[model.name].count("Pxe") >= ramdisk_boots, boots
        assert "Cd" not in boots[model.name], boots

    # Deprovision: automated cleaning wipes the disks' metadata, the host ends powered off.
    for key in fleet.keys:
        assert fleet.set_image(key, None)
    figures["deprovision -> available"] = _wait(fleet, _all_in(fleet, S.AVAILABLE),
                                                what="deprovisioned")
    for model in models.values():
        assert agents.disk(model).wipes == 1

    # Delete: the finalizer goes once the engine has forgotten the node.
    for key in fleet.keys:
        store.delete(bmh.BareMetalHost, key)

    def gone() -> bool:
        for key in fleet.keys:
            try:
                store.get(bmh.BareMetalHost, key)
                return False
            except outcome.NotFound:
                continue
        return True

    figures["delete -> gone"] = _wait(fleet, gone, what="deleted")
    assert fleet.table.nodes() == []

    warnings = [e for e in fleet.events.latest(1000) if e["type"] == "Warning"]
    assert warnings == []
    stats = fleet.shard_stats()[0]
    assert stats["redfish_requests"] > 0
    summary = ", ".join(f"{k}: {v:.1f}s" for k, v in figures.items())
    print(f"\n20 hosts (5 redfish-virtualmedia, 5 redfish, 10 ipmi): {summary}; "
          f"{fleet.reconciles():.0f} reconciles, {stats['redfish_requests']} Redfish requests, "
          f"{fleet.lookup.heartbeats} heartbeats")
