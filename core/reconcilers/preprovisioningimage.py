"""The PreprovisioningImage controller: each virtual-media host's deploy image, with its network
data.

Two halves of upstream's behaviour (baremetal-operator 02aa5059e) in one controller:

- the BareMetalHost side (upstream's getPreprovImage in the host controller): every host whose
  BMC boots the ramdisk from virtual media gets a PreprovisioningImage of its own name, owned
  by it (controller reference, the host's labels), whose spec follows the host:
  `networkDataName` = `spec.preprovisioningNetworkDataName` (the `<host>-network` Secret with
  the ramdisk's nmstate configuration), `architecture` = `spec.architecture` (else what
  inspection found), `acceptFormats` = [iso]. Done here, keyed by the same name, so the host
  controller stays as it is; a PreprovisioningImage whose owner host is gone is deleted;
- the PreprovisioningImage side (upstream's preprovisioningimage_controller.go): finalizer;
  architecture and format the provider supports, else the Error condition (reason
  ConfigurationError); the network data Secret, else Error (MissingNetworkData) and a retry
  10 s to 10 min after the error began; when the format, architecture or network data version
  changed, first Ready=False ("Config changed") and the old image discarded, then the image
  built (`ImageProvider.build_image`) and `status.imageUrl`, `format`, `architecture`,
  `networkData{name, version}` written with Ready=True, Error=False ("Generated image"); a
  deleted image is discarded before its finalizer goes.

Without an image provider (the fleet model) the controller does nothing: upstream does not start
it when no image can be built.
"""

from collections.abc import Iterable, Mapping
from datetime import datetime

from metalcubed.core import bmcaddress, imageprovider, outcome, ports, wiring
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import change, meta
from metalcubed.core.api import preprovisioningimage as ppi
from metalcubed.core.reconcilers import hostaccess

MIN_RETRY_DELAY_S = 10.0
MAX_RETRY_DELAY_S = 600.0
"""Upstream minRetryDelay / maxRetryDelay."""

FORMATS = (ppi.ImageFormat.ISO,)
"""What a host asks for: the engine boots the ramdisk from the virtual CD."""

C = ppi.ConditionType
R = ppi.Reason


