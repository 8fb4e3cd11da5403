"""The BMCEventSubscription controller: a subscription on the BMC of `spec.hostName`.

As upstream's (baremetal-operator 02aa5059e, bmceventsubscription_controller.go):

1. no subscription: done. Its host is missing: `status.error` says so, retry in 10 minutes;
2. finalizer first (the BMC keeps the subscription until we delete it);
3. not deleted, no `status.subscriptionID`: read the HTTP headers Secret (each key a header
   name, its value the header's value), create the subscription on the BMC (destination,
   context, headers) and record its id; a failure is written to `status.error` and retried with
   backoff. A subscription with an id is left alone (the spec cannot change: webhook);
4. deleted: delete it from the BMC by its id, then drop the finalizer.

Better than upstream: a deleted subscription whose host is gone loses its finalizer (upstream
keeps it for ever: nothing is left to delete it from), the "host not found" message names the
host (upstream formats the previous error instead), and a host's change reaches the
subscriptions that name it (upstream enqueues the subscription named like the host).
"""

from collections.abc import Callable, Iterable, Mapping

from metalcubed.core import outcome, ports, wiring
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import bmceventsubscription as bes
from metalcubed.core.api import change, meta
from metalcubed.core.reconcilers import hostaccess

RETRY_DELAY_S = 600.0
"""Upstream subscriptionRetryDelay: after the host was not found."""

HOST_INDEX = "bmceventsubscription-host"
"""Subscription index: "namespace/hostName"."""


class HeadersError(outcome.TransientError):
    """The HTTP headers Secret cannot be read."""


