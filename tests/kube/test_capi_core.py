"""Real Cluster API core v1.13.6 against our kube-apiserver with our CAPM3/IPAM CRDs.

One control plane for this module (not the session's: it also runs capi-manager and the CAPM3
conversion webhook, started by `capi.start` exactly as `metalcubed kube start --capi` does).
Upstream's examples apply unchanged with kubectl; the v1beta1 Metal3DataTemplate is stored as
v1beta2 through our conversion webhook and reads back, in both versions, with nothing lost.
Needs the binaries of build-kube.sh and build-capi.sh (built on first use, minutes).
"""

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as kconfig

from metalcubed.controllers.kube import capi, capm3crds, crdgen, localcluster
from metalcubed.core.api.capm3 import conversion
from tests.kube import capi_support
from tests.kube.conftest import wait_until
from tests.unit.api import crd_support

EXAMPLES = Path(__file__).parent.parent / "unit" / "api" / "upstream" / "examples"
GROUP = conversion.GROUP
TEMPLATE_VARS = {
    "NAMESPACE": "metal3", "CLUSTER_NAME": "test1", "KUBERNETES_VERSION": "v1.36.3",
    "IMAGE_URL": "http://172.22.0.1/images/node.qcow2", "IMAGE_CHECKSUM": "abc123",
    "IMAGE_CHECKSUM_TYPE": "sha256", "IMAGE_FORMAT": "qcow2",
    "CLUSTER_APIENDPOINT_HOST": "192.168.111.249", "CLUSTER_APIENDPOINT_PORT": "6443",
}
"""The clusterctl variables upstream's example templates use (`clusterctl generate` fills
them with envsubst); the rest of each file is applied as upstream wrote it."""


def _example(name: str, **overrides: str) -> str:
    text = (EXAMPLES / name).read_text()
    for key, value in {**TEMPLATE_VARS, **overrides}.items():
        text = text.replace("${" + key + "}", value)
    assert "${" not in text, f"{name}: a template variable is not set"
    return text


@pytest.fixture(scope="module")
def capi_binaries() -> capi.CapiBinaries:
    return capi_support.binaries()


