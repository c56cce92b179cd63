"""Scrape benchmark: the backlog gauges' statement (`/metrics`) and `syncd status`'s backlog
counts at scale, before and after migration 0008.

    .venv/bin/python bench/scrape.py                        # 1,000,000 accounts
    .venv/bin/python bench/scrape.py --accounts 100000 --repeat 10
    .venv/bin/python bench/scrape.py --record-bytes 1000    # account records of about 1 kB

For each size, a fresh database of a private Postgres is migrated to 0007 and filled the way
`bench/flags.py` fills it (its `fill`: accounts, TARs, asset links, products), then brought to
a working state: every flag decided (sync default off), a `synced` CRM link per enabled account,
the push's queue emptied as a push leaves it, and then one account in a thousand changed (a
backlog: the enabled ones are marked in `push_dirty`). `--record-bytes` widens every account's
`record` (the fill stores `{}`; Connect's records are larger), since the old statements read
the accounts' heap. Then `VACUUM ANALYZE`, as autovacuum would leave it.

- before: the statements of 0007's code (kept below as they were), timed `--repeat` times after
  a warm-up (median), and their `EXPLAIN (ANALYZE, BUFFERS)`: shared buffers hit and read, per
  gauge;
- after: the database upgraded to head (0008's index), and the same for the statements syncd
  now runs (`syncd.service.metrics_db.BACKLOG_SQL`, the counts of `syncd.service.status`), plus
  the whole `syncd status` collection for the record.

Both must give the same numbers (checked); the ratio after/before is printed last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from flags import fill  # noqa: E402  (bench/flags.py)
from sqlalchemy import Engine, TextClause, create_engine, text  # noqa: E402

from syncd.service import status  # noqa: E402
from syncd.service.metrics_db import BACKLOG_SQL  # noqa: E402
from syncd.store import migrate, push_queue  # noqa: E402
from syncd.store.flags import recompute_flags  # noqa: E402

# 0007's statements, as they were.
BEFORE_BACKLOG = text(
    """
    SELECT
        (SELECT count(*) FROM v_pending_tars) AS pending_tars,
        (SELECT count(*) FROM v_account_sync WHERE behind AND sync_enabled IS TRUE)
            AS accounts_behind,
        (SELECT count(*) FROM v_account_sync WHERE sync_enabled IS NOT TRUE) AS accounts_sync_off
    """
)
BEFORE_STATUS_BEHIND = text(
    "SELECT count(*) FILTER (WHERE behind AND sync_enabled) AS sync_on, "
    "count(*) FILTER (WHERE behind AND sync_enabled IS NOT TRUE) AS sync_off "
    "FROM v_account_sync"
)

SETTLE = [
    "INSERT INTO crm_links (account_id, crm, state, synced_version, synced_at) "
    "SELECT id, 'hubspot', 'synced', version, now() FROM tier_accounts WHERE sync_enabled",
    "DELETE FROM flag_dirty",
]
STIR = "UPDATE tier_accounts SET version = version + 1 WHERE abs(hashtext(id)) % 1000 = 0"
# Hex digests, which pglz cannot shrink much, so the heap holds about `bytes` per account.
WIDEN = (
    "UPDATE tier_accounts SET record = jsonb_build_object('pad', (SELECT string_agg("
    "md5(tier_accounts.id || g::text), '') FROM generate_series(1, :digests) AS g))"
)


def prepare(engine: Engine, accounts: int, record_bytes: int) -> None:
    """bench/flags.py's fill, then a working state (module doc)."""
    fill(engine, accounts)
    with engine.begin() as conn:
        decided = recompute_flags(conn, default=False)
        for statement in SETTLE:
            conn.execute(text(statement))
        push_queue.unmark(conn)
        conn.execute(text(STIR))
        if record_bytes > 0:
            conn.execute(text(WIDEN), {"digests": max(record_bytes // 32, 1)})
    vacuum = "VACUUM (FULL, ANALYZE)" if record_bytes > 0 else "VACUUM ANALYZE"
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text(vacuum))
    print(f"  flags: {decided.enabled:,} on, {decided.disabled:,} off", flush=True)


def timed(engine: Engine, statement: TextClause, repeat: int) -> tuple[float, tuple[Any, ...]]:
    """Median seconds of `statement` over `repeat` runs after one warm-up, and its row."""
    with engine.connect() as conn:
        row = tuple(conn.execute(statement).one())
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            conn.execute(statement).one()
            times.append(time.perf_counter() - started)
    return statistics.median(times), row


def buffers(engine: Engine, statement: TextClause) -> dict[str, int]:
    """Shared buffers (hit + read) of the whole statement and of each scalar subquery, from
    EXPLAIN (ANALYZE, BUFFERS); and the heap fetches of its index-only scans."""
    with engine.connect() as conn:
        explained = conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement.text}"))
        plan = explained.scalar_one()
    root = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]

    def shared(node: dict[str, Any]) -> int:
        return int(node.get("Shared Hit Blocks", 0)) + int(node.get("Shared Read Blocks", 0))

    def heap_fetches(node: dict[str, Any]) -> int:
        own = int(node.get("Heap Fetches", 0))
        return own + sum(heap_fetches(child) for child in node.get("Plans", []))

    out = {"total": shared(root), "heap fetches": heap_fetches(root)}
    for child in root.get("Plans", []):
        if "Subplan Name" in child:
            out[child["Subplan Name"]] = shared(child)
    return out


