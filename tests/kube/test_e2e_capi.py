"""End to end: a Cluster on BareMetalHosts with real Cluster API core v1.13.6.

Everything runs as it would for a user of the lab: the real kube-apiserver, Cluster API core
(`capi-manager`), the lab kubelet (a Node per provisioned host), and `metalcubed manager` as a
separate process with every controller group (bmo, capm3, ipam) and the fixture provisioner.
The test only creates what a user applies (hosts, a Cluster with a Machine-based control
plane, a MachineDeployment), scales, deletes, and watches what the API server shows:

  hosts registering -> available
  Machines Pending -> (Provisioning -> Provisioned ->) Running, one host each, a Node each
  MachineDeployment 2 -> 1: one Machine goes, its host is deprovisioned and released
  the worker's Node turns NotReady: MachineHealthCheck creates a Metal3Remediation, which
  powers the host off, taints the Node out-of-service, powers it on, untaints it; the Node is
  Ready again and MachineHealthCheck deletes the remediation (same Machine, same host)
  Cluster deleted: every host available and free, no Machine, Metal3Machine, Node,
  Metal3Data, Metal3DataClaim, IPClaim, IPAddress or rendered Secret left.
"""

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as kconfig
from kubernetes import watch as k8s_watch

from metalcubed.controllers.kube import localcluster
from tests.kube import capi_support as lab
from tests.kube import test_e2e_support as e2e

NS = "capi-e2e"
MANAGER_FLAGS = ("--fixture-delay-scale", "0.1", "--concurrency", "4")


@pytest.fixture(scope="module")
def cluster(kube_binaries: localcluster.Binaries, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[localcluster.Cluster]:
    directory = tmp_path_factory.mktemp("capi-e2e")
    started = lab.start(directory, kube_binaries)
    try:
        yield started
    finally:
        localcluster.stop(directory)


@pytest.fixture(scope="module")
def api(cluster: localcluster.Cluster) -> Iterator[k8s.ApiClient]:
    client = kconfig.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield client
    client.close()


class PhaseRecorder:
    """Every phase each Machine shows, in order, from a watch (Provisioned can last less than
    a polling interval)."""

    def __init__(self, api: k8s.ApiClient, ns: str) -> None:
        self.phases: dict[str, list[str]] = {}
        self._watch = k8s_watch.Watch()
        objects = k8s.CustomObjectsApi(api)
        # Listed here, watched from that version: nothing written after __init__ is missed,
        # however late the thread's watch request reaches the API server.
        listed = objects.list_namespaced_custom_object(lab.CAPI_GROUP, lab.V1BETA2, ns,
                                                       "machines")
        for obj in listed["items"]:
            self._see(obj)
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        args=(objects, ns, listed["metadata"]["resourceVersion"]))
        self._thread.start()

    def _see(self, obj: dict[str, "e2e.Any"]) -> None:
        phase = (obj.get("status") or {}).get("phase")
        seen = self.phases.setdefault(obj["metadata"]["name"], [])
        if phase and (not seen or seen[-1] != phase):
            seen.append(phase)

    def _run(self, objects: k8s.CustomObjectsApi, ns: str, since: str) -> None:
        try:
            for event in self._watch.stream(
                    objects.list_namespaced_custom_object, lab.CAPI_GROUP, lab.V1BETA2, ns,
                    "machines", resource_version=since, timeout_seconds=600):
                self._see(event["object"])
        except Exception:  # the stream is cut when the test stops watching
            return

    def stop(self) -> None:
        self._watch.stop()


