"""CustomResourceDefinitions generated from the core/api pydantic models.

Why: the API server validates our objects with the CRD's OpenAPI schema (DESIGN.md rule 6), and
that schema must say what the models say, so it is derived from them instead of written twice.
Pydantic's JSON Schema is close to what Kubernetes wants but not the same: Kubernetes needs a
*structural* OpenAPI v3 schema, so this module

- inlines every `$ref` (structural schemas have no references);
- turns `X | None` (`anyOf [X, null]`) into plain `X`: absence, not null, means unset, exactly
  as Go's pointers and `omitempty` serialise (no `nullable`);
- keeps types, formats, enums, patterns, bounds and item limits, drops titles;
- marks `int | str` as `x-kubernetes-int-or-string` and free-form maps as
  `x-kubernetes-preserve-unknown-fields`;
- lists as `required` only the fields the model requires (no default);
- keeps a field's `default` only when it is a scalar that the model always writes: a
  non-empty default (`automatedCleaningMode: metadata`), or an empty one on a field that is not
  omitted when empty (`errorCount: 0`), so the API server fills in what our own writer would;
- leaves `""` out of the enum of a field that is omitted when empty (it is never written);
- adds upstream's list/map semantics: `metav1.Condition` lists are `list-type: map` keyed by
  `type`; corev1 `ObjectReference`/`SecretReference` are `map-type: atomic`; and takes
  `metav1.Condition`'s schema from apimachinery, validation included.

The rest of a CRD (short names, printer columns, subresources) is upstream's, from `KINDS`.
Differences from upstream's controller-gen output are listed in docs/local-apiserver.md and
checked by tests/kube/test_crds.py.
"""

import copy
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from metalcubed.controllers.kube import capm3crds
from metalcubed.core.api import (
    baremetalhost,
    bmceventsubscription,
    dataimage,
    firmwareschema,
    hardwaredata,
    hostfirmwarecomponents,
    hostfirmwaresettings,
    hostupdatepolicy,
    meta,
    preprovisioningimage,
)

_OMIT_EMPTY_MARK = "x-metalcubed-omit-empty"
"""Internal marker for a field serialised Go-`omitempty`; never reaches the output."""

_ATOMIC_STRUCTS = frozenset({"ObjectReference", "SecretReference"})
"""corev1 structs upstream declares `+structType=atomic`."""

_LIST_MAPS = {"Condition": ("type",)}
"""Item types whose lists upstream declares `+listType=map` with these keys."""

_WELL_KNOWN: dict[str, dict[str, Any]] = {
    # metav1.Condition, with the validation apimachinery declares on it (as controller-gen
    # emits it into every CRD that has conditions).
    "Condition": {
        "description": "Condition contains details for one aspect of the current state of "
        "this API Resource.",
        "properties": {
            "lastTransitionTime": {"format": "date-time", "type": "string"},
            "message": {"maxLength": 32768, "type": "string"},
            "observedGeneration": {"format": "int64", "minimum": 0, "type": "integer"},
            "reason": {
                "maxLength": 1024,
                "minLength": 1,
                "pattern": "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
                "type": "string",
            },
            "status": {"enum": ["True", "False", "Unknown"], "type": "string"},
            "type": {
                "maxLength": 316,
                "pattern": r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
                "type": "string",
            },
        },
        "required": ["lastTransitionTime", "message", "reason", "status", "type"],
        "type": "object",
    },
}
"""Kubernetes types whose schema is apimachinery's, not derived from our model of them."""

_KEEP = (
    "type", "format", "description", "enum", "pattern", "minLength", "maxLength",
    "minimum", "maximum", "minItems", "maxItems", "uniqueItems", "minProperties",
    "maxProperties", "multipleOf",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PrinterColumn:
    """One `kubectl get` column (additionalPrinterColumns)."""

    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0
    """0: always shown; 1: only with `-o wide`."""

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"description": self.description, "jsonPath": self.json_path,
                                "name": self.name}
        if self.priority:
            wire["priority"] = self.priority
        wire["type"] = self.type
        return wire


