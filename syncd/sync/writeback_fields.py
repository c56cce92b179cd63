"""CRM-owned fields back to Connect: the CRM's edits of fields the mapping gives to the CRM reach
the tier account with `PUT /tier/accounts/{id}`.

The CRM's changes come from the adapter's `changed_since`, from a cursor (`crm.changed_since`, the
newest modification time seen, in the CRM's clock) minus an overlap window, because CRM search
lags writes (crm-apis.md §4.1). The first run has no cursor and reads every record once: the CRM's
clock is not ours, so no time of ours can bound it. The cursor moves only after every record was
handled, and not at all when a run stops early.

For each CRM-owned field of a linked account, the CRM value is compared with what syncd last saw
(`crm_links.synced_fields` / `synced_contact`) and with the mirrored TA mapped forward:

- same as last seen: nothing (our own writes coming back from `changed_since` cost nothing);
- same as Connect's value: it is remembered as seen, nothing is sent;
- else, when the account's sync is on and the field can go back (`syncd.domain.reverse`), it is
  sent: one PUT per account with every such field, built on the TA as Connect holds it now (read
  just before, since `contact_info` goes whole), through an `update_account` outbox row. Once
  Connect took it, the CRM value is remembered as seen, so the next look finds nothing to do, and
  the TA's new version maps forward to what the CRM holds, so the push writes nothing back. A
  field that cannot go back gets a ledger note and is remembered as seen.

Sync off means no PUT and nothing remembered; accounts switched on since the last run (their
`sync_decided_at`) are read from the CRM, so edits made while off still reach Connect.

The PUTs themselves, and their recovery after a crash, are `syncd.sync.writeback_put`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, Final

from syncd.crm.port import CrmRecord
from syncd.domain.diff import same
from syncd.domain.fieldmap import FieldMap
from syncd.domain.mapping import UnmappableValue, apply
from syncd.domain.reverse import NotReversible, connect_value
from syncd.store import mirror, outbox
from syncd.store.runs import LedgerEntry, record
from syncd.store.writeback_state import (
    LinkedAccount,
    linked_accounts,
    remember_seen,
    switched_on_since,
)
from syncd.sync.writeback_common import Context
from syncd.sync.writeback_put import AccountUpdates, Seen

logger = logging.getLogger(__name__)

CURSOR: Final = "crm.changed_since"
FLAG_CURSOR: Final = "crm.flag_switched_on"
FIRST_SINCE: Final = datetime(1970, 1, 1, tzinfo=UTC)
FLAG_OVERLAP: Final = timedelta(minutes=1)
CHUNK: Final = 200
_TA: Final = "tier_account"


@dataclass
class _Changes:
    """What one CRM record asks of its account."""

    send: dict[str, Any] = field(default_factory=dict)
    """TA path → value for Connect."""
    on_success: Seen = field(default_factory=lambda: ({}, {}))
    """CRM values to remember once Connect took `send`."""
    seen: Seen = field(default_factory=lambda: ({}, {}))
    """CRM values to remember now."""
    waiting: bool = False


def _chunks(records: Iterable[CrmRecord], size: int) -> Iterator[list[CrmRecord]]:
    iterator = iter(records)
    while chunk := list(islice(iterator, size)):
        yield chunk


class CrmFieldsPart:
    """The CRM-owned fields part of a write-back run (module doc)."""

    def __init__(self, ctx: Context, overlap: timedelta) -> None:
        self.ctx = ctx
        self.overlap = overlap
        self.updates = AccountUpdates(ctx)
        self.account_fields = [f for f in ctx.mapping.account if f.owner == "crm"]
        self.contact_fields = [f for f in ctx.mapping.contact if f.owner == "crm"]

    @property
    def active(self) -> bool:
        """Whether the mapping gives any field to the CRM (else nothing is read)."""
        return bool(self.account_fields or self.contact_fields)

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> None:
        """Handle every CRM change since the cursor, and accounts switched on lately."""
        ctx = self.ctx
        started = ctx.clock()
        with ctx.engine.connect() as conn:
            cursor = mirror.get_cursor(conn, CURSOR)
            flag_cursor = mirror.get_cursor(conn, FLAG_CURSOR)
        since = FIRST_SINCE if cursor is None else datetime.fromisoformat(cursor) - self.overlap
        newest = None if cursor is None else datetime.fromisoformat(cursor)
        handled: set[str] = set()
        for chunk in _chunks(ctx.crm.changed_since(since), CHUNK):
            ctx.check_stop()
            self._handle(chunk)
            handled.update(r.key for r in chunk)
            stamps = [r.modified_at for r in chunk if r.modified_at is not None]
            if stamps and (newest is None or max(stamps) > newest):
                newest = max(stamps)
        if flag_cursor is not None:
            with ctx.engine.connect() as conn:
                lately = switched_on_since(conn, datetime.fromisoformat(flag_cursor) - FLAG_OVERLAP)
            wanted = [key for key in lately if key not in handled]
            for start in range(0, len(wanted), ctx.crm.batch_size):
                ctx.check_stop()
                found = ctx.crm.read(wanted[start : start + ctx.crm.batch_size])
                self._handle(list(found.values()))
        logger.info("crm_changes_handled", extra={"records": ctx.counts.crm_records})
        if ctx.dry_run:
            return
        with ctx.engine.begin() as conn:
            if newest is not None:
                mirror.set_cursor(conn, CURSOR, newest.astimezone(UTC).isoformat())
            mirror.set_cursor(conn, FLAG_CURSOR, started.astimezone(UTC).isoformat())

    def recover(self) -> None:
        """Settle or resend the PUT rows a previous run left unsettled (or never sent)."""
        with self.ctx.engine.connect() as conn:
            rows = outbox.unsettled(conn, (outbox.UPDATE_ACCOUNT,), ("pending", "sent", "unknown"))
        for row in rows:
            self.ctx.check_stop()
            self.updates.resume(row)

    # -- comparing -----------------------------------------------------------------------------

    def _handle(self, records: Sequence[CrmRecord]) -> None:
        ctx = self.ctx
        with ctx.engine.connect() as conn:
            linked = linked_accounts(conn, [r.key for r in records])
        seen: dict[str, Seen] = {}
        entries: list[LedgerEntry] = []
        sendable: list[tuple[LinkedAccount, _Changes]] = []
        for crm_record in records:
            ctx.counts.crm_records += 1
            account = linked.get(crm_record.key)
            if account is None:
                continue  # not an account syncd pushed (yet)
            changes = self._compare(crm_record, account, entries)
            if changes is None:
                continue
            seen[account.id] = changes.seen
            ctx.counts.waiting_flag += changes.waiting
            if changes.send:
                sendable.append((account, changes))
        if ctx.dry_run:
            ctx.planned.extend({"account": a.id, "fields": c.send} for a, c in sendable)
            return
        with ctx.engine.begin() as conn:
            remember_seen(conn, seen)
            record(conn, ctx.run_id, entries)
        for account, changes in sendable:
            ctx.check_stop()
            self.updates.update(account.id, changes.send, changes.on_success)

    def _compare(
        self, crm_record: CrmRecord, account: LinkedAccount, entries: list[LedgerEntry]
    ) -> _Changes | None:
        try:
            wanted, wanted_contact = apply(self.ctx.mapping, account.record)
        except UnmappableValue:
            return None  # the push has recorded why this TA does not map
        changes = _Changes()
        groups: list[tuple[list[FieldMap], Any, dict[str, str | None], Any, int]] = [
            (self.account_fields, crm_record.fields, account.synced_fields, wanted, 0)
        ]
        if crm_record.contact_read and crm_record.contact_id is not None:
            # Without its contact read, the record says nothing of the contact's fields.
            groups.append(
                (self.contact_fields, crm_record.contact, account.synced_contact, wanted_contact, 1)
            )
        for fieldmaps, held, last, connect, side in groups:
            for fieldmap in fieldmaps:
                have = held.get(fieldmap.target)
                want = (connect or {}).get(fieldmap.target)
                if same(have, last.get(fieldmap.target)):
                    continue
                if same(have, want):
                    changes.seen[side][fieldmap.target] = have
                elif not account.sync_on:
                    changes.waiting = True
                else:
                    self._to_send(account.id, fieldmap, have, side, changes, entries)
        return changes

    def _to_send(
        self,
        account_id: str,
        fieldmap: FieldMap,
        have: str | None,
        side: int,
        changes: _Changes,
        entries: list[LedgerEntry],
    ) -> None:
        try:
            value = connect_value(fieldmap, have)
            path = fieldmap.paths[0]
            if path in changes.send and changes.send[path] != value:
                raise NotReversible(f"{fieldmap.target}: another CRM field sets {path} differently")
        except NotReversible as exc:
            self.ctx.counts.fields_skipped += 1
            entries.append(self.ctx.entry(_TA, account_id, "skipped", "not_reversible", str(exc)))
            changes.seen[side][fieldmap.target] = have
            return
        changes.send[path] = value
        changes.on_success[side][fieldmap.target] = have
