"""Read-only views of one account or of all of them, for `syncd accounts list / show`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, or_, select, text

from syncd.store.schema import (
    crm_links,
    sync_ledger,
    sync_overrides,
    tier_account_requests,
    tier_account_versions,
    tier_accounts,
)

LEDGER_ERRORS_SHOWN = 10
VERSIONS_SHOWN = 10


@dataclass(frozen=True)
class AccountLine:
    """One account of `syncd accounts list`."""

    id: str
    name: str
    enabled: bool | None
    """None: no flag decided yet (the push treats it as off)."""
    source: str | None
    override: bool | None
    version: int
    synced_version: int | None
    last_error: str | None


def iter_accounts(conn: Connection, flag: bool | None = None) -> Iterator[AccountLine]:
    """Every account in id order, streamed (constant memory at any size). `flag=True`: only those
    syncd writes; `flag=False`: only those it does not (off, or not decided yet)."""
    query = (
        select(
            tier_accounts.c.id,
            tier_accounts.c.name,
            tier_accounts.c.sync_enabled,
            tier_accounts.c.sync_source,
            tier_accounts.c.sync_override,
            tier_accounts.c.version,
            crm_links.c.synced_version,
            crm_links.c.last_error,
        )
        .select_from(
            tier_accounts.outerjoin(crm_links, crm_links.c.account_id == tier_accounts.c.id)
        )
        .order_by(tier_accounts.c.id)
    )
    if flag is True:
        query = query.where(tier_accounts.c.sync_enabled.is_(True))
    elif flag is False:
        query = query.where(tier_accounts.c.sync_enabled.is_not(True))
    result = conn.execution_options(stream_results=True, yield_per=1000).execute(query)
    for row in result:
        yield AccountLine(*row)


_PRODUCTS = text(
    """
WITH linked AS (
    SELECT product_id,
           bool_or(status = 'pending') AS pending,
           bool_or(status = 'unsupported') AS unsupported,
           count(*) AS tars,
           NULL::text AS asset_id
    FROM tier_account_requests WHERE account_id = :id GROUP BY product_id
    UNION ALL
    SELECT product_id, false, false, 0, asset_id FROM account_products WHERE account_id = :id
)
SELECT l.product_id, p.name, p.tiers_updates AS capability, p.read_at,
       bool_or(l.pending) AS pending, bool_or(l.unsupported) AS unsupported,
       sum(l.tars)::integer AS tars, max(l.asset_id) AS asset_id
FROM linked l LEFT JOIN products p ON p.id = l.product_id
GROUP BY l.product_id, p.name, p.tiers_updates, p.read_at
ORDER BY l.product_id
"""
)


def _rows(
    conn: Connection, query: Any, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in conn.execute(query, params or {})]


def account_detail(conn: Connection, account_id: str) -> dict[str, Any] | None:
    """Everything syncd knows about one account, or None when the mirror does not have it."""
    account = conn.execute(select(tier_accounts).where(tier_accounts.c.id == account_id)).first()
    if account is None:
        return None
    mirrored = dict(account._mapping)
    mirrored.pop("record")
    flag = {
        name: mirrored.pop(f"sync_{name}")
        for name in ("enabled", "source", "override", "decided_at")
    }
    link = conn.execute(select(crm_links).where(crm_links.c.account_id == account_id)).first()
    requests = tier_account_requests
    ledger = sync_ledger
    return {
        "account": mirrored,
        "flag": flag,
        "products": _rows(conn, _PRODUCTS, {"id": account_id}),
        "versions": _rows(
            conn,
            select(
                tier_account_versions.c.version,
                tier_account_versions.c.source,
                tier_account_versions.c.seen_at,
            )
            .where(tier_account_versions.c.account_id == account_id)
            .order_by(tier_account_versions.c.version.desc())
            .limit(VERSIONS_SHOWN),
        ),
        "crm_link": None if link is None else dict(link._mapping),
        "pending_requests": _rows(
            conn,
            select(
                requests.c.id,
                requests.c.product_id,
                requests.c.account_version,
                requests.c.created_at,
            )
            .where(and_(requests.c.account_id == account_id, requests.c.status == "pending"))
            .order_by(requests.c.created_at, requests.c.id),
        ),
        "ledger_errors": _rows(
            conn,
            select(
                ledger.c.at,
                ledger.c.run_id,
                ledger.c.object_type,
                ledger.c.object_id,
                ledger.c.phase,
                ledger.c.outcome,
                ledger.c.error_kind,
                ledger.c.message,
            )
            .where(
                ledger.c.error_kind.is_not(None),
                or_(
                    ledger.c.object_id == account_id,
                    ledger.c.object_id.in_(
                        select(requests.c.id).where(requests.c.account_id == account_id)
                    ),
                ),
            )
            .order_by(ledger.c.id.desc())
            .limit(LEDGER_ERRORS_SHOWN),
        ),
        "overrides": _rows(
            conn,
            select(
                sync_overrides.c.at,
                sync_overrides.c.actor,
                sync_overrides.c.reason,
                sync_overrides.c.old_value,
                sync_overrides.c.new_value,
            )
            .where(sync_overrides.c.account_id == account_id)
            .order_by(sync_overrides.c.id),
        ),
    }
