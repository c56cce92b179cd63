"""Push benchmark: syncd's plan and push phases against a script writing one record per request.

    .venv/bin/python bench/push.py                      # 10,000 accounts, both CRMs, 30 ms and 0
    .venv/bin/python bench/push.py --accounts 2000 --baseline-accounts 300 --crm salesforce
    .venv/bin/python bench/push.py --latency 0          # loopback speed alone
    .venv/bin/python bench/push.py --profile /tmp/push  # + cProfile of syncd and the simulator

The Connect simulator is seeded with the accounts and pulled into a private Postgres once (not
timed). Then, for each CRM simulator (a separate process, rate limits off so that both contestants
are bound by their own requests, not by the simulated quota), two scenarios:

- create: the CRM is empty, every account is new;
- update: every account's name is changed in the mirror (not timed), then pushed again; the CRM
  holds what the create scenario wrote.

Contestants, each into a CRM simulator of its own:

- syncd: one push phase per scenario (read the CRM state in batches, three-way diff, batched
  writes, links and ledger committed per batch);
- baseline: what a naive vendor script does, with plain httpx calls, one record per request.
  HubSpot: company upsert (1 input), contact upsert (1 input), one v4 association PUT.
  Salesforce: Account upsert by external id (`PATCH /sobjects/Account/<field>/<key>`), then the
  Contact the same way, naming its Account by external id.

Latency: a real CRM is reached over the internet and does work for each call, while a simulator
on loopback answers in well under a millisecond. `--latency MS` makes the simulators hold every
request that long before handling it (the fault injection of `syncd.sim.base`; concurrent requests
wait in parallel, as they do at a real server), the same for both contestants. The default, 30 ms,
is deliberately low: crm-apis.md gives no response-time figure, but a round trip from a data
centre to HubSpot's or Salesforce's servers alone is of that order, and their batch calls take
longer to process than single ones, which a flat latency does not charge. The one figure there
that bounds a per-request pace, HubSpot's burst limit (100 requests per 10 s on Free/Starter,
crm-apis.md §2.2; the simulators' limits are off here), would hold the per-record script to
100 ms a request on average. Higher latencies only widen syncd's lead (it makes about 100 times
fewer requests), so 30 ms understates it; the
zero-latency table is printed too (the default is `--latency 30 --latency 0`): there both
contestants are CPU-bound on this machine, and it shows what syncd's own CPU costs. The baseline
writes 200 accounts per scenario under latency (about 20 s at 30 ms), 2,000 without, unless
`--baseline-accounts` says otherwise.

Requests are counted at the HTTP transport, by kind. The table shows accounts per second, the
speed-up over the baseline, calls per batch (HubSpot 100 accounts, Salesforce 200) against the
targets (at most 2 writes and 1 read per batch, at least 10x the baseline's rate), and the CPU
milliseconds per account spent by this process and by the simulator: on a small, shared machine
both contestants are CPU-bound without latency, and the CPU figures vary less than the rates.
`--repeat N` runs everything N times and shows the median run. `--no-pipeline` turns off the
push's prefetch. `--profile DIR` writes and prints cProfile output of syncd's push (its main
thread) and of the simulator, for the first latency's first run.

Beside this script: `push_sims` (the simulator processes), `push_syncd` and `push_baseline` (the
contestants), `push_measure` (counts and times) and `push_report` (the tables).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from push_baseline import run_baseline  # noqa: E402
from push_measure import Result  # noqa: E402
from push_report import report  # noqa: E402
from push_sims import Crm, serve_sim  # noqa: E402
from push_syncd import run_syncd  # noqa: E402

from syncd.domain.mapping import default_mapping  # noqa: E402

RENAMED = " (renamed)"
DEFAULT_LATENCIES = (30.0, 0.0)
"""Milliseconds added to every CRM request: a conservative real-world figure, then none."""


def rename_all(database: str) -> None:
    """Connect renamed every account: a new version of each in the mirror."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE tier_accounts SET name = name || :suffix, version = version + 1, "
                "record = jsonb_set(record, '{name}', to_jsonb(record->>'name' || :suffix))"
            ),
            {"suffix": RENAMED},
        )
    engine.dispose()


def renamed(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "name": record["name"] + RENAMED}


