"""`sync_runs` and the per-record ledger (`sync_ledger`)."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, text, update
from sqlalchemy.exc import OperationalError

from syncd.store.schema import sync_ledger, sync_runs

logger = logging.getLogger(__name__)

PAYLOAD_MAX = 100_000
"""Characters of a payload kept in the ledger; the rest is cut (and the cut is said)."""


@dataclass(frozen=True)
class LedgerEntry:
    object_type: str
    object_id: str | None
    phase: str
    outcome: str
    error_kind: str | None = None
    message: str | None = None
    payload: Any = None
    """The record as received: a JSON value, or the raw text when it was not JSON."""


def payload_text(payload: Any) -> str | None:
    """The payload as JSON text; NUL characters stay escaped (`\\u0000`), which Postgres accepts."""
    if payload is None:
        return None
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=True)
    text = text.replace("\x00", "\\u0000")
    if len(text) > PAYLOAD_MAX:
        return text[:PAYLOAD_MAX] + f"... [cut: {len(text)} characters in all]"
    return text


def start_run(engine: Engine, kind: str, trigger: str) -> int:
    with engine.begin() as conn:
        run_id = conn.execute(
            insert(sync_runs)
            .values(kind=kind, trigger=trigger, host=socket.gethostname(), pid=os.getpid())
            .returning(sync_runs.c.id)
        ).scalar_one()
    return int(run_id)


FINISH_WAIT = 30.0
"""Seconds `finish_run` waits for a database that went away during the run."""


def finish_run(
    engine: Engine,
    run_id: int,
    outcome: str,
    counts: dict[str, Any],
    error: str | None = None,
    *,
    wait: float = FINISH_WAIT,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Record the run's end. A run often fails because Postgres went away (a restart, a
    failover): its row would then stay `running`, so an unreachable database is tried again for
    up to `wait` seconds before the error is raised."""
    deadline = time.monotonic() + wait
    delay = 0.5
    while True:
        try:
            with engine.begin() as conn:
                conn.execute(
                    update(sync_runs)
                    .where(sync_runs.c.id == run_id)
                    .values(outcome=outcome, counts=counts, error=error, finished_at=func.now())
                )
            return
        except OperationalError as exc:
            # A dead pooled connection is discarded with the error: the next try opens a new one.
            if time.monotonic() + delay > deadline:
                raise
            logger.warning(
                "run_finish_retried",
                extra={"run_id": run_id, "error": type(exc.orig).__name__, "wait": delay},
            )
            sleep(delay)
            delay = min(delay * 2, 5.0)


_LEDGER_COLUMNS = ("object_type", "object_id", "phase", "outcome", "error_kind", "message")
_RECORD = text(
    f"INSERT INTO {sync_ledger.name} (run_id, {', '.join(_LEDGER_COLUMNS)}, payload) "
    "SELECT CAST(:run_id AS bigint), * FROM unnest("
    + ", ".join(f"CAST(:{c} AS text[])" for c in (*_LEDGER_COLUMNS, "payload"))
    + ")"
)


def _no_nul(value: str | None) -> str | None:
    """`value` with NUL characters escaped: an id or a message quoting bad input may hold one, and
    Postgres `text` refuses it, with the whole transaction (the page or batch being recorded)."""
    return value.replace("\x00", "\\u0000") if value and "\x00" in value else value


def record(conn: Connection, run_id: int | None, entries: Sequence[LedgerEntry]) -> None:
    """Add ledger rows, in one statement: one array parameter per column, `unnest`ed. An
    executemany would send one INSERT per entry, and a batch of pushed accounts has hundreds."""
    if not entries:
        return
    columns: dict[str, list[str | None]] = {c: [] for c in _LEDGER_COLUMNS}
    columns["payload"] = []
    for e in entries:
        columns["object_type"].append(e.object_type)
        columns["object_id"].append(_no_nul(e.object_id))
        columns["phase"].append(e.phase)
        columns["outcome"].append(e.outcome)
        columns["error_kind"].append(e.error_kind)
        columns["message"].append(_no_nul(e.message))
        columns["payload"].append(payload_text(e.payload))
    conn.execute(_RECORD, {"run_id": run_id, **columns})


def last_runs(conn: Connection, limit: int = 10) -> list[dict[str, Any]]:
    rows = conn.execute(select(sync_runs).order_by(sync_runs.c.id.desc()).limit(limit))
    return [dict(row._mapping) for row in rows]


def abort_unfinished(
    engine: Engine, error: str, *, host: str | None = None, pid: int | None = None
) -> list[int]:
    """Mark `aborted` the runs still `running` (of `host` and `pid` only, when given), with
    `error`; returns their ids.

    Only the holder of the writer lock runs cycles, so once a process holds it, any run still
    `running` belongs to a process that died (or lost its connection) before finishing it.
    """
    statement = (
        update(sync_runs)
        .where(sync_runs.c.outcome == "running")
        .values(outcome="aborted", finished_at=func.now(), error=error)
        .returning(sync_runs.c.id)
    )
    if host is not None:
        statement = statement.where(sync_runs.c.host == host)
    if pid is not None:
        statement = statement.where(sync_runs.c.pid == pid)
    with engine.begin() as conn:
        return sorted(int(run_id) for run_id in conn.execute(statement).scalars())


def amend_error(engine: Engine, run_id: int, error: str) -> None:
    """Replace the error of a finished run (say why it stopped, when the cycle could not)."""
    with engine.begin() as conn:
        conn.execute(update(sync_runs).where(sync_runs.c.id == run_id).values(error=error))


def last_started(engine: Engine, kind: str, outcomes: Sequence[str]) -> datetime | None:
    """When the newest run of `kind` that ended in one of `outcomes` started, or None."""
    with engine.connect() as conn:
        found = conn.execute(
            select(func.max(sync_runs.c.started_at)).where(
                sync_runs.c.kind == kind, sync_runs.c.outcome.in_(outcomes)
            )
        ).scalar_one()
    return found if isinstance(found, datetime) else None
