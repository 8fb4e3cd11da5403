"""The Metal3Data controller on the memory store, with the template and IPPool controllers:
rendered Secrets, IP claims, nothing left after release, and bad input shown with Events."""

from metalcubed.core import ipallocator
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import capi, capiipam, ipam, meta
from metalcubed.core.api.capm3 import v1beta2 as v2
from metalcubed.core.reconcilers import metal3data
from tests.unit.reconcilers.data_lab import NS, DataLab


def test_a_claim_gets_rendered_secrets_with_an_address_from_the_pool() -> None:
    lab = DataLab()
    lab.pool()
    lab.machine("m0")
    lab.settle()
    data = lab.data_of("m0")
    assert data.status == v2.Metal3DataStatus(ready=True)
    assert data.spec is not None and data.spec.meta_data is not None
    assert (data.spec.meta_data.name, data.spec.network_data and data.spec.network_data.name) == (
        "m0-metadata", "m0-networkdata")
    assert lab.secret("m0-metadata") == {"name": "m0", "ip": "10.0.0.2", "index": "10",
                                         "providerid": f"{NS}/host-m0/m0"}
    network = lab.secret("m0-networkdata")
    assert network["networks"] == [{
        "type": "ipv4", "id": "public", "link": "enp1s0", "netmask": "255.255.255.248",
        "ip_address": "10.0.0.2", "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0",
                                              "gateway": "10.0.0.1", "services": []}]}]
    assert network["services"] == [{"type": "dns", "address": "10.0.0.53"}]
    secret = lab.store.get(meta.Secret, meta.ObjectKey(NS, "m0-metadata"))
    assert secret.type == metal3data.SECRET_TYPE
    assert secret.metadata.labels == {capi.CLUSTER_NAME_LABEL: "c1"}
    assert [(r.kind, r.name, r.controller) for r in secret.metadata.owner_references] == [
        ("Metal3Data", data.metadata.name, True)]
    claim = lab.store.get(ipam.IPClaim, meta.ObjectKey(NS, f"{data.metadata.name}-pool1"))
    assert metal3data.DATA_FINALIZER in claim.metadata.finalizers
    assert [r.uid for r in claim.metadata.owner_references] == [data.metadata.uid]


def test_a_rendered_secret_is_never_rendered_again() -> None:
    """Upstream: a host reprovisions in the state it was first given."""
    lab = DataLab()
    lab.pool()
    lab.machine("m0")
    lab.settle()
    before = lab.store.get(meta.Secret, meta.ObjectKey(NS, "m0-metadata"))
    template = lab.store.get(v2.Metal3DataTemplate, meta.ObjectKey(NS, "tpl"))
    lab.store.update(template.model_copy(update={"spec": v2.Metal3DataTemplateSpec.model_validate(
        {"metaData": {"strings": [{"key": "new", "value": "x"}]}})}))
    lab.settle()
    after = lab.store.get(meta.Secret, meta.ObjectKey(NS, "m0-metadata"))
    assert after.metadata.resource_version == before.metadata.resource_version


def test_releasing_a_machine_leaves_nothing_behind() -> None:
    lab = DataLab()
    lab.pool()
    lab.machine("m0")
    lab.machine("m1")
    lab.settle()
    assert lab.leftovers()["IPAddress"] == ["pool1-10-0-0-2", "pool1-10-0-0-3"]
    lab.release("m0")
    lab.release("m1")
    lab.settle()
    assert lab.leftovers() == {}
    pool = lab.store.get(ipam.IPPool, meta.ObjectKey(NS, "pool1"))
    assert pool.status is not None and not pool.status.indexes


def test_a_missing_pool_is_named_on_the_data_and_the_machine_then_served() -> None:
    lab = DataLab()
    lab.machine("m0")
    lab.settle()
    data = lab.data_of("m0")
    assert data.status == v2.Metal3DataStatus(ready=False, error_message="IPPool pool1 not found")
    m3m = meta.ObjectKey(NS, "m0")
    assert lab.events.reasons(m3m) == ["IPPoolNotFound"]  # once, not on every pass
    assert lab.events.reasons(data.key) == ["IPPoolNotFound"]
    lab.pool()
    lab.settle()
    assert lab.data_of("m0").status == v2.Metal3DataStatus(ready=True)
    assert lab.secret("m0-metadata")["ip"] == "10.0.0.2"


def test_an_exhausted_pool_is_named_and_a_freed_address_is_taken() -> None:
    lab = DataLab()
    lab.pool(subnet="10.0.0.0/30")  # .1 gateway, .0/.3 network/broadcast: one address
    lab.machine("m0")
    lab.machine("m1")
    lab.settle()
    assert lab.data_of("m0").status == v2.Metal3DataStatus(ready=True)
    waiting = lab.data_of("m1")
    assert waiting.status == v2.Metal3DataStatus(
        ready=False, error_message=f"IP Allocation for pool1 failed : {ipallocator.EXHAUSTED}")
    assert lab.events.reasons(meta.ObjectKey(NS, "m1")) == ["IPPoolExhausted"]
    lab.release("m0")
    lab.settle()
    assert lab.data_of("m1").status == v2.Metal3DataStatus(ready=True)
    assert lab.secret("m1-metadata")["ip"] == "10.0.0.2"


