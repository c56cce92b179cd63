"""`PUT /tier/accounts/{id}` through the outbox: one `update_account` row per PUT, claimed just
before the call and settled after it; a lost answer or a crash is settled by reading the TA back
(taken when the TA holds the row's values, else sent again: a PUT of the same values is
idempotent). The body is built on the TA as Connect holds it when it is sent, read just before,
because `contact_info` goes whole (`syncd.domain.reverse.update_body`).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from syncd.connect.errors import FatalError, MalformedResponse, OutcomeUnknown, RecordError
from syncd.connect.paths import join_path
from syncd.domain.records import InvalidRecord, parse_account
from syncd.domain.reverse import holds, update_body
from syncd.store import mirror, outbox
from syncd.store.runs import record
from syncd.store.writeback_state import linked_accounts, remember_seen
from syncd.sync.writeback_common import ConnectUnavailable, Context, read, send

logger = logging.getLogger(__name__)

_TA = "tier_account"

Seen = tuple[dict[str, str | None], dict[str, str | None]]
"""(account fields, contact fields): CRM values to remember as seen."""


def _path(account_id: str) -> str:
    return join_path("tier", "accounts", account_id)


class AccountUpdates:
    """Sends CRM-owned values to tier accounts and settles the PUTs."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def update(self, account_id: str, fields: dict[str, Any], on_success: Seen) -> None:
        """Send `fields` (TA path → value) to one account, on the TA as Connect holds it now;
        once taken, remember `on_success` as the CRM values seen."""
        current = self._current(account_id)
        if current is None:
            return
        send_now = {p: v for p, v in fields.items() if not holds(current, p, v)}
        if not send_now:
            with self.ctx.engine.begin() as conn:
                remember_seen(conn, {account_id: on_success})
            return
        payload = {
            "fields": send_now,
            "seen": {"account": on_success[0], "contact": on_success[1]},
            "base_version": current.get("version"),
        }
        with self.ctx.engine.begin() as conn:
            row_id = outbox.add_update(conn, account_id, payload, self.ctx.run_id)
        self._send(row_id, account_id, current, payload)

    def _current(self, account_id: str) -> dict[str, Any] | None:
        try:
            answer = read(self.ctx, _path(account_id))
        except RecordError as exc:
            self._note(account_id, "error", "connect_refused", f"cannot read the account: {exc}")
            return None
        return answer if isinstance(answer, dict) else None

    def _send(
        self, row_id: int, account_id: str, current: dict[str, Any], payload: dict[str, Any]
    ) -> None:
        body = update_body(current, payload["fields"])
        call = send(self.ctx, row_id, "PUT", _path(account_id), body)
        if call is None:
            return
        error = call.error
        if error is None:
            try:
                parse_account(call.answer)
            except InvalidRecord as exc:
                error = MalformedResponse(f"PUT {_path(account_id)}: the answer is not a TA: {exc}")
            else:
                self._taken(row_id, account_id, payload, call.answer)
                return
        if isinstance(error, FatalError):
            self._release(row_id, str(error))
            raise error
        if isinstance(error, OutcomeUnknown | MalformedResponse):
            with self.ctx.engine.begin() as conn:
                outbox.mark_unknown(conn, row_id, str(error))
            current_now = self._current(account_id)
            if current_now is not None and _applied(current_now, payload):
                self._taken(row_id, account_id, payload, current_now, read_back=True)
            return  # else the next run's recovery reads it back again
        if isinstance(error, RecordError):
            # Connect refused the values (e.g. 400 VAL_001): remembered, so only a new CRM edit
            # of these fields tries again.
            with self.ctx.engine.begin() as conn:
                outbox.fail(conn, row_id, str(error))
                remember_seen(conn, {account_id: _seen_of(payload)})
                entry = self.ctx.entry(_TA, account_id, "rejected", "connect_refused", str(error))
                record(conn, self.ctx.run_id, [entry])
            self.ctx.counts.failed += 1
            return
        self._release(row_id, str(error))
        raise ConnectUnavailable(str(error))

    def _taken(
        self,
        row_id: int,
        account_id: str,
        payload: dict[str, Any],
        account: dict[str, Any],
        *,
        read_back: bool = False,
    ) -> None:
        fields = sorted(payload["fields"])
        with self.ctx.engine.begin() as conn:
            outbox.settle(conn, row_id, f"version {account.get('version')}")
            remember_seen(conn, {account_id: _seen_of(payload)})
            try:
                parse_account(account)
            except InvalidRecord:
                pass  # the pull brings the new version with its TAR anyway
            else:
                # The new version goes to the mirror now; its TAR comes with the next pull.
                mirror.store_accounts(conn, json.dumps([account]), "account")
            message = "sent to Connect: " + ", ".join(fields)
            record(
                conn, self.ctx.run_id, [self.ctx.entry(_TA, account_id, "updated", None, message)]
            )
        self.ctx.counts.accounts_updated += 1
        self.ctx.counts.fields_sent += len(fields)
        self.ctx.counts.read_back += read_back
        logger.info("account_updated", extra={"account": account_id, "fields": fields})

    def resume(self, row: outbox.OutboxRow) -> None:
        """Settle a PUT row a previous run left unsettled: taken if the TA holds its values,
        else sent again (unless the account's sync is no longer on)."""
        current = self._current(row.object_id)
        if current is None:
            with self.ctx.engine.begin() as conn:
                outbox.fail(conn, row.id, "the account could not be read back")
            return
        if _applied(current, row.payload):
            if row.state == "pending":
                with self.ctx.engine.begin() as conn:
                    outbox.settle(conn, row.id, f"version {current.get('version')}", "held already")
                    remember_seen(conn, {row.object_id: _seen_of(row.payload)})
                return
            self._taken(row.id, row.object_id, row.payload, current, read_back=True)
            return
        with self.ctx.engine.connect() as conn:
            account = linked_accounts(conn, [row.object_id]).get(row.object_id)
        if account is None or not account.sync_on:
            with self.ctx.engine.begin() as conn:
                outbox.fail(conn, row.id, "not sent: the account's sync is no longer on")
            return
        if row.state != "pending":
            self._release(row.id, "read back: not taken, sent again")
            self.ctx.counts.released += 1
        self._send(row.id, row.object_id, current, row.payload)

    def _release(self, row_id: int, error: str) -> None:
        with self.ctx.engine.begin() as conn:
            outbox.release(conn, row_id, error)

    def _note(self, account_id: str, outcome: str, kind: str, message: str) -> None:
        with self.ctx.engine.begin() as conn:
            record(conn, self.ctx.run_id, [self.ctx.entry(_TA, account_id, outcome, kind, message)])


def _applied(account: dict[str, Any], payload: dict[str, Any]) -> bool:
    return all(holds(account, path, value) for path, value in payload["fields"].items())


def _seen_of(payload: dict[str, Any]) -> Seen:
    seen = payload.get("seen") or {}
    return dict(seen.get("account") or {}), dict(seen.get("contact") or {})
