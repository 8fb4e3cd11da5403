"""What the controllers of a host's sub-resources share (HostFirmwareSettings,
HostFirmwareComponents): the host they belong to, upstream's skip rule, its provisioner, and
metav1 condition bookkeeping.

A sub-resource has its host's name. Upstream builds their provisioner with
BuildHostDataNoBMC (Ironic already holds the BMC credentials); the engine talks to the BMC
itself, so the host's credentials Secret is read here (through the same cached store).
"""

from collections.abc import Callable, Sequence
from datetime import datetime

from metalcubed.core import outcome, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta

S = bmh.ProvisioningState

PROVISIONER_RETRY_DELAY_S = 30.0
"""upstream provisionerRetryDelay: the provisioner is not ready or could not read the BMC."""
RESOURCE_NOT_AVAILABLE_RETRY_DELAY_S = 30.0
REQUEUE_DELAY_S = 300.0
"""upstream reconcilerRequeueDelay: re-read the hardware every 5 minutes."""
REQUEUE_DELAY_CHANGE_DETECTED_S = 60.0
"""upstream reconcilerRequeueDelayChangeDetected: every minute while a change is pending, so
status shows the new values soon after the host applied them."""
UNMANAGED_RETRY_DELAY_S = 600.0


def skip(host: bmh.BareMetalHost) -> bool:
    """Upstream skipReconcileSubresource: not enrolled yet, unmanaged, detached or paused."""
    if host.status.provisioning.state in (S.NONE, S.UNMANAGED):
        return True
    if host.status.operational_status == bmh.OperationalStatus.DETACHED:
        return True
    annotations = host.metadata.annotations
    return bmh.DETACHED_ANNOTATION in annotations or bmh.PAUSED_ANNOTATION in annotations


def host_data(store: ports.Store, host: bmh.BareMetalHost) -> ports.HostData:
    """The provisioner's view of `host`. Raises TransientError when its credentials Secret
    cannot be read (the host's own controller reports that on the host)."""
    name = host.spec.bmc.credentials_name
    try:
        secret = store.get(meta.Secret, meta.ObjectKey(host.metadata.namespace, name))
    except outcome.NotFound:
        raise outcome.TransientError(f"BMC credentials secret {name!r} not found") from None
    return ports.HostData(
        key=host.key,
        bmc_address=host.spec.bmc.address,
        bmc_credentials=ports.Credentials(username=secret.value("username") or "",
                                          password=secret.value("password") or ""),
        disable_certificate_verification=host.spec.bmc.disable_certificate_verification,
        boot_mac_address=host.spec.boot_mac_address,
        provisioner_id=host.status.provisioning.id,
    )


def owner_reference(owner: meta.Resource) -> meta.OwnerReference:
    """controllerutil.SetOwnerReference's reference (not a controller reference)."""
    return meta.OwnerReference(api_version=owner.API_VERSION, kind=owner.KIND,
                               name=owner.metadata.name, uid=owner.metadata.uid or "")


def with_owner(refs: Sequence[meta.OwnerReference], owner: meta.Resource,
               ) -> tuple[meta.OwnerReference, ...] | None:
    """`refs` with `owner` added (or updated), None when it is already there as it should be."""
    return meta.with_owner_reference(refs, owner_reference(owner))


def set_condition(
    conditions: Sequence[meta.Condition], *, type: str, status: bool, reason: str,
    message: str, generation: int | None, now: datetime,
) -> tuple[tuple[meta.Condition, ...], bool]:
    """apimachinery's meta.SetStatusCondition: the transition time moves only when the status
    changes; returns the new list and whether the status changed (upstream's `dirty` test)."""
    value = "True" if status else "False"
    old = next((c for c in conditions if c.type == type), None)
    changed = old is None or old.status != value
    new = meta.Condition(
        type=type, status=value, observed_generation=generation, reason=reason, message=message,
        last_transition_time=now if changed or old is None else old.last_transition_time,
    )
    if old is None:
        return (*conditions, new), True
    return tuple(new if c.type == type else c for c in conditions), changed


def find(conditions: Sequence[meta.Condition], type: str) -> meta.Condition | None:
    return next((c for c in conditions if c.type == type), None)


def is_true(conditions: Sequence[meta.Condition], type: str) -> bool:
    found = find(conditions, type)
    return found is not None and found.status == "True"


Publisher = Callable[[str, str], None]
