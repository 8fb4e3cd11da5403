"""A memory-store lab for the Metal3DataTemplate -> Metal3Data -> IPAM chain: a template, IPPools,
and machines (CAPI Machine, Metal3Machine on a BareMetalHost, its Metal3DataClaim) as the
Metal3Machine controller leaves them; `settle` runs the three controllers until quiet."""

import base64
import ipaddress
import random

import yaml

from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import capi, capiipam, hardwaredata, ipam, meta
from metalcubed.core.api.capm3 import v1beta2 as v2
from metalcubed.core.clock import ManualClock
from metalcubed.core.memory_store import MemoryStore
from metalcubed.core.reconcilers import ippool, metal3data, metal3datatemplate
from metalcubed.core.testing.fakes import RecordingEventRecorder

NS = "lab"
TEMPLATE = {
    "metaData": {"objectNames": [{"key": "name", "object": "machine"}],
                 "ipAddressesFromPool": [{"key": "ip", "name": "pool1"}],
                 "indexes": [{"key": "index", "offset": 10}]},
    "networkData": {
        "links": {"ethernets": [{"type": "phy", "id": "enp1s0",
                                 "macAddress": {"fromHostInterface": "eth0"}}]},
        "networks": {"ipv4": [{"id": "public", "link": "enp1s0",
                               "ipAddressFromIPPool": "pool1",
                               "routes": [{"network": "0.0.0.0",
                                           "gateway": {"fromIPPool": "pool1"}}]}]},
        "services": {"dnsFromIPPool": "pool1"}},
}


class DataLab:
    def __init__(self, *, template: dict[str, object] | None = None) -> None:
        self.clock = ManualClock()
        self.store = MemoryStore(clock=self.clock)
        self.events = RecordingEventRecorder()
        self.templates = metal3datatemplate.Metal3DataTemplateReconciler(
            store=self.store, clock=self.clock)
        self.datas = metal3data.Metal3DataReconciler(store=self.store, clock=self.clock,
                                                     events=self.events)
        self.pools = ippool.IPPoolReconciler(store=self.store, clock=self.clock,
                                             events=self.events, rng=random.Random(0))
        self.cluster = self.store.create(capi.Cluster(
            metadata=meta.ObjectMeta(name="c1", namespace=NS)))
        self.store.create(v2.Metal3DataTemplate(
            metadata=meta.ObjectMeta(name="tpl", namespace=NS),
            spec=v2.Metal3DataTemplateSpec.model_validate(
                template if template is not None else TEMPLATE)))

    def pool(self, name: str = "pool1", *, subnet: str = "10.0.0.0/29") -> None:
        self.store.create(ipam.IPPool(
            metadata=meta.ObjectMeta(name=name, namespace=NS),
            spec=ipam.IPPoolSpec(name_prefix=name,
                                 gateway=str(ipaddress.ip_network(subnet)[1]),
                                 dns_servers=("10.0.0.53",),
                                 pools=(ipam.Pool(subnet=subnet),))))

    def machine(self, name: str) -> None:
        """A Machine, its Metal3Machine on host-<name>, and the Metal3DataClaim it made."""
        labels = {capi.CLUSTER_NAME_LABEL: "c1"}
        machine = self.store.create(capi.Machine.model_validate({
            "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": {"clusterName": "c1"}}))
        host = self.store.create(bmh.BareMetalHost(
            metadata=meta.ObjectMeta(name=f"host-{name}", namespace=NS),
            spec=bmh.BareMetalHostSpec(online=True)))
        self.store.update_status(host.model_copy(update={"status": host.status.model_copy(
            update={"hardware": hardwaredata.HardwareDetails(nics=(hardwaredata.NIC(
                name="eth0", mac="52:54:00:00:00:0" + str(len(name) % 10)),))})}))
        m3m = self.store.create(v2.Metal3Machine(metadata=meta.ObjectMeta(
            name=name, namespace=NS, labels=labels,
            annotations={metal3data.HOST_ANNOTATION: f"{NS}/host-{name}"},
            owner_references=(meta.OwnerReference(
                api_version=capi.API_VERSION, kind="Machine", name=name,
                uid=machine.metadata.uid or "", controller=True),))))
        self.store.create(v2.Metal3DataClaim(
            metadata=meta.ObjectMeta(
                name=name, namespace=NS, labels=labels,
                finalizers=(metal3data.M3M_CLAIM_FINALIZER,),
                owner_references=(meta.OwnerReference(
                    api_version=v2.API_VERSION, kind="Metal3Machine", name=name,
                    uid=m3m.metadata.uid or "", controller=True),)),
            spec=v2.Metal3DataClaimSpec(template=v2.ObjectRef(name="tpl", namespace=NS))))

    def release(self, name: str) -> None:
        """What the Metal3Machine controller does on delete: its claim goes."""
        claim = self.store.get(v2.Metal3DataClaim, meta.ObjectKey(NS, name))
        claim = self.store.update(claim.with_meta(finalizers=tuple(
            f for f in claim.metadata.finalizers if f != metal3data.M3M_CLAIM_FINALIZER)))
        self.store.delete(v2.Metal3DataClaim, claim.key)

    def settle(self, rounds: int = 6) -> None:
        for _ in range(rounds):
            self.templates.reconcile(meta.ObjectKey(NS, "tpl"))
            for data in self.store.list(v2.Metal3Data, namespace=NS):
                self.datas.reconcile(data.key)
            for pool in self.store.list(ipam.IPPool, namespace=NS):
                self.pools.reconcile(pool.key)

    def data_of(self, name: str) -> v2.Metal3Data:
        claim = self.store.get(v2.Metal3DataClaim, meta.ObjectKey(NS, name))
        assert claim.status is not None and claim.status.rendered_data is not None
        return self.store.get(v2.Metal3Data,
                              meta.ObjectKey(NS, claim.status.rendered_data.name or ""))

    def secret(self, name: str) -> dict[str, object]:
        secret = self.store.get(meta.Secret, meta.ObjectKey(NS, name))
        (value,) = secret.data.values()
        loaded = yaml.safe_load(base64.b64decode(value))
        assert isinstance(loaded, dict)
        return loaded

    def leftovers(self) -> dict[str, list[str]]:
        """Everything the chain makes that is still there, by kind."""
        kinds: tuple[type[meta.Resource], ...] = (
            v2.Metal3DataClaim, v2.Metal3Data, ipam.IPClaim, ipam.IPAddress,
            capiipam.IPAddressClaim, meta.Secret)
        out = {k.KIND: sorted(o.metadata.name for o in self.store.list(k, namespace=NS))
               for k in kinds}
        return {k: v for k, v in out.items() if v}
