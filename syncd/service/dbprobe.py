"""Database reads for health and metrics, bounded in time: a slow database never hangs an answer.

Two bounds. Inside Postgres, the read runs with a `statement_timeout` local to its transaction.
Outside, the caller waits for the read no longer than the same timeout: opening a connection to a
host that does not answer (or waiting for a free connection in the pool) is not bounded by any
statement timeout, so the read runs in a worker thread and the caller gives up on it. One read at
a time per probe: while a read still hangs, the next caller fails fast instead of piling threads.

Failures carry a fixed reason text, never the driver's message (which names hosts and users).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError, SQLAlchemyError

logger = logging.getLogger(__name__)

T = TypeVar("T")

_LOCAL_TIMEOUT = text("SELECT set_config('statement_timeout', :ms, true)")


class ProbeFailed(Exception):
    """The database did not answer in time, or answered with an error. `str()` is safe to show."""


class _Box(Generic[T]):
    """What the worker thread hands back: a value (a list of one) or a reason."""

    def __init__(self) -> None:
        self.value: list[T] = []
        self.reason: str | None = None


class DbProbe:
    """Runs short read-only queries on `engine`, each bounded by `timeout` seconds."""

    def __init__(self, engine: Engine, timeout: float = 2.0, *, name: str = "db") -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.engine = engine
        self.timeout = timeout
        self.name = name
        self._busy = threading.Lock()

    def run(self, query: Callable[[Connection], T]) -> T:
        """`query(conn)` in a transaction that is rolled back; raises `ProbeFailed`."""
        deadline = time.monotonic() + self.timeout
        if not self._busy.acquire(timeout=self.timeout):
            raise ProbeFailed("database did not answer: a previous check is still waiting")
        box: _Box[T] = _Box()
        done = threading.Event()

        def work() -> None:
            try:
                box.value.append(self._query(query))
            except Exception as exc:  # noqa: BLE001 - any failure becomes the answer's reason
                box.reason = _reason(exc)
                logger.warning("db_probe_failed", extra={"probe": self.name, "error": box.reason})
            finally:
                done.set()
                self._busy.release()  # released by the worker: the lock is not re-entrant

        threading.Thread(target=work, name=f"syncd-{self.name}-probe", daemon=True).start()
        if not done.wait(max(0.0, deadline - time.monotonic())):
            raise ProbeFailed(f"database did not answer within {self.timeout:g}s")
        if box.reason is not None or not box.value:
            raise ProbeFailed(box.reason or "database check failed")
        return box.value[0]

    def _query(self, query: Callable[[Connection], T]) -> T:
        with self.engine.connect() as conn:
            conn.execute(_LOCAL_TIMEOUT, {"ms": str(max(1, int(self.timeout * 1000)))})
            try:
                return query(conn)
            finally:
                conn.rollback()


def _reason(exc: Exception) -> str:
    """A fixed description of the failure: the driver's own text may name host, port and user."""
    sqlstate = getattr(exc.orig, "sqlstate", None) if isinstance(exc, DBAPIError) else None
    if sqlstate == "57014":  # query_canceled: the statement timeout fired
        return "database query timed out"
    if sqlstate == "42P01":  # undefined_table
        return "database schema missing (run `syncd db upgrade`)"
    if isinstance(exc, OperationalError):
        return "database unreachable"
    if isinstance(exc, ProgrammingError):
        return f"database query failed ({type(exc.orig).__name__})"
    if isinstance(exc, SQLAlchemyError):
        return f"database error ({type(exc).__name__})"
    return f"database check failed ({type(exc).__name__})"
