"""`connect_outbox`: every action syncd takes on Connect, written and committed before it is sent.

The life of a row:

    pending ──claim──► sent ──answer──► done      (outcome: the TAR's status / the TA's version)
       ▲                 │  └─refused─► failed    (error: what Connect said)
       └──── release ────┤
                         └─lost───────► unknown   (settled by reading the record back)

A row is claimed (`sent`, committed) just before its HTTP call, so a crash after the call leaves
`sent`: the next run reads the record back instead of sending again. `release` puts a row whose
action surely did not take effect (refused before processing, or read back unchanged) back to
`pending`. The unique index `uq_connect_outbox_tar_action` allows one accept-or-ignore row per TAR,
ever; `update_account` rows are one per PUT.

Every function takes an open connection; the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, func, select, text, update
from sqlalchemy.dialects.postgresql import insert

from syncd.store.schema import connect_outbox, tier_account_requests

TAR_KINDS: Final = ("accept", "ignore")
UPDATE_ACCOUNT: Final = "update_account"
_TAR_ACTION = text("kind IN ('accept', 'ignore')")


@dataclass(frozen=True)
class OutboxRow:
    id: int
    kind: str
    object_id: str
    payload: dict[str, Any]
    state: str
    attempts: int


@dataclass(frozen=True)
class NewAction:
    """An accept or ignore to write for a TAR."""

    kind: str
    object_id: str
    payload: dict[str, Any]


def add_tar_actions(
    conn: Connection, actions: Sequence[NewAction], run_id: int | None
) -> dict[str, int]:
    """Insert one row per action, unless its TAR has one already (then nothing is written).

    Returns TAR id → row id for the rows this call created.
    """
    if not actions:
        return {}
    statement = (
        insert(connect_outbox)
        .values(
            [
                {"kind": a.kind, "object_id": a.object_id, "payload": a.payload, "run_id": run_id}
                for a in actions
            ]
        )
        .on_conflict_do_nothing(index_elements=["object_id"], index_where=_TAR_ACTION)
        .returning(connect_outbox.c.object_id, connect_outbox.c.id)
    )
    return {row.object_id: int(row.id) for row in conn.execute(statement)}


def retarget(conn: Connection, row_id: int, kind: str, payload: dict[str, Any]) -> bool:
    """Point a row that was never sent (still `pending`) at the current decision.

    False when the row is no longer pending: it is not this caller's to send.
    """
    statement = (
        update(connect_outbox)
        .where(connect_outbox.c.id == row_id, connect_outbox.c.state == "pending")
        .values(kind=kind, payload=payload)
        .returning(connect_outbox.c.id)
    )
    return conn.execute(statement).first() is not None


def add_update(
    conn: Connection, account_id: str, payload: dict[str, Any], run_id: int | None
) -> int:
    """Insert a `pending` update_account row; returns its id."""
    statement = (
        insert(connect_outbox)
        .values(kind=UPDATE_ACCOUNT, object_id=account_id, payload=payload, run_id=run_id)
        .returning(connect_outbox.c.id)
    )
    return int(conn.execute(statement).scalar_one())


def claim(conn: Connection, row_id: int) -> bool:
    """`pending` → `sent`, just before the call; False when the row was not pending."""
    statement = (
        update(connect_outbox)
        .where(connect_outbox.c.id == row_id, connect_outbox.c.state == "pending")
        .values(state="sent", sent_at=func.now(), attempts=connect_outbox.c.attempts + 1)
        .returning(connect_outbox.c.id)
    )
    return conn.execute(statement).first() is not None


def claim_many(conn: Connection, row_ids: Sequence[int]) -> set[int]:
    """`claim` for many rows in one statement; returns the ids claimed (those still pending)."""
    if not row_ids:
        return set()
    statement = (
        update(connect_outbox)
        .where(connect_outbox.c.id.in_(list(row_ids)), connect_outbox.c.state == "pending")
        .values(state="sent", sent_at=func.now(), attempts=connect_outbox.c.attempts + 1)
        .returning(connect_outbox.c.id)
    )
    return {int(row_id) for row_id in conn.execute(statement).scalars()}


@dataclass(frozen=True)
class Transition:
    """A row's next state, for `apply`: `done` (with `outcome`), `failed`, `unknown` or back to
    `pending`, with the error or note that says why."""

    row_id: int
    state: str
    error: str | None = None
    outcome: str | None = None


_APPLY = text(
    "UPDATE connect_outbox SET state = CAST(:state AS text), error = CAST(:error AS text), "
    "outcome = COALESCE(CAST(:outcome AS text), outcome), "
    "settled_at = CASE WHEN CAST(:state AS text) IN ('done', 'failed') THEN now() "
    "ELSE settled_at END "
    "WHERE id = :row_id"
)


def apply(conn: Connection, transitions: Sequence[Transition]) -> None:
    """Move many rows at once, each as `settle`, `fail`, `mark_unknown` or `release` would."""
    if transitions:
        conn.execute(
            _APPLY,
            [
                {"row_id": t.row_id, "state": t.state, "error": t.error, "outcome": t.outcome}
                for t in transitions
            ],
        )


def _set_state(conn: Connection, row_id: int, **values: Any) -> None:
    conn.execute(update(connect_outbox).where(connect_outbox.c.id == row_id).values(**values))


def release(conn: Connection, row_id: int, error: str) -> None:
    """Back to `pending`: the action surely did not take effect, it may be sent again."""
    _set_state(conn, row_id, state="pending", error=error)


def mark_unknown(conn: Connection, row_id: int, error: str) -> None:
    """The answer was lost: only a read-back may settle the row now."""
    _set_state(conn, row_id, state="unknown", error=error)


def settle(conn: Connection, row_id: int, outcome: str, error: str | None = None) -> None:
    """`done`, with the final state of the record in `outcome`."""
    _set_state(conn, row_id, state="done", outcome=outcome, error=error, settled_at=func.now())


def fail(conn: Connection, row_id: int, error: str) -> None:
    """`failed`: Connect refused the action for good; `error` says why."""
    _set_state(conn, row_id, state="failed", error=error, settled_at=func.now())


def unsettled(conn: Connection, kinds: Sequence[str], states: Sequence[str]) -> list[OutboxRow]:
    """Rows of `kinds` in `states`, oldest first (the start of a run settles them)."""
    rows = conn.execute(
        select(connect_outbox)
        .where(connect_outbox.c.kind.in_(kinds), connect_outbox.c.state.in_(states))
        .order_by(connect_outbox.c.id)
    )
    return [
        OutboxRow(r.id, r.kind, r.object_id, dict(r.payload), r.state, r.attempts) for r in rows
    ]


def settle_decided_elsewhere(conn: Connection) -> int:
    """Mark `done` the accept/ignore rows never sent whose TAR the mirror no longer holds as
    pending (settled in Connect by someone else); returns how many."""
    tars = tier_account_requests
    statement = (
        update(connect_outbox)
        .where(
            connect_outbox.c.kind.in_(TAR_KINDS),
            connect_outbox.c.state == "pending",
            tars.c.id == connect_outbox.c.object_id,
            tars.c.status != "pending",
        )
        .values(
            state="done",
            outcome=tars.c.status,
            settled_at=func.now(),
            error="settled in Connect before syncd sent it",
        )
    )
    return conn.execute(statement).rowcount
