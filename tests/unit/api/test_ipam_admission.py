"""IPAM admission: upstream's webhook rules (ip-address-manager internal/webhooks/v1alpha1, with
their messages) and ours (reserved addresses, namePrefix shared between pools), through
`validation.validate_object` and `metalcubed validate`."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from metalcubed.cli import main as cli
from metalcubed.core.api import ipam, validation
from tests.unit.api import capm3_schema

V = ipam.API_VERSION


def pool(spec: dict[str, Any], *, name: str = "p", status: dict[str, Any] | None = None
         ) -> dict[str, Any]:
    doc = {"apiVersion": V, "kind": "IPPool", "metadata": {"name": name, "namespace": "lab"},
           "spec": {"namePrefix": name, **spec}}
    if status is not None:
        doc["status"] = status
    return doc


def errors(doc: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    return [str(e) for e in validation.validate_object(doc, old=old)]


SUBNET = {"pools": [{"subnet": "192.168.0.0/24"}], "gateway": "192.168.0.1"}


def test_upstream_ipam_examples_are_accepted() -> None:
    docs = [d for d in capm3_schema.examples("ipam-ippool") + capm3_schema.examples("capm3-")
            if d.get("apiVersion") == V]
    assert {d["kind"] for d in docs} == {"IPPool", "IPClaim"}
    for doc in docs:
        doc["metadata"]["namespace"] = "metal3"  # the clusterctl variable ${NAMESPACE}
        assert errors(doc) == [], doc["metadata"]["name"]


@pytest.mark.parametrize(("spec", "expected"), [
    ({**SUBNET, "preAllocations": {"a": "192.168.0.5", "b": "192.168.0.5"}},
     'spec.preAllocations[b]: Invalid value: "192.168.0.5": IP address is already '
     'pre-allocated to claim "a"'),
    ({**SUBNET, "preAllocations": {"a": "192.168.0.1"}},
     'spec.preAllocations[a]: Invalid value: "192.168.0.1": is the gateway of the pool and is '
     "never allocated"),
    ({**SUBNET, "preAllocations": {"a": "192.168.0.255"}},
     'spec.preAllocations[a]: Invalid value: "192.168.0.255": is the broadcast address of the '
     "pool and is never allocated"),
    ({"pools": [{"start": "10.0.0.2", "end": "10.0.0.9", "gateway": "10.0.0.3"}],
      "preAllocations": {"a": "10.0.0.3"}},
     'spec.preAllocations[a]: Invalid value: "10.0.0.3": is the gateway of the pool and is '
     "never allocated"),
    ({**SUBNET, "preAllocations": {"a": "10.9.9.9"}},
     'spec.preAllocations: Invalid value: "10.9.9.9": is out of bonds of the pools given'),
    ({**SUBNET, "preAllocations": {"a": "nope"}},
     'spec.preAllocations[a]: Invalid value: "nope": is not a valid IP address'),
    ({"pools": [{"start": "10.0.0.9", "end": "10.0.0.1"}]},
     'spec.pools[0]: Invalid value: "": end IP 10.0.0.1 is before start IP 10.0.0.9'),
    ({"pools": [{"prefix": 24}]},
     'spec.pools[0]: Invalid value: "": pool entry must specify at least one of start, end, or '
     "subnet"),
    ({"pools": [{"start": "10.0.0.1"}], "allocationStrategy": "random"},
     'spec.pools[0]: Invalid value: "": cannot be used with allocationStrategy "random": pool '
     "with Start requires End or Subnet to determine size"),
    ({"pools": [{"subnet": "10.0.0.0/24", "gateway": "10.0.0.x"}]},
     'spec.pools[0].gateway: Invalid value: "10.0.0.x": is not a valid IP address'),
    ({"pools": [{"subnet": "10.0.0.0/24"}], "dnsServers": ["8.8.8.8", "bad"]},
     'spec.dnsServers[1]: Invalid value: "bad": is not a valid IP address'),
], ids=["duplicate-preallocation", "gateway", "broadcast", "range-gateway", "out-of-bounds",
        "not-an-ip", "end-before-start", "empty-range", "random-unbounded", "range-gateway-ip",
        "dns"])
def test_ippool_create_rules(spec: dict[str, Any], expected: str) -> None:
    assert errors(pool(spec)) == [expected]


def test_ippool_update_rules_keep_the_prefix_strategy_and_allocations() -> None:
    old = pool({"pools": [{"subnet": "10.0.0.0/24"}]},
               status={"indexes": {"claim-a": "10.0.0.7"}})
    new = pool({"pools": [{"subnet": "10.0.1.0/24"}], "allocationStrategy": "random"})
    new["spec"]["namePrefix"] = "other"
    assert errors(new, old=old) == [
        'spec.namePrefix: Invalid value: "other": cannot be modified',
        'spec.allocationStrategy: Invalid value: "random": cannot be modified after creation',
        'spec.pools: Invalid value: "10.0.0.7": is in use but out of bounds of the pools given',
    ]


def test_ipclaim_rules() -> None:
    claim = {"apiVersion": V, "kind": "IPClaim", "metadata": {"name": "c",
                                                           "annotations": {"ipAddress": "x"}},
             "spec": {"pool": {"name": ""}}}
    assert errors(claim) == [
        'spec.pool.name: Invalid value: "": cannot be empty',
        'metadata.annotations.ipAddress: Invalid value: "x": is not a valid IP address',
    ]
    good = {**claim, "metadata": {"name": "c"}, "spec": {"pool": {"name": "p"}}}
    moved = {**good, "spec": {"pool": {"name": "q"}}}
    assert errors(good) == []
    assert errors(moved, old=good) == ["spec.pool: Invalid value: cannot be modified"]


def test_ipaddress_rules() -> None:
    address = {"apiVersion": V, "kind": "IPAddress", "metadata": {"name": "p-10-0-0-1"},
               "spec": {"address": "10.0.0.1", "pool": {"name": "p"}, "claim": {"name": "c"}}}
    assert errors(address) == []
    assert errors({**address, "spec": {**address["spec"], "address": "10.0.0.256"}}) == [
        'spec.address: Invalid value: "10.0.0.256": is not a valid IP address']
    changed = {**address, "spec": {**address["spec"], "address": "10.0.0.2"}}
    assert errors(changed, old=address) == [
        'spec.address: Invalid value: "10.0.0.2": cannot be modified']


def test_pools_sharing_a_name_prefix_in_one_namespace_conflict() -> None:
    docs = [pool(SUBNET, name="a"), pool(SUBNET, name="b"), pool(SUBNET, name="c")]
    docs[1]["spec"]["namePrefix"] = "a"
    docs[2]["spec"]["namePrefix"] = "a"
    docs[2]["metadata"]["namespace"] = "elsewhere"  # other namespace: no conflict
    found = ipam.cross_check([{"kind": "Secret"}, *docs])
    assert [(position, str(e)) for position, e in found] == [
        (2, 'spec.namePrefix: Invalid value: "a": is already used by IPPool "a" in this '
            "namespace: the pools' IPAddress names would collide")]


def test_metalcubed_validate_reports_a_shared_prefix_across_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(yaml.safe_dump(pool(SUBNET, name="a")))
    other = pool(SUBNET, name="b")
    other["spec"]["namePrefix"] = "a"
    second.write_text(yaml.safe_dump_all([{"apiVersion": "v1", "kind": "Secret",
                                           "metadata": {"name": "s"}}, other]))
    assert cli.main(["validate", str(first), str(second)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [f'{second}:2: spec.namePrefix: Invalid value: "a": is already used by IPPool '
                   "\"a\" in this namespace: the pools' IPAddress names would collide"]


def test_address_name_is_upstreams() -> None:
    assert ipam.address_name("pool1-prov", "192.168.0.10") == "pool1-prov-192-168-0-10"
    assert ipam.address_name("p", "2001:db8::") == "p-2001-db8"
