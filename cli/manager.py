"""`metalcubed manager`: the Metal3 controllers as a production manager.

`--controllers bmo,capm3,ipam` picks the controller groups (core/controllerset.py), one per
upstream project: `bmo` (BareMetalHost and the controllers upstream BMO runs), `capm3` (Cluster
API Provider Metal3: Metal3Cluster, Metal3Machine, Metal3DataTemplate, ...), `ipam` (IPPool,
...). By default every group whose CRDs the API server serves runs; a named group whose CRDs
are missing stops the manager with an error naming them. Only `bmo` drives hardware: the
engine's agent API and boot server start only with it.

Flags and environment follow upstream BMO's main.go where it has them (docs/deploy.md lists
them all): `--namespace` defaults to $WATCH_NAMESPACE, the concurrency to $BMO_CONCURRENCY or
the CPU count clamped to [2, 8], the Lease namespace to $POD_NAMESPACE, the lease timings to
$LEASE_DURATION_SECONDS / $RENEW_DEADLINE_SECONDS / $RETRY_PERIOD_SECONDS.

The provisioning engine (`--provisioner engine`, the default) drives the hosts' BMCs and their
deploy agents, and serves what hosts reach: the agent API (Ironic's lookup and heartbeat API,
`--agent-api-bind-address`, reached at `--agent-api-url`) and the boot server (per-host
virtual-media ISOs, `--boot-server-bind-address`, reached at `--boot-server-url`). As upstream's
ironic provisioner it reads $DEPLOY_ISO_URL, $DEPLOY_KERNEL_URL, $DEPLOY_RAMDISK_URL and
$PROVISIONING_LIMIT (hosts busy at once on PXE boot interfaces, default 20).
`--provisioner fixture` is upstream's test provisioner (no hardware).

/metrics listens on loopback by default (127.0.0.1:8080): to scrape it from elsewhere, serve it
with `--metrics-secure` (HTTPS, callers authenticated and authorized by the API server through
TokenReview and SubjectAccessReview, as controller-runtime's secure metrics) on a wider address.
The health probes (:9440) stay plain HTTP on every interface: the kubelet calls them.

A bad flag or variable exits with status 2 and names it: numbers must be finite, durations
positive and at most a year, `--concurrency` at most 256 (each worker is a thread),
namespaces DNS-1123 labels. SIGTERM or SIGINT stops the manager
gracefully (a second one exits at once); a lost Lease exits with status 1 so the Pod restarts.
"""

import argparse
import dataclasses
import ipaddress
import logging
import math
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any

from metalcubed.controllers import manager
from metalcubed.controllers.kube import certs, health, runtime, webhook
from metalcubed.core import controllerset
from metalcubed.core.provisioning import context, fixture

log = logging.getLogger("metalcubed.manager")


_ENGINE_TIMINGS = (
    ("--engine-poll-seconds", "poll_s",
     "polling delay for long operations: ramdisk boot, inspection, cleaning, image write"),
    ("--engine-short-poll-seconds", "short_poll_s",
     "polling delay for quick operations: power, virtual media, BIOS staging"),
    ("--engine-busy-retry-seconds", "busy_retry_s",
     "delay after a busy BMC answer that gave no Retry-After"),
    ("--ramdisk-timeout-seconds", "ramdisk_timeout_s",
     "how long a booted ramdisk may take to heartbeat"),
    ("--soft-power-off-timeout-seconds", "soft_power_off_timeout_s",
     "after this a soft power off is retried hard"),
)
"""Engine timing flags: (flag, EngineConfig field, help)."""


class _EnvError(ValueError):
    """A bad environment variable (named in the message)."""


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise _EnvError(f"{name}={raw!r} is not a number") from None


