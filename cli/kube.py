"""`metalcubed kube start|stop|status|build`: a local kube-apiserver + etcd for development.

Thin wiring over controllers.kube.localcluster: builds the binaries on first use (minutes,
with progress on stderr), starts them detached and prints the admin kubeconfig path on stdout,
so `kubectl --kubeconfig "$(metalcubed kube start)" get ns` works.
"""

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from metalcubed.cli import checks
from metalcubed.controllers.kube import capi, crdgen, localcluster


def add_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "kube",
        help="run a local kube-apiserver + etcd (built from the Go module proxy)",
        description=__doc__,
    )

    def usage(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(run=usage)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")

    def with_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--dir",
            type=Path,
            default=None,
            help=f"cluster state directory (default {localcluster.default_cluster_dir()})",
        )
        return p

    start = with_dir(actions.add_parser("start", help="build if needed, start, print kubeconfig"))
    start.add_argument("--no-build", action="store_true", help="fail instead of building")
    start.add_argument(
        "--crds", action="store_true", help="also install metalcubed's CRDs and wait for them"
    )
    start.add_argument(
        "--capi", action="store_true",
        help=f"also run Cluster API core {capi.CAPI_VERSION} (built from the Go module proxy on "
        "first use) with its CRDs and metalcubed's CAPM3/IPAM CRDs",
    )
    start.add_argument("--timeout", type=checks.number(above=0, maximum=86400), default=90.0,
                       help="seconds to wait for readyz (default 90)")
    start.set_defaults(run=run_start)
    with_dir(actions.add_parser("stop", help="stop the processes")).set_defaults(run=run_stop)
    with_dir(actions.add_parser("status", help="show what runs")).set_defaults(run=run_status)
    build = actions.add_parser("build", help="build (or find) the binaries, print their directory")
    build.add_argument("--capi", action="store_true",
                       help=f"also build Cluster API core {capi.CAPI_VERSION} (prints both dirs)")
    build.set_defaults(run=run_build)


def _dir(args: argparse.Namespace) -> Path:
    return Path(args.dir) if args.dir else localcluster.default_cluster_dir()


def _bad_dir(args: argparse.Namespace) -> int | None:
    """Exit 2 naming --dir when it is a file (or cannot hold the cluster's state)."""
    directory = _dir(args)
    if directory.exists() and not directory.is_dir():
        _say(f"--dir: {directory} is a file, not a folder")
        return checks.EXIT_BAD_INPUT
    return None


def _say(msg: str) -> None:
    print(f"[kube] {msg}", file=sys.stderr)


def run_start(args: argparse.Namespace) -> int:
    bad = _bad_dir(args)
    if bad is not None:
        return bad
    directory = _dir(args)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _say(f"--dir: cannot create {directory}: {err.strerror or err}")
        return checks.EXIT_BAD_INPUT
    running = localcluster.load(directory)
    if running is not None and localcluster.is_running(running):
        _say(f"already running at {running.server}")
        print(running.kubeconfig)
        return 0
    if running is not None:
        localcluster.stop(directory)  # half-dead leftovers of an earlier run
    try:
        binaries = localcluster.find_binaries()
        if binaries is None:
            if args.no_build:
                _say(f"binaries not built; run: {localcluster.build_command()}")
                return 3
            _say("building kube-apiserver, kube-controller-manager, kubectl and etcd "
                 "(first use: about 10-30 min)")
            binaries = localcluster.build_binaries(progress=sys.stderr)
        capi_binaries = None
        if args.capi:
            capi_binaries = capi.find()
            if capi_binaries is None and args.no_build:
                _say(f"Cluster API not built; run: {capi.build_command()}")
                return 3
            if capi_binaries is None:
                _say(f"building Cluster API {capi.CAPI_VERSION} (first use: about 5-10 min)")
                capi_binaries = capi.build(progress=sys.stderr)
        crds = crdgen.generate_all() if args.crds else []
        cluster = localcluster.start(
            directory,
            binaries=binaries,
            lifetime=localcluster.Lifetime.DETACHED,
            crds=crds,
            timeout_s=args.timeout,
            log=_say,
        )
        if capi_binaries is not None:
            began = time.monotonic()
            try:
                cluster = capi.start(cluster, binaries=capi_binaries,
                                     lifetime=localcluster.Lifetime.DETACHED,
                                     timeout_s=args.timeout, log=_say)
                cluster = dataclasses.replace(
                    cluster, started_in_s=cluster.started_in_s + time.monotonic() - began)
            except BaseException:
                localcluster.stop(directory)
                raise
    except localcluster.LocalClusterError as exc:
        _say(str(exc))
        return 1
    _say(f"started in {cluster.started_in_s:.1f} s; stop with: metalcubed kube stop"
         + (f" --dir {directory}" if args.dir else ""))
    if binaries.kubectl:
        _say(f"kubectl: {binaries.kubectl} --kubeconfig {cluster.kubeconfig} get ns")
    print(cluster.kubeconfig)
    return 0


def run_stop(args: argparse.Namespace) -> int:
    bad = _bad_dir(args)
    if bad is not None:
        return bad
    stopped = localcluster.stop(_dir(args))
    _say(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    return 0


def run_status(args: argparse.Namespace) -> int:
    bad = _bad_dir(args)
    if bad is not None:
        return bad
    cluster = localcluster.load(_dir(args))
    if cluster is None:
        print("not running")
        return 1
    for proc in cluster.processes:
        state = "running" if localcluster.is_alive(proc) else "dead"
        port = f" port {proc.port}" if proc.port else ""
        print(f"{proc.name:<24} pid {proc.pid:<8} {state}{port}  log {proc.log}")
    print(f"server     {cluster.server}\nkubeconfig {cluster.kubeconfig}")
    return 0 if localcluster.is_running(cluster) else 1


def run_build(args: argparse.Namespace) -> int:
    try:
        binaries = localcluster.ensure_binaries(progress=sys.stderr)
        print(binaries.directory)
        if args.capi:
            print(capi.ensure(progress=sys.stderr).directory)
    except localcluster.LocalClusterError as exc:
        _say(str(exc))
        return 1
    return 0
