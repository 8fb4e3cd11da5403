"""`metalcubed devenv up|status|down`: a bare-metal lab on this machine.

  metalcubed devenv up --hosts N [--backend emulated|libvirt] [--bmc redfish|ipmi|mixed]
                       [--provision] [--kubeconfig PATH]
  metalcubed devenv status [--json]
  metalcubed devenv down

`up` starts a background lab: N emulated servers behind Redfish (sushy-tools) and IPMI (pyghmi)
BMCs on 127.0.0.1, the deploy-agent emulator, an image server with a raw OS image and its
sha256 checksum, and the BareMetalHost controller with the provisioning engine: composed in the
lab process over its memory store or, with --kubeconfig, the `metalcubed manager --provisioner
engine` process against that API server. It writes each host's Secret and
BareMetalHost into <dir>/manifests and returns once every host is registered; --provision then
gives every host the image and waits until all are provisioned. `status` shows each host's
state, power and BMC endpoint; `down` stops everything `up` started. With `--backend libvirt`
the servers are real TCG virtual machines on an isolated libvirt network behind sushy-tools
(libvirt driver) and virtualbmc, booting a real deploy ramdisk and OS image (needs root and
`make devenv-deps`; docs/devenv.md has the walkthrough).

Exit status: 0 done, 1 failed (lab did not start, timeout, no lab running for status), 2 bad
input (the message names the flag).
"""

import argparse
import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from metalcubed.cli import checks
from metalcubed.simulators.devenv import config as lab_config
from metalcubed.simulators.devenv import control
from metalcubed.simulators.devenv.libvirtlab import deps

