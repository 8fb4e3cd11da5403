"""v1beta1 <-> v1beta2 conversion of CAPM3's kinds, on wire dicts, with no field lost.

Why: CAPM3 stores v1beta2 but still serves v1beta1, and most published templates (upstream's own
examples among them) are v1beta1. The API server converts every read and write between the two
through the conversion webhook (`/convert`), which calls `convert` here. Without it the server
only rewrites apiVersion, and v1beta1 keys the v1beta2 schema does not know
(`ipAddressesFromIPPool`, `format`, `timeout`, ...) are pruned: silent data loss.

Two layers:
- Field maps, one per kind and direction (`_UP`: v1beta1 -> v1beta2, `_DOWN`: the reverse), that
  follow upstream's `api/v1beta1/conversion.go` (CAPM3 2f6d76b8): renamed keys, a map that became
  a list (failure domains, bond parameters, template indexes), ObjectReferences narrowed to
  {name, namespace}, `timeout` (a Go duration) <-> `timeoutSeconds`, `status.ready` <->
  `status.initialization.provisioned`, v1beta1 conditions <-> `status.deprecated.v1beta1`.
- A stash, as Cluster API's `util/conversion.MarshalData` does: when the target version cannot
  express all of the source (v1beta2's `spec.template.metadata` read as v1beta1, v1beta1's
  `templateReference` or an ObjectReference's `uid` stored as v1beta2, a `300s` timeout that
  comes back as `5m0s`), the source's spec and status are written as JSON to the annotation
  `cluster.x-k8s.io/conversion-data`. Converting back restores each of spec and status from it
  when the object still maps to what was stashed (nobody changed that section since), so
  v1beta1 -> v1beta2 -> v1beta1 and the reverse give back exactly what went in.
  Upstream stashes only in the v1beta2 -> v1beta1 direction and drops the v1beta1-only fields;
  we stash both ways, section by section (a controller's status write does not discard the
  user's spec stash).

The API server applies each version's schema defaults around the webhook (on the stored
version when it decodes, on the requested one after converting). The maps therefore keep a
defaulted value as it is (`nodeReuse: false` stays, where upstream drops it going up), so a
stash compares equal after a read-modify-write through the other version.

Everything here is pure: wire dicts in, new wire dicts out (inputs are never modified).
"""

import copy
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

GROUP = "infrastructure.cluster.x-k8s.io"
V1BETA1 = f"{GROUP}/v1beta1"
V1BETA2 = f"{GROUP}/v1beta2"
VERSIONS = (V1BETA1, V1BETA2)
STORAGE_VERSION = V1BETA2
CONVERSION_DATA_ANNOTATION = "cluster.x-k8s.io/conversion-data"
"""Cluster API's annotation for what the other version cannot hold (JSON)."""

KINDS = (
    "Metal3Cluster",
    "Metal3ClusterTemplate",
    "Metal3Machine",
    "Metal3MachineTemplate",
    "Metal3DataTemplate",
    "Metal3DataClaim",
    "Metal3Data",
    "Metal3Remediation",
    "Metal3RemediationTemplate",
)
"""Every CAPM3 kind, all served as v1beta1 and v1beta2 (stored v1beta2)."""

Obj = dict[str, Any]
Section = Callable[[Mapping[str, Any]], Obj]


class ConversionError(ValueError):
    """The object cannot be converted (unknown kind or version, or a malformed value)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


# --- small pieces ------------------------------------------------------------------------------


def _ref(value: Any) -> Any:
    """corev1.ObjectReference (v1beta1) -> Metal3ObjectRef {name, namespace} (v1beta2)."""
    if not isinstance(value, Mapping):
        return value
    return {k: value[k] for k in ("name", "namespace") if k in value}


def _rename(obj: Obj, old: str, new: str) -> None:
    if old in obj:
        obj[new] = obj.pop(old)


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
           "h": 3600.0}


def parse_duration_s(text: str) -> float:
    """A Go duration string (`300s`, `5m0s`, `1h2m3.5s`, `-1s`) in seconds."""
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0.0
    parts = _DURATION_PART.findall(body)
    if not body or "".join(n + u for n, u in parts) != body:
        raise ConversionError("spec.strategy.timeout", f"invalid duration {text!r}")
    seconds = sum(float(n) * _UNIT_S[u] for n, u in parts)
    return -seconds if text.startswith("-") else seconds


def format_duration(seconds: int) -> str:
    """Whole seconds as Go's time.Duration.String() writes them (`5m0s`, `1h0m0s`, `0s`)."""
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{sign}{minutes}m{secs}s"
    return f"{sign}{secs}s"


