"""The Metal3Machine reconciler on the memory store: claim, provision, the Node's providerID,
automatedCleaningMode, pause for clusterctl move, node reuse, release."""

import json
from datetime import UTC, datetime

from metalcubed.core import hostselection
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import capi, meta, node
from metalcubed.core.api.capm3 import v1beta2 as v2
from metalcubed.core.reconcilers import capm3host, metal3machine
from tests.unit.reconcilers.capm3_lab import NS, Lab

IMAGE_SPEC = {"url": "http://x/i", "checksum": "c"}

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
        v2.MachineAddress(address="h0", type="Hostname"),
        v2.MachineAddress(address="h0", type="InternalDNS"))
    version = m3m.metadata.resource_version
    lab.settle(key)
    assert lab.m3m(key).metadata.resource_version == version  # nothing new to write


def test_no_free_host_is_a_condition_and_an_event_and_a_retry() -> None:
    lab = Lab()
    key = lab.machine("m0")
    lab.settle(key)
    assert conditions(lab.m3m(key))["AssociateBareMetalHost"] == (
        "False", "AssociateBareMetalHostFailed",
        "No available host found: no BareMetalHost matches the namespace")
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


def _node(lab: Lab, name: str, *, uid: str | None, provider_id: str | None = None,
          labels: dict[str, str] | None = None) -> None:
    lab.store.create(node.Node.model_validate({
        "metadata": {"name": name, "labels": {**({node.UUID_LABEL: uid} if uid else {}),
                                              **(labels or {})}},
        "spec": {"providerID": provider_id} if provider_id else {}}))


def _provisioned(lab: Lab, host: str = "h0", machine: str = "m0", **kw: object
                 ) -> meta.ObjectKey:
    lab.host(host)
    key = lab.machine(machine, **kw)  # type: ignore[arg-type]
    lab.settle(key)
    lab.set_state(host, P.PROVISIONED)
    return key


def test_the_node_of_the_host_gets_the_provider_id_found_by_its_uid_label() -> None:
    lab = Lab()
    key = _provisioned(lab)
    uid = lab.get_host("h0").metadata.uid
    _node(lab, "other", uid="someone-else")
    _node(lab, "n0", uid=uid)
    lab.settle(key)
    nodes = {n.metadata.name: n.spec.provider_id for n in lab.store.list(node.Node)}
    assert nodes == {"other": None, "n0": f"metal3://{NS}/h0/m0"}
    assert conditions(lab.m3m(key))["Ready"][:2] == ("True", "Ready")
    # The Node's appearance queues the machine: uuid label -> host -> machine.
    node_watch = next(w for w in metal3machine.WIRING.watches if w.kind is node.Node)
    index = {(metal3machine.HOST_UID_INDEX, uid): [lab.get_host("h0").key],
             (metal3machine.HOST_INDEX, f"{NS}/h0"): [key]}
    found = lab.store.get(node.Node, meta.ObjectKey("", "n0"))
    assert list(node_watch.keys(found, lambda n, v: index.get((n, v), []))) == [key]


def test_a_node_claiming_another_provider_id_is_a_condition_and_an_event() -> None:
    lab = Lab()
    key = _provisioned(lab)
    _node(lab, "n0", uid=lab.get_host("h0").metadata.uid, provider_id="metal3://x/y/z")
    lab.settle(key)
    ready = conditions(lab.m3m(key))["Ready"]
    assert ready[:2] == ("False", "SettingProviderIDOnNodeFailed")
    assert "n0" in ready[2] and "metal3://x/y/z" in ready[2]
    assert lab.events.reasons(key).count("SettingProviderIDOnNodeFailed") == 1
    assert lab.store.get(node.Node, meta.ObjectKey("", "n0")).spec.provider_id == (
        "metal3://x/y/z")  # never overwritten