def bench_crm(
    name: str,
    latency_ms: float,
    database: str,
    records: list[dict[str, Any]],
    baseline_n: int,
    profile: Path | None,
    pipeline: bool,
) -> list[Result]:
    mapping = default_mapping(name)
    profiler = cProfile.Profile() if profile else None
    results = []
    sim_profile = profile / f"sim_{name}.prof" if profile else None
    with Crm(name, latency_ms, sim_profile) as crm:
        for scenario in ("create", "update"):
            if scenario == "update":
                rename_all(database)
            results.append(run_syncd(name, scenario, crm, database, mapping, profiler, pipeline))
    with Crm(name, latency_ms) as crm:
        sample = records[:baseline_n]
        results.append(run_baseline(name, "create", crm, sample, mapping))
        results.append(run_baseline(name, "update", crm, [renamed(r) for r in sample], mapping))
    for result in results:
        result.latency_ms = latency_ms
    if profiler is not None and profile is not None:
        path = profile / f"syncd_{name}.prof"
        profiler.dump_stats(str(path))
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        print(
            f"\n--- cProfile of syncd's push ({name}, main thread: the prefetch worker is not "
            f"profiled), both scenarios, top 25 cumulative (saved to {path})"
        )
        print(out.getvalue())
        out = io.StringIO()
        pstats.Stats(str(sim_profile), stream=out).sort_stats("tottime").print_stats(25)
        print(f"--- cProfile of the {name} simulator (its own process), top 25 by own time")
        print(out.getvalue())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument(
        "--baseline-accounts",
        type=int,
        help="accounts the per-record baseline writes (its rate is per second); default 200 "
        "under latency, 2,000 without",
    )
    parser.add_argument(
        "--latency",
        type=float,
        action="append",
        metavar="MS",
        help="milliseconds the CRM simulators add to every request; repeat for several tables "
        f"(default: {' and '.join(f'{m:g}' for m in DEFAULT_LATENCIES)})",
    )
    parser.add_argument("--crm", choices=["hubspot", "salesforce"], action="append")
    parser.add_argument(
        "--profile",
        type=Path,
        help="directory for cProfile output of syncd's push and the simulator",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run everything this many times (fresh CRMs and databases) and "
        "show the median run: other load on the machine skews single runs",
    )
    parser.add_argument("--serve-sim", choices=["hubspot", "salesforce"], help=argparse.SUPPRESS)
    parser.add_argument("--sim-profile", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sim-latency", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--no-pipeline",
        action="store_true",
        help="plan each batch after the previous one is committed",
    )
    args, rest = parser.parse_known_args()
    if args.serve_sim:
        serve_sim(args.serve_sim, args.sim_latency, args.sim_profile, rest)
        return
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")

    from sqlalchemy import create_engine

    from syncd.connect.client import ConnectClient
    from syncd.pgcluster import PgCluster
    from syncd.sim.base import SimServer
    from syncd.sim.connect import ConnectSim
    from syncd.store import migrate
    from syncd.sync.pull import PullOptions, PullPhase

    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    sim = ConnectSim("bench")
    sim.seed(1, accounts=args.accounts)
    records = [sim.account(a) for a in sorted(sim.accounts)]
    latencies: list[float] = args.latency or list(DEFAULT_LATENCIES)
    results: list[Result] = []
    with PgCluster() as cluster, SimServer(sim) as connect:
        template = cluster.create_database("mirror")
        migrate.upgrade(template)
        engine = create_engine(template)
        with ConnectClient(f"{connect.url}/public/v1", "bench") as client:
            PullPhase(engine, client, PullOptions(), run_id=None).run()
        engine.dispose()
        print(f"{len(records):,} accounts mirrored")
        for number, latency in enumerate(latencies):
            default_n = 200 if latency else 2_000
            baseline_n = min(args.baseline_accounts or default_n, len(records))
            print(f"latency {latency:g} ms: the baseline writes {baseline_n:,} accounts")
            for attempt in range(args.repeat):
                for name in args.crm or ["hubspot", "salesforce"]:
                    database = cluster.create_database(
                        f"push_{name}_{number}_{attempt}", template="mirror"
                    )
                    profile = args.profile if attempt == number == 0 else None
                    results += bench_crm(
                        name,
                        latency,
                        database,
                        records,
                        baseline_n,
                        profile,
                        not args.no_pipeline,
                    )
    report(results)


if __name__ == "__main__":
    main()
