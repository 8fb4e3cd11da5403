"""Kubernetes object plumbing shared by every metalcubed kind: ObjectMeta, keys, references, Secret.

Models are frozen pydantic v2 models. Python attributes are the snake_case form of the wire
(camelCase) name, which pydantic derives once per model (`alias_generator`); a field whose wire
name is not plain camelCase (`bootMACAddress`, `ID`) declares it next to the field.
Update with typed changes (`change.Updater`, `with_meta`); serialise with `to_wire()`, parse
with `from_wire()`.
"""

import base64
import binascii
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Self, Unpack

import pydantic
import typing_extensions
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

from metalcubed.core.api import change


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with second precision, as metav1.Time serialises."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_ZEROS: dict[type[BaseModel], BaseModel] = {}
_PLAIN_TYPES = frozenset({str, int, float, bool, tuple, list, dict})


def is_empty(value: Any) -> bool:
    """Go's `omitempty` test: false, 0, "", an empty sequence or map, or a zero-valued struct.

    A struct counts as empty when it equals its all-defaults instance (only models whose fields
    all have defaults can be zero-valued; others are never empty).
    """
    cls = type(value)
    if cls in _PLAIN_TYPES or not isinstance(value, BaseModel):
        return not value
    zero = _ZEROS.get(cls)
    if zero is None:
        try:
            zero = cls()
        except ValueError:  # required fields: no zero value, so never empty
            return False
        _ZEROS[cls] = zero
    return value.__dict__ == zero.__dict__


OMIT_EMPTY = Field(exclude_if=is_empty)
"""Annotate a field with this (`Annotated[str, OMIT_EMPTY] = ""`) to serialise it Go-`omitempty`."""


Time = Annotated[datetime, PlainSerializer(format_time, return_type=str)]
"""A metav1.Time: parsed from RFC 3339, written back with second precision."""


class ApiModel(BaseModel):
    """Base of every API struct: frozen, camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        ser_json_timedelta="float",
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict the API server stores: wire names, unset optionals left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


@dataclass(frozen=True, slots=True)
class ObjectKey:
    """What a reconcile is told: the namespace and name, nothing else (no event payload)."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


class OwnerReference(ApiModel):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


def with_owner_reference(
    refs: Sequence[OwnerReference], owner: OwnerReference,
) -> tuple[OwnerReference, ...] | None:
    """`refs` with `owner` added, replacing a reference of the same kind and name (another
    uid: the owner was re-created), as controllerutil.SetOwnerReference does; None when it is
    already there as it should be."""
    for r in refs:  # plain field compares: a shared FirmwareSchema has one reference per host
        if (r.uid == owner.uid and r.name == owner.name and r.kind == owner.kind
                and r.api_version == owner.api_version):
            return None
    kept = tuple(r for r in refs if not (r.kind == owner.kind and r.name == owner.name))
    return (*kept, owner)


class ObjectMeta(ApiModel):
    """metav1.ObjectMeta; server-managed fields (uid, resourceVersion, ...) are set by the store."""

    model_config = ConfigDict(extra="ignore")

    name: Annotated[str, OMIT_EMPTY] = ""
    generate_name: str | None = None
    namespace: Annotated[str, OMIT_EMPTY] = ""
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: Time | None = None
    deletion_timestamp: Time | None = None
    labels: Annotated[dict[str, str], OMIT_EMPTY] = Field(default_factory=dict)
    annotations: Annotated[dict[str, str], OMIT_EMPTY] = Field(default_factory=dict)
    finalizers: Annotated[tuple[str, ...], OMIT_EMPTY] = ()
    owner_references: Annotated[tuple[OwnerReference, ...], OMIT_EMPTY] = ()


@pydantic.with_config(change.STRICT)
class MetaChanges(typing_extensions.TypedDict, total=False):
    """The ObjectMeta fields `Resource.with_meta` may set, with their types."""

    name: str
    generate_name: str | None
    namespace: str
    uid: str | None
    resource_version: str | None
    generation: int | None
    creation_timestamp: Time | None
    deletion_timestamp: Time | None
    labels: dict[str, str]
    annotations: dict[str, str]
    finalizers: tuple[str, ...]
    owner_references: tuple[OwnerReference, ...]


META = change.Updater(ObjectMeta, MetaChanges)


class ObjectReference(ApiModel):
    """corev1.ObjectReference, as BareMetalHost.spec.consumerRef uses it."""

    model_config = ConfigDict(extra="ignore")

    api_version: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    field_path: str | None = None


class SecretReference(ApiModel):
    """corev1.SecretReference (name and optional namespace)."""

    name: str | None = None
    namespace: str | None = None


class Resource(ApiModel):
    """A top-level Kubernetes object. Subclasses set the class-level API facts below."""

    API_VERSION: ClassVar[str]
    KIND: ClassVar[str]
    PLURAL: ClassVar[str]
    NAMESPACED: ClassVar[bool] = True
    HAS_STATUS: ClassVar[bool] = True

    api_version: str = ""
    kind: str = ""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    def model_post_init(self, context: Any, /) -> None:
        # Fill apiVersion/kind so a model built in code serialises like one read from the API.
        if not self.api_version:
            object.__setattr__(self, "api_version", self.API_VERSION)
        if not self.kind:
            object.__setattr__(self, "kind", self.KIND)

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.metadata.namespace, self.metadata.name)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Self:
        """Parse a wire dict; raises pydantic.ValidationError naming the field paths."""
        return cls.model_validate(data)

    def with_meta(self, **changes: Unpack[MetaChanges]) -> Self:
        """A copy whose metadata has `changes` applied; raises pydantic.ValidationError on an
        unknown field or a value of the wrong type."""
        return change.replace(self, {"metadata": META.apply(self.metadata, changes)})


class Secret(Resource):
    """corev1.Secret: BMC credentials and config-drive data (`data` is base64 on the wire)."""

    API_VERSION: ClassVar[str] = "v1"
    KIND: ClassVar[str] = "Secret"
    PLURAL: ClassVar[str] = "secrets"
    HAS_STATUS: ClassVar[bool] = False

    model_config = ConfigDict(extra="ignore")

    type: str | None = None
    data: dict[str, str] = Field(default_factory=dict)
    string_data: dict[str, str] | None = None
    immutable: bool | None = None

    def __repr_args__(self) -> Any:
        """What repr/str show: the keys, never the values or the annotations (kubectl's
        last-applied-configuration holds the values again), so a logged Secret leaks nothing."""
        for name, value in super().__repr_args__():
            if name == "metadata":
                yield name, f"{self.metadata.namespace}/{self.metadata.name}"
            elif name in ("data", "string_data") and value is not None:
                yield name, f"<{len(value)} keys: {', '.join(sorted(value))}>"
            else:
                yield name, value

    def value(self, key: str) -> str | None:
        """The decoded value of `key` (stringData wins, as the API server merges it), or None."""
        if self.string_data and key in self.string_data:
            return self.string_data[key]
        raw = self.data.get(key)
        return None if raw is None else _b64_text(raw)


@functools.lru_cache(maxsize=65536)
def _b64_text(raw: str) -> str | None:
    """base64 to UTF-8 text; None when it is neither (cached: Secrets are read every pass)."""
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def now_utc_from(ts: float) -> datetime:
    """A UTC datetime from epoch seconds (used by clocks)."""
    return datetime.fromtimestamp(ts, tz=UTC)


class Condition(ApiModel):
    """metav1.Condition."""

    type: str
    status: str
    observed_generation: int | None = None
    last_transition_time: Time
    reason: str
    message: str = ""
