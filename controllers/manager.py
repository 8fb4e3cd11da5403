"""Composition of the production manager: which reconciler watches which kinds, which adapter
fills which port (STYLE 2: wiring lives in one function per runtime, never in a reconciler).

The BareMetalHost controller, as upstream BMO's `SetupWithManager` wires it:
- For(BareMetalHost) with upstream's update filter: a host update reconciles only when its
  generation (spec), annotations, finalizers or deletion timestamp changed; status-only
  updates (most of them, written by the controller itself) do not;
- Secrets: a changed Secret reconciles the hosts that use it (spec.bmc.credentialsName, and
  the config-drive references), found through an index on the host cache; no owner
  references or labels are added to users' Secrets;
- HardwareData: a change reconciles its owner host (the BareMetalHost of the same name).
Reads come from informer caches (`CachedStore`), writes go to the API server (`K8sStore`), both
through one client whose QPS/burst limit covers every request of the process.

`compose` is store-agnostic: `build` wires it to a real API server; tests wire it to the
memory store (controllers/memory.py) and drive the same runtime without a cluster.
"""

import logging
import os
import random
import socket
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from metalcubed.controllers import memory
from metalcubed.controllers.kube import (
    client,
    events,
    health,
    informer,
    leader,
    metrics,
    runtime,
    store,
    worker,
)
from metalcubed.core import ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import hardwaredata as hwd
from metalcubed.core.api import meta
from metalcubed.core.provisioning import fixture
from metalcubed.core.reconcilers import host as host_reconciler
from metalcubed.core.reconcilers import hostwork

log = logging.getLogger(__name__)

CONTROLLER_NAME = "baremetalhost"
SECRETS_INDEX = "secrets"
PROVISIONERS = ("fixture",)


def default_concurrency(env: Mapping[str, str] | None = None) -> int:
    """Upstream's getMaxConcurrentReconciles without the flag: $BMO_CONCURRENCY when > 0,
    else the CPU count clamped to [2, 8]."""
    source = os.environ if env is None else env
    raw = source.get("BMO_CONCURRENCY", "")
    if raw:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"BMO_CONCURRENCY={raw!r} is not an integer") from None
        if value > 0:
            return value
    return min(max(os.cpu_count() or 2, 2), 8)


def default_identity() -> str:
    """controller-runtime's leader identity: hostname plus a random suffix."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagerOptions:
    """Everything the manager is configured with (flags and environment, see cli/manager.py)."""

    kubeconfig: str | None = None
    namespace: str | None = None
    """Watch only this namespace (None: all). Upstream: --namespace / $WATCH_NAMESPACE."""
    provisioner: str = "fixture"
    concurrency: int = 2
    kube_api_qps: float = 20.0
    kube_api_burst: int = 30
    metrics_bind_address: str = ":8080"
    health_probe_bind_address: str = ":9440"
    leader_elect: bool = False
    leader_election_namespace: str | None = None
    """Where the Lease lives: $POD_NAMESPACE, else the watch namespace, else "default"."""
    leader_election_id: str = leader.DEFAULT_LEASE_NAME
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0
    max_provisioning_retries: int = 5
    provisioning_limit: int = 20
    """$PROVISIONING_LIMIT: a limit of the Ironic provisioner; the fixture (like upstream's)
    always has capacity, so it is accepted and reported but does not throttle it."""
    identity: str = field(default_factory=default_identity)
    fixture_delays: fixture.FixtureDelays = field(default_factory=fixture.FixtureDelays)


@dataclass(slots=True)
class Composition:
    """The wired parts, kept for tests and for `build`'s caller."""

    manager: runtime.Manager
    controller: worker.Controller
    store: ports.Store
    informers: Sequence[informer.Informer[meta.Resource]]
    provisioner_factory: ports.ProvisionerFactory
    registry: object
    api: client.ThrottledApiClient | None = None
    recorder: events.K8sEventRecorder | None = None


# --- event mapping -------------------------------------------------------------------------------


def host_update_matters(old: bmh.BareMetalHost, new: bmh.BareMetalHost) -> bool:
    """Upstream's updateEventHandler: generation, annotations or finalizers changed (plus the
    deletion timestamp, which the API server also marks with a generation bump)."""
    a, b = old.metadata, new.metadata
    return (
        a.generation != b.generation
        or a.annotations != b.annotations
        or a.finalizers != b.finalizers
        or a.deletion_timestamp != b.deletion_timestamp
    )


def secrets_of(host: bmh.BareMetalHost) -> Iterable[str]:
    """"namespace/name" of every Secret the host reads (index values for the Secret watch)."""
    ns = host.metadata.namespace
    spec = host.spec
    if spec.bmc.credentials_name:
        yield f"{ns}/{spec.bmc.credentials_name}"
    for ref in (spec.user_data, spec.network_data, spec.meta_data):
        if ref is not None and ref.name:
            yield f"{ref.namespace or ns}/{ref.name}"
    if spec.preprovisioning_network_data_name:
        yield f"{ns}/{spec.preprovisioning_network_data_name}"


def owner_host(data: hwd.HardwareData) -> Iterable[meta.ObjectKey]:
    """The BareMetalHost a HardwareData belongs to: its owner, else the host of the same name."""
    owners = [o.name for o in data.metadata.owner_references if o.kind == bmh.BareMetalHost.KIND]
    for name in owners or [data.metadata.name]:
        yield meta.ObjectKey(data.metadata.namespace, name)


# --- composition -------------------------------------------------------------------------------


def compose(
    options: ManagerOptions,
    *,
    backend: ports.Store,
    recorder: ports.EventRecorder,
    registry: object,
    runtime_metrics: metrics.RuntimeMetrics | None,
    bmo_metrics: ports.Metrics,
    elector: leader.LeaderElector | None = None,
    servers: Sequence[health.HttpServer] = (),
    probes: health.Probes | None = None,
    clock: ports.Clock | None = None,
    provisioner_factory: ports.ProvisionerFactory | None = None,
) -> Composition:
    """Wire the BareMetalHost controller over `backend` (any Store) into a Manager.

    `provisioner_factory` replaces the one `options.provisioner` names (the lab, devenv,
    passes the provisioning engine over its emulated BMCs).
    """
    if options.provisioner not in PROVISIONERS:
        raise ValueError(
            f"unknown provisioner {options.provisioner!r} (available: {', '.join(PROVISIONERS)})"
        )
    clock = clock or memory.WallClock()
    ns = options.namespace or None
    hosts = informer.Informer(backend, bmh.BareMetalHost, namespace=ns,
                              runtime_metrics=runtime_metrics)
    secrets = informer.Informer(backend, meta.Secret, namespace=ns,
                                runtime_metrics=runtime_metrics)
    hardware = informer.Informer(backend, hwd.HardwareData, namespace=ns,
                                 runtime_metrics=runtime_metrics)
    caches: list[informer.Informer[meta.Resource]] = [hosts, secrets, hardware]  # type: ignore[list-item]
    cached = informer.CachedStore(backend, caches)
    factory = provisioner_factory or fixture.FixtureBackend(delays=options.fixture_delays)
    reconciler = host_reconciler.BareMetalHostReconciler(
        store=cached,
        provisioner_factory=factory,
        clock=clock,
        events=recorder,
        rng=random.Random(),
        config=hostwork.HostReconcilerConfig(
            max_provisioning_retries=options.max_provisioning_retries
        ),
        metrics=bmo_metrics,
    )
    controller = worker.Controller(
        CONTROLLER_NAME,
        reconciler,
        clock=clock,
        workers=options.concurrency,
        caches=caches,
        runtime_metrics=runtime_metrics,
    )
    hosts.add_index(SECRETS_INDEX, secrets_of)
    hosts.add_handler(worker.enqueue_self(controller.enqueue, update_filter=host_update_matters))

    def hosts_using(secret: meta.Secret) -> Iterable[meta.ObjectKey]:
        value = f"{secret.metadata.namespace}/{secret.metadata.name}"
        return [h.key for h in hosts.by_index(SECRETS_INDEX, value)]

    secrets.add_handler(worker.enqueue_mapped(controller.enqueue, hosts_using))
    hardware.add_handler(worker.enqueue_mapped(controller.enqueue, owner_host))

    probes = probes or health.Probes()

    def synced() -> str | None:
        waiting = [i.kind.KIND for i in caches if not i.has_synced()]
        return f"informers not synced: {', '.join(waiting)}" if waiting else None

    probes.add_ready_check("informers-synced", synced)
    manager = runtime.Manager(elector=elector, servers=servers, probes=probes)
    for cache in caches:
        manager.add(cache)
    if isinstance(recorder, events.K8sEventRecorder):
        manager.add(recorder)
    manager.add(controller)
    return Composition(
        manager=manager,
        controller=controller,
        store=cached,
        informers=caches,
        provisioner_factory=factory,
        registry=registry,
    )


def build(options: ManagerOptions) -> Composition:
    """The production manager against the API server named by `options.kubeconfig`."""
    registry = metrics.new_registry()
    rt = metrics.RuntimeMetrics(registry)
    bmo_metrics = metrics.PrometheusMetrics(registry)
    configuration = client.load_configuration(options.kubeconfig)
    api = client.new_client(
        configuration,
        qps=options.kube_api_qps,
        burst=options.kube_api_burst,
        # workers + 3 watches + 2 event senders + headroom
        connections=options.concurrency + 8,
        runtime_metrics=rt,
    )
    backend = store.K8sStore(api)
    recorder = events.K8sEventRecorder(
        api, reporting_instance=options.identity, runtime_metrics=rt
    )
    elector = None
    if options.leader_elect:
        lease_ns = (
            options.leader_election_namespace or options.namespace or "default"
        )
        # Its own client and token bucket, as controller-runtime does: a renewal must never
        # queue behind a hundred workers' writes and miss the renew deadline.
        lease_api = client.new_client(
            client.load_configuration(options.kubeconfig),
            qps=options.kube_api_qps, burst=options.kube_api_burst, connections=2,
            runtime_metrics=rt,
        )
        elector = leader.LeaderElector(
            lease_api,
            leader.LeaseConfig(
                namespace=lease_ns,
                identity=options.identity,
                name=options.leader_election_id,
                lease_duration_s=options.lease_duration_s,
                renew_deadline_s=options.renew_deadline_s,
                retry_period_s=options.retry_period_s,
            ),
            runtime_metrics=rt,
        )
    probes = health.Probes()
    servers = []
    metrics_at = health.parse_address(options.metrics_bind_address)
    if metrics_at is not None:
        servers.append(health.HttpServer(metrics_at, health.metrics_route(registry),
                                         name="metrics"))
    probes_at = health.parse_address(options.health_probe_bind_address)
    if probes_at is not None:
        servers.append(health.HttpServer(probes_at, probes.routes(), name="health"))
    composition = compose(
        options,
        backend=backend,
        recorder=recorder,
        registry=registry,
        runtime_metrics=rt,
        bmo_metrics=bmo_metrics,
        elector=elector,
        servers=servers,
        probes=probes,
    )
    composition.api = api
    composition.recorder = recorder
    return composition