def test_two_nodes_for_one_host_are_refused_naming_them() -> None:
    lab = Lab()
    key = _provisioned(lab)
    uid = lab.get_host("h0").metadata.uid
    _node(lab, "n0", uid=uid)
    _node(lab, "n1", uid=uid)
    lab.settle(key)
    assert "Nodes n0, n1 all carry" in conditions(lab.m3m(key))["Ready"][2]
    assert all(n.spec.provider_id is None for n in lab.store.list(node.Node))


def test_without_a_uid_label_the_node_is_found_by_hostname() -> None:
    lab = Lab()
    key = _provisioned(lab)
    _node(lab, "n0", uid=None, labels={"kubernetes.io/hostname": "h0"})
    lab.settle(key)
    assert lab.store.get(node.Node, meta.ObjectKey("", "n0")).spec.provider_id == (
        f"metal3://{NS}/h0/m0")


def test_automated_cleaning_mode_follows_the_machine() -> None:
    lab = Lab()
    key = _provisioned(lab, spec={"image": {"url": "http://x/i", "checksum": "c"},
                                  "automatedCleaningMode": "disabled"})
    lab.settle(key)
    assert lab.get_host("h0").spec.automated_cleaning_mode == bmh.AutomatedCleaningMode.DISABLED
    m3m = lab.m3m(key)
    assert m3m.spec is not None
    lab.store.update(m3m.model_copy(update={"spec": m3m.spec.model_copy(
        update={"automated_cleaning_mode": "metadata"})}))
    lab.settle(key)
    host = lab.get_host("h0")
    assert host.spec.automated_cleaning_mode == bmh.AutomatedCleaningMode.METADATA
    assert host.spec.image is not None  # a provisioned host is never re-imaged


def _pause(lab: Lab, paused: bool) -> None:
    cluster = lab.store.get(capi.Cluster, meta.ObjectKey(NS, "c1"))
    lab.store.update(cluster.model_copy(update={"spec": cluster.spec.model_copy(
        update={"paused": paused})}))


def test_a_paused_cluster_pauses_its_hosts_for_clusterctl_move_then_unpauses() -> None:
    lab = Lab()
    key = _provisioned(lab)
    lab.settle(key)
    annotations = lab.get_host("h0").metadata.annotations
    assert annotations == {capm3host.BLOCK_MOVE_ANNOTATION: ""}  # claimed, not movable
    _pause(lab, True)
    lab.settle(key)
    annotations = lab.get_host("h0").metadata.annotations
    assert annotations[bmh.PAUSED_ANNOTATION] == bmh.PAUSED_BY_CAPM3
    saved = json.loads(annotations[bmh.STATUS_ANNOTATION])
    assert saved["provisioning"]["state"] == "provisioned" and "hardware" not in saved
    assert capm3host.BLOCK_MOVE_ANNOTATION not in annotations  # now clusterctl may move it
    assert lab.reconciler.reconcile(key).requeue_after_s == metal3machine.REQUEUE_S
    _pause(lab, False)
    lab.settle(key)
    annotations = lab.get_host("h0").metadata.annotations
    assert bmh.PAUSED_ANNOTATION not in annotations
    assert capm3host.BLOCK_MOVE_ANNOTATION in annotations


def test_a_users_pause_on_the_host_is_left_alone() -> None:
    lab = Lab()
    key = _provisioned(lab)
    lab.settle(key)
    host = lab.get_host("h0")
    lab.store.update(host.with_meta(annotations={bmh.PAUSED_ANNOTATION: "maintenance"}))
    lab.settle(key)
    assert lab.get_host("h0").metadata.annotations == {bmh.PAUSED_ANNOTATION: "maintenance"}


