"""The set-based SQL of `recompute_flags` decides exactly what the pure rule decides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, insert, select

from syncd.domain.flags import SOURCES, Flag, ProductSignal, effective_flag
from syncd.store.flags import recompute_flags
from syncd.store.schema import account_products, products, tier_account_requests, tier_accounts

PRODUCT_IDS = [f"PRD-000-000-00{i}" for i in range(4)]
STATUSES = ("pending", "accepted", "ignored", "unsupported")
T0 = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Link:
    statuses: tuple[str, ...]
    """Statuses of the account's TARs of the product (empty: none)."""
    asset: bool


@dataclass(frozen=True)
class AccountCase:
    override: bool | None
    before: Flag | None
    links: dict[str, Link]


links = st.dictionaries(
    st.sampled_from(PRODUCT_IDS),
    st.builds(Link, st.lists(st.sampled_from(STATUSES), max_size=3).map(tuple), st.booleans()),
    max_size=4,
)
cases = st.lists(
    st.builds(
        AccountCase,
        st.none() | st.booleans(),
        st.none() | st.builds(Flag, st.booleans(), st.sampled_from(SOURCES)),
        links,
    ),
    min_size=1,
    max_size=8,
)
# A product absent from the table was never read; a read one may not state its capability.
catalogue = st.fixed_dictionaries(
    {p: st.sampled_from(["absent", "unstated", "on", "off"]) for p in PRODUCT_IDS}
)
CAPABILITY = {"unstated": None, "on": True, "off": False}


def expected(case: AccountCase, read: dict[str, str], default: bool) -> Flag:
    signals = [
        ProductSignal(
            CAPABILITY.get(read[product_id]),
            pending="pending" in link.statuses,
            unsupported="unsupported" in link.statuses,
        )
        for product_id, link in case.links.items()
        if link.statuses or link.asset
    ]
    return effective_flag(case.override, signals, default)


def store(engine: Engine, accounts: list[AccountCase], read: dict[str, str]) -> list[str]:
    ids = [f"TA-0000-0000-{n:04d}" for n in range(len(accounts))]
    with engine.begin() as conn:
        for table in (tier_account_requests, account_products, products, tier_accounts):
            conn.execute(delete(table))
        conn.execute(
            insert(tier_accounts),
            [
                {
                    "id": account_id,
                    "name": account_id,
                    "type": "customer",
                    "version": 1,
                    "record": {},
                    "sync_override": case.override,
                    "sync_enabled": case.before.enabled if case.before else None,
                    "sync_source": case.before.source if case.before else None,
                }
                for account_id, case in zip(ids, accounts, strict=True)
            ],
        )
        rows: list[dict[str, Any]] = [
            {"id": p, "tiers_updates": CAPABILITY[state], "read_at": T0, "record": {}}
            for p, state in read.items()
            if state != "absent"
        ]
        if rows:
            conn.execute(insert(products), rows)
        tars: list[dict[str, Any]] = []
        assets: list[dict[str, Any]] = []
        for account_id, case in zip(ids, accounts, strict=True):
            for product_id, link in case.links.items():
                if link.asset:
                    assets.append({"account_id": account_id, "product_id": product_id})
                for n, status in enumerate(link.statuses):
                    tars.append(
                        {
                            "id": f"TAR-{account_id[3:]}-{product_id[-3:]}-{n:03d}",
                            "account_id": account_id,
                            "account_version": 1,
                            "product_id": product_id,
                            "type": "update",
                            "status": status,
                            "created_at": T0,
                            "record": {},
                        }
                    )
        if tars:
            conn.execute(insert(tier_account_requests), tars)
        if assets:
            conn.execute(insert(account_products), assets)
    return ids


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(cases, catalogue, st.booleans())
def test_the_sql_decides_every_account_as_the_pure_rule_and_writes_only_changes(
    engine: Engine, accounts: list[AccountCase], read: dict[str, str], default: bool
) -> None:
    ids = store(engine, accounts, read)
    wanted = {i: expected(case, read, default) for i, case in zip(ids, accounts, strict=True)}

    with engine.begin() as conn:
        result = recompute_flags(conn, default)
        again = recompute_flags(conn, default)
        found = {
            row.id: Flag(row.sync_enabled, row.sync_source)
            for row in conn.execute(
                select(
                    tier_accounts.c.id, tier_accounts.c.sync_enabled, tier_accounts.c.sync_source
                )
            )
        }

    assert found == wanted
    assert result.enabled == sum(f.enabled for f in wanted.values())
    assert result.disabled == len(wanted) - result.enabled
    assert result.changed == sum(
        case.before != wanted[i] for i, case in zip(ids, accounts, strict=True)
    )
    assert again.changed == 0
