"""Rendering a Metal3DataTemplate for one machine: the metaData and networkData documents.

Pure: the template's spec, the objects it reads (the Metal3Data, its Metal3Machine, the CAPI
Machine, the BareMetalHost) and the addresses already allocated from each referenced pool in;
YAML text out, or a RenderError naming the template field and the cause.

Upstream's semantics (CAPM3 2f6d76b8, baremetal/metal3data_manager.go `renderMetaData`,
`renderNetworkData`, `getReferencedPools`), which docs/templates.md describes source by source:
- metaData is a flat string map, filled in this order (a later source overwrites an earlier
  key): fromHostInterfaces, ipAddressesFromPool, prefixesFromPool, gatewaysFromPool, indexes,
  namespaces, objectNames, fromLabels, fromAnnotations, strings; then `providerid`
  (`<namespace>/<host>/<metal3machine>`) is always set. dnsServersFromPool only makes a pool
  claimed (upstream renders no key for it; neither do we).
- networkData is OpenStack's network_data.json shape: links (bonds, ethernets, vlans), networks
  (ipv4, ipv6, ipv4_dhcp, ipv6_dhcp, ipv6_slaac, with routes) and services (dns).
- every pool named anywhere is one `PoolRef` (empty apiGroup/kind mean Metal3's IPPool); the
  same name with two different kinds is an error. Unlike upstream, the metaData pool lists'
  apiGroup/kind are honoured (upstream's `addFromPool` always makes them Metal3 IPPools).
Unlike upstream, nothing here panics on a missing value: a NIC that is not there, an empty boot
MAC, a pool whose address is not known, an annotation that does not name a pool are errors that
say which template field asked for them.
"""

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import yaml

from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import capi
from metalcubed.core.api.capm3 import v1beta2 as v2

IPAM_GROUP = "ipam.metal3.io"
IPPOOL_KIND = "IPPool"
DEFAULT_MTU = 1500
"""The CRD default of every link's mtu (the API server fills it; a memory store does not)."""
MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}([0-9A-Fa-f]{2})$")

ObjectKind = Literal["machine", "metal3machine", "baremetalhost"]


