"""`crm_links` and `crm_conflicts`: which CRM record each account is, and what syncd wrote there."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Select, and_, func, or_, select
from sqlalchemy.dialects.postgresql import insert

from syncd.store.schema import crm_conflicts, crm_links, tier_accounts


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


def _candidates(selection: Selection, now: datetime) -> Select[Any]:
    link = crm_links
    query = select(
        tier_accounts.c.id,
        tier_accounts.c.version,
        tier_accounts.c.record,
        link.c.synced_version,
        link.c.synced_fields,
        link.c.synced_contact,
        link.c.attempts,
    ).select_from(tier_accounts.outerjoin(link, link.c.account_id == tier_accounts.c.id))
    if not selection.full:
        query = query.where(
            or_(link.c.synced_version.is_(None), link.c.synced_version < tier_accounts.c.version)
        )
    if not selection.ignore_backoff:
        query = query.where(or_(link.c.next_attempt_at.is_(None), link.c.next_attempt_at <= now))
    if selection.accounts:
        query = query.where(tier_accounts.c.id.in_(selection.accounts))
    if selection.since is not None:
        query = query.where(
            func.coalesce(tier_accounts.c.updated_at, tier_accounts.c.created_at) >= selection.since
        )
    return query


def iter_candidates(
    engine: Engine, selection: Selection, now: datetime, batch: int
) -> Iterator[list[Candidate]]:
    """Accounts to diff, in batches, by id (keyset paging: memory stays flat at any size)."""
    after = ""
    while True:
        query = _candidates(selection, now)
        query = query.where(tier_accounts.c.id > after).order_by(tier_accounts.c.id).limit(batch)
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
            )
            for row in rows
        ]
        after = rows[-1].id


def count_candidates(engine: Engine, selection: Selection, now: datetime) -> int:
    query = select(func.count()).select_from(_candidates(selection, now).subquery())
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def save_links(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Upsert link rows; each dict holds `account_id` and the columns to set."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        by_columns.setdefault(tuple(sorted(row)), []).append(row)
    for columns, group in by_columns.items():
        statement = insert(crm_links)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[crm_links.c.account_id],
                set_={
                    **{c: statement.excluded[c] for c in columns if c != "account_id"},
                    "updated_at": func.now(),
                },
            ),
            group,
        )


def record_conflicts(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(crm_conflicts), list(rows))


def open_conflicts(conn: Connection, account_ids: Sequence[str]) -> set[str]:
    """The accounts among `account_ids` with a manual conflict no operator has resolved."""
    if not account_ids:
        return set()
    rows = conn.execute(
        select(crm_conflicts.c.account_id)
        .where(
            and_(
                crm_conflicts.c.account_id.in_(account_ids),
                crm_conflicts.c.resolution == "manual",
                crm_conflicts.c.resolved_at.is_(None),
            )
        )
        .distinct()
    )
    return set(rows.scalars())
