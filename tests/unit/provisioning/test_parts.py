"""The engine's parts: node table and lookup, config drive, capacity count, agent payloads."""

import json

import pytest

from metalcubed.controllers import agent_client
from metalcubed.core import agent, clock, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta
from metalcubed.core.provisioning import capacity, configdrive, nodes

KEY = meta.ObjectKey("metal3", "host-0")


def node(node_id: str, *, macs: tuple[str, ...] = (), bmc: str = "") -> nodes.Node:
    return nodes.Node(node_id=node_id, name=node_id, bmc_address=bmc, macs=macs)


# --- node table ----------------------------------------------------------------------------------


def test_node_ids_are_stable_uuids() -> None:
    assert nodes.node_id_for(KEY) == nodes.node_id_for(meta.ObjectKey("metal3", "host-0"))
    assert nodes.node_id_for(KEY) != nodes.node_id_for(meta.ObjectKey("other", "host-0"))
    assert len(nodes.node_id_for(KEY)) == 36


@pytest.mark.parametrize(
    ("address", "identity"),
    [
        ("ipmi://10.0.0.1", "10.0.0.1:623"),
        ("10.0.0.1:6230", "10.0.0.1:6230"),
        ("redfish+http://BMC.example:8000/redfish/v1/Systems/1", "bmc.example:8000"),
        ("redfish-virtualmedia://[fd00::1]/redfish/v1/Systems/1", "[fd00::1]:443"),
    ],
)
def test_bmc_identity(address: str, identity: str) -> None:
    assert nodes.bmc_identity(address) == identity


def test_lookup_by_mac_wins_and_bmc_address_must_be_unique() -> None:
    table = nodes.NodeTable(clock=clock.ManualClock())
    table.put(node("a", macs=("52:54:00:AA:00:01",), bmc="127.0.0.1:8000"))
    table.put(node("b", macs=("52:54:00:aa:00:02",), bmc="127.0.0.1:8000"))
    table.put(node("c", bmc="127.0.0.1:6230"))
    assert table.lookup(["52-54-00-aa-00-02"], "127.0.0.1:8000") == "b"
    assert table.lookup(["ff:ff:ff:ff:ff:ff"], "127.0.0.1:8000") is None  # two nodes share it
    assert table.lookup([], "127.0.0.1:6230") == "c"
    assert table.lookup([], "") is None


def test_heartbeats_need_a_known_node_and_expire() -> None:
    now = clock.ManualClock()
    table = nodes.NodeTable(clock=now, agent_timeout_s=30)
    assert not table.heartbeat("a", url="http://127.0.0.1:1/agents/x", boot_id="x")
    table.put(node("a"))
    assert table.heartbeat("a", url="http://127.0.0.1:1/agents/x", boot_id="x")
    endpoint = table.agent("a")
    assert endpoint is not None and endpoint.boot_id == "x" and endpoint.heartbeat_at == now.now()
    now.advance(31)
    assert table.agent("a") is None
    table.heartbeat("a", url="http://127.0.0.1:1/agents/y", boot_id="y")
    table.delete("a")
    assert table.agent("a") is None and table.get("a") is None
    table.delete("a")  # idempotent


# --- config drive --------------------------------------------------------------------------------


def test_config_drive_generates_meta_data_by_default() -> None:
    drive = configdrive.build(ports.HostConfig(user_data="#cloud-config\n"), node_id="n1",
                              key=KEY)
    assert drive.user_data == "#cloud-config\n" and drive.network_data == ""
    assert drive.meta_data == {
        "uuid": "n1", "metal3-namespace": "metal3", "metal3-name": "host-0",
        "local-hostname": "host-0", "local_hostname": "host-0", "name": "host-0",
    }


def test_config_drive_takes_a_yaml_meta_data_mapping() -> None:
    drive = configdrive.build(
        ports.HostConfig(meta_data="local-hostname: node-7\nproviderid: m3://x\nn: 3\n"),
        node_id="n1", key=KEY,
    )
    assert drive.meta_data == {"local-hostname": "node-7", "providerid": "m3://x", "n": "3"}


def test_config_drive_keeps_unstructured_meta_data_text() -> None:
    drive = configdrive.build(ports.HostConfig(meta_data="[not: a mapping"), node_id="n1",
                              key=KEY)
    assert drive.meta_data["metaData"] == "[not: a mapping"
    assert drive.meta_data["uuid"] == "n1"


# --- capacity ------------------------------------------------------------------------------------


def host(name: str, address: str, state: bmh.ProvisioningState) -> bmh.BareMetalHost:
    return bmh.BareMetalHost(
        metadata=meta.ObjectMeta(name=name, namespace="metal3"),
        spec=bmh.BareMetalHostSpec(online=True, bmc=bmh.BMCDetails(address=address,
                                                                  credentials_name="c")),
        status=bmh.BareMetalHostStatus(
            provisioning=bmh.ProvisionStatus(state=state)
        ),
    )


