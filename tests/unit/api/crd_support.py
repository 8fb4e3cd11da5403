"""Helpers for the API tests: upstream CRD schemas as JSON Schema, schema defaults, examples.

The upstream CRDs copied under ./upstream/crds are the compatibility oracle. Their
openAPIV3Schema is OpenAPI 3.0 with Kubernetes extensions; `json_schema` turns it into plain JSON
Schema the `jsonschema` package checks: `nullable: true` becomes a "null" type, and objects with
declared properties reject unknown fields (kubectl's default strict field validation).
"""

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

UPSTREAM = Path(__file__).parent / "upstream"
CRDS = UPSTREAM / "crds"
EXAMPLES = UPSTREAM / "examples"


def _to_json_schema(node: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "description":
            continue
        if key == "properties":
            out[key] = {name: _to_json_schema(sub) for name, sub in value.items()}
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = _to_json_schema(value)
        elif key != "nullable":
            out[key] = value
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


@functools.cache
def load_crd_schema(filename: str, version: str = "v1alpha1") -> dict[str, Any]:
    """The openAPIV3Schema of one version of a CRD (cached: do not mutate it)."""
    crd = yaml.safe_load((CRDS / filename).read_text())
    for served in crd["spec"]["versions"]:
        if served["name"] == version:
            schema: dict[str, Any] = served["schema"]["openAPIV3Schema"]
            return schema
    raise LookupError(f"{filename} has no version {version}")


@functools.cache
def _validator(filename: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(_to_json_schema(load_crd_schema(filename)))


def apply_defaults(schema: dict[str, Any], doc: Any) -> Any:
    """`doc` with the schema's defaults filled in, as the API server does on create."""
    doc = copy.deepcopy(doc)
    _default(schema, doc)
    return doc


def _default(schema: dict[str, Any], doc: Any) -> None:
    if isinstance(doc, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in doc and "default" in sub:
                doc[name] = copy.deepcopy(sub["default"])
            if name in doc:
                _default(sub, doc[name])
    elif isinstance(doc, list) and "items" in schema:
        for item in doc:
            _default(schema["items"], item)


def schema_problems(filename: str, doc: Any) -> list[str]:
    """What the CRD's schema says about `doc` (empty: accepted)."""
    validator = _validator(filename)
    return [
        f"{'.'.join(str(p) for p in err.absolute_path)}: {err.message}"
        for err in validator.iter_errors(doc)
    ]


def examples(prefix: str = "") -> list[tuple[str, int, dict[str, Any]]]:
    """(file, 1-based document index, document) for every upstream example document."""
    found = []
    for path in sorted(EXAMPLES.glob(f"{prefix}*.yaml")):
        for index, doc in enumerate(yaml.safe_load_all(path.read_text()), start=1):
            if doc is not None:
                found.append((path.name, index, doc))
    return found
