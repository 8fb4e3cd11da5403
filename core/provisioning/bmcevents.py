"""BMC event subscriptions on the engine (Ironic's `create_subscription` vendor passthru).

The subscription lives on the BMC (Redfish EventService), not in any record of ours: the BMC
keeps it and POSTs events to the destination with the given HTTP headers. Creating is not
idempotent on the BMC (a second POST makes a second subscription), so before creating, an
existing subscription with the same destination and context is reused: a reconcile that created
one but could not record its id does not leave a duplicate behind.
"""

from collections.abc import Mapping

from metalcubed.core import ports
from metalcubed.core.provisioning.context import Ctx


def subscribe(
    ctx: Ctx, *, destination: str, context: str, http_headers: Mapping[str, str]
) -> tuple[ports.ProvisionResult, str]:
    events = ctx.driver.events
    for existing in events.subscriptions(ctx.access):
        if existing.destination == destination and existing.context == context:
            return ports.ProvisionResult.complete(), existing.id
    created = events.subscribe(
        ctx.access, destination, context=context, http_headers=dict(http_headers)
    )
    ctx.publish("BMCEventSubscriptionCreated", f"Subscribed {destination} to BMC events")
    return ports.ProvisionResult.complete(), created.id


def unsubscribe(ctx: Ctx, subscription_id: str) -> ports.ProvisionResult:
    ctx.driver.events.unsubscribe(ctx.access, subscription_id)
    return ports.ProvisionResult.complete()
