"""Accepts and ignores sent concurrently, each through its outbox row (`syncd.sync.writeback`
decides which; `syncd.store.outbox` describes a row's life).

Connect has no batch accept or ignore: one POST per TAR. Sent one after the other over a link of
tens of milliseconds, they would spend their time waiting, so up to `concurrency` requests are in
flight at once, while the database work stays in the calling thread and goes in batches:

1. a few rows (twice the concurrency) are claimed, `pending` → `sent`, in one transaction just
   before their requests go: every action is recorded before it is sent;
2. worker threads send them, each `writeback.before_send`, the POST, `writeback.after_send`. An
   answer lost (`OutcomeUnknown`, or not a TAR) or a refusal (e.g. 400: the TAR is no longer
   pending) is settled there by reading the TAR back (`GET`), never by sending again;
3. the calling thread settles the outcomes in batches, one transaction each: `done` with the
   TAR's status (and the TAR into the mirror), `failed`, `unknown`, or back to `pending`.

A crash leaves rows `sent` at worst (claimed, maybe sent, not settled): the next run reads each
back before anything else. Rows claimed but never sent because the run stopped or Connect became
unavailable go back to `pending` at once. A 429 slows every thread (`syncd.connect.throttle`).

Rows a previous run left `sent` or `unknown` go through the same workers as read-backs only.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from syncd import crashpoints, logcontext
from syncd.connect.errors import (
    ConnectError,
    FatalError,
    MalformedResponse,
    OutcomeUnknown,
    RecordError,
)
from syncd.connect.paths import join_path
from syncd.domain.records import InvalidRecord, TierAccountRequest, parse_request
from syncd.store import mirror, outbox
from syncd.store.runs import LedgerEntry, record
from syncd.sync.pull import Stopped
from syncd.sync.writeback_common import ConnectUnavailable, Context

logger = logging.getLogger(__name__)

_TAR: Final = "tier_account_request"
SETTLE_EVERY: Final = 32
"""Outcomes settled per transaction (fewer at the end of a batch of actions)."""

Result = Literal["settled", "released", "failed", "unknown", "unavailable", "fatal", "not_sent"]


def tar_path(tar_id: str, *action: str) -> str:
    return join_path("tier", "account-requests", tar_id, *action)


@dataclass(frozen=True)
class Action:
    """An accept or ignore of one TAR, with its outbox row."""

    row_id: int
    tar_id: str
    kind: str
    payload: dict[str, Any]
    send: bool = True
    """False: only read the TAR back (a row a previous run left `sent` or `unknown`)."""


@dataclass(frozen=True)
class Outcome:
    """What became of one action; the calling thread turns it into the row's next state."""

    action: Action
    result: Result
    tar: TierAccountRequest | None = None
    read_back: bool = False
    note: str | None = None
    error: BaseException | None = None
    """For `unavailable`, `fatal` and an `unknown` whose read-back failed: what stops the phase."""
    sent: bool = False
    reads: int = 0


def perform(ctx: Context, action: Action, abort: threading.Event) -> Outcome:
    """Send one action (or only read it back) and learn its outcome; runs in a worker thread.
    Nothing is sent once `abort` is set."""
    if abort.is_set():
        return Outcome(action, "not_sent")
    with logcontext.bind(account_id=action.payload.get("account_id"), tar_id=action.tar_id):
        if not action.send:
            return _read_back(ctx, action, None, None)
        crashpoints.reach("writeback.before_send")
        body = {"reason": action.payload["reason"]} if action.kind == "ignore" else None
        try:
            answer = ctx.client.post(tar_path(action.tar_id, action.kind), body)
        except ConnectError as exc:
            crashpoints.reach("writeback.after_send")
            crashpoints.reach(f"writeback.{action.kind}.after_send")
            return replace(_call_failed(ctx, action, exc), sent=True)
        crashpoints.reach("writeback.after_send")
        crashpoints.reach(f"writeback.{action.kind}.after_send")
        try:
            tar = parse_request(answer)
        except InvalidRecord as exc:
            return replace(_lost(ctx, action, f"the answer is not a TAR: {exc}"), sent=True)
        return Outcome(action, "settled", tar, note=action.payload.get("why"), sent=True)