def test_a_waiting_machine_is_queued_when_a_host_of_its_namespace_frees_up() -> None:
    lab = Lab()
    key = lab.machine("m0")
    lab.settle(key)
    assert metal3machine._waiting(lab.m3m(key)) == [NS]
    lab.host("late")
    host_watch = next(w for w in metal3machine.WIRING.watches if w.kind is bmh.BareMetalHost)
    lookups: list[tuple[str, str]] = []

    def lookup(index: str, value: str) -> list[meta.ObjectKey]:
        lookups.append((index, value))
        return [key] if index == metal3machine.WAITING_INDEX and value == NS else []

    assert list(host_watch.keys(lab.get_host("late"), lookup)) == [key]
    busy = lab.get_host("late")
    lab.store.update_status(busy.model_copy(update={"status": busy.status.model_copy(update={
        "provisioning": busy.status.provisioning.model_copy(
            update={"state": P.PROVISIONING})})}))
    lookups.clear()
    assert list(host_watch.keys(lab.get_host("late"), lookup)) == []
    assert (metal3machine.WAITING_INDEX, NS) not in lookups  # a busy host wakes nobody


def test_node_reuse_books_the_released_host_for_the_same_machine_deployment() -> None:
    lab = Lab()
    lab.store.create(v2.Metal3MachineTemplate.model_validate({
        "metadata": {"name": "workers", "namespace": NS},
        "spec": {"nodeReuse": True, "template": {"spec": {"image": IMAGE_SPEC}}}}))
    lab.host("h0")
    lab.host("h1")
    key = lab.machine("m0", deployment="md1", cloned_from="workers")
    lab.settle(key)
    mine = lab.m3m(key).metadata.annotations[metal3machine.HOST_ANNOTATION].rpartition("/")[2]
    lab.set_state(mine, P.PROVISIONED)
    lab.settle(key)
    lab.store.delete(v2.Metal3Machine, key)
    lab.settle(key)
    lab.set_state(mine, P.AVAILABLE)
    lab.settle(key)
    host = lab.get_host(mine)
    assert host.metadata.labels[capm3host.NODE_REUSE_LABEL] == "md-md1"
    assert host.spec.consumer_ref is not None and host.spec.consumer_ref.kind == "Cluster"
    # Another MachineDeployment's machine may not take it; one of md1 takes it first.
    other = "h1" if mine == "h0" else "h0"
    stranger = lab.machine("s0", deployment="md2")
    lab.settle(stranger)
    assert lab.consumer(other) == "s0" and lab.get_host(mine).spec.consumer_ref.kind == (
        "Cluster")
    heir = lab.machine("m1", deployment="md1")
    lab.settle(heir)
    assert lab.consumer(mine) == "m1"
    assert capm3host.NODE_REUSE_LABEL not in lab.get_host(mine).metadata.labels


def test_a_machine_waits_for_its_booked_host_instead_of_taking_another() -> None:
    lab = Lab()
    lab.host("booked", labels={capm3host.NODE_REUSE_LABEL: "md-md1"}, state=P.DEPROVISIONING)
    lab.host("fresh")
    key = lab.machine("m0", deployment="md1")
    lab.settle(key)
    assert lab.consumer("fresh") is None and lab.consumer("booked") is None
    status, reason, message = conditions(lab.m3m(key))["AssociateBareMetalHost"]
    assert (status, reason) == ("False", "AssociateBareMetalHostFailed")
    assert "booked" in message and "md-md1" in message
    lab.set_state("booked", P.AVAILABLE)
    lab.settle(key)
    assert lab.consumer("booked") == "m0"


def test_pausing_the_cluster_queues_its_machines() -> None:
    cluster = capi.Cluster(metadata=meta.ObjectMeta(name="c1", namespace=NS))
    m3m = v2.Metal3Machine(metadata=meta.ObjectMeta(
        name="m0", namespace=NS, labels={capi.CLUSTER_NAME_LABEL: "c1"}))
    assert metal3machine._cluster_of(m3m) == [f"{NS}/c1"]
    watch = next(w for w in metal3machine.WIRING.watches if w.kind is capi.Cluster)
    index = {(metal3machine.CLUSTER_INDEX, f"{NS}/c1"): [m3m.key]}
    assert list(watch.keys(cluster, lambda n, v: index.get((n, v), []))) == [m3m.key]