class RenderError(ValueError):
    """The template cannot be rendered for this machine; `field` is the template path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolRef:
    """A pool the template draws from; `metal3` pools get an IPClaim, others a CAPI
    IPAddressClaim."""

    name: str
    api_group: str = IPAM_GROUP
    kind: str = IPPOOL_KIND

    @property
    def metal3(self) -> bool:
        return (self.api_group, self.kind) == (IPAM_GROUP, IPPOOL_KIND)


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolAddress:
    """What one pool gave this machine."""

    address: str
    prefix: int | None = None
    gateway: str = ""
    dns_servers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Objects:
    """The objects a template reads; None where not known yet (then the sources that read them
    fail, and pool references through annotations are skipped, as upstream on release)."""

    namespace: str
    index: int
    metal3machine: v2.Metal3Machine | None = None
    machine: capi.Machine | None = None
    host: bmh.BareMetalHost | None = None


# --- pools -------------------------------------------------------------------------------------


def _add(pools: dict[str, PoolRef], ref: PoolRef, field: str) -> None:
    if not ref.name:
        return
    old = pools.setdefault(ref.name, ref)
    if (old.api_group, old.kind) != (ref.api_group, ref.kind):
        raise RenderError(field, f"pool {ref.name!r} is referenced as {old.kind} "
                                 f"({old.api_group}) and as {ref.kind} ({ref.api_group}): "
                                 "multiple references with the same name but different "
                                 "resource types")


def _ref(ref: v2.IPPoolReference) -> PoolRef:
    return PoolRef(name=ref.name, api_group=ref.api_group or IPAM_GROUP,
                   kind=ref.kind or IPPOOL_KIND)


def _annotated_pool(source: v2.FromPoolAnnotation, objs: Objects | None, field: str
                    ) -> str | None:
    """The pool name an annotation holds; None when the objects are not known (release)."""
    if objs is None:
        return None
    value = annotation_value(source.object, source.annotation, objs, field)
    if not value:
        raise RenderError(field, f"annotation {source.annotation!r} not found or empty on "
                                 f"{source.object}")
    return value


Gateway: TypeAlias = v2.NetworkGatewayv4 | v2.NetworkGatewayv6
Route: TypeAlias = v2.NetworkDataRoutev4 | v2.NetworkDataRoutev6


def _route_pools(pools: dict[str, PoolRef], routes: Iterable[Route], objs: Objects | None,
                 field: str, *, annotations: bool) -> None:
    for j, route in enumerate(routes):
        here = f"{field}.routes[{j}]"
        gateway = route.gateway
        if annotations and gateway.from_pool_annotation is not None:
            name = _annotated_pool(gateway.from_pool_annotation, objs,
                                   f"{here}.gateway.fromPoolAnnotation")
            if name:
                _add(pools, PoolRef(name=name), here)
        elif gateway.from_pool_ref is not None and gateway.from_pool_ref.name:
            _add(pools, _ref(gateway.from_pool_ref), f"{here}.gateway.fromPoolRef")
        elif gateway.from_ip_pool:
            _add(pools, PoolRef(name=gateway.from_ip_pool), f"{here}.gateway.fromIPPool")
        if route.services is not None and route.services.dns_from_ip_pool:
            _add(pools, PoolRef(name=route.services.dns_from_ip_pool),
                 f"{here}.services.dnsFromIPPool")


def referenced_pools(spec: v2.Metal3DataTemplateSpec, objs: Objects | None = None
                     ) -> dict[str, PoolRef]:
    """Every pool the template names, by name (upstream `getReferencedPools`). `objs` None:
    pools named only through annotations are left out (upstream does the same on release)."""
    pools: dict[str, PoolRef] = {}
    md = spec.meta_data
    if md is not None:
        for field, entries in (("ipAddressesFromPool", md.ip_addresses_from_pool),
                               ("prefixesFromPool", md.prefixes_from_pool),
                               ("gatewaysFromPool", md.gateways_from_pool),
                               ("dnsServersFromPool", md.dns_servers_from_pool)):
            for i, entry in enumerate(entries or ()):
                _add(pools, PoolRef(name=entry.name, api_group=entry.api_group or IPAM_GROUP,
                                    kind=entry.kind or IPPOOL_KIND),
                     f"spec.metaData.{field}[{i}]")
    nets = spec.network_data.networks if spec.network_data else None
    if nets is not None:
        statics: list[tuple[str, v2.NetworkDataIPv4 | v2.NetworkDataIPv6]] = [
            *((f"spec.networkData.networks.ipv4[{i}]", n) for i, n in enumerate(nets.ipv4 or ())),
            *((f"spec.networkData.networks.ipv6[{i}]", n) for i, n in enumerate(nets.ipv6 or ()))]
        for field, net in statics:
            if net.from_pool_annotation is not None:
                name = _annotated_pool(net.from_pool_annotation, objs,
                                       f"{field}.fromPoolAnnotation")
                if name:
                    _add(pools, PoolRef(name=name), field)
            elif net.from_pool_ref is not None and net.from_pool_ref.name:
                _add(pools, _ref(net.from_pool_ref), f"{field}.fromPoolRef")
            elif net.ip_address_from_ip_pool:
                _add(pools, PoolRef(name=net.ip_address_from_ip_pool),
                     f"{field}.ipAddressFromIPPool")
            _route_pools(pools, net.routes or (), objs, field, annotations=True)
        dynamic: list[tuple[str, v2.NetworkDataIPv4DHCP | v2.NetworkDataIPv6DHCP]] = [
            *((f"spec.networkData.networks.ipv4DHCP[{i}]", n)
              for i, n in enumerate(nets.ipv4_dhcp or ())),
            *((f"spec.networkData.networks.ipv6DHCP[{i}]", n)
              for i, n in enumerate(nets.ipv6_dhcp or ())),
            *((f"spec.networkData.networks.ipv6SLAAC[{i}]", n)
              for i, n in enumerate(nets.ipv6_slaac or ()))]
        for field, dyn in dynamic:  # upstream ignores annotation gateways here
            _route_pools(pools, dyn.routes or (), objs, field, annotations=False)
    services = spec.network_data.services if spec.network_data else None
    if services is not None and services.dns_from_ip_pool:
        _add(pools, PoolRef(name=services.dns_from_ip_pool),
             "spec.networkData.services.dnsFromIPPool")
    return pools


# --- reading the machine's objects --------------------------------------------------------------


def _object(kind: str, objs: Objects, field: str) -> Any:
    found: Any = {"metal3machine": objs.metal3machine, "machine": objs.machine,
                  "baremetalhost": objs.host}.get(kind.lower(), ...)
    if found is ...:
        raise RenderError(field, f"unknown object type {kind!r} (machine, metal3machine or "
                                 "baremetalhost)")
    if found is None:
        raise RenderError(field, f"the {kind} is not known yet")
    return found


def annotation_value(kind: str, annotation: str, objs: Objects, field: str) -> str:
    """An annotation of the machine, Metal3Machine or host ("" when absent, as upstream)."""
    return str(_object(kind, objs, field).metadata.annotations.get(annotation, ""))


def _label_value(kind: str, label: str, objs: Objects, field: str) -> str:
    return str(_object(kind, objs, field).metadata.labels.get(label, ""))


def host_mac(interface: str, objs: Objects, field: str) -> str:
    """The MAC of the host's NIC named `interface` (from inspection)."""
    host = objs.host
    nics = host.status.hardware.nics if host is not None and host.status.hardware else ()
    if not nics:
        raise RenderError(field, "the BareMetalHost's NIC list is not populated (not "
                                 "inspected yet)")
    for nic in nics:
        if nic.name == interface:
            return str(nic.mac)
    raise RenderError(field, f"the BareMetalHost has no NIC named {interface!r} (it has "
                             f"{', '.join(sorted({n.name for n in nics}))})")


