"""`metalcubed manager`: the BareMetalHost controller as a production manager.

Flags and environment follow upstream BMO's main.go where it has them (docs/deploy.md lists
them all): `--namespace` defaults to $WATCH_NAMESPACE, the concurrency to $BMO_CONCURRENCY or
the CPU count clamped to [2, 8], the Lease namespace to $POD_NAMESPACE, the lease timings to
$LEASE_DURATION_SECONDS / $RENEW_DEADLINE_SECONDS / $RETRY_PERIOD_SECONDS, and
$PROVISIONING_LIMIT is read. SIGTERM or SIGINT stops it gracefully (a second one exits at once);
a lost Lease exits with status 1 so the Pod restarts.
"""

import argparse
import dataclasses
import logging
import os
import sys
import threading
from typing import Any

from metalcubed.controllers import manager
from metalcubed.controllers.kube import runtime
from metalcubed.core.provisioning import fixture

log = logging.getLogger("metalcubed.manager")


def _env_float(name: str) -> float | None:
    raw = os.environ.get(name, "")
    return float(raw) if raw else None


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "manager",
        help="run the BareMetalHost controller against a Kubernetes API server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--kubeconfig", metavar="PATH",
                   help="kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)")
    p.add_argument("--namespace", metavar="NS", default=os.environ.get("WATCH_NAMESPACE", ""),
                   help="watch only this namespace (default: $WATCH_NAMESPACE, else all)")
    p.add_argument("--provisioner", choices=manager.PROVISIONERS, default="fixture",
                   help="provisioning backend (default: fixture)")
    p.add_argument("--concurrency", "--controller-concurrency", type=int, default=0,
                   metavar="N", dest="concurrency",
                   help="reconciles in parallel (default: $BMO_CONCURRENCY, else the CPU "
                        "count clamped to [2, 8])")
    p.add_argument("--kube-api-qps", type=float, default=20.0, metavar="Q",
                   help="client requests per second to the API server (default 20)")
    p.add_argument("--kube-api-burst", type=int, default=30, metavar="B",
                   help="client request burst (default 30)")
    p.add_argument("--metrics-bind-address", default=":8080", metavar="ADDR",
                   help="Prometheus /metrics address, host:port; 0 disables (default :8080)")
    p.add_argument("--health-probe-bind-address", default=":9440", metavar="ADDR",
                   help="/healthz and /readyz address; 0 disables (default :9440)")
    p.add_argument("--leader-elect", "--enable-leader-election", action="store_true",
                   dest="leader_elect",
                   help="hold a coordination.k8s.io Lease; only the holder reconciles")
    p.add_argument("--leader-election-namespace", default=os.environ.get("POD_NAMESPACE", ""),
                   metavar="NS", help="namespace of the Lease (default: $POD_NAMESPACE, else "
                                      "--namespace, else default)")
    p.add_argument("--leader-election-id", default="baremetal-operator", metavar="NAME",
                   help="name of the Lease (default baremetal-operator)")
    p.add_argument("--lease-duration-seconds", type=float, metavar="S",
                   default=_env_float("LEASE_DURATION_SECONDS") or 15.0)
    p.add_argument("--renew-deadline-seconds", type=float, metavar="S",
                   default=_env_float("RENEW_DEADLINE_SECONDS") or 10.0)
    p.add_argument("--retry-period-seconds", type=float, metavar="S",
                   default=_env_float("RETRY_PERIOD_SECONDS") or 2.0)
    p.add_argument("--max-provisioning-retries", type=int, default=5, metavar="N",
                   help="provisioning attempts per image; 0 means unlimited (default 5)")
    p.add_argument("--fixture-delay-scale", type=float, default=1.0, metavar="X",
                   help="multiply the fixture provisioner's delays (upstream's) by X; for "
                        "tests and demos (default 1)")
    p.add_argument("--log-level", default="info",
                   choices=("debug", "info", "warning", "error"))
    p.set_defaults(run=run)


def options_from(args: argparse.Namespace) -> manager.ManagerOptions:
    if args.concurrency < 0:
        raise ValueError(f"controller concurrency value: {args.concurrency} is invalid")
    concurrency = args.concurrency or manager.default_concurrency()
    limit = os.environ.get("PROVISIONING_LIMIT", "")
    extra: dict[str, Any] = {}
    if limit:
        extra["provisioning_limit"] = int(limit)
    if args.fixture_delay_scale <= 0:
        raise ValueError("--fixture-delay-scale must be > 0")
    base = fixture.FixtureDelays()
    delays = fixture.FixtureDelays(**{
        f.name: getattr(base, f.name) * args.fixture_delay_scale for f in dataclasses.fields(base)
    })
    return manager.ManagerOptions(
        kubeconfig=args.kubeconfig or None,
        namespace=args.namespace or None,
        provisioner=args.provisioner,
        concurrency=concurrency,
        kube_api_qps=args.kube_api_qps,
        kube_api_burst=args.kube_api_burst,
        metrics_bind_address=args.metrics_bind_address,
        health_probe_bind_address=args.health_probe_bind_address,
        leader_elect=args.leader_elect,
        leader_election_namespace=args.leader_election_namespace or None,
        leader_election_id=args.leader_election_id,
        lease_duration_s=args.lease_duration_seconds,
        renew_deadline_s=args.renew_deadline_seconds,
        retry_period_s=args.retry_period_seconds,
        max_provisioning_retries=args.max_provisioning_retries,
        fixture_delays=delays,
        **extra,
    )


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
