"""The engine's parts: node table and lookup, config drive, capacity count (the agent's wire
format is tested in test_agent_wire.py)."""


import pytest

from metalcubed.core import clock, ports
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
