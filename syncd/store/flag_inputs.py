"""What changed since the flags were last decided: the accounts marked in `flag_dirty` (new
ones, and those whose TARs or links changed: the triggers of migration 0006), and the products'
capability and the default as the last decision used them (one `sync_cursors` row, a few bytes a
product).

`syncd.store.flags.recompute_changed` decides those accounts only; the flag phase looks the
newcomers up through their assets first (`lookup_candidates`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, select, text

from syncd.store.mirror import get_cursor, set_cursor
from syncd.store.schema import products

STATE: str = "flags.decided_with"
"""The `sync_cursors` row: the default and each product's capability at the last decision."""


@dataclass(frozen=True)
class DecidedWith:
    """What the last decision of every account used."""

    default: bool
    products: dict[str, bool | None]


def read_state(conn: Connection) -> DecidedWith | None:
    """The inputs of the last full decision, or None when there was none (or it is unreadable:
    then everything is decided again, which costs time and changes nothing)."""
    value = get_cursor(conn, STATE)
    if value is None:
        return None
    try:
        data = json.loads(value)
        default, known = data["default"], data["products"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(default, bool) or not isinstance(known, dict):
        return None
    return DecidedWith(
        default, {str(k): v if isinstance(v, bool) else None for k, v in known.items()}
    )


def save_state(conn: Connection, state: DecidedWith) -> None:
    value = {"default": state.default, "products": dict(sorted(state.products.items()))}
    set_cursor(conn, STATE, json.dumps(value, separators=(",", ":")))


def capabilities(conn: Connection) -> dict[str, bool | None]:
    """Every product read, with its capability (`tiers.updates`)."""
    rows = conn.execute(select(products.c.id, products.c.tiers_updates))
    return {row.id: row.tiers_updates for row in rows}


def changed_products(
    before: Mapping[str, bool | None], now: Mapping[str, bool | None]
) -> list[str]:
    """Products whose capability is not what it was. A product never read counts as `None`,
    as the flag rule reads it: no capability, the TARs' status speaks."""
    return sorted(p for p in before.keys() | now.keys() if before.get(p) != now.get(p))


_CANDIDATES = text(
    """
WITH scanned AS (
    SELECT account_id AS id FROM flag_dirty WHERE account_id > :after
    ORDER BY account_id LIMIT :limit
)
SELECT s.id,
       NOT EXISTS (SELECT 1 FROM tier_account_requests r WHERE r.account_id = s.id)
       AND NOT EXISTS (SELECT 1 FROM account_products l WHERE l.account_id = s.id) AS unlinked
FROM scanned s ORDER BY s.id
"""
)


def lookup_candidates(conn: Connection, after: str, limit: int) -> tuple[list[str], str | None]:
    """One keyset page of the marked accounts with an id above `after`: those among them with no
    TAR and no linked product (to look up through their assets), and the last id scanned (None
    when there is nothing left)."""
    rows = conn.execute(_CANDIDATES, {"after": after, "limit": limit}).all()
    if not rows:
        return [], None
    return [row.id for row in rows if row.unlinked], rows[-1].id


def mark(conn: Connection, account_ids: Iterable[str]) -> None:
    """Mark accounts to be decided again (and looked up again, while they have no link)."""
    ids = sorted(set(account_ids))
    if ids:
        conn.execute(
            text(
                "INSERT INTO flag_dirty (account_id) SELECT unnest(CAST(:ids AS text[])) "
                "ON CONFLICT (account_id) DO NOTHING"
            ),
            {"ids": ids},
        )
