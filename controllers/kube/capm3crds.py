"""CAPM3's and IPAM's CustomResourceDefinitions: upstream's schemas, installed as upstream does.

Why not generated from our models like BareMetalHost's (crdgen.py): these kinds are served in
two versions whose schemas differ (v1beta1 and v1beta2, stored v1beta2), and the compatibility
promise is that upstream's manifests, in either version, are accepted and stored as upstream
stores them. So the schemas are upstream's `config/crd/bases` (CAPM3 2f6d76b8, IPAM 1f5fa681)
unchanged, and `from_upstream` adds exactly what upstream's kustomize adds on top
(config/crd/kustomization.yaml and patches/ of each project):

- the Cluster API contract labels: CAPI core reads `cluster.x-k8s.io/v1beta2: v1beta2` to pick
  the apiVersion of an infrastructure object; without them every Cluster and Machine fails with
  "cannot find any versions matching contract versions";
- a conversion webhook (`/convert`, review versions v1 and v1beta1) on every CAPM3 CRD:
  without it the API server only rewrites apiVersion and drops the v1beta1 fields v1beta2 does
  not know. Upstream patches eight of the nine CRDs (not Metal3ClusterTemplate, whose v1beta1
  failureDomains map then cannot become v1beta2's list); we convert all nine;
- `clusterctl.cluster.x-k8s.io/skip-crd-name-preflight-check` on metal3datas (irregular plural).

One deliberate change to a schema (`_relax`): upstream's v1beta1 Metal3DataTemplate requires
`apiGroup` and `kind` on every `*FromIPPool` item, so upstream's own example template (items
with only `key` and `name`) is refused by upstream's CRD. v1beta2 requires only `key` and
`name` and defaults the others to `ipam.metal3.io`/`IPPool`; ours asks the same of v1beta1, so
the example applies and reads back with the defaults filled in.

The shipped files in controllers/manifests/crds/ point the webhook at the in-cluster Service
`metalcubed-webhook-service` (namespace metalcubed-system); `load(conversion=...)` re-targets
them for a local API server (a URL on 127.0.0.1 and the CA bundle) or turns conversion off.
Regenerate the shipped files with
`python3 -m metalcubed.controllers.kube.capm3crds <upstream crds dir> controllers/manifests/crds`.
"""

import base64
import copy
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from metalcubed.core.api.capm3 import conversion

MANIFEST_DIR = Path(__file__).resolve().parent.parent / "manifests" / "crds"
CAPM3_GROUP = conversion.GROUP
IPAM_GROUP = "ipam.metal3.io"
CONTRACT_LABELS = {"cluster.x-k8s.io/v1beta1": "v1beta1", "cluster.x-k8s.io/v1beta2": "v1beta2"}
"""CAPM3's config/crd/kustomization.yaml labels."""
IPAM_LABELS = {
    "cluster.x-k8s.io/v1alpha2": "v1alpha2",
    "cluster.x-k8s.io/v1alpha3": "v1alpha3_v1alpha4",
    "cluster.x-k8s.io/v1alpha4": "v1alpha5",
    "cluster.x-k8s.io/v1beta1": "v1beta1",
}
"""IPAM's config/crd/kustomization.yaml labels (its own release series, not CAPI's)."""
SKIP_NAME_CHECK = "clusterctl.cluster.x-k8s.io/skip-crd-name-preflight-check"
SERVICE = {"namespace": "metalcubed-system", "name": "metalcubed-webhook-service",
           "path": "/convert"}
REVIEW_VERSIONS = ["v1", "v1beta1"]
HEADER = ("# Upstream's CRD (config/crd/bases; CAPM3 2f6d76b8 / IPAM 1f5fa681, Apache-2.0) with\n"
          "# what upstream's kustomize adds: contract labels, conversion webhook.\n"
          "# Regenerate: python3 -m metalcubed.controllers.kube.capm3crds <bases> <out>\n")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversionTarget:
    """Where the API server sends ConversionReviews: a URL (local API server) + PEM CA."""

    url: str
    ca_bundle_pem: bytes


def from_upstream(base: Mapping[str, Any]) -> dict[str, Any]:
    """An upstream base CRD with upstream kustomize's additions (module docstring)."""
    crd = copy.deepcopy(dict(base))
    group = crd["spec"]["group"]
    metadata = crd.setdefault("metadata", {})
    labels = metadata.setdefault("labels", {})
    if group == CAPM3_GROUP:
        labels.update(CONTRACT_LABELS)
        _relax(crd)
        crd["spec"]["conversion"] = {
            "strategy": "Webhook",
            "webhook": {"clientConfig": {"service": dict(SERVICE)},
                        "conversionReviewVersions": list(REVIEW_VERSIONS)},
        }
        if crd["spec"]["names"]["plural"] == "metal3datas":
            metadata.setdefault("annotations", {})[SKIP_NAME_CHECK] = ""
    elif group == IPAM_GROUP:
        labels.update(IPAM_LABELS)
    else:
        raise ValueError(f"{metadata.get('name')}: not a CAPM3 or IPAM CRD (group {group})")
    return crd


def _relax(crd: dict[str, Any]) -> None:
    """v1beta1 `*FromIPPool` items require only key and name, as in v1beta2 (module doc)."""
    if crd["spec"]["names"]["plural"] != "metal3datatemplates":
        return
    for version in crd["spec"]["versions"]:
        if version["name"] != "v1beta1":
            continue
        spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        meta_data = spec["properties"]["metaData"]["properties"]
        for name, prop in meta_data.items():
            if name.endswith("FromIPPool"):
                prop["items"]["required"] = ["key", "name"]


def shipped_files() -> list[Path]:
    files = sorted(MANIFEST_DIR.glob(f"{CAPM3_GROUP}_*.yaml"))
    return files + sorted(MANIFEST_DIR.glob(f"{IPAM_GROUP}_*.yaml"))


def load(*, conversion: ConversionTarget | None) -> list[dict[str, Any]]:
    """The twelve CRDs as shipped, re-targeted: `conversion` None turns the webhook off
    (strategy None: fine for v1beta2-only clients, loses v1beta1-only fields)."""
    out = []
    for path in shipped_files():
        crd = yaml.safe_load(path.read_text())
        if "conversion" in crd["spec"]:
            if conversion is None:
                crd["spec"]["conversion"] = {"strategy": "None"}
            else:
                config = {"url": conversion.url,
                          "caBundle": base64.b64encode(conversion.ca_bundle_pem).decode()}
                crd["spec"]["conversion"]["webhook"]["clientConfig"] = config
        out.append(crd)
    return out


def write(bases: Path, out_dir: Path) -> list[Path]:
    """Regenerate the shipped files from a directory of upstream base CRDs."""
    written = []
    for path in sorted(bases.glob("*.yaml")):
        base = yaml.safe_load(path.read_text())
        if base["spec"]["group"] not in (CAPM3_GROUP, IPAM_GROUP):
            continue
        target = out_dir / path.name
        target.write_text(HEADER + "---\n" + yaml.safe_dump(from_upstream(base), sort_keys=False,
                                                           width=100))
        written.append(target)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python3 -m metalcubed.controllers.kube.capm3crds BASES_DIR OUT_DIR")
    for p in write(Path(sys.argv[1]), Path(sys.argv[2])):
        print(p)
