"""Draw the side-by-side results (bench/results/*.json) as one PNG: bench/results/benchmarks.png.

    .venv/bin/python bench/chart.py                       # bench/results → benchmarks.png
    .venv/bin/python bench/chart.py --results bench/results/smoke

One column per scenario found: time on top, requests (peak RSS for `memory`) below, syncd in
blue and the baselines in grey, each scenario's target as a dashed line where it is a number.
Needs matplotlib (a dev dependency).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

ORDER = ["resync100k", "tars10k", "idle", "memory"]
SYNCD, BASELINE = "#1f77b4", "#9e9e9e"


def requests_of(run: dict[str, Any]) -> int:
    return sum(int(counts.get("total", 0)) for counts in run["requests"].values())


def _bars(ax: Axes, labels: list[str], values: list[float], colours: list[str], unit: str) -> None:
    bars = ax.bar(range(len(values)), values, color=colours)
    ax.set_xticks(range(len(values)), labels, rotation=20, ha="right", fontsize=7)
    ax.set_ylabel(unit, fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    for bar, value in zip(bars, values, strict=True):
        ax.annotate(
            f"{value:,.1f}" if value < 100 else f"{value:,.0f}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=7,
        )


def _label(name: str) -> str:
    return name.replace(" (official clients)", "\n(official clients)").replace(", ", "\n")


def contest(top: Axes, bottom: Axes, result: dict[str, Any]) -> None:
    """A scenario with contestants: syncd first, then its baselines."""
    runs = result["runs"]
    labels = [_label(r["name"]) for r in runs]
    colours = [SYNCD if r["name"].startswith("syncd") else BASELINE for r in runs]
    _bars(top, labels, [r["seconds"] for r in runs], colours, "seconds")
    _bars(bottom, labels, [requests_of(r) for r in runs], colours, "requests (all systems)")
    params = ", ".join(
        f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in result["params"].items()
    )
    top.set_title(f"{result['scenario']}\n{params}", fontsize=9)


def idle(top: Axes, bottom: Axes, result: dict[str, Any]) -> None:
    sizes = result["params"]["accounts"]
    setup = result["setup"]
    labels, seconds = [], []
    for size in sizes:
        measured = setup[str(size)]
        labels += [f"{int(size):,}\ndaemon", f"{int(size):,}\nnew process"]
        seconds += [measured["cycle_seconds"], measured.get("cold_cycle_seconds", 0.0)]
    colours = [SYNCD, BASELINE] * len(sizes)
    _bars(top, labels, seconds, colours, "seconds per idle cycle")
    top.axhline(2 * seconds[0], color="red", linestyle="--", linewidth=0.8)
    connect = [setup[str(s)]["connect_requests"] for s in sizes]
    sized = [f"{int(s):,}\naccounts" for s in sizes]
    _bars(bottom, sized, connect, [SYNCD] * len(sizes), "Connect requests per idle cycle")
    bottom.axhline(4, color="red", linestyle="--", linewidth=0.8)
    top.set_title("idle (grey: cycle in a new process)\ndashed: targets", fontsize=9)


def memory(top: Axes, bottom: Axes, result: dict[str, Any]) -> None:
    runs = result["runs"]
    labels = [f"{int(r['output']['records']):,}\naccounts" for r in runs]
    colours = [SYNCD] * len(runs)
    _bars(top, labels, [r["seconds"] for r in runs], colours, "seconds (full reconcile)")
    _bars(bottom, labels, [r["peak_rss_mb"] for r in runs], colours, "peak RSS, MB")
    bottom.axhline(200, color="red", linestyle="--", linewidth=0.8)
    top.set_title("memory\n(dashed: 200 MB target)", fontsize=9)


def draw(results: Path, out: Path) -> list[str]:
    """Draw every scenario found in `results` into `out`; returns the scenarios drawn."""
    found = {p.stem: json.loads(p.read_text()) for p in sorted(results.glob("*.json"))}
    names = [n for n in ORDER if n in found]
    if not names:
        raise SystemExit(f"no results in {results}: run bench/scenarios.py first")
    figure, axes = plt.subplots(2, len(names), figsize=(4.2 * len(names), 7.5), squeeze=False)
    for column, name in enumerate(names):
        draw_one = {"idle": idle, "memory": memory}.get(name, contest)
        draw_one(axes[0][column], axes[1][column], found[name])
    about = found[names[0]]["machine"]
    figure.suptitle(
        f"syncd vs what vendors run instead: {about['cores']} cores, {about['ram_gib']} GiB, "
        f"Python {about['python']}, Postgres {about.get('postgres', '?')} (blue: syncd)",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--out", type=Path, help="default: <results>/benchmarks.png")
    args = parser.parse_args()
    out = args.out or args.results / "benchmarks.png"
    names = draw(args.results, out)
    print(f"{', '.join(names)} → {out}")


if __name__ == "__main__":
    main()
