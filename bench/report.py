"""How bench/scenarios.py shows its results: the table, the phases, the targets."""

from __future__ import annotations

import statistics
from typing import Any

from harness import Run, verdict

Target = dict[str, Any]


def target(name: str, value: float, goal: str, met: bool) -> Target:
    return {"name": name, "value": round(value, 3), "target": goal, "met": met}


def phases(cycles: list[dict[str, Any]]) -> dict[str, float]:
    """Median seconds of each phase over `cycles` (the cycle's own `counts.seconds`)."""
    names = dict.fromkeys(n for c in cycles for n in c["counts"].get("seconds", {}))
    return {
        n: round(statistics.median(c["counts"]["seconds"].get(n, 0.0) for c in cycles), 3)
        for n in names
    }


def show(runs: list[Run], targets: list[Target]) -> None:
    head = (
        f"  {'contestant':<34} {'work s':>8} {'wall s':>8} {'Connect req':>11} {'CRM req':>8} "
        f"{'CRM writes':>10} {'peak RSS MB':>11}  records"
    )
    print(head + "\n  " + "-" * (len(head) - 2))
    for run in runs:
        records = run.output.get("records", "")
        print(
            f"  {run.name:<34} {run.seconds:>8.2f} {run.wall_seconds:>8.2f} "
            f"{run.total('connect'):>11,} "
            f"{run.total('crm'):>8,} {run.total('crm', 'write'):>10,} "
            f"{run.peak_rss_mb:>11.1f}  {records}"
        )
    for run in runs:
        cycles = run.output.get("cycles", [])
        if cycles:
            shown = ", ".join(f"{c['seconds']:.2f}" for c in cycles)
            print(f"  {run.name}: seconds per cycle (the first pays the warm-up): {shown}")
            print(f"    phases, median of the others: {phases(cycles[1:] or cycles)}")
        by_phase = run.output.get("counts", {}).get("seconds", {})
        if by_phase:
            shown = ", ".join(f"{name} {seconds:.2f}" for name, seconds in by_phase.items())
            print(f"  {run.name}: seconds by phase: {shown}")
        for system, counts in run.requests.items():
            kinds = ", ".join(f"{k} {v:,}" for k, v in counts["by_endpoint"].items())
            print(f"  {run.name} → {system}: {kinds or 'none'}")
    for t in targets:
        print(f"  target {t['name']}: {t['value']:g} (want {t['target']}): {verdict(t['met'])}")
