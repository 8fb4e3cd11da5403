"""Rendering Metal3DataTemplates (core/datatemplate.py): every metaData and networkData source,
upstream's example template, the pool references, and bad input naming the template field."""

import pathlib

import pytest
import yaml

from metalcubed.core import datatemplate as dt
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import capi, hardwaredata, meta
from metalcubed.core.api.capm3 import conversion
from metalcubed.core.api.capm3 import v1beta2 as v2

NS = "lab"
EXAMPLES = pathlib.Path(__file__).parents[1] / "api" / "upstream" / "examples"


def _objects(*, index: int = 2) -> dt.Objects:
    host = bmh.BareMetalHost(
        metadata=meta.ObjectMeta(name="host-0", namespace=NS, labels={"rack": "r1"},
                                 annotations={"pool": "pool1", "mac": "52:54:00:aa:bb:cc"}),
        spec=bmh.BareMetalHostSpec(online=True, boot_mac_address="52:54:00:00:00:01"))
    host = host.model_copy(update={"status": host.status.model_copy(update={
        "hardware": hardwaredata.HardwareDetails(nics=(
            hardwaredata.NIC(name="eth0", mac="52:54:00:00:00:01"),
            hardwaredata.NIC(name="eth1", mac="52:54:00:00:00:02")))})})
    m3m = v2.Metal3Machine(metadata=meta.ObjectMeta(name="m3m-0", namespace=NS,
                                                    labels={"role": "worker"},
                                                    annotations={"note": "hello"}))
    machine = capi.Machine(metadata=meta.ObjectMeta(name="machine-0", namespace=NS,
                                                    labels={"pool-label": "x"}))
    return dt.Objects(namespace=NS, index=index, metal3machine=m3m, machine=machine, host=host)


ADDRESSES = {
    "pool1": dt.PoolAddress(address="192.168.111.20", prefix=24, gateway="192.168.111.1",
                            dns_servers=("192.168.111.2", "192.168.111.3")),
    "pool6": dt.PoolAddress(address="fd55::20", prefix=64, gateway="fd55::1"),
}


def _spec(doc: dict[str, object]) -> v2.Metal3DataTemplateSpec:
    return v2.Metal3DataTemplateSpec.model_validate(doc)


def test_every_metadata_source_renders_in_upstreams_order() -> None:
    spec = _spec({"metaData": {
        "fromHostInterfaces": [{"key": "mac", "interface": "eth1"},
                               {"key": "boot", "fromBootMAC": True}],
        "ipAddressesFromPool": [{"key": "ip", "name": "pool1"}],
        "prefixesFromPool": [{"key": "prefix", "name": "pool1"}],
        "gatewaysFromPool": [{"key": "gw", "name": "pool1"}],
        "dnsServersFromPool": [{"key": "dns", "name": "pool1"}],
        "indexes": [{"key": "i", "offset": 5, "step": 2, "prefix": "n-", "suffix": "-z"},
                    {"key": "plain"}],
        "namespaces": [{"key": "ns"}],
        "objectNames": [{"key": "m", "object": "machine"}, {"key": "m3", "object": "metal3machine"},
                        {"key": "h", "object": "baremetalhost"}],
        "fromLabels": [{"key": "rack", "object": "baremetalhost", "label": "rack"},
                       {"key": "missing", "object": "machine", "label": "nope"}],
        "fromAnnotations": [{"key": "note", "object": "metal3machine", "annotation": "note"}],
        # a later source overwrites an earlier key, as upstream's map does
        "strings": [{"key": "s", "value": "v"}, {"key": "ns", "value": "overwritten"}],
    }})
    got = dt.meta_data(spec, _objects(), ADDRESSES)
    assert got == {
        "mac": "52:54:00:00:00:02", "boot": "52:54:00:00:00:01", "ip": "192.168.111.20",
        "prefix": "24", "gw": "192.168.111.1", "i": "n-9-z", "plain": "2",
        "ns": "overwritten", "m": "machine-0", "m3": "m3m-0", "h": "host-0", "rack": "r1",
        "missing": "", "note": "hello", "s": "v", "providerid": f"{NS}/host-0/m3m-0"}
    assert "dns" not in got  # upstream renders no key for dnsServersFromPool


