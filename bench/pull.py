"""Pull benchmark: syncd's pull phase against a fetch-only baseline, same pages, same run.

    .venv/bin/python bench/pull.py                    # 10,000 and 100,000 accounts
    .venv/bin/python bench/pull.py --accounts 20000

For each size, one Connect simulator (a separate process, seeded with that many accounts and their
TARs) serves both contestants, each run as a child process so that its peak RSS is its own:

- baseline: fetches with httpx the pages syncd's pull fetches (the TAR feed, the pending sweep and
  the account feed, same queries, same page size) and throws the bodies away unparsed;
- syncd: one `run_cycle` (the pull phase) into a fresh, migrated database of a private Postgres.

Prints records per second, the ratio of the two times, requests made and peak RSS.
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
QUERIES = {
    "/tier/account-requests": [
        rql.render_query(rql.ordering("events.created.at", "id")),
        rql.render_query(rql.eq("status", "pending"), rql.ordering("id")),
    ],
    "/tier/accounts": [rql.render_query(rql.ordering("events.created.at"))],
}


def baseline(base_url: str) -> dict[str, Any]:
    requests = items = 0
    started = time.perf_counter()
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"ApiKey {KEY}"}, timeout=60
    ) as client:
        for path, queries in QUERIES.items():
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


def pull(base_url: str, database_url: str) -> dict[str, Any]:
    from sqlalchemy import create_engine

    from syncd.connect.client import ConnectClient
    from syncd.sync.cycle import run_cycle
    from syncd.sync.pull import PullOptions

    engine = create_engine(database_url)
    started = time.perf_counter()
    with ConnectClient(base_url, KEY, page_size=PAGE) as client:
        result = run_cycle(engine, client, PullOptions(page_size=PAGE))
        requests = client.stats.total
    seconds = time.perf_counter() - started
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
    return result


def _start_simulator(accounts: int) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "syncd",
            "sim",
            "connect",
            "--port",
            "0",
            "--api-key",
            KEY,
            "--seed",
            "1",
            "--accounts",
            str(accounts),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    summary = process.stdout.readline().strip()
    print(f"  simulator: {summary}")
    return process, url


def run(sizes: list[int]) -> None:
    from syncd.pgcluster import PgCluster
    from syncd.store import migrate

    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; page size {PAGE}")
    with PgCluster() as cluster:
        for size in sizes:
            print(f"\n{size:,} accounts")
            simulator, url = _start_simulator(size)
            try:
                database = cluster.create_database(f"bench_{size}")
                migrate.upgrade(database)
                base = _child("baseline", url)
                ours = _child("pull", url, database)
            finally:
                simulator.terminate()
                simulator.wait()
            if ours["outcome"] != "success":
                raise SystemExit(f"pull ended {ours['outcome']}: {ours['error']}")
            for name, result in (("fetch-only baseline", base), ("syncd pull", ours)):
                print(
                    f"  {name:20} {result['records']:>8,} records {result['seconds']:7.2f} s "
                    f"{result['records'] / result['seconds']:>9,.0f} records/s "
                    f"{result['requests']:>5} requests  peak RSS {result['peak_rss_mib']:.0f} MiB"
                )
            print(
                f"  ratio syncd/baseline time: {ours['seconds'] / base['seconds']:.2f}x "
                "(target at most 2x)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        result = baseline(*rest) if kind == "baseline" else pull(*rest)
        print(json.dumps(result))
        return
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    run(args.accounts)


if __name__ == "__main__":
    main()
