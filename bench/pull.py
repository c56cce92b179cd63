"""Pull benchmark: syncd's pull phase against fetch-only baselines, same simulator, same run.

    .venv/bin/python bench/pull.py                                   # 10,000 and 100,000, fresh
    .venv/bin/python bench/pull.py --accounts 100000 --rest --latency 0.1 --official
    .venv/bin/python bench/pull.py --accounts 1000000 --only-syncd  # peak RSS at a million
    .venv/bin/python bench/pull.py --accounts 20000 --concurrency 1 4 --profile /tmp/pull.prof

For each size, one Connect simulator (a separate process, seeded with that many accounts and
their TARs, `--latency` seconds added to every request) serves every contestant, each run as a
child process so that its peak RSS is its own:

- fetch-only baseline: httpx fetching, one after the other, the pages syncd's pull fetches (the
  TAR feed, the pending sweep and the accounts), bodies thrown away unparsed;
- official client (`--official`): connect-openapi-client's `all()` over /tier/accounts at its
  default page size (100), each item as a dict: what a vendor's script iterates;
- syncd, once per `--concurrency` (pages fetched at once after a listing's first page; 1 is the
  pull before issue 6, one page fetched ahead): one `run_cycle` (pull phase) into a fresh,
  migrated database. With `--rest`, a reconcile cycle (what `syncd resync` runs) over a mirror
  already holding everything (primed by an untimed cycle first): the TAR feed finds nothing new
  and the accounts are scanned once.

Prints records per second, the time ratios, requests made and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from syncd.connect import rql  # noqa: E402
from syncd.connect.paging import parse_content_range  # noqa: E402

KEY = "SU-000-000-000:bench"
PAGE = 1000
ACCOUNTS = "/tier/accounts"
TARS = "/tier/account-requests"
FEEDS = {
    TARS: [
        rql.render_query(rql.ordering("events.created.at", "id")),
        rql.render_query(rql.eq("status", "pending"), rql.ordering("id")),
    ],
    ACCOUNTS: [rql.render_query(rql.ordering("events.created.at"))],
}


def fetch_only(base_url: str, rest: bool) -> dict[str, Any]:
    requests = items = 0
    feeds = {ACCOUNTS: FEEDS[ACCOUNTS]} if rest else FEEDS
    started = time.perf_counter()
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"ApiKey {KEY}"}, timeout=60
    ) as client:
        for path, queries in feeds.items():
            for query in queries:
                offset = 0
                while True:
                    response = client.get(f"{path}?{rql.with_paging(query, PAGE, offset)}")
                    requests += 1
                    response.raise_for_status()
                    content_range = parse_content_range(response.headers["Content-Range"])
                    assert content_range is not None
                    assert content_range.total is not None
                    total = content_range.total
                    # An empty page still reads `items <offset>-<offset>/<total>`.
                    count = content_range.last - content_range.first + 1 if offset < total else 0
                    items += count
                    offset += count
                    if count == 0 or offset >= total:
                        break
    return {"seconds": time.perf_counter() - started, "requests": requests, "records": items}


def official(base_url: str) -> dict[str, Any]:
    from connect.client import ConnectClient

    client = ConnectClient(f"ApiKey {KEY}", endpoint=base_url, use_specs=False)
    started = time.perf_counter()
    records = sum(1 for _ in client("tier").accounts.all())
    requests = -(-records // client.default_limit)
    return {"seconds": time.perf_counter() - started, "requests": requests, "records": records}


def pull(base_url: str, database_url: str, concurrency: str, rest: str, profile: str) -> Any:
    from sqlalchemy import create_engine

    from syncd.connect.client import ConnectClient
    from syncd.sync.cycle import run_cycle
    from syncd.sync.pull import PullOptions

    engine = create_engine(database_url)
    options = PullOptions(page_size=PAGE, concurrency=int(concurrency))
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    with ConnectClient(base_url, KEY, page_size=PAGE) as client:
        result = run_cycle(engine, client, options, reconcile=rest == "rest")
        requests = client.stats.total
    seconds = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    engine.dispose()
    counts = result.counts["pull"]
    return {
        "seconds": seconds,
        "requests": requests,
        "records": counts["requests_seen"] + counts["accounts_seen"],
        "outcome": result.outcome,
        "error": result.error,
    }


def _child(kind: str, *args: str) -> dict[str, Any]:
    """Run one contestant in a child process; its result plus its own peak RSS in MiB."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--worker", kind, *args], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"{kind} worker failed with status {status}")
    result: dict[str, Any] = json.loads(output)
    result["peak_rss_mib"] = usage.ru_maxrss / 1024  # Linux reports KiB
    if result.get("outcome", "success") != "success":
        raise SystemExit(f"{kind} ended {result['outcome']}: {result['error']}")
    return result


