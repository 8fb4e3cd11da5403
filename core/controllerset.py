"""The controllers one manager runs: each a `wiring.Wiring` and how its reconciler is built.

Upstream BMO's main.go sets up several controllers in one manager (BareMetalHost,
HostFirmwareSettings, HostFirmwareComponents, PreprovisioningImage, DataImage,
BMCEventSubscription), all over the same caches, client and provisioner factory. Here that list
is data: `CONTROLLERS`, in order. Every runtime runs it - controllers/manager.py's `compose`
(informers + threaded workqueues) and the fleet model (simulators/fleet/runtime.py) - handing
each entry the same ports (`Deps`), so what the fleet simulates is what ships.

A runtime keeps one cache per kind, shared by every controller that watches or indexes it
(`shared_caches` checks that the controllers agree on each kind's label selector), and one
workqueue and worker pool per controller.

To add a controller: write its Wiring in core/wiring.py, its reconciler in core/reconcilers/,
and append a `ControllerDef` here.
"""

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from metalcubed.core import imageprovider, outcome, ports, wiring
from metalcubed.core.api import meta
from metalcubed.core.reconcilers import (
    bmceventsubscription,
    dataimage,
    hostfirmwarecomponents,
    hostfirmwaresettings,
    hostwork,
    preprovisioningimage,
)
from metalcubed.core.reconcilers import host as host_reconciler


class Reconciler(Protocol):
    """What a runtime calls: one level-triggered pass over one object."""

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Deps:
    """The ports every reconciler is built from, supplied by the runtime. `rng` is the
    controller's own (a runtime builds one per controller: `dataclasses.replace`)."""

    store: ports.Store
    provisioner_factory: ports.ProvisionerFactory
    clock: ports.Clock
    events: ports.EventRecorder
    rng: random.Random
    metrics: ports.Metrics | None = None
    max_provisioning_retries: int = 5
    image_provider: imageprovider.ImageProvider | None = None
    """Who builds PreprovisioningImages (the manager's boot server); None: the
    PreprovisioningImage controller does nothing (as upstream, which does not start it)."""


@dataclass(frozen=True, slots=True)
class ControllerDef:
    """A controller: what it watches (its Wiring) and its reconciler's constructor."""

    wiring: wiring.Wiring
    new_reconciler: Callable[[Deps], Reconciler]

    @property
    def name(self) -> str:
        return self.wiring.name


def _baremetalhost(deps: Deps) -> Reconciler:
    return host_reconciler.BareMetalHostReconciler(
        store=deps.store,
        provisioner_factory=deps.provisioner_factory,
        clock=deps.clock,
        events=deps.events,
        rng=deps.rng,
        config=hostwork.HostReconcilerConfig(
            max_provisioning_retries=deps.max_provisioning_retries
        ),
        metrics=deps.metrics,
    )


BAREMETALHOST = ControllerDef(wiring.BAREMETALHOST, _baremetalhost)


def _dataimage(deps: Deps) -> Reconciler:
    return dataimage.DataImageReconciler(
        store=deps.store, provisioner_factory=deps.provisioner_factory, clock=deps.clock,
        events=deps.events, rng=deps.rng,
    )


def _bmceventsubscription(deps: Deps) -> Reconciler:
    return bmceventsubscription.BMCEventSubscriptionReconciler(
        store=deps.store, provisioner_factory=deps.provisioner_factory, events=deps.events,
    )


def _hostfirmwaresettings(deps: Deps) -> Reconciler:
    return hostfirmwaresettings.HostFirmwareSettingsReconciler(
        store=deps.store, provisioner_factory=deps.provisioner_factory, clock=deps.clock,
        events=deps.events, rng=deps.rng,
    )


def _hostfirmwarecomponents(deps: Deps) -> Reconciler:
    return hostfirmwarecomponents.HostFirmwareComponentsReconciler(
        store=deps.store, provisioner_factory=deps.provisioner_factory, clock=deps.clock,
        events=deps.events, rng=deps.rng,
    )


