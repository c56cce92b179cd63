"""Writes to the mirror of Connect: accounts, their versions, requests, products, cursors.

Every function takes an open connection and writes in bulk (one statement per table per call);
the caller owns the transaction, so a page's rows and its cursor commit together.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert

from syncd.domain.records import Product, TierAccount, TierAccountRequest
from syncd.store.schema import (
    products,
    sync_cursors,
    tier_account_requests,
    tier_account_versions,
    tier_accounts,
)


def _account_row(account: TierAccount) -> dict[str, Any]:
    return {
        "id": account.id,
        "name": account.name,
        "type": account.type,
        "external_id": account.external_id,
        "external_uid": account.external_uid,
        "environment": account.environment,
        "db": account.db,
        "owner_id": account.owner_id,
        "hub_id": account.hub_id,
        "parent_id": account.parent_id,
        "country": account.country,
        "tax_id": account.tax_id,
        "version": account.version,
        "created_at": account.created_at,
        "updated_at": account.updated_at,
        "record": account.record,
    }


def _newest(accounts: Iterable[TierAccount]) -> list[TierAccount]:
    """One snapshot per account, the highest version: an upsert cannot touch a row twice."""
    best: dict[str, TierAccount] = {}
    for account in accounts:
        seen = best.get(account.id)
        if seen is None or account.version > seen.version:
            best[account.id] = account
    return list(best.values())


def store_accounts(conn: Connection, accounts: Sequence[TierAccount], source: str) -> int:
    """Keep every version seen; move an account row forward only to a newer version.

    Returns how many account rows were inserted or moved forward.
    """
    if not accounts:
        return 0
    versions = {(a.id, a.version): a for a in accounts}
    conn.execute(
        insert(tier_account_versions).on_conflict_do_nothing(),
        [
            {"account_id": a.id, "version": a.version, "record": a.record, "source": source}
            for a in versions.values()
        ],
    )
    statement = insert(tier_accounts)
    columns = {name: statement.excluded[name] for name in _account_row(accounts[0]) if name != "id"}
    upsert = statement.on_conflict_do_update(
        index_elements=[tier_accounts.c.id],
        set_={**columns, "mirrored_at": func.now()},
        where=tier_accounts.c.version < statement.excluded.version,
    ).returning(tier_accounts.c.id)
    rows = conn.execute(upsert, [_account_row(a) for a in _newest(accounts)])
    return len(rows.all())


def store_requests(conn: Connection, requests: Sequence[TierAccountRequest]) -> int:
    """Insert new TARs and update changed ones; unchanged ones cost no write.

    Returns how many rows were written.
    """
    if not requests:
        return 0
    unique = {r.id: r for r in requests}
    statement = insert(tier_account_requests)
    updated = (
        "account_id",
        "account_version",
        "product_id",
        "vendor_id",
        "provider_id",
        "type",
        "status",
        "reason",
        "created_at",
        "updated_at",
        "record",
    )
    upsert = statement.on_conflict_do_update(
        index_elements=[tier_account_requests.c.id],
        set_={
            **{name: statement.excluded[name] for name in updated},
            "mirrored_at": func.now(),
        },
        where=tier_account_requests.c.record.is_distinct_from(statement.excluded.record),
    ).returning(tier_account_requests.c.id)
    rows = conn.execute(
        upsert,
        [
            {
                "id": r.id,
                "account_id": r.account.id,
                "account_version": r.account.version,
                "product_id": r.product_id,
                "vendor_id": r.vendor_id,
                "provider_id": r.provider_id,
                "type": r.type,
                "status": r.status,
                "reason": r.reason,
                "created_at": r.created_at,
                "updated_at": r.updated_at,
                "record": r.record,
            }
            for r in unique.values()
        ],
    )
    return len(rows.all())


def store_products(conn: Connection, found: Sequence[Product], read_at: datetime) -> None:
    if not found:
        return
    statement = insert(products)
    statement = statement.on_conflict_do_update(
        index_elements=[products.c.id],
        set_={
            "name": statement.excluded.name,
            "tiers_updates": statement.excluded.tiers_updates,
            "read_at": statement.excluded.read_at,
            "record": statement.excluded.record,
        },
    )
    conn.execute(
        statement,
        [
            {
                "id": p.id,
                "name": p.name,
                "tiers_updates": p.tiers_updates,
                "read_at": read_at,
                "record": p.record,
            }
            for p in found
        ],
    )


def stored_versions(conn: Connection, ids: Sequence[str]) -> dict[str, int]:
    """The mirrored version of each account in `ids` that the mirror has."""
    if not ids:
        return {}
    rows = conn.execute(
        select(tier_accounts.c.id, tier_accounts.c.version).where(tier_accounts.c.id.in_(ids))
    )
    return {row.id: row.version for row in rows}


def known_versions(conn: Connection, keys: Sequence[tuple[str, int]]) -> set[tuple[str, int]]:
    if not keys:
        return set()
    column = tuple_(tier_account_versions.c.account_id, tier_account_versions.c.version)
    rows = conn.execute(
        select(tier_account_versions.c.account_id, tier_account_versions.c.version).where(
            column.in_(keys)
        )
    )
    return {(row.account_id, row.version) for row in rows}


def pending_request_ids(conn: Connection) -> set[str]:
    rows = conn.execute(
        select(tier_account_requests.c.id).where(tier_account_requests.c.status == "pending")
    )
    return set(rows.scalars())


def products_to_read(conn: Connection, stale_before: datetime) -> list[str]:
    """Products seen on TARs that were never read, or read before `stale_before`."""
    seen = select(tier_account_requests.c.product_id.label("id")).distinct().subquery()
    rows = conn.execute(
        select(seen.c.id)
        .select_from(seen.outerjoin(products, products.c.id == seen.c.id))
        .where((products.c.id.is_(None)) | (products.c.read_at < stale_before))
        .order_by(seen.c.id)
    )
    return list(rows.scalars())


def get_cursor(conn: Connection, name: str) -> str | None:
    row = conn.execute(select(sync_cursors.c.value).where(sync_cursors.c.name == name)).first()
    return None if row is None else str(row.value)


def set_cursor(conn: Connection, name: str, value: str) -> None:
    statement = insert(sync_cursors).values(name=name, value=value)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[sync_cursors.c.name],
            set_={"value": statement.excluded.value, "updated_at": func.now()},
        )
    )
