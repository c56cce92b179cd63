"""Deciding only the accounts whose inputs changed leaves nothing a full decision would change.

The triggers of migration 0006 mark the accounts whose TARs or asset links change; products and
the default are compared with what the last decision used. After any mix of changes, deciding
the changed accounts (`recompute_changed`) must leave every flag as deciding every account
(`recompute_flags`) would, and a second run with nothing changed must decide nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, delete, insert, select, text

from syncd.store.flags import recompute_changed, recompute_flags, set_override
from syncd.store.schema import (
    account_products,
    flag_dirty,
    products,
    tier_account_requests,
    tier_accounts,
)

PRODUCT_IDS = [f"PRD-000-000-00{i}" for i in range(3)]
STATUSES = ("pending", "accepted", "ignored", "unsupported")
ACCOUNTS = [f"TA-0000-0000-{n:04d}" for n in range(6)]
T0 = datetime(2026, 11, 1, tzinfo=UTC)
CAPABILITIES = st.sampled_from([None, True, False])


@dataclass(frozen=True)
class Capability:
    product: str
    updates: bool | None


@dataclass(frozen=True)
class TarStatus:
    """Insert the account's TAR of the product, or set its status when it exists."""

    account: int
    product: str
    status: str


@dataclass(frozen=True)
class DropTars:
    account: int


@dataclass(frozen=True)
class Asset:
    account: int
    product: str


@dataclass(frozen=True)
class Override:
    account: int
    value: bool | None


@dataclass(frozen=True)
class NewAccount:
    """An account arriving in the mirror (index past the first ones)."""

    number: int


products_st = st.sampled_from(PRODUCT_IDS)
accounts_st = st.integers(0, len(ACCOUNTS) - 1)
changes = st.lists(
    st.one_of(
        st.builds(Capability, products_st, CAPABILITIES),
        st.builds(TarStatus, accounts_st, products_st, st.sampled_from(STATUSES)),
        st.builds(DropTars, accounts_st),
        st.builds(Asset, accounts_st, products_st),
        st.builds(Override, accounts_st, st.none() | st.booleans()),
        st.builds(NewAccount, st.integers(100, 105)),
    ),
    max_size=8,
)


def _account(account_id: str) -> dict[str, Any]:
    return {"id": account_id, "name": account_id, "type": "customer", "version": 1, "record": {}}


def reset(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in (tier_account_requests, account_products, products, tier_accounts):
            conn.execute(delete(table))
        conn.execute(insert(tier_accounts), [_account(a) for a in ACCOUNTS])
        conn.execute(text("DELETE FROM sync_cursors"))
        conn.execute(delete(flag_dirty))


def apply(conn: Connection, change: object, default: bool) -> None:
    if isinstance(change, Capability):
        conn.execute(
            text(
                "INSERT INTO products (id, tiers_updates, read_at, record) "
                "VALUES (:p, :u, now(), '{}') "
                "ON CONFLICT (id) DO UPDATE SET tiers_updates = excluded.tiers_updates"
            ),
            {"p": change.product, "u": change.updates},
        )
    elif isinstance(change, TarStatus):
        account = ACCOUNTS[change.account]
        conn.execute(
            text(
                "INSERT INTO tier_account_requests (id, account_id, account_version, product_id, "
                "type, status, created_at, record) VALUES (:id, :a, 1, :p, 'update', :s, :t, '{}') "
                "ON CONFLICT (id) DO UPDATE SET status = excluded.status"
            ),
            {
                "id": f"TAR-{account[3:]}-{change.product[-3:]}-001",
                "a": account,
                "p": change.product,
                "s": change.status,
                "t": T0,
            },
        )
    elif isinstance(change, DropTars):
        account = ACCOUNTS[change.account]
        conn.execute(
            delete(tier_account_requests).where(tier_account_requests.c.account_id == account)
        )
    elif isinstance(change, Asset):
        conn.execute(
            text(
                "INSERT INTO account_products (account_id, product_id) VALUES (:a, :p) "
                "ON CONFLICT DO NOTHING"
            ),
            {"a": ACCOUNTS[change.account], "p": change.product},
        )
    elif isinstance(change, Override):
        set_override(
            conn,
            ACCOUNTS[change.account],
            change.value,
            actor="test",
            reason="property",
            default=default,
        )
    elif isinstance(change, NewAccount):
        conn.execute(
            insert(tier_accounts).from_select(
                list(_account("x")),
                select(
                    text(f"'TA-0000-0000-{change.number:04d}'"),
                    text("'new'"),
                    text("'customer'"),
                    text("1"),
                    text("'{}'::jsonb"),
                ).where(
                    ~select(tier_accounts.c.id)
                    .where(tier_accounts.c.id == f"TA-0000-0000-{change.number:04d}")
                    .exists()
                ),
            )
        )


def full_decision_would_change(engine: Engine, default: bool) -> int:
    """How many flags deciding every account would change now (rolled back)."""
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            return recompute_flags(conn, default).changed
        finally:
            transaction.rollback()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes, changes, st.booleans())
# An override decided while a capability is flipped, then the capability flipped back: the
# products look unchanged since the last decision, the overridden account's decision is not.
@example(
    before=[Asset(1, PRODUCT_IDS[1])],
    after=[Capability(PRODUCT_IDS[1], True), Override(1, None), Capability(PRODUCT_IDS[1], None)],
    default=False,
)
def test_deciding_the_changed_accounts_leaves_nothing_for_a_full_decision(
    engine: Engine, before: list[object], after: list[object], default: bool
) -> None:
    reset(engine)
    with engine.begin() as conn:
        for change in before:
            apply(conn, change, default)
        recompute_flags(conn, default)
    with engine.begin() as conn:
        for change in after:
            apply(conn, change, default)

    with engine.begin() as conn:
        decided = recompute_changed(conn, default)
    with engine.begin() as conn:
        idle = recompute_changed(conn, default)

    assert not decided.full
    assert full_decision_would_change(engine, default) == 0
    assert (idle.decided, idle.changed) == (0, 0), "nothing changed: nothing decided"


def test_a_tar_whose_record_changes_but_not_its_status_or_product_marks_nothing(
    engine: Engine,
) -> None:
    reset(engine)
    with engine.begin() as conn:
        apply(conn, TarStatus(0, PRODUCT_IDS[0], "pending"), False)
        recompute_flags(conn, False)
        conn.execute(text("UPDATE tier_account_requests SET record = '{\"a\": 1}'"))
        assert conn.execute(select(flag_dirty.c.account_id)).all() == []
        conn.execute(text("UPDATE tier_account_requests SET status = 'accepted'"))
        marked = conn.execute(select(flag_dirty.c.account_id)).scalars().all()
    assert marked == [ACCOUNTS[0]]


def test_a_new_default_decides_every_account_again(engine: Engine) -> None:
    reset(engine)
    with engine.begin() as conn:
        first = recompute_changed(conn, False)
        same = recompute_changed(conn, False)
        other = recompute_changed(conn, True)
        flags = conn.execute(select(tier_accounts.c.sync_enabled)).scalars().all()
    assert (first.full, first.decided) == (True, len(ACCOUNTS))
    assert (same.full, same.decided) == (False, 0)
    assert (other.full, other.changed) == (True, len(ACCOUNTS))
    assert flags == [True] * len(ACCOUNTS)
