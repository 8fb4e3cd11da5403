"""Cluster API core's MachineDeployment, MachineSet and MachineHealthCheck as the fleet keeps them.

Cluster API core is not metalcubed's to ship: the real one (v1.13.6) runs in the lab and the
e2e. The fleet model carries a model of it (capicore.py) so that the pure CAPM3 and IPAM
reconcilers meet the Machines, deletions and remediations they meet in a real cluster. These
are the kinds that model keeps in the memory store: only the fields it uses, with Cluster API's
wire names (`api/core/v1beta2`). Machine and Cluster are core/api/capi's views, the objects the
CAPM3 reconcilers read.
"""

from datetime import datetime
from typing import Annotated, ClassVar

from pydantic import Field

from metalcubed.core.api import capi, meta

API_VERSION = capi.API_VERSION
DEPLOYMENT_NAME_LABEL = "cluster.x-k8s.io/deployment-name"
SET_NAME_LABEL = "cluster.x-k8s.io/set-name"
DELETE_MACHINE_ANNOTATION = "cluster.x-k8s.io/delete-machine"
MACHINE_FINALIZER = "machine.cluster.x-k8s.io"
CLUSTER_FINALIZER = "cluster.cluster.x-k8s.io"
NODE_CLUSTER_ANNOTATION = "cluster.x-k8s.io/cluster-name"
NODE_NAMESPACE_ANNOTATION = "cluster.x-k8s.io/cluster-namespace"
NODE_MACHINE_ANNOTATION = "cluster.x-k8s.io/machine"
"""Annotations Cluster API's Machine controller puts on the Node it found for a Machine (what
the MachineHealthCheck's node watch maps back with)."""

# Machine conditions (v1beta2) the model sets and reads.
INFRASTRUCTURE_READY = "InfrastructureReady"
NODE_HEALTHY = "NodeHealthy"
HEALTH_CHECK_SUCCEEDED = "HealthCheckSucceeded"
OWNER_REMEDIATED = "OwnerRemediated"
EXTERNALLY_REMEDIATED = "ExternallyRemediated"
REMEDIATION_DELETING = "MachineDeleting"
"""OwnerRemediated reason while the MachineSet deletes the Machine it remediates
(MachineSetMachineRemediationMachineDeletingReason)."""
DEFAULT_NODE_STARTUP_TIMEOUT_S = 600.0
"""Cluster API's DefaultNodeStartupTimeoutSeconds."""


class MachineTemplate(meta.ApiModel):
    """What a MachineSet stamps out: the Machine's labels and spec (bootstrap data secret
    and the Metal3MachineTemplate that is its infrastructure template)."""

    labels: Annotated[dict[str, str], meta.OMIT_EMPTY] = Field(default_factory=dict)
    bootstrap_data_secret: str
    infrastructure_template: str
    """Name of the Metal3MachineTemplate (same namespace)."""
    failure_domain: str | None = None


class DeploymentSpec(meta.ApiModel):
    cluster_name: str
    replicas: int
    template: MachineTemplate
    remediation_max_in_flight: int | str | None = None
    """spec.remediation.maxInFlight (an int or a percentage of replicas); None: unlimited."""


class ReplicaStatus(meta.ApiModel):
    replicas: int = 0
    ready_replicas: int = 0
    """Machines Running with a healthy Node."""


class MachineDeployment(meta.Resource):
    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "MachineDeployment"
    PLURAL: ClassVar[str] = "machinedeployments"

    spec: DeploymentSpec
    status: ReplicaStatus = ReplicaStatus()


class MachineSetSpec(meta.ApiModel):
    cluster_name: str
    replicas: int
    template: MachineTemplate
    remediation_max_in_flight: int | str | None = None


class MachineSet(meta.Resource):
    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "MachineSet"
    PLURAL: ClassVar[str] = "machinesets"

    spec: MachineSetSpec
    status: ReplicaStatus = ReplicaStatus()


class UnhealthyNodeCondition(meta.ApiModel):
    type: str
    status: str
    timeout_s: float


class HealthCheckSpec(meta.ApiModel):
    cluster_name: str
    selector: Annotated[dict[str, str], meta.OMIT_EMPTY] = Field(default_factory=dict)
    """matchLabels on the Machines (the cluster-name label is always added)."""
    node_startup_timeout_s: float = DEFAULT_NODE_STARTUP_TIMEOUT_S
    unhealthy_node_conditions: tuple[UnhealthyNodeCondition, ...] = ()
    max_unhealthy: int | str = "100%"
    """spec.remediation.triggerIf.unhealthyLessThanOrEqualTo (upstream default 100%)."""
    remediation_template: str | None = None
    """spec.remediation.templateRef: a Metal3RemediationTemplate's name (external remediation
    by CAPM3); None: the MachineSet deletes and replaces unhealthy Machines."""


class HealthCheckStatus(meta.ApiModel):
    expected_machines: int = 0
    current_healthy: int = 0
    remediations_allowed: int = 0
    short_circuited: bool = False
    """RemediationAllowed False (TooManyUnhealthy): more unhealthy than maxUnhealthy."""


class MachineHealthCheck(meta.Resource):
    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "MachineHealthCheck"
    PLURAL: ClassVar[str] = "machinehealthchecks"

    spec: HealthCheckSpec
    status: HealthCheckStatus = HealthCheckStatus()


def scaled(value: int | str, total: int, *, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: an int as is, `N%` of `total`."""
    if isinstance(value, int):
        return value
    percent = float(value.strip().removesuffix("%"))
    exact = percent * total / 100.0
    whole = int(exact)
    return whole + 1 if round_up and exact > whole else whole


def condition(machine: capi.Machine, kind: str) -> capi.Condition | None:
    for c in machine.status.conditions or ():
        if c.type == kind:
            return c
    return None


def is_true(machine: capi.Machine, kind: str) -> bool:
    c = condition(machine, kind)
    return c is not None and c.status == "True"


def is_false(machine: capi.Machine, kind: str) -> bool:
    c = condition(machine, kind)
    return c is not None and c.status == "False"


def with_conditions(machine: capi.Machine, now: datetime,
                    changes: dict[str, tuple[str, str, str] | None]) -> capi.MachineStatus:
    """The Machine's status with conditions set (type -> (status, reason, message)) or removed
    (None); a condition keeps its lastTransitionTime while its status holds."""
    current = {c.type: c for c in machine.status.conditions or ()}
    for kind, value in changes.items():
        old = current.get(kind)
        if value is None:
            current.pop(kind, None)
            continue
        status, reason, message = value
        if old is not None and (old.status, old.reason, old.message or "") == value:
            continue
        current[kind] = capi.Condition(
            type=kind, status=status, reason=reason, message=message or None,
            last_transition_time=old.last_transition_time
            if old is not None and old.status == status else now)
    ordered = tuple(sorted(current.values(), key=lambda c: c.type))
    return machine.status.model_copy(update={"conditions": ordered or None})
