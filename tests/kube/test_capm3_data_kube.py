"""The data chain on the real kube-apiserver (with Cluster API core's CRDs): the pure
Metal3DataTemplate, Metal3Data and IPPool reconcilers over K8sStore render a machine's Secrets
with an address from a Metal3 IPPool and leave nothing behind on release (finalizers and owner
references honoured by the real API server); and a Cluster API IPAddressClaim naming a Metal3
IPPool is served (CAPI's CRD accepts the IPAddress, the addressRef and the Ready condition).

The reconcilers are called in-process, as their watches would call them; every read goes to the
API server (K8sStore has no cache), so a fixed number of passes reaches the quiet state.
"""

import base64
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from metalcubed.controllers.kube import store as kube_store
from metalcubed.core import clock as core_clock
from metalcubed.core import outcome
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import capi, capiipam, hardwaredata, ipam, meta
from metalcubed.core.api.capm3 import v1beta2 as v2
from metalcubed.core.reconcilers import ippool, metal3data, metal3datatemplate
from metalcubed.core.testing.fakes import RecordingEventRecorder
from tests.kube.test_capi_core import api, capi_binaries, capi_cluster  # noqa: F401

pytestmark = pytest.mark.kube
NS = "data-chain"
TEMPLATE = {
    "metaData": {"objectNames": [{"key": "name", "object": "machine"}],
                 "ipAddressesFromPool": [{"key": "ip", "name": "pool1"}],
                 "fromHostInterfaces": [{"key": "mac", "interface": "eth0"}]},
    "networkData": {"networks": {"ipv4": [{"id": "public", "link": "eth0",
                                           "ipAddressFromIPPool": "pool1"}]}},
}


class Chain:
    def __init__(self, client: k8s.ApiClient) -> None:
        self.client = client
        self.store = kube_store.K8sStore(client)
        clock = core_clock.ManualClock()
        self.events = RecordingEventRecorder()
        self.templates = metal3datatemplate.Metal3DataTemplateReconciler(store=self.store,
                                                                         clock=clock)
        self.datas = metal3data.Metal3DataReconciler(store=self.store, clock=clock,
                                                     events=self.events)
        self.pools = ippool.IPPoolReconciler(store=self.store, clock=clock, events=self.events)

    def settle(self, rounds: int = 5) -> None:
        for _ in range(rounds):
            self.templates.reconcile(meta.ObjectKey(NS, "tpl"))
            for data in self.store.list(v2.Metal3Data, namespace=NS):
                self.datas.reconcile(data.key)
            self.pools.reconcile(meta.ObjectKey(NS, "pool1"))

    def left(self) -> dict[str, list[str]]:
        kinds: dict[str, type[meta.Resource]] = {
            "Metal3DataClaim": v2.Metal3DataClaim, "Metal3Data": v2.Metal3Data,
            "IPClaim": ipam.IPClaim, "IPAddress": ipam.IPAddress,
            "CAPI IPAddressClaim": capiipam.IPAddressClaim, "CAPI IPAddress": capiipam.IPAddress}
        out = {name: sorted(o.metadata.name for o in self.store.list(k, namespace=NS))
               for name, k in kinds.items()}
        out["Secret"] = sorted(s.metadata.name for s in self.store.list(meta.Secret, namespace=NS)
                               if s.type == metal3data.SECRET_TYPE)
        return {k: v for k, v in out.items() if v}


@pytest.fixture(scope="module")
def chain(api: k8s.ApiClient) -> Chain:  # noqa: F811
    k8s.CoreV1Api(api).create_namespace({"metadata": {"name": NS}})
    chain = Chain(api)
    store = chain.store
    store.create(ipam.IPPool(metadata=meta.ObjectMeta(name="pool1", namespace=NS),
                             spec=ipam.IPPoolSpec(name_prefix="pool1", gateway="10.9.0.1",
                                                  dns_servers=("10.9.0.53",),
                                                  pools=(ipam.Pool(subnet="10.9.0.0/24"),))))
    store.create(v2.Metal3DataTemplate(metadata=meta.ObjectMeta(name="tpl", namespace=NS),
                                       spec=v2.Metal3DataTemplateSpec.model_validate(TEMPLATE)))
    return chain


