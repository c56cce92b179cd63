"""`sync_runs` and the per-record ledger (`sync_ledger`)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from syncd.store.schema import sync_ledger, sync_runs

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


def finish_run(
    engine: Engine, run_id: int, outcome: str, counts: dict[str, Any], error: str | None = None
) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(sync_runs)
            .where(sync_runs.c.id == run_id)
            .values(outcome=outcome, counts=counts, error=error, finished_at=func.now())
        )


def record(conn: Connection, run_id: int | None, entries: Sequence[LedgerEntry]) -> None:
    if not entries:
        return
    conn.execute(
        insert(sync_ledger),
        [
            {
                "run_id": run_id,
                "object_type": e.object_type,
                "object_id": e.object_id,
                "phase": e.phase,
                "outcome": e.outcome,
                "error_kind": e.error_kind,
                "message": e.message,
                "payload": payload_text(e.payload),
            }
            for e in entries
        ],
    )


def last_runs(conn: Connection, limit: int = 10) -> list[dict[str, Any]]:
    rows = conn.execute(select(sync_runs).order_by(sync_runs.c.id.desc()).limit(limit))
    return [dict(row._mapping) for row in rows]
