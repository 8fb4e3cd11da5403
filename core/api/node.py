"""corev1 Node: what CAPM3 reads and writes on a workload cluster's Nodes.

CAPM3 sets `spec.providerID` on the Node whose `metal3.io/uuid` label is the BareMetalHost's
uid, syncs `metal3.io/...` labels from the host, and its remediation taints the Node
out-of-service (or deletes and restores it). Those are writes back to an object the kubelet
owns, so unlike the read-only Cluster API views these models keep every field they do not name
(pydantic `extra="allow"`): an update never drops podCIDR, capacity or anything else.
"""

from typing import Annotated, ClassVar

from pydantic import ConfigDict, Field

from metalcubed.core.api import meta

UUID_LABEL = "metal3.io/uuid"
"""The label CAPM3's bootstrap data puts on the Node (kubelet --node-labels): the host's uid."""
OUT_OF_SERVICE_KEY = "node.kubernetes.io/out-of-service"
OUT_OF_SERVICE_VALUE = "nodeshutdown"
NO_EXECUTE = "NoExecute"


class Taint(meta.ApiModel):
    model_config = ConfigDict(extra="allow")

    key: str
    value: str | None = None
    effect: str
    time_added: meta.Time | None = None

    def matches(self, other: "Taint") -> bool:
        """corev1 Taint.MatchTaint: same key and effect (value and time ignored)."""
        return self.key == other.key and self.effect == other.effect


OUT_OF_SERVICE_TAINT = Taint(key=OUT_OF_SERVICE_KEY, value=OUT_OF_SERVICE_VALUE,
                             effect=NO_EXECUTE)
"""The taint CAPM3's remediation puts on a powered-off Node (Kubernetes >= 1.28 non-graceful
node shutdown: pods are force-deleted and volumes detached)."""


class NodeSpec(meta.ApiModel):
    model_config = ConfigDict(extra="allow")

    provider_id: Annotated[str | None, Field(alias="providerID")] = None
    unschedulable: bool | None = None
    taints: Annotated[tuple[Taint, ...], meta.OMIT_EMPTY] = ()


class NodeCondition(meta.ApiModel):
    model_config = ConfigDict(extra="allow")

    type: str
    status: str
    reason: str | None = None
    message: str | None = None
    last_heartbeat_time: meta.Time | None = None
    last_transition_time: meta.Time | None = None


class NodeAddress(meta.ApiModel):
    type: str
    address: str


class NodeStatus(meta.ApiModel):
    model_config = ConfigDict(extra="allow")

    conditions: Annotated[tuple[NodeCondition, ...], meta.OMIT_EMPTY] = ()
    addresses: Annotated[tuple[NodeAddress, ...], meta.OMIT_EMPTY] = ()


class Node(meta.Resource):
    """A Kubernetes Node (cluster-scoped)."""

    model_config = ConfigDict(extra="allow")
    API_VERSION: ClassVar[str] = "v1"
    KIND: ClassVar[str] = "Node"
    PLURAL: ClassVar[str] = "nodes"
    NAMESPACED: ClassVar[bool] = False

    spec: NodeSpec = NodeSpec()
    status: NodeStatus = NodeStatus()

    def ready(self) -> bool | None:
        """The Ready condition: True, False, or None when it is Unknown or absent."""
        found = next((c for c in self.status.conditions if c.type == "Ready"), None)
        if found is None or found.status not in ("True", "False"):
            return None
        return found.status == "True"

    def has_taint(self, taint: Taint) -> bool:
        return any(t.matches(taint) for t in self.spec.taints)
