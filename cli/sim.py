"""`metalcubed sim`: run a fleet scenario in simulated time and report on it.

    metalcubed sim [SCENARIO.yaml] [--hosts N] [--seed S] [--json FILE] [--plot DIR] [--quiet]

Without a scenario it runs the embedded default (quickstart); a bare name such as `fleet-1000`
also finds a shipped scenario. Exit status: 0 when every SLO is met and every invariant holds,
1 when not (so CI can gate on it), 2 for bad input (a malformed scenario, a bad flag), reported
before anything runs.
"""

import argparse
import sys
from pathlib import Path

from metalcubed.simulators.fleet import scenario

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


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
    parser.add_argument("--hosts", type=_positive, metavar="N",
                        help="scale the fleet to N hosts (groups keep their proportions)")
    parser.add_argument("--seed", type=_seed, metavar="S",
                        help="random seed (default: the scenario's)")
    parser.add_argument("--json", dest="json_path", metavar="FILE",
                        help="write the report as JSON to FILE ('-' for stdout)")
    parser.add_argument("--plot", metavar="DIR",
                        help="write states.png and durations.png into DIR")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar and no summary")
    parser.set_defaults(run=run)


def _load(name: str | None) -> scenario.Scenario:
    if name is None:
        return scenario.load_default()
    path = Path(name)
    if not path.exists() and not path.suffix:
        shipped = scenario.shipped_scenario_path(name)
        if shipped is not None:
            return scenario.load(shipped)
    return scenario.load(path)


def run(args: argparse.Namespace) -> int:
    try:
        spec = _load(args.scenario)
        if args.hosts is not None:
            spec = spec.with_hosts(args.hosts)
    except scenario.ScenarioError as err:
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
        Path(args.json_path).write_text(fleet_report.dumps(report), encoding="utf-8")
    if args.plot:
        from metalcubed.simulators.fleet import plot

        written = plot.write(outcome, args.plot)
        if not args.quiet:
            console.print("plots: " + ", ".join(str(path) for path in written))
    return EXIT_OK if report["ok"] else EXIT_FAILED
