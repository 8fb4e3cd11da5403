"""Registers CAPM3's kinds, both served versions, with `validation` (`metalcubed validate`).

Each is checked against its version's model (upstream's schema, field for field). v1beta2
kinds also get upstream's webhook rules (`admission`), registered for v1beta2 only as upstream
does: the manager serves them at upstream's paths, and the API server converts a v1beta1
request before calling them. `metalcubed validate` does the same: a v1beta1 document gets its
schema checked, then is converted and checked with the v1beta2 rules.
"""

from metalcubed.core.api import validation
from metalcubed.core.api.capm3 import admission, conversion, v1beta1, v1beta2

for _kind in conversion.KINDS:
    validation.register(validation.KindEntry(
        api_version=v1beta1.API_VERSION, kind=_kind, check=validation.Check.FULL,
        model=getattr(v1beta1, _kind)))
    validation.register(validation.KindEntry(
        api_version=v1beta2.API_VERSION, kind=_kind, check=validation.Check.FULL,
        model=getattr(v1beta2, _kind), webhook=admission.WEBHOOKS.get(_kind),
        warnings=admission.warn_metal3datatemplate if _kind == "Metal3DataTemplate" else None))

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
