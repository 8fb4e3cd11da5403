"""The Metal3Data controller's IP claims: one per pool its template names, read back as
addresses, kept while its Secrets hold them, deleted with it.

Upstream: CAPM3 2f6d76b8 baremetal/metal3data_manager.go (`getAddressesFromPool`,
`ensureM3IPClaim`, `ensureIPClaim`, `addressFromM3Claim`, `addressFromClaim`,
`releaseAddressesFromPool`). A Metal3 IPPool gets an IPClaim, any other kind a Cluster API
IPAddressClaim, named `<data>-<pool>` (or, for IPClaims, `<host>-<pool>` with host-named claims,
upstream's --enable-bmh-name-based-preallocation), owned by the Data (controller) with its
finalizer. A claim with no address yet raises `Waiting`, naming the cause when it is the user's
to fix (a pool that does not exist, one that could not give an address).

Ours: the addresses the Secrets were rendered with are recorded on the Data
(`ADDRESSES_ANNOTATION`); `keep` makes a claim deleted behind the Data's back again, asking for
the same address, and says so when the pool cannot give it back.
"""

import contextlib
import json
from collections.abc import Iterable, Mapping

from metalcubed.core import datatemplate, outcome, ports
from metalcubed.core.api import capiipam, ipam, meta
from metalcubed.core.api.capm3 import v1beta2 as v2

DATA_FINALIZER = "metal3data.infrastructure.cluster.x-k8s.io"
"""On the Metal3Data and on the IPClaims/IPAddressClaims it makes (upstream's DataFinalizer)."""
DATA_LABEL = "infrastructure.cluster.x-k8s.io/data-name"
POOL_LABEL = "infrastructure.cluster.x-k8s.io/pool-name"
"""Upstream's labels on host-named IPClaims."""
ADDRESSES_ANNOTATION = "metal3data.metalcubed.io/addresses"
"""Ours: the addresses the Secrets were rendered with, {pool: [address, apiGroup, kind]}, so a
claim deleted behind the Data's back is claimed again for the same address."""


def claim_name(data_name: str, pool: str) -> str:
    """The IPClaim / IPAddressClaim a Metal3Data makes for a pool."""
    return f"{data_name}-{pool}"


