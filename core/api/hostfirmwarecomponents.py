"""The HostFirmwareComponents kind (metal3.io/v1alpha1): firmware versions and wanted updates.

Field for field upstream's `apis/metal3.io/v1alpha1/hostfirmwarecomponents_types.go`
(baremetal-operator 02aa5059e). It has its BareMetalHost's name; the host's controller creates it
(owned, no updates) when the BMC reports firmware components. `spec.updates` lists firmware
images to flash (component `bios`, `bmc` or `nic:<id>`, and an image URL); `status.components`
is the inventory (initial, current and last flashed version) and `status.updates` the updates
last applied. The controller (core/reconcilers/hostfirmwarecomponents.py) sets ChangeDetected
and Valid as upstream; the webhook (`validate`) checks each URL as upstream's
hostfirmwarecomponents_validation.go does.
"""

from typing import Annotated, ClassVar

from metalcubed.core import outcome
from metalcubed.core.api import meta, validation

API_VERSION = "metal3.io/v1alpha1"
CHANGE_DETECTED = "ChangeDetected"
VALID = "Valid"
REASON_VALID = "OK"
REASON_INVALID = "InvalidComponent"
NIC_PREFIX = "nic:"
COMPONENTS = ("bmc", "bios")
"""The component names allowed besides `nic:` ones."""


class FirmwareUpdate(meta.ApiModel):
    component: str
    url: str


class FirmwareComponentStatus(meta.ApiModel):
    component: str
    initial_version: str
    current_version: Annotated[str, meta.OMIT_EMPTY] = ""
    last_version_flashed: Annotated[str, meta.OMIT_EMPTY] = ""
    updated_at: meta.Time | None = None


class HostFirmwareComponentsSpec(meta.ApiModel):
    updates: tuple[FirmwareUpdate, ...]


class HostFirmwareComponentsStatus(meta.ApiModel):
    updates: Annotated[tuple[FirmwareUpdate, ...], meta.OMIT_EMPTY] = ()
    components: Annotated[tuple[FirmwareComponentStatus, ...], meta.OMIT_EMPTY] = ()
    last_updated: meta.Time | None = None
    conditions: Annotated[tuple[meta.Condition, ...], meta.OMIT_EMPTY] = ()


class HostFirmwareComponents(meta.Resource):
    """metal3.io/v1alpha1 HostFirmwareComponents: a host's firmware versions and updates."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "HostFirmwareComponents"
    PLURAL: ClassVar[str] = "hostfirmwarecomponents"

    spec: HostFirmwareComponentsSpec = HostFirmwareComponentsSpec(updates=())
    status: HostFirmwareComponentsStatus = HostFirmwareComponentsStatus()


def component_problem(hfc: HostFirmwareComponents) -> str:
    """Upstream's ValidateHostFirmwareComponents (the controller's check): the first update
    whose component is not bmc, bios or nic:<...> ("" when all are)."""
    for update in hfc.spec.updates:
        name = update.component
        if name not in COMPONENTS and not name.startswith(NIC_PREFIX):
            return (f"component {name} is invalid, only 'bmc', 'bios', or names starting with "
                    f"'{NIC_PREFIX}' are allowed as update names")
    return ""


def pending_updates(hfc: HostFirmwareComponents) -> tuple[FirmwareUpdate, ...]:
    """Upstream getUpdatesDifference: spec updates not yet in status with the same URL."""
    done = {u.component: u.url for u in hfc.status.updates}
    return tuple(u for u in hfc.spec.updates if done.get(u.component) != u.url)


def validate(hfc: HostFirmwareComponents, *, old: HostFirmwareComponents | None = None,
             ) -> list[outcome.SpecError]:
    """Upstream's webhook (create and update): every update URL must be a request URI with
    scheme http, https, ftp, gopher or oci."""
    errors: list[outcome.SpecError] = []
    for index, update in enumerate(hfc.spec.updates):
        problem, scheme = validation.request_uri_problem(update.url)
        if not problem and scheme not in validation.IMAGE_URL_SCHEMES:
            problem = f'invalid scheme in URL, "{scheme}" not allowed'
        if problem:
            errors.append(outcome.SpecError(
                f"spec.updates[{index}].url",
                f'invalid URL "{update.url}" in FirmwareUpdate in component '
                f'"{update.component}": {problem}'))
    return errors


validation.register(
    validation.KindEntry(
        api_version=API_VERSION,
        kind=HostFirmwareComponents.KIND,
        check=validation.Check.FULL,
        model=HostFirmwareComponents,
        webhook=validate,
    )
)
