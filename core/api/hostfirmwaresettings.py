"""The HostFirmwareSettings kind (metal3.io/v1alpha1): a host's BIOS settings, wanted and actual.

Field for field upstream's `apis/metal3.io/v1alpha1/hostfirmwaresettings_types.go`
(baremetal-operator 02aa5059e). It has the name of its BareMetalHost, which creates it (owned,
empty) once registered. `spec.settings` are the values a user wants (int or string); the
HostFirmwareSettings controller (core/reconcilers/hostfirmwaresettings.py) writes the values the
BMC reports into `status.settings`, the registry into a shared FirmwareSchema named in
`status.schema`, and two conditions the host's controller reads before it applies anything:

- ChangeDetected: True while spec asks for a value status does not show;
- Valid: False (reason ConfigurationError, message "Invalid BIOS setting") when a spec setting is
  not in status, names a password, or breaks the schema (`invalid_settings` says which).
"""

from collections.abc import Mapping
from typing import Annotated, ClassVar

import pydantic
from pydantic import Field

from metalcubed.core import outcome
from metalcubed.core.api import firmwareschema, meta, validation

API_VERSION = "metal3.io/v1alpha1"
CHANGE_DETECTED = "ChangeDetected"
VALID = "Valid"
REASON_SUCCESS = "Success"
REASON_CONFIGURATION_ERROR = "ConfigurationError"

def _int_or_string(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be an integer or a string (intstr.IntOrString)")
    return value


IntOrString = Annotated[int | str, pydantic.BeforeValidator(_int_or_string)]
"""intstr.IntOrString: a YAML `true` is neither (the API server refuses it too)."""


class SchemaReference(meta.ApiModel):
    namespace: str
    name: str


class HostFirmwareSettingsSpec(meta.ApiModel):
    settings: dict[str, IntOrString]
    """The wanted values by attribute name."""


class HostFirmwareSettingsStatus(meta.ApiModel):
    schema_: SchemaReference | None = Field(default=None, alias="schema")
    settings: dict[str, str]
    """What the BMC reports (password attributes left out)."""
    last_updated: meta.Time | None = None
    conditions: Annotated[tuple[meta.Condition, ...], meta.OMIT_EMPTY] = ()


class HostFirmwareSettings(meta.Resource):
    """metal3.io/v1alpha1 HostFirmwareSettings: a host's BIOS settings, wanted and actual."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "HostFirmwareSettings"
    PLURAL: ClassVar[str] = "hostfirmwaresettings"

    spec: HostFirmwareSettingsSpec = HostFirmwareSettingsSpec(settings={})
    status: HostFirmwareSettingsStatus = HostFirmwareSettingsStatus(settings={})


def text(value: int | str) -> str:
    """intstr's String(): what a spec value is compared with status as."""
    return str(value)


def invalid_settings(
    spec: Mapping[str, int | str],
    status: Mapping[str, str],
    schema: "Mapping[str, firmwareschema.SettingSchema] | None",
) -> list[outcome.SpecError]:
    """Upstream's validateHostFirmwareSettings: every spec setting that may not be applied,
    each as an error on its field (`spec.settings[<name>]`), in name order."""
    errors: list[outcome.SpecError] = []
    for name in sorted(spec):
        field = f"spec.settings[{name}]"
        if "Password" in name:
            errors.append(outcome.SpecError(field, "cannot set Password field"))
            continue
        if name not in status:
            errors.append(outcome.SpecError(field, f"setting {name} is not in the Status field"))
            continue
        if schema is not None:
            problem = firmwareschema.validate_setting(schema, name, spec[name])
            if problem:
                errors.append(outcome.SpecError(field, problem))
    return errors


def changed_settings(spec: Mapping[str, int | str], status: Mapping[str, str]) -> dict[str, str]:
    """The spec settings whose value status does not show (as text), by name."""
    return {k: text(v) for k, v in spec.items() if status.get(k) != text(v)}


validation.register(
    validation.KindEntry(
        api_version=API_VERSION,
        kind=HostFirmwareSettings.KIND,
        check=validation.Check.FULL,
        model=HostFirmwareSettings,
    )
)
