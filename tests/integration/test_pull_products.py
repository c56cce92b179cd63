"""The pull's product part against the Connect simulator over loopback and a real Postgres:
products are listed a hundred a request, checked one by one, and a product Connect no longer
lists keeps what the mirror knew of it until the TTL asks again."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from syncd import crashpoints
from syncd.connect.client import ConnectClient
from syncd.sim.base import Fault, LoggedRequest, SimServer
from syncd.sim.connect import ConnectSim
from syncd.store.schema import products, sync_ledger, tier_accounts
from syncd.sync.flags import FlagPhase
from syncd.sync.pull import PullCounts, PullOptions, PullPhase, Stopped

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
LISTING = r"/products$"
PRODUCT_ID = r"PRD-\d{3}-\d{3}-\d{3}"


def seen_products(sim: ConnectSim, n: int) -> list[str]:
    """`n` products (capability on for two in three), each with a TAR of one changed account."""
    ids = [str(sim.add_product(updates=i % 3 != 0)["id"]) for i in range(n)]
    account_id = str(sim.add_account()["id"])
    for product_id in ids:
        sim.link(account_id, product_id)
    sim.change_account(account_id, name="Changed")
    return ids


def customer_of(sim: ConnectSim, product_id: str) -> str:
    account_id = str(sim.add_account()["id"])
    sim.link(account_id, product_id)
    sim.change_account(account_id, name="Changed")
    return account_id


def pull(
    engine: Engine,
    client: ConnectClient,
    at: datetime = T0,
    ttl: timedelta = timedelta(hours=1),
    should_stop: Callable[[], bool] = lambda: False,
) -> PullCounts:
    phase = PullPhase(
        engine,
        client,
        PullOptions(product_ttl=ttl),
        None,
        clock=lambda: at,
        should_stop=should_stop,
    )
    return phase.run()


def stored(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {row.id: row for row in conn.execute(select(products))}


def ledger(engine: Engine, outcome: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(sync_ledger).where(sync_ledger.c.outcome == outcome)))


def asked(request: LoggedRequest) -> list[str]:
    return re.findall(PRODUCT_ID, request.query)


@pytest.fixture(autouse=True)
def _no_hooks() -> Iterator[None]:
    yield
    crashpoints.reset()


def test_250_products_are_read_with_three_listings_of_100_and_every_capability_stored(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    ids = seen_products(sim, 250)

    counts = pull(engine, client)

    listings = server.requests_matching("GET", LISTING)
    assert [len(asked(r)) for r in listings] == [100, 100, 50]
    assert all("limit=100&offset=0" in r.query and "in(id," in r.query for r in listings)
    assert sorted(i for r in listings for i in asked(r)) == sorted(ids)
    assert server.requests_matching("GET", r"/products/") == []
    assert {i: row.tiers_updates for i, row in stored(engine).items()} == {
        i: sim.products[i].updates for i in ids
    }
    assert counts.products_read == 250
    assert counts.malformed == 0


def test_a_malformed_product_is_rejected_into_the_ledger_and_the_rest_of_its_page_stored(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    ids = seen_products(sim, 3)
    good = client.get("/products", {"limit": 10})
    bad = {**good[1], "capabilities": {"tiers": {"updates": "yes"}}}
    page = [good[0], bad, good[2]]
    server.faults.inject(
        Fault(status=200, body=page, headers={"Content-Range": "items 0-2/3"}, match=LISTING[:-1])
    )

    counts = pull(engine, client)

    assert set(stored(engine)) == {good[0]["id"], good[2]["id"]}
    assert counts.products_read == 2
    assert counts.malformed == 1
    [rejected] = ledger(engine, "error")
    assert (rejected.object_id, rejected.phase, rejected.error_kind) == (
        bad["id"],
        "products",
        "invalid_record",
    )
    assert "capabilities.tiers.updates: expected a boolean" in rejected.message
    assert json.loads(rejected.payload) == bad
    assert ledger(engine, "missing") == []  # it was in the answer, only unusable

    again = pull(engine, client, at=T0 + timedelta(minutes=1))  # asked again at once

    assert [asked(r) for r in server.requests_matching("GET", LISTING)][-1] == [bad["id"]]
    assert again.products_read == 1
    assert set(stored(engine)) == set(ids)


def test_a_product_connect_no_longer_lists_keeps_its_capability_until_the_ttl_asks_again(
    engine: Engine,
    sim: ConnectSim,
    server: SimServer,
    client: ConnectClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gone, kept = seen_products(sim, 2)
    pull(engine, client)
    assert stored(engine)[gone].tiers_updates is False
    sim.set_capability(gone, True)
    sim.hide_product(gone)
    later = T0 + timedelta(hours=2)

    with caplog.at_level(logging.WARNING, logger="syncd.sync.pull_products"):
        counts = pull(engine, client, at=later)

    row = stored(engine)[gone]
    assert row.tiers_updates is False  # what was known stays: no flag moves on a vanished product
    assert row.record["id"] == gone
    assert row.read_at == later  # marked read: not asked again every cycle
    assert stored(engine)[kept].read_at == later
    assert counts.products_read == 1
    assert counts.malformed == 0
    assert [r.object_id for r in ledger(engine, "missing")] == [gone]
    missing_logs = [r for r in caplog.records if r.msg == "product_missing"]
    assert [getattr(r, "product_ids", None) for r in missing_logs] == [[gone]]

    server.clear_log()
    pull(engine, client, at=later + timedelta(minutes=5))
    assert server.requests_matching("GET", LISTING) == []

    pull(engine, client, at=later + timedelta(hours=2))
    assert [asked(r) for r in server.requests_matching("GET", LISTING)] == [sorted([gone, kept])]


def test_a_never_read_product_missing_from_the_answer_leaves_the_flag_to_its_tars(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    on, off = str(sim.add_product(updates=True)["id"]), str(sim.add_product(updates=False)["id"])
    pending, unsupported = customer_of(sim, on), customer_of(sim, off)
    sim.hide_product(on)
    sim.hide_product(off)

    pull(engine, client)
    FlagPhase(engine, client, default=False, run_id=None).run()

    rows = stored(engine)
    assert {p: (rows[p].tiers_updates, rows[p].name, rows[p].record) for p in rows} == {
        on: (None, None, None),
        off: (None, None, None),
    }
    with engine.connect() as conn:
        rows_of = conn.execute(select(tier_accounts.c.id, tier_accounts.c.sync_enabled))
        flags = {row.id: row.sync_enabled for row in rows_of}
    assert flags == {pending: True, unsupported: False}  # as for a product never read
    server.clear_log()
    pull(engine, client, at=T0 + timedelta(minutes=5))
    assert server.requests_matching("GET", r"/products") == []


def test_an_answer_that_cannot_tell_what_is_absent_marks_nothing(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    first, second = seen_products(sim, 2)
    # No Content-Range: the one product could be a clamped page as well as the whole answer.
    only_first = client.get(f"/products/{first}")
    server.faults.inject(Fault(status=200, body=[only_first], match=LISTING[:-1]))

    pull(engine, client)

    assert set(stored(engine)) == {first}
    assert ledger(engine, "missing") == []
    server.clear_log()
    pull(engine, client, at=T0 + timedelta(minutes=5))
    assert [asked(r) for r in server.requests_matching("GET", LISTING)] == [[second]]
    assert set(stored(engine)) == {first, second}


def test_a_refused_listing_rejects_its_chunk_and_the_next_chunks_are_read(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    ids = seen_products(sim, 150)
    refusal = {"error_code": "VAL_001", "errors": ["Bad filter query."]}
    server.faults.inject(Fault(status=400, body=refusal, match=LISTING[:-1]))

    counts = pull(engine, client)

    first_chunk = sorted(ids)[:100]
    assert set(stored(engine)) == set(sorted(ids)[100:])
    assert sorted(r.object_id for r in ledger(engine, "error")) == first_chunk
    assert counts.malformed == 100
    assert counts.failed_feeds == []
    assert len(server.requests_matching("GET", LISTING)) == 2  # a 400 is not retried


def test_products_commit_page_by_page_and_a_failed_run_resumes_with_the_rest(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    ids = seen_products(sim, 250)

    def fail_on_second_commit() -> None:
        if crashpoints.times_reached("pull.products.before_commit") == 2:
            raise RuntimeError("injected before the second product commit")

    crashpoints.install("pull.products.before_commit", fail_on_second_commit)
    with pytest.raises(RuntimeError, match="second product commit"):
        pull(engine, client)
    crashpoints.reset()
    assert set(stored(engine)) == set(sorted(ids)[:100])
    server.clear_log()

    counts = pull(engine, client, at=T0 + timedelta(minutes=5))

    assert [len(asked(r)) for r in server.requests_matching("GET", LISTING)] == [100, 50]
    assert counts.products_read == 150
    assert set(stored(engine)) == set(ids)


def test_the_stop_flag_is_checked_between_product_pages(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    ids = seen_products(sim, 250)
    committed: list[int] = []
    crashpoints.install("pull.products.before_commit", lambda: committed.append(1))

    with pytest.raises(Stopped):
        pull(engine, client, should_stop=lambda: bool(committed))

    assert len(server.requests_matching("GET", LISTING)) == 1
    assert set(stored(engine)) == set(sorted(ids)[:100])