def _call_failed(ctx: Context, action: Action, error: ConnectError) -> Outcome:
    if isinstance(error, FatalError):
        return Outcome(action, "fatal", note=str(error), error=error)
    if isinstance(error, OutcomeUnknown | MalformedResponse):
        return _lost(ctx, action, str(error))
    if isinstance(error, RecordError):
        # E.g. 400 because the TAR is no longer pending: its real status says what happened.
        return _read_back(ctx, action, error, None)
    # 408/429/503 or no connection: Connect did not process it (syncd.connect.classify).
    return Outcome(action, "unavailable", note=str(error), error=ConnectUnavailable(str(error)))


def _lost(ctx: Context, action: Action, message: str) -> Outcome:
    extra = {"tar": action.tar_id, "action": action.kind}
    logger.warning("tar_action_outcome_unknown", extra=extra)
    return _read_back(ctx, action, None, message)


def _read_back(
    ctx: Context, action: Action, refusal: RecordError | None, lost: str | None
) -> Outcome:
    """The outcome by the TAR's status in Connect. Still pending: the action did not take
    effect, so the row goes back to `pending` to be sent again (or fails, when Connect refused)."""
    try:
        tar = parse_request(ctx.client.get(tar_path(action.tar_id)))
    except ConnectError as exc:
        if exc.kind == "record":
            return Outcome(action, "failed", note=f"read back: {exc}", reads=1)
        stop = exc if exc.kind == "fatal" else ConnectUnavailable(str(exc))
        return Outcome(action, "unknown", note=lost or str(refusal or exc), error=stop, reads=1)
    except InvalidRecord as exc:
        return Outcome(action, "failed", note=f"read back: {exc}", reads=1)
    if tar.status == "pending":
        if refusal is not None:
            return Outcome(action, "failed", note=str(refusal), reads=1)
        note = "read back still pending: not taken, sent again"
        return Outcome(action, "released", note=note, read_back=True, reads=1)
    note = f"settled by reading back ({refusal})" if refusal else "settled by reading back"
    return Outcome(action, "settled", tar, read_back=True, note=note, reads=1)