def _env_int(name: str, default: int, *, minimum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _EnvError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise _EnvError(f"{name}={raw!r} must be >= {minimum}")
    return value


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "manager",
        help="run the Metal3 controllers (BMO, CAPM3, IPAM) against a Kubernetes API server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--kubeconfig", metavar="PATH",
                   help="kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)")
    p.add_argument("--namespace", metavar="NS", default=os.environ.get("WATCH_NAMESPACE", ""),
                   help="watch only this namespace (default: $WATCH_NAMESPACE, else all)")
    p.add_argument("--controllers", default=None, metavar="GROUPS",
                   help="comma-separated controller groups to run: "
                        f"{', '.join(controllerset.GROUPS)} (BareMetalHost and the other BMO "
                        "controllers; Cluster API Provider Metal3; IP address manager). "
                        "Default: every group whose CRDs the API server serves")
    p.add_argument("--enable-bmh-name-based-preallocation", action="store_true",
                   dest="host_named_claims",
                   help="capm3: name the IPClaims of a Metal3Data <host>-<pool> (CAPM3's flag), "
                        "so an IPPool's preAllocations pin each host's address")
    p.add_argument("--provisioner", choices=manager.PROVISIONERS, default="engine",
                   help="provisioning backend: engine (real BMCs and deploy agents) or "
                        "fixture (upstream's test provisioner); default engine")
    p.add_argument("--concurrency", "--controller-concurrency", type=int, default=0,
                   metavar="N", dest="concurrency",
                   help="reconciles in parallel (default: $BMO_CONCURRENCY, else the CPU "
                        "count clamped to [2, 8])")
    p.add_argument("--kube-api-qps", type=float, default=20.0, metavar="Q",
                   help="client requests per second to the API server (default 20)")
    p.add_argument("--kube-api-burst", type=int, default=30, metavar="B",
                   help="client request burst (default 30)")
    p.add_argument("--metrics-bind-address", default=manager.DEFAULT_METRICS_BIND,
                   metavar="ADDR",
                   help="Prometheus /metrics address, host:port; 0 disables (default "
                        f"{manager.DEFAULT_METRICS_BIND}: loopback; use --metrics-secure "
                        "before binding a wider address)")
    p.add_argument("--metrics-secure", action="store_true",
                   help="serve /metrics over HTTPS to callers the API server authenticates "
                        "(TokenReview) and authorizes to get /metrics (SubjectAccessReview)")
    p.add_argument("--metrics-cert-path", default="", metavar="DIR",
                   help="folder holding the metrics serving certificate and key (default: a "
                        "self-signed certificate made at start)")
    p.add_argument("--metrics-cert-name", default="tls.crt", metavar="FILE",
                   help="certificate file in --metrics-cert-path (default tls.crt)")
    p.add_argument("--metrics-cert-key", default="tls.key", metavar="FILE",
                   help="key file in --metrics-cert-path (default tls.key)")
    p.add_argument("--health-probe-bind-address", default=manager.DEFAULT_HEALTH_BIND,
                   metavar="ADDR",
                   help="/healthz and /readyz address (plain HTTP, for the kubelet); 0 "
                        f"disables (default {manager.DEFAULT_HEALTH_BIND})")
    p.add_argument("--leader-elect", "--enable-leader-election", action="store_true",
                   dest="leader_elect",
                   help="hold a coordination.k8s.io Lease; only the holder reconciles")
    p.add_argument("--leader-election-namespace", default=os.environ.get("POD_NAMESPACE", ""),
                   metavar="NS", help="namespace of the Lease (default: $POD_NAMESPACE, else "
                                      "--namespace, else default)")
    p.add_argument("--leader-election-id", default="baremetal-operator", metavar="NAME",
                   help="name of the Lease (default baremetal-operator)")
    p.add_argument("--lease-duration-seconds", type=float, metavar="S", default=None,
                   help="Lease duration (default: $LEASE_DURATION_SECONDS, else 15)")
    p.add_argument("--renew-deadline-seconds", type=float, metavar="S", default=None,
                   help="Lease renew deadline (default: $RENEW_DEADLINE_SECONDS, else 10)")
    p.add_argument("--retry-period-seconds", type=float, metavar="S", default=None,
                   help="Lease retry period (default: $RETRY_PERIOD_SECONDS, else 2)")
    p.add_argument("--max-provisioning-retries", type=int, default=5, metavar="N",
                   help="provisioning attempts per image; 0 means unlimited (default 5)")
    p.add_argument("--fixture-delay-scale", type=float, default=1.0, metavar="X",
                   help="multiply the fixture provisioner's delays (upstream's) by X; for "
                        "tests and demos (default 1)")
    engine = p.add_argument_group(
        "provisioning engine (--provisioner engine)",
        "Where the manager listens for hosts and the URLs hosts use to reach it. Environment, "
        "as upstream BMO's ironic provisioner: DEPLOY_ISO_URL (a prebuilt deploy ISO), "
        "DEPLOY_KERNEL_URL and DEPLOY_RAMDISK_URL (the boot server builds each host's ISO from "
        "them), PROVISIONING_LIMIT (hosts busy at once on PXE boot interfaces, default 20).",
    )
    engine.add_argument("--agent-api-bind-address", metavar="HOST:PORT",
                        default=manager.DEFAULT_AGENT_API_BIND,
                        help="where the agent API (Ironic's lookup and heartbeat API) listens "
                             f"(default {manager.DEFAULT_AGENT_API_BIND})")
    engine.add_argument("--agent-api-url", metavar="URL", default="",
                        help="the agent API URL deploy agents on the hosts use; required when "
                             "the bind address is a wildcard (e.g. http://10.0.0.2:6385)")
    engine.add_argument("--boot-server-bind-address", metavar="HOST:PORT",
                        default=manager.DEFAULT_BOOT_SERVER_BIND,
                        help="where the boot server (per-host virtual-media ISOs) listens "
                             f"(default {manager.DEFAULT_BOOT_SERVER_BIND})")
    engine.add_argument("--boot-server-url", metavar="URL", default="",
                        help="the boot server URL BMCs fetch ISOs from; required when the bind "
                             "address is a wildcard (e.g. http://10.0.0.2:6180)")
    engine.add_argument("--boot-files-dir", metavar="DIR", default="",
                        help="also serve the files of DIR under <boot-server-url>/files/ "
                             "(e.g. OS images)")
    engine.add_argument("--agent-timeout-seconds", type=float, default=300.0, metavar="S",
                        help="a deploy agent silent for longer is gone (default 300)")
    defaults = context.EngineConfig()
    for flag, name, what in _ENGINE_TIMINGS:
        engine.add_argument(flag, type=float, default=getattr(defaults, name), metavar="S",
                            help=f"{what} (default {getattr(defaults, name):g})")
    hooks = p.add_argument_group(
        "admission webhooks (docs/webhooks.md)",
        "Upstream's validating webhooks (BareMetalHost and the other kinds with admission "
        "rules) over HTTPS, served by every replica. Certificates: a CA and serving "
        "certificate the manager keeps and renews in a Secret of its namespace "
        "($POD_NAMESPACE) and writes into the ValidatingWebhookConfiguration's caBundle, or a "
        "mounted folder (cert-manager).",
    )
    hooks.add_argument("--webhook-port", type=int, default=0, metavar="PORT",
                       help="HTTPS port of the webhook server; 0 disables it (default 0; "
                            "upstream and the shipped Deployment use 9443)")
    hooks.add_argument("--webhook-host", default="", metavar="HOST",
                       help="address the webhook server listens on (default: every interface)")
    hooks.add_argument("--webhook-cert-dir", default="", metavar="DIR",
                       help="folder holding tls.crt and tls.key (cert-manager's Secret, "
                            f"mounted e.g. at {certs.DEFAULT_CERT_DIR}); re-read when they "
                            "change. Default: the self-managed Secret")
    hooks.add_argument("--webhook-cert-secret", default=certs.DEFAULT_SECRET, metavar="NAME",
                       help="Secret holding the self-managed CA and serving certificate "
                            f"(default {certs.DEFAULT_SECRET})")
    hooks.add_argument("--webhook-service", default=webhook.SERVICE_NAME, metavar="NAME",
                       help="the Service the API server calls; its DNS names go into the "
                            f"self-managed certificate (default {webhook.SERVICE_NAME})")
    hooks.add_argument("--webhook-cert-names", default="", metavar="NAMES",
                       help="more names for the self-managed certificate, comma-separated "
                            "DNS names or IP addresses (e.g. 127.0.0.1 for an API server "
                            "that calls the manager by URL)")
    hooks.add_argument("--webhook-configuration", default=webhook.CONFIGURATION_NAME,
                       metavar="NAME",
                       help="ValidatingWebhookConfiguration whose caBundle the manager keeps "
                            "(self-managed certificates only); '' for none (default "
                            f"{webhook.CONFIGURATION_NAME})")
    p.add_argument("--log-level", default="info",
                   choices=("debug", "info", "warning", "error"))
    p.set_defaults(run=run)


