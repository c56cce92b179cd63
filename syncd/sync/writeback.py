"""The write-back phase: settle pending TARs in Connect, and send CRM-owned fields back to it.

Run after the push. In order:

1. **Recover.** Outbox rows a crash left `sent` or `unknown` are settled by reading the record back,
   never by sending again; rows never sent whose TAR was settled elsewhere are closed.
2. **TARs.** Pending TARs are read from the mirror a page at a time (one query per page, with each
   account's flag, CRM link and open conflicts) and decided by `syncd.domain.tar_decision`. Each
   accept or ignore gets its outbox row (one per TAR, ever: `uq_connect_outbox_tar_action`),
   committed before the call; the row is claimed (`sent`) just before it, and settled after it with
   the TAR's final status, which the mirror's TAR row takes too. Connect has no batch accept: one
   call per TAR, up to `concurrency` of them in flight at once (`syncd.sync.writeback_send`). A
   lost answer (`OutcomeUnknown`) or a 400 because the TAR is no longer pending (`RecordError`) is
   settled by reading the TAR back (`GET /tier/account-requests/{id}`).
3. **CRM-owned fields** (`syncd.sync.writeback_fields`).

Crash points: `writeback.before_send` (row claimed, request not sent) and `writeback.after_send`
(answer received, row not settled).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from sqlalchemy import Engine, func, select

from syncd import crashpoints
from syncd.connect.client import ConnectClient
from syncd.crm.port import CrmError, CrmPort
from syncd.domain.mapping import Mapping
from syncd.domain.tar_decision import Decision, DisabledPolicy, decide
from syncd.store import outbox
from syncd.store.runs import record
from syncd.store.schema import connect_outbox
from syncd.store.writeback_state import PendingTar, pending_tars
from syncd.sync.writeback_common import ConnectUnavailable, Context, WritebackCounts
from syncd.sync.writeback_fields import CrmFieldsPart
from syncd.sync.writeback_send import Action, ActionSender

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_CONCURRENCY", "WritebackCounts", "WritebackPhase"]

DEFAULT_CONCURRENCY: Final = 8
"""Accepts / ignores in flight at once (`SYNCD_WRITEBACK_CONCURRENCY`)."""


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
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        if disabled_tar_policy not in ("leave", "ignore"):
            raise ValueError(f"disabled_tar_policy must be leave or ignore: {disabled_tar_policy}")
        self.ctx = Context(engine, client, crm, mapping, run_id, clock, should_stop, dry_run)
        self.policy: DisabledPolicy = disabled_tar_policy
        self.page_size = page_size
        self.fields = CrmFieldsPart(self.ctx, crm_overlap)
        self.sender = ActionSender(self.ctx, concurrency)

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
        self.sender.run(
            [Action(row.id, row.object_id, row.kind, row.payload, send=False) for row in rows]
        )
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
            self.ctx.check_stop()
            self.sender.run(
                [
                    Action(row_id, tar_id, kind, payload)
                    for tar_id, kind, payload, row_id in self._write_rows(chosen)
                ]
            )

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
        crashpoints.reach("writeback.outbox_recorded")
        actions += [
            (a.object_id, a.kind, a.payload, created[a.object_id])
            for a in new
            if a.object_id in created
        ]
        return sorted(actions, key=lambda action: action[0])
