"""What a Metal3Machine writes on its BareMetalHost: pure functions from a host to the next host.

The Metal3Machine controller (metal3machine.py) decides when; these say what, as upstream
CAPM3 (2f6d76b8 baremetal/metal3machine_manager.go) writes it:

- the claim and the provisioning spec (`claimed`, upstream's Associate + setHostSpec): image,
  customDeploy, userData/metaData/networkData only while the host has neither image nor
  customDeploy (a provisioned host is never re-imaged); consumerRef, `online` true and
  `automatedCleaningMode` (when the Metal3Machine sets one) on every pass (`synced`);
- pause for clusterctl move (`pause_step`, upstream's EnsureBlockMoveAnnotation and
  SetPauseAnnotation): while associated and not paused the host carries
  `clusterctl.cluster.x-k8s.io/block-move` so clusterctl refuses to move it mid-change; when the
  Cluster is paused the host gets `baremetalhost.metal3.io/paused: metal3.io/capm3` and its status
  as JSON in `baremetalhost.metal3.io/status` (BMO restores it on the target cluster), and only
  then is block-move dropped. `unpause` removes only CAPM3's own pause (a user's stays);
- release (`deprovisioned`, `released`, upstream's Delete): first image, customDeploy and the
  data references go and the host powers off (unless `disablePowerOff`); once BMO has it back
  in a free state the consumerRef and the cluster label go, or, with node reuse, the host is
  booked for the same MachineDeployment or control plane (label
  `infrastructure.cluster.x-k8s.io/node-reuse`, consumerRef the Cluster, upstream PR #3474).

Every function returns the host unchanged (the same object) when there is nothing to write,
so the caller's `is` test is its idempotence check.
"""

import json

from metalcubed.core import hostselection
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import capi, meta
from metalcubed.core.api.capm3 import v1beta2 as v2

GROUP = v2.API_VERSION.split("/")[0]
BLOCK_MOVE_ANNOTATION = "clusterctl.cluster.x-k8s.io/block-move"
NODE_REUSE_LABEL = hostselection.NODE_REUSE_LABEL
RELEASED_STATES = frozenset({
    bmh.ProvisioningState.REGISTERING, bmh.ProvisioningState.MATCH_PROFILE,
    bmh.ProvisioningState.INSPECTING, bmh.ProvisioningState.READY,
    bmh.ProvisioningState.AVAILABLE, bmh.ProvisioningState.NONE,
    bmh.ProvisioningState.UNMANAGED})
"""Upstream's states in which a deprovisioned host may lose its consumer."""


def consumer_ref(m3m: v2.Metal3Machine) -> meta.ObjectReference:
    return meta.ObjectReference(api_version=v2.API_VERSION, kind="Metal3Machine",
                                name=m3m.metadata.name, namespace=m3m.metadata.namespace)


def is_consumer(host: bmh.BareMetalHost, m3m: v2.Metal3Machine) -> bool:
    """Upstream's consumerRefMatches: kind, name, namespace and API group (not version)."""
    ref = host.spec.consumer_ref
    return ref is not None and ref.kind == "Metal3Machine" and (
        ref.name == m3m.metadata.name) and (ref.namespace or host.metadata.namespace) == (
        m3m.metadata.namespace) and (ref.api_version or "").split("/")[0] == GROUP


def _secret(ref: v2.ObjectRef | None, namespace: str) -> meta.SecretReference | None:
    if ref is None or not ref.name:
        return None
    return meta.SecretReference(name=ref.name, namespace=ref.namespace or namespace)


def claimed(host: bmh.BareMetalHost, m3m: v2.Metal3Machine, *, cluster: str
            ) -> bmh.BareMetalHost:
    """The host claimed for `m3m` of `cluster` (one write): consumerRef, the cluster label, no
    node-reuse label (the booking is used), `synced`'s spec, and block-move (the claimed host
    is in flux: clusterctl must not move it)."""
    labels = {k: v for k, v in host.metadata.labels.items() if k != NODE_REUSE_LABEL}
    labels[capi.CLUSTER_NAME_LABEL] = cluster
    spec = host.spec.model_copy(update={"consumer_ref": consumer_ref(m3m)})
    return block_move(synced(host.with_meta(labels=labels).model_copy(update={"spec": spec}),
                             m3m))


def synced(host: bmh.BareMetalHost, m3m: v2.Metal3Machine) -> bmh.BareMetalHost:
    """setHostSpec: the provisioning fields while the host has no image and no customDeploy
    (and the Metal3Machine knows its userData and rendered data); `online` and
    `automatedCleaningMode` always."""
    spec = m3m.spec or v2.Metal3MachineSpec()
    status = m3m.status or v2.Metal3MachineStatus()
    ns = host.metadata.namespace
    update: dict[str, object] = {"online": True}
    if spec.automated_cleaning_mode:
        update["automated_cleaning_mode"] = bmh.AutomatedCleaningMode(spec.automated_cleaning_mode)
    # With a dataTemplate, only once its Metal3Data is ready (status.renderedData set with it).
    data_ready = spec.data_template is None or status.rendered_data is not None
    if host.spec.image is None and host.spec.custom_deploy is None and status.user_data and (
            data_ready):
        if spec.image is not None and spec.image.url:
            update["image"] = bmh.Image.model_validate({
                "url": spec.image.url, "checksum": spec.image.checksum or "",
                "checksumType": spec.image.checksum_type, "format": spec.image.disk_format})
        if spec.custom_deploy is not None and spec.custom_deploy.method:
            update["custom_deploy"] = bmh.CustomDeploy(method=spec.custom_deploy.method)
        update["user_data"] = _secret(status.user_data, ns)
        for field in ("meta_data", "network_data"):
            ref = _secret(getattr(status, field), ns)
            if ref is not None:
                update[field] = ref
    new_spec = host.spec.model_copy(update=update)
    return host if new_spec == host.spec else host.model_copy(update={"spec": new_spec})


