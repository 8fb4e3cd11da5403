"""validation.admit: the pure admission call the webhook server makes, and the kind registry."""

from typing import Any, ClassVar

import pydantic
import pytest

from metalcubed.core import outcome
from metalcubed.core.api import baremetalhost, meta, validation


def host(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "metal3.io/v1alpha1",
        "kind": "BareMetalHost",
        "metadata": {"name": "worker-0", "namespace": "metal3"},
        "spec": {"online": True, **spec},
    }


LIBVIRT = {"address": "libvirt://10.0.0.1", "credentialsName": "c"}


def test_create_admits_a_valid_host() -> None:
    result = validation.admit("CREATE", host())
    assert (result.allowed, result.errors, result.warnings, result.message()) == (
        True, (), (), "")


def test_one_error_is_field_then_message() -> None:
    result = validation.admit("CREATE", host(bmc=LIBVIRT))
    assert not result.allowed
    assert result.message() == (
        "spec.bootMACAddress: BMC driver libvirt requires a BootMACAddress value")


def test_several_errors_are_aggregated_like_apimachinery() -> None:
    result = validation.admit("CREATE", host(bmc=LIBVIRT, bootMode="UEFISecureBoot"))
    assert result.message() == (
        "[spec.bootMACAddress: BMC driver libvirt requires a BootMACAddress value, "
        "spec.bootMode: BMC driver libvirt does not support secure boot]")


def test_schema_errors_name_their_field() -> None:
    result = validation.admit("CREATE", host(bootMode="BIOS"))
    assert [e.field for e in result.errors] == ["spec.bootMode"]


def test_update_applies_the_update_rules_only_with_an_old_object() -> None:
    old = host(bootMACAddress="52:54:00:00:00:01")
    new = host(bootMACAddress="52:54:00:00:00:02")
    assert validation.admit("CREATE", new).allowed
    result = validation.admit("UPDATE", new, old)
    assert [e.field for e in result.errors] == ["spec.bootMACAddress"]


def test_update_without_old_object_is_refused_not_raised() -> None:
    result = validation.admit("UPDATE", host(), None)
    assert [e.field for e in result.errors] == ["oldObject"]


def test_an_old_object_our_model_cannot_read_gets_the_create_rules_only() -> None:
    """A host stored before a rule existed stays editable (its fix must be admitted)."""
    old = host(bootMACAddress="not-a-mac", bootMode="BIOS")
    assert validation.admit("UPDATE", host(bootMACAddress="52:54:00:00:00:02"), old).allowed


def test_delete_is_allowed_for_a_host_as_upstream() -> None:
    assert validation.admit("DELETE", None, host()).allowed
    assert validation.admit("DELETE", None, host(bootMode="BIOS")).allowed


@pytest.mark.parametrize(
    ("operation", "obj", "old", "field"),
    [
        ("PATCH", host(), None, "operation"),
        ("CREATE", None, None, "object"),
        ("CREATE", ["not", "a", "dict"], None, "object"),
        ("DELETE", None, None, "oldObject"),
        ("CREATE", {"apiVersion": "example.com/v1", "kind": "Widget"}, None, "kind"),
        ("CREATE", {"kind": "BareMetalHost"}, None, "apiVersion"),
        ("CREATE", {"apiVersion": "v1", "kind": "Secret"}, None, "kind"),
    ],
)
def test_bad_requests_are_refused_naming_what_is_wrong(
    operation: str, obj: Any, old: Any, field: str
) -> None:
    result = validation.admit(operation, obj, old)
    assert not result.allowed
    assert [e.field for e in result.errors] == [field]


def test_the_host_webhook_is_registered_with_upstreams_path_and_name() -> None:
    (entry,) = [e for e in validation.webhooks() if e.kind == "BareMetalHost"]
    assert entry.webhook_path == "/validate-metal3-io-v1alpha1-baremetalhost"
    assert entry.webhook_name == "baremetalhost.metal3.io"
    assert entry.webhook_operations == ("CREATE", "UPDATE")
    assert (entry.group, entry.version, entry.plural) == ("metal3.io", "v1alpha1", "baremetalhosts")


def test_a_registered_kind_gets_delete_rules_and_warnings() -> None:
    """How other kinds plug in (H5/H6/H8): webhook, delete hook and warnings are all called."""

    class Gadget(meta.Resource):
        API_VERSION: ClassVar[str] = "example.metal3.io/v1alpha1"
        KIND: ClassVar[str] = "Gadget"
        PLURAL: ClassVar[str] = "gadgets"
        spec: dict[str, Any] = pydantic.Field(default_factory=dict)

    def rules(obj: Gadget, *, old: Gadget | None) -> list[outcome.SpecError]:
        if obj.spec.get("size", 0) < 0:
            return [outcome.SpecError("spec.size", "must not be negative")]
        if old is not None and old.spec.get("size") != obj.spec.get("size"):
            return [outcome.SpecError("spec.size", "is immutable")]
        return []

    def on_delete(old: Gadget) -> list[outcome.SpecError]:
        return [outcome.SpecError("metadata.finalizers", "in use")] if old.spec.get("used") else []

    entry = validation.KindEntry(
        api_version=Gadget.API_VERSION, kind="Gadget", check=validation.Check.FULL, model=Gadget,
        webhook=rules, webhook_operations=("CREATE", "UPDATE", "DELETE"),
        delete_webhook=on_delete,
        warnings=lambda obj, *, old: ["big"] if obj.spec.get("size", 0) > 9 else [],
    )
    validation.register(entry)
    try:
        def doc(**spec: Any) -> dict[str, Any]:
            return {"apiVersion": Gadget.API_VERSION, "kind": "Gadget",
                    "metadata": {"name": "g"}, "spec": spec}

        assert entry in validation.webhooks()
        assert entry.webhook_path == "/validate-example-metal3-io-v1alpha1-gadget"
        assert validation.admit("CREATE", doc(size=-1)).message() == (
            "spec.size: must not be negative")
        assert validation.admit("UPDATE", doc(size=2), doc(size=1)).message() == (
            "spec.size: is immutable")
        assert validation.admit("CREATE", doc(size=10)).warnings == ("big",)
        assert not validation.admit("DELETE", None, doc(used=True)).allowed
        assert validation.admit("DELETE", None, doc()).allowed
    finally:
        del validation.KINDS[(Gadget.API_VERSION, "Gadget")]


def test_host_without_spec_is_unmanaged_and_admitted() -> None:
    doc = {"apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost",
           "metadata": {"name": "demo-discovered"}}
    assert validation.admit("CREATE", doc).allowed
    parsed = baremetalhost.BareMetalHost.from_wire(doc)
    assert parsed.spec is baremetalhost.NO_SPEC
