"""The BMCEventSubscription kind (metal3.io/v1alpha1): a Redfish event subscription on a host's BMC.

Field for field upstream's `apis/metal3.io/v1alpha1/bmceventsubscription_types.go`
(baremetal-operator 02aa5059e). The controller creates the subscription on the BMC of
`spec.hostName` (a BareMetalHost in the same namespace), sending events to `spec.destination`
with `spec.context` and the HTTP headers held in the `spec.httpHeadersRef` Secret (each key a
header name, its value the header value), records the BMC's id in `status.subscriptionID`, and
deletes it from the BMC when the object is deleted (finalizer).

The webhook (`validate`) is upstream's `bmceventsubscription_validation.go` plus the update rule
of its webhook: a subscription cannot be changed, only recreated.
"""

import urllib.parse
from typing import Annotated, ClassVar

from pydantic import Field

from metalcubed.core import outcome
from metalcubed.core.api import meta, validation
from metalcubed.core.api.meta import OMIT_EMPTY

API_VERSION = "metal3.io/v1alpha1"
FINALIZER = "bmceventsubscription.metal3.io"
"""Held until the subscription is deleted from the BMC."""


class BMCEventSubscriptionSpec(meta.ApiModel):
    host_name: Annotated[str, OMIT_EMPTY] = ""
    """The BareMetalHost (same namespace) whose BMC sends the events."""
    destination: Annotated[str, OMIT_EMPTY] = ""
    """The webhook URL events are POSTed to."""
    context: Annotated[str, OMIT_EMPTY] = ""
    """Arbitrary text the BMC sends back with every event."""
    http_headers_ref: meta.SecretReference | None = None
    """A Secret whose keys and values are HTTP headers sent with every event."""


class BMCEventSubscriptionStatus(meta.ApiModel):
    subscription_id: Annotated[str, OMIT_EMPTY] = Field(default="", alias="subscriptionID")
    """The BMC's id of the subscription ("" until created)."""
    error: Annotated[str, OMIT_EMPTY] = ""
    """Why the last attempt failed ("" after a success)."""


class BMCEventSubscription(meta.Resource):
    """metal3.io/v1alpha1 BMCEventSubscription: events from a host's BMC sent to a webhook."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "BMCEventSubscription"
    PLURAL: ClassVar[str] = "bmceventsubscriptions"

    spec: BMCEventSubscriptionSpec = BMCEventSubscriptionSpec()
    status: BMCEventSubscriptionStatus = BMCEventSubscriptionStatus()


def _go_path(url: str) -> str:
    """The Path Go's url.ParseRequestURI gives `url` (an opaque `scheme:rest` has none)."""
    scheme, colon, rest = url.partition(":")
    if colon and scheme and not rest.startswith("/"):
        return ""
    return urllib.parse.urlsplit(url).path


def validate(
    sub: BMCEventSubscription, *, old: BMCEventSubscription | None = None
) -> list[outcome.SpecError]:
    """Upstream's BMCEventSubscription webhook: create rules, and no change on update."""
    if old is not None and sub.spec != old.spec:
        return [outcome.SpecError("spec", "subscriptions cannot be updated, please recreate it")]
    errors: list[outcome.SpecError] = []
    spec = sub.spec
    if not spec.host_name:
        errors.append(outcome.SpecError("spec.hostName", "hostName cannot be empty"))
    ref = spec.http_headers_ref
    if ref is not None and (ref.namespace or "") != sub.metadata.namespace:
        errors.append(
            outcome.SpecError(
                "spec.httpHeadersRef.namespace",
                "httpHeadersRef secret must be in the same namespace as the BMCEventSubscription",
            )
        )
    if not spec.destination:
        errors.append(outcome.SpecError("spec.destination", "destination cannot be empty"))
    else:
        problem, _scheme = validation.request_uri_problem(spec.destination)
        if problem:
            errors.append(
                outcome.SpecError("spec.destination", f"destination is invalid: {problem}")
            )
        elif not _go_path(spec.destination):
            errors.append(
                outcome.SpecError(
                    "spec.destination", "hostname-only destination must have a trailing slash"
                )
            )
    return errors


validation.register(
    validation.KindEntry(
        api_version=API_VERSION,
        kind=BMCEventSubscription.KIND,
        check=validation.Check.FULL,
        model=BMCEventSubscription,
        webhook=validate,
    )
)
