"""`daemon_heartbeats`: a row per `syncd run` instance, so ops see who is active, who stands by.

The row is written at start (`starting`), at every state change and every few seconds while the
daemon lives, also while it stands by or waits between cycles. A row whose `beat_at` is old is a
dead instance (killed, or its machine gone): a clean exit leaves `stopped`.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Engine, delete, func, select
from sqlalchemy.dialects.postgresql import insert

from syncd import __version__
from syncd.store.schema import daemon_heartbeats

State = Literal["starting", "active", "standby", "stopping", "stopped"]


@dataclass(frozen=True)
class Instance:
    """Who beats: `host:pid`, as a restarted container (same host name, same pid) reuses it."""

    host: str
    pid: int
    version: str = __version__

    @property
    def id(self) -> str:
        return f"{self.host}:{self.pid}"


def this_instance() -> Instance:
    """The running process."""
    return Instance(socket.gethostname(), os.getpid())


def register(engine: Engine, instance: Instance) -> None:
    """Write the instance's row as `starting` (a row left by an earlier process of the same
    host and pid is taken over)."""
    values = {
        "instance": instance.id,
        "host": instance.host,
        "pid": instance.pid,
        "version": instance.version,
        "state": "starting",
        "last_run_id": None,
    }
    statement = insert(daemon_heartbeats).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=[daemon_heartbeats.c.instance],
        set_={**values, "started_at": func.now(), "beat_at": func.now()},
    )
    with engine.begin() as conn:
        conn.execute(statement)


def beat(engine: Engine, instance: Instance, state: State, last_run_id: int | None = None) -> None:
    """Record that the instance is alive and in `state` (and its last run, when given)."""
    values: dict[str, Any] = {"state": state, "beat_at": func.now()}
    if last_run_id is not None:
        values["last_run_id"] = last_run_id
    statement = insert(daemon_heartbeats).values(
        instance=instance.id,
        host=instance.host,
        pid=instance.pid,
        version=instance.version,
        state=state,
        last_run_id=last_run_id,
    )
    # An upsert: the row may have been deleted by hand (or pruned) while the daemon ran.
    statement = statement.on_conflict_do_update(
        index_elements=[daemon_heartbeats.c.instance], set_=values
    )
    with engine.begin() as conn:
        conn.execute(statement)


def prune(engine: Engine, older_than: timedelta) -> int:
    """Delete the rows of instances silent for longer than `older_than`; returns how many."""
    statement = delete(daemon_heartbeats).where(
        daemon_heartbeats.c.beat_at < func.now() - older_than
    )
    with engine.begin() as conn:
        return conn.execute(statement).rowcount


def instances(conn: Connection) -> list[dict[str, Any]]:
    """Every heartbeat row, newest beat first."""
    rows = conn.execute(select(daemon_heartbeats).order_by(daemon_heartbeats.c.beat_at.desc()))
    return [dict(row._mapping) for row in rows]
