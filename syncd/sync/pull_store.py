"""How the pull writes one checked page: its records into the mirror, its refusals and the
reconcile's drift into the ledger. The caller owns the transaction (the page and its cursor
commit together)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection

from syncd.domain.records import TierAccount, TierAccountRequest
from syncd.store import mirror
from syncd.store.runs import LedgerEntry, record
from syncd.sync.pages import CheckedPage


class Counts(Protocol):
    """The counters a page moves (`syncd.sync.pull.PullCounts`)."""

    requests_seen: int
    requests_written: int
    accounts_seen: int
    accounts_written: int
    drift: int


def store_requests(
    conn: Connection, checked: CheckedPage[TierAccountRequest], counts: Counts, run_id: int | None
) -> None:
    """The page's TARs, with their account snapshots, and its refusals."""
    counts.requests_seen += len(checked.records)
    if checked.records:
        written, moved = mirror.store_requests(conn, checked.records_json)
        counts.requests_written += written
        counts.accounts_written += moved
    record(conn, run_id, checked.refused)


def store_accounts(
    conn: Connection,
    checked: CheckedPage[TierAccount],
    counts: Counts,
    run_id: int | None,
    source: str = "account",
    only: list[TierAccount] | None = None,
) -> None:
    """The page's accounts (or `only` these of them) and its refusals."""
    counts.accounts_seen += len(checked.records)
    if only is None:
        records = checked.records_json if checked.records else None
    else:
        records = json.dumps([a.record for a in only]) if only else None
    if records is not None:
        counts.accounts_written += mirror.store_accounts(conn, records, source)
    record(conn, run_id, checked.refused)


def store_reconciled(
    conn: Connection,
    checked: CheckedPage[TierAccount],
    counts: Counts,
    run_id: int | None,
    fed_up_to: datetime | None,
) -> None:
    """A page of the reconcile scan: only the accounts the mirror lacks or holds older are
    stored (a scan of a mirror at rest writes nothing), and those the feeds missed are recorded
    as drift (`drifted`). `fed_up_to` is the account feed's cursor before the scan."""
    before = mirror.stored_versions(conn, [a.id for a in checked.records])
    newer = [a for a in checked.records if before.get(a.id, -1) < a.version]
    store_accounts(conn, checked, counts, run_id, "reconcile", newer)
    drift = [
        LedgerEntry(
            "tier_account",
            a.id,
            "reconcile",
            "drift",
            message=f"mirror had version {before.get(a.id)}, Connect has {a.version}",
        )
        for a in newer
        if drifted(a, before.get(a.id), fed_up_to)
    ]
    counts.drift += len(drift)
    record(conn, run_id, drift)


def drifted(account: TierAccount, stored: int | None, fed_up_to: datetime | None) -> bool:
    """Whether the feeds missed this account: the mirror holds an older version, or lacks it
    though the account feed already read past its creation (a newer one is simply new)."""
    if stored is not None:
        return stored < account.version
    created = account.created_at
    return fed_up_to is not None and created is not None and created <= fed_up_to
