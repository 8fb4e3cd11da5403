"""The one composition of the production controller runtime (STYLE 2): `compose` builds it from
its adapters (store, clock, provisioner, BMC drivers, the engine's agent API and boot server),
and `metalcubed manager`, the devenv lab and the tests all call it; nothing else wires watches.

Which controllers run is core/controllerset.py's `CONTROLLERS` (BareMetalHost and the others
upstream's manager runs); what each watches, how each change becomes workqueue keys and how a
pass's result becomes a queue action are core/wiring.py's (the same data the fleet model runs):
here they are only bound to informers and threaded workqueues. One informer per kind serves
every controller that needs the kind; each controller has its own workqueue and workers.
Reads come from informer caches (`CachedStore`), writes go to the backing store (`K8sStore` or
the memory store), through one client whose QPS/burst limit covers every request.
The Secret cache holds only Secrets labelled `environment.metal3.io=baremetal` (its watch uses
the label selector); a host's first read of an unlabelled Secret reads it by name and labels it
(controllers/kube/secrets.py), so no unrelated Secret is ever listed or read.

Provisioners (`--provisioner`):
- `engine` (default): core/provisioning's engine over the production BMC drivers
  (controllers/bmc/hardware.py), with the services hosts reach (controllers/engine_services.py:
  the Ironic-compatible agent API and the boot server for per-host virtual-media ISOs). Its
  busy-host count for PROVISIONING_LIMIT comes from the informer cache;
- `fixture`: upstream's test provisioner (no hardware), its delays scaled by the options.

`build` wires `compose` to a real API server; tests and the lab wire it to the memory store.
"""

import dataclasses
import ipaddress
import logging
import os
import random
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import urllib3
import yaml
from kubernetes import client as k8s_client

from metalcubed.controllers import engine_services, imageprovider, memory
from metalcubed.controllers.bmc import hardware
from metalcubed.controllers.kube import (
    capm3crds,
    certs,
    client,
    events,
    health,
    informer,
    leader,
    metrics,
    metricsauth,
    runtime,
    secrets,
    store,
    webhook,
    worker,
)
from metalcubed.core import bmc, controllerset, outcome, ports, wiring
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta
from metalcubed.core.api.capm3 import conversion as capm3_conversion
from metalcubed.core.provisioning import context, engine, fixture

log = logging.getLogger(__name__)