def _pool(addresses: Mapping[str, PoolAddress], name: str, field: str) -> PoolAddress:
    found = addresses.get(name)
    if found is None:
        raise RenderError(field, f"no address from pool {name!r} yet")
    return found


# --- metaData ------------------------------------------------------------------------------------


def meta_data(spec: v2.Metal3DataTemplateSpec, objs: Objects,
              addresses: Mapping[str, PoolAddress]) -> dict[str, str] | None:
    """The metaData map (None when the template has no metaData)."""
    md = spec.meta_data
    if md is None:
        return None
    out: dict[str, str] = {}
    base = "spec.metaData"
    for i, iface in enumerate(md.from_host_interfaces or ()):
        field = f"{base}.fromHostInterfaces[{i}]"
        if iface.from_boot_mac:
            host = _object("baremetalhost", objs, field)
            if not host.spec.boot_mac_address:
                raise RenderError(field, f"metadata key {iface.key!r}: BareMetalHost "
                                         f"{host.metadata.namespace}/{host.metadata.name} "
                                         "spec.bootMACAddress is empty")
            out[iface.key] = str(host.spec.boot_mac_address)
        else:
            out[iface.key] = host_mac(iface.interface or "", objs, field)
    for i, entry in enumerate(md.ip_addresses_from_pool or ()):
        out[entry.key] = _pool(addresses, entry.name,
                               f"{base}.ipAddressesFromPool[{i}]").address
    for i, entry in enumerate(md.prefixes_from_pool or ()):
        out[entry.key] = str(_pool(addresses, entry.name,
                                   f"{base}.prefixesFromPool[{i}]").prefix or 0)
    for i, entry in enumerate(md.gateways_from_pool or ()):
        out[entry.key] = _pool(addresses, entry.name, f"{base}.gatewaysFromPool[{i}]").gateway
    for index in md.indexes or ():
        step = index.step or 1
        value = (index.offset or 0) + objs.index * step
        out[index.key] = f"{index.prefix or ''}{value}{index.suffix or ''}"
    for namespace in md.namespaces or ():
        out[namespace.key] = objs.namespace
    for i, name in enumerate(md.object_names or ()):
        out[name.key] = _object(name.object, objs,
                                f"{base}.objectNames[{i}]").metadata.name
    for i, label in enumerate(md.from_labels or ()):
        out[label.key] = _label_value(label.object, label.label, objs, f"{base}.fromLabels[{i}]")
    for i, note in enumerate(md.from_annotations or ()):
        out[note.key] = annotation_value(note.object, note.annotation, objs,
                                         f"{base}.fromAnnotations[{i}]")
    for string in md.strings or ():
        out[string.key] = string.value
    m3m = _object("metal3machine", objs, "providerid")
    host = _object("baremetalhost", objs, "providerid")
    out["providerid"] = f"{m3m.metadata.namespace}/{host.metadata.name}/{m3m.metadata.name}"
    return out


