"""Plots of a fleet run (matplotlib, Agg backend: files only, no display needed).

`states.png`: hosts per provisioning state over simulated time (stacked), with the workload's
steps marked. `durations.png`: the distribution of time spent per visit in each state (box
plots on a log scale, p99 and max marked), the figure the `state_durations_s` keys summarize.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from metalcubed.simulators.fleet import report as fleet_report
from metalcubed.simulators.fleet.observer import STATE_ORDER
from metalcubed.simulators.fleet.simulation import RunOutcome

_COLOURS = {
    "": "#bbbbbb",
    "unmanaged": "#888888",
    "registering": "#9ecae1",
    "inspecting": "#4292c6",
    "preparing": "#c6dbef",
    "available": "#74c476",
    "provisioning": "#fd8d3c",
    "provisioned": "#238b45",
    "externally provisioned": "#41ab5d",
    "deprovisioning": "#9e9ac8",
    "powering off before delete": "#bcbddc",
    "deleting": "#dadaeb",
    "deleted": "#f0f0f0",
    "match profile": "#eeeeee",
    "ready": "#a1d99b",
}


def _hours(seconds: list[float]) -> tuple[list[float], str]:
    span = max(seconds, default=0.0)
    if span >= 3 * 3600:
        return [s / 3600.0 for s in seconds], "simulated hours"
    return [s / 60.0 for s in seconds], "simulated minutes"


def plot_states(outcome: RunOutcome, path: Path) -> None:
    times, series = fleet_report.timeline(outcome)
    xs, unit = _hours(times)
    labels = [label for label in STATE_ORDER if label in series]
    fig, ax = plt.subplots(figsize=(11, 5.5), dpi=110)
    ax.stackplot(
        xs,
        [series[label] for label in labels],
        labels=[label or "(new)" for label in labels],
        colors=[_COLOURS.get(label, "#cccccc") for label in labels],
        linewidth=0,
    )
    scale = 3600.0 if unit == "simulated hours" else 60.0
    steps_at: dict[float, list[str]] = {}
    for name, at in outcome.steps_fired:
        steps_at.setdefault(at, []).append(name)
    for at, names in sorted(steps_at.items()):
        ax.axvline(at / scale, color="black", linewidth=0.8, linestyle=":")
        ax.annotate(
            " " + ", ".join(names), (at / scale, 0.98), xycoords=("data", "axes fraction"),
            rotation=90, va="top", ha="left", fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.7, "linewidth": 0, "pad": 1},
        )
    hosts = sum(group.count for group in outcome.spec.groups)
    ax.set_xlim(0, xs[-1] if xs else 1)
    ax.set_ylim(0, hosts)
    ax.set_xlabel(unit)
    ax.set_ylabel("hosts")
    ax.set_title(
        f"{outcome.spec.name}: hosts per provisioning state ({hosts} hosts, seed {outcome.seed})"
    )
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_durations(outcome: RunOutcome, path: Path) -> None:
    durations = outcome.observer.durations
    labels = [label for label in STATE_ORDER if label and durations.get(label)]
    data = [[max(value, 1e-3) for value in durations[label]] for label in labels]
    fig, ax = plt.subplots(figsize=(11, 5.5), dpi=110)
    boxes = ax.boxplot(
        data, orientation="horizontal", whis=(5, 95), showfliers=False, patch_artist=True,
        medianprops={"color": "black"},
    )
    for patch, label in zip(boxes["boxes"], labels, strict=True):
        patch.set_facecolor(_COLOURS.get(label, "#cccccc"))
    for row, values in enumerate(data, start=1):
        ordered = sorted(values)
        ax.plot(fleet_report.percentile(ordered, 99), row, marker="x", color="black",
                markersize=7)
        ax.plot(ordered[-1], row, marker="o", color="black", markersize=3, alpha=0.5)
    ax.set_yticks(range(1, len(labels) + 1), [f"{label} ({len(durations[label])})"
                                               for label in labels])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("seconds per visit (log scale); box: p25-p75, line: p50, "
                  "whiskers: p5-p95, x: p99, dot: max")
    ax.set_title(f"{outcome.spec.name}: time spent in each state")
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write(outcome: RunOutcome, directory: str | Path) -> list[Path]:
    """Write the PNGs into `directory` (created if needed); returns their paths."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    states = folder / "states.png"
    durations = folder / "durations.png"
    plot_states(outcome, states)
    plot_durations(outcome, durations)
    return [states, durations]
