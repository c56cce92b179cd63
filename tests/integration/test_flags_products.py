"""The flag phase reads the products it links through assets the way the pull reads products: a
hundred a request (`GET /products` with `in(id,(...))`, never `GET /products/{id}`), a malformed
product rejected into the ledger and the rest of its page stored, a product absent from the
answer marked read and kept as known. Connect simulator over loopback and a real Postgres."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from syncd import crashpoints
from syncd.connect.client import ConnectClient
from syncd.sim.base import Fault, LoggedRequest, SimServer
from syncd.sim.connect import ConnectSim
from syncd.store.schema import products, sync_ledger, tier_accounts
from syncd.sync.flags import FlagCounts, FlagPhase
from syncd.sync.pull import PullOptions, PullPhase, Stopped

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
LISTING = r"/products$"
ONE_BY_ONE = r"/products/"
PRODUCT_ID = r"PRD-\d{3}-\d{3}-\d{3}"


def linked_products(sim: ConnectSim, n: int) -> tuple[str, list[str]]:
    """An account without TAR holding an asset of each of `n` new products (capability on for
    two in three): the flag phase links it to them and reads them."""
    ids = [str(sim.add_product(updates=i % 3 != 0)["id"]) for i in range(n)]
    account_id = str(sim.add_account()["id"])
    for product_id in ids:
        sim.link(account_id, product_id)
    return account_id, ids


def mirror(engine: Engine, client: ConnectClient, at: datetime = T0) -> None:
    """A pull: the accounts into the mirror (and the products it knows of, after their TTL)."""
    PullPhase(engine, client, PullOptions(), None, clock=lambda: at).run()


def flags(
    engine: Engine,
    client: ConnectClient,
    default: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
) -> FlagCounts:
    phase = FlagPhase(
        engine, client, default=default, run_id=None, should_stop=should_stop, clock=lambda: T0
    )
    return phase.run()


def stored(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {row.id: row for row in conn.execute(select(products))}


def ledger(engine: Engine, outcome: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(sync_ledger).where(sync_ledger.c.outcome == outcome)))


def flag_of(engine: Engine, account_id: str) -> tuple[bool | None, str | None]:
    with engine.connect() as conn:
        row = conn.execute(
            select(tier_accounts.c.sync_enabled, tier_accounts.c.sync_source).where(
                tier_accounts.c.id == account_id
            )
        ).one()
    return row.sync_enabled, row.sync_source


def asked(request: LoggedRequest) -> list[str]:
    return re.findall(PRODUCT_ID, request.query)


def test_250_products_linked_through_assets_are_read_with_three_listings_of_100(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    account, ids = linked_products(sim, 250)
    mirror(engine, client)
    server.clear_log()

    counts = flags(engine, client)

    listings = server.requests_matching("GET", LISTING)
    assert [len(asked(r)) for r in listings] == [100, 100, 50]
    assert all("limit=100&offset=0" in r.query and "in(id," in r.query for r in listings)
    assert sorted(i for r in listings for i in asked(r)) == sorted(ids)
    assert server.requests_matching("GET", ONE_BY_ONE) == []
    assert {i: row.tiers_updates for i, row in stored(engine).items()} == {
        i: sim.products[i].updates for i in ids
    }
    assert (counts.products_read, counts.product_pages, counts.malformed) == (250, 3, 0)
    assert flag_of(engine, account) == (True, "capability")


def test_a_malformed_product_is_rejected_under_the_flag_phase_and_the_rest_stored(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    _, ids = linked_products(sim, 3)
    mirror(engine, client)
    good = sorted(client.get("/products", {"limit": 10}), key=lambda p: str(p["id"]))
    bad = {**good[1], "capabilities": {"tiers": {"updates": "yes"}}}
    page = [good[0], bad, good[2]]
    server.faults.inject(
        Fault(status=200, body=page, headers={"Content-Range": "items 0-2/3"}, match=LISTING[:-1])
    )

    counts = flags(engine, client)

    assert set(stored(engine)) == {good[0]["id"], good[2]["id"]}
    assert (counts.products_read, counts.malformed) == (2, 1)
    [rejected] = ledger(engine, "error")
    assert (rejected.object_id, rejected.phase, rejected.error_kind) == (
        bad["id"],
        "flags",
        "invalid_record",
    )
    assert "capabilities.tiers.updates: expected a boolean" in rejected.message
    assert json.loads(rejected.payload) == bad
    assert ledger(engine, "missing") == []  # it was in the answer, only unusable
    server.clear_log()

    mirror(engine, client, at=T0 + timedelta(minutes=1))  # never read: the pull asks at once

    assert [asked(r) for r in server.requests_matching("GET", LISTING)] == [[bad["id"]]]
    assert set(stored(engine)) == set(ids)


def test_a_product_absent_from_the_answer_is_marked_read_and_not_asked_every_cycle(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    account, (gone,) = linked_products(sim, 1)
    sim.hide_product(gone)  # its asset still names it
    mirror(engine, client)

    counts = flags(engine, client, default=False)

    row = stored(engine)[gone]
    assert (row.tiers_updates, row.name, row.record, row.read_at) == (None, None, None, T0)
    assert (counts.products_read, counts.malformed) == (0, 0)
    [missing] = ledger(engine, "missing")
    assert (missing.object_id, missing.phase) == (gone, "flags")
    assert ledger(engine, "error") == []
    assert flag_of(engine, account) == (False, "default")  # the product says nothing
    server.clear_log()

    mirror(engine, client, at=T0 + timedelta(minutes=5))

    assert server.requests_matching("GET", r"/products") == [], "asked again after the TTL only"


def test_a_refused_listing_rejects_its_chunk_and_the_flags_are_still_decided(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    account, ids = linked_products(sim, 150)
    mirror(engine, client)
    refusal = {"error_code": "VAL_001", "errors": ["Bad filter query."]}
    server.faults.inject(Fault(status=400, body=refusal, match=LISTING[:-1]))
    server.clear_log()

    counts = flags(engine, client)

    first_chunk = sorted(ids)[:100]
    assert set(stored(engine)) == set(sorted(ids)[100:])
    refused = ledger(engine, "error")
    assert sorted(r.object_id for r in refused) == first_chunk
    assert {(r.phase, r.error_kind) for r in refused} == {("flags", "refused")}
    assert (counts.malformed, counts.products_read, counts.failed_parts) == (100, 50, [])
    assert len(server.requests_matching("GET", LISTING)) == 2  # a 400 is not retried
    assert flag_of(engine, account) == (True, "capability")  # from the chunk that was read


def test_products_commit_page_by_page_and_the_stop_flag_is_checked_between_pages(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    _, ids = linked_products(sim, 250)
    mirror(engine, client)
    committed: list[int] = []
    crashpoints.install("flags.products.before_commit", lambda: committed.append(1))
    server.clear_log()

    with pytest.raises(Stopped):
        flags(engine, client, should_stop=lambda: bool(committed))

    assert len(server.requests_matching("GET", LISTING)) == 1
    assert set(stored(engine)) == set(sorted(ids)[:100])