class PreprovisioningImageReconciler:
    def __init__(
        self,
        *,
        store: ports.Store,
        clock: ports.Clock,
        events: ports.EventRecorder,
        provider: imageprovider.ImageProvider | None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._events = events
        self._provider = provider

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        if self._provider is None:
            return outcome.Outcome.done()
        image = self._image_for_host(key)
        if image is None:
            return outcome.Outcome.done()
        if image.metadata.deletion_timestamp is not None:
            others = [f for f in image.metadata.finalizers if f != ppi.FINALIZER]
            if others or ppi.FINALIZER not in image.metadata.finalizers:
                return outcome.Outcome.done()  # upstream: wait for the other finalizers
            self._discard(image)
            self._store.update(image.with_meta(finalizers=()))
            return outcome.Outcome.done()
        if ppi.FINALIZER not in image.metadata.finalizers:
            self._store.update(image.with_meta(finalizers=(*image.metadata.finalizers,
                                                            ppi.FINALIZER)))
            return outcome.Outcome.after(0)
        return self._update(image, self._provider)

    # --- the host's side ---------------------------------------------------------------------

    def _image_for_host(self, key: meta.ObjectKey) -> ppi.PreprovisioningImage | None:
        """The host's image, created or brought in line with the host; None when there is
        (and should be) none."""
        try:
            image: ppi.PreprovisioningImage | None = self._store.get(ppi.PreprovisioningImage,
                                                                     key)
        except outcome.NotFound:
            image = None
        try:
            host = self._store.get(bmh.BareMetalHost, key)
        except outcome.NotFound:
            host = None
        if host is None or host.metadata.deletion_timestamp is not None:
            if image is None or image.metadata.deletion_timestamp is not None \
                    or not _owner_uid(image):
                return image
            self._store.delete(ppi.PreprovisioningImage, key)  # its host is gone
            try:
                return self._store.get(ppi.PreprovisioningImage, key)  # held by the finalizer
            except outcome.NotFound:
                return None
        if not _boots_from_virtual_media(host):
            return image
        spec = ppi.PreprovisioningImageSpec(
            network_data_name=host.spec.preprovisioning_network_data_name,
            architecture=host_architecture(host),
            accept_formats=FORMATS,
        )
        if image is None:
            created = ppi.PreprovisioningImage(
                metadata=meta.ObjectMeta(
                    name=key.name, namespace=key.namespace, labels=dict(host.metadata.labels),
                    owner_references=(hostaccess.owner_reference(host, controller=True),),
                    finalizers=(ppi.FINALIZER,)),
                spec=spec)
            return self._store.create(created)
        if image.metadata.deletion_timestamp is not None:
            return image
        labels = {**image.metadata.labels, **host.metadata.labels}
        if image.spec != spec or labels != image.metadata.labels:
            updated = change.replace(image.with_meta(labels=labels), {"spec": spec})
            return self._store.update(updated)
        return image

    # --- the image's side --------------------------------------------------------------------

    def _update(self, image: ppi.PreprovisioningImage,
                provider: imageprovider.ImageProvider) -> outcome.Outcome:
        spec = image.spec
        if not provider.supports_architecture(spec.architecture):
            return self._error(image, R.CONFIGURATION_ERROR, "Architecture not supported")
        fmt = next((f for f in spec.accept_formats if provider.supports_format(f.value)), None)
        if fmt is None:
            return self._error(image, R.CONFIGURATION_ERROR,
                               "No acceptable image format supported")
        try:
            network_data, secret_status = self._network_data(image)
        except outcome.NotFound:
            self._error(image, R.MISSING_NETWORK_DATA, "NetworkData secret not found")
            return outcome.Outcome.after(self._error_retry_delay(image))
        status = image.status
        if (status.format, status.architecture, status.network_data) != (
                fmt, spec.architecture, secret_status):
            # Two recorded steps, as upstream: not ready first (a host must not boot an image
            # about to go), then the old image discarded; the next pass builds the new one
            # (our own status writes do not wake us: ask for that pass).
            if _is_true(image, C.READY):
                self._write(image, _unready(image, "Config changed", self._now()))
                return outcome.Outcome.after(0)
            self._discard(image)
            self._write(image, _with_image(
                image, imageprovider.GeneratedImage(image_url=""), fmt=fmt,
                network=secret_status, now=self._now(), message="Config changed"))
            return outcome.Outcome.after(0)
        data = _image_data(image.key, fmt.value, spec.architecture, secret_status)
        try:
            built = provider.build_image(data, network_data)
        except imageprovider.ImageBuildInvalid as err:
            return self._error(image, R.BUILD_INVALID, str(err))
        except imageprovider.ImageNotReady as err:
            self._write(image, _unready(image, str(err), self._now()))
            return outcome.Outcome.after(MIN_RETRY_DELAY_S)
        new = _with_image(image, built, fmt=fmt, network=secret_status, now=self._now(),
                          message="Generated image")
        if new != image.status:
            self._events.record(image, type=ports.EventType.NORMAL, reason="ImageGenerated",
                                message=f"Image available at {built.image_url}")
        return self._write(image, new)

    def _network_data(
        self, image: ppi.PreprovisioningImage
    ) -> tuple[Mapping[str, str] | None, ppi.SecretStatus]:
        name = image.spec.network_data_name
        if not name:
            return None, ppi.SecretStatus()
        secret = self._store.get(meta.Secret, meta.ObjectKey(image.metadata.namespace, name))
        keys = secret.data.keys() | (secret.string_data or {}).keys()
        data = {k: v for k in sorted(keys) if (v := secret.value(k)) is not None}
        return data, ppi.SecretStatus(name=name, version=secret.metadata.resource_version or "")

    def _discard(self, image: ppi.PreprovisioningImage) -> None:
        status = image.status
        if self._provider is None or status.format is None:
            return
        self._provider.discard_image(_image_data(image.key, status.format.value,
                                                 status.architecture, status.network_data))

    def _error(self, image: ppi.PreprovisioningImage, reason: ppi.Reason,
               message: str) -> outcome.Outcome:
        now = self._now()
        generation = image.metadata.generation
        conditions = _set(image.status.conditions, C.READY, "False", reason, "", generation, now)
        conditions = _set(conditions, C.ERROR, "True", reason, message, generation, now)
        new = change.replace(image.status, {"image_url": "", "conditions": conditions})
        if new != image.status:
            self._events.record(image, type=ports.EventType.WARNING, reason=reason.value,
                                message=message)
        return self._write(image, new)

    def _error_retry_delay(self, image: ppi.PreprovisioningImage) -> float:
        """Upstream getErrorRetryDelay: time since the error began, plus 10 s, at most 10 min."""
        error = image.condition(C.ERROR)
        if error is None or error.status != "True":
            return MIN_RETRY_DELAY_S
        since = (self._now() - error.last_transition_time).total_seconds()
        return min(max(since, 0.0) + MIN_RETRY_DELAY_S, MAX_RETRY_DELAY_S)

    def _write(self, image: ppi.PreprovisioningImage,
               status: ppi.PreprovisioningImageStatus) -> outcome.Outcome:
        if status != image.status:
            self._store.update_status(change.replace(image, {"status": status}))
        return outcome.Outcome.done()

    def _now(self) -> datetime:
        return self._clock.now().replace(microsecond=0)


# --- status helpers (upstream setImage / setUnready / setError) --------------------------------


def _set(conditions: tuple[meta.Condition, ...], ctype: ppi.ConditionType, status: str,
         reason: ppi.Reason, message: str, generation: int | None,
         now: datetime) -> tuple[meta.Condition, ...]:
    """apimachinery's SetStatusCondition: the transition time moves only with the status."""
    old = next((c for c in conditions if c.type == ctype), None)
    since = old.last_transition_time if old is not None and old.status == status else now
    new = meta.Condition(type=ctype.value, status=status, reason=reason.value, message=message,
                         observed_generation=generation, last_transition_time=since)
    if old is None:
        return (*conditions, new)
    return tuple(new if c.type == ctype else c for c in conditions)


def _is_true(image: ppi.PreprovisioningImage, ctype: ppi.ConditionType) -> bool:
    cond = image.condition(ctype)
    return cond is not None and cond.status == "True"


def _unready(image: ppi.PreprovisioningImage, message: str,
             now: datetime) -> ppi.PreprovisioningImageStatus:
    conditions = _set(image.status.conditions, C.READY, "False", R.SUCCESS, message,
                      image.metadata.generation, now)
    return change.replace(image.status, {"conditions": conditions})


def _with_image(image: ppi.PreprovisioningImage, built: imageprovider.GeneratedImage, *,
                fmt: ppi.ImageFormat, network: ppi.SecretStatus, now: datetime,
                message: str) -> ppi.PreprovisioningImageStatus:
    generation = image.metadata.generation
    ready = "True" if built.image_url else "False"
    conditions = _set(image.status.conditions, C.READY, ready, R.SUCCESS, message, generation,
                      now)
    conditions = _set(conditions, C.ERROR, "False", R.SUCCESS, "", generation, now)
    return ppi.PreprovisioningImageStatus.model_validate({
        "imageUrl": built.image_url, "kernelUrl": built.kernel_url,
        "extraKernelParams": built.extra_kernel_params, "format": fmt,
        "networkData": network, "architecture": image.spec.architecture,
        "conditions": conditions,
    })


def _image_data(key: meta.ObjectKey, fmt: str, architecture: str,
                network: ppi.SecretStatus) -> imageprovider.ImageData:
    return imageprovider.ImageData(key=key, format=fmt, architecture=architecture,
                                   network_data_name=network.name,
                                   network_data_version=network.version)


def _owner_uid(image: ppi.PreprovisioningImage) -> str:
    for ref in image.metadata.owner_references:
        if ref.kind == bmh.BareMetalHost.KIND and ref.controller:
            return ref.uid
    return ""


def host_architecture(host: bmh.BareMetalHost) -> str:
    """Upstream getHostArchitecture without its last fallback (the controller's own CPU, which
    core cannot ask): spec.architecture, else the inspected CPU architecture, else ""."""
    if host.spec.architecture:
        return host.spec.architecture
    hardware = host.status.hardware
    return hardware.cpu.arch if hardware is not None else ""


def _boots_from_virtual_media(host: bmh.BareMetalHost) -> bool:
    if not host.spec.bmc.address:
        return False
    try:
        access = bmcaddress.parse(host.spec.bmc.address)
    except outcome.MetalcubedError:
        return False  # the host controller reports the bad address
    return access.type.supports_iso_preprovisioning_image


# --- wiring ----------------------------------------------------------------------------------


def image_update_matters(old: ppi.PreprovisioningImage, new: ppi.PreprovisioningImage) -> bool:
    """controller-runtime's default for `For`: every update except our own status writes
    (the generation, metadata or deletion changed)."""
    a, b = old.metadata, new.metadata
    return (a.generation != b.generation or a.finalizers != b.finalizers
            or a.labels != b.labels or a.deletion_timestamp != b.deletion_timestamp)


def host_change_matters(old: bmh.BareMetalHost, new: bmh.BareMetalHost) -> bool:
    """What the host's image follows: its spec (network data name, architecture, BMC), labels,
    inspected architecture and deletion."""
    arch_old = old.status.hardware.cpu.arch if old.status.hardware else ""
    arch_new = new.status.hardware.cpu.arch if new.status.hardware else ""
    return (wiring.host_update_matters(old, new) or old.metadata.labels != new.metadata.labels
            or arch_old != arch_new)


def same_name(host: bmh.BareMetalHost, lookup: wiring.IndexLookup) -> Iterable[meta.ObjectKey]:
    return (host.key,)


NETWORK_DATA_INDEX = "preprovisioningimage-networkdata"
"""PreprovisioningImage index: "namespace/name" of its network data Secret."""


def network_data_of(image: ppi.PreprovisioningImage) -> Iterable[str]:
    if image.spec.network_data_name:
        yield f"{image.metadata.namespace}/{image.spec.network_data_name}"


def images_using_secret(secret: meta.Secret,
                        lookup: wiring.IndexLookup) -> Iterable[meta.ObjectKey]:
    return lookup(NETWORK_DATA_INDEX, f"{secret.metadata.namespace}/{secret.metadata.name}")


WIRING = wiring.Wiring(
    name="preprovisioningimage",
    kind=ppi.PreprovisioningImage,
    watches=(
        wiring.Watch(ppi.PreprovisioningImage, wiring.own_key,
                     update_filter=image_update_matters),
        wiring.Watch(bmh.BareMetalHost, same_name, update_filter=host_change_matters),
        wiring.Watch(meta.Secret, images_using_secret, label_selector=wiring.SECRET_SELECTOR),
    ),
    indexes=(wiring.Index(NETWORK_DATA_INDEX, ppi.PreprovisioningImage, network_data_of),),
)
"""The PreprovisioningImage controller: its objects, their hosts, their network data Secrets
(upstream `Owns(Secret)`; here through the index, the Secret stays the user's)."""