# --- shared status pieces ----------------------------------------------------------------------


def _status_up(status: Mapping[str, Any]) -> Obj:
    """Cluster API contract status v1beta1 -> v1beta2 (Metal3Cluster, Metal3Machine)."""
    out = copy.deepcopy(dict(status))
    ready = out.pop("ready", None)
    if ready:
        out.setdefault("initialization", {})["provisioned"] = True
    legacy = {k: out.pop(k) for k in ("conditions", "failureReason", "failureMessage")
              if k in out}
    out.pop("phase", None)  # never set by CAPM3; no v1beta2 home (kept by the stash)
    v1beta2 = out.pop("v1beta2", None)
    if isinstance(v1beta2, Mapping) and "conditions" in v1beta2:
        out["conditions"] = v1beta2["conditions"]
    if legacy:
        out["deprecated"] = {"v1beta1": legacy}
    return out


def _status_down(status: Mapping[str, Any]) -> Obj:
    out = copy.deepcopy(dict(status))
    init = out.pop("initialization", None)
    provisioned = isinstance(init, Mapping) and bool(init.get("provisioned"))
    conditions = out.pop("conditions", None)
    deprecated = out.pop("deprecated", None)
    legacy = deprecated.get("v1beta1") if isinstance(deprecated, Mapping) else None
    if isinstance(legacy, Mapping):
        for key in ("conditions", "failureReason", "failureMessage"):
            if key in legacy:
                out[key] = legacy[key]
    if provisioned:
        out["ready"] = True
    if conditions is not None:
        out["v1beta2"] = {"conditions": conditions}
    return out


def _domains_up(domains: Any) -> Any:
    """{name: {controlPlane, attributes}} -> [{name, controlPlane?, attributes?}] sorted."""
    if not isinstance(domains, Mapping):
        return domains
    out = []
    for name in sorted(domains):
        spec = domains[name] if isinstance(domains[name], Mapping) else {}
        item: Obj = {"name": name}
        if spec.get("controlPlane"):
            item["controlPlane"] = True
        if "attributes" in spec:
            item["attributes"] = copy.deepcopy(spec["attributes"])
        out.append(item)
    return out


def _domains_down(domains: Any) -> Any:
    if not isinstance(domains, list):
        return domains
    out: Obj = {}
    for item in domains:
        if not isinstance(item, Mapping) or "name" not in item:
            raise ConversionError("failureDomains", "an item has no name")
        spec: Obj = {}
        if item.get("controlPlane"):
            spec["controlPlane"] = True
        if "attributes" in item:
            spec["attributes"] = copy.deepcopy(item["attributes"])
        out[str(item["name"])] = spec
    return out


# --- per-kind field maps -----------------------------------------------------------------------


def _cluster_spec_up(spec: Mapping[str, Any]) -> Obj:
    out = copy.deepcopy(dict(spec))
    no_cloud = out.pop("noCloudProvider", None)
    if "cloudProviderEnabled" not in out and isinstance(no_cloud, bool):
        out["cloudProviderEnabled"] = not no_cloud
    if "failureDomains" in out:
        out["failureDomains"] = _domains_up(out["failureDomains"])
    return out


