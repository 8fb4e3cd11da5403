"""The Metal3DataTemplate controller, first part: an index and a Metal3Data per claim.

Upstream (CAPM3 2f6d76b8 baremetal/metal3datatemplate_manager.go `UpdateDatas`): one pass per
template handles all its Metal3DataClaims in the namespace, so indexes are serialised per
template; the Metal3Data name `<template>-<index>` is the lock between writers (an
AlreadyExists ends the pass and it is retried).

1. No template: done. `status.indexes` is rebuilt from the Metal3Data objects of the template
   (the truth), as upstream.
2. Each claim of the template, in name order:
   - deleting: its Metal3Data loses our finalizer and is deleted, then the claim loses ours;
   - already rendered (`status.renderedData`): nothing;
   - its Cluster is paused (`spec.paused` of the Cluster named by its cluster-name label): left
     alone, looked at again in 30 s. A pivoted cluster must not get fresh indexes for claims
     whose original Metal3Data are still on their way (upstream #3603);
   - otherwise: our finalizer; the index it already has (a Metal3Data naming it), else the
     lowest free one; the Metal3Data `<template>-<index>` (owned by the claim, as controller,
     and by the claim's Metal3Machine); `status.renderedData` names it.
   A Metal3Data whose claim no longer exists (force-deleted) is deleted: nothing leaks.
3. Deleting the template: claims left -> wait; Metal3Data left -> look again in 30 s; then the
   finalizer goes.
4. No template of that name (never created, or force-deleted): its claims being deleted are
   released (nothing leaks); the others get `status.errorMessage` "Metal3DataTemplate X not
   found" and a Warning Event (upstream leaves them waiting without a word).
The Metal3Machine ownerRef copied onto the Metal3Data is a plain one (the claim is the
controller), as upstream. Rendering the Metal3Data's Secrets is the Metal3Data controller's part
(core/reconcilers/metal3data.py).
"""

import contextlib

from metalcubed.core import outcome, ports, wiring
from metalcubed.core.api import capi, meta
from metalcubed.core.api.capm3 import v1beta2 as v2

TEMPLATE_FINALIZER = "metal3datatemplate.infrastructure.cluster.x-k8s.io"
CLAIM_FINALIZER = "metal3dataclaim.infrastructure.cluster.x-k8s.io"
"""On claims and on Metal3Data (upstream uses the claim's for both)."""
REQUEUE_S = 30.0


def data_name(template: str, index: int) -> str:
    """The Metal3Data name upstream's webhook enforces."""
    return f"{template}-{index}"


def lowest_free(taken: set[int]) -> int:
    """The smallest index >= 0 not in `taken` (upstream fills gaps before appending)."""
    index = 0
    while index in taken:
        index += 1
    return index


def _claimed_by(data: v2.Metal3Data, uid: str | None) -> bool:
    """The Data's claim is this one, not an earlier claim of the same name (a re-created
    machine): the controlling owner's uid, when both are known."""
    owner = next((r.uid for r in data.metadata.owner_references
                  if r.kind == "Metal3DataClaim" and r.uid), None)
    return owner is None or not uid or owner == uid


def _template_of(obj: v2.Metal3DataClaim | v2.Metal3Data, _lookup: wiring.IndexLookup
                 ) -> list[meta.ObjectKey]:
    """A claim or Metal3Data change queues its template (same namespace)."""
    ref = obj.spec.template if obj.spec else None
    if ref is None or not ref.name:
        return []
    return [meta.ObjectKey(obj.metadata.namespace, ref.name)]


WIRING = wiring.Wiring(
    name="metal3datatemplate",
    kind=v2.Metal3DataTemplate,
    watches=(wiring.Watch(v2.Metal3DataTemplate, wiring.own_key),
             wiring.Watch(v2.Metal3DataClaim, _template_of),
             wiring.Watch(v2.Metal3Data, _template_of)),
    indexes=(),
)
"""Upstream's watches. Not in controllerset.CONTROLLERS yet (needs the CAPM3 CRDs)."""


