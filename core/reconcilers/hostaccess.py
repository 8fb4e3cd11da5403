"""How the controllers of a host's side objects reach the host's BMC through the provisioner.

DataImage, BMCEventSubscription and PreprovisioningImage act on a BareMetalHost's hardware but
are not the host's controller. Upstream builds their provisioner from the host with
`BuildHostDataNoBMC` (Ironic already holds the credentials); the metalcubed engine talks to the
BMC itself, so it needs them: they are read here from the host's credentials Secret, as the host
controller reads them, and a missing or incomplete Secret is a `HostNotReachable` naming it.
"""

from collections.abc import Callable

from metalcubed.core import outcome, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta


class HostNotReachable(outcome.TransientError):
    """The host's BMC cannot be addressed yet (no BMC, no or incomplete credentials Secret)."""


def host_data(store: ports.Store, host: bmh.BareMetalHost) -> ports.HostData:
    """The provisioner's view of `host`, credentials read from its Secret."""
    spec = host.spec
    if not spec.bmc.address:
        raise HostNotReachable(f"host {host.key} has no BMC address")
    name = spec.bmc.credentials_name
    try:
        secret = store.get(meta.Secret, meta.ObjectKey(host.metadata.namespace, name))
    except outcome.NotFound:
        raise HostNotReachable(f"BMC credentials secret {name!r} not found") from None
    username = (secret.value("username") or "").strip()
    password = (secret.value("password") or "").strip()
    if not username or not password:
        raise HostNotReachable(f"BMC credentials secret {name!r} lacks username or password")
    return ports.HostData(
        key=host.key,
        bmc_address=spec.bmc.address,
        bmc_credentials=ports.Credentials(username=username, password=password),
        disable_certificate_verification=spec.bmc.disable_certificate_verification,
        boot_mac_address=spec.boot_mac_address,
        provisioner_id=host.status.provisioning.id,
    )


def provisioner(
    store: ports.Store,
    factory: ports.ProvisionerFactory,
    host: bmh.BareMetalHost,
    publish: Callable[[str, str], None],
) -> ports.Provisioner:
    return factory.new_provisioner(host_data(store, host), publish)


def owner_reference(host: bmh.BareMetalHost, *, controller: bool = False) -> meta.OwnerReference:
    return meta.OwnerReference(
        api_version=host.api_version,
        kind=host.kind,
        name=host.metadata.name,
        uid=host.metadata.uid or "",
        controller=True if controller else None,
        block_owner_deletion=True if controller else None,
    )


def owned_by(obj: meta.Resource, host: bmh.BareMetalHost) -> bool:
    return any(ref.uid == host.metadata.uid for ref in obj.metadata.owner_references)