# --- networkData ---------------------------------------------------------------------------------


def netmask(prefix: int | None, *, ipv4: bool) -> str:
    """A prefix length as a mask: dotted for IPv4, IPv6 notation otherwise ("" for None)."""
    if prefix is None:
        return ""
    if ipv4:
        return str(ipaddress.IPv4Network(f"0.0.0.0/{prefix}").netmask)
    return str(ipaddress.IPv6Network(f"::/{prefix}").netmask)


def _mac(mac: v2.NetworkLinkEthernetMac, objs: Objects, field: str) -> str:
    if mac.string:
        value = mac.string
    elif mac.from_host_interface:
        value = host_mac(mac.from_host_interface, objs, f"{field}.fromHostInterface")
    elif mac.from_annotation is not None:
        value = annotation_value(mac.from_annotation.object, mac.from_annotation.annotation,
                                 objs, f"{field}.fromAnnotation")
    else:
        value = ""
    if not MAC.match(value):
        raise RenderError(field, f"bad MAC address: {value!r}")
    return value


def _links(links: v2.NetworkDataLink, objs: Objects) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    base = "spec.networkData.links"
    for i, bond in enumerate(links.bonds or ()):
        field = f"{base}.bonds[{i}]"
        entry: dict[str, Any] = {
            "type": "bond", "id": bond.id, "mtu": bond.mtu or DEFAULT_MTU,
            "bond_mode": bond.bond_mode, "bond_xmit_hash_policy": bond.bond_xmit_hash_policy
            or "", "bond_links": list(bond.bond_links or ())}
        if bond.name:
            entry["name"] = bond.name
        entry["ethernet_mac_address"] = _mac(bond.mac_address, objs, f"{field}.macAddress")
        illegal = []
        for param in bond.parameters:
            target = f"bond_{param.name}"
            if target in entry:
                illegal.append(param.name)
            else:
                entry[target] = param.value
        if illegal:
            names = '", "'.join(illegal)
            raise RenderError(f"{field}.parameters", f'illegal params "{names}" into bond '
                                                     f"params blob into link id={bond.id}")
        out.append(entry)
    for i, eth in enumerate(links.ethernets or ()):
        entry = {"type": eth.type, "id": eth.id, "mtu": eth.mtu or DEFAULT_MTU}
        if eth.name:
            entry["name"] = eth.name
        entry["ethernet_mac_address"] = _mac(eth.mac_address, objs,
                                             f"{base}.ethernets[{i}].macAddress")
        out.append(entry)
    for i, vlan in enumerate(links.vlans or ()):
        entry = {"type": "vlan", "id": vlan.id, "mtu": vlan.mtu or DEFAULT_MTU,
                 "vlan_link": vlan.vlan_link, "vlan_id": vlan.vlan_id}
        if vlan.name:
            entry["name"] = vlan.name
        entry["vlan_mac_address"] = _mac(vlan.mac_address, objs,
                                         f"{base}.vlans[{i}].macAddress")
        out.append(entry)
    return out


def _dns(addresses: Iterable[str]) -> list[dict[str, Any]]:
    return [{"type": "dns", "address": a} for a in addresses]