def pause_step(host: bmh.BareMetalHost) -> bmh.BareMetalHost:
    """The next write pausing a claimed host for clusterctl move (the host itself once done):
    block-move on, then paused + status annotation, then block-move off."""
    annotations = dict(host.metadata.annotations)
    if bmh.PAUSED_ANNOTATION in annotations:
        if BLOCK_MOVE_ANNOTATION not in annotations:
            return host
        del annotations[BLOCK_MOVE_ANNOTATION]
    elif BLOCK_MOVE_ANNOTATION not in annotations:
        annotations[BLOCK_MOVE_ANNOTATION] = ""
    else:
        annotations[bmh.PAUSED_ANNOTATION] = bmh.PAUSED_BY_CAPM3
        status = host.status.to_wire()
        status.pop("hardware", None)
        annotations[bmh.STATUS_ANNOTATION] = json.dumps(status, sort_keys=True)
    return host.with_meta(annotations=annotations)


def block_move(host: bmh.BareMetalHost) -> bmh.BareMetalHost:
    """EnsureBlockMoveAnnotation: a claimed, unpaused host tells clusterctl not to move it."""
    annotations = host.metadata.annotations
    if BLOCK_MOVE_ANNOTATION in annotations or bmh.PAUSED_ANNOTATION in annotations:
        return host
    return host.with_meta(annotations={**annotations, BLOCK_MOVE_ANNOTATION: ""})


def unpause(host: bmh.BareMetalHost, *, cluster: str) -> bmh.BareMetalHost:
    """RemovePauseAnnotation: only CAPM3's own pause, on a host of this cluster."""
    annotations = host.metadata.annotations
    if annotations.get(bmh.PAUSED_ANNOTATION) != bmh.PAUSED_BY_CAPM3 or (
            host.metadata.labels.get(capi.CLUSTER_NAME_LABEL) != cluster):
        return host
    return host.with_meta(annotations={k: v for k, v in annotations.items()
                                       if k != bmh.PAUSED_ANNOTATION})


def deprovisioned(host: bmh.BareMetalHost, m3m: v2.Metal3Machine) -> bmh.BareMetalHost:
    """Upstream Delete's first write: no image, no customDeploy, none of the data the machine
    gave, powered off (unless the host may not be: disablePowerOff)."""
    status = m3m.status or v2.Metal3MachineStatus()
    update: dict[str, object] = {"image": None, "custom_deploy": None,
                                 "online": bool(host.spec.disable_power_off)}
    for field, given in (("user_data", status.user_data), ("meta_data", status.meta_data),
                         ("network_data", status.network_data)):
        if given is not None:
            update[field] = None
    spec = host.spec.model_copy(update=update)
    return host if spec == host.spec else host.model_copy(update={"spec": spec})


def released(host: bmh.BareMetalHost, *, cluster: capi.Cluster | None, reuse: str | None
             ) -> bmh.BareMetalHost:
    """Upstream Delete's last write: no consumer (or, with node reuse, booked for the Cluster
    with the reuse label), no cluster label, no pause of ours."""
    labels = {k: v for k, v in host.metadata.labels.items() if k != capi.CLUSTER_NAME_LABEL}
    ref: meta.ObjectReference | None = None
    if reuse and cluster is not None:
        labels[NODE_REUSE_LABEL] = reuse
        ref = meta.ObjectReference(api_version=capi.API_VERSION, kind="Cluster",
                                   name=cluster.metadata.name,
                                   namespace=cluster.metadata.namespace)
    annotations = {k: v for k, v in host.metadata.annotations.items()
                   if k != BLOCK_MOVE_ANNOTATION and not (
                       k == bmh.PAUSED_ANNOTATION and v == bmh.PAUSED_BY_CAPM3)}
    return host.with_meta(labels=labels, annotations=annotations).model_copy(
        update={"spec": host.spec.model_copy(update={"consumer_ref": ref})})


def reuse_label(machine: capi.Machine) -> str:
    """Upstream's node-reuse label value for a Machine's hosts: `cp-<control plane>` for a
    control-plane Machine (its controller owner), else `md-<MachineDeployment>`; "" if neither."""
    for ref in machine.metadata.owner_references:
        if ref.kind.endswith("ControlPlane"):
            return f"cp-{ref.name}"
    deployment = machine.metadata.labels.get("cluster.x-k8s.io/deployment-name")
    return f"md-{deployment}" if deployment else ""
