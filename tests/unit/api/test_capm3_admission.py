"""CAPM3's v1beta2 webhook rules (upstream internal/webhooks/v1beta2) with upstream's messages."""

from typing import Any

import pytest

from metalcubed.core.api import validation
from metalcubed.core.api.capm3 import conversion

V2 = conversion.V1BETA2


def obj(kind: str, spec: dict[str, Any] | None, *, name: str = "x", namespace: str = "a"
        ) -> dict[str, Any]:
    doc: dict[str, Any] = {"apiVersion": V2, "kind": kind,
                           "metadata": {"name": name, "namespace": namespace}}
    if spec is not None:
        doc["spec"] = spec
    return doc


def errors(doc: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    return [str(e) for e in validation.validate_object(doc, old=old)]


IMAGE = {"url": "http://172.22.0.1/node.qcow2", "checksum": "abc", "checksumType": "sha256"}


@pytest.mark.parametrize(("doc", "expected"), [
    (obj("Metal3Cluster", {"controlPlaneEndpoint": {"port": 6443}}),
     ['spec.controlPlaneEndpoint: Invalid value: "": is required']),
    (obj("Metal3Cluster", {"controlPlaneEndpoint": {"host": "10.0.0.1", "port": 6443}}), []),
    (obj("Metal3Machine", {}),
     ["Spec.Image: Required value: either image or customDeploy is required"]),
    (obj("Metal3Machine", {"customDeploy": {"method": "install_coreos"}}), []),
    (obj("Metal3Machine", {"image": {"url": "http://x/i.img"}}),
     ["Spec.Image.Checksum: Required value: cannot be empty"]),
    (obj("Metal3Machine", {"image": {"url": "http://x/i.iso", "diskFormat": "live-iso"}}), []),
    (obj("Metal3Machine", {"image": {"url": "oci://quay.io/x:1", "checksum": "c"}}),
     ["Spec.Image.Checksum: Forbidden: must be empty for OCI images"]),
    (obj("Metal3Machine", {"image": {"url": "no-scheme", "checksum": "c"}}),
     ['Spec.Image.URL: Invalid value: "no-scheme": not a valid URL']),
    (obj("Metal3Machine", {"image": IMAGE, "userData": {"name": "u", "namespace": "b"}}),
     ["spec.userData.namespace: Forbidden: cross-namespace secret references are not allowed"]),
    (obj("Metal3MachineTemplate", {"template": {"spec": {"image": {"url": "http://x"}}}}),
     ["Spec.Template.Spec.Image.Checksum: Required value: cannot be empty"]),
    (obj("Metal3Remediation", {"strategy": {"type": "Reboot", "retryLimit": 0,
                                            "timeoutSeconds": 50}}),
     ["spec.strategy.timeoutSeconds: Invalid value: 50: min duration is 100 seconds",
      "spec.strategy.retryLimit: Invalid value: 0: is minimum retrylimit"]),
    (obj("Metal3Remediation", {"strategy": {"type": "Reboot"}}), []),  # CRD defaults: 1, 600
    (obj("Metal3RemediationTemplate", {"template": {"spec": {"strategy": {
        "type": "Reboot", "timeoutSeconds": 99}}}}),
     ["spec.template.spec.strategy.timeoutSeconds: Invalid value: 99: min duration is 100 "
      "seconds"]),
    (obj("Metal3Data", {"index": 0, "template": {"name": "t"}}, name="t-1"),
     ['name: Invalid value: "t-1": should follow the convention <Metal3Template Name>-<index>']),
    (obj("Metal3Data", {"index": 1, "template": {"name": "t"}}, name="t-1"), []),
    (obj("Metal3DataClaim", {"template": {"name": "t", "namespace": "b"}}),
     ['spec.template.namespace: Invalid value: "b": must be empty or match the Metal3DataClaim '
      "namespace; cross-namespace template references are not allowed"]),
    (obj("Metal3DataTemplate", {"metaData": {"fromHostInterfaces": [
        {"key": "mac"}, {"key": "boot", "fromBootMAC": True, "interface": "eth0"}]}}),
     ["spec.metaData.fromHostInterfaces.0.interface: Required value: interface must be "
      "specified when fromBootMAC is false",
      'spec.metaData.fromHostInterfaces.1.interface: Invalid value: "eth0": interface must be '
      "empty when fromBootMAC is true"]),
    (obj("Metal3DataTemplate", {"networkData": {"networks": {"ipv4": [
        {"id": "n", "link": "eth0"}]}}}),
     ["spec.networkData.networks.ipv4.0.fromPoolRef.name: Required value: fromPoolRef needs to "
      "contain a reference to an IPPool"]),
], ids=lambda v: v["kind"] if isinstance(v, dict) else None)
def test_create_rules(doc: dict[str, Any], expected: list[str]) -> None:
    assert errors(doc) == expected


def test_update_rules_keep_data_template_content_and_data_identity() -> None:
    old = obj("Metal3DataTemplate", {"metaData": {"strings": [{"key": "a", "value": "b"}]}})
    new = obj("Metal3DataTemplate", {"metaData": {"strings": [{"key": "a", "value": "c"}]}})
    assert errors(new, old=old) == ['spec.MetaData: Invalid value: "": cannot be modified']
    old_data = obj("Metal3Data", {"index": 1, "template": {"name": "t"}}, name="t-1")
    new_data = obj("Metal3Data", {"index": 2, "template": {"name": "u"}}, name="t-1")
    assert errors(new_data, old=old_data) == [
        "spec.Index: Invalid value: 2: cannot be modified",
        'spec.template: Invalid value: "u": cannot be modified']


def test_data_template_cluster_name_warns_as_upstream() -> None:
    doc = obj("Metal3DataTemplate", {"clusterName": "c"})
    admitted = validation.admit("CREATE", doc, None)
    assert admitted.allowed
    assert admitted.warnings == ("spec.clusterName is deprecated and will be removed in a future "
                                 "release. It is no longer used by the controllers.",)


def test_webhooks_are_served_for_v1beta2_only_at_upstreams_paths() -> None:
    paths = {e.webhook_path for e in validation.webhooks() if e.group == conversion.GROUP}
    assert paths == {f"/validate-infrastructure-cluster-x-k8s-io-v1beta2-{k.lower()}"
                     for k in conversion.KINDS if k != "Metal3ClusterTemplate"}


def test_a_template_that_could_never_render_is_refused_at_creation() -> None:
    """Ours: upstream finds these only when it renders for a machine (an error on a Metal3Data)."""
    bond = {"id": "b0", "bondMode": "balance-rr", "macAddress": {"string": "52:54:00:00:00:01"},
            "parameters": [{"name": "mode"}, {"name": "miimon"}]}
    spec = {"metaData": {"ipAddressesFromPool": [{"key": "ip", "name": "p"}]},
            "networkData": {"links": {"bonds": [bond]}, "networks": {"ipv4": [{
                "id": "n", "link": "b0", "fromPoolRef": {
                    "name": "p", "kind": "InClusterIPPool",
                    "apiGroup": "ipam.cluster.x-k8s.io"}}]}}}
    got = errors(obj("Metal3DataTemplate", spec))
    assert got == [
        "spec.networkData.networks.ipv4[0].fromPoolRef: Invalid value: pool 'p' is referenced "
        "as IPPool (ipam.metal3.io) and as InClusterIPPool (ipam.cluster.x-k8s.io): multiple "
        "references with the same name but different resource types",
        'spec.networkData.links.bonds[0].parameters[0].name: Invalid value: "mode": would '
        "overwrite bond_mode, which the bond's own field sets"]
    bond["parameters"] = [{"name": "miimon"}]
    spec["networkData"]["networks"]["ipv4"][0]["fromPoolRef"] = {"name": "p"}  # type: ignore[index]
    assert errors(obj("Metal3DataTemplate", spec)) == []