def test_a_malformed_template_is_named_with_its_field() -> None:
    lab = DataLab(template={"metaData": {"fromHostInterfaces": [
        {"key": "mac", "interface": "eth7"}]}})
    lab.machine("m0")
    lab.settle()
    status = lab.data_of("m0").status
    assert status is not None and status.ready is False
    assert status.error_message is not None and status.error_message.startswith(
        "spec.metaData.fromHostInterfaces[0]: the BareMetalHost has no NIC named 'eth7'")
    assert lab.events.reasons(meta.ObjectKey(NS, "m0")) == ["RenderFailed"]


def test_a_non_metal3_pool_gets_a_capi_ipaddressclaim_served_by_its_provider() -> None:
    lab = DataLab(template={"metaData": {"ipAddressesFromPool": [
        {"key": "ip", "name": "incluster", "kind": "InClusterIPPool",
         "apiGroup": "ipam.cluster.x-k8s.io"}]}})
    lab.machine("m0")
    lab.settle()
    data = lab.data_of("m0")
    key = meta.ObjectKey(NS, f"{data.metadata.name}-incluster")
    claim = lab.store.get(capiipam.IPAddressClaim, key)
    assert claim.spec.pool_ref == capiipam.IPPoolReference(
        name="incluster", kind="InClusterIPPool", api_group="ipam.cluster.x-k8s.io")
    assert data.status is not None and data.status.ready is False
    # the other provider answers
    lab.store.create(capiipam.IPAddress(
        metadata=meta.ObjectMeta(name="incluster-a", namespace=NS),
        spec=capiipam.IPAddressSpec(address="172.16.0.9", prefix=16, gateway="172.16.0.1",
                                    claim_ref=capiipam.IPAddressClaimReference(name=key.name),
                                    pool_ref=claim.spec.pool_ref)))
    lab.store.update_status(claim.model_copy(update={"status": capiipam.IPAddressClaimStatus(
        address_ref=capiipam.IPAddressReference(name="incluster-a"))}))
    lab.settle()
    assert lab.secret("m0-metadata")["ip"] == "172.16.0.9"
    lab.release("m0")
    lab.settle()
    assert "IPAddressClaim" not in lab.leftovers()


def test_wiring_maps_owned_claims_to_their_data() -> None:
    owner = meta.OwnerReference(api_version=v2.API_VERSION, kind="Metal3Data", name="tpl-0",
                                uid="u", controller=True)
    claim = ipam.IPClaim(metadata=meta.ObjectMeta(name="tpl-0-p", namespace=NS,
                                                  owner_references=(owner,)),
                         spec=ipam.IPClaimSpec(pool=meta.ObjectReference(name="p")))
    (watch,) = [w for w in metal3data.WIRING.watches if w.kind is ipam.IPClaim]
    assert list(watch.keys(claim, lambda _i, _v: ())) == [meta.ObjectKey(NS, "tpl-0")]


def _force_delete_ipclaim(lab: DataLab, machine: str) -> None:
    name = f"{lab.data_of(machine).metadata.name}-pool1"
    claim = lab.store.get(ipam.IPClaim, meta.ObjectKey(NS, name))
    claim = lab.store.update(claim.with_meta(finalizers=()))
    lab.store.delete(ipam.IPClaim, claim.key)


def test_a_force_deleted_ipclaim_is_claimed_again_for_the_rendered_address() -> None:
    """The Secrets hold the address: it must stay claimed, or another machine would get it."""
    lab = DataLab()
    lab.pool()
    lab.machine("m0")
    lab.settle()
    _force_delete_ipclaim(lab, "m0")
    lab.settle()
    data = lab.data_of("m0")
    claim = lab.store.get(ipam.IPClaim, meta.ObjectKey(NS, f"{data.metadata.name}-pool1"))
    assert claim.metadata.annotations == {ipam.IP_ADDRESS_ANNOTATION: "10.0.0.2"}
    assert lab.store.get(ipam.IPAddress, meta.ObjectKey(NS, "pool1-10-0-0-2")).spec.claim.name == (
        claim.metadata.name)
    assert data.status == v2.Metal3DataStatus(ready=True)