def test_busy_hosts_are_pxe_hosts_in_busy_states() -> None:
    S = bmh.ProvisioningState
    hosts = [
        host("pxe-inspecting", "ipmi://10.0.0.1", S.INSPECTING),
        host("pxe-cleaning", "redfish://10.0.0.2/redfish/v1/Systems/1", S.DEPROVISIONING),
        host("pxe-idle", "ipmi://10.0.0.3", S.AVAILABLE),
        host("vmedia-busy", "redfish-virtualmedia://10.0.0.4/redfish/v1/Systems/1",
             S.PROVISIONING),
        host("bad-address", "nope://x", S.PROVISIONING),
    ]
    assert {k.name for k in capacity.busy_hosts(hosts)} == {"pxe-inspecting", "pxe-cleaning"}


# --- agent payloads ------------------------------------------------------------------------------


def test_write_image_params_round_trip() -> None:
    image = agent.ImageWrite(
        url="http://i/os.raw", checksum="ab" * 32, checksum_type="sha256", disk_format="raw",
        root_device=bmh.RootDeviceHints(device_name="/dev/sdb", rotational=False),
        config_drive=agent.ConfigDrive(user_data="u", network_data="n", meta_data={"a": "b"}),
    )
    params = json.loads(json.dumps(agent_client.write_image_params(image)))
    assert params["image_info"]["root_device"] == {"deviceName": "/dev/sdb", "rotational": False}
    assert agent_client.parse_write_image_params(params) == image


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"image_info": {"urls": []}},
        {"image_info": {"urls": ["http://i"], "os_hash_value": 7}},
        {"image_info": {"urls": ["http://i"], "root_device": {"minSizeGigabytes": -1}}},
        {"image_info": {"urls": ["http://i"]}, "configdrive": "x"},
    ],
    ids=["empty", "no-url", "checksum-not-text", "bad-hints", "configdrive-not-object"],
)
def test_bad_write_image_params_are_refused(params: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        agent_client.parse_write_image_params(params)


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"boot_id": 3, "version": "v"},
        {"boot_id": "b", "version": "v", "command": {"id": "1", "command_name": "rm -rf",
                                                   "command_status": "RUNNING"}},
        {"boot_id": "b", "version": "v", "command": {"id": "1", "command_status": "DONE",
                                                   "command_name": "standby.write_image"}},
        {"boot_id": "b", "version": "v", "command": {"id": 1, "command_status": "RUNNING",
                                                   "command_name": "standby.write_image"}},
    ],
    ids=["not-object", "boot-id-not-text", "unknown-command", "unknown-status", "bad-id"],
)
def test_hostile_status_documents_are_agent_errors(body: object) -> None:
    with pytest.raises(agent.AgentError) as err:
        agent_client.parse_status(body, url="http://127.0.0.1:9/agents/a")
    assert "http://127.0.0.1:9/agents/a" in str(err.value) and "get status" in str(err.value)


@pytest.mark.parametrize(
    "body",
    [
        {"inventory": []},
        {"inventory": {"interfaces": [{"mac_address": "not-a-mac"}]}},
        {"inventory": {"disks": [{"size": 1}]}},
        {"inventory": {"memory": {"physical_mb": "lots"}}},
        {"inventory": {"cpu": {"flags": 7}}},
    ],
    ids=["not-object", "bad-mac", "disk-without-name", "bad-ram", "bad-flags"],
)
def test_hostile_inventories_are_agent_errors(body: object) -> None:
    with pytest.raises(agent.AgentError, match="get inventory"):
        agent_client.parse_inventory(body, url="http://127.0.0.1:9/agents/a")


def test_inventory_maps_to_hardware_details() -> None:
    details = agent_client.parse_inventory({"inventory": {
        "interfaces": [{"name": "eno1", "mac_address": "52:54:00:00:00:11", "speed_mbps": 25000,
                        "product": "0x8086 0x158b", "ipv4_address": "192.0.2.7"}],
        "cpu": {"model_name": "Xeon", "frequency": 3200, "count": 64, "architecture": "x86_64",
                "flags": ["vmx"]},
        "memory": {"physical_mb": 131072},
        "disks": [{"name": "/dev/nvme0n1", "size": 10**12, "rotational": False,
                   "by_path": "/dev/disk/by-path/pci-0000:01:00.0-nvme-1"}],
        "system_vendor": {"manufacturer": "M3", "product_name": "P", "serial_number": "S",
                          "firmware": {"vendor": "F", "version": "1", "build_date": "d"}},
        "boot": {"pxe_interface": "52:54:00:00:00:11"},
        "hostname": "h",
    }}, url="u")
    assert details.nics[0].pxe and details.nics[0].speed_gbps == 25
    assert details.nics[0].ip == "192.0.2.7"
    disk = details.storage[0]
    assert disk.name.startswith("/dev/disk/by-path/") and disk.alternate_names == ("/dev/nvme0n1",)
    assert disk.type is not None and disk.type.value == "NVME"
    assert details.cpu.count == 64 and details.ram_mebibytes == 131072
    assert details.firmware.bios.version == "1" and details.hostname == "h"
