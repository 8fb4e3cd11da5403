"""The few Cluster API core (cluster.x-k8s.io/v1beta2) fields CAPM3's controllers read.

Read-only views: unknown fields are ignored, so these models must never be written back (Cluster
API core owns these objects). Field names as Cluster API v1.13.6 `api/core/v1beta2`.
"""

from typing import ClassVar

from pydantic import ConfigDict

from metalcubed.core.api import meta

API_VERSION = "cluster.x-k8s.io/v1beta2"
CLUSTER_NAME_LABEL = "cluster.x-k8s.io/cluster-name"
PAUSED_ANNOTATION = "cluster.x-k8s.io/paused"


class _View(meta.ApiModel):
    model_config = ConfigDict(extra="ignore")


class ContractVersionedObjectReference(_View):
    api_group: str = ""
    kind: str = ""
    name: str = ""


class ClusterSpec(_View):
    paused: bool | None = None
    infrastructure_ref: ContractVersionedObjectReference | None = None


class V1Beta1Condition(_View):
    type: str = ""
    status: str = ""


class V1Beta1Deprecated(_View):
    conditions: tuple[V1Beta1Condition, ...] = ()


class Deprecated(_View):
    v1beta1: V1Beta1Deprecated | None = None


class ClusterInitialization(_View):
    infrastructure_provisioned: bool | None = None


class ClusterStatus(_View):
    initialization: ClusterInitialization | None = None
    deprecated: Deprecated | None = None


class Cluster(meta.Resource):
    """A Cluster API Cluster (read-only view)."""

    model_config = ConfigDict(extra="ignore")
    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "Cluster"
    PLURAL: ClassVar[str] = "clusters"

    spec: ClusterSpec = ClusterSpec()
    status: ClusterStatus = ClusterStatus()

    def infrastructure_ready(self) -> bool:
        """CAPM3's gate: the v1beta1 condition InfrastructureReady, which a v1beta2 Cluster
        keeps at status.deprecated.v1beta1.conditions (CAPM3 reads only that, not
        status.initialization.infrastructureProvisioned; the two are set together)."""
        legacy = self.status.deprecated.v1beta1 if self.status.deprecated else None
        return any(c.type == "InfrastructureReady" and c.status == "True"
                   for c in (legacy.conditions if legacy else ()))


class Bootstrap(_View):
    data_secret_name: str | None = None


class MachineSpec(_View):
    cluster_name: str = ""
    bootstrap: Bootstrap = Bootstrap()
    infrastructure_ref: ContractVersionedObjectReference | None = None
    failure_domain: str | None = None
    provider_id: str | None = None


class Machine(meta.Resource):
    """A Cluster API Machine (read-only view)."""

    model_config = ConfigDict(extra="ignore")
    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "Machine"
    PLURAL: ClassVar[str] = "machines"

    spec: MachineSpec = MachineSpec()