class Waiting(Exception):
    """Not ready yet, for a reason worth showing (`message`), looked at again later."""

    def __init__(self, message: str, *, warn: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.warn = warn
        """An Event reason when the wait is the user's to fix (missing or exhausted pool)."""


def record(addresses: Mapping[str, datatemplate.PoolAddress],
           pools: Mapping[str, datatemplate.PoolRef]) -> str:
    """The `ADDRESSES_ANNOTATION` value for what the Secrets are rendered with."""
    return json.dumps({name: [addresses[name].address, ref.api_group, ref.kind]
                       for name, ref in sorted(pools.items())}, separators=(",", ":"))


class DataClaims:
    """The IP claims of Metal3Data objects, over the store."""

    def __init__(self, *, store: ports.Store, host_named: bool) -> None:
        self._store = store
        self._host_named = host_named

    def _get(self, kind: type[ports.R], namespace: str, name: str) -> ports.R | None:
        try:
            return self._store.get(kind, meta.ObjectKey(namespace, name))
        except outcome.NotFound:
            return None

    def owned(self, obj: meta.Resource, data: v2.Metal3Data) -> bool:
        return any(r.uid == data.metadata.uid for r in obj.metadata.owner_references)

    def _claim_meta(self, data: v2.Metal3Data, pool: str, name: str | None = None
                    ) -> meta.ObjectMeta:
        owner = meta.OwnerReference(api_version=v2.API_VERSION, kind="Metal3Data",
                                    name=data.metadata.name, uid=data.metadata.uid or "",
                                    controller=True)
        labels = dict(data.metadata.labels)
        if self._host_named:  # upstream labels host-named claims with their Data and pool
            labels.update({DATA_LABEL: data.metadata.name, POOL_LABEL: pool})
        return meta.ObjectMeta(name=name or claim_name(data.metadata.name, pool),
                               namespace=data.metadata.namespace, labels=labels,
                               finalizers=(DATA_FINALIZER,), owner_references=(owner,))

    def _ipclaim_of(self, data: v2.Metal3Data, pool: str, host: str | None
                    ) -> tuple[str, ipam.IPClaim | None]:
        """The Data's IPClaim for `pool` (upstream's lookup: `<data>-<pool>`, then
        `<host>-<pool>`), else the name to create it under (`<host>-<pool>` when claims are
        host-named)."""
        namespace = data.metadata.namespace
        names = [claim_name(data.metadata.name, pool)]
        if host:
            names.append(claim_name(host, pool))
        for name in names:
            found = self._get(ipam.IPClaim, namespace, name)
            if found is not None:
                return name, found
        return (names[-1] if self._host_named and host else names[0]), None

    def addresses(self, data: v2.Metal3Data, pools: dict[str, datatemplate.PoolRef],
                   host: str) -> dict[str, datatemplate.PoolAddress]:
        """Every pool's address for this Data; claims created first, all of them, so the pools
        work in parallel. Raises Waiting naming the first pool not served yet."""
        pending: list[Waiting] = []
        out = {}
        for name, ref in sorted(pools.items()):
            try:
                out[name] = (self._from_ipclaim(data, name, host) if ref.metal3
                             else self._from_capi_claim(data, ref))
            except Waiting as wait:
                pending.append(wait)
        if pending:
            worst = next((w for w in pending if w.warn), pending[0])
            raise Waiting("; ".join(w.message for w in pending), warn=worst.warn)
        return out

    def _from_ipclaim(self, data: v2.Metal3Data, pool: str, host: str | None
                      ) -> datatemplate.PoolAddress:
        namespace = data.metadata.namespace
        name, claim = self._ipclaim_of(data, pool, host)
        if claim is None:
            claim = self._store.create(ipam.IPClaim(
                metadata=self._claim_meta(data, pool, name),
                spec=ipam.IPClaimSpec(pool=meta.ObjectReference(name=pool,
                                                                namespace=namespace))))
        if not self.owned(claim, data):
            if claim.metadata.deletion_timestamp is not None:
                self.drop_finalizer(claim)
            raise Waiting(f"IPClaim {name} belongs to an older Metal3Data: waiting for it "
                          "to go")
        status = claim.status or ipam.IPClaimStatus()
        if status.error_message:
            raise Waiting(f"IP Allocation for {pool} failed : {status.error_message}",
                          warn="IPPoolExhausted")
        if status.address is None or not status.address.name:
            if self._get(ipam.IPPool, namespace, pool) is None:
                raise Waiting(f"IPPool {pool} not found", warn="IPPoolNotFound")
            raise Waiting(f"waiting for an address from IPPool {pool}")
        address = self._get(ipam.IPAddress, namespace, status.address.name)
        if address is None:
            raise Waiting(f"waiting for IPAddress {status.address.name} of IPPool {pool}")
        return datatemplate.PoolAddress(address=address.spec.address,
                                        prefix=address.spec.prefix or 0,
                                        gateway=address.spec.gateway or "",
                                        dns_servers=tuple(address.spec.dns_servers))

    def _from_capi_claim(self, data: v2.Metal3Data, ref: datatemplate.PoolRef
                         ) -> datatemplate.PoolAddress:
        namespace = data.metadata.namespace
        name = claim_name(data.metadata.name, ref.name)
        claim = self._get(capiipam.IPAddressClaim, namespace, name)
        if claim is None:
            claim = self._store.create(capiipam.IPAddressClaim(
                metadata=self._claim_meta(data, ref.name),
                spec=capiipam.IPAddressClaimSpec(pool_ref=capiipam.IPPoolReference(
                    name=ref.name, kind=ref.kind, api_group=ref.api_group))))
        if claim.metadata.deletion_timestamp is not None or not self.owned(claim, data):
            raise Waiting(f"IPAddressClaim {name} belongs to an older Metal3Data: waiting for "
                          "it to go")
        failure = claim.failure()
        if failure:
            raise Waiting(f"IP Allocation for {ref.name} failed : {failure}",
                          warn="IPPoolExhausted")
        address_ref = claim.status.address_ref if claim.status else None
        if address_ref is None or not address_ref.name:
            raise Waiting(f"waiting for an address from {ref.kind} {ref.name}")
        address = self._get(capiipam.IPAddress, namespace, address_ref.name)
        if address is None:
            raise Waiting(f"waiting for IPAddress {address_ref.name} of {ref.kind} {ref.name}")
        return datatemplate.PoolAddress(address=address.spec.address,
                                        prefix=address.spec.prefix,
                                        gateway=address.spec.gateway or "",
                                        dns_servers=self._pool_dns(namespace, ref, address))

    def _pool_dns(self, namespace: str, ref: datatemplate.PoolRef,
                  address: capiipam.IPAddress) -> tuple[str, ...]:
        """A CAPI IPAddress has no DNS servers: a Metal3 pool's are read from its spec."""
        if not ref.metal3:
            return ()
        pool = self._get(ipam.IPPool, namespace, ref.name)
        ip = ipam.parse_ip(address.spec.address)
        if pool is None or ip is None:
            return ()
        for entry in pool.spec.pools or ():
            if ipam.in_bounds(entry, ip):
                return tuple(entry.dns_servers or pool.spec.dns_servers or ())
        return ()

    def drop_finalizer(self, obj: meta.Resource) -> None:
        if DATA_FINALIZER in obj.metadata.finalizers:
            with contextlib.suppress(outcome.NotFound):
                self._store.update(obj.with_meta(finalizers=tuple(
                    f for f in obj.metadata.finalizers if f != DATA_FINALIZER)))

    def release(self, data: v2.Metal3Data) -> None:
        """Delete every IP claim the Data owns (its finalizer first)."""
        claims: Iterable[type[meta.Resource]] = (ipam.IPClaim, capiipam.IPAddressClaim)
        for kind in claims:
            for obj in self._store.list(kind, namespace=data.metadata.namespace):
                if self.owned(obj, data):
                    self.drop_finalizer(obj)
                    with contextlib.suppress(outcome.NotFound):
                        self._store.delete(kind, obj.key)

    def keep(self, data: v2.Metal3Data, host: str | None) -> str | None:
        """The Secrets are rendered: each address they hold stays claimed. A claim deleted
        behind the Data's back (finalizers stripped) is made again asking for the same
        address; the answer when the pool cannot give it back (someone else took it)."""
        try:
            record = json.loads(data.metadata.annotations.get(ADDRESSES_ANNOTATION, "{}"))
        except ValueError:
            return None
        lost = []
        for pool, (address, group, kind) in sorted(record.items()):
            ref = datatemplate.PoolRef(name=pool, api_group=group, kind=kind)
            got = self._reclaim(data, ref, address, host)
            if got is not None:
                lost.append(got)
        return "; ".join(lost) or None

    def _reclaim(self, data: v2.Metal3Data, ref: datatemplate.PoolRef, address: str,
                 host: str | None) -> str | None:
        namespace = data.metadata.namespace
        kind: type[ipam.IPClaim] | type[capiipam.IPAddressClaim] = (
            ipam.IPClaim if ref.metal3 else capiipam.IPAddressClaim)
        name, found = (self._ipclaim_of(data, ref.name, host) if ref.metal3 else (
            claim_name(data.metadata.name, ref.name),
            self._get(capiipam.IPAddressClaim, namespace,
                      claim_name(data.metadata.name, ref.name))))
        if found is None:
            metadata = self._claim_meta(data, ref.name, name)
            metadata = metadata.model_copy(update={"annotations": {
                ipam.IP_ADDRESS_ANNOTATION: address}})
            self._store.create(ipam.IPClaim(metadata=metadata, spec=ipam.IPClaimSpec(
                pool=meta.ObjectReference(name=ref.name, namespace=namespace)))
                if ref.metal3 else capiipam.IPAddressClaim(
                    metadata=metadata, spec=capiipam.IPAddressClaimSpec(
                        pool_ref=capiipam.IPPoolReference(name=ref.name, kind=ref.kind,
                                                          api_group=ref.api_group))))
            return None
        try:
            now = (self._from_ipclaim(data, ref.name, host) if ref.metal3
                   else self._from_capi_claim(data, ref))
        except Waiting as wait:
            if not wait.warn:
                return None  # on its way
            return (f"{kind.KIND} {name} was deleted and made again, but the address "
                    f"{address} the Secrets hold is not given back: {wait.message}")
        if now.address != address:
            return (f"{kind.KIND} {name} holds {now.address}, but the Secrets were rendered "
                    f"with {address}")
        return None

