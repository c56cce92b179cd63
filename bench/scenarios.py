"""Side-by-side benchmarks: syncd against what a vendor would run instead, one command each.

    .venv/bin/python bench/scenarios.py resync100k            # full size (see bench/README.md)
    .venv/bin/python bench/scenarios.py tars10k --scale smoke # a tiny run, seconds
    .venv/bin/python bench/scenarios.py all --scale full
    .venv/bin/python bench/scenarios.py idle --accounts 1000 200000

Scenarios (the sizes are the full scale's; `--accounts` replaces them):

- `resync100k`: 100,000 accounts, the Connect simulator adding 100 ms to every request. syncd's
  full reconcile (`bench/workers.py resync`) on a mirror at rest, against the official Connect
  client's `all()` over /tier/accounts (its default page size; and with `limit=1000`).
- `tars10k`: 10,000 pending TARs, 50 ms added to every request of both simulators, a fresh
  database and an empty CRM for each contestant: `syncd sync` (sync default on, HubSpot) against
  the per-TAR script on the official clients (`bench/baseline_naive.py tars`).
- `idle`: cycles where nothing changed, with 1,000 and with 1,000,000 accounts in the mirror
  (`bench/fill.py`): requests by system and kind, and each cycle's own time.
- `memory`: peak RSS of syncd's full reconcile at 10,000, 100,000 and 1,000,000 accounts.

Every contestant is a process of its own (wall time and peak RSS are its own); requests are
counted by the simulators (`bench/simproc.py`). A simulator seeded with the `accounts` data set
and its filled mirror are kept for the scenarios after it in the same run (`Mirrors`): run
`resync100k idle memory` together and 100,000 and 1,000,000 accounts are prepared once. Results
go to `bench/results/<scenario>.json` (`bench/results/smoke/` at the smoke scale);
`bench/chart.py` draws them.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

from harness import (
    BENCH,
    PYTHON,
    BenchError,
    Postgres,
    Run,
    Sim,
    machine,
    run_child,
    write_results,
)
from report import phases, show, target
from simproc import CONNECT_KEY, CRM_TOKEN

WORKERS = str(BENCH / "workers.py")
BASELINE = str(BENCH / "baseline_naive.py")
SIZES: dict[str, dict[str, list[int]]] = {
    "smoke": {"resync100k": [300], "tars10k": [20], "idle": [100, 300], "memory": [200]},
    "full": {
        "resync100k": [100_000],
        "tars10k": [10_000],
        "idle": [1_000, 1_000_000],
        "memory": [10_000, 100_000, 1_000_000],
    },
}
LATENCY = {"resync100k": 0.1, "tars10k": 0.05, "idle": 0.0, "memory": 0.0}


class Mirrors:
    """Connect simulators seeded with the `accounts` data set, each with a mirror filled from it
    (`bench/fill.py`, with CRM links), kept for the scenarios that follow: at a million accounts,
    seeding and filling take minutes, and the data set of a size is always the same."""

    def __init__(self, pg: Postgres) -> None:
        self.pg = pg
        self.open: dict[int, tuple[Sim, str, dict[str, Any]]] = {}

    def get(self, size: int, latency: float = 0.0) -> tuple[Sim, str, dict[str, Any]]:
        """The simulator (its latency set, its counts cleared), the database and the fill."""
        if size not in self.open:
            sim = Sim("connect", "--dataset", "accounts", "--size", str(size))
            database = self.pg.database(f"mirror_{size}", keep=True)
            print(f"  {size:,} accounts: simulator seeded in {sim.summary['seeded_seconds']} s; "
                  "filling the mirror", flush=True)  # fmt: skip
            fill = sim.command(f"fill {database} hubspot on")
            print(f"  mirror filled in {fill['seconds']} s", flush=True)
            self.open[size] = (sim, database, fill)
        sim, database, fill = self.open[size]
        sim.command(f"latency {latency}")
        sim.counts()
        return sim, database, {**fill, "seed": sim.summary}

    def close(self) -> None:
        for sim, _, _ in self.open.values():
            sim.close()


def syncd_env(database: str, connect: str, hubspot: str | None = None) -> dict[str, str]:
    return {
        "SYNCD_DATABASE_URL": database,
        "SYNCD_CONNECT_URL": connect,
        "SYNCD_CONNECT_API_KEY": CONNECT_KEY,
        "SYNCD_CRM": "hubspot",
        "SYNCD_HUBSPOT_URL": hubspot or "http://127.0.0.1:9",
        "SYNCD_HUBSPOT_TOKEN": CRM_TOKEN,
        "SYNCD_SYNC_DEFAULT": "on",
        "SYNCD_HTTP_ADDR": "",
        "SYNCD_LOG_LEVEL": "WARNING",
    }


def _checked(run: Run) -> Run:
    outcome = run.output.get("outcome")
    if outcome is not None and outcome != "success":
        raise BenchError(f"{run.name} ended {outcome}: {run.output.get('error')}")
    return run


# -- the scenarios ---------------------------------------------------------------------------


def resync100k(mirrors: Mirrors, sizes: list[int], latency: float) -> dict[str, Any]:
    size = sizes[0]
    connect, database, fill = mirrors.get(size, latency)
    env = syncd_env(database, connect.url)
    runs = []
    for name, argv in (
        ("syncd resync (full reconcile)", [PYTHON, WORKERS, "resync"]),
        ("official client all()", [PYTHON, BASELINE, "accounts", connect.url, CONNECT_KEY]),
        (
            "official client all(), limit 1000",
            [PYTHON, BASELINE, "accounts", connect.url, CONNECT_KEY, "--limit", "1000"],
        ),
    ):
        run = _checked(run_child(name, argv, env))
        run.requests["connect"] = connect.counts()
        runs.append(run)
    syncd, official = runs[0], runs[1]
    targets = [
        target("speed-up over the official client", official.seconds / syncd.seconds, ">= 3",
               official.seconds >= 3 * syncd.seconds),
        target("Connect requests, syncd / official", syncd.total() / max(official.total(), 1),
               "<= 1", syncd.total() <= official.total()),
    ]  # fmt: skip
    return {"params": {"accounts": size, "latency": latency}, "setup": fill, "runs": runs,
            "targets": targets}  # fmt: skip


def _tars_run(pg: Postgres, n: int, latency: float, contestant: str) -> tuple[Run, dict[str, Any]]:
    options = ("--latency", str(latency))
    with (
        Sim("connect", "--dataset", "tars", "--size", str(n), *options) as connect,
        Sim("hubspot", *options) as hubspot,
    ):
        if contestant == "syncd":
            env = syncd_env(pg.database("tars"), connect.url, hubspot.url)
            run = run_child("syncd sync", [PYTHON, "-m", "syncd", "sync", "--json"], env)
        else:
            argv = [PYTHON, BASELINE, "tars", connect.url, CONNECT_KEY, hubspot.url, CRM_TOKEN]
            run = run_child("per-TAR script (official clients)", argv)
        run.requests = {"connect": connect.counts(), "crm": hubspot.counts()}
        after = {**connect.command("pending"), **hubspot.command("objects")}
    run.output["records"] = run.output.get("records", n)
    if after["pending"] or after["companies"] != n:
        raise BenchError(f"{run.name} left {after} (wanted no pending TAR, {n} companies)")
    return _checked(run), {"seed": connect.summary, "after": after}


def tars10k(pg: Postgres, sizes: list[int], latency: float) -> dict[str, Any]:
    n = sizes[0]
    syncd, setup = _tars_run(pg, n, latency, "syncd")
    pg.release()
    naive, _ = _tars_run(pg, n, latency, "naive")
    per_tar = (syncd.total("connect") + syncd.total("crm")) / n
    targets = [
        target("speed-up over the per-TAR script", naive.seconds / syncd.seconds, ">= 10",
               naive.seconds >= 10 * syncd.seconds),
        target("syncd requests per TAR (Connect + CRM)", per_tar, "<= 1.1", per_tar <= 1.1),
    ]  # fmt: skip
    return {"params": {"tars": n, "latency": latency}, "setup": setup, "runs": [syncd, naive],
            "targets": targets}  # fmt: skip


def idle(mirrors: Mirrors, sizes: list[int], cycles: int) -> dict[str, Any]:
    """Per size: a settling cycle and a cycle in a new process each (like `syncd sync` from a
    timer), then `cycles + 1` cycles in one process (like the daemon), the first of them left
    out of the time: it pays the process's warm-up."""
    runs: list[Run] = []
    per_size: dict[int, dict[str, Any]] = {}
    for size in sizes:
        connect, database, fill = mirrors.get(size)
        with Sim("hubspot") as hubspot:
            env = syncd_env(database, connect.url, hubspot.url)
            mine = []
            for label, argv in (
                ("settling cycle", [PYTHON, WORKERS, "cycle"]),
                ("idle cycle, new process", [PYTHON, WORKERS, "cycle"]),
                (
                    f"{cycles + 1} idle cycles, one process",
                    [PYTHON, WORKERS, "cycles", str(cycles + 1)],
                ),
            ):
                run = _checked(run_child(f"{label}, {size:,} accounts", argv, env))
                run.requests = {"connect": connect.counts(), "crm": hubspot.counts()}
                mine.append(run)
        runs += mine
        _, cold, warm = mine
        repeat = len(warm.output["cycles"])
        per_cycle = {
            "connect": max(cold.total("connect"), warm.total("connect") / repeat),
            "crm": max(cold.total("crm"), warm.total("crm") / repeat),
            "crm_writes": max(cold.total("crm", "write"), warm.total("crm", "write")),
        }
        per_size[size] = {
            "fill": fill,
            "cold_cycle_seconds": cold.seconds,
            "cycle_seconds": warm.seconds,
            "warm_phases": phases(warm.output["cycles"][1:] or warm.output["cycles"]),
            "connect_requests": per_cycle["connect"],
            "crm_requests": per_cycle["crm"],
            "crm_writes": per_cycle["crm_writes"],
        }
    small, large = per_size[sizes[0]], per_size[sizes[-1]]
    ratio = large["cycle_seconds"] / max(small["cycle_seconds"], 1e-9)
    cold_ratio = large["cold_cycle_seconds"] / max(small["cold_cycle_seconds"], 1e-9)
    targets = [
        target(f"Connect requests per idle cycle at {sizes[-1]:,}", large["connect_requests"],
               "<= 4", large["connect_requests"] <= 4),
        target("CRM writes per idle cycle", max(s["crm_writes"] for s in per_size.values()),
               "0", all(s["crm_writes"] == 0 for s in per_size.values())),
        target(f"daemon cycle time {sizes[-1]:,} / {sizes[0]:,} accounts", ratio, "<= 2",
               ratio <= 2),
        target(f"new-process cycle time {sizes[-1]:,} / {sizes[0]:,} accounts", cold_ratio,
               "<= 2", cold_ratio <= 2),
    ]  # fmt: skip
    return {"params": {"accounts": sizes, "cycles": cycles}, "setup": per_size, "runs": runs,
            "targets": targets}  # fmt: skip