@pytest.fixture(scope="module")
def capi_cluster(
    kube_binaries: localcluster.Binaries, capi_binaries: capi.CapiBinaries,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[localcluster.Cluster]:
    directory = tmp_path_factory.mktemp("capi-cluster")
    try:
        cluster = localcluster.start(directory, binaries=kube_binaries,
                                     lifetime=localcluster.Lifetime.TIED,
                                     crds=crdgen.generate_all())
        # This module plays the workload cluster's kubelet itself (no lab kubelet).
        cluster = capi.start(cluster, binaries=capi_binaries,
                             lifetime=localcluster.Lifetime.TIED, kubelet=False)
    except localcluster.LocalClusterError as exc:
        localcluster.stop(directory)
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster
    finally:
        localcluster.stop(directory)


@pytest.fixture(scope="module")
def api(capi_cluster: localcluster.Cluster) -> Iterator[k8s.ApiClient]:
    client = kconfig.new_client_from_config(config_file=str(capi_cluster.kubeconfig))
    yield client
    client.close()


def _kubectl(cluster: localcluster.Cluster, binaries: localcluster.Binaries, *args: str,
             stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    assert binaries.kubectl is not None, localcluster.build_command()
    return subprocess.run([str(binaries.kubectl), f"--kubeconfig={cluster.kubeconfig}", *args],
                          input=stdin, capture_output=True, text=True, timeout=120)


def _get(api: k8s.ApiClient, version: str, plural: str, name: str,
         namespace: str = "default", group: str = GROUP) -> dict[str, Any]:
    raw = k8s.CustomObjectsApi(api).get_namespaced_custom_object(
        group, version, namespace, plural, name, _preload_content=False)
    doc: dict[str, Any] = json.loads(raw.data)
    return doc


def test_capi_core_runs_and_only_on_loopback(capi_cluster: localcluster.Cluster) -> None:
    manager = capi_cluster.process(capi.PROCESS_NAME)
    webhook = capi_cluster.process(capi.CONVERSION_PROCESS)
    assert manager is not None and localcluster.is_alive(manager)
    assert webhook is not None and localcluster.is_alive(webhook)
    listening = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True,
                               check=True).stdout.splitlines()
    ours = [line for line in listening if f"pid={manager.pid}," in line]
    assert len(ours) == 2, listening  # health + webhook, nothing else (diagnostics off)
    assert all(line.split()[3].startswith("127.0.0.1:") for line in ours), ours


def test_crds_carry_the_contract_labels_and_convert_through_our_webhook(
    api: k8s.ApiClient,
) -> None:
    ext = k8s.ApiextensionsV1Api(api)
    crd = json.loads(ext.read_custom_resource_definition(
        f"metal3machines.{GROUP}", _preload_content=False).data)
    assert crd["metadata"]["labels"]["cluster.x-k8s.io/v1beta2"] == "v1beta2"
    assert [(v["name"], v["served"], v["storage"]) for v in crd["spec"]["versions"]] == [
        ("v1beta1", True, False), ("v1beta2", True, True)]
    hook = crd["spec"]["conversion"]
    assert hook["strategy"] == "Webhook"
    assert hook["webhook"]["clientConfig"]["url"].startswith("https://127.0.0.1:")


def test_upstream_examples_apply_unchanged(
    capi_cluster: localcluster.Cluster, kube_binaries: localcluster.Binaries,
    api: k8s.ApiClient,
) -> None:
    """ipam-ippool.yaml (namespace, IPPool, IPClaim and CAPI's IPAddressClaim) and
    capm3-cluster.yaml (v1beta1 Metal3DataTemplates, IPPools, a v1beta2 topology Cluster)."""
    for name in ("ipam-ippool.yaml", "capm3-cluster.yaml"):
        done = _kubectl(capi_cluster, kube_binaries, "apply", "--server-side", "-f", "-",
                        stdin=_example(name))
        assert done.returncode == 0, done.stderr
        warnings = [line for line in done.stderr.splitlines() if line.startswith("Warning")]
        # Upstream's CRD marks v1beta1 deprecated: that warning, and no other.
        assert all("v1beta1 Metal3DataTemplate is deprecated" in w for w in warnings), warnings
    pool = _get(api, "v1alpha1", "ippools", "pool1", namespace="metal3",
                group=capm3crds.IPAM_GROUP)
    assert pool["spec"]["namePrefix"]
    cluster = _get(api, "v1beta2", "clusters", "test1", namespace="metal3",
                   group="cluster.x-k8s.io")
    assert cluster["spec"]["topology"]["classRef"]


def test_v1beta1_data_template_is_stored_as_v1beta2_and_reads_back_with_nothing_lost(
    capi_cluster: localcluster.Cluster, kube_binaries: localcluster.Binaries,
    api: k8s.ApiClient,
) -> None:
    docs = [d for d in yaml.safe_load_all(_example("capm3-cluster.yaml"))
            if d and d["kind"] == "Metal3DataTemplate"]
    assert docs and all(d["apiVersion"] == conversion.V1BETA1 for d in docs)
    done = _kubectl(capi_cluster, kube_binaries, "apply", "--server-side", "-f", "-",
                    stdin=yaml.safe_dump_all(docs))
    assert done.returncode == 0, done.stderr
    crd = next(c for c in capm3crds.load(conversion=None)
               if c["spec"]["names"]["kind"] == "Metal3DataTemplate")
    schemas = {v["name"]: v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"]}
    for doc in docs:
        name, namespace = doc["metadata"]["name"], doc["metadata"].get("namespace", "default")
        # Expected: our conversion, plus what the API server adds by itself, the schema
        # defaults (pool apiGroup/kind, index step, link MTU) of the version it decodes.
        stored = crd_support.apply_defaults(schemas["v1beta2"],
                                            conversion.convert(doc, conversion.V1BETA2))
        as_v2 = _get(api, "v1beta2", "metal3datatemplates", name, namespace)
        assert as_v2["spec"] == stored["spec"]
        assert "ipAddressesFromPool" in as_v2["spec"]["metaData"]
        assert "ipAddressesFromIPPool" not in as_v2["spec"]["metaData"]
        assert conversion.CONVERSION_DATA_ANNOTATION not in as_v2["metadata"].get(
            "annotations", {})  # nothing needed stashing: the map alone kept it all
        as_v1 = _get(api, "v1beta1", "metal3datatemplates", name, namespace)
        assert as_v1["spec"] == crd_support.apply_defaults(
            schemas["v1beta1"], conversion.convert(stored, conversion.V1BETA1))["spec"]
        # Nothing lost: every value the example wrote reads back at its place, unchanged.
        assert _leaves(doc["spec"]) <= _leaves(as_v1["spec"])


def _leaves(value: Any, path: str = "") -> set[tuple[str, str]]:
    if isinstance(value, dict):
        return {leaf for k, v in value.items() for leaf in _leaves(v, f"{path}.{k}")}
    if isinstance(value, list):
        return {leaf for i, v in enumerate(value) for leaf in _leaves(v, f"{path}[{i}]")}
    return {(path, json.dumps(value))}


def test_a_v1beta2_only_field_survives_a_v1beta1_update(api: k8s.ApiClient) -> None:
    """Template metadata exists only in v1beta2: a client that reads and writes v1beta1 (an old
    clusterctl) must not erase it."""
    objects = k8s.CustomObjectsApi(api)
    body = {"apiVersion": conversion.V1BETA2, "kind": "Metal3MachineTemplate",
            "metadata": {"name": "workers"},
            "spec": {"template": {"metadata": {"labels": {"pool": "a"}},
                                  "spec": {"image": {"url": "http://x/i.img", "checksum": "c",
                                                     "checksumType": "sha256",
                                                     "diskFormat": "raw"}}}}}
    objects.create_namespaced_custom_object(GROUP, "v1beta2", "default",
                                            "metal3machinetemplates", body)
    old = _get(api, "v1beta1", "metal3machinetemplates", "workers")
    assert old["spec"]["template"]["spec"]["image"]["format"] == "raw"
    old["metadata"]["labels"] = {"touched": "yes"}  # a metadata-only v1beta1 update
    objects.replace_namespaced_custom_object(GROUP, "v1beta1", "default",
                                             "metal3machinetemplates", "workers", old)
    again = _get(api, "v1beta2", "metal3machinetemplates", "workers")
    assert again["metadata"]["labels"] == {"touched": "yes"}
    assert again["spec"] == {**body["spec"], "nodeReuse": False}  # + the schema default


def test_capi_core_and_our_metal3cluster_controller_provision_and_delete_a_cluster(
    api: k8s.ApiClient,
) -> None:
    """A v1beta2 Cluster whose infrastructureRef is a Metal3Cluster. CAPI core resolves the
    apiVersion from our CRD's contract label and adopts the Metal3Cluster (ownerReference); our
    Metal3Cluster reconciler (pure, over K8sStore) then reports it provisioned, and CAPI copies
    the endpoint and marks the Cluster's infrastructure provisioned. Deleting the Cluster: CAPI
    deletes the Metal3Cluster, our reconciler drops its finalizer, nothing is left."""
    from metalcubed.controllers.kube import store as kube_store
    from metalcubed.core import clock as core_clock
    from metalcubed.core.api import meta
    from metalcubed.core.reconcilers import metal3cluster

    objects = k8s.CustomObjectsApi(api)
    objects.create_namespaced_custom_object(GROUP, "v1beta2", "default", "metal3clusters", {
        "apiVersion": conversion.V1BETA2, "kind": "Metal3Cluster",
        "metadata": {"name": "lab"},
        "spec": {"controlPlaneEndpoint": {"host": "192.168.111.249", "port": 6443}}})
    objects.create_namespaced_custom_object("cluster.x-k8s.io", "v1beta2", "default",
                                            "clusters", {
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
        "metadata": {"name": "lab"},
        "spec": {"infrastructureRef": {"apiGroup": GROUP, "kind": "Metal3Cluster",
                                       "name": "lab"}}})
    reconciler = metal3cluster.Metal3ClusterReconciler(
        store=kube_store.K8sStore(api), clock=core_clock.ManualClock())
    key = meta.ObjectKey("default", "lab")

    def owned() -> bool:
        m3c = _get(api, "v1beta2", "metal3clusters", "lab")
        return any(r["kind"] == "Cluster" and r["name"] == "lab"
                   for r in m3c["metadata"].get("ownerReferences", []))

    wait_until(owned, timeout_s=60)
    reconciler.reconcile(key)
    m3c = _get(api, "v1beta2", "metal3clusters", "lab")
    assert m3c["status"]["initialization"] == {"provisioned": True}
    assert metal3cluster.FINALIZER in m3c["metadata"]["finalizers"]

    def provisioned() -> bool:
        cluster = _get(api, "v1beta2", "clusters", "lab", group="cluster.x-k8s.io")
        init = cluster.get("status", {}).get("initialization", {})
        return bool(init.get("infrastructureProvisioned")) and (
            cluster["spec"].get("controlPlaneEndpoint", {}).get("port") == 6443)

    wait_until(provisioned, timeout_s=60)
    objects.delete_namespaced_custom_object("cluster.x-k8s.io", "v1beta2", "default",
                                            "clusters", "lab")

    def gone(plural: str, group: str = GROUP) -> bool:
        try:
            _get(api, "v1beta2", plural, "lab", group=group)
        except k8s.ApiException as exc:
            return exc.status == 404
        return False

    def metal3cluster_released() -> bool:
        reconciler.reconcile(key)  # as the watch on its deletionTimestamp would
        return gone("metal3clusters")

    wait_until(metal3cluster_released, timeout_s=60, interval_s=0.5)
    wait_until(lambda: gone("clusters", "cluster.x-k8s.io"), timeout_s=60)


def test_ipam_reconciler_allocates_upstreams_example_claim_on_the_real_api_server(
    capi_cluster: localcluster.Cluster, kube_binaries: localcluster.Binaries,
    api: k8s.ApiClient,
) -> None:
    """The pure IPPool reconciler over K8sStore: upstream's ipam-ippool.yaml claim gets the
    pool's first address (192.168.0.10), an IPAddress owned by pool and claim; deleting the claim
    gives the address back (finalizers honoured by the real API server)."""
    from metalcubed.controllers.kube import store as kube_store
    from metalcubed.core import clock as core_clock
    from metalcubed.core.api import ipam, meta
    from metalcubed.core.reconcilers import ippool
    from metalcubed.core.testing.fakes import RecordingEventRecorder

    done = _kubectl(capi_cluster, kube_binaries, "apply", "--server-side", "-f", "-",
                    stdin=_example("ipam-ippool.yaml", NAMESPACE="ipam-e2e"))
    assert done.returncode == 0, done.stderr
    store = kube_store.K8sStore(api)
    reconciler = ippool.IPPoolReconciler(store=store, clock=core_clock.ManualClock(),
                                         events=RecordingEventRecorder())
    key = meta.ObjectKey("ipam-e2e", "pool1")
    for _ in range(3):
        reconciler.reconcile(key)
    claim = store.get(ipam.IPClaim, meta.ObjectKey("ipam-e2e", "provisioning-pool"))
    assert claim.status is not None and claim.status.address is not None
    assert claim.status.address.name == "pool1-prov-192-168-0-10"
    address = store.get(ipam.IPAddress, meta.ObjectKey("ipam-e2e", "pool1-prov-192-168-0-10"))
    assert (address.spec.address, address.spec.prefix, address.spec.gateway) == (
        "192.168.0.10", 24, "192.168.0.1")
    assert ipam.CLAIM_FINALIZER in claim.metadata.finalizers
    pool = store.get(ipam.IPPool, key)
    assert pool.status is not None and pool.status.indexes == {
        "provisioning-pool": "192.168.0.10"}
    store.delete(ipam.IPClaim, claim.key)
    for _ in range(3):
        reconciler.reconcile(key)
    assert store.list(ipam.IPAddress, namespace="ipam-e2e") == []
    assert store.list(ipam.IPClaim, namespace="ipam-e2e") == []


def test_a_machine_goes_pending_provisioned_running_on_a_baremetalhost_and_back(
    capi_cluster: localcluster.Cluster, api: k8s.ApiClient,
) -> None:
    """Real CAPI core with our Metal3Cluster and Metal3Machine reconcilers (pure, over
    K8sStore). The test plays what is not wired here: BMO moving the host's provisioning state,
    and the workload cluster's kubelet creating the Node (the "workload cluster" is this API
    server, reached through the `<cluster>-kubeconfig` Secret). The Machine goes Provisioned
    once our Metal3Machine reports the host's providerID, Running once the Node appears; deleting
    the Cluster deprovisions and releases the host and leaves no CAPM3 object behind."""
    from metalcubed.controllers.kube import store as kube_store
    from metalcubed.core import clock as core_clock
    from metalcubed.core.api import baremetalhost as bmh
    from metalcubed.core.api import meta
    from metalcubed.core.api.capm3 import v1beta2 as v2
    from metalcubed.core.reconcilers import metal3cluster, metal3machine
    from metalcubed.core.testing.fakes import RecordingEventRecorder

    ns, objects, core = "e2e", k8s.CustomObjectsApi(api), k8s.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": ns}})
    store = kube_store.K8sStore(api)
    clock = core_clock.ManualClock()
    m3c_reconciler = metal3cluster.Metal3ClusterReconciler(store=store, clock=clock)
    m3m_reconciler = metal3machine.Metal3MachineReconciler(
        store=store, clock=clock, events=RecordingEventRecorder())
    kubeconfig = capi_cluster.kubeconfig.read_bytes()
    core.create_namespaced_secret(ns, {
        "metadata": {"name": "lab-kubeconfig", "labels": {"cluster.x-k8s.io/cluster-name": "lab"}},
        "type": "cluster.x-k8s.io/secret",
        "data": {"value": base64.b64encode(kubeconfig).decode()}})
    core.create_namespaced_secret(ns, {"metadata": {"name": "boot"},
                                       "stringData": {"value": "#cloud-config\n"}})
    core.create_namespaced_secret(ns, {"metadata": {"name": "bmc"},
                                       "stringData": {"username": "u", "password": "p"}})
    host = store.create(bmh.BareMetalHost.model_validate({
        "metadata": {"name": "node-0", "namespace": ns},
        "spec": {"online": False, "bootMACAddress": "52:54:00:00:00:01",
                 "bmc": {"address": "redfish://192.168.111.1/redfish/v1/Systems/1",
                         "credentialsName": "bmc"}}}))

    def set_state(state: bmh.ProvisioningState) -> None:
        current = store.get(bmh.BareMetalHost, host.key)
        status = current.status.model_copy(update={
            "provisioning": current.status.provisioning.model_copy(update={"state": state})})
        store.update_status(current.model_copy(update={"status": status}))

    set_state(bmh.ProvisioningState.AVAILABLE)  # as BMO would after inspection
    objects.create_namespaced_custom_object(GROUP, "v1beta2", ns, "metal3clusters", {
        "apiVersion": conversion.V1BETA2, "kind": "Metal3Cluster", "metadata": {"name": "lab"},
        "spec": {"controlPlaneEndpoint": {"host": "192.168.111.249", "port": 6443}}})
    objects.create_namespaced_custom_object("cluster.x-k8s.io", "v1beta2", ns, "clusters", {
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster", "metadata": {"name": "lab"},
        "spec": {"infrastructureRef": {"apiGroup": GROUP, "kind": "Metal3Cluster",
                                       "name": "lab"}}})
    objects.create_namespaced_custom_object(GROUP, "v1beta2", ns, "metal3machines", {
        "apiVersion": conversion.V1BETA2, "kind": "Metal3Machine", "metadata": {"name": "cp-0"},
        "spec": {"image": {"url": "http://172.22.0.1/node.qcow2", "checksum": "abc",
                           "checksumType": "sha256", "diskFormat": "qcow2"}}})
    objects.create_namespaced_custom_object("cluster.x-k8s.io", "v1beta2", ns, "machines", {
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
        "metadata": {"name": "cp-0", "labels": {"cluster.x-k8s.io/cluster-name": "lab",
                                                "cluster.x-k8s.io/control-plane": ""}},
        "spec": {"clusterName": "lab", "bootstrap": {"dataSecretName": "boot"},
                 "infrastructureRef": {"apiGroup": GROUP, "kind": "Metal3Machine",
                                       "name": "cp-0"}}})
    m3c_key, m3m_key = meta.ObjectKey(ns, "lab"), meta.ObjectKey(ns, "cp-0")

    def machine() -> dict[str, Any]:
        return _get(api, "v1beta2", "machines", "cp-0", ns, group="cluster.x-k8s.io")

    def passes(predicate: Any) -> Any:
        def step() -> bool:
            m3c_reconciler.reconcile(m3c_key)
            m3m_reconciler.reconcile(m3m_key)  # as their watches would
            return bool(predicate())
        return step

    wait_until(passes(lambda: store.get(bmh.BareMetalHost, host.key).spec.consumer_ref),
               timeout_s=90, interval_s=0.3)
    claimed = store.get(bmh.BareMetalHost, host.key)
    assert claimed.spec.consumer_ref is not None and claimed.spec.consumer_ref.name == "cp-0"
    assert claimed.spec.online and claimed.spec.image is not None
    assert claimed.spec.user_data is not None and claimed.spec.user_data.name == "boot"
    assert machine().get("status", {}).get("phase") in (None, "Pending", "Provisioning")
    set_state(bmh.ProvisioningState.PROVISIONED)  # BMO wrote the image and booted it
    provider_id = f"metal3://{ns}/node-0/cp-0"
    wait_until(passes(lambda: machine().get("status", {}).get("phase") == "Provisioned"),
               timeout_s=90, interval_s=0.3)
    assert machine()["spec"]["providerID"] == provider_id
    # The workload cluster's kubelet registers the Node (CAPM3 would label it metal3.io/uuid).
    core.create_node({"metadata": {"name": "node-0", "labels": {"metal3.io/uuid":
                                                                claimed.metadata.uid}},
                      "spec": {"providerID": provider_id}})
    wait_until(passes(lambda: machine().get("status", {}).get("phase") == "Running"),
               timeout_s=120, interval_s=0.5)
    assert machine()["status"]["nodeRef"]["name"] == "node-0"

    objects.delete_namespaced_custom_object("cluster.x-k8s.io", "v1beta2", ns, "clusters", "lab")

    def deprovisioning() -> bool:
        current = store.get(bmh.BareMetalHost, host.key)
        if current.spec.image is None and current.status.provisioning.state == (
                bmh.ProvisioningState.PROVISIONED):
            set_state(bmh.ProvisioningState.AVAILABLE)  # BMO deprovisioned it
        return current.spec.consumer_ref is None

    wait_until(passes(deprovisioning), timeout_s=120, interval_s=0.5)

    def all_gone() -> bool:
        m3c_reconciler.reconcile(m3c_key)
        m3m_reconciler.reconcile(m3m_key)
        left = [(g, p) for g, p in ((GROUP, "metal3machines"), (GROUP, "metal3clusters"),
                                    ("cluster.x-k8s.io", "machines"),
                                    ("cluster.x-k8s.io", "clusters"))
                if objects.list_namespaced_custom_object(g, "v1beta2", ns, p)["items"]]
        return not left

    wait_until(all_gone, timeout_s=120, interval_s=0.5)
    released = store.get(bmh.BareMetalHost, host.key)
    assert released.spec.consumer_ref is None and not released.spec.online
    assert "cluster.x-k8s.io/cluster-name" not in released.metadata.labels
    assert store.list(v2.Metal3Machine, namespace=ns) == []


def test_a_machinedeployment_scales_up_and_down_over_baremetalhosts(
    capi_cluster: localcluster.Cluster, api: k8s.ApiClient,
) -> None:
    """CAPI core clones our Metal3MachineTemplate (contract label -> v1beta2) into one
    Metal3Machine per replica; each claims its own host. Scaling 3 -> 1 deletes two Machines,
    and their hosts are deprovisioned and released."""
    from metalcubed.controllers.kube import store as kube_store
    from metalcubed.core import clock as core_clock
    from metalcubed.core.api import baremetalhost as bmh
    from metalcubed.core.api import meta
    from metalcubed.core.api.capm3 import v1beta2 as v2
    from metalcubed.core.reconcilers import metal3cluster, metal3machine
    from metalcubed.core.testing.fakes import RecordingEventRecorder

    ns, objects, core = "md", k8s.CustomObjectsApi(api), k8s.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": ns}})
    store = kube_store.K8sStore(api)
    clock = core_clock.ManualClock()
    m3c_reconciler = metal3cluster.Metal3ClusterReconciler(store=store, clock=clock)
    m3m_reconciler = metal3machine.Metal3MachineReconciler(
        store=store, clock=clock, events=RecordingEventRecorder())
    core.create_namespaced_secret(ns, {"metadata": {"name": "boot"},
                                       "stringData": {"value": "#cloud-config\\n"}})
    hosts = []
    for i in range(4):
        host = store.create(bmh.BareMetalHost.model_validate({
            "metadata": {"name": f"node-{i}", "namespace": ns},
            "spec": {"online": False, "bootMACAddress": f"52:54:00:00:01:0{i}"}}))
        available = host.status.provisioning.model_copy(
            update={"state": bmh.ProvisioningState.AVAILABLE})
        status = host.status.model_copy(update={"provisioning": available})
        hosts.append(store.update_status(host.model_copy(update={"status": status})))
    objects.create_namespaced_custom_object(GROUP, "v1beta2", ns, "metal3clusters", {
        "apiVersion": conversion.V1BETA2, "kind": "Metal3Cluster", "metadata": {"name": "lab"},
        "spec": {"controlPlaneEndpoint": {"host": "192.168.111.249", "port": 6443}}})
    objects.create_namespaced_custom_object("cluster.x-k8s.io", "v1beta2", ns, "clusters", {
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster", "metadata": {"name": "lab"},
        "spec": {"infrastructureRef": {"apiGroup": GROUP, "kind": "Metal3Cluster",
                                       "name": "lab"}}})
    objects.create_namespaced_custom_object(GROUP, "v1beta2", ns, "metal3machinetemplates", {
        "apiVersion": conversion.V1BETA2, "kind": "Metal3MachineTemplate",
        "metadata": {"name": "workers"},
        "spec": {"template": {"spec": {"image": {
            "url": "http://172.22.0.1/node.qcow2", "checksum": "abc", "checksumType": "sha256",
            "diskFormat": "qcow2"}}}}})
    selector = {"cluster.x-k8s.io/cluster-name": "lab",
                "cluster.x-k8s.io/deployment-name": "workers"}
    objects.create_namespaced_custom_object("cluster.x-k8s.io", "v1beta2", ns,
                                            "machinedeployments", {
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "MachineDeployment",
        "metadata": {"name": "workers", "labels": {"cluster.x-k8s.io/cluster-name": "lab"}},
        # Complete, as CAPI's (unregistered) defaulting webhook would leave it.
        "spec": {"clusterName": "lab", "replicas": 3, "selector": {"matchLabels": selector},
                 "rollout": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {
                     "maxSurge": 1, "maxUnavailable": 0}}},
                 "deletion": {"order": "Random"},
                 "template": {"metadata": {"labels": selector},
                              "spec": {"clusterName": "lab",
                                       "bootstrap": {"dataSecretName": "boot"},
                                       "infrastructureRef": {
                                           "apiGroup": GROUP, "kind": "Metal3MachineTemplate",
                                           "name": "workers"}}}}})

    def consumers() -> dict[str, str]:
        return {h.metadata.name: h.spec.consumer_ref.name
                for h in store.list(bmh.BareMetalHost, namespace=ns) if h.spec.consumer_ref}

    def step() -> None:
        m3c_reconciler.reconcile(meta.ObjectKey(ns, "lab"))
        for m3m in store.list(v2.Metal3Machine, namespace=ns):
            m3m_reconciler.reconcile(m3m.key)
        for host in store.list(bmh.BareMetalHost, namespace=ns):  # BMO, played
            state = host.status.provisioning.state
            if host.spec.image is None and state == bmh.ProvisioningState.PROVISIONED:
                new = bmh.ProvisioningState.AVAILABLE
            elif host.spec.image is not None and state == bmh.ProvisioningState.AVAILABLE:
                new = bmh.ProvisioningState.PROVISIONED
            else:
                continue
            status = host.status.model_copy(update={"provisioning": host.status.provisioning
                                                    .model_copy(update={"state": new})})
            store.update_status(host.model_copy(update={"status": status}))

    seen: dict[str, Any] = {}

    def settled(replicas: int) -> Any:
        def check() -> bool:
            step()
            machines = objects.list_namespaced_custom_object(
                "cluster.x-k8s.io", "v1beta2", ns, "machines")["items"]
            m3ms = store.list(v2.Metal3Machine, namespace=ns)
            seen.update(machines=[(m["metadata"]["name"], m.get("status", {}).get("phase"))
                                  for m in machines],
                        m3ms=[(m.metadata.name, m.metadata.owner_references, m.status)
                              for m in m3ms], consumers=consumers(),
                        sets=objects.list_namespaced_custom_object(
                            "cluster.x-k8s.io", "v1beta2", ns, "machinesets")["items"])
            return (len(machines) == replicas and len(m3ms) == replicas
                    and len(consumers()) == replicas
                    and all(m.get("spec", {}).get("providerID") for m in machines))
        return check

    def wait_settled(replicas: int) -> None:
        try:
            wait_until(settled(replicas), timeout_s=120, interval_s=0.5)
        except AssertionError:
            raise AssertionError(f"not settled at {replicas} replicas: {seen}") from None

    wait_settled(3)
    assert sorted(consumers().values()) == sorted(
        m.metadata.name for m in store.list(v2.Metal3Machine, namespace=ns))
    assert len(set(consumers().values())) == 3  # one host each
    objects.patch_namespaced_custom_object("cluster.x-k8s.io", "v1beta2", ns,
                                           "machinedeployments", "workers",
                                           {"spec": {"replicas": 1}})
    wait_settled(1)
    free = [h for h in store.list(bmh.BareMetalHost, namespace=ns) if h.spec.consumer_ref is None]
    assert len(free) == 3
    assert all(h.spec.image is None and not h.spec.online for h in free)
