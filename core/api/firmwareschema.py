"""The FirmwareSchema kind (metal3.io/v1alpha1): the BIOS attribute registry of a hardware model.

Field for field upstream's `apis/metal3.io/v1alpha1/firmwareschema_types.go` (baremetal-operator
02aa5059e), including its snake_case JSON keys (`attribute_type`, `lower_bound`, ...). The
HostFirmwareSettings controller creates one per distinct registry (named `schema-<hash>` of its
contents, so hosts of one model share it) and owns it with every HostFirmwareSettings that uses it.

`validate_setting` is upstream's SettingSchema.Validate / FirmwareSchema.ValidateSetting: why a
value may not be set (type, bounds, lengths, read-only, allowed values), with upstream's words.
"""

import hashlib
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import Field

from metalcubed.core.api import meta, validation

API_VERSION = "metal3.io/v1alpha1"
_GO_INT = re.compile(r"^[+-]?[0-9]+$")


class AttributeType(StrEnum):
    NONE = ""
    """Unknown (a registry without the attribute): any value is accepted, as upstream."""
    ENUMERATION = "Enumeration"
    STRING = "String"
    INTEGER = "Integer"
    BOOLEAN = "Boolean"
    PASSWORD = "Password"


class SettingSchema(meta.ApiModel):
    """One attribute's registry entry. Upstream's JSON keys are snake_case."""

    attribute_type: Annotated[AttributeType, meta.OMIT_EMPTY] = Field(
        default=AttributeType.NONE, alias="attribute_type")
    allowable_values: Annotated[tuple[str, ...], meta.OMIT_EMPTY] = Field(
        default=(), alias="allowable_values")
    lower_bound: int | None = Field(default=None, alias="lower_bound")
    upper_bound: int | None = Field(default=None, alias="upper_bound")
    min_length: int | None = Field(default=None, alias="min_length")
    max_length: int | None = Field(default=None, alias="max_length")
    read_only: bool | None = Field(default=None, alias="read_only")
    unique: bool | None = None


class FirmwareSchemaSpec(meta.ApiModel):
    hardware_vendor: Annotated[str, meta.OMIT_EMPTY] = ""
    hardware_model: Annotated[str, meta.OMIT_EMPTY] = ""
    schema_: dict[str, SettingSchema] = Field(alias="schema")
    """Attribute name -> its registry entry."""


class FirmwareSchema(meta.Resource):
    """metal3.io/v1alpha1 FirmwareSchema: the BIOS settings a hardware model accepts."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "FirmwareSchema"
    PLURAL: ClassVar[str] = "firmwareschemas"
    HAS_STATUS: ClassVar[bool] = False

    spec: FirmwareSchemaSpec = FirmwareSchemaSpec(schema={})


def _text(value: int | str) -> str:
    return str(value)


def setting_problem(schema: SettingSchema, name: str, value: int | str) -> str:
    """Why `value` may not be set for attribute `name` ("" when it may): upstream's
    SettingSchema.Validate, message after "Setting <name> is invalid, "."""
    if schema.read_only:
        return "it is ReadOnly"
    if "Password" in name:
        return "Password fields can't be set"
    text = _text(value)
    kind = schema.attribute_type
    if kind == AttributeType.ENUMERATION:
        if text in schema.allowable_values:
            return ""
        return f"unknown enumeration value - {text}"
    if kind == AttributeType.INTEGER:
        if isinstance(value, str):
            if not _GO_INT.match(value):  # strconv.Atoi: optional sign, digits only
                return f"String {text} entered while integer expected"
            number = int(value)
        else:
            number = value
        if schema.lower_bound is not None and number < schema.lower_bound:
            return f"integer {number} is below minimum value {schema.lower_bound}"
        if schema.upper_bound is not None and number > schema.upper_bound:
            return f"integer {number} is above maximum value {schema.upper_bound}"
        return ""
    if kind == AttributeType.STRING:
        if schema.min_length is not None and len(text) < schema.min_length:
            return f"string {text} length is below minimum length {schema.min_length}"
        if schema.max_length is not None and len(text) > schema.max_length:
            return f"string {text} length is above maximum length {schema.max_length}"
        return ""
    if kind == AttributeType.BOOLEAN:
        return "" if text in ("true", "false") else f"{text} is not a boolean"
    if kind == AttributeType.PASSWORD:
        return "passwords are immutable"
    return ""  # no type: the registry may not have been available (upstream allows it)


def validate_setting(schemas: Mapping[str, SettingSchema], name: str, value: int | str) -> str:
    """Upstream's FirmwareSchema.ValidateSetting: the full message, or "" when valid."""
    schema = schemas.get(name)
    if schema is None:
        return f"Setting {name} is invalid, it is not in the associated schema"
    problem = setting_problem(schema, name, value)
    return f"Setting {name} is invalid, {problem}" if problem else ""


def schema_name(schemas: Mapping[str, SettingSchema]) -> str:
    """Upstream's GetSchemaName: `schema-` + 8 hex digits of a hash over the keys and values,
    the same for every host of one hardware model. (Same inputs as upstream, sorted the same
    way; the digest text is Go's `%v` of the sorted list, so the names match upstream's.)"""
    parts: list[str] = []
    for name, s in schemas.items():
        parts.append(name)
        parts.append(str(s.attribute_type))
        parts.extend(s.allowable_values)
        for bound in (s.lower_bound, s.upper_bound, s.min_length, s.max_length):
            if bound is not None:
                parts.append(str(bound))
        if s.read_only is not None:
            parts.append("true" if s.read_only else "false")
    parts.sort()
    digest = hashlib.sha256(("[" + " ".join(parts) + "]").encode()).hexdigest()
    return "schema-" + digest[:8]


validation.register(
    validation.KindEntry(
        api_version=API_VERSION,
        kind=FirmwareSchema.KIND,
        check=validation.Check.FULL,
        model=FirmwareSchema,
    )
)
