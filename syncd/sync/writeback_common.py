"""What both parts of the write-back share: counts, the context, and how an account update's
outbox row goes to Connect (`send`: claim, call, crash points). TAR actions take the same steps
with the same crash points, many at once (`syncd.sync.writeback_send`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from syncd import crashpoints
from syncd.connect.client import ConnectClient
from syncd.connect.errors import ConnectError
from syncd.crm.port import CrmPort
from syncd.domain.mapping import Mapping
from syncd.store import outbox
from syncd.store.runs import LedgerEntry
from syncd.sync.pull import Stopped

PHASE = "writeback"


class ConnectUnavailable(Exception):
    """Connect did not answer within the client's retry budget: the phase stops here; what it
    committed is kept, and unsent or unsettled rows are taken up by the next run."""


@dataclass
class WritebackCounts:
    accepted: int = 0
    """TARs syncd settled as accepted this run (by its answer or by reading it back)."""
    ignored: int = 0
    read_back: int = 0
    """Actions whose outcome was learned by reading the record back (lost answer, crash, 400)."""
    released: int = 0
    """Actions read back as not taken: sent again next run."""
    failed: int = 0
    """Actions Connect refused for good (outbox `failed`, reason in the ledger)."""
    unsettled: int = 0
    """Outbox rows still `sent` or `unknown` at the end of the run."""
    left_pending: Counter[str] = field(default_factory=Counter)
    """TARs left pending, by reason (see `syncd.domain.tar_decision`)."""
    crm_records: int = 0
    """CRM records looked at for CRM-owned fields."""
    accounts_updated: int = 0
    fields_sent: int = 0
    fields_skipped: int = 0
    """CRM-owned field edits that cannot go back to Connect (ledger `skipped`)."""
    waiting_flag: int = 0
    """Accounts with CRM-owned edits held back because their sync is not on."""
    connect_reads: int = 0
    connect_writes: int = 0
    failed_parts: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if k != "left_pending"}
        out["left_pending"] = dict(sorted(self.left_pending.items()))
        out["failed_parts"] = list(self.failed_parts)
        return out


@dataclass
class Context:
    """What the parts of one write-back run share."""

    engine: Engine
    client: ConnectClient
    crm: CrmPort
    mapping: Mapping
    run_id: int | None
    clock: Callable[[], datetime]
    should_stop: Callable[[], bool]
    dry_run: bool
    counts: WritebackCounts = field(default_factory=WritebackCounts)
    planned: list[dict[str, Any]] = field(default_factory=list)
    """What a dry run would do."""

    def check_stop(self) -> None:
        if self.should_stop():
            raise Stopped

    def entry(
        self,
        object_type: str,
        object_id: str,
        outcome: str,
        error_kind: str | None = None,
        message: str | None = None,
    ) -> LedgerEntry:
        return LedgerEntry(object_type, object_id, PHASE, outcome, error_kind, message)


@dataclass(frozen=True)
class Call:
    """A request that went out: Connect's JSON answer, or the classified error."""

    answer: Any
    error: ConnectError | None


def send(ctx: Context, row_id: int, method: str, path: str, body: Any) -> Call | None:
    """Claim outbox row `row_id` (committed), then send its request once. None when the row was
    not pending (another run has it). Settling the row is the caller's."""
    with ctx.engine.begin() as conn:
        if not outbox.claim(conn, row_id):
            return None
    crashpoints.reach("writeback.before_send")
    answer: Any = None
    error: ConnectError | None = None
    try:
        write = ctx.client.post if method == "POST" else ctx.client.put
        answer = write(path, body)
    except ConnectError as exc:
        error = exc
    ctx.counts.connect_writes += 1
    crashpoints.reach("writeback.after_send")
    crashpoints.reach(f"writeback.{method.lower()}.after_send")
    return Call(answer, error)


def read(ctx: Context, path: str) -> Any:
    """GET `path` for a read-back. Raises ConnectUnavailable when Connect cannot answer now;
    a refusal about the record (404) and fatal errors are raised as they are."""
    ctx.counts.connect_reads += 1
    try:
        return ctx.client.get(path)
    except ConnectError as exc:
        if exc.kind == "retriable":
            raise ConnectUnavailable(str(exc)) from exc
        raise
