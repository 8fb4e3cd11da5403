"""Helpers for the tests and benchmark that run real Cluster API core over BareMetalHosts:
the control plane with CAPI (and the lab kubelet), and the objects a user would apply, built
complete in v1beta2 (Cluster API's own defaulting webhooks are not registered in the lab).

(No tests in this module.)
"""

import base64
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from metalcubed.controllers.kube import capi, crdgen, localcluster
from metalcubed.core.api.capm3 import conversion

INFRA = conversion.GROUP
CAPI_GROUP = "cluster.x-k8s.io"
V1BETA2 = "v1beta2"
IMAGE = {"url": "http://172.22.0.1/images/node.qcow2", "checksum": "abc123",
         "checksumType": "sha256", "diskFormat": "qcow2"}


def binaries() -> capi.CapiBinaries:
    """Cluster API core, built on first use (fails with the build command otherwise)."""
    found = capi.find()
    if found is None:
        if os.environ.get("METALCUBED_KUBE_BUILD") == "0":
            pytest.fail(f"Cluster API is not built; build it with:\n  {capi.build_command()}",
                        pytrace=False)
        print("\n[kube] building Cluster API core (first use only)...", file=sys.__stderr__)
        try:
            found = capi.build(progress=sys.__stderr__)
        except localcluster.LocalClusterError as exc:
            pytest.fail(f"{exc}\nbuild command: {capi.build_command()}", pytrace=False)
    return found


def start(directory: Path, kube: localcluster.Binaries, *, kubelet: bool = True
          ) -> localcluster.Cluster:
    """kube-apiserver + etcd + garbage collector, BMO's CRDs, then Cluster API core, CAPM3's
    conversion webhook and CRDs and (by default) the lab kubelet; stopped with
    `localcluster.stop(directory)`."""
    try:
        cluster = localcluster.start(directory, binaries=kube,
                                     lifetime=localcluster.Lifetime.TIED,
                                     crds=crdgen.generate_all())
        return capi.start(cluster, binaries=binaries(), lifetime=localcluster.Lifetime.TIED,
                          kubelet=kubelet)
    except localcluster.LocalClusterError as exc:
        localcluster.stop(directory)
        pytest.fail(str(exc), pytrace=False)