def name_of(flag: str) -> str:
    """argparse's attribute name for `flag`."""
    return flag.lstrip("-").replace("-", "_")


MAX_SECONDS = 365 * 86400.0
"""The longest duration any flag or variable may name: longer ones overflow date arithmetic
and mean nothing for a controller."""

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _positive(flag: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{flag}: {value} must be a finite number > 0")


def _seconds(flag: str, value: float) -> float:
    _positive(flag, value)
    if value > MAX_SECONDS:
        raise ValueError(f"{flag}: {value:g} seconds is more than a year ({MAX_SECONDS:g})")
    return value


def _namespace(flag: str, value: str) -> str | None:
    """None for "" (all namespaces); ValueError unless a DNS-1123 label (a namespace name)."""
    if not value:
        return None
    if len(value) > 63 or not _DNS1123_LABEL.match(value):
        raise ValueError(f"{flag}: {value!r} is not a namespace name (a DNS-1123 label: at "
                         "most 63 lower-case letters, digits and '-', starting and ending "
                         "with a letter or digit)")
    return value


def controller_groups(value: str | None) -> tuple[str, ...] | None:
    """`--controllers`: None (not given: every group), else the named groups; ValueError
    naming the flag and a bad or empty name."""
    if value is None:
        return None
    groups = tuple(g.strip() for g in value.split(","))
    if not value.strip() or any(not g for g in groups):
        raise ValueError(f"--controllers: {value!r} has an empty group name (groups: "
                         f"{', '.join(controllerset.GROUPS)}, comma-separated)")
    try:
        controllerset.in_groups(groups)
    except ValueError as err:
        raise ValueError(f"--controllers: {err}") from None
    return tuple(dict.fromkeys(groups))


def options_from(args: argparse.Namespace) -> manager.ManagerOptions:
    """The manager's options from flags and environment; ValueError names the bad one."""
    groups = controller_groups(args.controllers)
    if args.concurrency < 0:
        raise ValueError(f"--concurrency: controller concurrency value {args.concurrency} is "
                         "invalid")
    concurrency = args.concurrency or manager.default_concurrency()
    if concurrency > manager.MAX_CONCURRENCY:
        source = "--concurrency" if args.concurrency else "BMO_CONCURRENCY"
        raise ValueError(f"{source}: {concurrency} workers is more than the limit of "
                         f"{manager.MAX_CONCURRENCY} (each worker is a thread)")
    namespace = _namespace("--namespace (or WATCH_NAMESPACE)", args.namespace)
    lease_namespace = _namespace("--leader-election-namespace (or POD_NAMESPACE)",
                                 args.leader_election_namespace)
    if len(args.leader_election_id) > 253 or not _DNS1123_SUBDOMAIN.match(
            args.leader_election_id):
        raise ValueError(f"--leader-election-id: {args.leader_election_id!r} is not a Lease "
                         "name (a DNS-1123 subdomain)")
    limit = _env_int("PROVISIONING_LIMIT", 20, minimum=1)
    timing: list[tuple[str, float]] = []
    for flag, given, variable, default in (
        ("--lease-duration-seconds", args.lease_duration_seconds, "LEASE_DURATION_SECONDS", 15.0),
        ("--renew-deadline-seconds", args.renew_deadline_seconds, "RENEW_DEADLINE_SECONDS", 10.0),
        ("--retry-period-seconds", args.retry_period_seconds, "RETRY_PERIOD_SECONDS", 2.0),
    ):
        source = flag if given is not None else variable
        value = given if given is not None else _env_float(variable, default)
        timing.append((source, _seconds(source, value)))
    (lease_name, lease_s), (renew_name, renew_s), (retry_name, retry_s) = timing
    # client-go's leaderelection.NewLeaderElector checks.
    if not lease_s > renew_s:
        raise ValueError(f"{lease_name} ({lease_s:g}) must be greater than {renew_name} "
                         f"({renew_s:g})")
    if not renew_s > 1.2 * retry_s:
        raise ValueError(f"{renew_name} ({renew_s:g}) must be greater than 1.2 x {retry_name} "
                         f"({retry_s:g})")
    _positive("--fixture-delay-scale", args.fixture_delay_scale)
    if args.fixture_delay_scale > 1000:
        raise ValueError(f"--fixture-delay-scale: {args.fixture_delay_scale:g} is more than "
                         "1000")
    _positive("--kube-api-qps", args.kube_api_qps)
    _positive("--kube-api-burst", args.kube_api_burst)
    _seconds("--agent-timeout-seconds", args.agent_timeout_seconds)
    if args.max_provisioning_retries < 0:
        raise ValueError(f"--max-provisioning-retries: {args.max_provisioning_retries} must be "
                         ">= 0")
    base = fixture.FixtureDelays()
    delays = fixture.FixtureDelays(**{
        f.name: getattr(base, f.name) * args.fixture_delay_scale for f in dataclasses.fields(base)
    })
    timings: dict[str, Any] = {}
    for flag, name, _ in _ENGINE_TIMINGS:
        value = getattr(args, name_of(flag))
        timings[name] = _seconds(flag, value)
    files = Path(args.boot_files_dir) if args.boot_files_dir else None
    if files is not None and not files.is_dir():
        raise ValueError(f"--boot-files-dir: {args.boot_files_dir} is not a directory")
    cert_dir = Path(args.metrics_cert_path) if args.metrics_cert_path else None
    if cert_dir is not None:
        if not args.metrics_secure:
            raise ValueError("--metrics-cert-path: only used with --metrics-secure")
        if not cert_dir.is_dir():
            raise ValueError(f"--metrics-cert-path: {args.metrics_cert_path} is not a directory")
        for flag, name in (("--metrics-cert-name", args.metrics_cert_name),
                           ("--metrics-cert-key", args.metrics_cert_key)):
            if not (cert_dir / name).is_file():
                raise ValueError(f"{flag}: {cert_dir / name} is not a file")
    hooks = _webhook_options(args)
    options = manager.ManagerOptions(
        **hooks,
        controllers=groups,
        host_named_claims=args.host_named_claims,
        kubeconfig=args.kubeconfig or None,
        namespace=namespace,
        provisioner=args.provisioner,
        concurrency=concurrency,
        kube_api_qps=args.kube_api_qps,
        kube_api_burst=args.kube_api_burst,
        metrics_bind_address=args.metrics_bind_address,
        health_probe_bind_address=args.health_probe_bind_address,
        metrics_secure=args.metrics_secure,
        metrics_cert_file=cert_dir / args.metrics_cert_name if cert_dir else None,
        metrics_key_file=cert_dir / args.metrics_cert_key if cert_dir else None,
        leader_elect=args.leader_elect,
        leader_election_namespace=lease_namespace,
        leader_election_id=args.leader_election_id,
        lease_duration_s=lease_s,
        renew_deadline_s=renew_s,
        retry_period_s=retry_s,
        max_provisioning_retries=args.max_provisioning_retries,
        provisioning_limit=limit,
        fixture_delays=delays,
        agent_api_bind_address=args.agent_api_bind_address,
        agent_api_url=args.agent_api_url,
        boot_server_bind_address=args.boot_server_bind_address,
        boot_server_url=args.boot_server_url,
        deploy_iso_url=os.environ.get("DEPLOY_ISO_URL", "").strip(),
        deploy_kernel_url=os.environ.get("DEPLOY_KERNEL_URL", "").strip(),
        deploy_ramdisk_url=os.environ.get("DEPLOY_RAMDISK_URL", "").strip(),
        boot_files_dir=files,
        agent_timeout_s=args.agent_timeout_seconds,
        engine=dataclasses.replace(context.EngineConfig(), **timings),
    )
    for flag, address in (("--metrics-bind-address", options.metrics_bind_address),
                          ("--health-probe-bind-address", options.health_probe_bind_address)):
        try:
            health.parse_address(address)
        except ValueError:
            raise ValueError(f"{flag}: {address!r} is not host:port (port 0-65535)") from None
    if options.provisioner == "engine" and (groups is None or controllerset.BMO in groups):
        manager.engine_service_config(options)  # checks the engine's flags and variables
    return options


_HOSTNAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9.]{0,251}[A-Za-z0-9])?$")


