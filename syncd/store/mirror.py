"""Writes to the mirror of Connect: accounts, their versions, requests, products, cursors.

Every function takes an open connection and writes in bulk (one statement per table per call);
the caller owns the transaction, so a page's rows and its cursor commit together.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, text
from sqlalchemy.dialects.postgresql import insert

from syncd.domain.records import Product
from syncd.store.schema import (
    products,
    sync_cursors,
    tier_account_requests,
)

# A page goes to Postgres as ONE jsonb parameter, the records as received, and Postgres takes the
# columns out of them: with a thousand records a page, building a multi-row VALUES statement (or
# serialising the rows again) costs the client more than the database spends storing them
# (measured with bench/pull.py). The records were checked by `syncd.domain.records` before.
_ACCOUNT = {
    "id": "a->>'id'",
    "name": "a->>'name'",
    "type": "a->>'type'",
    "external_id": "a->>'external_id'",
    "external_uid": "a->>'external_uid'",
    "environment": "a->>'environment'",
    "db": "a->>'db'",
    "owner_id": "a#>>'{owner,id}'",
    "hub_id": "a#>>'{hub,id}'",
    "parent_id": "a#>>'{parent,id}'",
    "country": "a#>>'{contact_info,country}'",
    "tax_id": "a->>'tax_id'",
    "version": "(a->>'version')::integer",
    "created_at": "(a#>>'{events,created,at}')::timestamptz",
    "updated_at": "(a#>>'{events,updated,at}')::timestamptz",
    "record": "a",
}
_REQUEST = {
    "id": "t->>'id'",
    "account_id": "t#>>'{account,id}'",
    "account_version": "(t#>>'{account,version}')::integer",
    "product_id": "t#>>'{product,id}'",
    "vendor_id": "t#>>'{vendor,id}'",
    "provider_id": "t#>>'{provider,id}'",
    "type": "t->>'type'",
    "status": "t->>'status'",
    "reason": "t->>'reason'",
    "created_at": "(t#>>'{events,created,at}')::timestamptz",
    "updated_at": "(t#>>'{events,updated,at}')::timestamptz",
    "record": "t",
}


def _columns(expressions: dict[str, str]) -> str:
    return ", ".join(f"{sql} AS {name}" for name, sql in expressions.items())


def _upsert(table: str, columns: dict[str, str], source: str, where: str) -> str:
    names = ", ".join(columns)
    updates = ", ".join(f"{name} = excluded.{name}" for name in columns if name != "id")
    return (
        f"INSERT INTO {table} ({names}) SELECT {names} FROM {source} "
        f"ON CONFLICT (id) DO UPDATE SET {updates}, mirrored_at = now() WHERE {where} RETURNING 1"
    )


# Every version is kept; the account row moves forward only to a newer one, and an upsert cannot
# touch a row twice, so it takes one snapshot per account: the highest version.
_ACCOUNT_STEPS = (
    f"accounts AS (SELECT {_columns(_ACCOUNT)} FROM page), "
    "versions AS (INSERT INTO tier_account_versions (account_id, version, record, source) "
    "SELECT id, version, record, :source FROM accounts ON CONFLICT DO NOTHING), "
    "newest AS (SELECT DISTINCT ON (id) * FROM accounts ORDER BY id, version DESC), "
    "moved AS ("
    + _upsert("tier_accounts", _ACCOUNT, "newest", "tier_accounts.version < excluded.version")
    + ")"
)
_STORE_ACCOUNTS = text(
    "WITH page AS (SELECT a FROM jsonb_array_elements(CAST(:records AS jsonb)) AS e(a)), "
    + _ACCOUNT_STEPS
    + " SELECT count(*) FROM moved"
)
_STORE_REQUESTS = text(
    "WITH page AS (SELECT t, t->'account' AS a "
    "FROM jsonb_array_elements(CAST(:records AS jsonb)) AS e(t)), "
    + _ACCOUNT_STEPS
    + f", requests AS (SELECT DISTINCT ON (id) {_columns(_REQUEST)} FROM page ORDER BY id), "
    "written AS ("
    + _upsert(
        "tier_account_requests",
        _REQUEST,
        "requests",
        "tier_account_requests.record IS DISTINCT FROM excluded.record",
    )
    + ") SELECT (SELECT count(*) FROM written), (SELECT count(*) FROM moved)"
)


def records_json(page_body: bytes, records: Sequence[Mapping[str, Any]], complete: bool) -> str:
    """The JSON array of `records` for the store functions: the page's body itself when every
    record of the page is among them (`complete`) and the body holds no NUL, else built anew."""
    if complete and page_body and b"\\u0000" not in page_body:
        return page_body.decode("utf-8")
    return json.dumps(list(records))


def store_accounts(conn: Connection, records: str, source: str) -> int:
    """Store the checked TA records of the JSON array `records` (versions and account rows).

    Returns how many account rows were inserted or moved forward.
    """
    return int(conn.execute(_STORE_ACCOUNTS, {"records": records, "source": source}).scalar_one())


def store_requests(conn: Connection, records: str) -> tuple[int, int]:
    """Store the checked TAR records of the JSON array `records`, with their account snapshots.

    New and changed TARs are written, unchanged ones cost no write. Returns how many request rows
    and how many account rows were written.
    """
    written, moved = conn.execute(_STORE_REQUESTS, {"records": records, "source": "request"}).one()
    return int(written), int(moved)


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


# Connect no longer lists these products: only `read_at` moves. A row inserted here says nothing
# (no name, capability NULL, record JSON null): the flag rule reads it as a product never read.
_MARK_PRODUCTS_READ = text(
    "INSERT INTO products (id, read_at, record) "
    "SELECT DISTINCT unnest(CAST(:ids AS text[])), :read_at, CAST('null' AS jsonb) "
    "ON CONFLICT (id) DO UPDATE SET read_at = excluded.read_at"
)


def mark_products_read(conn: Connection, product_ids: Sequence[str], read_at: datetime) -> None:
    """Mark `product_ids` read at `read_at` without changing what the mirror knows of them: a
    product read before keeps its capability, name and record; one never read gets a row that
    says nothing (capability NULL, record JSON `null`). For products Connect did not list."""
    if product_ids:
        conn.execute(_MARK_PRODUCTS_READ, {"ids": list(product_ids), "read_at": read_at})


_STORED_VERSIONS = text("SELECT id, version FROM tier_accounts WHERE id = ANY(:ids)")


def stored_versions(conn: Connection, ids: Sequence[str]) -> dict[str, int]:
    """The mirrored version of each account in `ids` that the mirror has."""
    if not ids:
        return {}
    # One array parameter: a thousand-item IN list is a statement psycopg parses anew each time
    # (longer than its cache takes), which cost more than the query (bench/pull.py --rest).
    rows = conn.execute(_STORED_VERSIONS, {"ids": list(ids)})
    return {row.id: row.version for row in rows}


def pending_request_ids(conn: Connection) -> set[str]:
    rows = conn.execute(
        select(tier_account_requests.c.id).where(tier_account_requests.c.status == "pending")
    )
    return set(rows.scalars())


def _distinct_products(table: str) -> str:
    # A skip scan over the table's product_id index: one index probe per distinct product, where
    # SELECT DISTINCT reads every row (a second at a million accounts, every cycle).
    return f"""
SELECT product_id FROM (
    WITH RECURSIVE seen AS (
        (SELECT product_id FROM {table} ORDER BY product_id LIMIT 1)
        UNION ALL
        SELECT (SELECT t.product_id FROM {table} t WHERE t.product_id > seen.product_id
                ORDER BY t.product_id LIMIT 1)
        FROM seen WHERE seen.product_id IS NOT NULL
    )
    SELECT product_id FROM seen WHERE product_id IS NOT NULL
) AS {table}_products"""


_PRODUCTS_TO_READ = text(
    "SELECT s.id FROM ("
    + _distinct_products("tier_account_requests")
    + " UNION "
    + _distinct_products("account_products")
    + ") AS s(id) LEFT JOIN products p ON p.id = s.id "
    "WHERE p.id IS NULL OR p.read_at < :stale_before ORDER BY s.id"
)


def products_to_read(conn: Connection, stale_before: datetime) -> list[str]:
    """Products seen on TARs or linked to accounts through assets (`account_products`) that were
    never read, or read before `stale_before`."""
    return list(conn.execute(_PRODUCTS_TO_READ, {"stale_before": stale_before}).scalars())


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
