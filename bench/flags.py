"""Flag benchmark: deciding every account's flag in one statement, at scale.

    .venv/bin/python bench/flags.py                     # 100,000 and 1,000,000 accounts
    .venv/bin/python bench/flags.py --accounts 200000

For each size, a fresh migrated database of a private Postgres is filled in SQL (generate_series):
the accounts, two TARs for four accounts in five (pending, accepted or unsupported), one asset
link for the others, twenty products (one unread). Then, timed:

- the first `recompute_flags` (every row written);
- then twice: an idle one (nothing changed: nothing written), and the flag phase's idle check for
  accounts still to look up (`accounts_to_link`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import Engine, create_engine, text  # noqa: E402

from syncd.store import migrate  # noqa: E402
from syncd.store.asset_links import accounts_to_link  # noqa: E402
from syncd.store.flags import recompute_flags  # noqa: E402

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


def fill(engine: Engine, accounts: int) -> None:
    with engine.begin() as conn:
        for statement in FILL:
            conn.execute(text(statement), {"n": accounts} if ":n" in statement else {})


def timed(label: str, action: object) -> None:
    started = time.perf_counter()
    result = action()  # type: ignore[operator]
    print(f"  {label:<28} {time.perf_counter() - started:8.2f} s  {result}")


def run(database_url: str, accounts: int) -> None:
    engine = create_engine(database_url)
    try:
        started = time.perf_counter()
        fill(engine, accounts)
        print(f"{accounts:,} accounts (filled in {time.perf_counter() - started:.1f} s)")

        def recompute() -> object:
            with engine.begin() as conn:
                return recompute_flags(conn, default=False)

        def to_link() -> object:
            with engine.connect() as conn:
                return f"{len(accounts_to_link(conn, '', 1000))} accounts to look up"

        timed("recompute, first", recompute)
        for _ in range(2):  # the first idle run also sets the hint bits the first one left
            timed("recompute, idle", recompute)
            timed("accounts to look up, idle", to_link)
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, action="append", help="sizes to run")
    args = parser.parse_args()
    from syncd.pgcluster import PgCluster

    with PgCluster() as cluster:
        for size in args.accounts or [100_000, 1_000_000]:
            database = cluster.create_database(f"bench_flags_{size}")
            migrate.upgrade(database)
            run(database, size)


if __name__ == "__main__":
    main()