def _cluster_spec_down(spec: Mapping[str, Any]) -> Obj:
    out = copy.deepcopy(dict(spec))
    if isinstance(out.get("cloudProviderEnabled"), bool):
        out["noCloudProvider"] = not out["cloudProviderEnabled"]
    if "failureDomains" in out:
        out["failureDomains"] = _domains_down(out["failureDomains"])
    return out


def _cluster_status_up(status: Mapping[str, Any]) -> Obj:
    out = _status_up(status)
    if "failureDomains" in out:
        out["failureDomains"] = _domains_up(out["failureDomains"])
    return out


def _cluster_status_down(status: Mapping[str, Any]) -> Obj:
    out = _status_down(status)
    if "failureDomains" in out:
        out["failureDomains"] = _domains_down(out["failureDomains"])
    return out


def _machine_spec_up(spec: Mapping[str, Any]) -> Obj:
    out = copy.deepcopy(dict(spec))
    if "dataTemplate" in out:
        out["dataTemplate"] = _ref(out["dataTemplate"])
    if isinstance(out.get("image"), dict):
        _rename(out["image"], "format", "diskFormat")
    return out


def _machine_spec_down(spec: Mapping[str, Any]) -> Obj:
    out = copy.deepcopy(dict(spec))
    if isinstance(out.get("image"), dict):
        _rename(out["image"], "diskFormat", "format")
    if out.get("providerID") == "":
        del out["providerID"]  # v1beta1 *string: empty means unset
    return out


def _machine_status_up(status: Mapping[str, Any]) -> Obj:
    out = _status_up(status)
    if "renderedData" in out:
        out["renderedData"] = _ref(out["renderedData"])
    return out


def _template_of(spec_map: Section, *, drop_metadata: bool) -> Section:
    """`spec.template.spec` of a *Template kind mapped like its object's spec."""

    def convert(spec: Mapping[str, Any]) -> Obj:
        out = copy.deepcopy(dict(spec))
        template = out.get("template")
        if isinstance(template, dict):
            if drop_metadata:
                template.pop("metadata", None)  # v1beta2 only (kept by the stash)
            if isinstance(template.get("spec"), Mapping):
                template["spec"] = spec_map(template["spec"])
        return out

    return convert


_POOL_KEYS = (
    ("ipAddressesFromIPPool", "ipAddressesFromPool"),
    ("prefixesFromIPPool", "prefixesFromPool"),
    ("gatewaysFromIPPool", "gatewaysFromPool"),
    ("dnsServersFromIPPool", "dnsServersFromPool"),
)


def _bonds(spec: Obj, params: Callable[[Any], Any]) -> None:
    links = (spec.get("networkData") or {}).get("links")
    bonds = links.get("bonds") if isinstance(links, Mapping) else None
    for bond in bonds if isinstance(bonds, list) else ():
        if isinstance(bond, dict) and "parameters" in bond:
            converted = params(bond["parameters"])
            if converted:
                bond["parameters"] = converted
            else:
                del bond["parameters"]  # v1beta2 lists need one item at least


def _params_up(params: Any) -> Any:
    if not isinstance(params, Mapping):
        return params
    return [{"name": k, "value": copy.deepcopy(params[k])} for k in sorted(params)]


def _params_down(params: Any) -> Any:
    if not isinstance(params, list):
        return params
    return {str(p["name"]): copy.deepcopy(p.get("value")) for p in params
            if isinstance(p, Mapping) and "name" in p}


def _data_template_spec_up(spec: Mapping[str, Any]) -> Obj:
    out = copy.deepcopy(dict(spec))
    out.pop("templateReference", None)  # deprecated, no v1beta2 home (kept by the stash)
    if isinstance(out.get("metaData"), dict):
        for old, new in _POOL_KEYS:
            _rename(out["metaData"], old, new)
    _bonds(out, _params_up)
    return out


def _data_template_spec_down(spec: Mapping[str, Any]) -> Obj:
    out = copy.deepcopy(dict(spec))
    if isinstance(out.get("metaData"), dict):
        for old, new in _POOL_KEYS:
            _rename(out["metaData"], new, old)
    _bonds(out, _params_down)
    return out


