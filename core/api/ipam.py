"""Metal3 IPAM's kinds (ipam.metal3.io/v1alpha1): IPPool, IPClaim, IPAddress, and their admission.

Field for field upstream's `api/v1alpha1` (ip-address-manager 1f5fa681); wire names as upstream.
IP strings stay strings in the models (the CRD's patterns check their shape); the admission
rules parse them with `ipaddress`, as upstream's webhook does with Go's net.ParseIP.

Admission (`validate_ippool`, `validate_ipclaim`, `validate_ipaddress`) follows upstream's
webhooks (internal/webhooks/v1alpha1) with their messages, plus what upstream gets wrong:
- a pre-allocation on a pool's gateway, or on its subnet's network or broadcast address, is
  refused (upstream accepts them and then hands such addresses out; capm3.md §4);
- two pools in one namespace may not share a `namePrefix` (`name_prefix_conflicts`): the
  IPAddress name `<namePrefix>-<ip>` is the allocation lock, so a shared prefix makes two pools
  fight over the same names and requeue forever (upstream IPAM #1437). The check needs the other
  pools, so it runs where they are known: `metalcubed validate` over a set of files, the
  webhook with a lister.
Duplicate preAllocation values are refused with upstream's message (IPAM #1440, fixed there).

The pool arithmetic (`address_at`, `pool_size`, `in_bounds`, `check_pool`) is upstream's
`api/v1alpha1/utils.go` semantics on Python's `ipaddress`, shared by admission and the allocator.
"""

import functools
import ipaddress
import json
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import Field

from metalcubed.core import outcome
from metalcubed.core.api import meta, validation
from metalcubed.core.api.meta import OMIT_EMPTY

API_VERSION = "ipam.metal3.io/v1alpha1"
IP_ADDRESS_ANNOTATION = "ipAddress"
"""On an IPClaim: the address the claim asks for."""
POOL_FINALIZER = "ippool.ipam.metal3.io"
CLAIM_FINALIZER = "ipclaim.ipam.metal3.io"
ADDRESS_FINALIZER = "ipaddress.ipam.metal3.io"

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AllocationStrategy(StrEnum):
    SEQUENTIAL = "sequential"
    RANDOM = "random"


class Pool(meta.ApiModel):
    """One range of a pool: start..end, or a subnet (per-range prefix/gateway/DNS override)."""

    start: str | None = None
    end: str | None = None
    subnet: str | None = None
    prefix: int | None = Field(default=None, le=128)
    gateway: str | None = None
    dns_servers: tuple[str, ...] | None = None


class IPPoolSpec(meta.ApiModel):
    cluster_name: str | None = None
    name_prefix: str
    pools: tuple[Pool, ...] | None = None
    prefix: int | None = Field(default=None, le=128)
    gateway: str | None = None
    dns_servers: tuple[str, ...] | None = None
    pre_allocations: dict[str, str] | None = None
    """claim name -> IP it always gets."""
    allocation_strategy: AllocationStrategy = AllocationStrategy.SEQUENTIAL


class IPPoolStatus(meta.ApiModel):
    last_updated: str | None = None
    indexes: dict[str, str] | None = None
    """claim name -> allocated IP (Go field `Allocations`), rebuilt from IPAddress objects."""


class IPPool(meta.Resource):
    """A set of IP ranges that IPClaims draw addresses from."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "IPPool"
    PLURAL: ClassVar[str] = "ippools"

    spec: IPPoolSpec
    status: IPPoolStatus | None = None


class IPClaimSpec(meta.ApiModel):
    pool: meta.ObjectReference


class IPClaimStatus(meta.ApiModel):
    address: meta.ObjectReference | None = None
    error_message: str | None = None


class IPClaim(meta.Resource):
    """A request for one address from a pool (annotation `ipAddress`: a specific one)."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "IPClaim"
    PLURAL: ClassVar[str] = "ipclaims"

    spec: IPClaimSpec
    status: IPClaimStatus | None = None