def _dns_name(flag: str, value: str, *, label: bool = False) -> str:
    pattern = _DNS1123_LABEL if label else _DNS1123_SUBDOMAIN
    if len(value) > (63 if label else 253) or not pattern.match(value):
        kind = "a DNS-1123 label" if label else "a DNS-1123 subdomain"
        raise ValueError(f"{flag}: {value!r} is not {kind} (lower-case letters, digits and "
                         "'-'" + ("" if label else " and '.'") + ")")
    return value


def _webhook_options(args: argparse.Namespace) -> dict[str, Any]:
    """The webhook settings; ValueError names the flag (a mounted certificate folder is read
    now, so a missing or bad file stops the manager at once)."""
    if not 0 <= args.webhook_port <= 65535:
        raise ValueError(f"--webhook-port: {args.webhook_port} is not a port (0-65535; 0 "
                         "disables the webhooks)")
    if args.webhook_host:
        try:
            ipaddress.ip_address(args.webhook_host)
        except ValueError:
            if not _HOSTNAME.match(args.webhook_host):
                raise ValueError(f"--webhook-host: {args.webhook_host!r} is not a host (an IP "
                                 "address or a host name)") from None
    cert_dir = Path(args.webhook_cert_dir) if args.webhook_cert_dir else None
    if cert_dir is not None:
        if not cert_dir.is_dir():
            raise ValueError(f"--webhook-cert-dir: {cert_dir} is not a directory")
        try:
            certs.DirectorySource(cert_dir).ensure().tls_context()
        except certs.CertificateError as err:
            raise ValueError(str(err) if str(err).startswith("--") else
                             f"--webhook-cert-dir: {err}") from None
    names = tuple(n.strip() for n in args.webhook_cert_names.split(",") if n.strip())
    for name in names:
        try:
            ipaddress.ip_address(name)
        except ValueError:
            _dns_name("--webhook-cert-names", name)
    if args.webhook_configuration:
        _dns_name("--webhook-configuration", args.webhook_configuration)
    return {
        "webhook_port": args.webhook_port,
        "webhook_host": args.webhook_host,
        "webhook_cert_dir": cert_dir,
        "webhook_cert_secret": _dns_name("--webhook-cert-secret", args.webhook_cert_secret),
        "webhook_service": _dns_name("--webhook-service", args.webhook_service, label=True),
        "webhook_cert_names": names,
        "webhook_configuration": args.webhook_configuration,
    }


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # urllib3 logs every transparent retry of a dropped keep-alive connection; the outcome
    # (success, or an error the workqueue retries) is what matters and is logged by us.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    try:
        options = options_from(args)
        composition = manager.build(options)
    except (ValueError, OSError) as exc:
        print(f"metalcubed manager: {exc}", file=sys.stderr)
        return 2
    log.info(
        "starting manager: namespace=%s provisioner=%s concurrency=%d qps=%g burst=%d "
        "leader-elect=%s identity=%s",
        options.namespace or "<all>", options.provisioner, options.concurrency,
        options.kube_api_qps, options.kube_api_burst, options.leader_elect, options.identity,
    )
    stop = threading.Event()
    runtime.stop_on_signals(stop)
    code = composition.manager.run(stop)
    log.info("manager stopped (exit code %d)", code)
    return code
