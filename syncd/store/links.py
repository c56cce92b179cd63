"""`crm_links` and `crm_conflicts`: which CRM record each account is, and what syncd wrote there."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    TextClause,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Dialect

from syncd.store.schema import crm_conflicts, crm_links, push_dirty, tier_accounts


@dataclass(frozen=True)
class Candidate:
    """An account the plan looks at: its mirrored record and what its link says."""

    account_id: str
    version: int
    record: dict[str, Any]
    synced_version: int | None
    synced_fields: dict[str, str | None] | None
    synced_contact: dict[str, str | None] | None
    attempts: int
    crm_id: str | None = None
    """The account's CRM record id as the link holds it (None before the first sync)."""
    contact_id: str | None = None
    """The contact's CRM id as the link holds it."""


@dataclass(frozen=True)
class Selection:
    """Which accounts a push looks at."""

    full: bool = False
    """Every account, whatever syncd believes is synced (`resync --full`)."""
    accounts: tuple[str, ...] = ()
    """Only these accounts (`resync --account`), when given."""
    since: datetime | None = None
    """Only accounts Connect changed at or after this moment (`resync --since`)."""
    ignore_backoff: bool = False
    only_enabled: bool = False
    """Only accounts whose sync is on (`tier_accounts.sync_enabled`): set by the cycle once the
    flags are decided. Flag off means zero writes."""


def _candidates(selection: Selection, now: datetime) -> tuple[Select[Any], ColumnElement[str]]:
    """The query of the accounts to diff, and the column to page it by.

    Accounts behind with sync on are read from the push's queue (`push_dirty`, every one of them
    is marked there); a selection that also wants accounts synced (`full`) or with sync off
    (a push without flags) scans the accounts."""
    link = crm_links
    accounts = tier_accounts.outerjoin(link, link.c.account_id == tier_accounts.c.id)
    key: ColumnElement[str] = tier_accounts.c.id
    if selection.only_enabled and not selection.full:
        accounts = push_dirty.join(accounts, tier_accounts.c.id == push_dirty.c.account_id)
        key = push_dirty.c.account_id
    query = select(
        tier_accounts.c.id,
        tier_accounts.c.version,
        tier_accounts.c.record,
        link.c.synced_version,
        link.c.synced_fields,
        link.c.synced_contact,
        link.c.attempts,
        link.c.crm_id,
        link.c.contact_id,
    ).select_from(accounts)
    if not selection.full:
        query = query.where(
            or_(link.c.synced_version.is_(None), link.c.synced_version < tier_accounts.c.version)
        )
    if not selection.ignore_backoff:
        query = query.where(or_(link.c.next_attempt_at.is_(None), link.c.next_attempt_at <= now))
    if selection.only_enabled:
        query = query.where(tier_accounts.c.sync_enabled.is_(True))
    if selection.accounts:
        query = query.where(key.in_(selection.accounts))
    if selection.since is not None:
        query = query.where(
            func.coalesce(tier_accounts.c.updated_at, tier_accounts.c.created_at) >= selection.since
        )
    return query, key


def iter_candidates(
    engine: Engine, selection: Selection, now: datetime, batch: int
) -> Iterator[list[Candidate]]:
    """Accounts to diff, in batches, by id (keyset paging: memory stays flat at any size)."""
    after = ""
    while True:
        query, key = _candidates(selection, now)
        query = query.where(key > after).order_by(key).limit(batch)
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return
        yield [
            Candidate(
                row.id,
                row.version,
                row.record,
                row.synced_version,
                row.synced_fields if row.synced_version is not None else None,
                row.synced_contact if row.synced_version is not None else None,
                row.attempts or 0,
                row.crm_id,
                row.contact_id,
            )
            for row in rows
        ]
        after = rows[-1].id


def count_candidates(engine: Engine, selection: Selection, now: datetime) -> int:
    """How many accounts `iter_candidates` would yield now (one count query; for progress)."""
    query = select(func.count()).select_from(_candidates(selection, now)[0].subquery())
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def save_links(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Upsert link rows; each dict holds `account_id` and the columns to set.

    Rows setting the same columns go in one statement with one parameter, a JSON array read by
    `jsonb_to_recordset`: a batch of 200 links costs one statement and one JSON encoding, where
    an executemany binds and sends 200 statements (about three times slower, most of it spent
    binding JSONB parameters in Python). An account given twice keeps its last row, as one
    statement cannot update a row twice."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in {row["account_id"]: row for row in rows}.values():
        by_columns.setdefault(tuple(sorted(row)), []).append(row)
    for columns, group in by_columns.items():
        payload = json.dumps(group, default=_json_default, separators=(",", ":"))
        conn.execute(_upsert_links(columns, conn.dialect), {"rows": payload})


@functools.lru_cache(maxsize=32)
def _upsert_links(columns: tuple[str, ...], dialect: Dialect) -> TextClause:
    """`INSERT … SELECT … FROM jsonb_to_recordset(:rows) … ON CONFLICT DO UPDATE` for these
    columns (names and types from the table definition, never from data)."""
    types = ", ".join(f"{c} {crm_links.c[c].type.compile(dialect=dialect)}" for c in columns)
    names = ", ".join(columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "account_id")
    return text(
        f"INSERT INTO {crm_links.name} ({names}) "
        f"SELECT {names} FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({types}) "
        f"ON CONFLICT (account_id) DO UPDATE SET {updates}, updated_at = now()"
    )


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()  # PostgreSQL reads ISO 8601, offset included
    raise TypeError(f"a link column holds a {type(value).__name__}")


def record_conflicts(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(crm_conflicts), list(rows))
