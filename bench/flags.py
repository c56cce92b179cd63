"""Flag benchmark: the flag phase, and the other per-cycle database work, at scale.

    .venv/bin/python bench/flags.py                       # 1,000, 100,000 and 1,000,000 accounts
    .venv/bin/python bench/flags.py --accounts 200000

For each size, a fresh migrated database of a private Postgres is filled in SQL (generate_series):
the accounts, two TARs for four accounts in five (pending, accepted or unsupported), one asset
link for the others, twenty products (one unread). Then, timed (median of three where repeated):

- deciding every account the first time (every row written);
- before issue 6, every cycle: deciding every account again (nothing written) and the scan for
  accounts still to look up through /assets (`accounts_to_link`);
- now, every cycle: the flag phase itself, idle (`FlagPhase.run`: the look-up candidates and the
  decision of the changed accounts; it must send no request), and its two queries alone;
- the flag phase after 1,000 TARs changed status, and after a product's capability flipped;
- the other phases' per-cycle queries when nothing changed, once every TAR is settled and every
  enabled account synced (an installation at rest), for the record: the pull's products to read
  and pending TAR ids, the write-back's first page of pending TARs, the push's first batch of
  candidates (none left: the query finds that out).

The ratio of the idle flag phase at the largest size to the smallest is printed last.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import Connection, Engine, create_engine, text  # noqa: E402

from syncd.connect.client import ConnectClient  # noqa: E402
from syncd.retry import RetryPolicy  # noqa: E402
from syncd.store import flag_inputs, migrate, mirror  # noqa: E402
from syncd.store.asset_links import accounts_to_link  # noqa: E402
from syncd.store.flags import recompute_changed, recompute_flags  # noqa: E402
from syncd.store.links import Selection, iter_candidates  # noqa: E402
from syncd.store.writeback_state import pending_tars  # noqa: E402
from syncd.sync.flags import FlagPhase  # noqa: E402

FILL = [
    """
INSERT INTO products (id, name, tiers_updates, read_at, record)
SELECT 'PRD-000-000-' || lpad(p::text, 3, '0'), 'P' || p, p % 3 <> 0, now(), '{}'::jsonb
FROM generate_series(1, 19) AS p
""",
    """
INSERT INTO tier_accounts (id, name, type, version, record)
SELECT 'TA-' || lpad((n / 100000000)::text, 4, '0') || '-'
       || lpad((n / 10000 % 10000)::text, 4, '0') || '-' || lpad((n % 10000)::text, 4, '0'),
       'Account ' || n, 'customer', 1, '{}'::jsonb
FROM generate_series(1, :n) AS n
""",
    """
INSERT INTO tier_account_requests
    (id, account_id, account_version, product_id, type, status, created_at, record)
SELECT 'TAR-' || substr(a.id, 4) || '-001-' || lpad(k::text, 3, '0'), a.id, 1,
       'PRD-000-000-' || lpad((1 + abs(hashtext(a.id)::bigint + k) % 20)::text, 3, '0'),
       'update',
       (ARRAY['pending', 'accepted', 'unsupported'])[1 + abs(hashtext(a.id)::bigint + k) % 3],
       now(), '{}'::jsonb
FROM tier_accounts a, generate_series(1, 2) AS k
WHERE abs(hashtext(a.id)::bigint) % 5 <> 0
""",
    """
