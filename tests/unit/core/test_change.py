"""Typed model updates: an unknown field or a wrong type fails; the copy is model_copy's."""

import random
import typing
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest

from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import change, meta
from metalcubed.core.reconcilers import hostwork

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class _NoMetrics:
    def inc(self, name: str, labels: dict[str, str] | None = None) -> None:
        return None

    def observe(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        return None


def _work() -> hostwork.HostWork:
    host = bmh.BareMetalHost(
        metadata=meta.ObjectMeta(name="h", namespace="ns"), spec=bmh.BareMetalHostSpec(online=True)
    )
    return hostwork.HostWork(
        host=host, status=host.status, annotations={}, finalizers=[], now=NOW,
        rng=random.Random(1), metrics=_NoMetrics(),
    )


def test_status_set_applies_typed_changes() -> None:
    w = _work()
    w.set(operational_status=bmh.OperationalStatus.OK, error_count=2)
    w.set_provisioning(state=bmh.ProvisioningState.REGISTERING, id="node-1")
    assert w.status.operational_status is bmh.OperationalStatus.OK
    assert w.status.error_count == 2
    assert w.status.provisioning.state is bmh.ProvisioningState.REGISTERING
    assert w.status.provisioning.id == "node-1"
    assert w.status.provisioning.to_wire()["ID"] == "node-1"


@pytest.mark.parametrize(
    ("field", "value"),
    [("eror_count", 1), ("errorCount", 1)],
    ids=["misspelt", "wire-name"],
)
def test_status_set_rejects_an_unknown_field(field: str, value: object) -> None:
    w = _work()
    changes: dict[str, Any] = {field: value}
    with pytest.raises(pydantic.ValidationError, match=field):
        w.set(**changes)
    assert w.status == bmh.BareMetalHostStatus()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("error_count", "3"),
        ("operational_status", "OK"),
        ("powered_on", 1),
        ("last_updated", "2026-01-01T00:00:00Z"),
        ("provisioning", {"state": "available"}),
        ("conditions", []),
    ],
    ids=["str-for-int", "str-for-enum", "int-for-bool", "str-for-time", "dict-for-model",
         "list-for-tuple"],
)
def test_status_set_rejects_a_wrong_type(field: str, value: object) -> None:
    w = _work()
    changes: dict[str, Any] = {field: value}
    with pytest.raises(pydantic.ValidationError, match=field):
        w.set(**changes)


def test_provisioning_set_rejects_unknown_field_and_wrong_type() -> None:
    w = _work()
    bad_key: dict[str, Any] = {"stat": bmh.ProvisioningState.AVAILABLE}
    with pytest.raises(pydantic.ValidationError, match="stat"):
        w.set_provisioning(**bad_key)
    bad_type: dict[str, Any] = {"state": "available"}
    with pytest.raises(pydantic.ValidationError, match="state"):
        w.set_provisioning(**bad_type)


def test_with_meta_rejects_unknown_field_and_wrong_type() -> None:
    host = _work().host
    assert host.with_meta(labels={"a": "b"}).metadata.labels == {"a": "b"}
    bad_key: dict[str, Any] = {"label": {"a": "b"}}
    with pytest.raises(pydantic.ValidationError, match="label"):
        host.with_meta(**bad_key)
    bad_type: dict[str, Any] = {"finalizers": ["metal3.io/x"]}
    with pytest.raises(pydantic.ValidationError, match="finalizers"):
        host.with_meta(**bad_type)


UPDATERS = [hostwork.STATUS, hostwork.PROVISION, meta.META]


@pytest.mark.parametrize("updater", UPDATERS, ids=lambda u: u.model.__name__)
def test_changes_name_every_field_with_the_models_type(updater: change.Updater[Any, Any]) -> None:
    hints = typing.get_type_hints(updater.changes, include_extras=True)
    fields = updater.model.model_fields
    assert set(hints) == set(fields), "the changes TypedDict and the model list other fields"
    for name, hint in hints.items():
        assert hint == fields[name].annotation, name


def test_an_updater_refuses_a_field_the_model_lacks() -> None:
    @pydantic.with_config(change.STRICT)
    class Bogus(typing.TypedDict, total=False):
        no_such_field: int

    with pytest.raises(TypeError, match="no_such_field"):
        change.Updater(bmh.OperationMetric, Bogus)


def test_replace_matches_pydantic_model_copy() -> None:
    original = bmh.BareMetalHostStatus(error_count=1)
    changes: dict[str, object] = {"error_message": "boom", "powered_on": True}
    fast = change.replace(original, changes)
    slow = original.model_copy(update=changes)
    assert fast == slow
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.to_wire() == slow.to_wire()
    assert original.error_message == ""
