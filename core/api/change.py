"""Typed, validated updates of frozen API models: no `**changes: Any` into `model_copy`.

`model_copy(update=...)` checks nothing: a misspelt field lands in `__dict__` unseen and a
wrong type reaches the wire. So each model that code edits piecemeal declares its allowed
changes once, as a `TypedDict` (total=False) of field names and types, and edits go through
an `Updater`:

    @pydantic.with_config(change.STRICT)
    class StatusChanges(typing_extensions.TypedDict, total=False):
        error_count: int
        ...
    _STATUS = change.Updater(BareMetalHostStatus, StatusChanges)

    def set(self, **changes: Unpack[StatusChanges]) -> None:
        self.status = _STATUS.apply(self.status, changes)

mypy checks every call site (`Unpack`), and `apply` checks again at run time with pydantic in
strict mode (no coercion: "3" is not an int, "OK" is not an OperationalStatus) and unknown keys
forbidden, for what the type checker cannot see (Any, casts, tests); a value whose type
validation would change (a dict given for a model) is refused too. Strict mode validates a
nested model by an isinstance check, so a change costs about a microsecond per key. The copy
itself is `replace`, what `model_copy` does without its overhead. `Updater` refuses at import
time a TypedDict naming a field the model lacks; a unit test keeps the types in step.
"""

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import pydantic

M = TypeVar("M", bound=pydantic.BaseModel)
TD = TypeVar("TD", bound=Mapping[str, Any])

STRICT = pydantic.ConfigDict(strict=True, extra="forbid")
"""The config every changes TypedDict carries (`@pydantic.with_config(change.STRICT)`)."""

_new_object = object.__new__
_set_attribute = object.__setattr__


def replace(model: M, changes: Mapping[str, object]) -> M:
    """`model.model_copy(update=changes)` without its overhead; checks nothing (see `Updater`).

    For values the caller already knows are right (validated changes, server-managed fields).
    Sets the same instance attributes pydantic's own `__copy__` sets; a unit test compares the
    result with `model_copy`, so a pydantic upgrade that changes them is caught.
    """
    new = _new_object(model.__class__)
    fields = model.__dict__.copy()
    fields.update(changes)
    _set_attribute(new, "__dict__", fields)
    _set_attribute(new, "__pydantic_fields_set__", model.__pydantic_fields_set__.union(changes))
    _set_attribute(new, "__pydantic_extra__", model.__pydantic_extra__)
    _set_attribute(new, "__pydantic_private__", model.__pydantic_private__)
    return new


class Updater(Generic[M, TD]):
    """Applies a `changes` TypedDict to instances of `model`, validated (see the module doc)."""

    __slots__ = ("_adapter", "changes", "model")

    def __init__(self, model: type[M], changes: type[TD]) -> None:
        unknown = set(changes.__annotations__) - set(model.model_fields)
        if unknown:
            raise TypeError(f"{changes.__name__} names fields {model.__name__} lacks: {unknown}")
        self.model = model
        self.changes = changes
        self._adapter: pydantic.TypeAdapter[TD] = pydantic.TypeAdapter(changes)

    def apply(self, model: M, changes: TD) -> M:
        """A copy of `model` with `changes`; raises pydantic.ValidationError naming the bad key
        (unknown field, or a value of the wrong type)."""
        validated = self._adapter.validate_python(changes, strict=True)
        for key, value in validated.items():
            given = changes[key]
            if type(value) is not type(given):
                # Strict mode still builds a model from a dict: a dict is not a model.
                raise pydantic.ValidationError.from_exception_data(
                    self.changes.__name__,
                    [{"type": "is_instance_of", "loc": (key,), "input": given,
                      "ctx": {"class": type(value).__name__}}],
                )
        return replace(model, validated)