INSERT INTO account_products (account_id, product_id, asset_id)
SELECT a.id, 'PRD-000-000-' || lpad((1 + abs(hashtext(a.id)::bigint) % 20)::text, 3, '0'), NULL
FROM tier_accounts a
WHERE abs(hashtext(a.id)::bigint) % 5 = 0
""",
    "ANALYZE",
]
_CHANGE_TARS = text(
    "UPDATE tier_account_requests SET status = 'accepted' WHERE id IN "
    "(SELECT id FROM tier_account_requests WHERE status = 'pending' ORDER BY id LIMIT 1000)"
)
_FLIP_PRODUCT = text(
    "UPDATE products SET tiers_updates = NOT tiers_updates WHERE id = 'PRD-000-000-001'"
)
_AT_REST = [
    "UPDATE tier_account_requests SET status = 'accepted' WHERE status = 'pending'",
    "INSERT INTO crm_links (account_id, crm, state, synced_version) "
    "SELECT id, 'hubspot', 'synced', version FROM tier_accounts WHERE sync_enabled",
    "DELETE FROM flag_dirty",
    "DELETE FROM push_dirty",
    "ANALYZE",
]


def fill(engine: Engine, accounts: int) -> None:
    with engine.begin() as conn:
        for statement in FILL:
            conn.execute(text(statement), {"n": accounts} if ":n" in statement else {})


def timed(label: str, action: Callable[[], object], repeat: int = 1) -> float:
    """Run `action` `repeat` times; print and return the median seconds."""
    times = []
    result: object = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    print(f"  {label:<52} {median:8.3f} s  {result}", flush=True)
    return median


def run(database_url: str, accounts: int) -> float:
    """The size's figures; returns the idle flag phase's seconds."""
    engine = create_engine(database_url)
    # No request may leave an idle flag phase: a port nothing listens on makes any one fail.
    client = ConnectClient("http://127.0.0.1:9/public/v1", "SU-0:none", retry=RetryPolicy(1))
    try:
        started = time.perf_counter()
        fill(engine, accounts)
        print(f"{accounts:,} accounts (filled in {time.perf_counter() - started:.1f} s)")

        def in_transaction(action: Callable[[Connection], object]) -> Callable[[], object]:
            def run_it() -> object:
                with engine.begin() as conn:
                    return action(conn)

            return run_it

        def before_scan(conn: Connection) -> str:
            after, found = "", 0
            while ids := accounts_to_link(conn, after, 1000):
                after, found = ids[-1], found + len(ids)
            return f"{found} accounts to look up"

        def flag_phase() -> object:
            counts = FlagPhase(engine, client, default=False, run_id=None).run()
            assert client.stats.total == 0, "an idle flag phase sent a request"
            return f"decided {counts.enabled + counts.disabled}, changed {counts.changed}"

        def decide_all(conn: Connection) -> object:
            return recompute_flags(conn, default=False)

        def decide_changed(conn: Connection) -> object:
            return recompute_changed(conn, default=False)

        timed("decide every account, first", in_transaction(decide_all))
        print(" before issue 6, every cycle:")
        timed("decide every account again (nothing changed)", in_transaction(decide_all), 3)
        timed("scan for accounts to look up (accounts_to_link)", in_transaction(before_scan), 3)
        print(" now, every cycle:")
        idle = timed("flag phase, idle (FlagPhase.run)", flag_phase, 3)
        timed("  decide the changed accounts", in_transaction(decide_changed), 3)
        timed(
            "  look-up candidates",
            in_transaction(lambda conn: len(flag_inputs.lookup_candidates(conn, "", 1000)[0])),
            3,
        )
        with engine.begin() as conn:
            conn.execute(_CHANGE_TARS)
        timed("flag phase after 1,000 TARs changed status", flag_phase)
        with engine.begin() as conn:
            conn.execute(_FLIP_PRODUCT)
        timed("flag phase after a product's capability flipped", flag_phase)
        with engine.begin() as conn:
            for statement in _AT_REST:
                conn.execute(text(statement))
        print(" other phases' per-cycle queries, at rest:")
        now = datetime.now(UTC)
        timed(
            "pull: products to read",
            in_transaction(lambda conn: len(mirror.products_to_read(conn, now))),
            3,
        )
        timed(
            "pull: pending TAR ids",
            in_transaction(lambda conn: len(mirror.pending_request_ids(conn))),
            3,
        )
        timed(
            "write-back: first page of pending TARs",
            in_transaction(lambda conn: len(pending_tars(conn, "", 500))),
            3,
        )
        selection = Selection(only_enabled=True)
        timed(
            "push: first batch of candidates",
            lambda: len(next(iter_candidates(engine, selection, now, 100), [])),
            3,
        )
        return idle
    finally:
        client.close()
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, action="append", help="sizes to run")
    args = parser.parse_args()
    from syncd.pgcluster import PgCluster

    sizes = args.accounts or [1_000, 100_000, 1_000_000]
    idle: dict[int, float] = {}
    with PgCluster() as cluster:
        for size in sizes:
            database = cluster.create_database(f"bench_flags_{size}")
            migrate.upgrade(database)
            idle[size] = run(database, size)
    if len(idle) > 1:
        small, large = min(idle), max(idle)
        print(
            f"\nidle flag phase: {idle[large]:.3f} s at {large:,} accounts, "
            f"{idle[small]:.3f} s at {small:,}: {idle[large] / idle[small]:.2f}x"
        )


if __name__ == "__main__":
    main()