class Lab:
    """Creates and reads a cluster's objects in one namespace through the official client."""

    def __init__(self, api: k8s.ApiClient, namespace: str) -> None:
        self.api = api
        self.ns = namespace
        self.objects = k8s.CustomObjectsApi(api)
        self.core = k8s.CoreV1Api(api)

    # --- writing -------------------------------------------------------------------------

    def create(self, group: str, plural: str, body: dict[str, Any]) -> None:
        version = "v1alpha1" if group in ("metal3.io", "ipam.metal3.io") else V1BETA2
        body = {"apiVersion": f"{group}/{version}", **body}
        self.objects.create_namespaced_custom_object(group, version, self.ns, plural, body)

    def namespace(self) -> None:
        self.core.create_namespace({"metadata": {"name": self.ns}})

    def secret(self, name: str, data: dict[str, str], *, type_: str = "Opaque",
               labels: dict[str, str] | None = None) -> None:
        self.core.create_namespaced_secret(self.ns, {
            "metadata": {"name": name, "labels": labels or {}}, "type": type_,
            "stringData": data})

    def hosts(self, count: int, *, prefix: str = "node", online: bool = False) -> list[str]:
        """`count` BareMetalHosts (fixture BMCs), one credentials Secret."""
        self.secret("bmc", {"username": "admin", "password": "password"})
        names = []
        for i in range(count):
            name = f"{prefix}-{i}"
            self.create("metal3.io", "baremetalhosts", {
                "kind": "BareMetalHost", "metadata": {"name": name},
                "spec": {"online": online, "bootMACAddress": f"52:54:00:{i >> 16 & 255:02x}:"
                         f"{i >> 8 & 255:02x}:{i & 255:02x}",
                         "bmc": {"address": f"redfish://192.168.111.1/redfish/v1/Systems/{i}",
                                 "credentialsName": "bmc"}}})
            names.append(name)
        return names

    def cluster(self, name: str, kubeconfig: Path) -> None:
        """A Cluster with a Machine-based control plane, its Metal3Cluster, the bootstrap data
        Secret and `<name>-kubeconfig` (the "workload cluster" is this API server)."""
        self.secret(f"{name}-kubeconfig", {"value": kubeconfig.read_text()},
                    type_="cluster.x-k8s.io/secret",
                    labels={"cluster.x-k8s.io/cluster-name": name})
        self.secret("boot", {"value": "#cloud-config\n"})
        self.create(INFRA, "metal3clusters", {
            "kind": "Metal3Cluster", "metadata": {"name": name},
            "spec": {"controlPlaneEndpoint": {"host": "192.168.111.249", "port": 6443}}})
        self.create(CAPI_GROUP, "clusters", {
            "kind": "Cluster", "metadata": {"name": name},
            "spec": {"infrastructureRef": {"apiGroup": INFRA, "kind": "Metal3Cluster",
                                           "name": name}}})

    def ip_pool(self, name: str, *, start: str, end: str, prefix: int, gateway: str) -> None:
        self.create("ipam.metal3.io", "ippools", {
            "kind": "IPPool", "metadata": {"name": name},
            "spec": {"namePrefix": name, "pools": [
                {"start": start, "end": end, "prefix": prefix, "gateway": gateway}]}})

    def data_template(self, name: str, *, pool: str) -> None:
        """metaData: an address, its prefix and gateway from `pool`, and the host's name."""
        self.create(INFRA, "metal3datatemplates", {
            "kind": "Metal3DataTemplate", "metadata": {"name": name},
            "spec": {"metaData": {
                "ipAddressesFromPool": [{"key": "ip_0", "name": pool}],
                "prefixesFromPool": [{"key": "prefix_0", "name": pool}],
                "gatewaysFromPool": [{"key": "gateway_0", "name": pool}],
                "objectNames": [{"key": "bmh_name", "object": "baremetalhost"}]}}})

    def machine_template(self, name: str, *, data_template: str | None = None) -> None:
        spec: dict[str, Any] = {"image": IMAGE}
        if data_template:
            spec["dataTemplate"] = {"name": data_template}
        self.create(INFRA, "metal3machinetemplates", {
            "kind": "Metal3MachineTemplate", "metadata": {"name": name},
            "spec": {"template": {"spec": spec}}})

    def control_plane_machine(self, cluster: str, name: str, *, template: str) -> None:
        """A control-plane Machine and its Metal3Machine (as a control-plane provider would
        clone them from `template`)."""
        template_spec = self.get(INFRA, "metal3machinetemplates", template)["spec"]["template"]
        self.create(INFRA, "metal3machines", {
            "kind": "Metal3Machine", "metadata": {"name": name},
            "spec": template_spec["spec"]})
        self.create(CAPI_GROUP, "machines", {
            "kind": "Machine",
            "metadata": {"name": name, "labels": {"cluster.x-k8s.io/cluster-name": cluster,
                                                  "cluster.x-k8s.io/control-plane": ""}},
            "spec": {"clusterName": cluster, "bootstrap": {"dataSecretName": "boot"},
                     "infrastructureRef": {"apiGroup": INFRA, "kind": "Metal3Machine",
                                           "name": name}}})

    def machine_deployment(self, cluster: str, name: str, *, template: str,
                           replicas: int) -> None:
        selector = {"cluster.x-k8s.io/cluster-name": cluster,
                    "cluster.x-k8s.io/deployment-name": name}
        self.create(CAPI_GROUP, "machinedeployments", {
            "kind": "MachineDeployment",
            "metadata": {"name": name, "labels": {"cluster.x-k8s.io/cluster-name": cluster}},
            "spec": {"clusterName": cluster, "replicas": replicas,
                     "selector": {"matchLabels": selector},
                     "rollout": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {
                         "maxSurge": 1, "maxUnavailable": 0}}},
                     "deletion": {"order": "Random"},
                     "template": {"metadata": {"labels": selector},
                                  "spec": {"clusterName": cluster,
                                           "bootstrap": {"dataSecretName": "boot"},
                                           "infrastructureRef": {
                                               "apiGroup": INFRA,
                                               "kind": "Metal3MachineTemplate",
                                               "name": template}}}}})

    def scale(self, name: str, replicas: int) -> None:
        self.objects.patch_namespaced_custom_object(
            CAPI_GROUP, V1BETA2, self.ns, "machinedeployments", name,
            {"spec": {"replicas": replicas}})

    def delete(self, group: str, plural: str, name: str) -> None:
        version = "v1alpha1" if group == "metal3.io" else V1BETA2
        self.objects.delete_namespaced_custom_object(group, version, self.ns, plural, name)

    # --- reading -------------------------------------------------------------------------

    def get(self, group: str, plural: str, name: str) -> dict[str, Any]:
        version = "v1alpha1" if group == "metal3.io" else V1BETA2
        doc: dict[str, Any] = self.objects.get_namespaced_custom_object(
            group, version, self.ns, plural, name)
        return doc

    def items(self, group: str, plural: str, version: str | None = None
             ) -> list[dict[str, Any]]:
        version = version or ("v1alpha1" if group in ("metal3.io", "ipam.metal3.io")
                              else V1BETA2)
        items: list[dict[str, Any]] = self.objects.list_namespaced_custom_object(
            group, version, self.ns, plural)["items"]
        return items

    def machines(self) -> list[dict[str, Any]]:
        return self.items(CAPI_GROUP, "machines")

    def phases(self) -> dict[str, str]:
        return {m["metadata"]["name"]: (m.get("status") or {}).get("phase", "")
                for m in self.machines()}

    def host_states(self) -> dict[str, tuple[str, str | None]]:
        """name -> (provisioning state, consumer name)."""
        return {h["metadata"]["name"]: (
            ((h.get("status") or {}).get("provisioning") or {}).get("state", ""),
            (h["spec"].get("consumerRef") or {}).get("name"))
            for h in self.items("metal3.io", "baremetalhosts")}

    def nodes(self) -> dict[str, dict[str, Any]]:
        """The lab's Nodes (labelled metal3.io/uuid), by name, as wire dicts."""
        found = self.core.list_node(label_selector="metal3.io/uuid")
        return {n.metadata.name: self.api.sanitize_for_serialization(n) for n in found.items}

    def secrets(self) -> list[str]:
        return [s.metadata.name for s in self.core.list_namespaced_secret(self.ns).items]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