class ChangeRecorder:
    """The successive values of `value(object)` for one object, from a watch (list function
    of the official client + field selector), and whether it was deleted."""

    def __init__(self, list_fn: "e2e.Callable[..., object]", field_selector: str,
                 value: "e2e.Callable[[dict[str, object]], object]") -> None:
        self.values: list[object] = []
        self.deleted = False
        self._watch = k8s_watch.Watch()
        # Listed here, watched from that version (see PhaseRecorder).
        listed = _plain(list_fn(field_selector=field_selector))
        for obj in listed.get("items") or ():
            self._see(value, obj)
        self._thread = threading.Thread(
            target=self._run, daemon=True,
            args=(list_fn, field_selector, value, listed["metadata"]["resourceVersion"]))
        self._thread.start()

    def _see(self, value: "e2e.Callable[[dict[str, object]], object]",
             obj: dict[str, object]) -> None:
        current = value(obj)
        if not self.values or self.values[-1] != current:
            self.values.append(current)

    def _run(self, list_fn: "e2e.Callable[..., object]", field_selector: str,
             value: "e2e.Callable[[dict[str, object]], object]", since: str) -> None:
        try:
            for event in self._watch.stream(list_fn, field_selector=field_selector,
                                            resource_version=since, timeout_seconds=300):
                if event["type"] == "DELETED":
                    self.deleted = True
                    continue
                self._see(value, _plain(event["object"]))
        except Exception:  # the stream is cut when the test stops watching
            return

    def stop(self) -> None:
        self._watch.stop()


def _plain(obj: object) -> dict[str, "e2e.Any"]:
    """A client model (list_node's) as the dict the custom-object calls give."""
    return obj if isinstance(obj, dict) else k8s.ApiClient().sanitize_for_serialization(obj)


