"""Hypothesis strategies and a checker driven by upstream's CAPM3 CRD schemas (both versions).

The objects are generated from the openAPIV3Schema of the version under test (upstream's copy in
./upstream/crds), so every field upstream declares can appear, with its type, enum, bounds,
required keys and list-map uniqueness. String patterns and formats are not generated (IPv6
regexes make hypothesis crawl); values only need the right shape for conversion, which never
parses them except Go durations (generated as such).
"""

import copy
import functools
from typing import Any

import jsonschema
import yaml
from hypothesis import strategies as st

from tests.unit.api import crd_support

PLURALS = {
    "Metal3Cluster": "metal3clusters",
    "Metal3ClusterTemplate": "metal3clustertemplates",
    "Metal3Machine": "metal3machines",
    "Metal3MachineTemplate": "metal3machinetemplates",
    "Metal3DataTemplate": "metal3datatemplates",
    "Metal3DataClaim": "metal3dataclaims",
    "Metal3Data": "metal3datas",
    "Metal3Remediation": "metal3remediations",
    "Metal3RemediationTemplate": "metal3remediationtemplates",
}
GROUP = "infrastructure.cluster.x-k8s.io"
_WORD = st.text(alphabet="abcxyz019-", min_size=1, max_size=6)
_GO_DURATION = st.one_of(
    st.integers(0, 200_000).map(lambda s: f"{s}s"),
    st.integers(0, 3000).map(lambda m: f"{m}m"),
    st.tuples(st.integers(0, 30), st.integers(0, 59), st.integers(0, 59)).map(
        lambda t: f"{t[0]}h{t[1]}m{t[2]}s"),
    st.sampled_from(["1.5s", "90s", "0s", "2h", "250ms"]),
)


def file_name(kind: str) -> str:
    return f"{GROUP}_{PLURALS[kind]}.yaml"


@functools.cache
def schema(kind: str, version: str) -> dict[str, Any]:
    return crd_support.load_crd_schema(file_name(kind), version)


def _string(node: dict[str, Any], path: str) -> st.SearchStrategy[Any]:
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if path.endswith(".timeout"):
        return _GO_DURATION
    if node.get("format") == "date-time":
        return st.sampled_from(["2026-12-03T19:00:00Z", "2025-01-02T03:04:05Z"])
    low = node.get("minLength", 0)
    high = min(node.get("maxLength", 8), 8)
    return st.text(alphabet="abcxyz019-./", min_size=min(low, high), max_size=max(low, high))


def _free_form() -> st.SearchStrategy[Any]:
    leaf = st.one_of(st.integers(-5, 5), _WORD, st.booleans())
    return st.dictionaries(_WORD, st.one_of(leaf, st.dictionaries(_WORD, leaf, max_size=2)),
                           max_size=2)


def strategy(node: dict[str, Any], path: str = "") -> st.SearchStrategy[Any]:
    """Values the schema node accepts (shape only: no patterns or formats)."""
    if node.get("x-kubernetes-int-or-string"):
        return st.one_of(st.integers(0, 100), _WORD)
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        props = node.get("properties")
        if props:
            required = set(node.get("required", ()))
            return st.fixed_dictionaries(
                {k: strategy(v, f"{path}.{k}") for k, v in props.items() if k in required},
                optional={k: strategy(v, f"{path}.{k}") for k, v in props.items()
                          if k not in required},
            )
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and not extra.get("x-kubernetes-preserve-unknown-fields"):
            return st.dictionaries(_WORD, strategy(extra, f"{path}{{}}"), max_size=3)
        return _free_form()
    if kind == "array":
        items = strategy(node["items"], f"{path}[]")
        keys = node.get("x-kubernetes-list-map-keys")
        low = node.get("minItems", 0)
        high = max(low, min(node.get("maxItems", 3), 3))
        if keys:
            return st.lists(items, min_size=low, max_size=high,
                            unique_by=lambda item: tuple(str(item.get(k)) for k in keys))
        return st.lists(items, min_size=low, max_size=high)
    if kind == "integer":
        low = node.get("minimum", -3)
        return st.integers(int(low), int(min(node.get("maximum", 70000), 70000)))
    if kind == "number":
        return st.integers(0, 100)
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        return _string(node, path)
    return _free_form()


def objects(kind: str, version: str) -> st.SearchStrategy[dict[str, Any]]:
    """A whole object of `kind` in `version` (apiVersion/kind/metadata set, spec/status drawn)."""
    node = schema(kind, version)
    sections = {s: strategy(node["properties"][s], s) for s in ("spec", "status")
                if s in node["properties"]}
    required = set(node.get("required", ()))
    body = st.fixed_dictionaries(
        {k: v for k, v in sections.items() if k in required},
        optional={k: v for k, v in sections.items() if k not in required},
    )
    annotations = st.dictionaries(st.sampled_from(["a.io/x", "b.io/y"]), _WORD, max_size=1)
    return st.tuples(body, annotations).map(lambda ba: {
        "apiVersion": f"{GROUP}/{version}",
        "kind": kind,
        "metadata": {"name": "obj", "namespace": "default",
                     **({"annotations": ba[1]} if ba[1] else {})},
        **ba[0],
    })


_NOT_SHAPE = frozenset({"description", "pattern", "format", "required", "minItems", "maxItems",
                        "minLength", "maxLength", "minimum", "maximum", "minProperties", "enum"})
"""Value rules the API server checks on a write in the request's version, not on a converted
object; what stays is the shape: known keys (else pruned) and types."""


def _strict(node: Any) -> Any:
    """JSON Schema of the CRD node, shape only (see _NOT_SHAPE), unknown keys refused."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in _NOT_SHAPE:
            continue
        if key == "properties":
            out[key] = {k: _strict(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _strict(value)
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        return {}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


@functools.cache
def _checker(kind: str, version: str) -> jsonschema.Draft7Validator:
    node = copy.deepcopy(schema(kind, version))
    node["properties"]["metadata"] = {"type": "object"}
    return jsonschema.Draft7Validator(_strict(node))


def problems(obj: dict[str, Any]) -> list[str]:
    """Where `obj` breaks its version's schema shape: a key pruning would drop silently or a value
    of the wrong type."""
    version = obj["apiVersion"].rsplit("/", 1)[1]
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in _checker(obj["kind"], version).iter_errors(obj)]


def examples(prefix: str) -> list[dict[str, Any]]:
    """Upstream's example documents from ./upstream/examples/<prefix>*.yaml, in order."""
    docs: list[dict[str, Any]] = []
    for path in sorted(crd_support.EXAMPLES.glob(f"{prefix}*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs
