"""The flag phase and operator overrides, against the Connect simulator and a real Postgres."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import unquote

import pytest
from sqlalchemy import Engine, select

from syncd.connect.client import ConnectClient
from syncd.sim.base import Fault, SimServer
from syncd.sim.connect import ConnectSim
from syncd.store.flags import UnknownAccount, set_override
from syncd.store.schema import (
    account_products,
    products,
    sync_ledger,
    sync_overrides,
    tier_accounts,
)
from syncd.sync.cycle import run_cycle
from syncd.sync.flags import FlagCounts, FlagPhase
from syncd.sync.pull import PullOptions

ASSETS = r"/assets$"
PRODUCTS = r"/products$"
ONE_BY_ONE = r"/products/"


def pull(engine: Engine, client: ConnectClient, product_ttl: float = 3600) -> None:
    result = run_cycle(
        engine, client, PullOptions(page_size=100, product_ttl=timedelta(seconds=product_ttl))
    )
    assert result.outcome in ("success", "partial"), result.error


def flags(engine: Engine, client: ConnectClient, default: bool = False) -> FlagCounts:
    return FlagPhase(engine, client, default=default, run_id=None).run()


def flag_of(engine: Engine, account_id: str) -> tuple[bool | None, str | None]:
    with engine.connect() as conn:
        row = conn.execute(
            select(tier_accounts.c.sync_enabled, tier_accounts.c.sync_source).where(
                tier_accounts.c.id == account_id
            )
        ).one()
    return row.sync_enabled, row.sync_source


def customer_of(sim: ConnectSim, *product_ids: str, changed: bool = False) -> str:
    account_id = str(sim.add_account()["id"])
    for product_id in product_ids:
        sim.link(account_id, product_id)
    if changed:
        sim.change_account(account_id)
    return account_id


def test_the_flag_follows_the_capability_of_the_products_read_from_connect(
    engine: Engine, sim: ConnectSim, client: ConnectClient
) -> None:
    on, off = sim.add_product(updates=True)["id"], sim.add_product(updates=False)["id"]
    both = customer_of(sim, on, off, changed=True)
    only_off = customer_of(sim, off, changed=True)
    pull(engine, client)

    counts = flags(engine, client, default=True)

    assert flag_of(engine, both) == (True, "capability")
    assert flag_of(engine, only_off) == (False, "capability")
    assert (counts.enabled, counts.disabled, counts.changed) == (1, 1, 2)

    sim.set_capability(off, True)
    pull(engine, client, product_ttl=0)  # the capability is read again
    assert flags(engine, client, default=False).changed == 1
    assert flag_of(engine, only_off) == (True, "capability")


def test_an_unread_product_counts_on_by_a_pending_tar_and_off_by_an_unsupported_one(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    pending = customer_of(sim, sim.add_product(updates=True)["id"], changed=True)
    unsupported = customer_of(sim, sim.add_product(updates=False)["id"], changed=True)
    # The products cannot be read (say, the token lacks the permission): only TARs tell.
    server.faults.inject(
        Fault(status=404, body={"error_code": "NOT_FOUND"}, match=r"/products"), 10
    )
    pull(engine, client)
    server.faults.clear()
    with engine.connect() as conn:
        assert conn.execute(select(products.c.id)).all() == []

    flags(engine, client, default=True)

    assert flag_of(engine, pending) == (True, "capability")
    assert flag_of(engine, unsupported) == (False, "capability")


def test_accounts_without_tars_are_linked_through_assets_one_request_per_100_accounts(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    on, off = sim.add_product(updates=True)["id"], sim.add_product(updates=False)["id"]
    reseller = str(sim.add_account(type="reseller")["id"])
    resold = str(sim.add_account(parent_id=reseller)["id"])
    sim.link(resold, off)
    synced = [customer_of(sim, on, off) for _ in range(5)]
    not_synced = [customer_of(sim, off) for _ in range(224)]
    unlinked = [customer_of(sim) for _ in range(20)]
    pull(engine, client)
    assert len(sim.accounts) == 251
    server.clear_log()

    counts = flags(engine, client, default=True)

    listings = server.requests_matching("GET", ASSETS)
    assert len(listings) == 3  # 251 accounts, 100 a request, each answered on one page
    asked = [set(re.findall(r"TA-[\d-]{14}", unquote(r.query))) for r in listings]
    assert [len(ids) for ids in asked] == [100, 100, 51]
    assert set().union(*asked) == set(sim.accounts)
    assert server.requests_matching("GET", ONE_BY_ONE) == []
    [listing] = server.requests_matching("GET", PRODUCTS)  # both products, in one request
    assert set(re.findall(r"PRD-[\d-]{11}", unquote(listing.query))) == {on, off}
    assert counts.looked_up == 251
    assert counts.products_read == 2
    assert counts.linked == 5 * 2 + 224 + 2  # the reseller is linked as tier1 of `resold`
    assert all(flag_of(engine, a) == (True, "capability") for a in synced)
    assert all(flag_of(engine, a) == (False, "capability") for a in [*not_synced, reseller, resold])
    assert all(flag_of(engine, a) == (True, "default") for a in unlinked)


def test_an_idle_second_run_asks_connect_nothing_and_writes_no_flag(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    product = sim.add_product(updates=True)["id"]
    for _ in range(30):
        customer_of(sim, product)
    for _ in range(30):
        customer_of(sim)  # no asset at all: remembered as looked up
    pull(engine, client)
    flags(engine, client)
    server.clear_log()

    counts = flags(engine, client)

    assert server.requests == []
    assert (counts.looked_up, counts.changed) == (0, 0)
    assert (counts.enabled, counts.disabled, counts.full) == (0, 0, False), "nothing decided"
    with engine.connect() as conn:
        decided = conn.execute(select(tier_accounts.c.sync_enabled)).scalars().all()
    assert sorted(decided) == [False] * 30 + [True] * 30


def test_only_new_accounts_are_looked_up_in_a_later_run(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    product = sim.add_product(updates=True)["id"]
    for _ in range(10):
        customer_of(sim)
    pull(engine, client)
    flags(engine, client)
    newcomer = customer_of(sim, product)
    pull(engine, client)
    server.clear_log()

    counts = flags(engine, client)

    (listing,) = server.requests_matching("GET", ASSETS)
    assert set(re.findall(r"TA-[\d-]{14}", unquote(listing.query))) == {newcomer}
    assert counts.linked == 1
    assert flag_of(engine, newcomer) == (True, "capability")


def test_an_account_with_neither_tar_nor_asset_takes_the_configured_default(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    lonely = customer_of(sim)
    pull(engine, client)

    flags(engine, client, default=False)
    assert flag_of(engine, lonely) == (False, "default")
    server.clear_log()
    changed_default = flags(engine, client, default=True)
    assert flag_of(engine, lonely) == (True, "default")
    assert changed_default.full, "a new default decides every account again"
    assert server.requests_matching("GET", ASSETS) == [], "looked up once, not again"


def test_the_override_wins_until_reset_and_every_change_is_kept_in_the_history(
    engine: Engine, sim: ConnectSim, client: ConnectClient
) -> None:
    account = customer_of(sim, sim.add_product(updates=True)["id"], changed=True)
    pull(engine, client)
    flags(engine, client)
    assert flag_of(engine, account) == (True, "capability")

    with engine.begin() as conn:
        change = set_override(
            conn, account, False, actor="alice", reason="legal hold", default=True
        )
    assert (change.old_enabled, change.enabled, change.source) == (True, False, "override")
    assert flag_of(engine, account) == (False, "override")
    flags(engine, client, default=True)
    assert flag_of(engine, account) == (False, "override")

    with engine.begin() as conn:
        set_override(conn, account, None, actor="bob", reason="hold lifted", default=False)
    assert flag_of(engine, account) == (True, "capability")
    with engine.connect() as conn:
        history = conn.execute(
            select(
                sync_overrides.c.actor,
                sync_overrides.c.reason,
                sync_overrides.c.old_value,
                sync_overrides.c.new_value,
            ).order_by(sync_overrides.c.id)
        ).all()
    assert [tuple(row) for row in history] == [
        ("alice", "legal hold", None, False),
        ("bob", "hold lifted", False, None),
    ]


def test_an_override_of_an_unknown_account_or_without_a_reason_is_refused(
    engine: Engine,
) -> None:
    with pytest.raises(UnknownAccount), engine.begin() as conn:
        set_override(conn, "TA-0000-0000-0000", True, actor="alice", reason="x", default=False)
    with pytest.raises(ValueError, match="reason"), engine.begin() as conn:
        set_override(conn, "TA-0000-0000-0000", True, actor="alice", reason=" ", default=False)
    with engine.connect() as conn:
        assert conn.execute(select(sync_overrides.c.id)).all() == []


def test_a_malformed_asset_is_kept_in_the_ledger_and_the_others_are_linked(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    product = sim.add_product(updates=True)["id"]
    good = customer_of(sim)
    bad = customer_of(sim)
    good_asset = sim.link(good, product)
    bad_asset = {**sim.link(bad, product), "product": {"name": "no id"}}
    pull(engine, client)
    server.faults.inject(Fault(status=200, body=[good_asset, bad_asset], match=ASSETS[:-1]))

    counts = flags(engine, client, default=False)

    assert (counts.linked, counts.malformed) == (1, 1)
    assert flag_of(engine, good) == (True, "capability")
    assert flag_of(engine, bad) == (False, "default")
    with engine.connect() as conn:
        entry = conn.execute(select(sync_ledger)).one()
    assert (entry.object_type, entry.object_id, entry.outcome) == (
        "asset",
        bad_asset["id"],
        "malformed",
    )
    assert "product.id: missing" in entry.message


def test_when_assets_cannot_be_listed_the_flags_are_still_decided_and_the_next_run_links(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    account = customer_of(sim, sim.add_product(updates=True)["id"])
    pull(engine, client)
    server.faults.inject(Fault(status=503, match=ASSETS[:-1]), times=10)

    failed = flags(engine, client, default=False)
    server.faults.clear()

    assert failed.failed_parts == ["link_assets"]
    assert flag_of(engine, account) == (False, "default")
    with engine.connect() as conn:
        assert conn.execute(select(sync_ledger.c.phase)).scalars().all() == ["flags.link_assets"]
    assert flags(engine, client, default=False).linked == 1
    assert flag_of(engine, account) == (True, "capability")


def test_products_linked_through_assets_are_read_again_by_the_pull_after_the_ttl(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    product = sim.add_product(updates=True)["id"]
    customer_of(sim, product)
    pull(engine, client)
    flags(engine, client)
    with engine.connect() as conn:
        assert conn.execute(select(account_products.c.product_id)).scalars().all() == [product]
    server.clear_log()

    pull(engine, client, product_ttl=0)

    [listing] = server.requests_matching("GET", r"/products")
    assert (listing.path, listing.query) == (
        "/public/v1/products",
        f'in(id,("{product}"))&limit=100&offset=0',
    )
