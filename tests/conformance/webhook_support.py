"""Shared by the ported webhook tables: how an upstream Go case becomes a wire object and a check.

Upstream (metal3-io/baremetal-operator at 02aa5059e, internal/webhooks/metal3.io/v1alpha1)
calls its validation functions on Go structs. Here each case is the JSON those structs marshal
to (what the API server would hand the webhook: `online` always present, `bmc` with both keys,
zero-valued `omitempty` fields left out), run through our public entry points:
`validation.admit` (the webhook server's call) and `metalcubed validate` (see the tests).

Upstream's check is errorArrContains/errorContains: `wanted` is one of the errors ("" means no
error at all). Ours: "" means admitted; otherwise some error, rendered `field: message`, contains
`wanted`, and that error names a wire field path.

Where upstream's own CRD schema refuses the case's object (a RAID level "", a checksumType
"SHA42", a MAC "test-mac"), the API server never calls upstream's webhook with it: `schema` names
the field the schema refuses (checked against upstream's CRD too), and `schema_valid`, when the
rule can be reached at all, is the same case with schema-valid values, held to `wanted`.
docs/validate.md lists these cases.
"""

import copy
from dataclasses import dataclass, field
from typing import Any

from metalcubed.core import outcome
from tests.unit.api import crd_support

BMH_CRD = "metal3.io_baremetalhosts.yaml"
NAMESPACE = "test-namespace"


def bmh(
    spec: dict[str, Any] | None = None,
    *,
    name: str = "test",
    annotations: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A BareMetalHost as Go marshals upstream's test struct (`om`: name test, test-namespace)."""
    metadata: dict[str, Any] = {"name": name, "namespace": NAMESPACE}
    if annotations:
        metadata["annotations"] = dict(annotations)
    doc: dict[str, Any] = {
        "apiVersion": "metal3.io/v1alpha1",
        "kind": "BareMetalHost",
        "metadata": metadata,
        "spec": {"online": False, **(spec or {})},
    }
    if status is not None:
        doc["status"] = status
    return doc


def bmc(address: str, credentials_name: str = "") -> dict[str, str]:
    """BMCDetails: both keys are always marshalled (no omitempty upstream)."""
    return {"address": address, "credentialsName": credentials_name}


def state(provisioning_state: str = "", operational_status: str = "") -> dict[str, Any]:
    """A status with the given provisioning state and operational status."""
    return {
        "operationalStatus": operational_status,
        "provisioning": {"state": provisioning_state, "ID": ""},
        "errorMessage": "",
        "poweredOn": False,
    }


@dataclass(frozen=True, slots=True)
class Case:
    test: str
    """Upstream's Go test function."""
    name: str
    """Upstream's case name (t.Run)."""
    new: dict[str, Any]
    wanted: str
    """Upstream's wantedErr: "" admitted, else text one error must contain."""
    old: dict[str, Any] | None = None
    schema: str = ""
    """The field upstream's (and our) CRD schema refuses first; "" when the schema accepts."""
    schema_valid: dict[str, Any] | None = None
    """For a `schema` case whose rule is reachable: `new` with schema-valid values."""
    schema_valid_old: dict[str, Any] | None = None
    ours: str = ""
    """Text we check instead of `wanted` where it is Go's parser's own wording (docs)."""
    note: str = field(default="", compare=False)

    @property
    def id(self) -> str:
        return f"{self.test}/{self.name}"


def rendered(errors: list[outcome.SpecError] | tuple[outcome.SpecError, ...]) -> list[str]:
    return [f"{e.field}: {e.message}" for e in errors]


def assert_verdict(
    errors: list[outcome.SpecError] | tuple[outcome.SpecError, ...], wanted: str
) -> None:
    """Upstream's errorArrContains, over our `field: message` lines; every error names a path."""
    lines = rendered(errors)
    if not wanted:
        assert lines == [], "upstream admits this object"
        return
    hits = [e for e in errors if wanted in f"{e.field}: {e.message}"]
    assert hits, f"no error contains {wanted!r}: {lines}"
    for error in hits:
        assert error.field.startswith(("spec.", "metadata.")), error.field


def assert_schema_refuses(errors: list[outcome.SpecError] | tuple[outcome.SpecError, ...],
                          case: Case) -> None:
    """Ours refuses at `case.schema`, and so does upstream's own CRD (the oracle copy)."""
    assert case.schema in {e.field for e in errors}, rendered(errors)
    upstream = crd_support.schema_problems(BMH_CRD, case.new)
    dotted = case.schema.replace("[", ".").replace("]", "")
    assert any(p.startswith(dotted) or f"'{dotted.rsplit('.', 1)[-1]}'" in p
               for p in upstream), upstream


def deep(doc: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(doc)
