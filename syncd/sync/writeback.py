"""The write-back phase: settle pending TARs in Connect, and send CRM-owned fields back to it.

Run after the push. In order:

1. **Recover.** Outbox rows a crash left `sent` or `unknown` are settled by reading the record back,
   never by sending again; rows never sent whose TAR was settled elsewhere are closed.
2. **TARs.** Pending TARs are read from the mirror a page at a time (one query per page, with each
   account's flag, CRM link and open conflicts) and decided by `syncd.domain.tar_decision`. Each
   accept or ignore gets its outbox row (one per TAR, ever: `uq_connect_outbox_tar_action`),
   committed before the call; the row is claimed (`sent`) just before it, and settled after it with
   the TAR's final status, which the mirror's TAR row takes too. Connect has no batch accept: one
   call per TAR. A lost answer (`OutcomeUnknown`) or a 400 because the TAR is no longer pending
   (`RecordError`) is settled by reading the TAR back (`GET /tier/account-requests/{id}`).
3. **CRM-owned fields** (`syncd.sync.writeback_fields`).

Crash points: `writeback.before_send` (row claimed, request not sent) and `writeback.after_send`
(answer received, row not settled).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine, func, select

from syncd.connect.client import ConnectClient
from syncd.connect.errors import (
    ConnectError,
    FatalError,
    MalformedResponse,
    OutcomeUnknown,
    RecordError,
)
from syncd.connect.paths import join_path
from syncd.crm.port import CrmError, CrmPort
from syncd.domain.mapping import Mapping
from syncd.domain.records import InvalidRecord, TierAccountRequest, parse_request
from syncd.domain.tar_decision import Decision, DisabledPolicy, decide
from syncd.store import mirror, outbox
from syncd.store.runs import record
from syncd.store.schema import connect_outbox
from syncd.store.writeback_state import PendingTar, pending_tars
from syncd.sync.writeback_common import (
    ConnectUnavailable,
    Context,
    WritebackCounts,
    read,
    send,
)
from syncd.sync.writeback_fields import CrmFieldsPart

logger = logging.getLogger(__name__)

__all__ = ["WritebackCounts", "WritebackPhase"]

_TAR = "tier_account_request"


def _tar_path(tar_id: str, *action: str) -> str:
    return join_path("tier", "account-requests", tar_id, *action)


class WritebackPhase:
    """One write-back over the mirror; `run` returns the counts (module doc)."""

    def __init__(
        self,
        engine: Engine,
        client: ConnectClient,
        crm: CrmPort,
        mapping: Mapping,
        *,
        run_id: int | None,
        disabled_tar_policy: Literal["leave", "ignore"] = "leave",
        should_stop: Callable[[], bool] = lambda: False,
        crm_overlap: timedelta = timedelta(minutes=10),
        page_size: int = 500,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        dry_run: bool = False,
    ) -> None:
        if disabled_tar_policy not in ("leave", "ignore"):
            raise ValueError(f"disabled_tar_policy must be leave or ignore: {disabled_tar_policy}")
        self.ctx = Context(engine, client, crm, mapping, run_id, clock, should_stop, dry_run)
        self.policy: DisabledPolicy = disabled_tar_policy
        self.page_size = page_size
        self.fields = CrmFieldsPart(self.ctx, crm_overlap)

    @property
    def counts(self) -> WritebackCounts:
        return self.ctx.counts

    @property
    def planned(self) -> list[dict[str, Any]]:
        """What a dry run would have done: one entry per action or account update."""
        return self.ctx.planned

    def run(self) -> WritebackCounts:
        """Recover, settle pending TARs, send CRM-owned fields. Raises `Stopped` when asked to
        stop, `FatalError` / fatal `CrmError` when a credential or the configuration is wrong;
        Connect being unavailable or a CRM failure ends its part and is in `failed_parts`."""
        parts: list[tuple[str, Callable[[], None]]] = [("tars", self.tars)]
        if not self.ctx.dry_run:
            parts.insert(0, ("recover", self.recover))
        if self.fields.active:
            parts.append(("crm_fields", self.fields.run))
        for name, part in parts:
            if not self._part(name, part):
                break
        with self.ctx.engine.connect() as conn:
            self.counts.unsettled = int(
                conn.execute(
                    select(func.count())
                    .select_from(connect_outbox)
                    .where(connect_outbox.c.state.in_(("sent", "unknown")))
                ).scalar_one()
            )
        logger.info(
            "writeback_finished", extra={"run_id": self.ctx.run_id, **self.counts.as_dict()}
        )
        return self.counts

    def _part(self, name: str, part: Callable[[], None]) -> bool:
        """Run one part; False when Connect is unavailable (the parts after it would fail too)."""
        try:
            part()
        except ConnectUnavailable as exc:
            self._part_failed(name, "connect_unavailable", str(exc))
            return False
        except CrmError as exc:
            if exc.fatal:
                raise
            self._part_failed(name, "crm_error", str(exc))
        return True

    def _part_failed(self, name: str, kind: str, message: str) -> None:
        self.counts.failed_parts.append(name)
        logger.error("writeback_part_failed", extra={"part": name, "error": message})
        with self.ctx.engine.begin() as conn:
            record(conn, self.ctx.run_id, [self.ctx.entry("phase", name, "error", kind, message)])

    # -- recover -------------------------------------------------------------------------------

    def recover(self) -> None:
        """Settle what a previous run left unsettled by reading the record back first; only an
        action read back as not taken is sent again."""
        with self.ctx.engine.begin() as conn:
            outbox.settle_decided_elsewhere(conn)
        with self.ctx.engine.connect() as conn:
            rows = outbox.unsettled(conn, outbox.TAR_KINDS, ("sent", "unknown"))
        for row in rows:
            self.ctx.check_stop()
            self._read_back(row.id, row.object_id, row.kind, None)
        self.fields.recover()

    # -- TARs ----------------------------------------------------------------------------------

    def tars(self) -> None:
        """Decide every pending TAR; accept or ignore those whose decision says so."""
        after = ""
        while True:
            self.ctx.check_stop()
            with self.ctx.engine.connect() as conn:
                page = pending_tars(conn, after, self.page_size)
            if not page:
                return
            after = page[-1].id
            chosen: list[tuple[PendingTar, Decision]] = []
            for tar in page:
                decision = decide(tar.facts, self.policy)
                if decision.action is None:
                    self.counts.left_pending[decision.reason] += 1
                else:
                    chosen.append((tar, decision))
            if self.ctx.dry_run:
                self.planned.extend(
                    {"tar": t.id, "action": d.action, "reason": d.reason} for t, d in chosen
                )
                continue
            for tar_id, kind, payload, row_id in self._write_rows(chosen):
                self.ctx.check_stop()
                self._act(tar_id, kind, payload, row_id)

    def _write_rows(
        self, chosen: Sequence[tuple[PendingTar, Decision]]
    ) -> list[tuple[str, str, dict[str, Any], int]]:
        """The outbox rows of a page's actions, committed before any is sent: new rows, and rows
        a crash left unsent, pointed at today's decision. Rows of another run are left out."""
        actions: list[tuple[str, str, dict[str, Any], int]] = []
        new: list[outbox.NewAction] = []
        with self.ctx.engine.begin() as conn:
            for tar, decision in chosen:
                assert decision.action is not None
                payload: dict[str, Any] = {
                    "account_id": tar.account_id,
                    "account_version": tar.facts.account_version,
                    "why": decision.reason,
                }
                if decision.action == "ignore":
                    payload["reason"] = decision.reason
                if tar.outbox_id is None:
                    new.append(outbox.NewAction(decision.action, tar.id, payload))
                elif outbox.retarget(conn, tar.outbox_id, decision.action, payload):
                    actions.append((tar.id, decision.action, payload, tar.outbox_id))
            created = outbox.add_tar_actions(conn, new, self.ctx.run_id)
        actions += [
            (a.object_id, a.kind, a.payload, created[a.object_id])
            for a in new
            if a.object_id in created
        ]
        return sorted(actions, key=lambda action: action[0])

    def _act(self, tar_id: str, kind: str, payload: dict[str, Any], row_id: int) -> None:
        body = {"reason": payload["reason"]} if kind == "ignore" else None
        call = send(self.ctx, row_id, "POST", _tar_path(tar_id, kind), body)
        if call is None:
            return
        if call.error is not None:
            self._call_failed(row_id, tar_id, kind, call.error)
            return
        try:
            answer = parse_request(call.answer)
        except InvalidRecord as exc:
            self._lost(row_id, tar_id, kind, f"the answer is not a TAR: {exc}")
            return
        self._settled(row_id, answer, kind, read_back=False, note=payload.get("why"))

    def _call_failed(self, row_id: int, tar_id: str, kind: str, error: ConnectError) -> None:
        if isinstance(error, FatalError):
            with self.ctx.engine.begin() as conn:
                outbox.release(conn, row_id, str(error))
            raise error
        if isinstance(error, OutcomeUnknown | MalformedResponse):
            self._lost(row_id, tar_id, kind, str(error))
        elif isinstance(error, RecordError):
            # E.g. 400 because the TAR is no longer pending: its real status says what happened.
            self._read_back(row_id, tar_id, kind, error)
        else:
            # 408/429/503 or no connection: Connect did not process it (syncd.connect.classify).
            with self.ctx.engine.begin() as conn:
                outbox.release(conn, row_id, str(error))
            raise ConnectUnavailable(str(error))

    def _lost(self, row_id: int, tar_id: str, kind: str, error: str) -> None:
        with self.ctx.engine.begin() as conn:
            outbox.mark_unknown(conn, row_id, error)
        logger.warning("tar_action_outcome_unknown", extra={"tar": tar_id, "action": kind})
        self._read_back(row_id, tar_id, kind, None)

    def _read_back(self, row_id: int, tar_id: str, kind: str, refusal: RecordError | None) -> None:
        """Settle a row by the TAR's status in Connect. Still pending: the action did not take
        effect, so the row is released to be sent again (or failed, when Connect refused it)."""
        try:
            tar = parse_request(read(self.ctx, _tar_path(tar_id)))
        except (RecordError, InvalidRecord) as exc:
            self._give_up(row_id, tar_id, kind, f"read back: {exc}")
            return
        if tar.status == "pending":
            if refusal is not None:
                self._give_up(row_id, tar_id, kind, str(refusal))
                return
            with self.ctx.engine.begin() as conn:
                outbox.release(conn, row_id, "read back still pending: not taken, sent again")
            self.counts.released += 1
            return
        note = f"settled by reading back ({refusal})" if refusal else "settled by reading back"
        self._settled(row_id, tar, kind, read_back=True, note=note)

    def _settled(
        self, row_id: int, tar: TierAccountRequest, kind: str, *, read_back: bool, note: str | None
    ) -> None:
        status = tar.status
        other = None if status == {"accept": "accepted", "ignore": "ignored"}[kind] else "elsewhere"
        with self.ctx.engine.begin() as conn:
            outbox.settle(conn, row_id, status, note if read_back else None)
            mirror.store_requests(conn, json.dumps([tar.record]))
            entry = self.ctx.entry(_TAR, tar.id, status, other, tar.reason or note)
            record(conn, self.ctx.run_id, [entry])
        self.counts.accepted += status == "accepted"
        self.counts.ignored += status == "ignored"
        self.counts.read_back += read_back
        event = {"accepted": "tar_accepted", "ignored": "tar_ignored"}.get(status, "tar_settled")
        logger.info(event, extra={"tar": tar.id, "account": tar.account.id, "status": status})

    def _give_up(self, row_id: int, tar_id: str, kind: str, error: str) -> None:
        with self.ctx.engine.begin() as conn:
            outbox.fail(conn, row_id, error)
            record(
                conn, self.ctx.run_id, [self.ctx.entry(_TAR, tar_id, "failed", "refused", error)]
            )
        self.counts.failed += 1
        logger.warning("tar_action_failed", extra={"tar": tar_id, "action": kind, "error": error})