class ActionSender:
    """Runs actions through `perform` in a pool and settles their outcomes (module doc)."""

    def __init__(self, ctx: Context, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.ctx = ctx
        self.concurrency = concurrency

    def run(self, actions: Sequence[Action]) -> None:
        """Every action, at most `concurrency` at once. Raises, once what came back is settled:
        `Stopped` when asked to stop, `ConnectUnavailable`, `FatalError`, or what a worker
        raised (a crash point's hook, in tests)."""
        waiting = list(reversed(actions))
        abort = threading.Event()
        failure: BaseException | None = None
        in_flight: set[Future[Outcome]] = set()
        ready: list[Outcome] = []
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="writeback")
        try:
            while waiting or in_flight:
                if failure is None and self.ctx.should_stop():
                    failure = Stopped()
                    abort.set()
                room = 2 * self.concurrency - len(in_flight)  # claimed rows wait no longer
                if failure is None and waiting and room > 0:
                    in_flight |= self._submit(pool, waiting, abort, room)
                if not in_flight:
                    break
                finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    error = future.exception()
                    if error is not None:
                        failure = failure or error  # its row stays `sent`, as after a crash
                    elif (outcome := future.result()).error is not None:
                        failure = failure or outcome.error
                        ready.append(outcome)
                    else:
                        ready.append(outcome)
                if failure is not None:
                    abort.set()
                if len(ready) >= SETTLE_EVERY or not in_flight:
                    batch, ready = ready, []
                    self._settle(batch)
        finally:
            pool.shutdown(wait=True)
            self._settle(ready)
        if failure is not None:
            raise failure

    def _submit(
        self,
        pool: ThreadPoolExecutor,
        waiting: list[Action],
        abort: threading.Event,
        room: int,
    ) -> set[Future[Outcome]]:
        """Claim (in one transaction) and submit up to `room` of the waiting actions."""
        chunk = [waiting.pop() for _ in range(min(room, len(waiting)))]
        to_send = [a.row_id for a in chunk if a.send]
        claimed: set[int] = set()
        if to_send:
            with self.ctx.engine.begin() as conn:
                claimed = outbox.claim_many(conn, to_send)
        submitted: set[Future[Outcome]] = set()
        for action in chunk:
            if action.send and action.row_id not in claimed:
                continue  # not pending any more: another run has it
            # A copy of this thread's context: the worker's log lines carry the run id.
            context = contextvars.copy_context()
            submitted.add(pool.submit(context.run, perform, self.ctx, action, abort))
        return submitted

    def _settle(self, outcomes: Sequence[Outcome]) -> None:
        """The rows' next states, the TARs' new records and the ledger, in one transaction."""
        if not outcomes:
            return
        transitions: list[outbox.Transition] = []
        tars: list[TierAccountRequest] = []
        entries: list[LedgerEntry] = []
        for outcome in outcomes:
            transition, tar, entry = self._effects(outcome)
            if transition is not None:
                transitions.append(transition)
            if tar is not None:
                tars.append(tar)
            if entry is not None:
                entries.append(entry)
        with self.ctx.engine.begin() as conn:
            outbox.apply(conn, transitions)
            if tars:
                mirror.store_requests(conn, json.dumps([t.record for t in tars]))
            record(conn, self.ctx.run_id, entries)
            crashpoints.reach("writeback.settle.before_commit")
        for outcome in outcomes:
            self._count(outcome)

    def _effects(
        self, outcome: Outcome
    ) -> tuple[outbox.Transition | None, TierAccountRequest | None, LedgerEntry | None]:
        action, row_id, note = outcome.action, outcome.action.row_id, outcome.note
        result = outcome.result
        if result == "settled":
            assert outcome.tar is not None
            tar = outcome.tar
            took = tar.status == {"accept": "accepted", "ignore": "ignored"}[action.kind]
            kept_note = note if outcome.read_back else None
            entry = self.ctx.entry(
                _TAR, tar.id, tar.status, None if took else "elsewhere", tar.reason or note
            )
            return outbox.Transition(row_id, "done", kept_note, tar.status), tar, entry
        if result == "failed":
            entry = self.ctx.entry(_TAR, action.tar_id, "failed", "refused", note)
            return outbox.Transition(row_id, "failed", note), None, entry
        if result == "unknown":
            return outbox.Transition(row_id, "unknown", note), None, None
        if result == "not_sent":
            if not action.send:
                return None, None, None  # a read-back never made: the row stays as it was
            note = "not sent: the run stopped before it"
        # released, unavailable, fatal (Connect did not act), not_sent: to be sent again.
        return outbox.Transition(row_id, "pending", note), None, None

    def _count(self, outcome: Outcome) -> None:
        counts = self.ctx.counts
        counts.connect_writes += outcome.sent
        counts.connect_reads += outcome.reads
        action, tar = outcome.action, outcome.tar
        if outcome.result == "settled" and tar is not None:
            counts.accepted += tar.status == "accepted"
            counts.ignored += tar.status == "ignored"
            counts.read_back += outcome.read_back
            event = {"accepted": "tar_accepted", "ignored": "tar_ignored"}.get(
                tar.status, "tar_settled"
            )
            extra = {"tar": tar.id, "account": tar.account.id, "status": tar.status}
            logger.info(event, extra=extra)
        elif outcome.result == "released" and outcome.read_back:
            counts.released += 1
        elif outcome.result == "failed":
            counts.failed += 1
            logger.warning(
                "tar_action_failed",
                extra={"tar": action.tar_id, "action": action.kind, "error": outcome.note},
            )