def memory(mirrors: Mirrors, sizes: list[int]) -> dict[str, Any]:
    runs: list[Run] = []
    setup: dict[int, Any] = {}
    for size in sizes:
        connect, database, setup[size] = mirrors.get(size)
        env = syncd_env(database, connect.url)
        name = f"syncd resync, {size:,} accounts"
        run = _checked(run_child(name, [PYTHON, WORKERS, "resync"], env))
        run.requests["connect"] = connect.counts()
        run.output["records"] = size
        runs.append(run)
    peak = runs[-1].peak_rss_mb
    targets = [target(f"peak RSS at {sizes[-1]:,} accounts (MB)", peak, "< 200", peak < 200)]
    return {"params": {"accounts": sizes}, "setup": setup, "runs": runs, "targets": targets}


def run_scenario(
    name: str, pg: Postgres, mirrors: Mirrors, sizes: list[int], latency: float, cycles: int
) -> dict[str, Any]:
    if name == "resync100k":
        return resync100k(mirrors, sizes, latency)
    if name == "tars10k":
        return tars10k(pg, sizes, latency)
    if name == "idle":
        return idle(mirrors, sizes, cycles)
    return memory(mirrors, sizes)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("scenario", nargs="+", choices=[*LATENCY, "all"])
    parser.add_argument("--scale", choices=list(SIZES), default="full")
    parser.add_argument("--accounts", type=int, nargs="+", help="sizes (TARs for tars10k)")
    parser.add_argument("--latency", type=float, help="seconds added per request")
    parser.add_argument(
        "--cycles", type=int, default=3, help="idle cycles timed in one process, per size"
    )
    parser.add_argument("--results", type=Path, help="where the JSON results go")
    parser.add_argument("--pg-url", help="admin URL of a Postgres to use (else a private one)")
    args = parser.parse_args()
    names = list(LATENCY) if "all" in args.scenario else list(dict.fromkeys(args.scenario))
    results = args.results or (BENCH / "results" / ("smoke" if args.scale == "smoke" else ""))
    about = machine()
    print(f"machine: {about['cores']} cores, {about['ram_gib']} GiB, {about['cpu']}, "
          f"Python {about['python']}")  # fmt: skip
    with Postgres(args.pg_url) as pg, closing(Mirrors(pg)) as mirrors:
        about["postgres"] = pg.version()
        for name in names:
            sizes = args.accounts or SIZES[args.scale][name]
            latency = LATENCY[name] if args.latency is None else args.latency
            print(f"\n{name}: sizes {sizes}, latency {latency * 1000:.0f} ms", flush=True)
            payload = run_scenario(name, pg, mirrors, sizes, latency, args.cycles)
            show(payload["runs"], payload["targets"])
            payload["runs"] = [run.as_dict() for run in payload["runs"]]
            path = write_results(
                results, name, {"scenario": name, "scale": args.scale, "machine": about, **payload}
            )
            print(f"  results: {path}")
            pg.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
