"""`metalcubed sim`: run a fleet scenario in simulated time and report on it.

    metalcubed sim [SCENARIO.yaml] [--hosts N] [--seed S] [--json FILE] [--plot DIR] [--quiet]

Without a scenario it runs the embedded default (quickstart); a bare name such as `fleet-1000`
also finds a shipped scenario. Exit status: 0 when every SLO is met and every invariant holds,
1 when not (so CI can gate on it), 2 for bad input (a malformed scenario, a bad flag, a report
path that cannot be written), reported before anything runs.

Limits: at most `MAX_HOSTS` hosts (the flag or the scenario's groups); the scenario file as
`validate` reads manifests (32 MiB of UTF-8, 100 levels, 1,000,000 nodes with aliases expanded,
integers of at most 100 digits); no NaN or infinite number anywhere in it.
"""

import argparse
import sys
from pathlib import Path

import yaml

from metalcubed.cli import checks
from metalcubed.core import yamlinput
from metalcubed.simulators.fleet import scenario

EXIT_OK = checks.EXIT_OK
EXIT_FAILED = checks.EXIT_FAILED
EXIT_BAD_INPUT = checks.EXIT_BAD_INPUT
MAX_HOSTS = 100_000
"""Largest fleet `sim` runs (fleet-10k takes ~90 s and ~150 MB; 10x that is the ceiling)."""
MAX_SEED = 2**63 - 1


def add_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "sim",
        help="run a fleet scenario through the real reconcilers in simulated time",
        description=(
            "Run a fleet scenario in simulated time through the BareMetalHost reconciler, "
            "workqueue and provisioner port that production uses, then summarize it. Exits 1 "
            "when an SLO is missed or an invariant breaks, 2 on bad input."
        ),
    )
    parser.add_argument(
        "scenario",
        nargs="?",
        help=f"scenario file, or the name of a shipped one (default: {scenario.DEFAULT_SCENARIO})",
    )
    parser.add_argument("--hosts", type=checks.whole(minimum=1, maximum=MAX_HOSTS), metavar="N",
                        help="scale the fleet to N hosts, at most 100,000 (groups keep their "
                             "proportions)")
    parser.add_argument("--seed", type=checks.whole(minimum=0, maximum=MAX_SEED), metavar="S",
                        help="random seed (default: the scenario's)")
    parser.add_argument("--json", dest="json_path", metavar="FILE",
                        help="write the report as JSON to FILE ('-' for stdout)")
    parser.add_argument("--plot", metavar="DIR",
                        help="write states.png and durations.png into DIR")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar and no summary")
    parser.set_defaults(run=run)


def load_scenario(name: str | None) -> scenario.Scenario:
    """The scenario, read within yamlinput's limits and checked for NaN and infinities.

    Raises:
        checks.BadInput, scenario.ScenarioError: both name the file and the field.
    """
    if name is None:
        return scenario.load_default()
    path = Path(name)
    if not path.exists() and not path.suffix:
        shipped = scenario.shipped_scenario_path(name)
        if shipped is not None:
            path = shipped
    source = str(path)
    text = checks.read_input(source)
    try:
        data = yamlinput.load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise checks.BadInput(f"invalid scenario {source}: {where}{problem}") from None
    _refuse_non_finite(source, data)
    try:
        spec = scenario.parse(data, source=source)
    except (OverflowError, ValueError, TypeError, RecursionError) as err:
        # A value beyond what a float holds (a 400-digit duration string, say).
        raise checks.BadInput(f"invalid scenario {source}: a value is out of range "
                              f"({type(err).__name__}: {err})") from None
    _refuse_non_finite(source, spec)
    return spec


def _refuse_non_finite(source: str, data: object) -> None:
    found = list(yamlinput.non_finite(data))
    if found:
        lines = "\n".join(f"  {where}: must be a finite number, got {value}"
                          for where, value in found)
        raise checks.BadInput(f"invalid scenario {source}:\n{lines}")


def _check_outputs(args: argparse.Namespace) -> None:
    """Where the report goes, checked before a run that may take minutes."""
    if args.json_path:
        checks.output_file("--json", args.json_path)
    if args.plot:
        checks.output_dir("--plot", args.plot)


def run(args: argparse.Namespace) -> int:
    try:
        _check_outputs(args)
        spec = load_scenario(args.scenario)
        if args.hosts is not None:
            spec = spec.with_hosts(args.hosts)
        if spec.host_count > MAX_HOSTS:
            raise checks.BadInput(f"the scenario has {spec.host_count:,} hosts; metalcubed sim "
                                  f"runs at most {MAX_HOSTS:,} (use --hosts)")
    except scenario.ScenarioError as err:
        print(f"metalcubed sim: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except checks.BadInput as err:
        print(f"metalcubed sim: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    # Imported here: parsing a bad scenario should answer at once, before the heavy imports.
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from metalcubed.simulators.fleet import quantity, simulation, summary
    from metalcubed.simulators.fleet import report as fleet_report

    console = Console(stderr=args.json_path == "-")
    sim = simulation.Simulation(spec, seed=args.seed)
    if args.quiet:
        outcome = sim.run()
    else:
        with Progress(
            TextColumn("[bold]{task.fields[name]}[/bold]"),
            BarColumn(),
            TextColumn("{task.fields[clock]} simulated"),
            TextColumn("{task.fields[settled]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task(
                "sim", total=spec.time_limit_s, name=spec.name, clock="0s", settled=""
            )

            def show(now_s: float, settled: int, hosts: int) -> None:
                progress.update(
                    task,
                    completed=now_s,
                    clock=quantity.format_duration(now_s),
                    settled=f"{settled}/{hosts} hosts settled",
                )

            outcome = sim.run(progress=show)
    report = fleet_report.build(outcome)
    if outcome.engine is not None:
        # What core/provisioning's engine asked of the simulated BMCs and agents.
        report["engine"] = outcome.engine.stats.as_dict()
    if not args.quiet:
        summary.render(report, console)
    if args.json_path == "-":
        sys.stdout.write(fleet_report.dumps(report))
    elif args.json_path:
        try:
            Path(args.json_path).write_text(fleet_report.dumps(report), encoding="utf-8")
        except OSError as err:  # checked up front; a device can still fill during the run
            print(f"metalcubed sim: --json: cannot write {args.json_path}: "
                  f"{err.strerror or err}", file=sys.stderr)
            return EXIT_BAD_INPUT
    if args.plot:
        from metalcubed.simulators.fleet import plot

        try:
            written = plot.write(outcome, args.plot)
        except OSError as err:
            print(f"metalcubed sim: --plot: cannot write into {args.plot}: "
                  f"{err.strerror or err}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if not args.quiet:
            console.print("plots: " + ", ".join(str(path) for path in written))
    return EXIT_OK if report["ok"] else EXIT_FAILED