def test_only_cluster_changes_a_machine_reads_queue_its_machines() -> None:
    """Cluster API rewrites the Cluster's status as each Machine moves: not worth a pass of
    every machine. Pausing, infrastructure becoming ready and deletion are."""
    watch = next(w for w in metal3machine.WIRING.watches if w.kind is capi.Cluster)
    assert watch.update_filter is not None
    cluster = capi.Cluster.from_wire({
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
        "metadata": {"name": "c1", "namespace": NS}, "spec": {}, "status": {}})
    counted = cluster.model_copy(update={"status": capi.Cluster.from_wire({
        "metadata": {"name": "c1"}, "status": {"workers": {"readyReplicas": 7}}}).status})
    assert not watch.update_filter(cluster, counted)
    ready = capi.Cluster.from_wire({
        "metadata": {"name": "c1", "namespace": NS}, "spec": {}, "status": {"deprecated": {
            "v1beta1": {"conditions": [{"type": "InfrastructureReady", "status": "True",
                                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}}})
    assert ready.infrastructure_ready() and watch.update_filter(cluster, ready)
    paused = cluster.model_copy(update={"spec": cluster.spec.model_copy(
        update={"paused": True})})
    assert watch.update_filter(cluster, paused)
    deleting = cluster.with_meta(deletion_timestamp=datetime(2026, 1, 1, tzinfo=UTC))
    assert watch.update_filter(cluster, deleting)


def test_machine_and_node_status_moves_do_not_queue_the_metal3machine() -> None:
    watches = {w.kind: w for w in metal3machine.WIRING.watches}
    machine_filter, node_filter = (watches[capi.Machine].update_filter,
                                   watches[node.Node].update_filter)
    assert machine_filter is not None and node_filter is not None
    wire = {"metadata": {"name": "m0", "namespace": NS},
            "spec": {"clusterName": "c1", "bootstrap": {}}}
    machine = capi.Machine.model_validate(wire)
    running = capi.Machine.model_validate({**wire, "status": {"phase": "Running"}})
    with_data = capi.Machine.model_validate({**wire, "spec": {
        "clusterName": "c1", "bootstrap": {"dataSecretName": "m0-bootstrap"}}})
    assert not machine_filter(machine, running)
    assert machine_filter(machine, with_data)
    assert machine_filter(machine, machine.with_meta(labels={"a": "b"}))
    n0 = node.Node(metadata=meta.ObjectMeta(name="n0"))
    beat = node.Node.model_validate({**n0.to_wire(), "status": {"conditions": [
        {"type": "Ready", "status": "True"}]}})
    assert not node_filter(n0, beat)
    assert node_filter(n0, n0.with_meta(labels={node.UUID_LABEL: "u"}))
    assert node_filter(n0, node.Node.model_validate(
        {**n0.to_wire(), "spec": {"providerID": "metal3://ns/h/m"}}))


def test_no_host_names_the_cause_selector_or_busy_hosts_with_one_event() -> None:
    lab = Lab()
    lab.host("worker-busy", labels={"role": "worker"}, state=P.PROVISIONING)
    lab.host("cp", labels={"role": "cp"})
    key = lab.machine("m0", spec={"image": IMAGE_SPEC,
                                  "hostSelector": {"matchLabels": {"role": "storage"}}})
    lab.settle(key)
    assert conditions(lab.m3m(key))["AssociateBareMetalHost"][2] == (
        "No available host found: no BareMetalHost matches spec.hostSelector")
    other = lab.machine("m1", spec={"image": IMAGE_SPEC,
                                    "hostSelector": {"matchLabels": {"role": "worker"}}})
    lab.settle(other)
    assert conditions(lab.m3m(other))["AssociateBareMetalHost"][2] == (
        "No available host found: 1 hosts match spec.hostSelector, none is free "
        "(1 not available or ready)")
    assert lab.events.reasons(key) == ["NoAvailableHost"]  # six passes, one Event each
    assert lab.events.reasons(other) == ["NoAvailableHost"]