HOSTFIRMWARESETTINGS = ControllerDef(wiring.HOSTFIRMWARESETTINGS, _hostfirmwaresettings)
HOSTFIRMWARECOMPONENTS = ControllerDef(wiring.HOSTFIRMWARECOMPONENTS, _hostfirmwarecomponents)


def _preprovisioningimage(deps: Deps) -> Reconciler:
    return preprovisioningimage.PreprovisioningImageReconciler(
        store=deps.store, clock=deps.clock, events=deps.events, provider=deps.image_provider,
    )


PREPROVISIONINGIMAGE = ControllerDef(preprovisioningimage.WIRING, _preprovisioningimage)
DATAIMAGE = ControllerDef(dataimage.WIRING, _dataimage)
BMCEVENTSUBSCRIPTION = ControllerDef(bmceventsubscription.WIRING, _bmceventsubscription)

CONTROLLERS: tuple[ControllerDef, ...] = (
    BAREMETALHOST, HOSTFIRMWARESETTINGS, PREPROVISIONINGIMAGE, BMCEVENTSUBSCRIPTION,
    HOSTFIRMWARECOMPONENTS, DATAIMAGE,
)
"""Every controller, in upstream main.go's order; the BareMetalHost controller first."""


def select(names: Iterable[str], controllers: Iterable[ControllerDef] = CONTROLLERS,
           ) -> tuple[ControllerDef, ...]:
    """The named controllers, in `controllers`' order; an unknown name is a ValueError
    listing the known ones."""
    available = {c.name: c for c in controllers}
    wanted = list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in available]
    if unknown:
        raise ValueError(f"unknown controller(s) {', '.join(unknown)} "
                         f"(available: {', '.join(available)})")
    return tuple(c for n, c in available.items() if n in wanted)


def shared_caches(
    controllers: Iterable[ControllerDef],
) -> dict[type[meta.Resource], str | None]:
    """Every kind the controllers need a cache of (watched or indexed), first-seen order, with
    the label selector its one shared cache uses. Two controllers watching one kind with
    different selectors cannot share a cache: a ValueError naming both."""
    selectors: dict[type[meta.Resource], str | None] = {}
    chosen_by: dict[type[meta.Resource], str] = {}
    for c in controllers:
        for kind in c.wiring.kinds:
            selectors.setdefault(kind, None)
        for w in c.wiring.watches:
            previous = chosen_by.get(w.kind)
            if previous is not None and selectors[w.kind] != w.label_selector:
                raise ValueError(
                    f"controllers {previous} and {c.name} watch {w.kind.KIND} with different "
                    f"label selectors ({selectors[w.kind]!r}, {w.label_selector!r}); one "
                    "cache per kind needs one selector")
            selectors[w.kind] = w.label_selector
            chosen_by[w.kind] = c.name
    return selectors


def index_kind(wiring_: wiring.Wiring, name: str) -> type[meta.Resource]:
    """The kind whose cache holds `wiring_`'s index `name` (its mappers' lookups)."""
    for index in wiring_.indexes:
        if index.name == name:
            return index.kind
    raise KeyError(f"controller {wiring_.name} has no index {name!r}")


def shared_indexes(controllers: Iterable[ControllerDef]) -> list[wiring.Index[meta.Resource]]:
    """Every index once (by kind and name). Two controllers declaring one index name on one
    kind with different functions is a ValueError: lookups would disagree."""
    found: dict[tuple[type[meta.Resource], str], wiring.Index[meta.Resource]] = {}
    for c in controllers:
        for index in c.wiring.indexes:
            key = (index.kind, index.name)
            known = found.get(key)
            if known is not None and known.values is not index.values:
                raise ValueError(f"index {index.name!r} on {index.kind.KIND} is declared twice "
                                 f"with different functions (controller {c.name})")
            found.setdefault(key, index)
    return list(found.values())
