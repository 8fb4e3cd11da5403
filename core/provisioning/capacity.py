"""Which hosts hold a provisioning slot: upstream's HasCapacity count (bmo.md 6.1).

Upstream's ironic provisioner lists Ironic's nodes and counts those in a busy provision state
(inspecting, cleaning, deploying and their wait states) whose boot interface is not virtual
media; a host may start such an operation when it is already counted or fewer than
PROVISIONING_LIMIT are. The engine counts the BareMetalHosts themselves, from the store: a host
in inspecting, preparing (manual cleaning), provisioning or deprovisioning whose BMC scheme
boots over the network. Asking the store each time keeps the count restart-safe and shared by
every worker; like upstream's, it is a soft limit (two workers may both see the last slot).
"""

from collections.abc import Callable

from metalcubed.core import bmcaddress, outcome, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta

S = bmh.ProvisioningState

BUSY_STATES = frozenset({S.INSPECTING, S.PREPARING, S.PROVISIONING, S.DEPROVISIONING})


def boots_over_network(address: str) -> bool:
    """The host's ramdisk boots over the network (PXE/iPXE), not from virtual media."""
    try:
        return not bmcaddress.parse(address).type.supports_iso_preprovisioning_image
    except outcome.SpecError:
        return False


def busy_hosts(hosts: list[bmh.BareMetalHost]) -> frozenset[meta.ObjectKey]:
    return frozenset(
        host.key
        for host in hosts
        if host.status.provisioning.state in BUSY_STATES
        and boots_over_network(host.spec.bmc.address)
    )


def busy_hosts_in(store: ports.Store) -> Callable[[], frozenset[meta.ObjectKey]]:
    """A `BusyHosts` query over every BareMetalHost in `store`."""
    return lambda: busy_hosts(store.list(bmh.BareMetalHost))
