"""IPAM pool arithmetic, upstream's utils.go semantics: the index-th address, pool size, bounds."""

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
