"""The DataImage controller: an ISO in the virtual CD of the provisioned host of the same name.

Upstream (baremetal-operator 02aa5059e) splits the work: the BareMetalHost controller attaches
and detaches the image, but only while a provisioned host is being powered on, and the DataImage
controller only reports what is attached and removes its finalizer once nothing is. Deleting a
DataImage of a host that stays on therefore waits for the host's next power cycle. Virtual media
can be inserted and ejected while a host runs (the OS sees a CD appear or go), so here the
DataImage controller does both itself, level-triggered, from what the BMC reports:

1. no DataImage: done. No host of that name: drop the finalizer (nothing to detach from);
   host paused: done until it changes;
2. own it: the host as owner (garbage collection follows the host), then the finalizer;
3. host detached (annotation): a deleted image loses its finalizer at once; otherwise wait;
4. ask the BMC whether the CD holds an image. It cannot tell: `status.error` count and message,
   retry after max(30 s, the backoff of the count);
5. deleted: eject, then (next pass, CD seen empty) drop the finalizer;
6. the CD lost the image (someone ejected it, a deprovision booted the ramdisk from it):
   status.attachedImage.url is cleared and the image is attached again;
7. the host is provisioned (or externally provisioned) and `spec.url` is not what is attached:
   eject the old URL first, then insert the new one; a host whose CD holds its own OS (a
   `live-iso` image) is refused with an error instead;
8. status.lastReconciled, attachedImage and error are written when they changed.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass

from metalcubed.core import backoff, outcome, ports, wiring
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import change, meta
from metalcubed.core.api import dataimage as di
from metalcubed.core.reconcilers import hostaccess

RETRY_DELAY_S = 60.0
"""Upstream dataImageRetryDelay: waiting for the CD to empty before dropping the finalizer."""
UPDATE_DELAY_S = 30.0
"""Upstream dataImageUpdateDelay: the shortest wait after an attach or detach error."""
UNMANAGED_RETRY_DELAY_S = 20.0
"""Upstream dataImageUnmanagedRetryDelay: while the host is detached."""
VERIFY_DELAY_S = 5.0
"""After an attach or eject: read the CD again to confirm it."""

_PROVISIONED = frozenset(
    {bmh.ProvisioningState.PROVISIONED, bmh.ProvisioningState.EXTERNALLY_PROVISIONED}
)


@dataclass(frozen=True, slots=True)
class _Seen:
    """What one pass learnt and will write."""

    attached_url: str
    error: di.DataImageError


class DataImageReconciler:
    def __init__(
        self,
        *,
        store: ports.Store,
        provisioner_factory: ports.ProvisionerFactory,
        clock: ports.Clock,
        events: ports.EventRecorder,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._factory = provisioner_factory
        self._clock = clock
        self._events = events
        self._rng = rng or random.Random(0)

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        try:
            image = self._store.get(di.DataImage, key)
        except outcome.NotFound:
            return outcome.Outcome.done()
        try:
            host = self._store.get(bmh.BareMetalHost, key)
        except outcome.NotFound:
            self._drop_finalizer(image)
            return outcome.Outcome.done()
        if bmh.PAUSED_ANNOTATION in host.metadata.annotations:
            return outcome.Outcome.done()
        deleting = image.metadata.deletion_timestamp is not None
        if not hostaccess.owned_by(image, host):
            owners = (*image.metadata.owner_references, hostaccess.owner_reference(host))
            self._store.update(image.with_meta(owner_references=owners))
            return outcome.Outcome.after(0)
        if not deleting and di.FINALIZER not in image.metadata.finalizers:
            self._store.update(image.with_meta(finalizers=(*image.metadata.finalizers,
                                                            di.FINALIZER)))
            return outcome.Outcome.after(0)
        if bmh.DETACHED_ANNOTATION in host.metadata.annotations:
            if deleting:
                self._drop_finalizer(image)
                return outcome.Outcome.done()
            return outcome.Outcome.after(UNMANAGED_RETRY_DELAY_S)
        return self._act(image, host, deleting=deleting)

    # --- the BMC side ------------------------------------------------------------------------

    def _act(
        self, image: di.DataImage, host: bmh.BareMetalHost, *, deleting: bool
    ) -> outcome.Outcome:
        status = image.status
        try:
            prov = hostaccess.provisioner(self._store, self._factory, host, self._publisher(image))
            attached = prov.get_data_image_status()
        except outcome.MetalcubedError as err:
            return self._failed(image, f"failed to read the virtual media: {err}")
        if deleting:
            if attached:
                return self._step(image, lambda: prov.detach_data_image(), attached_url="",
                                  reason="DataImageDetached", what="detach")
            self._drop_finalizer(image)
            return outcome.Outcome.done()
        attached_url = status.attached_image.url if attached else ""
        wanted = image.spec.url
        if wanted == attached_url:
            return self._record(image, _Seen(attached_url, di.NO_ERROR), outcome.Outcome.done())
        if host.status.provisioning.state not in _PROVISIONED:
            # Not (yet) provisioned: nothing to attach to; the host's change requeues us.
            return self._record(image, _Seen(attached_url, status.error), outcome.Outcome.done())
        deployed = host.status.provisioning.image
        if deployed.url and deployed.is_live_iso():
            return self._failed(
                image, "the host boots its live-iso image from the virtual CD: a DataImage "
                "cannot be attached")
        if attached:
            # Another image (ours from an older spec.url, or one we did not put there).
            return self._step(image, lambda: prov.detach_data_image(), attached_url="",
                              reason="DataImageDetached", what="detach")
        return self._step(image, lambda: prov.attach_data_image(wanted), attached_url=wanted,
                          reason="DataImageAttached", what="attach")

    def _step(
        self, image: di.DataImage, act: Callable[[], None], *, attached_url: str, reason: str,
        what: str,
    ) -> outcome.Outcome:
        try:
            act()
        except outcome.MetalcubedError as err:
            return self._failed(image, f"failed to {what} the data image: {err}")
        message = (f"Attached {attached_url} to the virtual CD" if attached_url
                   else "Ejected the virtual CD")
        self._events.record(image, type=ports.EventType.NORMAL, reason=reason, message=message)
        return self._record(image, _Seen(attached_url, di.NO_ERROR),
                            outcome.Outcome.after(VERIFY_DELAY_S))

    def _failed(self, image: di.DataImage, message: str) -> outcome.Outcome:
        count = image.status.error.count + 1
        seen = _Seen(image.status.attached_image.url, di.DataImageError(count=count,
                                                                         message=message))
        delay = max(UPDATE_DELAY_S, backoff.calculate_backoff_s(count, self._rng))
        self._events.record(image, type=ports.EventType.WARNING, reason="DataImageError",
                            message=message)
        return self._record(image, seen, outcome.Outcome.after(delay))

    # --- writes ------------------------------------------------------------------------------

    def _record(self, image: di.DataImage, seen: _Seen, then: outcome.Outcome) -> outcome.Outcome:
        status = image.status
        if (status.attached_image.url, status.error) != (seen.attached_url, seen.error) or (
                status.last_reconciled is None):
            new_status = di.DataImageStatus(
                last_reconciled=self._clock.now(),
                attached_image=di.AttachedImageReference(url=seen.attached_url),
                error=seen.error,
            )
            self._store.update_status(change.replace(image, {"status": new_status}))
        return then

    def _drop_finalizer(self, image: di.DataImage) -> None:
        if di.FINALIZER in image.metadata.finalizers:
            rest = tuple(f for f in image.metadata.finalizers if f != di.FINALIZER)
            self._store.update(image.with_meta(finalizers=rest))

    def _publisher(self, image: di.DataImage) -> Callable[[str, str], None]:
        def publish(reason: str, message: str) -> None:
            self._events.record(image, type=ports.EventType.NORMAL, reason=reason,
                                message=message)

        return publish


# --- wiring ----------------------------------------------------------------------------------


def image_update_matters(old: di.DataImage, new: di.DataImage) -> bool:
    """Upstream's filter (a spec change), plus deletion and finalizer changes, which upstream
    sees through the generation bump the API server gives a deleted custom resource."""
    a, b = old.metadata, new.metadata
    return (a.generation != b.generation or a.deletion_timestamp != b.deletion_timestamp
            or a.finalizers != b.finalizers)


def host_change_matters(old: bmh.BareMetalHost, new: bmh.BareMetalHost) -> bool:
    """A host's change that can change what to do with its image: its provisioning state or
    deployed image, or what the host controller's own filter lets through (spec, annotations)."""
    return (
        old.status.provisioning.state != new.status.provisioning.state
        or old.status.provisioning.image != new.status.provisioning.image
        or wiring.host_update_matters(old, new)
    )


def same_name(host: bmh.BareMetalHost, lookup: wiring.IndexLookup) -> tuple[meta.ObjectKey, ...]:
    """A DataImage has its host's name."""
    return (host.key,)


WIRING = wiring.Wiring(
    name="dataimage",
    kind=di.DataImage,
    watches=(
        wiring.Watch(di.DataImage, wiring.own_key, update_filter=image_update_matters),
        wiring.Watch(bmh.BareMetalHost, same_name, update_filter=host_change_matters),
    ),
    indexes=(),
)
"""The DataImage controller: its own objects, and the host of the same name."""