class BMCEventSubscriptionReconciler:
    def __init__(
        self,
        *,
        store: ports.Store,
        provisioner_factory: ports.ProvisionerFactory,
        events: ports.EventRecorder,
    ) -> None:
        self._store = store
        self._factory = provisioner_factory
        self._events = events

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        try:
            sub = self._store.get(bes.BMCEventSubscription, key)
        except outcome.NotFound:
            return outcome.Outcome.done()
        deleting = sub.metadata.deletion_timestamp is not None
        try:
            host = self._store.get(
                bmh.BareMetalHost, meta.ObjectKey(key.namespace, sub.spec.host_name))
        except outcome.NotFound:
            if deleting:
                self._drop_finalizer(sub)
                return outcome.Outcome.done()
            self._set_status(sub, error=f'baremetal host "{sub.spec.host_name}" not found')
            return outcome.Outcome.after(RETRY_DELAY_S)
        if not deleting and bes.FINALIZER not in sub.metadata.finalizers:
            sub = self._store.update(
                sub.with_meta(finalizers=(*sub.metadata.finalizers, bes.FINALIZER)))
        if deleting:
            return self._delete(sub, host)
        if sub.status.subscription_id:
            return outcome.Outcome.done()
        return self._create(sub, host)

    def _create(self, sub: bes.BMCEventSubscription, host: bmh.BareMetalHost) -> outcome.Outcome:
        try:
            headers = self._headers(sub)
        except HeadersError:
            self._set_status(sub, error="failed to retrieve HTTP headers secret")
            raise
        try:
            prov = hostaccess.provisioner(self._store, self._factory, host, self._publisher(sub))
        except outcome.MetalcubedError as err:
            self._set_status(sub, error=f"failed to create a subscription: {err}")
            raise
        result, subscription_id = prov.add_bmc_event_subscription(
            destination=sub.spec.destination, context=sub.spec.context, http_headers=headers)
        if result.error_message:
            message = f"failed to create a subscription: {result.error_message}"
            self._set_status(sub, error=message)
            raise outcome.TransientError(message)
        if result.dirty:
            return outcome.Outcome.after(result.requeue_after_s)
        self._set_status(sub, subscription_id=subscription_id, error="")
        self._events.record(sub, type=ports.EventType.NORMAL, reason="SubscriptionCreated",
                            message=f"Created subscription {subscription_id} on the BMC of "
                            f"{host.metadata.name}")
        return outcome.Outcome.done()

    def _delete(self, sub: bes.BMCEventSubscription, host: bmh.BareMetalHost) -> outcome.Outcome:
        if bes.FINALIZER not in sub.metadata.finalizers:
            return outcome.Outcome.done()
        if sub.status.subscription_id:
            try:
                prov = hostaccess.provisioner(self._store, self._factory, host,
                                              self._publisher(sub))
            except outcome.MetalcubedError as err:
                self._set_status(sub, error=f"failed to delete a subscription: {err}")
                raise
            result = prov.remove_bmc_event_subscription(sub.status.subscription_id)
            if result.error_message:
                message = f"failed to delete a subscription: {result.error_message}"
                self._set_status(sub, error=message)
                raise outcome.TransientError(message)
            if result.dirty:
                return outcome.Outcome.after(result.requeue_after_s)
        self._drop_finalizer(sub)
        return outcome.Outcome.done()

    def _headers(self, sub: bes.BMCEventSubscription) -> Mapping[str, str]:
        ref = sub.spec.http_headers_ref
        if ref is None:
            return {}
        if (ref.namespace or "") != sub.metadata.namespace:
            raise HeadersError("httpHeadersRef secret must be in the same namespace as the "
                               "BMCEventSubscription")
        try:
            secret = self._store.get(meta.Secret, meta.ObjectKey(sub.metadata.namespace,
                                                                 ref.name or ""))
        except outcome.NotFound as err:
            raise HeadersError(f"HTTP headers secret {ref.name!r} not found") from err
        headers = {}
        for name in secret.data.keys() | (secret.string_data or {}).keys():
            value = secret.value(name)
            if value is None:
                raise HeadersError(f"HTTP headers secret {ref.name!r}: {name} is not text")
            headers[name] = value
        return headers

    def _set_status(self, sub: bes.BMCEventSubscription, *, error: str,
                    subscription_id: str | None = None) -> None:
        kept = sub.status.subscription_id if subscription_id is None else subscription_id
        status = bes.BMCEventSubscriptionStatus.model_validate(
            {"subscriptionID": kept, "error": error})
        if status != sub.status:
            self._store.update_status(change.replace(sub, {"status": status}))

    def _drop_finalizer(self, sub: bes.BMCEventSubscription) -> None:
        if bes.FINALIZER in sub.metadata.finalizers:
            rest = tuple(f for f in sub.metadata.finalizers if f != bes.FINALIZER)
            self._store.update(sub.with_meta(finalizers=rest))

    def _publisher(self, sub: bes.BMCEventSubscription) -> Callable[[str, str], None]:
        def publish(reason: str, message: str) -> None:
            self._events.record(sub, type=ports.EventType.NORMAL, reason=reason, message=message)

        return publish


# --- wiring ----------------------------------------------------------------------------------


def subscription_update_matters(old: bes.BMCEventSubscription,
                                new: bes.BMCEventSubscription) -> bool:
    """Upstream's updateEventHandler: generation, finalizers or annotations changed (plus the
    deletion timestamp)."""
    a, b = old.metadata, new.metadata
    return (a.generation != b.generation or a.finalizers != b.finalizers
            or a.annotations != b.annotations or a.deletion_timestamp != b.deletion_timestamp)


def host_of(sub: bes.BMCEventSubscription) -> Iterable[str]:
    if sub.spec.host_name:
        yield f"{sub.metadata.namespace}/{sub.spec.host_name}"


def subscriptions_of_host(host: bmh.BareMetalHost,
                          lookup: wiring.IndexLookup) -> Iterable[meta.ObjectKey]:
    return lookup(HOST_INDEX, f"{host.metadata.namespace}/{host.metadata.name}")


WIRING = wiring.Wiring(
    name="bmceventsubscription",
    kind=bes.BMCEventSubscription,
    watches=(
        wiring.Watch(bes.BMCEventSubscription, wiring.own_key,
                     update_filter=subscription_update_matters),
        wiring.Watch(bmh.BareMetalHost, subscriptions_of_host,
                     update_filter=wiring.host_update_matters),
    ),
    indexes=(wiring.Index(HOST_INDEX, bes.BMCEventSubscription, host_of),),
)
"""The BMCEventSubscription controller: its objects, and the hosts they name."""