def test_network_data_links_networks_routes_and_services() -> None:
    spec = _spec({"networkData": {
        "links": {
            "ethernets": [{"type": "phy", "id": "enp1s0", "name": "nic0",
                           "macAddress": {"fromHostInterface": "eth0"}}],
            "bonds": [{"id": "bond0", "bondMode": "802.3ad", "bondLinks": ["enp1s0"],
                       "mtu": 9000, "macAddress": {"string": "52:54:00:00:00:09"},
                       "parameters": [{"name": "miimon", "value": {"v": 100}}]}],
            "vlans": [{"id": "vlan5", "vlanID": 5, "vlanLink": "bond0",
                       "macAddress": {"fromAnnotation": {"object": "baremetalhost",
                                                         "annotation": "mac"}}}]},
        "networks": {
            "ipv4": [{"id": "public", "link": "bond0", "ipAddressFromIPPool": "pool1",
                      "routes": [{"network": "0.0.0.0", "prefix": 0,
                                  "gateway": {"fromIPPool": "pool1"},
                                  "services": {"dns": ["8.8.8.8"],
                                               "dnsFromIPPool": "pool1"}}]}],
            "ipv6": [{"id": "v6", "link": "bond0",
                      "fromPoolRef": {"name": "pool6"},
                      "routes": [{"network": "::", "prefix": 0,
                                  "gateway": {"string": "fd55::fe"}}]}],
            "ipv4DHCP": [{"id": "prov", "link": "enp1s0"}],
            "ipv6DHCP": [{"id": "d6", "link": "enp1s0"}],
            "ipv6SLAAC": [{"id": "s6", "link": "enp1s0"}]},
        "services": {"dns": ["1.1.1.1"], "dnsFromIPPool": "pool1"},
    }})
    got = dt.network_data(spec, _objects(), ADDRESSES)
    assert got is not None
    assert got["links"] == [
        {"type": "bond", "id": "bond0", "mtu": 9000, "bond_mode": "802.3ad",
         "bond_xmit_hash_policy": "", "bond_links": ["enp1s0"],
         "ethernet_mac_address": "52:54:00:00:00:09", "bond_miimon": {"v": 100}},
        {"type": "phy", "id": "enp1s0", "mtu": 1500, "name": "nic0",
         "ethernet_mac_address": "52:54:00:00:00:01"},
        {"type": "vlan", "id": "vlan5", "mtu": 1500, "vlan_link": "bond0", "vlan_id": 5,
         "vlan_mac_address": "52:54:00:aa:bb:cc"}]
    v4, v6, *dynamic = got["networks"]
    assert v4 == {"type": "ipv4", "id": "public", "link": "bond0", "netmask": "255.255.255.0",
                  "ip_address": "192.168.111.20", "routes": [
                      {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.168.111.1",
                       "services": [{"type": "dns", "address": "8.8.8.8"},
                                    {"type": "dns", "address": "192.168.111.2"},
                                    {"type": "dns", "address": "192.168.111.3"}]}]}
    assert (v6["netmask"], v6["ip_address"], v6["routes"][0]["gateway"]) == (
        "ffff:ffff:ffff:ffff::", "fd55::20", "fd55::fe")
    assert [(d["type"], d["id"]) for d in dynamic] == [
        ("ipv4_dhcp", "prov"), ("ipv6_dhcp", "d6"), ("ipv6_slaac", "s6")]
    assert got["services"] == [{"type": "dns", "address": "1.1.1.1"},
                               {"type": "dns", "address": "192.168.111.2"},
                               {"type": "dns", "address": "192.168.111.3"}]
    assert yaml.safe_load(dt.to_yaml(got)) == got


def test_referenced_pools_cover_every_source_and_default_to_metal3() -> None:
    spec = _spec({
        "metaData": {"ipAddressesFromPool": [{"key": "a", "name": "m1"}],
                     "dnsServersFromPool": [{"key": "d", "name": "m2"}]},
        "networkData": {"networks": {
            "ipv4": [{"id": "n", "link": "l", "fromPoolAnnotation": {
                "object": "baremetalhost", "annotation": "pool"},
                "routes": [{"network": "0.0.0.0", "gateway": {"fromPoolRef": {
                    "name": "incluster", "kind": "InClusterIPPool",
                    "apiGroup": "ipam.cluster.x-k8s.io"}},
                    "services": {"dnsFromIPPool": "m3"}}]}],
            "ipv4DHCP": [{"id": "d", "link": "l", "routes": [
                {"network": "10.0.0.0", "gateway": {"fromIPPool": "m4"}}]}]},
            "services": {"dnsFromIPPool": "m5"}}})
    pools = dt.referenced_pools(spec, _objects())
    assert sorted(pools) == ["incluster", "m1", "m2", "m3", "m4", "m5", "pool1"]
    assert [n for n, r in pools.items() if not r.metal3] == ["incluster"]
    # without the objects (release), a pool named only by an annotation is not known
    assert "pool1" not in dt.referenced_pools(spec)


