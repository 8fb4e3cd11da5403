"""The few Cluster API core (cluster.x-k8s.io/v1beta2) fields CAPM3's controllers read.

Views that keep what they do not name (pydantic `extra="allow"`): Cluster API core owns these
objects, and the one write CAPM3 makes (remediation's OwnerRemediated condition on a Machine's
status) must lose nothing. Field names as Cluster API v1.13.6 `api/core/v1beta2`.
"""

from typing import Annotated, ClassVar

from pydantic import ConfigDict, Field

from metalcubed.core.api import meta

API_VERSION = "cluster.x-k8s.io/v1beta2"
CLUSTER_NAME_LABEL = "cluster.x-k8s.io/cluster-name"
PAUSED_ANNOTATION = "cluster.x-k8s.io/paused"


class _View(meta.ApiModel):
    model_config = ConfigDict(extra="allow")


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
    severity: str | None = None
    last_transition_time: meta.Time | None = None
    reason: str | None = None
    message: str | None = None


class Condition(_View):
    """metav1.Condition as Cluster API v1beta2 objects hold them in status.conditions."""

    type: str = ""
    status: str = ""
    observed_generation: int | None = None
    last_transition_time: meta.Time | None = None
    reason: str = ""
    message: str | None = None


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
    """A Cluster API Cluster (view)."""

    model_config = ConfigDict(extra="allow")
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
    provider_id: Annotated[str | None, Field(alias="providerID")] = None


class MachineNodeReference(_View):
    name: str = ""


class MachineStatus(_View):
    node_ref: MachineNodeReference | None = None
    phase: str | None = None
    conditions: tuple[Condition, ...] | None = None
    deprecated: Deprecated | None = None


class Machine(meta.Resource):
    """A Cluster API Machine (view; see the module docstring for the one write)."""

    model_config = ConfigDict(extra="allow")
    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "Machine"
    PLURAL: ClassVar[str] = "machines"

    spec: MachineSpec = MachineSpec()
    status: MachineStatus = MachineStatus()
