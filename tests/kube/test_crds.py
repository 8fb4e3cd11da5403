"""Our generated CRDs against upstream's, on a real API server.

The oracle is upstream itself: its CRDs (the copy in tests/unit/api/upstream/crds) are
installed beside ours under the group `upstream.metal3.io`, and every object is sent to both
with a server-side dry run. Whatever upstream's schema accepts ours must accept with the same
stored result (defaults, pruning), and whatever it rejects ours must reject, naming the same
field.
"""

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from metalcubed.controllers.kube import capm3crds, crdgen, localcluster
from metalcubed.core.api import baremetalhost, validation
from metalcubed.core.api.capm3 import kinds as _capm3_kinds  # noqa: F401 (registers them)

# Verbatim copies of upstream's CRDs and examples (the compatibility oracle), kept in the repo.
REFERENCE = Path(__file__).resolve().parents[1] / "unit" / "api" / "upstream"
MANIFESTS = Path(crdgen.__file__).parent.parent / "manifests" / "crds"
UPSTREAM_GROUP = "upstream.metal3.io"
SERVED = {(f.model.API_VERSION, f.model.KIND) for f in crdgen.KINDS}

Kubectl = Callable[..., Any]


def _upstream_crd(facts: crdgen.KindFacts) -> dict[str, Any]:
    path = REFERENCE / "crds" / crdgen.file_name(crdgen.generate(facts))
    crd: dict[str, Any] = yaml.safe_load(path.read_text())
    return crd


def _relabel(crd: Mapping[str, Any]) -> dict[str, Any]:
    """Upstream's CRD, moved to UPSTREAM_GROUP so it can be served beside ours."""
    moved = copy.deepcopy(dict(crd))
    plural = moved["spec"]["names"]["plural"]
    moved["metadata"] = {"name": f"{plural}.{UPSTREAM_GROUP}"}
    moved["spec"]["group"] = UPSTREAM_GROUP
    moved["spec"]["names"].pop("shortNames", None)
    return moved


def _upstream_doc(doc: Mapping[str, Any]) -> dict[str, Any]:
    moved = copy.deepcopy(dict(doc))
    moved["apiVersion"] = f"{UPSTREAM_GROUP}/{moved['apiVersion'].rpartition('/')[2]}"
    return moved


SHIPPED = {(f"{c['spec']['group']}/{v['name']}", c["spec"]["names"]["kind"])
           for c in capm3crds.load(conversion=None) for v in c["spec"]["versions"]}
"""CAPM3's and IPAM's kinds: upstream's CRDs as shipped (capm3crds.py), both versions."""
CAPI_GROUPS = ("cluster.x-k8s.io", "ipam.cluster.x-k8s.io")
"""Cluster API core's own kinds, which CAPM3's examples mix in: their CRDs come with Cluster API
(tests/kube/test_capi_core.py applies those examples on a cluster running it)."""
DELIBERATE = {
    ("infrastructure.cluster.x-k8s.io/v1beta1", "Metal3DataTemplate"): {"apiGroup", "kind"},
}
"""Where ours accepts what upstream's CRD refuses, on purpose (capm3crds._relax): upstream's
v1beta1 requires apiGroup and kind on each `*FromIPPool` item, so its own example fails; the
value is the field names upstream's refusal names."""