@dataclass(frozen=True, slots=True, kw_only=True)
class KindFacts:
    """What a CRD says beyond the schema; upstream's values for each kind."""

    model: type[meta.Resource]
    short_names: tuple[str, ...] = ()
    printer_columns: tuple[PrinterColumn, ...] = ()
    categories: tuple[str, ...] = ()


def _age(kind: str) -> PrinterColumn:
    return PrinterColumn(
        name="Age", json_path=".metadata.creationTimestamp", type="date",
        description=f"Time duration since creation of {kind}",
    )


KINDS: tuple[KindFacts, ...] = (
    KindFacts(
        model=baremetalhost.BareMetalHost,
        short_names=("bmh", "bmhost"),
        printer_columns=(
            PrinterColumn(name="Status", json_path=".status.operationalStatus", priority=1,
                          description="Operational status"),
            PrinterColumn(name="State", json_path=".status.provisioning.state",
                          description="Provisioning status"),
            PrinterColumn(name="Consumer", json_path=".spec.consumerRef.name",
                          description="Consumer using this host"),
            PrinterColumn(name="BMC", json_path=".spec.bmc.address", priority=1,
                          description="Address of management controller"),
            PrinterColumn(name="Online", json_path=".spec.online",
                          description="Whether the host is online or not"),
            PrinterColumn(name="Error", json_path=".status.errorType",
                          description="Type of the most recent error"),
            _age("BaremetalHost"),
        ),
    ),
    KindFacts(
        model=hardwaredata.HardwareData,
        short_names=("hd",),
        printer_columns=(_age("HardwareData"),),
    ),
    # H6's kinds (PreprovisioningImage, BMCEventSubscription, DataImage): upstream's names and
    # columns (baremetal-operator 02aa5059e config/base/crds/bases).
    KindFacts(
        model=preprovisioningimage.PreprovisioningImage,
        short_names=("ppimg",),
        printer_columns=(
            PrinterColumn(name="Ready", json_path=".status.conditions[?(@.type=='Ready')].status",
                          description="Whether the image is ready"),
            PrinterColumn(name="Reason",
                          json_path=".status.conditions[?(@.type=='Ready')].reason",
                          description="The reason for the image readiness status"),
        ),
    ),
    KindFacts(
        model=bmceventsubscription.BMCEventSubscription,
        short_names=("bes", "bmcevent"),
        printer_columns=(
            PrinterColumn(name="Error", json_path=".status.error",
                          description="The most recent error message"),
            _age("BMCEventSubscription"),
        ),
    ),
    KindFacts(model=dataimage.DataImage),
    # H5's kinds: upstream's names (baremetal-operator 02aa5059e config/base/crds/bases).
    KindFacts(model=hostfirmwaresettings.HostFirmwareSettings, short_names=("hfs",)),
    KindFacts(model=firmwareschema.FirmwareSchema),
    KindFacts(model=hostfirmwarecomponents.HostFirmwareComponents),
    KindFacts(model=hostupdatepolicy.HostUpdatePolicy),
)
"""Every kind we serve, in manifest order. A new kind in core/api gets one entry here."""


class CrdError(ValueError):
    """The model uses a type that has no structural-schema form (e.g. a real union)."""


class _Generator(GenerateJsonSchema):
    """Pydantic's generator, also marking fields that are left out when empty."""

    def model_field_schema(self, schema: core_schema.ModelField) -> JsonSchemaValue:
        out = super().model_field_schema(schema)
        if schema.get("serialization_exclude_if") is not None:
            out = dict(out)
            out[_OMIT_EMPTY_MARK] = True
        return out


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