def _data_template_status_up(status: Mapping[str, Any]) -> Obj:
    out = copy.deepcopy(dict(status))
    indexes = out.pop("indexes", None)
    if isinstance(indexes, Mapping) and indexes:
        out["indexes"] = [{"name": name, "index": index}
                          for name, index in sorted(indexes.items(), key=lambda i: (i[1], i[0]))]
    elif indexes is not None and not isinstance(indexes, Mapping):
        out["indexes"] = indexes
    return out


def _data_template_status_down(status: Mapping[str, Any]) -> Obj:
    out = copy.deepcopy(dict(status))
    indexes = out.get("indexes")
    if isinstance(indexes, list):
        out["indexes"] = {str(i["name"]): i.get("index", 0) for i in indexes
                          if isinstance(i, Mapping) and "name" in i}
    return out


def _refs(*fields: str, drop: tuple[str, ...] = ()) -> Section:
    """Narrow the named ObjectReference fields; drop v1beta1-only keys."""

    def convert(section: Mapping[str, Any]) -> Obj:
        out = copy.deepcopy(dict(section))
        for name in drop:
            out.pop(name, None)
        for name in fields:
            if name in out:
                out[name] = _ref(out[name])
        return out

    return convert


def _strategy(section: Mapping[str, Any], convert: Callable[[Obj], None]) -> Obj:
    out = copy.deepcopy(dict(section))
    if isinstance(out.get("strategy"), dict):
        convert(out["strategy"])
    return out


def _timeout_up(strategy: Obj) -> None:
    if "timeout" in strategy:
        raw = strategy.pop("timeout")
        if not isinstance(raw, str):
            raise ConversionError("spec.strategy.timeout", f"not a duration string: {raw!r}")
        strategy["timeoutSeconds"] = int(parse_duration_s(raw))


def _timeout_down(strategy: Obj) -> None:
    if "timeoutSeconds" in strategy:
        raw = strategy.pop("timeoutSeconds")
        if not isinstance(raw, int):
            raise ConversionError("spec.strategy.timeoutSeconds", f"not an integer: {raw!r}")
        strategy["timeout"] = format_duration(raw)


def _remediation_spec_up(spec: Mapping[str, Any]) -> Obj:
    return _strategy(spec, _timeout_up)


def _remediation_spec_down(spec: Mapping[str, Any]) -> Obj:
    return _strategy(spec, _timeout_down)


def _identity(section: Mapping[str, Any]) -> Obj:
    return copy.deepcopy(dict(section))


# kind -> (spec map, status map)
_UP: dict[str, tuple[Section, Section]] = {
    "Metal3Cluster": (_cluster_spec_up, _cluster_status_up),
    "Metal3ClusterTemplate": (_template_of(_cluster_spec_up, drop_metadata=False), _identity),
    "Metal3Machine": (_machine_spec_up, _machine_status_up),
    "Metal3MachineTemplate": (_template_of(_machine_spec_up, drop_metadata=False), _identity),
    "Metal3DataTemplate": (_data_template_spec_up, _data_template_status_up),
    "Metal3DataClaim": (_refs("template"), _refs("renderedData")),
    "Metal3Data": (_refs("claim", "template", drop=("templateReference",)), _identity),
    "Metal3Remediation": (_remediation_spec_up, _identity),
    "Metal3RemediationTemplate": (_template_of(_remediation_spec_up, drop_metadata=False),
                                  _identity),
}
_DOWN: dict[str, tuple[Section, Section]] = {
    "Metal3Cluster": (_cluster_spec_down, _cluster_status_down),
    "Metal3ClusterTemplate": (_template_of(_cluster_spec_down, drop_metadata=True), _identity),
    "Metal3Machine": (_machine_spec_down, _status_down),
    "Metal3MachineTemplate": (_template_of(_machine_spec_down, drop_metadata=True), _identity),
    "Metal3DataTemplate": (_data_template_spec_down, _data_template_status_down),
    "Metal3DataClaim": (_identity, _identity),
    "Metal3Data": (_identity, _identity),
    "Metal3Remediation": (_remediation_spec_down, _identity),
    "Metal3RemediationTemplate": (_template_of(_remediation_spec_down, drop_metadata=True),
                                  _identity),
}


