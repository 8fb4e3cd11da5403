"""The DataImage kind (metal3.io/v1alpha1): an ISO to attach to a provisioned host.

Field for field upstream's `apis/metal3.io/v1alpha1/dataimage_types.go` (baremetal-operator
02aa5059e). A DataImage has the name of the BareMetalHost it belongs to; the host's controller
inserts `spec.url` into the host's virtual CD when the provisioned host is next powered on, and
ejects it when the DataImage is deleted (the finalizer holds the object until the CD is empty).
The webhook (`validate`) is upstream's `dataimage_validation.go`: the URL must parse as a request
URI with scheme http, https, ftp, gopher or oci.
"""

from typing import ClassVar

from metalcubed.core import outcome
from metalcubed.core.api import meta, validation

API_VERSION = "metal3.io/v1alpha1"
FINALIZER = "dataimage.metal3.io"
"""Held until the image is detached from the host (or the host is gone or detached)."""


class AttachedImageReference(meta.ApiModel):
    url: str


class DataImageError(meta.ApiModel):
    count: int
    message: str


NO_ATTACHED_IMAGE = AttachedImageReference(url="")
NO_ERROR = DataImageError(count=0, message="")


class DataImageSpec(meta.ApiModel):
    url: str
    """The ISO to attach to the BareMetalHost of the same name."""


class DataImageStatus(meta.ApiModel):
    """Go writes the two struct fields even when empty (omitempty skips no struct)."""

    last_reconciled: meta.Time | None = None
    """When the host's controller last looked at the image."""
    attached_image: AttachedImageReference = NO_ATTACHED_IMAGE
    """What the host's virtual CD holds (url "" when nothing is attached)."""
    error: DataImageError = NO_ERROR
    """Failures attaching or detaching since the last success (drives the backoff)."""


class DataImage(meta.Resource):
    """metal3.io/v1alpha1 DataImage: an ISO attached to the provisioned host of the same name."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "DataImage"
    PLURAL: ClassVar[str] = "dataimages"

    spec: DataImageSpec = DataImageSpec(url="")
    """Optional in upstream's schema: a DataImage without one is refused by the webhook
    (empty URL), not by the schema."""
    status: DataImageStatus = DataImageStatus()


def url_problem(url: str) -> str:
    """Why upstream's validateURL refuses `url` ("" when it accepts it)."""
    problem, scheme = validation.request_uri_problem(url)
    if problem:
        return problem
    if scheme not in validation.IMAGE_URL_SCHEMES:
        return f'invalid scheme in URL, "{scheme}" not allowed'
    return ""


def validate(image: DataImage, *, old: DataImage | None = None) -> list[outcome.SpecError]:
    """Upstream's DataImage webhook (create and update: the same rule)."""
    problem = url_problem(image.spec.url)
    if problem:
        return [outcome.SpecError("spec.url", f'URL "{image.spec.url}" is invalid: {problem}')]
    return []


validation.register(
    validation.KindEntry(
        api_version=API_VERSION,
        kind=DataImage.KIND,
        check=validation.Check.FULL,
        model=DataImage,
        webhook=validate,
    )
)