class IPAddressSpec(meta.ApiModel):
    claim: meta.ObjectReference
    pool: meta.ObjectReference
    address: str
    prefix: int | None = Field(default=None, le=128)
    gateway: str | None = None
    dns_servers: Annotated[tuple[str, ...], OMIT_EMPTY] = ()


class IPAddress(meta.Resource):
    """One allocated address; its name `<namePrefix>-<ip>` is the allocation lock."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "IPAddress"
    PLURAL: ClassVar[str] = "ipaddresses"
    HAS_STATUS: ClassVar[bool] = False

    spec: IPAddressSpec


def address_name(name_prefix: str, address: str) -> str:
    """Upstream's IPAddress name: `<prefix>-<ip with . and : as ->`, trailing `-` trimmed."""
    return f"{name_prefix}-{address.replace('.', '-').replace(':', '-')}".rstrip("-")


# --- pool arithmetic (upstream api/v1alpha1/utils.go) ------------------------------------------


class PoolError(ValueError):
    """A pool range that cannot be used (upstream's error text)."""


@functools.lru_cache(maxsize=65536)
def parse_ip(text: str | None) -> IP | None:
    """An IP address, or None when `text` is not one (net.ParseIP's contract). Cached: a
    pool pass parses the same range bounds and addresses again and again."""
    if not text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def _network(text: str) -> Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError as err:
        raise PoolError(f"invalid Subnet {json.dumps(text)}: {err}") from None


def check_pool(pool: Pool) -> None:
    """Upstream's ValidatePool: parseable start/end/subnet, end not before start."""
    start = parse_ip(pool.start) if pool.start is not None else None
    if pool.start is not None and start is None:
        raise PoolError(f"invalid Start IP {json.dumps(pool.start)}")
    end = parse_ip(pool.end) if pool.end is not None else None
    if pool.end is not None and end is None:
        raise PoolError(f"invalid End IP {json.dumps(pool.end)}")
    if pool.subnet is not None:
        _network(pool.subnet)
    if start is not None and end is not None and _as_v6_int(start) > _as_v6_int(end):
        raise PoolError(f"end IP {end} is before start IP {start}")


