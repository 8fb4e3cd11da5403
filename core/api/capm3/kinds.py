"""Registers CAPM3's kinds, both served versions, with `validation` (`metalcubed validate`).

Each is checked against its version's model (upstream's schema, field for field). Upstream's
CAPM3 webhooks (immutable template data, Metal3Data naming, remediation bounds) are not ported
yet, so no `webhook` is registered and the manager serves none for these kinds.
"""

from metalcubed.core.api import validation
from metalcubed.core.api.capm3 import conversion, v1beta1, v1beta2

for _module in (v1beta1, v1beta2):
    for _kind in conversion.KINDS:
        validation.register(validation.KindEntry(
            api_version=_module.API_VERSION, kind=_kind, check=validation.Check.FULL,
            model=getattr(_module, _kind)))

CAPI_KINDS = {
    "cluster.x-k8s.io/v1beta2": ("Cluster", "ClusterClass", "Machine", "MachineSet",
                                 "MachineDeployment", "MachineHealthCheck", "MachinePool"),
    "ipam.cluster.x-k8s.io/v1beta2": ("IPAddressClaim", "IPAddress"),
    "bootstrap.cluster.x-k8s.io/v1beta2": ("KubeadmConfig", "KubeadmConfigTemplate"),
    "controlplane.cluster.x-k8s.io/v1beta2": ("KubeadmControlPlane",
                                              "KubeadmControlPlaneTemplate"),
}
"""Cluster API's own kinds, which CAPM3 manifests mix in: known, deliberately not checked here
(Cluster API core validates them with its own webhooks)."""
for _api_version, _kinds in CAPI_KINDS.items():
    for _kind in _kinds:
        validation.KINDS.setdefault((_api_version, _kind), validation.KindEntry(
            api_version=_api_version, kind=_kind, check=validation.Check.SKIPPED))