def _routes(routes: Iterable[Route], objs: Objects, addresses: Mapping[str, PoolAddress],
            field: str, *, ipv4: bool) -> list[dict[str, Any]]:
    out = []
    for j, route in enumerate(routes):
        here = f"{field}.routes[{j}].gateway"
        gw: Gateway = route.gateway
        gateway = ""
        if gw.string is not None:
            gateway = gw.string
        elif gw.from_pool_annotation is not None:
            name = _annotated_pool(gw.from_pool_annotation, objs, f"{here}.fromPoolAnnotation")
            gateway = _pool(addresses, name or "", here).gateway
        elif gw.from_pool_ref is not None and gw.from_pool_ref.name:
            gateway = _pool(addresses, gw.from_pool_ref.name, f"{here}.fromPoolRef").gateway
        elif gw.from_ip_pool:
            gateway = _pool(addresses, gw.from_ip_pool, f"{here}.fromIPPool").gateway
        services: list[dict[str, Any]] = []
        if route.services is not None:
            services = _dns(route.services.dns or ())
            if route.services.dns_from_ip_pool:
                services += _dns(_pool(addresses, route.services.dns_from_ip_pool,
                                       f"{field}.routes[{j}].services.dnsFromIPPool"
                                       ).dns_servers)
        out.append({"network": route.network, "netmask": netmask(route.prefix or 0, ipv4=ipv4),
                    "gateway": gateway, "services": services})
    return out


def _networks(nets: v2.NetworkDataNetwork, objs: Objects,
              addresses: Mapping[str, PoolAddress]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    base = "spec.networkData.networks"
    statics: list[tuple[str, str, v2.NetworkDataIPv4 | v2.NetworkDataIPv6]] = [
        *(("ipv4", f"{base}.ipv4[{i}]", n) for i, n in enumerate(nets.ipv4 or ())),
        *(("ipv6", f"{base}.ipv6[{i}]", n) for i, n in enumerate(nets.ipv6 or ()))]
    for family, field, net in statics:
        if net.from_pool_annotation is not None:
            name = _annotated_pool(net.from_pool_annotation, objs, f"{field}.fromPoolAnnotation")
            got = _pool(addresses, name or "", f"{field}.fromPoolAnnotation")
        elif net.from_pool_ref is not None and net.from_pool_ref.name:
            got = _pool(addresses, net.from_pool_ref.name, f"{field}.fromPoolRef")
        else:
            got = _pool(addresses, net.ip_address_from_ip_pool or "",
                        f"{field}.ipAddressFromIPPool")
        ipv4 = family == "ipv4"
        out.append({"type": family, "id": net.id, "link": net.link,
                    "netmask": netmask(got.prefix, ipv4=ipv4), "ip_address": got.address,
                    "routes": _routes(net.routes or (), objs, addresses, field, ipv4=ipv4)})
    dynamic: list[tuple[str, str, v2.NetworkDataIPv4DHCP | v2.NetworkDataIPv6DHCP, bool]] = [
        *(("ipv4_dhcp", f"{base}.ipv4DHCP[{i}]", n, True)
          for i, n in enumerate(nets.ipv4_dhcp or ())),
        *(("ipv6_dhcp", f"{base}.ipv6DHCP[{i}]", n, False)
          for i, n in enumerate(nets.ipv6_dhcp or ())),
        *(("ipv6_slaac", f"{base}.ipv6SLAAC[{i}]", n, False)
          for i, n in enumerate(nets.ipv6_slaac or ()))]
    for family, field, dyn, ipv4 in dynamic:
        out.append({"type": family, "id": dyn.id, "link": dyn.link,
                    "routes": _routes(dyn.routes or (), objs, addresses, field, ipv4=ipv4)})
    return out


def network_data(spec: v2.Metal3DataTemplateSpec, objs: Objects,
                 addresses: Mapping[str, PoolAddress]) -> dict[str, list[Any]] | None:
    """The networkData document (None when the template has no networkData)."""
    nd = spec.network_data
    if nd is None:
        return None
    services: list[Any] = []
    if nd.services is not None:
        services = _dns(nd.services.dns or ())
        if nd.services.dns_from_ip_pool:
            services += _dns(_pool(addresses, nd.services.dns_from_ip_pool,
                                   "spec.networkData.services.dnsFromIPPool").dns_servers)
    return {"links": _links(nd.links, objs) if nd.links else [],
            "networks": _networks(nd.networks, objs, addresses) if nd.networks else [],
            "services": services}


def to_yaml(document: Mapping[str, Any]) -> str:
    """YAML as upstream writes it (keys sorted, block style)."""
    return yaml.safe_dump(dict(document), sort_keys=True, default_flow_style=False)