def _as_v6_int(ip: IP) -> int:
    """Compare v4 and v6 as Go's To16 does (v4 mapped into ::ffff:0:0/96)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return int(ipaddress.IPv6Address(f"::ffff:{ip}"))
    return int(ip)


def address_at(pool: Pool, index: int) -> IP:
    """The index-th address of a range (upstream's GetIPAddress): start+index (bounded by end
    and subnet), else network+1+index within the subnet. Raises PoolError out of bounds."""
    if pool.start is None and pool.subnet is None:
        raise PoolError("either Start or Subnet is required for ipAddress")
    check_pool(pool)
    if pool.start is not None:
        start = parse_ip(pool.start)
        assert start is not None
        ip = _offset(start, index)
        end = parse_ip(pool.end) if pool.end else None
        if end is not None and _as_v6_int(ip) > _as_v6_int(end):
            raise PoolError(f"IP address out of bounds for : {start}")
        if pool.subnet is not None and ip not in _network(pool.subnet):
            raise PoolError("IP address out of bounds")
        return ip
    net = _network(str(pool.subnet))
    ip = _offset(net.network_address, index + 1)
    if ip not in net:
        raise PoolError("IP address out of bounds")
    return ip


def _offset(ip: IP, offset: int) -> IP:
    value = int(ip) + offset
    limit = (1 << 32) if isinstance(ip, ipaddress.IPv4Address) else (1 << 128)
    if not 0 <= value < limit:
        raise PoolError(f"IP address overflow for : {ip}")
    return type(ip)(value)


def pool_size(pool: Pool) -> int:
    """Addresses in a range (upstream's GetPoolSize): start..end, start..last of subnet, or
    network+1..last of subnet (the broadcast counts, as upstream)."""
    check_pool(pool)
    if pool.start is None and pool.subnet is None:
        raise PoolError("either Start or Subnet is required for ipAddress")
    if pool.start is not None and pool.end is not None:
        start, end = parse_ip(pool.start), parse_ip(pool.end)
        assert start is not None and end is not None
        return _as_v6_int(end) - _as_v6_int(start) + 1
    if pool.start is not None and pool.subnet is not None:
        start = parse_ip(pool.start)
        assert start is not None
        return _as_v6_int(_network(pool.subnet).broadcast_address) - _as_v6_int(start) + 1
    if pool.start is not None:
        raise PoolError("pool with Start requires End or Subnet to determine size")
    net = _network(str(pool.subnet))
    return int(net.broadcast_address) - int(net.network_address)


def in_bounds(pool: Pool, address: IP) -> bool:
    """Within start..end and the subnet, whichever are set (upstream's isAddressInBounds)."""
    if pool.start is None and pool.end is None and pool.subnet is None:
        return False
    start = parse_ip(pool.start)
    end = parse_ip(pool.end)
    if (pool.start is not None and (start is None or _as_v6_int(start) > _as_v6_int(address))) or (
            pool.end is not None and (end is None or _as_v6_int(end) < _as_v6_int(address))):
        return False
    if pool.subnet is not None:
        try:
            return address in ipaddress.ip_network(pool.subnet, strict=False)
        except ValueError:
            return False
    return True


def reserved(spec: IPPoolSpec, pool: Pool) -> set[IP]:
    """Addresses of a range never handed out: its gateway (per-range, else the pool's) and, when
    it has a subnet, the subnet's network and broadcast addresses (IPv4 /30 and wider)."""
    out: set[IP] = set()
    gateway = parse_ip(pool.gateway or spec.gateway)
    if gateway is not None:
        out.add(gateway)
    if pool.subnet is not None:
        try:
            net = ipaddress.ip_network(pool.subnet, strict=False)
        except ValueError:
            return out
        if net.num_addresses > 2:
            out.add(net.network_address)
            if isinstance(net, ipaddress.IPv4Network):
                out.add(net.broadcast_address)
    return out


# --- admission ---------------------------------------------------------------------------------


def _invalid(path: str, value: object, detail: str) -> outcome.SpecError:
    shown = json.dumps(value) if isinstance(value, str) else str(value)
    return outcome.SpecError(path, f"Invalid value: {shown}: {detail}")


def _check_ip(path: str, value: str | None) -> list[outcome.SpecError]:
    if value and parse_ip(value) is None:
        return [_invalid(path, value, "is not a valid IP address")]
    return []


def _pool_ranges(spec: IPPoolSpec) -> list[outcome.SpecError]:
    errors = _check_ip("spec.gateway", spec.gateway)
    for i, dns in enumerate(spec.dns_servers or ()):
        errors += _check_ip(f"spec.dnsServers[{i}]", dns)
    owner: dict[IP, str] = {}
    for name, text in (spec.pre_allocations or {}).items():
        path = f"spec.preAllocations[{name}]"
        ip = parse_ip(text)
        if ip is None:
            errors.append(_invalid(path, text, "is not a valid IP address"))
        elif ip in owner:
            claim = json.dumps(owner[ip])
            errors.append(_invalid(path, text,
                                   f"IP address is already pre-allocated to claim {claim}"))
        else:
            owner[ip] = name
    for i, pool in enumerate(spec.pools or ()):
        path = f"spec.pools[{i}]"
        before = len(errors)
        if pool.start is None and pool.end is None and pool.subnet is None:
            errors.append(_invalid(path, "",
                                   "pool entry must specify at least one of start, end, or subnet"))
            continue
        try:
            check_pool(pool)
        except PoolError as err:
            errors.append(_invalid(path, "", str(err)))
        errors += _check_ip(f"{path}.gateway", pool.gateway)
        for j, dns in enumerate(pool.dns_servers or ()):
            errors += _check_ip(f"{path}.dnsServers[{j}]", dns)
        if spec.allocation_strategy is AllocationStrategy.RANDOM and len(errors) == before:
            try:
                pool_size(pool)
            except PoolError as err:
                errors.append(_invalid(path, "", f"cannot be used with allocationStrategy "
                                                 f"\"random\": {err}"))
    return errors


def _reserved_preallocations(spec: IPPoolSpec) -> list[outcome.SpecError]:
    """Ours, not upstream's: a pre-allocation may not be a gateway, network or broadcast."""
    errors = []
    for name, text in (spec.pre_allocations or {}).items():
        ip = parse_ip(text)
        if ip is None:
            continue
        for pool in spec.pools or ():
            if in_bounds(pool, ip) and ip in reserved(spec, pool):
                what = "the gateway" if ip == parse_ip(pool.gateway or spec.gateway) else (
                    "the network address" if pool.subnet and ip == ipaddress.ip_network(
                        pool.subnet, strict=False).network_address else "the broadcast address")
                errors.append(_invalid(f"spec.preAllocations[{name}]", text,
                                       f"is {what} of the pool and is never allocated"))
                break
    return errors


def validate_ippool(pool: IPPool, *, old: IPPool | None = None) -> list[outcome.SpecError]:
    """Upstream's IPPool webhook (create and update) plus `_reserved_preallocations`."""
    spec = pool.spec
    errors = _pool_ranges(spec)
    errors += _reserved_preallocations(spec)
    for address in (spec.pre_allocations or {}).values():
        ip = parse_ip(address)
        if ip is not None and not any(in_bounds(p, ip) for p in spec.pools or ()):
            detail = "is out of bounds of the pools given" if old else (
                "is out of bonds of the pools given")  # sic: upstream's create message
            errors.append(_invalid("spec.preAllocations", address, detail))
    if old is not None:
        if spec.name_prefix != old.spec.name_prefix:
            errors.append(_invalid("spec.namePrefix", spec.name_prefix, "cannot be modified"))
        if spec.allocation_strategy != old.spec.allocation_strategy:
            errors.append(_invalid("spec.allocationStrategy", spec.allocation_strategy.value,
                                   "cannot be modified after creation"))
        for address in ((old.status.indexes if old.status else None) or {}).values():
            ip = parse_ip(address)
            if ip is None or not any(in_bounds(p, ip) for p in spec.pools or ()):
                errors.append(_invalid("spec.pools", address,
                                       "is in use but out of bounds of the pools given"))
    return errors


def name_prefix_conflicts(pools: Iterable[IPPool]) -> list[tuple[IPPool, outcome.SpecError]]:
    """Pools (of one namespace) whose namePrefix an earlier pool already uses."""
    seen: dict[tuple[str, str], str] = {}
    out = []
    for pool in pools:
        key = (pool.metadata.namespace or "default", pool.spec.name_prefix)
        if key in seen and seen[key] != pool.metadata.name:
            out.append((pool, _invalid(
                "spec.namePrefix", pool.spec.name_prefix,
                f"is already used by IPPool {json.dumps(seen[key])} in this namespace: the "
                "pools' IPAddress names would collide")))
        else:
            seen.setdefault(key, pool.metadata.name)
    return out


def name_prefix_taken(obj: Mapping[str, object], stored: Iterable[Mapping[str, object]]
                      ) -> list[outcome.SpecError]:
    """The admission rule that needs the other pools (the webhook lists its namespace's):
    `obj` (an IPPool being created or updated, wire dict) may not use a namePrefix another
    stored IPPool of its namespace already uses (upstream IPAM #1437)."""
    try:
        pool = IPPool.from_wire(obj)
    except ValueError:
        return []  # its own schema check reports it
    for doc in stored:
        try:
            other = IPPool.from_wire(doc)
        except ValueError:
            continue
        if other.metadata.name != pool.metadata.name and (
                other.spec.name_prefix == pool.spec.name_prefix):
            return [_invalid("spec.namePrefix", pool.spec.name_prefix,
                             f"is already used by IPPool {json.dumps(other.metadata.name)} in "
                             "this namespace: the pools' IPAddress names would collide")]
    return []


def cross_check(docs: Iterable[Mapping[str, object]]) -> list[tuple[int, outcome.SpecError]]:
    """Rules that need several objects, over wire dicts (e.g. every document `metalcubed
    validate` reads): (position in `docs`, error) for each IPPool whose namePrefix an earlier
    pool of its namespace already uses. Documents that are not IPPools, or do not parse, are
    skipped (their own checks report them)."""
    pools: list[tuple[int, IPPool]] = []
    for position, doc in enumerate(docs):
        if doc.get("apiVersion") == API_VERSION and doc.get("kind") == IPPool.KIND:
            try:
                pools.append((position, IPPool.from_wire(doc)))
            except ValueError:
                continue
    where = {id(pool): position for position, pool in pools}
    return [(where[id(pool)], error) for pool, error in name_prefix_conflicts(p for _, p in pools)]


def _requested_ip(annotations: Mapping[str, str]) -> list[outcome.SpecError]:
    requested = annotations.get(IP_ADDRESS_ANNOTATION, "")
    if requested and parse_ip(requested) is None:
        return [_invalid("metadata.annotations.ipAddress", requested, "is not a valid IP address")]
    return []


def validate_ipclaim(claim: IPClaim, *, old: IPClaim | None = None) -> list[outcome.SpecError]:
    """Upstream's IPClaim webhook: a pool name; spec.pool immutable; a valid `ipAddress`."""
    errors = []
    if old is None and not claim.spec.pool.name:
        errors.append(_invalid("spec.pool.name", "", "cannot be empty"))
    if old is not None:
        new_ref, old_ref = claim.spec.pool, old.spec.pool
        if (new_ref.name, new_ref.namespace, new_ref.kind) != (
                old_ref.name, old_ref.namespace, old_ref.kind):
            errors.append(outcome.SpecError("spec.pool", "Invalid value: cannot be modified"))
    return errors + _requested_ip(claim.metadata.annotations)


def validate_ipaddress(address: IPAddress, *, old: IPAddress | None = None
                       ) -> list[outcome.SpecError]:
    """Upstream's IPAddress webhook: pool, claim and a valid address; all three immutable."""
    spec = address.spec
    if old is not None:
        errors = []
        if spec.address != old.spec.address:
            errors.append(_invalid("spec.address", spec.address, "cannot be modified"))
        for name in ("pool", "claim"):
            new_ref, old_ref = getattr(spec, name), getattr(old.spec, name)
            if (new_ref.name, new_ref.namespace, new_ref.kind) != (
                    old_ref.name, old_ref.namespace, old_ref.kind):
                errors.append(outcome.SpecError(f"spec.{name}",
                                                "Invalid value: cannot be modified"))
        return errors
    errors = []
    if not spec.pool.name:
        errors.append(_invalid("spec.pool.name", "", "cannot be empty"))
    if not spec.claim.name:
        errors.append(_invalid("spec.claim.name", "", "cannot be empty"))
    if not spec.address:
        errors.append(_invalid("spec.address", "", "cannot be empty"))
    else:
        errors += _check_ip("spec.address", spec.address)
    return errors + _requested_ip(address.metadata.annotations)


for _model, _webhook in ((IPPool, validate_ippool), (IPClaim, validate_ipclaim),
                         (IPAddress, validate_ipaddress)):
    validation.register(validation.KindEntry(
        api_version=API_VERSION, kind=_model.KIND, check=validation.Check.FULL, model=_model,
        webhook=_webhook))