# --- the entry point ---------------------------------------------------------------------------

_SECTIONS = ("spec", "status")


def map_sections(obj: Mapping[str, Any], target: str) -> Obj:
    """Only the field maps, no stash: the converted object without the conversion annotation.

    Public for the tests that check what each direction keeps by itself.
    """
    kind, source = _check(obj, target)
    table = _UP if (source, target) == (V1BETA1, V1BETA2) else _DOWN
    out: Obj = {k: copy.deepcopy(v) for k, v in obj.items() if k not in _SECTIONS}
    out["apiVersion"] = target
    if source == target:
        out.update({s: copy.deepcopy(obj[s]) for s in _SECTIONS if s in obj})
        return out
    for section, convert in zip(_SECTIONS, table[kind], strict=True):
        if section in obj:
            if not isinstance(obj[section], Mapping):
                raise ConversionError(section, f"expected an object, got {obj[section]!r}")
            out[section] = convert(obj[section])
    return out


def convert(obj: Mapping[str, Any], target: str) -> Obj:
    """`obj` (any served version of a CAPM3 kind) as `target`, losing nothing.

    Raises ConversionError naming the field for an unknown kind/version or a malformed value.
    The result never shares structure with `obj`.
    """
    kind, source = _check(obj, target)
    if source == target:
        return copy.deepcopy(dict(obj))
    annotations = dict((obj.get("metadata") or {}).get("annotations") or {})
    stashed = _load_stash(annotations.pop(CONVERSION_DATA_ANNOTATION, None))
    bare = dict(obj)
    bare["metadata"] = _with_annotations(obj.get("metadata"), annotations)
    out = map_sections(bare, target)
    if stashed is not None and stashed.get("apiVersion") == target:
        # Each section the stash still maps to (nobody changed it since) comes back exactly.
        replay = map_sections({**stashed, "kind": kind}, source)
        for section in _SECTIONS:
            if replay.get(section) == bare.get(section):
                if section in stashed:
                    out[section] = copy.deepcopy(stashed[section])
                else:
                    out.pop(section, None)
    if _sections(map_sections(out, source)) != _sections(bare):
        # The target cannot hold all of the source: keep the source beside it.
        stash = {"apiVersion": source, "kind": kind, **_sections(bare)}
        annotations[CONVERSION_DATA_ANNOTATION] = json.dumps(stash, sort_keys=True,
                                                             separators=(",", ":"))
    out["metadata"] = _with_annotations(out.get("metadata"), annotations)
    return out


def _check(obj: Mapping[str, Any], target: str) -> tuple[str, str]:
    kind = obj.get("kind")
    if kind not in _UP:
        raise ConversionError("kind", f"not a CAPM3 kind: {kind!r}")
    source = obj.get("apiVersion")
    if source not in VERSIONS:
        raise ConversionError("apiVersion", f"{source!r} is not one of {', '.join(VERSIONS)}")
    if target not in VERSIONS:
        raise ConversionError("desiredAPIVersion",
                              f"{target!r} is not one of {', '.join(VERSIONS)}")
    return str(kind), str(source)


def _sections(obj: Mapping[str, Any]) -> Obj:
    return {s: obj[s] for s in _SECTIONS if s in obj}


def _load_stash(raw: Any) -> Obj | None:
    if not isinstance(raw, str):
        return None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        return None  # someone else's or corrupt: ignore it, as upstream does on a mismatch
    return data if isinstance(data, dict) else None


def _with_annotations(metadata: Any, annotations: Mapping[str, str]) -> Obj:
    out = copy.deepcopy(dict(metadata)) if isinstance(metadata, Mapping) else {}
    if annotations:
        out["annotations"] = dict(annotations)
    else:
        out.pop("annotations", None)
    return out
