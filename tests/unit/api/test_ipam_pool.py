"""IPAM pool arithmetic, upstream's utils.go semantics: the index-th address, pool size, bounds."""

import ipaddress
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metalcubed.core import ipallocator
from metalcubed.core.api import ipam


@pytest.mark.parametrize(("pool", "index", "address"), [
    (ipam.Pool(start="10.0.0.5", end="10.0.0.9"), 0, "10.0.0.5"),
    (ipam.Pool(start="10.0.0.5", end="10.0.0.9"), 4, "10.0.0.9"),
    (ipam.Pool(subnet="10.0.0.0/30"), 0, "10.0.0.1"),
    (ipam.Pool(subnet="10.0.0.0/30"), 2, "10.0.0.3"),  # the broadcast: upstream hands it out
    (ipam.Pool(start="2001:db8::fe", subnet="2001:db8::/120"), 1, "2001:db8::ff"),
])
def test_address_at_is_upstreams_get_ip_address(pool: ipam.Pool, index: int, address: str) -> None:
    assert str(ipam.address_at(pool, index)) == address


@pytest.mark.parametrize(("pool", "index", "message"), [
    (ipam.Pool(start="10.0.0.5", end="10.0.0.9"), 5, "IP address out of bounds for : 10.0.0.5"),
    (ipam.Pool(subnet="10.0.0.0/30"), 3, "IP address out of bounds"),
    (ipam.Pool(prefix=24), 0, "either Start or Subnet is required for ipAddress"),
    (ipam.Pool(start="255.255.255.255"), 1, "IP address overflow for : 255.255.255.255"),
])
def test_address_at_out_of_range_is_upstreams_error(pool: ipam.Pool, index: int,
                                                    message: str) -> None:
    with pytest.raises(ipam.PoolError, match=message):
        ipam.address_at(pool, index)


def _ranges() -> st.SearchStrategy[ipam.Pool]:
    base = st.integers(0, 2**32 - 300).map(ipaddress.IPv4Address)
    by_end = st.tuples(base, st.integers(0, 200)).map(
        lambda t: ipam.Pool(start=str(t[0]), end=str(t[0] + t[1])))
    by_subnet = st.tuples(base, st.integers(24, 30)).map(
        lambda t: ipam.Pool(subnet=str(ipaddress.ip_network(f"{t[0]}/{t[1]}", strict=False))))
    return st.one_of(by_end, by_subnet)


@given(_ranges())
def test_pool_size_addresses_are_exactly_those_in_bounds(pool: ipam.Pool) -> None:
    size = ipam.pool_size(pool)
    addresses = [ipam.address_at(pool, i) for i in range(size)]
    assert len(set(addresses)) == size
    assert all(ipam.in_bounds(pool, a) for a in addresses)
    with pytest.raises(ipam.PoolError):
        ipam.address_at(pool, size)


def test_reserved_addresses_are_the_gateway_network_and_broadcast() -> None:
    spec = ipam.IPPoolSpec(name_prefix="p", gateway="10.0.0.1")
    assert ipam.reserved(spec, ipam.Pool(subnet="10.0.0.0/24")) == {
        ipaddress.ip_address(a) for a in ("10.0.0.1", "10.0.0.0", "10.0.0.255")}
    assert ipam.reserved(spec, ipam.Pool(start="10.0.0.5", end="10.0.0.9", gateway="10.0.0.6")
                         ) == {ipaddress.ip_address("10.0.0.6")}
    assert ipam.reserved(spec, ipam.Pool(subnet="10.0.0.0/31")) == {
        ipaddress.ip_address("10.0.0.1")}  # point-to-point: both addresses usable


@pytest.mark.parametrize(("pre", "requested", "message"), [
    ({"c": "10.0.0.3"}, "10.0.0.4", ipallocator.CONFLICTING),
    ({"c": "10.9.0.3"}, None, ipallocator.PREALLOCATED_OUT_OF_BOUNDS),
    ({}, "10.0.0.1", ipallocator.REQUESTED_NOT_AVAILABLE),  # the gateway
    ({}, "10.0.0.x", "invalid requested IP address 10.0.0.x"),
])
def test_allocator_errors_are_upstreams(pre: dict[str, str], requested: str | None,
                                        message: str) -> None:
    spec = ipam.IPPoolSpec(name_prefix="p", gateway="10.0.0.1", pre_allocations=pre,
                           pools=(ipam.Pool(subnet="10.0.0.0/24"),))
    with pytest.raises(ipallocator.AllocationError) as err:
        ipallocator.allocate(spec, claim="c", requested=requested, in_use={},
                             rng=random.Random(0))
    assert err.value.message == message


def test_allocator_takes_range_overrides_and_tries_ranges_in_order() -> None:
    spec = ipam.IPPoolSpec(name_prefix="p", prefix=24, gateway="10.0.0.1",
                           dns_servers=("8.8.8.8",),
                           pools=(ipam.Pool(start="10.0.0.2", end="10.0.0.2"),
                                  ipam.Pool(start="10.0.5.2", end="10.0.5.9", prefix=22,
                                            gateway="10.0.4.1", dns_servers=("1.1.1.1",))))
    first = ipallocator.allocate(spec, claim="a", requested=None, in_use={},
                                 rng=random.Random(0))
    assert (str(first.address), first.prefix, first.gateway, first.dns_servers) == (
        "10.0.0.2", 24, "10.0.0.1", ("8.8.8.8",))
    second = ipallocator.allocate(spec, claim="b", requested=None,
                                  in_use={first.address: "a"}, rng=random.Random(0))
    assert (str(second.address), second.prefix, second.gateway, second.dns_servers) == (
        "10.0.5.2", 22, "10.0.4.1", ("1.1.1.1",))
