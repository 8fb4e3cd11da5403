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


class Cluster(meta.Resource):
    """A Cluster API Cluster (read-only view)."""

    model_config = ConfigDict(extra="ignore")
    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "Cluster"
    PLURAL: ClassVar[str] = "clusters"

    spec: ClusterSpec = ClusterSpec()


class Machine(meta.Resource):
    """A Cluster API Machine (read-only view: only its metadata is read so far)."""

    model_config = ConfigDict(extra="ignore")
    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "Machine"
    PLURAL: ClassVar[str] = "machines"