CONTROLLER_NAME = wiring.CONTROLLER_NAME
PROVISIONERS = ("engine", "fixture")
DEFAULT_AGENT_API_BIND = f":{engine_services.DEFAULT_API_PORT}"
"""Ironic's API port: where deploy agents look their node up and heartbeat."""
DEFAULT_BOOT_SERVER_BIND = f":{engine_services.DEFAULT_BOOT_PORT}"
"""Metal3's ironic-image httpd port (boot ISOs, images)."""
DEFAULT_METRICS_BIND = "127.0.0.1:8080"
"""Loopback, as upstream's kube-rbac-proxy-era default: plain /metrics is for the Pod itself;
`--metrics-secure` serves it to authorized callers elsewhere."""
DEFAULT_HEALTH_BIND = ":9440"
"""Every interface: the kubelet calls the probes on the Pod's IP (plain HTTP, no data)."""
MAX_CONCURRENCY = 256
"""The most reconcile workers `--concurrency` / $BMO_CONCURRENCY may ask for: each is a thread
with an API connection; past this a manager spends its time switching threads."""


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
    provisioner: str = "engine"
    concurrency: int = 2
    kube_api_qps: float = 20.0
    kube_api_burst: int = 30
    metrics_bind_address: str = DEFAULT_METRICS_BIND
    health_probe_bind_address: str = DEFAULT_HEALTH_BIND
    metrics_secure: bool = False
    """HTTPS and TokenReview/SubjectAccessReview in front of /metrics (controllers/kube/
    metricsauth.py)."""
    metrics_cert_file: Path | None = None
    """The metrics serving certificate; None (with metrics_secure): a self-signed one."""
    metrics_key_file: Path | None = None
    leader_elect: bool = False
    leader_election_namespace: str | None = None
    """Where the Lease lives: $POD_NAMESPACE, else the watch namespace, else "default"."""
    leader_election_id: str = leader.DEFAULT_LEASE_NAME
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0
    max_provisioning_retries: int = 5
    provisioning_limit: int = 20
    """$PROVISIONING_LIMIT: hosts busy at once on PXE boot interfaces (the engine counts them
    from the informer cache); the fixture (like upstream's) always has capacity."""
    identity: str = field(default_factory=default_identity)
    fixture_delays: fixture.FixtureDelays = field(default_factory=fixture.FixtureDelays)
    # --- the engine's services (provisioner "engine") ---
    agent_api_bind_address: str = DEFAULT_AGENT_API_BIND
    """Where the agent API (Ironic's lookup and heartbeat API) listens, host:port."""
    agent_api_url: str = ""
    """The agent API URL hosts use; "" derives it from a concrete bind address."""
    boot_server_bind_address: str = DEFAULT_BOOT_SERVER_BIND
    """Where the boot server (per-host virtual-media ISOs) listens, host:port."""
    boot_server_url: str = ""
    """The boot server URL BMCs fetch ISOs from; "" derives it from a concrete bind address."""
    deploy_iso_url: str = ""
    """$DEPLOY_ISO_URL"""
    deploy_kernel_url: str = ""
    """$DEPLOY_KERNEL_URL"""
    deploy_ramdisk_url: str = ""
    """$DEPLOY_RAMDISK_URL"""
    boot_files_dir: Path | None = None
    """Files the boot server also serves under /files/ (e.g. OS images); None: none."""
    agent_timeout_s: float = 300.0
    """A deploy agent whose last heartbeat is older than this is gone."""
    engine: context.EngineConfig = field(default_factory=context.EngineConfig)
    """Engine timings (deploy_iso_url and provisioning_limit are taken from the above)."""
    # --- admission webhooks (controllers/kube/webhook.py, docs/webhooks.md) ---
    webhook_port: int = 0
    """HTTPS port of the webhook server; 0: no webhooks (the Deployment serves them on 9443)."""
    webhook_host: str = ""
    """Where it listens; "": every interface (controller-runtime's default)."""
    webhook_cert_dir: Path | None = None
    """Mounted tls.crt/tls.key (cert-manager); None: the self-managed Secret."""
    webhook_cert_secret: str = certs.DEFAULT_SECRET
    webhook_service: str = webhook.SERVICE_NAME
    """The Service the API server calls: its names go into the self-managed certificate."""
    webhook_cert_names: tuple[str, ...] = ()
    """More names (DNS or IP) for the self-managed certificate, e.g. 127.0.0.1."""
    webhook_configuration: str = webhook.CONFIGURATION_NAME
    """The ValidatingWebhookConfiguration whose caBundle the manager writes; "": none."""
    # --- which controllers (core/controllerset groups) ---
    host_named_claims: bool = False
    """CAPM3's --enable-bmh-name-based-preallocation (IPClaims named <host>-<pool>)."""
    controllers: tuple[str, ...] | None = None
    """The controller groups to run (`--controllers`: bmo, capm3, ipam). None: every group
    whose CRDs the API server serves (a group missing some is skipped, with a warning); named
    groups must have their CRDs served (else `build` raises naming them)."""


@dataclass(slots=True)
class Composition:
    """The wired parts, kept for tests and for `build`'s caller."""

    manager: runtime.Manager
    controller: worker.Controller
    """The BareMetalHost controller (the first one when it is not composed)."""
    controllers: Mapping[str, worker.Controller]
    """Every composed controller by name (core/controllerset), in order."""
    store: ports.Store
    informers: Sequence[informer.Informer[meta.Resource]]
    provisioner_factory: ports.ProvisionerFactory
    registry: object
    api: client.ThrottledApiClient | None = None
    recorder: events.K8sEventRecorder | None = None
    services: "EngineRunnable | None" = None
    """The engine's services (agent API, boot server, node table), provisioner "engine"."""


# --- the engine ----------------------------------------------------------------------------------


def production_drivers() -> engine.DriverFor:
    """The BMC drivers per `spec.bmc.address` scheme (controllers/bmc/hardware.py), each
    hardware type composed once and shared by every host of that type."""
    composed: dict[str, bmc.Driver] = {}
    lock = threading.Lock()

    def driver(access: bmc.BmcAccess) -> bmc.Driver:
        kind = hardware.for_address(access)
        with lock:
            found = composed.get(kind.name)
            if found is None:
                found = composed[kind.name] = kind.compose()
            return found

    return driver


def _listen(flag: str, address: str) -> tuple[str, int]:
    try:
        at = health.parse_address(address)
    except ValueError:
        at = None
    if at is None or not 0 <= at[1] <= 65535:
        raise ValueError(f"{flag}: {address!r} is not host:port")
    return at


def _url(flag: str, url: str) -> str:
    if url:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{flag}: {url!r} is not an http(s) URL")
    return url.rstrip("/")


def engine_service_config(options: ManagerOptions) -> engine_services.EngineServiceConfig:
    """The engine's settings from the manager's; a bad value is a ValueError naming its flag
    or variable. A wildcard bind address needs the URL hosts use: hosts cannot reach 0.0.0.0."""
    api_host, api_port = _listen("--agent-api-bind-address", options.agent_api_bind_address)
    boot_host, boot_port = _listen("--boot-server-bind-address",
                                   options.boot_server_bind_address)
    api_url = _url("--agent-api-url", options.agent_api_url)
    boot_url = _url("--boot-server-url", options.boot_server_url)
    wildcard = ("0.0.0.0", "::", "")
    if not api_url and api_host in wildcard:
        raise ValueError("--agent-api-url is required when --agent-api-bind-address listens on "
                         f"every interface ({options.agent_api_bind_address}): hosts need an "
                         "address they can reach")
    if not boot_url and boot_host in wildcard:
        raise ValueError("--boot-server-url is required when --boot-server-bind-address listens "
                         f"on every interface ({options.boot_server_bind_address}): BMCs need an "
                         "address they can reach")
    for name, value in (("DEPLOY_ISO_URL", options.deploy_iso_url),
                        ("DEPLOY_KERNEL_URL", options.deploy_kernel_url),
                        ("DEPLOY_RAMDISK_URL", options.deploy_ramdisk_url)):
        _url(name, value)
    if bool(options.deploy_kernel_url) != bool(options.deploy_ramdisk_url):
        raise ValueError("DEPLOY_KERNEL_URL and DEPLOY_RAMDISK_URL go together: set both or "
                         "neither")
    if options.provisioning_limit < 1:
        raise ValueError(f"PROVISIONING_LIMIT={options.provisioning_limit} must be >= 1")
    return engine_services.EngineServiceConfig(
        api_host=api_host, api_port=api_port, api_external_url=api_url,
        boot_host=boot_host, boot_port=boot_port, boot_external_url=boot_url,
        static_dir=options.boot_files_dir,
        deploy_iso_url=options.deploy_iso_url,
        deploy_kernel_url=options.deploy_kernel_url,
        deploy_ramdisk_url=options.deploy_ramdisk_url,
        provisioning_limit=options.provisioning_limit,
        agent_timeout_s=options.agent_timeout_s,
        engine=options.engine,
    )


class EngineRunnable:
    """Runs the engine's services for the manager: starts them (binding their ports) before
    the controller's first pass, stops them at shutdown. The ProvisionerFactory the reconciler
    gets; until the services run it raises ProvisionerNotReady (upstream's ErrNotReady).

    It needs leadership: only the leader answers agents (its node table is the one the engine
    drives). Its readiness check fails only while the leader's services are not up: a standby
    stays ready, so a rolling update (which waits for the new Pod to be ready before it stops
    the old leader) never deadlocks.
    """

    name = "engine-services"
    need_leader_election = True

    def __init__(self, services: engine_services.EngineServices) -> None:
        self.services = services
        self.started = threading.Event()
        self._ended = threading.Event()
        self._leading = threading.Event()

    def run(self, stop: threading.Event) -> None:
        self._leading.set()
        try:
            self.services.start()
        except OSError as err:
            self._ended.set()
            cfg = self.services.config
            raise OSError(f"engine services cannot listen (agent API {cfg.api_host}:"
                          f"{cfg.api_port}, boot server {cfg.boot_host}:{cfg.boot_port}): "
                          f"{err}") from err
        except BaseException:
            self._ended.set()
            raise
        self.started.set()
        try:
            stop.wait()
        finally:
            self.started.clear()
            self.services.stop()
            self._ended.set()

    def wait_synced(self, stop: threading.Event, timeout_s: float | None = None) -> bool:
        """The controller waits for this as for a cache: False when stopped or failed."""
        waited = 0.0
        while not self.started.wait(0.05):
            waited += 0.05
            if stop.is_set() or self._ended.is_set():
                return False
            if timeout_s is not None and waited >= timeout_s:
                return False
        return True

    def ready(self) -> str | None:
        """Readiness: a leader whose services are not (or no longer) up is not ready."""
        if self._leading.is_set() and not self.started.is_set():
            return "engine services not running"
        return None

    def new_provisioner(
        self, host: ports.HostData, publish: Callable[[str, str], None]
    ) -> ports.Provisioner:
        if not self.started.is_set():
            raise outcome.ProvisionerNotReady("the engine's services are starting")
        return self.services.engine.new_provisioner(host, publish)


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
    drivers: engine.DriverFor | None = None,
    controllers: Sequence[controllerset.ControllerDef] = controllerset.BMO_CONTROLLERS,
) -> Composition:
    """Wire `controllers` (core/controllerset; by default BMO's: BareMetalHost and the others
    upstream's BMO manager runs; `build` picks them by `options.controllers`) over `backend`
    (any Store) into one Manager. Only when one of them uses the provisioner (group bmo) is
    one built (and the engine's services started).

    One informer per kind, shared by every controller that watches or indexes it, and one
    CachedStore over them all; per controller a workqueue with `options.concurrency` workers
    (upstream's maxConcurrency for each controller). The adapters: `backend` and `recorder`,
    the `clock` (wall clock by default), and the provisioner `options.provisioner` names, the
    engine over `drivers` (the production BMC drivers by default) or the fixture, shared by
    every controller. `provisioner_factory`, when given, replaces it (tests of one reconciler
    path). Raises ValueError naming the flag or variable of a bad option.
    """
    if options.provisioner not in PROVISIONERS:
        raise ValueError(
            f"--provisioner: unknown provisioner {options.provisioner!r} "
            f"(available: {', '.join(PROVISIONERS)})"
        )
    if not controllers:
        raise ValueError("compose: no controllers to run")
    clock = clock or memory.WallClock()
    ns = options.namespace or None
    caches: list[informer.Informer[meta.Resource]] = [
        informer.Informer(backend, kind, namespace=ns, runtime_metrics=runtime_metrics,
                          label_selector=selector)
        for kind, selector in controllerset.shared_caches(controllers).items()
    ]
    by_kind = {cache.kind: cache for cache in caches}
    on_miss: dict[type[meta.Resource], informer.MissHandler] = {}
    if by_kind.get(meta.Secret) is not None and by_kind[meta.Secret].label_selector:
        # Only labelled Secrets are cached; a referenced one is read by name and labelled the
        # first time a host needs it (controllers/kube/secrets.py).
        secret_cache = cast("informer.Informer[meta.Secret]", by_kind[meta.Secret])
        on_miss[meta.Secret] = secrets.claimer(backend, secret_cache)
    cached = informer.CachedStore(backend, caches, on_miss=on_miss)
    services: EngineRunnable | None = None
    factory: ports.ProvisionerFactory
    if provisioner_factory is not None:
        factory = provisioner_factory
    elif not any(c.uses_provisioner for c in controllers):
        # A CAPM3 or IPAM manager: no hardware, no engine services, no ports bound.
        factory = _NoProvisioner()
    elif options.provisioner == "engine":

        def store_hosts() -> list[bmh.BareMetalHost]:
            # The busy-host count for PROVISIONING_LIMIT, asked on every pass: the cache.
            return cached.list(bmh.BareMetalHost, namespace=ns)

        services = EngineRunnable(engine_services.EngineServices(
            clock=clock, drivers=drivers or production_drivers(), store_hosts=store_hosts,
            config=engine_service_config(options),
        ))
        factory = services
    else:
        factory = fixture.FixtureBackend(delays=options.fixture_delays)
    deps = controllerset.Deps(
        store=cached,
        provisioner_factory=factory,
        clock=clock,
        events=recorder,
        rng=random.Random(),
        metrics=bmo_metrics,
        max_provisioning_retries=options.max_provisioning_retries,
        image_provider=(imageprovider.BootImageProvider(services.services.boot)
                        if services is not None else None),
        host_named_claims=options.host_named_claims,
    )
    if services is not None:
        services.services.boot.network_data_name = imageprovider.network_data_names(
            lambda key: cached.get(bmh.BareMetalHost, key))
    for index in controllerset.shared_indexes(controllers):
        by_kind[index.kind].add_index(index.name, index.values)
    running: dict[str, worker.Controller] = {}
    for definition in controllers:
        controller_wiring = definition.wiring
        waits: list[worker.Syncable] = [by_kind[kind] for kind in controller_wiring.kinds]
        if services is not None and definition.uses_provisioner:
            waits.append(services)
        controller = worker.Controller(
            controller_wiring.name,
            definition.new_reconciler(dataclasses.replace(deps, rng=random.Random())),
            clock=clock,
            workers=options.concurrency,
            caches=waits,
            runtime_metrics=runtime_metrics,
        )
        lookup = _index_lookup(controller_wiring, by_kind)
        for watch in controller_wiring.watches:
            by_kind[watch.kind].add_handler(
                worker.enqueue_changes(controller.enqueue, watch, lookup))
        running[controller_wiring.name] = controller

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
    if services is not None:
        probes.add_ready_check("engine-services", services.ready)
        manager.add(services)
    for controller in running.values():
        manager.add(controller)
    return Composition(
        manager=manager,
        controller=running.get(wiring.CONTROLLER_NAME) or next(iter(running.values())),
        controllers=running,
        store=cached,
        informers=caches,
        provisioner_factory=factory,
        registry=registry,
        services=services,
    )


class _NoProvisioner:
    """The provisioner factory of a manager without BMO's controllers: nobody may call it."""

    def new_provisioner(
        self, host: ports.HostData, publish: Callable[[str, str], None]
    ) -> ports.Provisioner:
        raise RuntimeError("this manager runs no BareMetalHost controller (--controllers has "
                           "no bmo group): it has no provisioner")


def selected_controllers(
    groups: Sequence[str] | None, served: Callable[[type[meta.Resource]], bool],
    allowed: Callable[[type[meta.Resource]], bool] | None = None,
) -> tuple[controllerset.ControllerDef, ...]:
    """The controllers of `groups` (None: every group) whose kinds `served` says the API server
    serves and `allowed` says this identity may list and watch. A named group missing either is
    a ValueError naming the kinds and the flag; without `groups` such a group is left out with a
    warning (a cluster without Cluster API, or the BMO Deployment's ServiceAccount, still gets
    its BareMetalHost controllers)."""
    chosen = controllerset.in_groups(controllerset.GROUPS if groups is None else groups)
    left_out: set[str] = set()
    for group, kinds in controllerset.group_kinds(chosen).items():
        for test, problem, remedy in (
            (served, "the API server does not serve",
             "install the CRDs (controllers/manifests/crds; Cluster API core for "
             "cluster.x-k8s.io)"),
            (allowed, "this identity may not list and watch",
             "grant them (controllers/manifests/<group>/rbac.yaml)"),
        ):
            if test is None:
                continue
            missing = [k for k in kinds if not test(k)]
            if not missing:
                continue
            names = ", ".join(f"{k.PLURAL}.{k.API_VERSION.rpartition('/')[0] or 'core'} "
                              f"({k.API_VERSION})" for k in missing)
            if groups is not None:
                raise ValueError(f"--controllers {group}: {problem} {names}: {remedy} or leave "
                                 "the group out of --controllers")
            log.warning("not running the %s controllers: %s %s (%s, or pass --controllers to "
                        "choose groups)", group, problem, names, remedy)
            left_out.add(group)
            break
    chosen = tuple(c for c in chosen if c.group not in left_out)
    if not chosen:
        raise ValueError("--controllers: no controller group can run (their CRDs are not "
                         "served, or this identity may not read them)")
    return chosen


START_RETRY_S = (1.0, 2.0, 4.0, 8.0, 15.0)
"""Pauses between start-time API requests (discovery, access reviews) that found no API server:
about half a minute, then the manager exits naming the server (the Pod restarts)."""


def _start_request(api: client.ThrottledApiClient, path: str, method: str, what: str,
                   body: object = None, sleep: Callable[[float], None] = time.sleep,
                   ) -> dict[str, Any]:
    """One start-time request, retried while the API server cannot be reached; 404 is {}.
    OSError naming the server and `what` when it stays unreachable or answers an error."""
    for pause in (*START_RETRY_S, None):
        try:
            data = api.call_api(path, method, header_params={
                "Accept": "application/json", "Content-Type": "application/json"},
                body=body, response_types_map={200: "object", 201: "object"},
                auth_settings=["BearerToken"], _return_http_data_only=True,
                _preload_content=True, _request_timeout=30)
            return data if isinstance(data, dict) else {}
        except k8s_client.ApiException as exc:
            if exc.status == 404:
                return {}
            raise OSError(f"{what}: the API server answered {exc.status} {exc.reason}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if pause is None:
                raise OSError(f"{what}: cannot reach the API server at "
                              f"{api.configuration.host}: {exc}") from exc
            log.warning("%s: API server not reachable (%s); again in %g s", what, exc, pause)
            sleep(pause)
    raise AssertionError("unreachable")


def api_allows(api: client.ThrottledApiClient, namespace: str | None
               ) -> Callable[[type[meta.Resource]], bool]:
    """Whether this identity may list and watch a kind (SelfSubjectAccessReviews, which every
    authenticated identity may create), in `namespace` or everywhere."""

    def allows(kind: type[meta.Resource]) -> bool:
        group = kind.API_VERSION.rpartition("/")[0]
        for verb in ("list", "watch"):
            attributes = {"verb": verb, "group": group, "resource": kind.PLURAL}
            if namespace and kind.NAMESPACED:
                attributes["namespace"] = namespace
            review = _start_request(
                api, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "POST",
                f"access review of {kind.PLURAL}",
                body={"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                      "spec": {"resourceAttributes": attributes}})
            if not ((review or {}).get("status") or {}).get("allowed"):
                return False
        return True

    return allows


def api_serves(api: client.ThrottledApiClient) -> Callable[[type[meta.Resource]], bool]:
    """Whether the API server serves a kind (discovery: /apis/<group>/<version>, one request
    per group version, remembered)."""
    known: dict[str, frozenset[str]] = {}

    def serves(kind: type[meta.Resource]) -> bool:
        version = kind.API_VERSION
        if version not in known:
            path = f"/apis/{version}" if "/" in version else f"/api/{version}"
            data = _start_request(api, path, "GET", f"API discovery of {version}")
            known[version] = frozenset(r.get("name", "") for r in
                                       (data or {}).get("resources", ()))
        return kind.PLURAL in known[version]

    return serves


def _index_lookup(
    controller_wiring: wiring.Wiring,
    by_kind: Mapping[type[meta.Resource], informer.Informer[meta.Resource]],
) -> wiring.IndexLookup:
    """A controller's mappers' (index, value) -> keys, over the shared cache of the index's
    kind."""
    kinds = {index.name: by_kind[index.kind] for index in controller_wiring.indexes}

    def lookup(index: str, value: str) -> list[meta.ObjectKey]:
        return [obj.key for obj in kinds[index].by_index(index, value)]

    return lookup


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


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
    controllers = selected_controllers(options.controllers, api_serves(api),
                                       api_allows(api, options.namespace))
    log.info("controllers: %s", ", ".join(f"{c.name} ({c.group})" for c in controllers))
    probes = health.Probes()
    servers = []
    metrics_at = health.parse_address(options.metrics_bind_address)
    if metrics_at is not None:
        if options.metrics_secure:
            servers.append(health.HttpServer(
                metrics_at, health.metrics_route(registry), name="metrics",
                tls=metricsauth.server_context(options.metrics_cert_file,
                                               options.metrics_key_file),
                guard=metricsauth.KubeAuthorizer(api),
            ))
        else:
            if not _loopback(metrics_at[0]):
                log.warning("/metrics is plain HTTP without authentication on %s: anyone who "
                            "reaches it can read it; use --metrics-secure",
                            options.metrics_bind_address)
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
        controllers=controllers,
    )
    if options.webhook_port:
        hooks = webhook_runnable(options, api)
        composition.manager.add(hooks)
        probes.add_ready_check("webhook", hooks.ready)
    composition.api = api
    composition.recorder = recorder
    return composition


def webhook_runnable(options: ManagerOptions, api: client.ThrottledApiClient,
                     clock: ports.Clock | None = None) -> webhook.WebhookRunnable:
    """The admission webhook server for `options` (every replica runs it, leader or not).
    Its certificates: the mounted folder, or the self-managed Secret in the manager's own
    namespace ($POD_NAMESPACE, as the Lease) naming the webhook Service."""
    source: certs.Source
    if options.webhook_cert_dir is not None:
        source = certs.DirectorySource(options.webhook_cert_dir)
    else:
        namespace = options.leader_election_namespace or options.namespace or "default"
        source = certs.SecretSource(
            api, namespace=namespace, name=options.webhook_cert_secret,
            names=[*certs.service_names(options.webhook_service, namespace),
                   *options.webhook_cert_names],
            clock=clock or memory.WallClock())
    configurations = (options.webhook_configuration,) if options.webhook_configuration else ()
    handlers = webhook.admission_handlers(peers=webhook.api_lister(api))
    handlers[CONVERSION_PATH] = webhook.conversion_handler(capm3_conversion.convert)
    return webhook.WebhookRunnable(
        (options.webhook_host or "0.0.0.0", options.webhook_port), source=source,
        handlers=handlers, api=api, configurations=configurations,
        crds=conversion_crds() if options.webhook_configuration else ())


CONVERSION_PATH = "/convert"
"""Where the CAPM3 CRDs send ConversionReviews (controllers/kube/capm3crds.py)."""


def conversion_crds() -> tuple[str, ...]:
    """The shipped CRDs that convert through the manager's webhook: their caBundle is the
    manager's to keep (self-managed certificates)."""
    names = []
    for path in capm3crds.shipped_files():
        crd = yaml.safe_load(path.read_text())
        conversion = crd["spec"].get("conversion") or {}
        service = ((conversion.get("webhook") or {}).get("clientConfig") or {}).get("service")
        if conversion.get("strategy") == "Webhook" and service == capm3crds.SERVICE:
            names.append(crd["metadata"]["name"])
    return tuple(names)