Snapshot = dict[str, Any]


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("devenv", help="run a lab of emulated bare-metal hosts on this machine",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)

    def usage(_args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(run=usage)
    actions = p.add_subparsers(dest="action", metavar="ACTION")

    def with_dir(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--dir", type=Path, default=None,
                            help=f"the lab's directory (default {control.default_dir()})")
        return parser

    up = with_dir(actions.add_parser("up", help="start a lab and enroll its hosts"))
    up.add_argument("--hosts", type=checks.whole(minimum=1, maximum=lab_config.MAX_HOSTS),
                    required=True, metavar="N",
                    help=f"how many emulated hosts (1 to {lab_config.MAX_HOSTS})")
    up.add_argument("--backend", choices=list(lab_config.BACKENDS), default="emulated",
                    help="emulated servers (default), or libvirt: real TCG virtual machines "
                         f"(at most {lab_config.MAX_VMS}; needs root and make devenv-deps)")
    up.add_argument("--bmc", choices=[m.value for m in lab_config.BmcMix], default="redfish",
                    help="BMC protocol: redfish (virtual media), ipmi, or mixed (Redfish and "
                         "IPMI alternate) (default redfish)")
    up.add_argument("--provision", action="store_true",
                    help="give every host the lab's OS image and wait until all are provisioned")
    up.add_argument("--kubeconfig", metavar="PATH", default=None,
                    help="use this API server (with the metal3.io CRDs) instead of the lab's "
                         "memory store")
    up.add_argument("--namespace", default=lab_config.DEFAULT_NAMESPACE,
                    help=f"namespace of the hosts (default {lab_config.DEFAULT_NAMESPACE})")
    up.add_argument("--timing", choices=list(lab_config.TIMINGS), default="fast",
                    help="emulated hardware speed: fast (sub-second steps) or slow (seconds, "
                         "to watch) (default fast)")
    up.add_argument("--concurrency", default=16, metavar="N",
                    type=checks.whole(minimum=1, maximum=lab_config.MAX_CONCURRENCY),
                    help=f"reconcile workers (default 16, at most {lab_config.MAX_CONCURRENCY})")
    up.add_argument("--provisioning-limit", default=20, metavar="N",
                    type=checks.whole(minimum=1, maximum=lab_config.MAX_HOSTS),
                    help="PROVISIONING_LIMIT: hosts inspecting, provisioning or cleaning at once "
                         "on network-booted BMCs (ipmi, redfish); the others wait as 'delayed' "
                         "(default 20, as upstream)")
    up.add_argument("--hosts-per-process", default=250, metavar="N",
                    type=checks.whole(minimum=0, maximum=lab_config.MAX_HOSTS),
                    help="hosts per BMC emulator process; 0 runs the emulators inside the lab "
                         "process (default 250)")
    up.add_argument("--timeout", default=600.0, metavar="S",
                    type=checks.number(above=0, maximum=lab_config.MAX_TIMEOUT_S),
                    help="seconds to wait for registration, and again for --provision "
                         "(default 600)")
    up.set_defaults(run=run_up)

    st = with_dir(actions.add_parser("status", help="each host's state and BMC endpoint"))
    st.add_argument("--json", action="store_true", help="print the status as JSON")
    st.set_defaults(run=run_status)

    down = with_dir(actions.add_parser("down", help="stop everything `up` started"))
    down.add_argument("--timeout", default=120.0, metavar="S",
                      type=checks.number(minimum=0, maximum=lab_config.MAX_TIMEOUT_S),
                      help="seconds to wait after SIGTERM before SIGKILL (default 120)")
    down.set_defaults(run=run_down)


def _dir(args: argparse.Namespace) -> Path:
    return Path(args.dir) if args.dir else control.default_dir()


def _check_dir(directory: Path, *, create: bool) -> None:
    """--dir up front: a file, or (for `up`) a folder that cannot be created or written, is
    bad input naming the flag, not a traceback after the lab's checks."""
    if directory.exists() and not directory.is_dir():
        raise checks.BadInput(f"--dir: {directory} is not a folder")
    if create:
        checks.output_dir("--dir", directory)


def _check_kubeconfig(path: str | None) -> None:
    """--kubeconfig up front: a readable file (control.up then asks its API server)."""
    if path is None:
        return
    target = Path(path)
    if not target.is_file():
        problem = "is a folder, not a file" if target.is_dir() else "no such file"
        raise lab_config.ConfigError("--kubeconfig", f"{path}: {problem}")
    if not os.access(target, os.R_OK):
        raise lab_config.ConfigError("--kubeconfig", f"{path}: not readable")


def _fail(action: str, message: str, code: int) -> int:
    print(f"metalcubed devenv {action}: {message}", file=sys.stderr)
    return code


# --- up ---------------------------------------------------------------------------------------


def registered(row: dict[str, Any]) -> bool:
    """Past registration: BMC access proven (a host may then wait, delayed, for a provisioning
    slot before it inspects), or failed (the error is shown)."""
    return (row["state"] not in ("", "registering") or row["credentialsValidated"]
            or bool(row["errorType"]))


def _count(snap: Snapshot, test: Callable[[dict[str, Any]], bool]) -> int:
    return sum(1 for r in snap["hosts"] if test(r))


def _wait(directory: Path, *, what: str, test: Callable[[dict[str, Any]], bool], total: int,
          timeout_s: float, console: Console) -> Snapshot:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(what, total=total, detail="")

        def show(snap: Snapshot) -> None:
            states = snap["summary"]["byState"]
            detail = " ".join(f"{k}:{v}" for k, v in states.items())
            errors, delayed = snap["summary"]["errors"], snap["summary"]["delayed"]
            detail += f" errors:{errors}" if errors else ""
            detail += f" delayed:{delayed}" if delayed else ""
            bar.update(task, completed=_count(snap, test), detail=detail)

        return control.wait_for(directory, lambda s: _count(s, test) >= total,
                                timeout_s=timeout_s, on_progress=show)


def run_up(args: argparse.Namespace) -> int:
    directory = _dir(args)
    err = Console(stderr=True)
    try:
        _check_dir(directory, create=True)
        _check_kubeconfig(args.kubeconfig)
        config = lab_config.check(lab_config.LabConfig(
            hosts=args.hosts, bmc=lab_config.BmcMix(args.bmc), namespace=args.namespace,
            kubeconfig=args.kubeconfig, timing=args.timing, concurrency=args.concurrency,
            hosts_per_process=args.hosts_per_process, password=secrets.token_urlsafe(12),
            provisioning_limit=args.provisioning_limit, backend=args.backend,
        ))
        if config.backend == "libvirt":  # before anything starts: say what to install
            deps.check()
        started = time.monotonic()
        lab = control.up(config, directory)
    except (lab_config.ConfigError, checks.BadInput) as exc:
        return _fail("up", str(exc), 2)
    except control.DevenvError as exc:
        return _fail("up", str(exc), 1)
    except deps.DepsError as exc:  # what is missing, and the command that installs it
        return _fail("up", str(exc), 1)
    info = lab.lab
    schemes = config.schemes()
    mix = ", ".join(f"{schemes.count(s)} {s}" for s in sorted(set(schemes)))
    print(f"lab up in {time.monotonic() - started:.1f} s (pid {lab.pid}): {config.hosts} hosts "
          f"({mix}) in namespace {config.namespace}, {info['store']} store")
    print(f"  manifests:     {info['manifests']}")
    print(f"  image:         {info['image']['url']} (sha256 {info['image']['checksum'][:16]}...)")
    print(f"  redfish:       {', '.join(info['redfishEndpoints']) or '-'}")
    print(f"  agent API:     {info['lookupService']}")
    print(f"  boot server:   {info['bootServer']}")
    if info.get("managerProcess"):
        print(f"  manager:       pid {info['managerProcess']} (metalcubed manager)")
    if info.get("libvirt"):
        vm = info["libvirt"]
        print(f"  libvirt:       network {vm['network']} ({vm['gateway']}/24, bridge "
              f"{vm['bridge']}), pool {vm['pool']}, disks and consoles in {vm['vmDir']}")
        print(f"  lab files:     {vm['files']}/files/ (deploy ISO, iPXE, kernel, initrd, OS "
              "image)")
    print(f"  log:           {directory / 'lab.log'}")
    try:
        snap = _wait(directory, what="registering", test=registered, total=config.hosts,
                     timeout_s=args.timeout, console=err)
        if _count(snap, registered) < config.hosts:
            return _fail("up", f"hosts still registering after {args.timeout:g} s (the lab "
                               "keeps running: metalcubed devenv status)", 1)
        failed = _count(snap, lambda r: bool(r["errorType"]))
        if failed:
            return _fail("up", f"{failed} hosts failed to register (the lab keeps running: "
                               "metalcubed devenv status shows why)", 1)
        if args.provision:
            changed = control.provision(directory)["changed"]
            print(f"provisioning {changed} hosts with {info['image']['url']}")
            snap = _wait(directory, what="provisioning", total=config.hosts,
                         test=lambda r: r["state"] == "provisioned", timeout_s=args.timeout,
                         console=err)
            done = _count(snap, lambda r: r["state"] == "provisioned")
            if done < config.hosts:
                return _fail("up", f"{config.hosts - done} hosts not provisioned after "
                                   f"{args.timeout:g} s (the lab keeps running: metalcubed "
                                   "devenv status)", 1)
    except control.DevenvError as exc:
        return _fail("up", str(exc), 1)
    states = ", ".join(f"{v} {k}" for k, v in snap["summary"]["byState"].items())
    print(f"hosts: {states}")
    suffix = "" if args.dir is None else f" --dir {directory}"
    print(f"next: metalcubed devenv status{suffix}   |   metalcubed devenv down{suffix}")
    return 0


# --- status -----------------------------------------------------------------------------------


def _table(snap: Snapshot) -> str:
    vms = any("domain" in r for r in snap["hosts"])
    head: tuple[str, ...] = ("NAME", "STATE", "OPERATIONAL", "POWER", "BMC", "ENDPOINT")
    if vms:
        head += ("DOMAIN", "VM", "IP", "OS")
    head += ("ERROR",)
    lines = [head]
    for r in snap["hosts"]:
        error = f"{r['errorType']}: {r['errorMessage']}" if r["errorType"] else ""
        line: tuple[str, ...] = (r["name"], r["state"] or "-", r["operationalStatus"] or "-",
                                 "on" if r["poweredOn"] else "off", r["scheme"],
                                 r["bmcEndpoint"])
        if vms:
            report = r.get("osReport") or {}
            line += (r.get("domain", "-"), r.get("domainState", "-"), r.get("ip", "-"),
                     f"booted as {report['hostname']}" if report.get("hostname") else "-")
        lines.append((*line, error[:80]))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line[:-1], widths, strict=True))
        + ("  " + line[-1] if line[-1] else "")
        for line in lines
    )


