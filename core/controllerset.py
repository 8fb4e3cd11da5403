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

Each controller belongs to a group, as upstream ships three managers: `bmo` (baremetal-operator),
`capm3` (cluster-api-provider-metal3) and `ipam` (ip-address-manager). `metalcubed manager
--controllers bmo,capm3` runs the groups named (`in_groups`); the shipped manifests run one
Deployment per group. Only the `bmo` group uses the provisioner (and the engine's services).

To add a controller: write its Wiring beside its reconciler (core/reconcilers/<kind>.py
`WIRING`), a `_<kind>(deps)` constructor here and a `ControllerDef(WIRING, _<kind>,
group=...)` in `CONTROLLERS` (docs: /work/notes/controllergroups.md during issue 11).
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
    ippool,
    metal3cluster,
    metal3data,
    metal3datatemplate,
    metal3labelsync,
    metal3machine,
    metal3remediation,
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
    host_named_claims: bool = False
    """CAPM3's --enable-bmh-name-based-preallocation: the Metal3Data controller names IPClaims
    `<host>-<pool>` (a pool's preAllocations then pin each host's address)."""


BMO = "bmo"
CAPM3 = "capm3"
IPAM = "ipam"
GROUPS: tuple[str, ...] = (BMO, CAPM3, IPAM)
"""The controller groups, one per upstream project (and per shipped Deployment)."""


@dataclass(frozen=True, slots=True)
class ControllerDef:
    """A controller: what it watches (its Wiring), its reconciler's constructor and the group
    (upstream project) it belongs to."""

    wiring: wiring.Wiring
    new_reconciler: Callable[[Deps], Reconciler]
    group: str = BMO

    def __post_init__(self) -> None:
        if self.group not in GROUPS:
            raise ValueError(f"controller {self.wiring.name}: unknown group {self.group!r} "
                             f"(groups: {', '.join(GROUPS)})")

    @property
    def name(self) -> str:
        return self.wiring.name

    @property
    def uses_provisioner(self) -> bool:
        """Only BMO's controllers drive hardware; CAPM3 and IPAM only read and write objects."""
        return self.group == BMO


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

# --- CAPM3 (cluster-api-provider-metal3) ---------------------------------------------------------


def _metal3cluster(deps: Deps) -> Reconciler:
    return metal3cluster.Metal3ClusterReconciler(store=deps.store, clock=deps.clock)


def _metal3machine(deps: Deps) -> Reconciler:
    return metal3machine.Metal3MachineReconciler(
        store=deps.store, clock=deps.clock, events=deps.events, rng=deps.rng)


def _metal3datatemplate(deps: Deps) -> Reconciler:
    return metal3datatemplate.Metal3DataTemplateReconciler(store=deps.store, clock=deps.clock,
                                                           events=deps.events)


METAL3CLUSTER = ControllerDef(metal3cluster.WIRING, _metal3cluster, group=CAPM3)
METAL3MACHINE = ControllerDef(metal3machine.WIRING, _metal3machine, group=CAPM3)
METAL3DATATEMPLATE = ControllerDef(metal3datatemplate.WIRING, _metal3datatemplate, group=CAPM3)


def _metal3data(deps: Deps) -> Reconciler:
    return metal3data.Metal3DataReconciler(store=deps.store, clock=deps.clock, events=deps.events,
                                           host_named_claims=deps.host_named_claims)


METAL3DATA = ControllerDef(metal3data.WIRING, _metal3data, group=CAPM3)


def _metal3remediation(deps: Deps) -> Reconciler:
    return metal3remediation.Metal3RemediationReconciler(
        store=deps.store, clock=deps.clock, events=deps.events)


METAL3REMEDIATION = ControllerDef(metal3remediation.WIRING, _metal3remediation, group=CAPM3)


def _metal3labelsync(deps: Deps) -> Reconciler:
    return metal3labelsync.Metal3LabelSyncReconciler(store=deps.store, events=deps.events)


METAL3LABELSYNC = ControllerDef(metal3labelsync.WIRING, _metal3labelsync, group=CAPM3)

# --- IPAM (ip-address-manager) -------------------------------------------------------------------


def _ippool(deps: Deps) -> Reconciler:
    return ippool.IPPoolReconciler(
        store=deps.store, clock=deps.clock, events=deps.events, rng=deps.rng)


IPPOOL = ControllerDef(ippool.WIRING, _ippool, group=IPAM)

BMO_CONTROLLERS: tuple[ControllerDef, ...] = (
    BAREMETALHOST, HOSTFIRMWARESETTINGS, PREPROVISIONINGIMAGE, BMCEVENTSUBSCRIPTION,
    HOSTFIRMWARECOMPONENTS, DATAIMAGE,
)
"""BMO's controllers, in upstream main.go's order; the BareMetalHost controller first."""

CONTROLLERS: tuple[ControllerDef, ...] = (
    *BMO_CONTROLLERS,
    METAL3CLUSTER, METAL3MACHINE, METAL3DATATEMPLATE, METAL3DATA, METAL3REMEDIATION,
    METAL3LABELSYNC,
    IPPOOL,
)
"""Every controller of every group: BMO's first (upstream main.go's order), then CAPM3's
(main.go's order: Metal3Cluster, Metal3Machine, Metal3DataTemplate, ...), then IPAM's."""


def in_groups(groups: Iterable[str], controllers: Iterable[ControllerDef] = CONTROLLERS,
              ) -> tuple[ControllerDef, ...]:
    """The controllers of the named groups, in `controllers`' order; an unknown group is a
    ValueError naming it and the known ones."""
    wanted = list(dict.fromkeys(groups))
    unknown = [g for g in wanted if g not in GROUPS]
    if unknown:
        raise ValueError(f"unknown controller group(s) {', '.join(map(repr, unknown))} "
                         f"(groups: {', '.join(GROUPS)})")
    return tuple(c for c in controllers if c.group in wanted)


def group_kinds(controllers: Iterable[ControllerDef]) -> dict[str, tuple[type[meta.Resource], ...]]:
    """Per group, every kind its controllers need a cache of (the CRDs it needs served)."""
    found: dict[str, dict[type[meta.Resource], None]] = {}
    for c in controllers:
        kinds = found.setdefault(c.group, {})
        for kind in c.wiring.kinds:
            kinds[kind] = None
    return {group: tuple(kinds) for group, kinds in found.items()}


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
