"""`account_products`: products linked to accounts through their assets, and which accounts still
have to be looked up.

An account is looked up once: when it has no TAR (TARs name their product) and no
`account_products` row yet. One with no asset at all leaves no row, so it is remembered apart:
for now in ONE `sync_cursors` row (`NO_ASSETS_MEMO`, a JSON list of account ids, at most
`NO_ASSETS_MAX` of them, newest kept). The memo only saves requests: an account dropped from it
is looked up again, which costs one share of an /assets request and changes nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence

from sqlalchemy import Connection, select, text
from sqlalchemy.dialects.postgresql import insert

from syncd.domain.assets import AssetLink
from syncd.store.mirror import get_cursor, set_cursor
from syncd.store.schema import account_products, products

NO_ASSETS_MEMO = "flags.accounts_without_assets"
NO_ASSETS_MAX = 50_000
"""Account ids the memo keeps (about 20 bytes each)."""

_TO_LINK = text(
    """
SELECT a.id FROM tier_accounts a
WHERE a.id > :after
  AND NOT EXISTS (SELECT 1 FROM tier_account_requests r WHERE r.account_id = a.id)
  AND NOT EXISTS (SELECT 1 FROM account_products p WHERE p.account_id = a.id)
ORDER BY a.id
LIMIT :limit
"""
)

_STILL_UNLINKED = text(
    """
SELECT a.id FROM tier_accounts a
WHERE a.id = ANY(:ids)
  AND NOT EXISTS (SELECT 1 FROM tier_account_requests r WHERE r.account_id = a.id)
  AND NOT EXISTS (SELECT 1 FROM account_products p WHERE p.account_id = a.id)
"""
)


def accounts_to_link(conn: Connection, after: str, limit: int) -> list[str]:
    """Up to `limit` accounts with an id above `after` that have no TAR and no linked product,
    in id order (keyset paging)."""
    rows = conn.execute(_TO_LINK, {"after": after, "limit": limit})
    return list(rows.scalars())


def store_links(conn: Connection, links: Sequence[AssetLink]) -> int:
    """Insert the links not stored yet (one asset per account and product is kept: the first
    seen); returns how many were new."""
    if not links:
        return 0
    statement = (
        insert(account_products)
        .values(
            [
                {
                    "account_id": link.account_id,
                    "product_id": link.product_id,
                    "asset_id": link.asset_id,
                }
                for link in links
            ]
        )
        .on_conflict_do_nothing(index_elements=["account_id", "product_id"])
        .returning(account_products.c.account_id)
    )
    return len(conn.execute(statement).all())


def unread_products(conn: Connection, product_ids: Iterable[str]) -> list[str]:
    """The products of `product_ids` that the mirror has never read, sorted."""
    wanted = sorted(set(product_ids))
    if not wanted:
        return []
    read = set(conn.execute(select(products.c.id).where(products.c.id.in_(wanted))).scalars())
    return [product_id for product_id in wanted if product_id not in read]


def accounts_without_assets(conn: Connection) -> list[str]:
    """The memo: accounts looked up that had no asset, oldest first."""
    value = get_cursor(conn, NO_ASSETS_MEMO)
    if value is None:
        return []
    try:
        ids = json.loads(value)
    except ValueError:
        return []  # a memo we cannot read costs lookups, nothing else
    return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []


def remember_without_assets(conn: Connection, known: Sequence[str], new: Collection[str]) -> None:
    """Save the memo: `known` (as read by `accounts_without_assets`) plus `new`, less the accounts
    that since got a TAR or a link (or left the mirror), capped to the newest `NO_ASSETS_MAX`."""
    merged = list(dict.fromkeys([*known, *sorted(new)]))
    still = set(conn.execute(_STILL_UNLINKED, {"ids": merged}).scalars()) if merged else set()
    kept = [account_id for account_id in merged if account_id in still][-NO_ASSETS_MAX:]
    if kept != list(known):
        set_cursor(conn, NO_ASSETS_MEMO, json.dumps(kept, separators=(",", ":")))