def measure(engine: Engine, label: str, statement: TextClause, repeat: int) -> dict[str, Any]:
    seconds, row = timed(engine, statement, repeat)
    found = buffers(engine, statement)
    print(f"  {label:<40} {seconds * 1000:9.2f} ms  {row}  buffers {found}", flush=True)
    return {"seconds": seconds, "row": row, "buffers": found["total"]}


def run(database_url: str, accounts: int, repeat: int, record_bytes: int) -> dict[str, float]:
    """One size: before and after; returns the ratios after/before of the backlog statement."""
    engine = create_engine(database_url)
    try:
        started = time.perf_counter()
        migrate.upgrade(engine, "0007")
        prepare(engine, accounts, record_bytes)
        print(f"{accounts:,} accounts (prepared in {time.perf_counter() - started:.1f} s)")
        with engine.connect() as conn:
            size = conn.execute(
                text("SELECT pg_size_pretty(pg_table_size('tier_accounts'))")
            ).scalar_one()
        print(f"  tier_accounts: {size}")
        print(" before (0007):")
        before = measure(engine, "backlog gauges (/metrics)", BEFORE_BACKLOG, repeat)
        status_before = measure(engine, "status: accounts behind", BEFORE_STATUS_BEHIND, repeat)

        migrate.upgrade(engine)
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        print(" after (head):")
        after = measure(engine, "backlog gauges (/metrics)", BACKLOG_SQL, repeat)
        status_after = [
            measure(engine, f"status: {name}", statement, repeat)
            for name, statement in status.BEHIND_COUNTS.items()
        ]
        collect(engine, repeat)
        assert after["row"] == before["row"], (before["row"], after["row"])
        assert tuple(s["row"][0] for s in status_after) == status_before["row"]
        return {
            "time": after["seconds"] / before["seconds"],
            "buffers": after["buffers"] / max(before["buffers"], 1),
        }
    finally:
        engine.dispose()


def collect(engine: Engine, repeat: int) -> None:
    """The whole `syncd status` collection, for the record (it reads more than the backlog)."""
    times = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        status.collect(engine)
        times.append(time.perf_counter() - started)
    print(f"  {'syncd status (all of it)':<40} {statistics.median(times[1:]) * 1000:9.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, action="append", help="sizes to run")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs of each statement")
    parser.add_argument(
        "--record-bytes", type=int, default=0, help="widen each account's record to about this"
    )
    args = parser.parse_args()
    from syncd.pgcluster import PgCluster

    sizes = args.accounts or [1_000_000]
    ratios: dict[int, dict[str, float]] = {}
    with PgCluster() as cluster:
        for size in sizes:
            database = cluster.create_database(f"bench_scrape_{size}")
            ratios[size] = run(database, size, max(args.repeat, 1), args.record_bytes)
    for size, ratio in ratios.items():
        print(
            f"\nbacklog gauges at {size:,} accounts, after/before: "
            f"time {ratio['time']:.4f}x, shared buffers {ratio['buffers']:.4f}x"
        )


if __name__ == "__main__":
    main()