def _machine(chain: Chain, name: str) -> None:
    """What CAPI and the Metal3Machine controller leave: Machine, Metal3Machine on its host
    (inspected), the Metal3DataClaim."""
    store = chain.store
    host = store.create(bmh.BareMetalHost(metadata=meta.ObjectMeta(name=f"host-{name}",
                                                                   namespace=NS),
                                          spec=bmh.BareMetalHostSpec(online=False)))
    store.update_status(host.model_copy(update={"status": host.status.model_copy(update={
        "hardware": hardwaredata.HardwareDetails(nics=(hardwaredata.NIC(
            name="eth0", mac="52:54:00:12:34:56"),))})}))
    objects = k8s.CustomObjectsApi(chain.client)
    machine = objects.create_namespaced_custom_object("cluster.x-k8s.io", "v1beta2", NS,
                                                      "machines", {
        "apiVersion": capi.API_VERSION, "kind": "Machine",
        "metadata": {"name": name, "labels": {capi.CLUSTER_NAME_LABEL: "absent"}},
        "spec": {"clusterName": "absent", "bootstrap": {"dataSecretName": "boot"},
                 "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io",
                                       "kind": "Metal3Machine", "name": name}}})
    m3m = store.create(v2.Metal3Machine(
        metadata=meta.ObjectMeta(
            name=name, namespace=NS, labels={capi.CLUSTER_NAME_LABEL: "absent"},
            annotations={metal3data.HOST_ANNOTATION: f"{NS}/host-{name}"},
            owner_references=(meta.OwnerReference(
                api_version=capi.API_VERSION, kind="Machine", name=name,
                uid=machine["metadata"]["uid"]),)),
        spec=v2.Metal3MachineSpec.model_validate({"image": {
            "url": "http://172.22.0.1/node.qcow2", "checksum": "abc",
            "checksumType": "sha256", "diskFormat": "qcow2"}})))
    store.create(v2.Metal3DataClaim(
        metadata=meta.ObjectMeta(name=name, namespace=NS,
                                 labels={capi.CLUSTER_NAME_LABEL: "absent"},
                                 finalizers=(metal3data.M3M_CLAIM_FINALIZER,),
                                 owner_references=(meta.OwnerReference(
                                     api_version=v2.API_VERSION, kind="Metal3Machine",
                                     name=name, uid=m3m.metadata.uid or "", controller=True),)),
        spec=v2.Metal3DataClaimSpec(template=v2.ObjectRef(name="tpl", namespace=NS))))


def _secret(chain: Chain, name: str) -> Any:
    secret = chain.store.get(meta.Secret, meta.ObjectKey(NS, name))
    (value,) = secret.data.values()
    return yaml.safe_load(base64.b64decode(value))


def _retry(step: Callable[[], None]) -> None:
    """A 409 from the real API server (our own write raced our read) is retried, as the
    workqueue would."""
    for _ in range(3):
        try:
            step()
            return
        except outcome.Conflict:
            continue
    step()