def _upstream_shipped() -> list[dict[str, Any]]:
    """Upstream's own CAPM3/IPAM base CRDs (the verbatim copies), conversion off as in our
    test install."""
    out = []
    for path in sorted((REFERENCE / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["group"] in (capm3crds.CAPM3_GROUP, capm3crds.IPAM_GROUP):
            out.append(crd)
    return out


@pytest.fixture(scope="session")
def upstream_crds(kube_api: k8s.ApiClient) -> None:
    localcluster.install_crds(kube_api, [
        *[_relabel(_upstream_crd(f)) for f in crdgen.KINDS],
        *[_relabel(c) for c in _upstream_shipped()],
        *capm3crds.load(conversion=None),  # ours (the manifests' conversion webhook needs a
    ])                                     # manager serving it: test_capi_core covers it)


class Answer:
    """What the API server said to one write."""

    def __init__(self, code: int, body: Mapping[str, Any]) -> None:
        self.code = code
        self.body = body

    @property
    def accepted(self) -> bool:
        return 200 <= self.code < 300

    @property
    def fields(self) -> set[str]:
        causes = (self.body.get("details") or {}).get("causes") or []
        return {c.get("field", "") for c in causes}

    def __repr__(self) -> str:
        return f"HTTP {self.code}: {self.body.get('message', '')[:500]}"


def _plural(doc: Mapping[str, Any]) -> str:
    for facts in crdgen.KINDS:
        if doc["kind"] == facts.model.KIND:
            return facts.model.PLURAL
    for crd in capm3crds.load(conversion=None):
        if crd["spec"]["names"]["kind"] == doc["kind"]:
            return str(crd["spec"]["names"]["plural"])
    return str(doc["kind"]).lower() + "s"


def _send(
    api: k8s.ApiClient,
    doc: Mapping[str, Any],
    namespace: str,
    *,
    dry_run: bool = True,
    subresource: str = "",
) -> Answer:
    version = doc["apiVersion"]
    prefix = f"/apis/{version}" if "/" in version else f"/api/{version}"
    path = f"{prefix}/namespaces/{namespace}/{_plural(doc)}"
    method = "POST"
    body = dict(doc)
    if subresource:
        path += f"/{doc['metadata']['name']}/{subresource}"
        method = "PUT"
    try:
        data = api.call_api(
            path, method, query_params=[("dryRun", "All")] if dry_run else [],
            header_params={"Accept": "application/json", "Content-Type": "application/json"},
            body=body, response_types_map={200: "object", 201: "object"},
            auth_settings=["BearerToken"], _return_http_data_only=True,
        )
        return Answer(200, data)
    except k8s.ApiException as exc:
        return Answer(exc.status, json.loads(exc.body or "{}"))


def _both(
    api: k8s.ApiClient, doc: Mapping[str, Any], namespace: str, **kw: Any
) -> tuple[Answer, Answer]:
    return _send(api, doc, namespace, **kw), _send(api, _upstream_doc(doc), namespace, **kw)


# --- the checked-in manifests ----------------------------------------------------------------


def test_checked_in_crds_are_what_the_models_generate(tmp_path: Path) -> None:
    for shipped in capm3crds.shipped_files():  # upstream's, listed in the kustomization too
        (tmp_path / shipped.name).write_text(shipped.read_text())
    crdgen.write(tmp_path, crdgen.generate_all())
    for generated in sorted(tmp_path.iterdir()):
        checked_in = MANIFESTS / generated.name
        assert checked_in.exists(), f"missing {checked_in}: run `metalcubed crds --out {MANIFESTS}`"
        assert checked_in.read_text() == generated.read_text(), (
            f"{checked_in} is stale: run `metalcubed crds --out {MANIFESTS}`"
        )


def test_every_api_kind_has_a_crd() -> None:
    import importlib
    import pkgutil

    from metalcubed.core import api
    from metalcubed.core.api import meta

    for module in pkgutil.iter_modules(api.__path__):
        importlib.import_module(f"{api.__name__}.{module.name}")

    def subclasses(cls: type[meta.Resource]) -> Iterator[type[meta.Resource]]:
        sub: type[meta.Resource]
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    kinds = {
        c for c in subclasses(meta.Resource)
        if c.__module__.startswith(api.__name__) and "/" in getattr(c, "API_VERSION", "")
    }
    # CAPM3 and IPAM kinds ship upstream's CRDs (capm3crds.py); Cluster API's own kinds
    # (cluster.x-k8s.io, ipam.cluster.x-k8s.io) have their CRDs from Cluster API core.
    shipped = {(c["spec"]["group"], c["spec"]["names"]["plural"])
               for c in capm3crds.load(conversion=None)}
    capi_groups = ("cluster.x-k8s.io", "ipam.cluster.x-k8s.io")  # Cluster API core's CRDs
    external = {c for c in kinds if c.API_VERSION.split("/")[0] in (
        capm3crds.CAPM3_GROUP, capm3crds.IPAM_GROUP, *capi_groups)}
    assert {c.__name__ for c in external if c.API_VERSION.split("/")[0] not in capi_groups
            and (c.API_VERSION.split("/")[0], c.PLURAL) not in shipped} == set()
    missing = {c.__name__ for c in kinds - external} - {f.model.__name__ for f in crdgen.KINDS}
    assert not missing, f"add these kinds to crdgen.KINDS: {sorted(missing)}"


# --- schema comparison -----------------------------------------------------------------------


def _walk(node: Mapping[str, Any], path: str, out: dict[str, dict[str, Any]]) -> None:
    skip = ("properties", "items", "description", "additionalProperties")
    out[path] = {k: v for k, v in node.items() if k not in skip}
    for name, sub in (node.get("properties") or {}).items():
        _walk(sub, f"{path}.{name}", out)
    if "items" in node:
        _walk(node["items"], f"{path}[]", out)
    if isinstance(node.get("additionalProperties"), Mapping):  # a map's values
        _walk(node["additionalProperties"], f"{path}.*", out)


def _schemas(facts: crdgen.KindFacts) -> tuple[dict[str, Any], dict[str, Any]]:
    ours: dict[str, dict[str, Any]] = {}
    theirs: dict[str, dict[str, Any]] = {}
    version = crdgen.generate(facts)["spec"]["versions"][0]
    _walk(version["schema"]["openAPIV3Schema"], "", ours)
    upstream = _upstream_crd(facts)["spec"]["versions"][0]
    _walk(upstream["schema"]["openAPIV3Schema"], "", theirs)
    return ours, theirs


KNOWN_DIFFERENCES = {
    # (path, keyword): why; docs/local-apiserver.md lists the same.
    (".status", "required"): "defaults instead (our writer always sends them)",
    (".status.provisioning", "required"): "defaults instead",
    (".status.errorMessage", "default"): "zero value as default",
    (".status.operationalStatus", "default"): "zero value as default",
    (".status.poweredOn", "default"): "zero value as default",
    (".status.provisioning.ID", "default"): "zero value as default",
    (".status.provisioning.state", "default"): "zero value as default",
    (".status.provisioning.state", "enum"): "our states, listed",
    (".status.errorType", "enum"): "includes 'detach error', which upstream writes but omits",
}
IGNORED_KEYWORDS = {"format", "nullable"}
"""int32/int64/double formats are informative (the types agree). `nullable`: upstream allows an
explicit null on a few optional fields; ours drops a null before validation (the API server's
rule for non-nullable fields), so both accept it and our models read absent and null alike."""
BOOL_ENUMS = "firmware."
"""upstream lists enum [true, false] on the deprecated firmware booleans: same values."""


@pytest.mark.parametrize("facts", crdgen.KINDS, ids=lambda f: f.model.KIND)
def test_schema_has_upstreams_fields_and_types(facts: crdgen.KindFacts) -> None:
    ours, theirs = _schemas(facts)
    assert sorted(set(theirs) - set(ours)) == [], "fields only upstream has"
    assert sorted(set(ours) - set(theirs)) == [], "fields only we have"
    for path, node in theirs.items():
        assert ours[path].get("type") == node.get("type"), path


@pytest.mark.parametrize("facts", crdgen.KINDS, ids=lambda f: f.model.KIND)
def test_schema_differs_from_upstream_only_where_documented(facts: crdgen.KindFacts) -> None:
    ours, theirs = _schemas(facts)
    unexplained = []
    for path in sorted(set(ours) & set(theirs)):
        for keyword in sorted(set(ours[path]) | set(theirs[path])):
            if ours[path].get(keyword) == theirs[path].get(keyword):
                continue
            if keyword in IGNORED_KEYWORDS or (keyword == "enum" and BOOL_ENUMS in path):
                continue
            if (path, keyword) in KNOWN_DIFFERENCES:
                continue
            unexplained.append(
                f"{path} {keyword}: ours {ours[path].get(keyword)!r}, "
                f"upstream {theirs[path].get(keyword)!r}"
            )
    assert unexplained == []


@pytest.mark.parametrize("facts", crdgen.KINDS, ids=lambda f: f.model.KIND)
def test_names_columns_and_subresources_match_upstream(facts: crdgen.KindFacts) -> None:
    ours, theirs = crdgen.generate(facts)["spec"], _upstream_crd(facts)["spec"]
    assert ours["names"] == theirs["names"]
    assert ours["scope"] == theirs["scope"]
    for key in ("additionalPrinterColumns", "name", "served", "storage"):
        assert ours["versions"][0].get(key) == theirs["versions"][0].get(key), key
    # upstream writes an empty `subresources: {}` for HardwareData: the same as none
    assert (ours["versions"][0].get("subresources") or {}) == (
        theirs["versions"][0].get("subresources") or {})


# --- upstream examples -----------------------------------------------------------------------


def _example_docs() -> list[Any]:
    params = []
    for path in sorted((REFERENCE / "examples").glob("*.yaml")):
        for index, doc in enumerate(d for d in yaml.safe_load_all(path.read_text()) if d):
            kind = (doc.get("apiVersion"), doc.get("kind"))
            if kind[0] == "v1" or str(kind[0]).split("/")[0] in CAPI_GROUPS:
                continue  # built-in and Cluster API kinds beside the examples (see CAPI_GROUPS)
            assert kind in SERVED | SHIPPED, f"{path.name}: {kind} has no CRD of ours"
            params.append(pytest.param(doc, id=f"{path.stem}#{index}-{doc['kind']}"))
    return params


def _spec_and_status(answer: Answer) -> dict[str, Any]:
    return {k: answer.body.get(k) for k in ("spec", "status")}


@pytest.mark.parametrize("doc", _example_docs())
def test_upstream_example_gets_upstreams_answer(
    kube_api: k8s.ApiClient, kube_namespace: str, upstream_crds: None, doc: dict[str, Any]
) -> None:
    ours, theirs = _both(kube_api, doc, kube_namespace)
    deliberate = DELIBERATE.get((doc["apiVersion"], doc["kind"]))
    if deliberate is not None:  # ours accepts; upstream refuses naming exactly these fields
        assert ours.accepted, ours
        assert not theirs.accepted and {f.rpartition(".")[2] for f in theirs.fields} == (
            deliberate), theirs
        validation.KINDS[(doc["apiVersion"], doc["kind"])].model.from_wire(ours.body)
        return
    assert ours.accepted == theirs.accepted, f"ours {ours}; upstream {theirs}"
    if not ours.accepted:
        assert ours.fields == theirs.fields
        return
    assert _spec_and_status(ours) == _spec_and_status(theirs)
    model = validation.KINDS[(doc["apiVersion"], doc["kind"])].model
    assert model is not None
    model.from_wire(ours.body)  # what the server stores, our model reads
    if "status" in doc:  # a status restored on pivot goes through /status: same answer too
        for answer in _both(kube_api, doc, kube_namespace, dry_run=False):
            assert answer.accepted, answer
        ours, theirs = _both(kube_api, doc, kube_namespace, subresource="status")
        assert ours.accepted == theirs.accepted, f"ours {ours}; upstream {theirs}"
        if ours.accepted:
            assert ours.body["status"] == theirs.body["status"]
            model.from_wire(ours.body)


@pytest.mark.parametrize(
    "name", ["bmo-example-host.yaml", "bmo-example-host-bad-credentials.yaml", "capm3-hosts.yaml"]
)
def test_kubectl_applies_upstream_examples(
    kubectl: Kubectl, kube_namespace: str, name: str
) -> None:
    kubectl("apply", "-n", kube_namespace, "-f", str(REFERENCE / "examples" / name))
    table = kubectl("get", "bmh", "-n", kube_namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "STATE", "CONSUMER", "ONLINE", "ERROR", "AGE"]
    assert len(table) > 1
    wide = kubectl("get", "bmhost", "-n", kube_namespace, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[:3] == ["NAME", "STATUS", "STATE"]


# --- schema violations -----------------------------------------------------------------------

BASE_HOST: dict[str, Any] = {
    "apiVersion": "metal3.io/v1alpha1",
    "kind": "BareMetalHost",
    "metadata": {"name": "probe"},
    "spec": {
        "online": True,
        "bootMACAddress": "00:11:22:33:44:55",
        "bmc": {"address": "redfish://192.0.2.1/redfish/v1/Systems/1", "credentialsName": "c"},
    },
}


def _with(path: str, value: Any, base: Mapping[str, Any] = BASE_HOST) -> dict[str, Any]:
    """A copy of `base` with the dotted `path` set to `value` (the sentinel DROP removes it)."""
    doc = copy.deepcopy(dict(base))
    *parents, last = path.split(".")
    node = doc
    for part in parents:
        node = node.setdefault(part, {})
    if value is DROP:
        node.pop(last, None)
    else:
        node[last] = value
    return doc


DROP = object()
BASE_DATA: dict[str, Any] = {
    "apiVersion": "metal3.io/v1alpha1",
    "kind": "HardwareData",
    "metadata": {"name": "probe"},
    "spec": {"hardware": {"nics": [{"name": "eth0", "vlanId": 1}]}},
}

INVALID = {
    "boot-mode-not-in-enum": (_with("spec.bootMode", "BIOS"), "spec.bootMode"),
    "mac-not-a-mac": (_with("spec.bootMACAddress", "zz"), "spec.bootMACAddress"),
    "online-missing": (_with("spec.online", DROP), "spec.online"),
    "online-not-boolean": (_with("spec.online", "yes"), "spec.online"),
    "bmc-without-credentials": (
        _with("spec.bmc", {"address": "ipmi://192.0.2.1"}), "spec.bmc.credentialsName"),
    "cleaning-mode-unknown": (
        _with("spec.automatedCleaningMode", "always"), "spec.automatedCleaningMode"),
    "negative-min-size": (
        _with("spec.rootDeviceHints", {"minSizeGigabytes": -1}),
        "spec.rootDeviceHints.minSizeGigabytes"),
    "hardware-raid-level": (
        _with("spec.raid", {"hardwareRAIDVolumes": [{"level": "7"}]}),
        "spec.raid.hardwareRAIDVolumes[0].level"),
    "three-software-raid-volumes": (
        _with("spec.raid", {"softwareRAIDVolumes": [{"level": "1"}] * 3}),
        "spec.raid.softwareRAIDVolumes"),
    "image-without-url": (_with("spec.image", {"checksum": "abc"}), "spec.image.url"),
    "checksum-type-unknown": (
        _with("spec.image", {"url": "http://x/i.img", "checksumType": "crc"}),
        "spec.image.checksumType"),
    "inspection-mode-unknown": (_with("spec.inspectionMode", "slow"), "spec.inspectionMode"),
    "custom-deploy-without-method": (_with("spec.customDeploy", {}), "spec.customDeploy.method"),
    "taint-without-effect": (_with("spec.taints", [{"key": "k"}]), "spec.taints[0].effect"),
    "hardwaredata-vlan-too-big": (
        _with("spec.hardware.nics", [{"vlanId": 5000}], BASE_DATA),
        "spec.hardware.nics[0].vlanId"),
    "hardwaredata-disk-type-unknown": (
        _with("spec.hardware.storage", [{"type": "TAPE"}], BASE_DATA),
        "spec.hardware.storage[0].type"),
}


@pytest.mark.parametrize("doc,field", INVALID.values(), ids=INVALID.keys())
def test_invalid_object_is_rejected_like_upstream_naming_the_field(
    kube_api: k8s.ApiClient, kube_namespace: str, upstream_crds: None,
    doc: dict[str, Any], field: str,
) -> None:
    ours, theirs = _both(kube_api, doc, kube_namespace)
    assert not theirs.accepted and field in theirs.fields, f"upstream: {theirs}"
    assert ours.code == 422, ours
    assert field in ours.fields, ours
    assert field in ours.body["message"]


VALID = {
    "minimal": _with("spec", {"online": False}),
    "no-spec-fields-but-online-and-bmc": BASE_HOST,
    "everything": _with("spec", {
        **BASE_HOST["spec"],
        "bootMode": "UEFISecureBoot",
        "automatedCleaningMode": "disabled",
        "externallyProvisioned": False,
        "image": {"url": "http://x/i.qcow2", "checksum": "http://x/i.sha256",
                  "checksumType": "sha256", "format": "qcow2"},
        "rootDeviceHints": {"deviceName": "/dev/sda", "minSizeGigabytes": 10, "rotational": False},
        "raid": {"softwareRAIDVolumes": [{"level": "1", "physicalDisks": [
            {"deviceName": "/dev/sda"}, {"deviceName": "/dev/sdb"}]}]},
        "userData": {"name": "ud"},
        "consumerRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
                        "kind": "Metal3Machine", "name": "m0", "namespace": "ns"},
        "description": "rack 4",
        "unknownField": "pruned by both",
    }),
    "hardwaredata": BASE_DATA,
    "explicit-nulls": _with("spec.raid", {"hardwareRAIDVolumes": None, "softwareRAIDVolumes": []}),
}


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


@pytest.mark.parametrize("doc", VALID.values(), ids=VALID.keys())
def test_valid_object_is_stored_like_upstream(
    kube_api: k8s.ApiClient, kube_namespace: str, upstream_crds: None, doc: dict[str, Any]
) -> None:
    ours, theirs = _both(kube_api, doc, kube_namespace)
    assert ours.accepted and theirs.accepted, f"ours {ours}; upstream {theirs}"
    assert _without_nulls(ours.body["spec"]) == _without_nulls(theirs.body["spec"])


def test_host_without_spec_is_stored_like_upstream(
    kube_api: k8s.ApiClient, kube_namespace: str, upstream_crds: None
) -> None:
    # Issue 9 item 7 (upstream's examples/demo-hosts.yaml "demo-discovered"): both CRDs store a
    # host without spec, and our model reads what is stored as a host with no BMC (unmanaged).
    doc = {k: v for k, v in BASE_HOST.items() if k != "spec"}
    ours, theirs = _both(kube_api, doc, kube_namespace)
    assert ours.accepted and theirs.accepted, f"ours {ours}; upstream {theirs}"
    assert ours.body.get("spec") == theirs.body.get("spec")
    host = baremetalhost.BareMetalHost.from_wire(ours.body)
    assert not host.spec.has_bmc_details()