def test_one_pool_name_as_two_kinds_is_refused() -> None:
    spec = _spec({"metaData": {"ipAddressesFromPool": [{"key": "a", "name": "p"}]},
                  "networkData": {"networks": {"ipv4": [{
                      "id": "n", "link": "l",
                      "fromPoolRef": {"name": "p", "kind": "InClusterIPPool",
                                      "apiGroup": "ipam.cluster.x-k8s.io"}}]}}})
    with pytest.raises(dt.RenderError, match="different resource types") as err:
        dt.referenced_pools(spec, _objects())
    assert err.value.field == "spec.networkData.networks.ipv4[0].fromPoolRef"


@pytest.mark.parametrize(("doc", "field", "text"), [
    ({"metaData": {"fromHostInterfaces": [{"key": "m", "interface": "eth9"}]}},
     "spec.metaData.fromHostInterfaces[0]", "no NIC named 'eth9'"),
    ({"metaData": {"ipAddressesFromPool": [{"key": "a", "name": "gone"}]}},
     "spec.metaData.ipAddressesFromPool[0]", "no address from pool 'gone'"),
    ({"networkData": {"links": {"ethernets": [{"type": "phy", "id": "e",
                                               "macAddress": {"string": "not-a-mac"}}]}}},
     "spec.networkData.links.ethernets[0].macAddress", "bad MAC address"),
    ({"networkData": {"links": {"bonds": [{"id": "b", "bondMode": "balance-rr",
                                           "macAddress": {"string": "52:54:00:00:00:09"},
                                           "parameters": [{"name": "mode"}]}]}}},
     "spec.networkData.links.bonds[0].parameters", 'illegal params "mode"'),
    ({"networkData": {"networks": {"ipv4": [{"id": "n", "link": "l", "fromPoolAnnotation": {
        "object": "machine", "annotation": "nope"}}]}}},
     "spec.networkData.networks.ipv4[0].fromPoolAnnotation", "not found or empty"),
], ids=["missing-nic", "unknown-pool", "bad-mac", "bond-param-overrides", "empty-annotation"])
def test_bad_input_names_the_template_field(doc: dict[str, object], field: str,
                                            text: str) -> None:
    spec = _spec(doc)
    with pytest.raises(dt.RenderError) as err:
        dt.meta_data(spec, _objects(), ADDRESSES)
        dt.network_data(spec, _objects(), ADDRESSES)
    assert err.value.field == field
    assert text in str(err.value)


def test_an_uninspected_host_is_named_as_the_cause() -> None:
    objs = _objects()
    assert objs.host is not None
    bare = objs.host.model_copy(update={"status": objs.host.status.model_copy(
        update={"hardware": None})})
    spec = _spec({"metaData": {"fromHostInterfaces": [{"key": "m", "interface": "eth0"}]}})
    with pytest.raises(dt.RenderError, match="not inspected yet"):
        dt.meta_data(spec, dt.Objects(namespace=NS, index=0, metal3machine=objs.metal3machine,
                                      machine=objs.machine, host=bare), ADDRESSES)


def test_upstreams_example_template_renders_after_conversion() -> None:
    """examples/capm3-cluster.yaml's v1beta1 control-plane template (ipAddressesFromIPPool etc.),
    converted to v1beta2 as the API server stores it."""
    doc = next(d for d in yaml.safe_load_all((EXAMPLES / "capm3-cluster.yaml").read_text())
               if d and d["kind"] == "Metal3DataTemplate")
    doc["spec"]["clusterName"] = "c1"
    stored = v2.Metal3DataTemplate.from_wire(conversion.convert(doc, v2.API_VERSION))
    assert stored.spec is not None
    pools = dt.referenced_pools(stored.spec, _objects())
    assert set(pools) == {"pool1", "pool2", "pool6-1", "pool6-2"}
    addresses = {name: ADDRESSES["pool6" if "6" in name else "pool1"] for name in pools}
    md = dt.meta_data(stored.spec, _objects(index=1), addresses)
    assert md is not None
    assert (md["abc"], md["index_0_1"], md["index_3"], md["index_5_2"]) == ("def", "1", "4", "7")
    assert (md["machine_name"], md["bmh_name"], md["mac"]) == (
        "machine-0", "host-0", "52:54:00:00:00:01")
    assert (md["ip6_1"], md["prefix6_1"], md["gateway_1"]) == ("fd55::20", "64", "192.168.111.1")
    nd = dt.network_data(stored.spec, _objects(), addresses)
    assert nd is not None
    assert [n["type"] for n in nd["networks"]] == ["ipv4", "ipv4_dhcp"]
    assert nd["services"] == [{"type": "dns", "address": "8.8.8.8"}]
