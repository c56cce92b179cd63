"""Pages fetched concurrently and stored in order, against the Connect simulator and Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from syncd import crashpoints
from syncd.connect.client import ConnectClient
from syncd.sim.base import SimServer
from syncd.sim.connect import ConnectSim
from syncd.store import mirror
from syncd.store.schema import sync_ledger, tier_account_versions, tier_accounts
from syncd.sync.cycle import run_cycle
from syncd.sync.pull import ACCOUNT_CURSOR, PullOptions

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
OPTIONS = PullOptions(page_size=100, concurrency=4)


def accounts_one_second_apart(sim: ConnectSim, count: int) -> list[datetime]:
    moments = [T0 + timedelta(seconds=n) for n in range(count)]
    for moment in moments:
        sim.add_account(created_at=moment)
    return moments


def stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(tier_accounts)).scalar_one())


def listings(server: SimServer) -> list[str]:
    return [r.query for r in server.requests_matching("GET", r"/tier/accounts$")]


def test_a_crash_after_page_3_of_a_concurrent_scan_leaves_the_cursor_there_and_a_rerun_ends_it(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    moments = accounts_one_second_apart(sim, 1000)
    server.faults.latency = 0.02  # pages overlap in flight, as over a network

    def crash_after_third_page() -> None:
        if crashpoints.times_reached("pull.reconcile.page_committed") == 3:
            raise SystemExit("killed after page 3")

    crashpoints.install("pull.reconcile.page_committed", crash_after_third_page)
    with pytest.raises(SystemExit):
        run_cycle(engine, client, OPTIONS, kind="reconcile", reconcile=True)
    crashpoints.reset()

    assert len(listings(server)) > 3, "later pages were fetched ahead of the store"
    assert stored(engine) == 300
    with engine.connect() as conn:
        assert mirror.get_cursor(conn, ACCOUNT_CURSOR) == moments[299].isoformat()

    rerun = run_cycle(engine, client, OPTIONS)  # the account feed takes over from the cursor

    assert rerun.outcome == "success", rerun.error
    assert stored(engine) == 1000
    with engine.connect() as conn:
        versions = conn.execute(
            select(tier_account_versions.c.account_id, func.count())
            .group_by(tier_account_versions.c.account_id)
            .having(func.count() > 1)
        ).all()
        assert mirror.get_cursor(conn, ACCOUNT_CURSOR) == moments[-1].isoformat()
    assert versions == [], "every account stored once"


def test_a_reconcile_is_the_account_feed_of_its_cycle_and_pages_accounts_once(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    moments = accounts_one_second_apart(sim, 450)

    first = run_cycle(engine, client, OPTIONS, kind="reconcile", reconcile=True)

    assert first.outcome == "success", first.error
    assert stored(engine) == 450
    assert len(listings(server)) == 5, "450 accounts, 100 a page, read once"
    assert first.counts["pull"]["drift"] == 0, "a first scan finds new accounts, not drift"
    with engine.connect() as conn:
        assert mirror.get_cursor(conn, ACCOUNT_CURSOR) == moments[-1].isoformat()
        assert conn.execute(select(sync_ledger.c.outcome)).scalars().all() == []


def test_a_clamped_limit_is_the_page_size_of_the_concurrent_pages(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    accounts_one_second_apart(sim, 437)
    sim.max_limit = 50

    run_cycle(engine, client, PullOptions(page_size=1000, concurrency=4), reconcile=True)

    assert stored(engine) == 437
    queries = listings(server)
    assert next(q for q in queries if "offset=0" in q).endswith("limit=1000&offset=0")
    assert sorted(int(q.rsplit("offset=", 1)[1]) for q in queries) == list(range(0, 437, 50))