class _Converter:
    def __init__(self, defs: Mapping[str, Any]) -> None:
        self.defs = defs

    def node(self, node: Mapping[str, Any], *, where: str) -> dict[str, Any]:
        """Structural form of one JSON-schema node (a type, not a field: no default here)."""
        if "$ref" in node:
            name = _ref_name(node["$ref"])
            if name in _WELL_KNOWN:
                return copy.deepcopy(_WELL_KNOWN[name])
            target = self.node(self.defs[name], where=where)
            if name in _ATOMIC_STRUCTS:
                target["x-kubernetes-map-type"] = "atomic"
            if "description" in node:
                target["description"] = node["description"]
            return target
        if "allOf" in node and len(node["allOf"]) == 1:
            merged = {k: v for k, v in node.items() if k != "allOf"}
            return self.node({**node["allOf"][0], **merged}, where=where)
        if "anyOf" in node:
            return self._union(node, where=where)
        if "const" in node:
            node = {**node, "enum": [node["const"]]}
        out: dict[str, Any] = {k: node[k] for k in _KEEP if k in node}
        if "exclusiveMinimum" in node:  # JSON Schema 2020 number -> OpenAPI v3.0 boolean
            out["minimum"], out["exclusiveMinimum"] = node["exclusiveMinimum"], True
        if "exclusiveMaximum" in node:
            out["maximum"], out["exclusiveMaximum"] = node["exclusiveMaximum"], True
        kind = node.get("type")
        if kind == "object" or "properties" in node:
            out["type"] = "object"
            self._object(node, out, where=where)
        elif kind == "array":
            items = node.get("items", {})
            out["items"] = self.node(items, where=f"{where}[]")
            item_name = _ref_name(items.get("$ref", ""))
            if item_name in _LIST_MAPS:
                out["x-kubernetes-list-map-keys"] = list(_LIST_MAPS[item_name])
                out["x-kubernetes-list-type"] = "map"
        elif kind is None and "enum" not in out:
            # Any: keep whatever the client sends.
            out["x-kubernetes-preserve-unknown-fields"] = True
        elif kind is None:
            out["type"] = "string"
        return out

    def _union(self, node: Mapping[str, Any], *, where: str) -> dict[str, Any]:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        extra = {k: v for k, v in node.items() if k not in ("anyOf", "default", "title")}
        if len(options) == 1:
            return self.node({**options[0], **extra}, where=where)
        types = {o.get("type") for o in options}
        if types == {"integer", "string"}:
            # controller-gen's form for intstr.IntOrString: the anyOf and the marker.
            int_or_string: dict[str, Any] = {
                "anyOf": [{"type": "integer"}, {"type": "string"}],
                "x-kubernetes-int-or-string": True,
            }
            if "description" in extra:
                int_or_string["description"] = extra["description"]
            return int_or_string
        raise CrdError(f"{where}: a union of {sorted(map(str, types))} has no structural form")

    def _object(self, node: Mapping[str, Any], out: dict[str, Any], *, where: str) -> None:
        props: Mapping[str, Any] = node.get("properties", {})
        extra = node.get("additionalProperties")
        if props:
            out["properties"] = {
                name: self.field(props[name], where=f"{where}.{name}") for name in sorted(props)
            }
            required = [name for name in node.get("required", []) if name in props]
            if required:
                out["required"] = sorted(required)
        elif isinstance(extra, Mapping):
            out["additionalProperties"] = self.node(extra, where=f"{where}.*")
        elif extra is True:
            out["x-kubernetes-preserve-unknown-fields"] = True

    def field(self, node: Mapping[str, Any], *, where: str) -> dict[str, Any]:
        """A property: its type's schema plus the field's own default (see module doc)."""
        out = self.node(node, where=where)
        if "default" in node:
            default = node["default"]
            scalar = isinstance(default, str | int | float | bool)
            empty = default in ("", 0, False)
            omitted_when_empty = bool(node.get(_OMIT_EMPTY_MARK))
            if scalar and (not empty or not omitted_when_empty):
                out["default"] = default
            if omitted_when_empty and "" in out.get("enum", ()):
                # "" is the enum's zero value, never written (omitempty): not a valid value.
                out["enum"] = [v for v in out["enum"] if v != ""]
        return dict(sorted(out.items()))