def test_a_machine_gets_rendered_secrets_and_leaves_nothing_on_release(chain: Chain) -> None:
    _machine(chain, "m0")
    _retry(chain.settle)
    claim = chain.store.get(v2.Metal3DataClaim, meta.ObjectKey(NS, "m0"))
    assert claim.status is not None and claim.status.rendered_data is not None
    data = chain.store.get(v2.Metal3Data, meta.ObjectKey(NS, "tpl-0"))
    assert data.status == v2.Metal3DataStatus(ready=True), data.status
    assert _secret(chain, "m0-metadata") == {"name": "m0", "ip": "10.9.0.2",
                                             "mac": "52:54:00:12:34:56",
                                             "providerid": f"{NS}/host-m0/m0"}
    assert _secret(chain, "m0-networkdata")["networks"][0]["netmask"] == "255.255.255.0"
    assert chain.left() == {"Metal3DataClaim": ["m0"], "Metal3Data": ["tpl-0"],
                            "IPClaim": ["tpl-0-pool1"], "IPAddress": ["pool1-10-9-0-2"],
                            "Secret": ["m0-metadata", "m0-networkdata"]}
    # release, as the Metal3Machine controller does on delete
    claim = chain.store.get(v2.Metal3DataClaim, meta.ObjectKey(NS, "m0"))
    chain.store.update(claim.with_meta(finalizers=tuple(
        f for f in claim.metadata.finalizers if f != metal3data.M3M_CLAIM_FINALIZER)))
    chain.store.delete(v2.Metal3DataClaim, claim.key)
    _retry(chain.settle)
    assert chain.left() == {}


def test_a_missing_pool_is_named_on_the_metal3data(chain: Chain) -> None:
    template = chain.store.get(v2.Metal3DataTemplate, meta.ObjectKey(NS, "tpl"))
    chain.store.create(v2.Metal3DataTemplate(
        metadata=meta.ObjectMeta(name="tpl2", namespace=NS),
        spec=(template.spec or v2.Metal3DataTemplateSpec()).model_copy(update={
            "network_data": None, "meta_data": v2.MetaData.model_validate(
                {"ipAddressesFromPool": [{"key": "ip", "name": "nopool"}]})})))
    _machine(chain, "m1")
    claim = chain.store.get(v2.Metal3DataClaim, meta.ObjectKey(NS, "m1"))
    chain.store.update(claim.model_copy(update={"spec": v2.Metal3DataClaimSpec(
        template=v2.ObjectRef(name="tpl2", namespace=NS))}))
    templates = metal3datatemplate.Metal3DataTemplateReconciler(store=chain.store,
                                                                clock=core_clock.ManualClock())
    for _ in range(3):
        templates.reconcile(meta.ObjectKey(NS, "tpl2"))
        for data in chain.store.list(v2.Metal3Data, namespace=NS):
            chain.datas.reconcile(data.key)
    data = chain.store.get(v2.Metal3Data, meta.ObjectKey(NS, "tpl2-0"))
    assert data.status == v2.Metal3DataStatus(ready=False,
                                              error_message="IPPool nopool not found")
    assert "IPPoolNotFound" in chain.events.reasons(meta.ObjectKey(NS, "m1"))


def test_a_capi_ipaddressclaim_is_served_from_a_metal3_pool(chain: Chain) -> None:
    store = chain.store
    store.create(capiipam.IPAddressClaim(
        metadata=meta.ObjectMeta(name="vm-0", namespace=NS),
        spec=capiipam.IPAddressClaimSpec(pool_ref=capiipam.IPPoolReference(
            name="pool1", kind="IPPool", api_group="ipam.metal3.io"))))
    for _ in range(3):
        chain.pools.reconcile(meta.ObjectKey(NS, "pool1"))
    claim = store.get(capiipam.IPAddressClaim, meta.ObjectKey(NS, "vm-0"))
    assert claim.status is not None and claim.status.address_ref is not None
    assert [(c.type, c.status, c.reason) for c in claim.status.conditions or ()] == [
        ("Ready", "True", capiipam.ALLOCATED)]
    address = store.get(capiipam.IPAddress, meta.ObjectKey(NS, claim.status.address_ref.name))
    assert (address.spec.address, address.spec.prefix, address.spec.gateway) == (
        "10.9.0.2", 24, "10.9.0.1")
    store.delete(capiipam.IPAddressClaim, claim.key)
    for _ in range(3):
        chain.pools.reconcile(meta.ObjectKey(NS, "pool1"))
    left = chain.left()
    assert "CAPI IPAddressClaim" not in left and "CAPI IPAddress" not in left, left
