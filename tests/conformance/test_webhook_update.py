"""Upstream BMO's BareMetalHost webhook update tables, ported case by case (issue 9).

Source: metal3-io/baremetal-operator at 02aa5059e,
internal/webhooks/metal3.io/v1alpha1/baremetalhost_validation_test.go (TestValidateUpdate) and
baremetalhost_webhook_test.go (TestBareMetalHostUpdate). Case ids are
"<UpstreamTest>/<upstream case name>". Every case runs through
`validation.admit("UPDATE", new, old)` and through `metalcubed validate NEW --old STORED`
(which, like the API server on the main resource, keeps the stored status: upstream's cases give
old and new the same status). Mapping and checks: tests/conformance/webhook_support.py.
"""

from pathlib import Path
from typing import Any

import pytest
import yaml

from metalcubed.cli import main as cli
from metalcubed.core.api import validation
from tests.conformance import webhook_support as ws
from tests.conformance.webhook_support import Case, bmc, bmh, state

T = "TestValidateUpdate"
MOVED = "BMC address can not be changed if the BMH is not in the Registering state, or if the " \
    "BMH is not detached"


def _pair(name: str, new_spec: dict[str, Any], old_spec: dict[str, Any], wanted: str,
          status: dict[str, Any] | None = None, **extra: Any) -> Case:
    return Case(T, name, bmh(new_spec, status=status), wanted, old=bmh(old_spec, status=status),
                **extra)


UPDATE: list[Case] = [
    _pair("updateAddress", {"bmc": bmc("test-address-changed")}, {"bmc": bmc("test-address")},
          MOVED),
    _pair("updateAddressBMHRegistering", {"bmc": bmc("test-address-changed")},
          {"bmc": bmc("test-address")}, "", status=state("registering")),
    _pair("updateAddressBMHDetached", {"bmc": bmc("test-address-changed")},
          {"bmc": bmc("test-address")}, "", status=state("", "detached")),
    _pair("updateBootMAC", {"bootMACAddress": "test-mac-changed"},
          {"bootMACAddress": "test-mac"}, "bootMACAddress can not be changed once it is set",
          schema="spec.bootMACAddress",
          schema_valid=bmh({"bootMACAddress": "00:11:22:33:44:56"}),
          schema_valid_old=bmh({"bootMACAddress": "00:11:22:33:44:55"})),
    _pair("updateBootMACCaseOnly", {"bootMACAddress": "AA:BB:CC:DD:EE:FF"},
          {"bootMACAddress": "aa:bb:cc:dd:ee:ff"}, ""),
    _pair("updateBootMACCaseMixed", {"bootMACAddress": "aA:Bb:cC:Dd:Ee:Ff"},
          {"bootMACAddress": "AA:BB:CC:DD:EE:FF"}, ""),
    _pair("updateBootMACInvalidNew",
          {"bmc": bmc("redfish://127.0.0.1", "test1"), "bootMACAddress": "invalid-mac"},
          {"bootMACAddress": "00:11:22:33:44:55"}, "address invalid-mac: invalid MAC address",
          schema="spec.bootMACAddress"),
    _pair("allowDisablingExternallyProvisioned", {}, {"externallyProvisioned": True}, ""),
    _pair("rejectEnablingExternallyProvisionedWhenNotInAvailable",
          {"externallyProvisioned": True}, {}, "externallyProvisioned can only be enabled when "
          "in Available state, currently in inspecting", status=state("inspecting")),
    _pair("allowEnablingExternallyProvisionedWhenInAvailable", {"externallyProvisioned": True},
          {}, "", status=state("available")),
    Case("TestBareMetalHostUpdate", "valid", bmh(), "", old=bmh()),
]


def test_the_table_has_every_upstream_case_once() -> None:
    ids = [c.id for c in UPDATE]
    assert len(ids) == len(set(ids))
    assert sum(c.test == T for c in UPDATE) == 10  # TestValidateUpdate's cases at 02aa5059e


@pytest.mark.parametrize("case", UPDATE, ids=lambda c: c.id)
def test_admission_update(case: Case) -> None:
    result = validation.admit("UPDATE", case.new, case.old)
    assert result.allowed is (not case.wanted and not case.schema)
    assert result.warnings == ()
    if case.schema:
        ws.assert_schema_refuses(result.errors, case)
    else:
        ws.assert_verdict(result.errors, case.wanted)


@pytest.mark.parametrize("case", [c for c in UPDATE if c.schema_valid is not None],
                         ids=lambda c: c.id)
def test_admission_update_with_schema_valid_values(case: Case) -> None:
    assert case.schema_valid is not None and case.schema_valid_old is not None
    for doc in (case.schema_valid, case.schema_valid_old):
        assert ws.crd_support.schema_problems(ws.BMH_CRD, doc) == []
    result = validation.admit("UPDATE", case.schema_valid, case.schema_valid_old)
    ws.assert_verdict(result.errors, case.wanted)
    # The same object is fine as a create: the refusal is the update rule's.
    assert validation.admit("CREATE", case.schema_valid).allowed


def _renamed(doc: dict[str, Any] | None, name: str) -> dict[str, Any]:
    assert doc is not None
    renamed = ws.deep(doc)
    renamed["metadata"]["name"] = name
    return renamed


def test_validate_command_with_old(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """All cases in one run: each new object finds its stored one by name (one per case)."""
    new = [_renamed(c.new, f"case-{i}") for i, c in enumerate(UPDATE, start=1)]
    # The stored objects as `kubectl get -o yaml` writes them: one v1 List.
    stored = {"apiVersion": "v1", "kind": "List",
              "items": [_renamed(c.old, f"case-{i}") for i, c in enumerate(UPDATE, start=1)]}
    new_path, old_path = tmp_path / "new.yaml", tmp_path / "stored.yaml"
    new_path.write_text(yaml.safe_dump_all(new, sort_keys=False))
    old_path.write_text(yaml.safe_dump(stored, sort_keys=False))
    assert cli.main(["validate", str(new_path), "--old", str(old_path)]) == 1
    out = capsys.readouterr().out
    for index, case in enumerate(UPDATE, start=1):
        lines = [line.partition(": ")[2] for line in out.splitlines()
                 if line.startswith(f"{new_path}:{index}: ")]
        if case.schema:
            assert any(line.startswith(case.schema + ": ") for line in lines), (case.id, lines)
        elif case.wanted:
            assert any(case.wanted in line for line in lines), (case.id, lines)
        else:
            assert lines == [], (case.id, lines)


def test_validate_command_without_old_applies_no_update_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = UPDATE[0]  # updateAddress: refused only as an update
    path = tmp_path / "new.yaml"
    path.write_text(yaml.safe_dump(case.new))
    assert cli.main(["validate", str(path)]) == 0
    assert capsys.readouterr().out == ""