def schema_for(model: type[meta.Resource]) -> dict[str, Any]:
    """The openAPIV3Schema of a kind: apiVersion, kind, metadata, then the model's own fields."""
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_Generator)
    convert = _Converter(raw.get("$defs", {}))
    props: dict[str, Any] = {
        "apiVersion": {
            "description": "APIVersion defines the versioned schema of this representation "
            "of an object.",
            "type": "string",
        },
        "kind": {
            "description": "Kind is a string value representing the REST resource this "
            "object represents.",
            "type": "string",
        },
        "metadata": {"type": "object"},
    }
    for name, node in raw["properties"].items():
        if name in props:
            continue
        props[name] = convert.field(node, where=name)
    schema: dict[str, Any] = {"type": "object", "properties": dict(sorted(props.items()))}
    # A spec the model requires is required here too (upstream requires none at the top): an
    # object the server stored but our model cannot read would be invisible to the controller.
    required = sorted(n for n in raw.get("required", []) if n not in ("apiVersion", "kind"))
    if required:
        schema["required"] = required
    if model.__doc__:
        schema = {"description": model.__doc__.strip().splitlines()[0], **schema}
    return schema


def crd_name(model: type[meta.Resource]) -> str:
    group, _version = model.API_VERSION.split("/")
    return f"{model.PLURAL}.{group}"


def generate(facts: KindFacts) -> dict[str, Any]:
    """One CustomResourceDefinition (apiextensions.k8s.io/v1) as a wire dict."""
    model = facts.model
    group, version = model.API_VERSION.split("/")
    names: dict[str, Any] = {
        "kind": model.KIND,
        "listKind": f"{model.KIND}List",
        "plural": model.PLURAL,
    }
    if facts.categories:
        names["categories"] = list(facts.categories)
    if facts.short_names:
        names["shortNames"] = list(facts.short_names)
    names["singular"] = model.KIND.lower()
    served: dict[str, Any] = {}
    if facts.printer_columns:
        served["additionalPrinterColumns"] = [c.to_wire() for c in facts.printer_columns]
    served["name"] = version
    served["schema"] = {"openAPIV3Schema": schema_for(model)}
    served["served"] = True
    served["storage"] = True
    if model.HAS_STATUS:
        served["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": crd_name(model),
            "labels": {"app.kubernetes.io/part-of": "metalcubed"},
        },
        "spec": {
            "group": group,
            "names": names,
            "scope": "Namespaced" if model.NAMESPACED else "Cluster",
            "versions": [served],
        },
    }


def generate_all(kinds: Iterable[KindFacts] = KINDS) -> list[dict[str, Any]]:
    return [generate(facts) for facts in kinds]


def file_name(crd: Mapping[str, Any]) -> str:
    """Upstream's file naming: <group>_<plural>.yaml."""
    spec = crd["spec"]
    return f"{spec['group']}_{spec['names']['plural']}.yaml"


HEADER = "# Generated by `metalcubed crds` from the core/api models. Do not edit.\n"


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # shared enum lists must be written out, not as &anchors


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(doc: Mapping[str, Any]) -> str:
    out = io.StringIO()
    out.write(HEADER + "---\n")
    yaml.dump(dict(doc), out, Dumper=_Dumper, sort_keys=False, width=100)
    return out.getvalue()


def write(out_dir: Path, crds: Iterable[Mapping[str, Any]]) -> list[Path]:
    """Write one file per CRD plus a kustomization.yaml listing them; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for crd in crds:
        path = out_dir / file_name(crd)
        path.write_text(to_yaml(crd))
        paths.append(path)
    # Upstream's CAPM3 and IPAM CRDs beside ours (written by capm3crds.py) are listed too.
    shipped = [p for group in (capm3crds.CAPM3_GROUP, capm3crds.IPAM_GROUP)
               for p in sorted(out_dir.glob(f"{group}_*.yaml"))]
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [p.name for p in [*paths, *shipped]],
    }
    (out_dir / "kustomization.yaml").write_text(
        HEADER + yaml.safe_dump(kustomization, sort_keys=False)
    )
    return paths
