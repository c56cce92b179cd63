"""The pull phase against the Connect simulator over loopback and a real Postgres."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select

from syncd import crashpoints
from syncd.connect.client import ConnectClient
from syncd.retry import RetryPolicy
from syncd.sim.base import Fault, SimServer
from syncd.sim.connect import ConnectSim
from syncd.store import mirror
from syncd.store.schema import (
    products,
    sync_ledger,
    sync_runs,
    tier_account_requests,
    tier_account_versions,
    tier_accounts,
)
from syncd.sync.cycle import run_cycle
from syncd.sync.pull import TAR_CURSOR, PullOptions

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def account_with_product(sim: ConnectSim, updates: bool = True) -> tuple[str, str]:
    product = sim.add_product(updates=updates)
    account = sim.add_account()
    sim.link(account["id"], product["id"])
    return account["id"], product["id"]


def make_tars(sim: ConnectSim, moments: list[datetime], accounts: int = 50) -> list[str]:
    """One TAR at each moment, spread over `accounts` accounts (a few changes each)."""
    product = sim.add_product(updates=True)
    ids = []
    for _ in range(accounts):
        ids.append(sim.add_account()["id"])
        sim.link(ids[-1], product["id"])
    made: list[str] = []
    for index, moment in enumerate(moments):
        made.extend(t["id"] for t in sim.add_tars(ids[index % accounts], 1, created_at=moment))
    return made


def test_1000_tars_sharing_one_created_at_all_arrive_with_pages_of_100(
    engine: Engine, sim: ConnectSim, client: ConnectClient
) -> None:
    product = sim.add_product(updates=True)
    for _ in range(100):
        account_id = sim.add_account()["id"]
        sim.link(account_id, product["id"])
        sim.add_tars(account_id, 10, created_at=T0)

    result = run_cycle(engine, client, PullOptions(page_size=100))

    assert result.outcome == "success", result.error
    assert count(engine, tier_account_requests) == 1000
    assert result.counts["pull"]["pages"] >= 10


def test_a_server_clamping_limit_to_50_loses_nothing(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    sim.max_limit = 50
    make_tars(sim, [T0 + timedelta(minutes=minute) for minute in range(437)])

    run_cycle(engine, client, PullOptions(page_size=1000))

    assert count(engine, tier_account_requests) == 437
    feed = server.requests_matching("GET", r"/tier/account-requests$")
    # The first page of each listing asks 1000; the server's 50 is the page size after it.
    firsts = [r for r in feed if "offset=0" in r.query]
    assert firsts
    assert all("limit=1000" in r.query for r in firsts)
    assert all("limit=50&" in r.query for r in feed if r not in firsts)


def test_a_tar_created_while_the_feed_is_paged_arrives_in_that_run_or_the_next(
    engine: Engine, sim: ConnectSim, client: ConnectClient
) -> None:
    make_tars(sim, [T0 + timedelta(seconds=second) for second in range(300)])
    account_id = next(iter(sim.accounts))
    late: list[str] = []

    def create_one_more() -> None:
        if not late:
            tar = sim.add_tars(account_id, 1, created_at=T0 + timedelta(seconds=5))[0]
            late.append(tar["id"])

    crashpoints.install("pull.tar_feed.page_committed", create_one_more)
    run_cycle(engine, client, PullOptions(page_size=100))
    crashpoints.reset()
    run_cycle(engine, client, PullOptions(page_size=100))

    with engine.connect() as conn:
        ids = set(conn.execute(select(tier_account_requests.c.id)).scalars())
    assert late
    assert late[0] in ids
    assert len(ids) == 301


def test_an_exception_after_page_k_leaves_the_cursor_at_page_k_and_the_next_run_completes(
    engine: Engine, sim: ConnectSim, client: ConnectClient
) -> None:
    created = [T0 + timedelta(seconds=i) for i in range(1000)]
    make_tars(sim, created)

    def fail_on_third_page() -> None:
        if crashpoints.times_reached("pull.tar_feed.page_committed") == 3:
            raise RuntimeError("injected after page 3")

    crashpoints.install("pull.tar_feed.page_committed", fail_on_third_page)
    first = run_cycle(engine, client, PullOptions(page_size=100))
    crashpoints.reset()

    assert first.outcome == "failed"
    assert "injected after page 3" in (first.error or "")
    with engine.connect() as conn:
        assert mirror.get_cursor(conn, TAR_CURSOR) == created[299].isoformat()
    assert count(engine, tier_account_requests) == 300

    second = run_cycle(engine, client, PullOptions(page_size=100))
    assert second.outcome == "success", second.error
    assert count(engine, tier_account_requests) == 1000
    with engine.connect() as conn:
        assert mirror.get_cursor(conn, TAR_CURSOR) == created[-1].isoformat()


def test_a_429_with_retry_after_2_is_honoured(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    account_with_product(sim)
    server.faults.inject(
        Fault(
            status=429, headers={"Retry-After": "2"}, match=r"GET /public/v1/tier/account-requests"
        )
    )

    result = run_cycle(engine, client, PullOptions())

    assert result.outcome == "success", result.error
    feed = server.requests_matching("GET", r"/tier/account-requests$")
    assert feed[0].status == 429
    assert feed[1].status == 200
    assert feed[1].at - feed[0].at >= 2.0


def test_a_second_cycle_with_no_change_makes_at_most_3_requests_per_collection(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    sim.seed(7, accounts=150)
    assert run_cycle(engine, client, PullOptions(page_size=1000)).outcome == "success"
    server.clear_log()

    again = run_cycle(engine, client, PullOptions(page_size=1000))

    assert again.outcome == "success"
    by_collection: dict[str, int] = {}
    for logged in server.requests:
        collection = "/".join(logged.path.split("/")[3:5])
        by_collection[collection] = by_collection.get(collection, 0) + 1
    assert by_collection, "the idle cycle asked nothing"
    assert max(by_collection.values()) <= 3, by_collection
    assert all(r.method == "GET" for r in server.requests)
    assert again.counts["pull"]["requests_written"] == 0
    assert again.counts["pull"]["accounts_written"] == 0


def test_malformed_records_land_in_the_ledger_and_the_rest_of_the_page_in_the_mirror(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    account_id, _ = account_with_product(sim)
    good = sim.add_tars(account_id, 3, created_at=T0)
    broken_status = {**good[0], "id": "TAR-9999-9999-9999-001-001", "status": "approved"}
    wrong_id = {**good[0], "id": "TAR-12"}
    page = [good[0], broken_status, good[1], wrong_id, good[2]]
    server.faults.inject(
        Fault(status=200, body=page, match=r"GET /public/v1/tier/account-requests\?.*created")
    )

    result = run_cycle(engine, client, PullOptions())

    assert result.outcome == "partial"
    assert result.exit_code == 3
    assert count(engine, tier_account_requests) == 3
    with engine.connect() as conn:
        rows = conn.execute(select(sync_ledger).where(sync_ledger.c.outcome == "malformed")).all()
    assert {row.object_id for row in rows} == {"TAR-9999-9999-9999-001-001", "TAR-12"}
    by_id = {row.object_id: row for row in rows}
    assert "status: unknown value 'approved'" in by_id["TAR-9999-9999-9999-001-001"].message
    assert json.loads(by_id["TAR-12"].payload) == wrong_id


def test_an_account_snapshot_moves_the_account_forward_only_when_newer(
    engine: Engine, sim: ConnectSim, client: ConnectClient
) -> None:
    account_id, _ = account_with_product(sim)
    sim.change_account(account_id, name="Renamed once")
    sim.change_account(account_id, name="Renamed twice")
    run_cycle(engine, client, PullOptions())

    with engine.connect() as conn:
        row = conn.execute(select(tier_accounts).where(tier_accounts.c.id == account_id)).one()
        versions = (
            conn.execute(
                select(tier_account_versions.c.version).where(
                    tier_account_versions.c.account_id == account_id
                )
            )
            .scalars()
            .all()
        )
    assert row.name == "Renamed twice"
    assert row.version == max(versions)
    assert len(versions) >= 2


def test_a_tar_settled_outside_syncd_is_read_back_by_id(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    account_id, _ = account_with_product(sim)
    tar = sim.change_account(account_id, at=T0, name="Changed")[0]
    sim.change_account(account_id, at=T0 + timedelta(hours=1), name="Changed again")
    run_cycle(engine, client, PullOptions())
    client.post(f"/tier/account-requests/{tar['id']}/accept")
    server.clear_log()

    run_cycle(engine, client, PullOptions())

    with engine.connect() as conn:
        status = conn.execute(
            select(tier_account_requests.c.status).where(tier_account_requests.c.id == tar["id"])
        ).scalar_one()
    assert status == "accepted"
    assert any(f'in(id,("{tar["id"]}"))' in r.query for r in server.requests)


def test_the_capability_of_each_product_seen_is_read_once_within_its_ttl(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    on_account, on_product = account_with_product(sim, updates=True)
    off_account, off_product = account_with_product(sim, updates=False)
    sim.change_account(on_account, name="A")
    sim.change_account(off_account, name="B")

    run_cycle(engine, client, PullOptions())
    run_cycle(engine, client, PullOptions())

    with engine.connect() as conn:
        flags = dict(conn.execute(select(products.c.id, products.c.tiers_updates)).all())
    assert flags == {on_product: True, off_product: False}
    # Both products in one `in(id,(...))` listing; none read again within the TTL.
    [listing] = server.requests_matching("GET", r"/products$")
    assert on_product in listing.query
    assert off_product in listing.query
    assert server.requests_matching("GET", r"/products/") == []


def test_reconcile_records_accounts_the_feeds_missed_as_drift(
    engine: Engine, sim: ConnectSim, client: ConnectClient
) -> None:
    sim.seed(3, accounts=40)
    run_cycle(engine, client, PullOptions())
    with engine.begin() as conn:
        conn.execute(
            tier_accounts.delete().where(
                tier_accounts.c.id.in_(
                    select(tier_accounts.c.id)
                    .order_by(tier_accounts.c.id)
                    .limit(5)
                    .scalar_subquery()
                )
            )
        )

    result = run_cycle(engine, client, PullOptions(), kind="reconcile", reconcile=True)

    assert result.counts["pull"]["drift"] == 5
    assert count(engine, tier_accounts) == len(sim.accounts)
    with engine.connect() as conn:
        drift = conn.execute(
            select(func.count()).select_from(sync_ledger).where(sync_ledger.c.outcome == "drift")
        ).scalar_one()
        kinds = set(conn.execute(select(sync_runs.c.kind)).scalars())
    assert drift == 5
    assert "reconcile" in kinds


def test_a_fatal_auth_error_fails_the_run_with_a_message_and_no_key(
    engine: Engine, server: SimServer
) -> None:
    with ConnectClient(f"{server.url}/public/v1", "SU-1:wrong", retry=RetryPolicy()) as bad:
        result = run_cycle(engine, bad, PullOptions())
    assert result.outcome == "failed"
    assert "AUTH_001" in (result.error or "")
    assert "wrong" not in (result.error or "")


def test_a_page_that_is_not_json_is_kept_in_the_ledger_and_the_next_cycle_is_clean(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    make_tars(sim, [T0 + timedelta(seconds=s) for s in range(20)])
    page = b'[{"id": "TAR-1", "status": "pend'
    server.faults.inject(
        Fault(status=200, body=page, match=r"GET /public/v1/tier/account-requests\?ordering")
    )

    broken = run_cycle(engine, client, PullOptions())

    assert broken.outcome == "failed"
    assert broken.counts["pull"]["failed_feeds"] == ["tar_feed"]
    with engine.connect() as conn:
        entry = conn.execute(select(sync_ledger).where(sync_ledger.c.object_type == "page")).one()
        assert mirror.get_cursor(conn, TAR_CURSOR) is None
    assert entry.payload == page.decode()
    assert "not JSON" in entry.message
    assert count(engine, tier_account_requests) == 20, "the pending sweep still stored them"

    again = run_cycle(engine, client, PullOptions())
    assert again.outcome == "success"
    with engine.connect() as conn:
        assert mirror.get_cursor(conn, TAR_CURSOR) is not None
