"""The shipped CAPM3/IPAM CRDs are upstream's with exactly upstream kustomize's additions, and
the Cluster API build script and capi.py agree on the version."""

import base64
import copy
from pathlib import Path
from typing import Any

import yaml

from metalcubed.controllers.kube import capi, capm3crds

UPSTREAM = Path(__file__).parents[1] / "api" / "upstream" / "crds"


def _upstream(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((UPSTREAM / name).read_text())
    return doc


def test_shipped_files_are_regenerated_from_upstream() -> None:
    files = capm3crds.shipped_files()
    assert len(files) == 12
    for path in files:
        assert yaml.safe_load(path.read_text()) == capm3crds.from_upstream(_upstream(path.name))


def test_capm3_crds_carry_contract_labels_and_a_conversion_webhook_and_keep_upstreams_schema(
) -> None:
    for crd in capm3crds.load(conversion=None):
        group = crd["spec"]["group"]
        if group != capm3crds.CAPM3_GROUP:
            assert crd["metadata"]["labels"]["cluster.x-k8s.io/v1beta1"] == "v1beta1"
            assert "conversion" not in crd["spec"]
            continue
        upstream = _upstream(f"{group}_{crd['spec']['names']['plural']}.yaml")
        assert crd["metadata"]["labels"] == {**(upstream["metadata"].get("labels") or {}),
                                             **capm3crds.CONTRACT_LABELS}
        assert [(v["name"], v["storage"]) for v in crd["spec"]["versions"]] == [
            ("v1beta1", False), ("v1beta2", True)]
        assert crd["spec"]["conversion"] == {"strategy": "None"}
        if crd["spec"]["names"]["kind"] != "Metal3DataTemplate":
            assert crd["spec"]["versions"] == upstream["spec"]["versions"]


def test_the_only_schema_change_relaxes_v1beta1_pool_references_as_v1beta2() -> None:
    ours = next(c for c in capm3crds.load(conversion=None)
                if c["spec"]["names"]["kind"] == "Metal3DataTemplate")
    upstream = copy.deepcopy(_upstream(
        "infrastructure.cluster.x-k8s.io_metal3datatemplates.yaml"))
    meta_data = upstream["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"]["properties"]["metaData"]["properties"]
    relaxed = [k for k in meta_data if k.endswith("FromIPPool")]
    assert sorted(relaxed) == ["dnsServersFromIPPool", "gatewaysFromIPPool",
                               "ipAddressesFromIPPool", "prefixesFromIPPool"]
    for key in relaxed:
        assert meta_data[key]["items"]["required"] == ["apiGroup", "key", "kind", "name"]
        meta_data[key]["items"]["required"] = ["key", "name"]
    assert ours["spec"]["versions"] == upstream["spec"]["versions"]


def test_a_conversion_target_points_every_capm3_crd_at_it() -> None:
    target = capm3crds.ConversionTarget(url="https://127.0.0.1:9443/convert",
                                        ca_bundle_pem=b"PEM")
    converted = [c for c in capm3crds.load(conversion=target) if "conversion" in c["spec"]]
    assert len(converted) == 9
    for crd in converted:
        hook = crd["spec"]["conversion"]["webhook"]
        assert hook["clientConfig"] == {"url": target.url,
                                        "caBundle": base64.b64encode(b"PEM").decode()}
        assert hook["conversionReviewVersions"] == ["v1", "v1beta1"]
    shipped = yaml.safe_load(capm3crds.shipped_files()[0].read_text())
    assert shipped["spec"]["conversion"]["webhook"]["clientConfig"] == {
        "service": capm3crds.SERVICE}


def test_capi_version_matches_the_build_script_and_the_manager_is_on_loopback() -> None:
    script = capi.build_script().read_text()
    assert f"CV=${{CAPI_VERSION:-{capi.CAPI_VERSION}}}" in script
    assert 'Host:     "127.0.0.1"' in script
    argv = capi.manager_argv(capi.CapiBinaries(directory=Path("/x")), kubeconfig=Path("/k"),
                             cert_dir=Path("/c"), webhook_port=1, health_port=2)
    assert "--health-addr=127.0.0.1:2" in argv
    assert "--diagnostics-address=0" in argv
    assert "--leader-elect=false" in argv
