"""What the write-back phase reads and records about accounts: pending TARs with all the facts a
decision needs (one query per page), linked accounts, and the CRM values syncd has now seen."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, exists, select, text

from syncd.domain.tar_decision import TarFacts
from syncd.store.schema import (
    connect_outbox,
    crm_conflicts,
    crm_links,
    tier_account_requests,
    tier_accounts,
)

Fields = dict[str, str | None]


@dataclass(frozen=True)
class PendingTar:
    id: str
    account_id: str
    facts: TarFacts
    outbox_id: int | None
    """The TAR's accept/ignore row when one exists and was never sent (state `pending`)."""
    outbox_kind: str | None


def pending_tars(conn: Connection, after: str, limit: int) -> list[PendingTar]:
    """Pending TARs with id above `after` (id order, at most `limit`), each with its account's
    flag, link and open conflicts, leaving out those whose action is already under way."""
    r, a, link, o = tier_account_requests, tier_accounts, crm_links, connect_outbox
    c = crm_conflicts
    conflict = exists().where(
        c.c.account_id == r.c.account_id,
        c.c.resolution == "manual",
        c.c.resolved_at.is_(None),
    )
    query = (
        select(
            r.c.id,
            r.c.account_id,
            r.c.account_version,
            a.c.sync_enabled,
            link.c.state,
            link.c.synced_version,
            link.c.attempted_version,
            link.c.last_error,
            conflict.label("open_conflict"),
            o.c.id.label("outbox_id"),
            o.c.kind.label("outbox_kind"),
        )
        .select_from(
            r.outerjoin(a, a.c.id == r.c.account_id)
            .outerjoin(link, link.c.account_id == r.c.account_id)
            .outerjoin(o, and_(o.c.object_id == r.c.id, o.c.kind.in_(("accept", "ignore"))))
        )
        .where(
            r.c.status == "pending",
            r.c.id > after,
            (o.c.id.is_(None)) | (o.c.state == "pending"),
        )
        .order_by(r.c.id)
        .limit(limit)
    )
    return [
        PendingTar(
            row.id,
            row.account_id,
            TarFacts(
                row.account_version,
                row.sync_enabled,
                row.state,
                row.synced_version,
                row.attempted_version,
                row.last_error,
                bool(row.open_conflict),
            ),
            row.outbox_id,
            row.outbox_kind,
        )
        for row in conn.execute(query)
    ]


@dataclass(frozen=True)
class LinkedAccount:
    """A mirrored account that has a CRM link, with what syncd last saw of its CRM record."""

    id: str
    version: int
    record: dict[str, Any]
    sync_enabled: bool | None
    synced_fields: Fields
    synced_contact: Fields

    @property
    def sync_on(self) -> bool:
        return self.sync_enabled is True


def linked_accounts(conn: Connection, ids: Sequence[str]) -> dict[str, LinkedAccount]:
    """The accounts among `ids` that are mirrored and linked to a CRM record."""
    if not ids:
        return {}
    a, link = tier_accounts, crm_links
    rows = conn.execute(
        select(
            a.c.id,
            a.c.version,
            a.c.record,
            a.c.sync_enabled,
            link.c.synced_fields,
            link.c.synced_contact,
        )
        .select_from(a.join(link, link.c.account_id == a.c.id))
        .where(a.c.id.in_(list(ids)))
    )
    return {
        row.id: LinkedAccount(
            row.id,
            row.version,
            dict(row.record),
            row.sync_enabled,
            dict(row.synced_fields or {}),
            dict(row.synced_contact or {}),
        )
        for row in rows
    }


_REMEMBER = text(
    "UPDATE crm_links SET synced_fields = synced_fields || CAST(:fields AS jsonb), "
    "synced_contact = synced_contact || CAST(:contact AS jsonb), updated_at = now() "
    "WHERE account_id = :id"
)


def remember_seen(
    conn: Connection, seen: Mapping[str, tuple[Mapping[str, str | None], Mapping[str, str | None]]]
) -> None:
    """Merge CRM values into `crm_links.synced_fields` / `synced_contact` (account id → (account
    fields, contact fields)), so the next look at the record sees no change in them."""
    rows = [
        {"id": key, "fields": json.dumps(dict(fields)), "contact": json.dumps(dict(contact))}
        for key, (fields, contact) in seen.items()
        if fields or contact
    ]
    if rows:
        conn.execute(_REMEMBER, rows)


def switched_on_since(conn: Connection, since: datetime) -> list[str]:
    """Linked accounts whose sync flag is on and was decided at or after `since` (switched on
    lately: their CRM edits made while it was off still have to reach Connect)."""
    a, link = tier_accounts, crm_links
    rows = conn.execute(
        select(a.c.id)
        .select_from(a.join(link, link.c.account_id == a.c.id))
        .where(a.c.sync_enabled.is_(True), a.c.sync_decided_at >= since)
        .order_by(a.c.id)
    )
    return list(rows.scalars())
