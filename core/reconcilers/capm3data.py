"""A Metal3Machine's rendered data: its Metal3DataClaim and the Metal3Data answering it.

Upstream CAPM3 (2f6d76b8 baremetal/metal3machine_manager.go AssociateM3Metadata,
WaitForM3Metadata, DissociateM3Metadata): a machine with `spec.dataTemplate` creates a
Metal3DataClaim named after itself (labels copied, controller-owned by the machine, the machine's
finalizer on it); the Metal3DataTemplate controller answers with a Metal3Data
(`claim.status.renderedData`), the Metal3Data controller renders its Secrets and sets
`status.ready`. On release the claim loses the machine's finalizer and is deleted, which removes
the Metal3Data, its Secrets and its IP claims (the data controllers' part).
"""

from dataclasses import dataclass

from metalcubed.core import outcome, ports
from metalcubed.core.api import meta
from metalcubed.core.api.capm3 import v1beta2 as v2


@dataclass(frozen=True, slots=True)
class Rendered:
    """Where the machine's data stands: `data` once ready, else what it waits for."""

    data: v2.Metal3Data | None
    waiting: str = ""


def claim(store: ports.Store, m3m: v2.Metal3Machine, *, finalizer: str,
          template: v2.ObjectRef) -> v2.Metal3DataClaim | None:
    """The machine's claim; None when it had to be created now (the pass ends there)."""
    try:
        return store.get(v2.Metal3DataClaim, m3m.key)
    except outcome.NotFound:
        pass
    ns = m3m.metadata.namespace
    store.create(v2.Metal3DataClaim(
        metadata=meta.ObjectMeta(
            name=m3m.metadata.name, namespace=ns, labels=dict(m3m.metadata.labels),
            finalizers=(finalizer,),
            owner_references=(meta.OwnerReference(
                api_version=v2.API_VERSION, kind="Metal3Machine", name=m3m.metadata.name,
                uid=m3m.metadata.uid or "", controller=True),)),
        spec=v2.Metal3DataClaimSpec(template=v2.ObjectRef(
            name=template.name, namespace=template.namespace or ns))))
    return None


def rendered(store: ports.Store, found: v2.Metal3DataClaim, template: v2.ObjectRef) -> Rendered:
    """The claim's Metal3Data when ready; else the claim's or the Data's error, or what is
    awaited."""
    status = found.status or v2.Metal3DataClaimStatus()
    ref = status.rendered_data
    data = None
    if ref is not None and ref.name:
        try:
            data = store.get(v2.Metal3Data, meta.ObjectKey(found.metadata.namespace, ref.name))
        except outcome.NotFound:
            data = None
    if data is not None and data.status and data.status.ready:
        return Rendered(data)
    error = status.error_message or (data.status.error_message
                                     if data is not None and data.status else None)
    return Rendered(None, error or f"waiting for the Metal3Data of template {template.name}")


def release(store: ports.Store, m3m: v2.Metal3Machine, *, finalizer: str) -> None:
    """The claim loses the machine's finalizer and is deleted (nothing when there is none)."""
    try:
        found = store.get(v2.Metal3DataClaim, m3m.key)
    except outcome.NotFound:
        return
    if finalizer in found.metadata.finalizers:
        found = store.update(found.with_meta(finalizers=tuple(
            f for f in found.metadata.finalizers if f != finalizer)))
    if found.metadata.deletion_timestamp is None:
        store.delete(v2.Metal3DataClaim, found.key)