def _wait(what: str, predicate: "e2e.Callable[[], bool]", timeout_s: float,
          show: "e2e.Callable[[], object]") -> float:
    began = time.monotonic()
    try:
        e2e.wait_until(predicate, timeout_s=timeout_s, interval_s=0.5, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; now: {show()}") from None
    return time.monotonic() - began


def test_a_cluster_runs_on_baremetalhosts_scales_down_and_leaves_nothing(
    cluster: localcluster.Cluster, api: k8s.ApiClient, tmp_path: Path,
) -> None:
    ns = lab.Lab(api, NS)
    ns.namespace()
    with e2e.running_manager(cluster.kubeconfig, NS, tmp_path / "manager.log",
                             *MANAGER_FLAGS) as manager:
        hosts = ns.hosts(4)

        def state() -> object:
            return {"hosts": ns.host_states(), "machines": ns.phases(),
                    "nodes": sorted(ns.nodes()), "manager": manager.log()[-1500:]}

        _wait("hosts available", lambda: all(
            s == "available" for s, _ in ns.host_states().values()), 90, state)
        recorder = PhaseRecorder(api, NS)
        ns.cluster("lab", cluster.kubeconfig)
        ns.machine_template("lab-controlplane")
        ns.ip_pool("lab-pool", start="192.168.111.100", end="192.168.111.120", prefix=24,
                   gateway="192.168.111.1")
        ns.data_template("lab-workers-data", pool="lab-pool")
        ns.machine_template("lab-workers", data_template="lab-workers-data")
        ns.control_plane_machine("lab", "lab-cp-0", template="lab-controlplane")
        ns.machine_deployment("lab", "lab-workers", template="lab-workers", replicas=2)

        def running(count: int) -> bool:
            phases = ns.phases()
            return len(phases) == count and all(p == "Running" for p in phases.values())

        _wait("3 Machines Running", lambda: running(3), 150, state)
        # The watch's thread may not have taken the last events yet when the poll saw them.
        _wait("the watch saw 3 Machines Running", lambda: len(recorder.phases) == 3 and all(
            p[-1:] == ["Running"] for p in recorder.phases.values()), 30,
            lambda: recorder.phases)
        recorder.stop()
        machines = {m["metadata"]["name"]: m for m in ns.machines()}
        order = ["Pending", "Provisioning", "Provisioned", "Running"]
        for name, phases in recorder.phases.items():
            # Forward only, from Pending to Running (a phase can be shorter than one event:
            # Cluster API sets the nodeRef in the pass that copies the providerID when the
            # Node is already there).
            assert phases[0] in ("Pending", "Provisioning") and phases[-1] == "Running", (
                name, phases)
            assert [order.index(p) for p in phases] == sorted(
                {order.index(p) for p in phases}), (name, phases)
        consumers = {c: h for h, (_, c) in ns.host_states().items() if c}
        assert len(consumers) == 3  # one host per Machine
        nodes = ns.nodes()
        for machine in machines.values():
            m3m = machine["spec"]["infrastructureRef"]["name"]
            host = consumers[m3m]
            assert machine["spec"]["providerID"] == f"metal3://{NS}/{host}/{m3m}"
            assert machine["status"]["nodeRef"]["name"] == host
            assert nodes[host]["spec"]["providerID"] == machine["spec"]["providerID"]
        _workers_have_rendered_data(ns, 2)
        ns.scale("lab-workers", 1)
        _wait("2 Machines Running, 1 host released", lambda: running(2) and sum(
            1 for s, c in ns.host_states().values() if c is None and s == "available") == 2,
            120, state)
        assert len(ns.nodes()) == 2
        _workers_have_rendered_data(ns, 1)
        _remediate_the_worker(ns, state)
        ns.delete(lab.CAPI_GROUP, "clusters", "lab")

        def nothing_left() -> bool:
            return (not ns.machines() and not ns.items(lab.INFRA, "metal3machines")
                    and not ns.items(lab.INFRA, "metal3clusters")
                    and not ns.items(lab.CAPI_GROUP, "clusters")
                    and all(c is None and s == "available"
                            for s, c in ns.host_states().values())
                    and not ns.nodes())

        _wait("the Cluster gone, every host available and free", nothing_left, 150, state)
        for group, plural in ((lab.INFRA, "metal3datas"), (lab.INFRA, "metal3dataclaims"),
                              ("ipam.metal3.io", "ipclaims"), ("ipam.metal3.io", "ipaddresses"),
                              ("ipam.cluster.x-k8s.io", "ipaddressclaims"),
                              ("ipam.cluster.x-k8s.io", "ipaddresses"),
                              (lab.CAPI_GROUP, "machinesets"),
                              (lab.CAPI_GROUP, "machinedeployments")):
            assert ns.items(group, plural) == [], plural
        assert not [s for s in ns.secrets() if s.endswith(("-metadata", "-networkdata"))]
        for name in hosts:
            host = ns.get("metal3.io", "baremetalhosts", name)
            assert "cluster.x-k8s.io/cluster-name" not in host["metadata"].get("labels", {})
            assert not host["spec"].get("image") and not host["spec"].get("online")
        assert manager.alive(), manager.log()


def _workers_have_rendered_data(ns: lab.Lab, workers: int) -> None:
    """Each worker's Metal3Data rendered a metaData Secret with an address of the pool, which
    its host carries; one IPClaim and one IPAddress per worker, all distinct."""
    datas = ns.items(lab.INFRA, "metal3datas")
    assert len(datas) == workers, datas
    addresses = ns.items("ipam.metal3.io", "ipaddresses")
    assert len(ns.items("ipam.metal3.io", "ipclaims")) == workers
    assert len({a["spec"]["address"] for a in addresses}) == len(addresses) == workers
    rendered = {h["metadata"]["name"]: h["spec"].get("metaData", {}).get("name")
                for h in ns.items("metal3.io", "baremetalhosts")
                if (h["spec"].get("consumerRef") or {}).get("name", "").startswith(
                    "lab-workers")}
    assert len(rendered) == workers and all(rendered.values()), rendered
    for host, secret in rendered.items():
        data = ns.core.read_namespaced_secret(secret, ns.ns).data
        text = lab.base64.b64decode(data["metaData"]).decode()
        assert f"bmh_name: {host}" in text and "192.168.111.1" in text, text


def _remediate_the_worker(ns: lab.Lab, state: "e2e.Callable[[], object]") -> None:
    ns.create(lab.INFRA, "metal3remediationtemplates", {
        "kind": "Metal3RemediationTemplate", "metadata": {"name": "lab-workers"},
        "spec": {"template": {"spec": {"strategy": {
            "type": "Reboot", "retryLimit": 1, "timeoutSeconds": 300}}}}})
    ns.create(lab.CAPI_GROUP, "machinehealthchecks", {
        "kind": "MachineHealthCheck", "metadata": {"name": "lab-workers"},
        "spec": {"clusterName": "lab",
                 "selector": {"matchLabels": {"cluster.x-k8s.io/deployment-name":
                                              "lab-workers"}},
                 "checks": {"nodeStartupTimeoutSeconds": 0, "unhealthyNodeConditions": [
                     {"type": "Ready", "status": "False", "timeoutSeconds": 1}]},
                 "remediation": {"templateRef": {
                     "apiVersion": f"{lab.INFRA}/{lab.V1BETA2}",
                     "kind": "Metal3RemediationTemplate", "name": "lab-workers"}}}})
    worker = next(m for m in ns.machines()
                  if "cluster.x-k8s.io/control-plane" not in m["metadata"]["labels"])
    name, node_name = worker["metadata"]["name"], worker["status"]["nodeRef"]["name"]
    host_name = node_name  # the lab kubelet names the Node after its host
    # Watches, not polling: with the fast fixture a whole reboot can take two seconds.
    phases = ChangeRecorder(
        lambda **kw: ns.objects.list_namespaced_custom_object(
            lab.INFRA, lab.V1BETA2, ns.ns, "metal3remediations", **kw),
        f"metadata.name={name}", lambda o: (o.get("status") or {}).get("phase"))
    taints = ChangeRecorder(
        lambda **kw: ns.core.list_node(**kw), f"metadata.name={node_name}",
        lambda o: any(t["key"] == "node.kubernetes.io/out-of-service"
                      for t in (o.get("spec") or {}).get("taints") or ()))
    power = ChangeRecorder(
        lambda **kw: ns.objects.list_namespaced_custom_object(
            "metal3.io", "v1alpha1", ns.ns, "baremetalhosts", **kw),
        f"metadata.name={host_name}", lambda o: (o.get("status") or {}).get("poweredOn"))
    seen = {"phase": phases.values, "taint": taints.values, "powered_on": power.values}
    e2e.wait_until(lambda: bool(taints.values and power.values), timeout_s=30,
                   what="the watches opened")
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    ns.core.patch_node_status(node_name, {"status": {"conditions": [{
        "type": "Ready", "status": "False", "reason": "KubeletNotReady",
        "message": "container runtime is down (test)", "lastTransitionTime": now,
        "lastHeartbeatTime": now}]}})

    def healed() -> bool:
        node = ns.nodes().get(node_name, {})
        ready = [c["status"] for c in (node.get("status") or {}).get("conditions") or ()
                 if c["type"] == "Ready"]
        return "Waiting" in phases.values and phases.deleted and ready == ["True"]

    _wait("the worker remediated", healed, 120, lambda: (seen, state()))
    _wait("the watches saw the taint and the power come back",
          lambda: len(seen["taint"]) >= 3 and len(seen["powered_on"]) >= 3, 30, lambda: seen)
    assert seen["taint"] == [False, True, False], seen
    assert seen["powered_on"] == [True, False, True], seen
    assert [p for p in seen["phase"] if p][-2:] == ["Running", "Waiting"], seen
    assert name in {m["metadata"]["name"] for m in ns.machines()}  # rebooted, not replaced
    host = ns.get("metal3.io", "baremetalhosts", host_name)
    assert not [a for a in host["metadata"].get("annotations", {})
                if a.startswith("reboot.metal3.io")]
    assert "capm3.metal3.io/unhealthy" not in host["metadata"].get("annotations", {})
    for recorder in (phases, taints, power):
        recorder.stop()
    ns.delete(lab.CAPI_GROUP, "machinehealthchecks", "lab-workers")
