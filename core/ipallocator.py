"""Choosing an address for an IPClaim: upstream IPAM's `allocateAddress`, without its holes.

Pure: the pool's spec, the claim's name and requested address, and the addresses in use in, one
answer (or an AllocationError with upstream's message) out.

As upstream (ip-address-manager 1f5fa681, ipam/ippool_manager.go):
- ranges are tried in declaration order; one is exhausted before the next is tried;
- a pre-allocation (`spec.preAllocations[claim]`) or a requested address (annotation
  `ipAddress`) is given if it lies in a range and is free; both set and different is an error;
- otherwise `sequential` takes the first free address of the range, `random` starts at a random
  offset (the injected rng) and wraps;
- prefix, gateway and DNS servers come from the range when it sets them, else from the pool.
Unlike upstream:
- a range with a subnet and no prefix set anywhere gives the subnet's prefix length (upstream
  gives 0, which renders as a netmask of 0.0.0.0);
- the gateway (the range's, else the pool's) and a subnet's network and broadcast addresses are
  never given (upstream hands out the broadcast, and the gateway unless pre-allocated elsewhere);
- other claims' pre-allocations are reserved for them, whether or not those claims exist yet;
- a pre-allocated or requested address is checked by bounds, not by scanning the range index by
  index (same answer, O(1) instead of O(range)).
"""

import ipaddress
import random
from collections.abc import Mapping
from dataclasses import dataclass

from metalcubed.core.api import ipam


class AllocationError(ValueError):
    """No address for this claim now; `message` is upstream's text for the claim's status."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


EXHAUSTED = "Exhausted IP Pools"
REQUESTED_NOT_AVAILABLE = "Requested IP not available"
PREALLOCATED_OUT_OF_BOUNDS = "Pre-allocated IP out of bounds"
CONFLICTING = "PreAllocation and requested ip address are conflicting"


@dataclass(frozen=True, slots=True, kw_only=True)
class Allocation:
    address: ipam.IP
    prefix: int | None
    gateway: str | None
    dns_servers: tuple[str, ...]


def _subnet_prefix(pool: ipam.Pool) -> int | None:
    if pool.subnet is None:
        return None
    try:
        return ipaddress.ip_network(pool.subnet, strict=False).prefixlen
    except ValueError:
        return None


def _result(spec: ipam.IPPoolSpec, pool: ipam.Pool, address: ipam.IP) -> Allocation:
    return Allocation(
        address=address,
        prefix=pool.prefix or spec.prefix or _subnet_prefix(pool),
        gateway=pool.gateway or spec.gateway,
        dns_servers=tuple(pool.dns_servers or spec.dns_servers or ()),
    )


def allocate(
    spec: ipam.IPPoolSpec,
    *,
    claim: str,
    requested: str | None,
    in_use: Mapping[ipam.IP, str],
    rng: random.Random,
    owner: str | None = None,
) -> Allocation:
    """An address for `claim`. `in_use` maps every taken address to its holder: `owner` for
    this claim (default: the claim's name; the pool passes "<kind>/<name>" so that an IPClaim
    and a CAPI IPAddressClaim of the same name never share an address, as they do upstream).
    Pre-allocations are looked up by the claim's name.

    Raises AllocationError (EXHAUSTED, REQUESTED_NOT_AVAILABLE, PREALLOCATED_OUT_OF_BOUNDS,
    CONFLICTING, or "invalid requested IP address ...").
    """
    pre_text = (spec.pre_allocations or {}).get(claim)
    pre = ipam.parse_ip(pre_text) if pre_text else None
    wanted = ipam.parse_ip(requested) if requested else None
    if requested and wanted is None:
        raise AllocationError(f"invalid requested IP address {requested}")
    if pre is not None and wanted is not None and pre != wanted:
        raise AllocationError(CONFLICTING)
    holder = owner if owner is not None else claim
    taken = dict(in_use)
    for name, text in (spec.pre_allocations or {}).items():
        ip = ipam.parse_ip(text)
        if ip is not None and name != claim:
            taken.setdefault(ip, f"pre-allocated:{name}")  # reserved for its claim
    target = pre or wanted
    for pool in spec.pools or ():
        reserved = ipam.reserved(spec, pool)
        if target is not None:
            if (ipam.in_bounds(pool, target) and _in_range(pool, target)
                    and target not in reserved and taken.get(target, holder) == holder):
                return _result(spec, pool, target)
            continue
        found = _scan(pool, reserved, taken, holder, spec.allocation_strategy, rng)
        if found is not None:
            return _result(spec, pool, found)
    if pre is not None:
        raise AllocationError(PREALLOCATED_OUT_OF_BOUNDS if not any(
            ipam.in_bounds(p, pre) for p in spec.pools or ()) else REQUESTED_NOT_AVAILABLE)
    if wanted is not None:
        raise AllocationError(REQUESTED_NOT_AVAILABLE)
    raise AllocationError(EXHAUSTED)


def _in_range(pool: ipam.Pool, ip: ipam.IP) -> bool:
    """Whether `address_at` can yield `ip`: a subnet-only range starts after the network."""
    if pool.start is None and pool.subnet is not None:
        try:
            first = ipam.address_at(pool, 0)
        except ipam.PoolError:
            return False
        return int(ip) >= int(first) and type(ip) is type(first)
    return pool.start is not None


def _scan(pool: ipam.Pool, reserved: set[ipam.IP], taken: Mapping[ipam.IP, str], claim: str,
          strategy: ipam.AllocationStrategy, rng: random.Random) -> ipam.IP | None:
    try:
        size = ipam.pool_size(pool)
    except ipam.PoolError:
        size = None  # start without end or subnet: sequential only, until address_at fails
    first = 0
    if strategy is ipam.AllocationStrategy.RANDOM and size:
        first = rng.randrange(size)
    index = 0
    while size is None or index < size:
        offset = (first + index) % size if size else index
        try:
            ip = ipam.address_at(pool, offset)
        except ipam.PoolError:
            return None
        if ip not in reserved and taken.get(ip, claim) == claim:
            return ip
        index += 1
    return None
