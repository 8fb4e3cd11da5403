"""The CAPM3 models say field for field what upstream's CRD schemas say, in both versions."""

import types
import typing
from typing import Any

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metalcubed.core.api import meta
from metalcubed.core.api.capm3 import conversion, v1beta1, v1beta2
from tests.unit.api import capm3_schema

MODULES = {"v1beta1": v1beta1, "v1beta2": v1beta2}
CASES = [(kind, version) for kind in conversion.KINDS for version in MODULES]


def _model(kind: str, version: str) -> type[meta.Resource]:
    model: type[meta.Resource] = getattr(MODULES[version], kind)
    return model


def _inner(annotation: Any) -> Any:
    """The struct type inside `X | None`, `tuple[X, ...]`, `dict[str, X]` (or None)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        found = [_inner(a) for a in typing.get_args(annotation) if a is not type(None)]
        return next((f for f in found if f is not None), None)
    if origin in (tuple, dict):
        return _inner(typing.get_args(annotation)[-1 if origin is dict else 0])
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    return None


def _model_paths(model: type[pydantic.BaseModel], path: str) -> set[str]:
    out = set()
    for name, field in model.model_fields.items():
        wire = field.alias or name
        if path == "" and wire in ("apiVersion", "kind", "metadata"):
            continue
        out.add(f"{path}.{wire}")
        inner = _inner(field.annotation)
        if inner is not None:
            out |= _model_paths(inner, f"{path}.{wire}")
    return out


def _schema_paths(node: dict[str, Any], path: str) -> set[str]:
    out = set()
    for wire, sub in (node.get("properties") or {}).items():
        if path == "" and wire in ("apiVersion", "kind", "metadata"):
            continue
        out.add(f"{path}.{wire}")
        while sub.get("type") == "array" or (
                isinstance(sub.get("additionalProperties"), dict) and not sub.get("properties")):
            sub = sub["items"] if sub.get("type") == "array" else sub["additionalProperties"]
        out |= _schema_paths(sub, f"{path}.{wire}")
    return out


@pytest.mark.parametrize(("kind", "version"), CASES, ids=[f"{k}-{v}" for k, v in CASES])
def test_every_schema_field_is_a_model_field_and_no_other(kind: str, version: str) -> None:
    model = _model(kind, version)
    assert f"{conversion.GROUP}/{version}" == model.API_VERSION
    assert _model_paths(model, "") == _schema_paths(capm3_schema.schema(kind, version), "")


@pytest.mark.parametrize(("kind", "version"), CASES, ids=[f"{k}-{v}" for k, v in CASES])
def test_required_fields_and_status_subresource_match_the_crd(kind: str, version: str) -> None:
    model = _model(kind, version)
    node = capm3_schema.schema(kind, version)
    spec = node["properties"].get("spec", {})
    spec_model = _inner(model.model_fields["spec"].annotation)
    required = {(f.alias or n) for n, f in spec_model.model_fields.items() if f.is_required()}
    assert required == set(spec.get("required", ()))
    assert ("status" in model.model_fields) == ("status" in node["properties"])


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(CASES).flatmap(lambda c: capm3_schema.objects(*c)))
def test_an_object_the_schema_accepts_parses_and_serialises_back_unchanged(
    obj: dict[str, Any],
) -> None:
    version = obj["apiVersion"].rsplit("/", 1)[1]
    parsed = _model(obj["kind"], version).from_wire(obj)
    wire = parsed.to_wire()
    for section in ("spec", "status"):
        assert wire.get(section) == obj.get(section)


def test_upstream_v1beta1_data_templates_parse_and_convert_to_v1beta2_models() -> None:
    docs = [d for d in capm3_schema.examples("capm3-cluster") if d["kind"] == "Metal3DataTemplate"]
    assert len(docs) == 2
    for doc in docs:
        old = v1beta1.Metal3DataTemplate.from_wire(doc)
        new = v1beta2.Metal3DataTemplate.from_wire(conversion.convert(doc, conversion.V1BETA2))
        assert new.spec is not None and new.spec.meta_data is not None
        assert old.spec.meta_data is not None
        assert new.spec.meta_data.ip_addresses_from_pool == tuple(
            v1beta2.FromPool.model_validate(p.to_wire())
            for p in old.spec.meta_data.ip_addresses_from_ip_pool or ())