class Metal3DataTemplateReconciler:
    def __init__(self, *, store: ports.Store, clock: ports.Clock,
                 events: ports.EventRecorder | None = None) -> None:
        self._store = store
        self._clock = clock
        self._events = events

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        try:
            template = self._store.get(v2.Metal3DataTemplate, key)
        except outcome.NotFound:
            try:
                self._without_template(key)
            except outcome.Conflict:
                return outcome.Outcome.after(0.0)
            return outcome.Outcome.done()
        try:
            return self._reconcile(template)
        except outcome.Conflict:
            return outcome.Outcome.after(0.0)  # a name or resourceVersion race: look again

    def _without_template(self, key: meta.ObjectKey) -> None:
        """Claims naming a template that does not exist: a claim being deleted is released
        (the template was force-deleted: its Metal3Data must not leak); a waiting one says why
        (`status.errorMessage` and a Warning Event, once), and is served when the template
        is created (the template's watch brings it here)."""
        datas = {d.metadata.name: d
                 for d in self._store.list(v2.Metal3Data, namespace=key.namespace)
                 if d.spec is not None and d.spec.template is not None
                 and d.spec.template.name == key.name}
        message = f"Metal3DataTemplate {key.name} not found"
        for claim in self._store.list(v2.Metal3DataClaim, namespace=key.namespace):
            if claim.spec is None or claim.spec.template is None or (
                    claim.spec.template.name != key.name):
                continue
            if claim.metadata.deletion_timestamp is not None:
                self._release(claim, datas)
                continue
            status = claim.status or v2.Metal3DataClaimStatus()
            if status.rendered_data is not None or status.error_message == message:
                continue
            if self._events is not None:
                self._events.record(claim, type=ports.EventType.WARNING,
                                    reason="TemplateNotFound", message=message)
            self._store.update_status(claim.model_copy(update={
                "status": status.model_copy(update={"error_message": message})}))

    def _reconcile(self, template: v2.Metal3DataTemplate) -> outcome.Outcome:
        name, namespace = template.metadata.name, template.metadata.namespace
        datas = {d.metadata.name: d
                 for d in self._store.list(v2.Metal3Data, namespace=namespace)
                 if d.spec is not None and d.spec.template is not None
                 and d.spec.template.name == name}
        claims = sorted((c for c in self._store.list(v2.Metal3DataClaim, namespace=namespace)
                         if c.spec is not None and c.spec.template is not None
                         and c.spec.template.name == name), key=lambda c: c.metadata.name)
        live = {c.metadata.name: c.metadata.uid for c in claims}
        # Indexes whose Metal3Data still exists, deleting or not: its name is taken until it
        # is gone (a new claim must not get an index whose create would be refused).
        occupied = {d.spec.index for d in datas.values()
                    if d.spec is not None and d.spec.index is not None}
        for data_name_, data in list(datas.items()):
            claim_ref = data.spec.claim if data.spec else None
            if data.metadata.deletion_timestamp is not None or claim_ref is None or (
                    claim_ref.name not in live) or not _claimed_by(data, live[claim_ref.name]):
                self._drop(data)  # its claim is gone (force-deleted): nothing may leak
                del datas[data_name_]
        deleting = template.metadata.deletion_timestamp is not None
        if not deleting and TEMPLATE_FINALIZER not in template.metadata.finalizers:
            template = self._store.update(template.with_meta(
                finalizers=(*template.metadata.finalizers, TEMPLATE_FINALIZER)))
        later = False
        for claim in claims:
            if claim.metadata.deletion_timestamp is not None:
                self._release(claim, datas)
            elif not deleting:
                later |= self._render(template, claim, datas, occupied)
        self._write_status(template, datas)
        if deleting:
            if any(c.metadata.deletion_timestamp is None for c in claims):
                return outcome.Outcome.done()  # a claim's deletion brings us back
            if datas:
                return outcome.Outcome.after(REQUEUE_S)
            self._store.update(template.with_meta(finalizers=tuple(
                f for f in template.metadata.finalizers if f != TEMPLATE_FINALIZER)))
            return outcome.Outcome.done()
        return outcome.Outcome.after(REQUEUE_S) if later else outcome.Outcome.done()

    def _paused(self, claim: v2.Metal3DataClaim) -> bool:
        cluster = claim.metadata.labels.get(capi.CLUSTER_NAME_LABEL)
        if not cluster:
            return False
        try:
            found = self._store.get(capi.Cluster, meta.ObjectKey(claim.metadata.namespace,
                                                                 cluster))
        except outcome.NotFound:
            return False
        return bool(found.spec.paused)

    def _render(self, template: v2.Metal3DataTemplate, claim: v2.Metal3DataClaim,
                datas: dict[str, v2.Metal3Data], occupied: set[int]) -> bool:
        """Give `claim` its Metal3Data; True when it must be looked at again later."""
        if claim.status is not None and claim.status.rendered_data is not None:
            return False
        if self._paused(claim):
            return True
        if CLAIM_FINALIZER not in claim.metadata.finalizers:
            claim = self._store.update(claim.with_meta(
                finalizers=(*claim.metadata.finalizers, CLAIM_FINALIZER)))
        mine = next((d for d in datas.values() if d.spec is not None and d.spec.claim is not None
                     and d.spec.claim.name == claim.metadata.name), None)
        if mine is None:
            index = lowest_free(occupied)
            mine = self._store.create(self._data(template, claim, index))
            occupied.add(index)
            datas[mine.metadata.name] = mine
        status = (claim.status or v2.Metal3DataClaimStatus()).model_copy(update={
            "rendered_data": v2.ObjectRef(name=mine.metadata.name,
                                          namespace=mine.metadata.namespace),
            "error_message": None})
        self._store.update_status(claim.model_copy(update={"status": status}))
        return False

    def _data(self, template: v2.Metal3DataTemplate, claim: v2.Metal3DataClaim,
              index: int) -> v2.Metal3Data:
        namespace = template.metadata.namespace
        owners = [meta.OwnerReference(api_version=v2.API_VERSION, kind="Metal3DataClaim",
                                      name=claim.metadata.name, uid=claim.metadata.uid or "",
                                      controller=True)]
        owners += [r.model_copy(update={"controller": None, "block_owner_deletion": None})
                   for r in claim.metadata.owner_references if r.kind == "Metal3Machine"]
        return v2.Metal3Data(
            metadata=meta.ObjectMeta(name=data_name(template.metadata.name, index),
                                     namespace=namespace, labels=dict(claim.metadata.labels),
                                     finalizers=(CLAIM_FINALIZER,),
                                     owner_references=tuple(owners)),
            spec=v2.Metal3DataSpec(
                index=index,
                template=v2.ObjectRef(name=template.metadata.name, namespace=namespace),
                claim=v2.ObjectRef(name=claim.metadata.name, namespace=namespace)))

    def _drop(self, data: v2.Metal3Data) -> None:
        """Delete a Metal3Data, our finalizer first."""
        if CLAIM_FINALIZER in data.metadata.finalizers:
            try:
                self._store.update(data.with_meta(finalizers=tuple(
                    f for f in data.metadata.finalizers if f != CLAIM_FINALIZER)))
            except outcome.NotFound:
                return
        with contextlib.suppress(outcome.NotFound):
            self._store.delete(v2.Metal3Data, data.key)

    def _release(self, claim: v2.Metal3DataClaim, datas: dict[str, v2.Metal3Data]) -> None:
        for name, data in list(datas.items()):
            if data.spec is None or data.spec.claim is None or (
                    data.spec.claim.name != claim.metadata.name):
                continue
            self._drop(data)
            del datas[name]
        if CLAIM_FINALIZER in claim.metadata.finalizers:
            with contextlib.suppress(outcome.NotFound):
                self._store.update(claim.with_meta(finalizers=tuple(
                    f for f in claim.metadata.finalizers if f != CLAIM_FINALIZER)))

    def _write_status(self, template: v2.Metal3DataTemplate,
                      datas: dict[str, v2.Metal3Data]) -> None:
        entries = tuple(sorted(
            (v2.IndexEntry(name=d.spec.claim.name or "", index=d.spec.index)
             for d in datas.values()
             if d.spec is not None and d.spec.claim is not None and d.spec.index is not None
             and d.metadata.deletion_timestamp is None),
            key=lambda e: (e.index, e.name)))
        status = template.status or v2.Metal3DataTemplateStatus()
        if (status.indexes or ()) == entries and template.status is not None:
            return
        new = status.model_copy(update={"indexes": entries or None,
                                        "last_updated": meta.format_time(self._clock.now())})
        current = self._store.get(v2.Metal3DataTemplate, template.key)
        self._store.update_status(current.model_copy(update={"status": new}))