def test_a_rendered_address_taken_by_another_claim_meanwhile_is_reported() -> None:
    lab = DataLab()
    lab.pool(subnet="10.0.0.0/30")  # one address
    lab.machine("m0")
    lab.machine("m1")
    lab.settle()
    _force_delete_ipclaim(lab, "m0")
    lab.pools.reconcile(meta.ObjectKey(NS, "pool1"))  # m1's waiting claim takes the address
    lab.settle()
    assert lab.data_of("m1").status == v2.Metal3DataStatus(ready=True)
    status = lab.data_of("m0").status
    assert status is not None and status.ready is True  # its Secrets exist: it was rendered
    assert status.error_message is not None and "the address 10.0.0.2 the Secrets hold is not " \
        "given back" in status.error_message
    assert lab.events.reasons(meta.ObjectKey(NS, "m0"))[-1] == "IPAddressLost"


def test_host_named_claims_let_a_preallocation_pin_a_hosts_address() -> None:
    """Upstream's --enable-bmh-name-based-preallocation (docs/ip_reuse.md): the IPClaim is
    named <host>-<pool>, so preAllocations keyed by it survive machine replacement."""
    lab = DataLab()
    lab.datas = metal3data.Metal3DataReconciler(store=lab.store, clock=lab.clock,
                                                events=lab.events, host_named_claims=True)
    lab.pool()
    pool = lab.store.get(ipam.IPPool, meta.ObjectKey(NS, "pool1"))
    lab.store.update(pool.model_copy(update={"spec": pool.spec.model_copy(update={
        "pre_allocations": {"host-m1-pool1": "10.0.0.5"}})}))
    lab.machine("m0")
    lab.machine("m1")
    lab.settle()
    assert lab.secret("m1-metadata")["ip"] == "10.0.0.5"
    claim = lab.store.get(ipam.IPClaim, meta.ObjectKey(NS, "host-m1-pool1"))
    assert claim.metadata.labels[metal3data.DATA_LABEL] == lab.data_of("m1").metadata.name
    assert claim.metadata.labels[metal3data.POOL_LABEL] == "pool1"
    lab.release("m0")
    lab.release("m1")
    lab.settle()
    assert lab.leftovers() == {}


def test_nothing_is_rendered_while_the_cluster_is_paused() -> None:
    """clusterctl move pauses the Cluster; the moved objects must not be written meanwhile."""
    lab = DataLab()
    lab.pool()
    lab.machine("m0")
    lab.templates.reconcile(meta.ObjectKey(NS, "tpl"))  # the Metal3Data exists
    cluster = lab.store.get(capi.Cluster, lab.cluster.key)
    lab.store.update(cluster.model_copy(update={"spec": capi.ClusterSpec(paused=True)}))
    data = lab.data_of("m0")
    assert lab.datas.reconcile(data.key).requeue_after_s == metal3data.REQUEUE_S
    assert lab.store.list(ipam.IPClaim, namespace=NS) == []
    cluster = lab.store.get(capi.Cluster, lab.cluster.key)
    lab.store.update(cluster.model_copy(update={"spec": capi.ClusterSpec(paused=False)}))
    lab.settle()
    assert lab.data_of("m0").status == v2.Metal3DataStatus(ready=True)


def test_a_metal3data_deleted_under_a_live_claim_keeps_its_secrets_until_the_claim_goes() -> None:
    lab = DataLab()
    lab.pool()
    lab.machine("m0")
    lab.settle()
    data = lab.data_of("m0")
    lab.store.delete(v2.Metal3Data, data.key)
    lab.datas.reconcile(data.key)
    assert lab.leftovers()["Secret"] == ["m0-metadata", "m0-networkdata"]
    assert lab.leftovers()["IPAddress"] == ["pool1-10-0-0-2"]
    lab.release("m0")
    (watch,) = [w for w in metal3data.WIRING.watches if w.kind is v2.Metal3DataClaim]
    claim = lab.store.get(v2.Metal3DataClaim, meta.ObjectKey(NS, "m0"))
    assert list(watch.keys(claim, lambda _i, _v: ())) == [data.key]  # the claim's going wakes it
    lab.settle()
    assert lab.leftovers() == {}


def test_a_machine_re_created_under_the_same_name_frees_the_old_data() -> None:
    """The old Metal3Data waits for its own claim, not for a new claim of the same name
    (found by the property test: the old Data and its address stayed for ever)."""
    lab = DataLab()
    lab.pool()
    lab.machine("m0")
    lab.settle()
    old = lab.data_of("m0")
    lab.release("m0")
    lab.templates.reconcile(meta.ObjectKey(NS, "tpl"))  # the claim lets go; its Data is deleting
    for kind, name in ((v2.Metal3Machine, "m0"), (capi.Machine, "m0"),
                       (bmh.BareMetalHost, "host-m0")):
        lab.store.delete(kind, meta.ObjectKey(NS, name))
    lab.machine("m0")
    lab.settle()
    datas = lab.store.list(v2.Metal3Data, namespace=NS)
    assert [d.metadata.name for d in datas] == [lab.data_of("m0").metadata.name]
    assert lab.data_of("m0").metadata.uid != old.metadata.uid
    assert lab.data_of("m0").status is not None and lab.data_of("m0").status.ready
