"""The Metal3Machine reconciler on the memory store: claim, provision, release."""

from metalcubed.core import hostselection
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import capi
from metalcubed.core.api.capm3 import v1beta2 as v2
from metalcubed.core.reconcilers import metal3machine
from tests.unit.reconcilers.capm3_lab import NS, Lab

P = bmh.ProvisioningState


def conditions(m3m: v2.Metal3Machine) -> dict[str, tuple[str, str, str]]:
    assert m3m.status is not None
    return {c.type: (c.status, c.reason, c.message) for c in m3m.status.conditions or ()}


def test_a_machine_claims_a_free_host_and_sets_it_up_in_one_write() -> None:
    lab = Lab()
    lab.host("busy", state=P.PROVISIONING)
    lab.host("h0")
    key = lab.machine("m0")
    lab.settle(key)
    m3m = lab.m3m(key)
    assert m3m.metadata.annotations[metal3machine.HOST_ANNOTATION] == f"{NS}/h0"
    host = lab.get_host("h0")
    assert lab.consumer("h0") == "m0" and host.spec.online
    assert host.spec.image is not None and host.spec.image.url == "http://172.22.0.1/node.qcow2"
    assert host.spec.user_data is not None and host.spec.user_data.name == "boot"
    assert host.metadata.labels[capi.CLUSTER_NAME_LABEL] == "c1"
    assert metal3machine.FINALIZER in m3m.metadata.finalizers
    assert conditions(m3m)["AssociateBareMetalHost"][:2] == ("True",
                                                             "AssociateBareMetalHostSuccess")
    assert lab.consumer("busy") is None


def test_provisioned_host_gives_the_provider_id_and_addresses() -> None:
    lab = Lab()
    lab.host("h0")
    key = lab.machine("m0")
    lab.settle(key)
    lab.set_state("h0", P.PROVISIONED)
    lab.settle(key)
    m3m = lab.m3m(key)
    assert m3m.spec is not None and m3m.spec.provider_id == f"metal3://{NS}/h0/m0"
    assert m3m.status is not None and m3m.status.initialization is not None
    assert m3m.status.initialization.provisioned is True
    assert m3m.status.addresses == (
        v2.MachineAddress(address="192.168.111.20", type="InternalIP"),
        v2.MachineAddress(address="h0", type="Hostname"))
    version = m3m.metadata.resource_version
    lab.settle(key)
    assert lab.m3m(key).metadata.resource_version == version  # nothing new to write


def test_no_free_host_is_a_condition_and_an_event_and_a_retry() -> None:
    lab = Lab()
    key = lab.machine("m0")
    lab.settle(key)
    assert conditions(lab.m3m(key))["AssociateBareMetalHost"] == (
        "False", "AssociateBareMetalHostFailed", metal3machine.NO_HOST)
    assert lab.events.reasons(key) == ["NoAvailableHost"]
    assert lab.reconciler.reconcile(key).requeue_after_s == metal3machine.REQUEUE_S
    lab.host("late")
    lab.settle(key)
    assert lab.consumer("late") == "m0"


def test_gates_before_claiming_name_what_is_awaited() -> None:
    lab = Lab(ready=False)
    lab.host("h0")
    key = lab.machine("m0")
    lab.settle(key)
    # Clusters are not watched: a machine waiting for one looks again by itself.
    assert lab.reconciler.reconcile(key).requeue_after_s == metal3machine.REQUEUE_S
    assert conditions(lab.m3m(key))["AssociateBareMetalHost"][1] == (
        "WaitingForClusterInfrastructureReady")
    lab2 = Lab()
    lab2.host("h0")
    key2 = lab2.machine("m0", secret=None)
    lab2.settle(key2)
    assert conditions(lab2.m3m(key2))["AssociateBareMetalHost"][1] == "WaitingForBootstrapData"
    assert lab.consumer("h0") is None and lab2.consumer("h0") is None


def test_selector_and_failure_domain_and_a_truthful_fallback() -> None:
    lab = Lab()
    lab.host("a", labels={"role": "cp", hostselection.FAILURE_DOMAIN_LABEL: "fd1"})
    lab.host("b", labels={"role": "worker"})
    key = lab.machine("m0", spec={"image": {"url": "http://x/i", "checksum": "c"},
                                  "hostSelector": {"matchLabels": {"role": "worker"}}},
                      failure_domain="fd1")
    lab.settle(key)
    assert lab.consumer("b") == "m0"
    message = conditions(lab.m3m(key))["AssociateBareMetalHost"][2]
    assert message == "failure domain 'fd1' has no free host: took b from no failure domain"


def test_a_host_someone_else_took_is_never_stolen_back() -> None:
    """Upstream #3516: Update() re-writes its consumerRef onto a host claimed since."""
    lab = Lab()
    lab.host("h0")
    lab.host("h1")
    key = lab.machine("m0")
    lab.settle(key)
    mine = lab.m3m(key).metadata.annotations[metal3machine.HOST_ANNOTATION].rpartition("/")[2]
    host = lab.get_host(mine)
    intruder = host.spec.model_copy(update={"consumer_ref": host.spec.consumer_ref.model_copy(
        update={"name": "intruder"})})
    lab.store.update(host.model_copy(update={"spec": intruder}))
    lab.settle(key)
    assert lab.consumer(mine) == "intruder"
    other = "h1" if mine == "h0" else "h0"
    assert lab.consumer(other) == "m0"


def test_deleting_deprovisions_then_releases_the_host() -> None:
    lab = Lab()
    lab.host("h0")
    key = lab.machine("m0")
    lab.settle(key)
    lab.set_state("h0", P.PROVISIONED)
    lab.settle(key)
    lab.store.delete(v2.Metal3Machine, key)
    lab.settle(key)
    host = lab.get_host("h0")
    assert host.spec.image is None and host.spec.user_data is None and not host.spec.online
    assert lab.consumer("h0") == "m0"  # still deprovisioning: kept
    lab.set_state("h0", P.DEPROVISIONING)
    lab.settle(key)
    lab.set_state("h0", P.AVAILABLE)
    lab.settle(key)
    assert lab.consumer("h0") is None
    assert capi.CLUSTER_NAME_LABEL not in lab.get_host("h0").metadata.labels
    assert lab.store.list(v2.Metal3Machine, namespace=NS) == []


def test_a_data_template_is_refused_until_rendering_exists() -> None:
    lab = Lab()
    lab.host("h0")
    key = lab.machine("m0", spec={"image": {"url": "http://x/i", "checksum": "c"},
                                  "dataTemplate": {"name": "t"}})
    lab.settle(key)
    assert conditions(lab.m3m(key))["AssociateBareMetalHost"][1] == "InvalidConfiguration"
    assert lab.consumer("h0") is None


def test_wiring_maps_hosts_and_machines_to_the_metal3machine() -> None:
    lab = Lab()
    lab.host("h0")
    key = lab.machine("m0")
    lab.settle(key)
    host_watch = next(w for w in metal3machine.WIRING.watches if w.kind is bmh.BareMetalHost)
    assert list(host_watch.keys(lab.get_host("h0"), lambda _n, _v: [])) == [key]
    machine = capi.Machine.model_validate({"metadata": {"name": "m0", "namespace": NS},
                                           "spec": {"infrastructureRef": {
                                               "kind": "Metal3Machine", "name": "m0"}}})
    machine_watch = next(w for w in metal3machine.WIRING.watches if w.kind is capi.Machine)
    assert list(machine_watch.keys(machine, lambda _n, _v: [])) == [key]