def run_status(args: argparse.Namespace) -> int:
    directory = _dir(args)
    try:
        _check_dir(directory, create=False)
    except checks.BadInput as exc:
        return _fail("status", str(exc), 2)
    try:
        snap = control.snapshot(directory)
    except control.DevenvError as exc:
        return _fail("status", str(exc), 1)
    if args.json:
        text = json.dumps(snap, indent=2)
    else:
        lab = snap["lab"]
        summary = snap["summary"]
        states = ", ".join(f"{v} {k}" for k, v in summary["byState"].items())
        text = (f"lab {lab['id']} in {directory}: {summary['hosts']} hosts ({states}), "
                f"{lab['store']} store, namespace {lab['namespace']}\n"
                f"image {lab['image']['url']} sha256 {lab['image']['checksum']}\n"
                + _table(snap))
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `devenv status | head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


# --- down -------------------------------------------------------------------------------------


def run_down(args: argparse.Namespace) -> int:
    directory = _dir(args)
    try:
        _check_dir(directory, create=False)
    except checks.BadInput as exc:
        return _fail("down", str(exc), 2)
    stopped = control.down(directory, timeout_s=args.timeout)
    if not stopped:
        print(f"no lab is running in {directory}")
        return 0
    parts = [f"the lab (pid {stopped.lab})"] if stopped.lab is not None else []
    if stopped.bmc:
        parts.append(f"{len(stopped.bmc)} BMC process(es) "
                     f"(pid {', '.join(map(str, stopped.bmc))})")
    if stopped.libvirt:
        parts.append(f"the libvirt lab's leftovers ({', '.join(stopped.libvirt)})")
    print(f"stopped {' and '.join(parts)}")
    return 0