def _start_simulator(accounts: int, latency: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "syncd", "sim", "connect", "--port", "0"),
            *("--api-key", KEY, "--seed", "1", "--accounts", str(accounts)),
            *("--latency", str(latency)),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    summary = process.stdout.readline().strip()
    print(f"  simulator: {summary}", flush=True)
    return process, url


def _show(name: str, result: dict[str, Any]) -> None:
    print(
        f"  {name:28} {result['records']:>9,} records {result['seconds']:8.2f} s "
        f"{result['records'] / result['seconds']:>9,.0f} records/s "
        f"{result['requests']:>6} requests  peak RSS {result['peak_rss_mib']:.0f} MiB",
        flush=True,
    )


def run(args: argparse.Namespace) -> None:
    from syncd.pgcluster import PgCluster
    from syncd.store import migrate

    mode = "rest" if args.rest else "fresh"
    print(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; page size {PAGE}; "
        f"latency {args.latency * 1000:.0f} ms; "
        + ("reconcile of a mirror at rest" if args.rest else "pull into an empty mirror")
    )
    with PgCluster() as cluster:
        for size in args.accounts:
            print(f"\n{size:,} accounts", flush=True)
            simulator, url = _start_simulator(size, args.latency)
            results: dict[str, dict[str, Any]] = {}
            try:
                if not args.only_syncd:
                    results["fetch-only baseline"] = _child("fetch", url, mode)
                    _show("fetch-only baseline", results["fetch-only baseline"])
                if args.official:
                    results["official client all()"] = _child("official", url)
                    _show("official client all()", results["official client all()"])
                primed = None
                if args.rest:
                    primed = cluster.create_database(f"bench_{size}_rest")
                    migrate.upgrade(primed)
                    _child("pull", url, primed, "4", "fresh", "")  # untimed: fills the mirror
                for concurrency in args.concurrency:
                    database = primed
                    if database is None:
                        database = cluster.create_database(f"bench_{size}_c{concurrency}")
                        migrate.upgrade(database)
                    name = f"syncd pull, concurrency {concurrency}"
                    profile = f"{args.profile}.c{concurrency}" if args.profile else ""
                    results[name] = _child("pull", url, database, str(concurrency), mode, profile)
                    _show(name, results[name])
            finally:
                simulator.terminate()
                simulator.wait()
            reference = results.get("official client all()") or results.get("fetch-only baseline")
            if reference is not None:
                for name, result in results.items():
                    if name.startswith("syncd"):
                        ratio = reference["seconds"] / result["seconds"]
                        print(f"  {name}: {ratio:.2f}x faster than the {_reference_name(results)}")


def _reference_name(results: dict[str, Any]) -> str:
    return "official client" if "official client all()" in results else "fetch-only baseline"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--rest", action="store_true", help="reconcile a mirror at rest")
    parser.add_argument("--official", action="store_true", help="also the official client")
    parser.add_argument("--only-syncd", action="store_true", help="no baseline")
    parser.add_argument("--profile", default="", help="cProfile syncd into FILE.c<N>")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        workers = {"fetch": lambda: fetch_only(rest[0], rest[1] == "rest")}
        workers["official"] = lambda: official(rest[0])
        workers["pull"] = lambda: pull(*rest)
        print(json.dumps(workers[kind]()))
        return
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    run(args)


if __name__ == "__main__":
    main()
