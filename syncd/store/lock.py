"""The writer lock: one cycle at a time per database, whichever process or machine runs it.

A Postgres session-level advisory lock (`pg_try_advisory_lock`) on a 64-bit key derived from a
name, held on a connection of its own (outside the engine's pool) for the length of one cycle.
Postgres ends the lock with the session: a holder killed by SIGKILL, or one whose connection
died, has released it, so a standby takes over at its next try. The other side of that coin: a
holder whose lock connection died no longer holds the lock although it may still be running, so
it checks (`still_held`) between pages and batches and stops when it has lost it.

Advisory locks are per database and per session: behind a pooler in transaction mode (PgBouncer
`pool_mode=transaction`) the session is not ours and the lock means nothing; point syncd at
Postgres itself, or at a session-mode pool.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

WRITER_LOCK = "syncd.writer"
"""The name of the lock every cycle takes: `syncd run`, `syncd sync` and `syncd resync`."""

_APPLICATION = re.compile(r"^syncd:(\d+)@(.*)$")
_NAME_MAX = 63  # Postgres keeps NAMEDATALEN - 1 bytes of application_name

# libpq's TCP keepalives: a lock connection to a Postgres that vanished without a FIN (a network
# partition) errors within about 25 seconds instead of hanging, so the holder learns it lost it.
# The server-side settings do the same for Postgres: it ends the session of a holder whose
# machine died, releasing the lock for a standby, instead of waiting for the kernel's two hours.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5}
_SERVER_KEEPALIVES = (
    "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3"
)

_HELD = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND pid = pg_backend_pid() AND classid::bigint = :high AND objid::bigint = :low"
    " AND objsubid = 1)"
)
# A bigint advisory key shows in pg_locks as its high half in `classid`, its low half in `objid`
# and `objsubid` 1 (PostgreSQL docs, "pg_locks"). Advisory locks are per database.
_HOLDER = text(
    "SELECT l.pid, a.application_name FROM pg_locks l"
    " LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND l.classid::bigint = :high AND l.objid::bigint = :low AND l.objsubid = 1"
    " LIMIT 1"
)


def lock_key(name: str) -> int:
    """The signed 64-bit advisory lock key of `name` (stable across versions and machines)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _halves(key: int) -> dict[str, int]:
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return {"high": unsigned >> 32, "low": unsigned & 0xFFFF_FFFF}


def application_name(pid: int | None = None, host: str | None = None) -> str:
    """`syncd:<pid>@<host>`: how a lock holder names itself to Postgres (`pg_stat_activity`)."""
    name = f"syncd:{os.getpid() if pid is None else pid}@{host or socket.gethostname()}"
    return name.encode()[:_NAME_MAX].decode(errors="ignore")


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: the Postgres backend, and the syncd process when it said who it is."""

    backend_pid: int
    application_name: str | None
    pid: int | None = None
    host: str | None = None

    def describe(self) -> str:
        if self.pid is not None:
            return f"pid {self.pid} on host {self.host}"
        name = f" ({self.application_name})" if self.application_name else ""
        return f"Postgres backend pid {self.backend_pid}{name}"


def parse_holder(backend_pid: int, name: str | None) -> Holder:
    """A Holder from a `pg_stat_activity` row; pid and host when the name is syncd's own."""
    match = _APPLICATION.match(name or "")
    if match is None:
        return Holder(backend_pid, name)
    return Holder(backend_pid, name, int(match.group(1)), match.group(2))


def busy_message(holder: Holder | None) -> str:
    """The sentence that says the lock is taken, naming the holder when it can be found."""
    if holder is None:
        return "another syncd is running a cycle on this database (it may just have finished)"
    return f"another syncd is running a cycle on this database ({holder.describe()})"


def find_holder(engine: Engine, name: str = WRITER_LOCK) -> Holder | None:
    """The session holding lock `name` on the engine's database, or None when it is free."""
    with engine.connect() as conn:
        row = conn.execute(_HOLDER, _halves(lock_key(name))).first()
    return None if row is None else parse_holder(int(row.pid), row.application_name)


class WriterLock:
    """A session-level advisory lock on a dedicated connection; `close()` when done with it.

    Thread-safe: the cycle thread and a heartbeat or prefetch thread may ask `still_held` at once.
    """

    def __init__(
        self,
        engine: Engine,
        name: str = WRITER_LOCK,
        *,
        pid: int | None = None,
        host: str | None = None,
    ) -> None:
        self.name = name
        self.key = lock_key(name)
        self.label = application_name(pid, host)
        """How the lock's session names itself to Postgres: `syncd:<pid>@<host>`."""
        self._lookup = engine
        connect_args: dict[str, Any] = {
            "application_name": self.label,
            "options": _SERVER_KEEPALIVES,
            **_KEEPALIVES,
        }
        # NullPool: closing the connection ends the session, so nothing can return to a pool
        # still holding the lock.
        self._engine = create_engine(
            engine.url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            hide_parameters=True,
            connect_args=connect_args,
        )
        self._conn: Connection | None = None
        self._held = False
        self._checked_at = 0.0
        self._guard = threading.RLock()

    @property
    def held(self) -> bool:
        """Whether this process took the lock and has not released it (or seen it lost)."""
        return self._held

    def try_acquire(self) -> bool:
        """Take the lock if it is free; never waits."""
        with self._guard:
            if self._held:
                raise RuntimeError(f"lock {self.name} is already held by this process")
            for attempt in (1, 2):
                conn = self._connection()
                try:
                    got = bool(
                        conn.execute(
                            text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
                        ).scalar_one()
                    )
                except DBAPIError:
                    # A connection that died since the last try (Postgres restarted): it held
                    # nothing, so one more try on a new one is safe.
                    self._drop()
                    if attempt == 2:
                        raise
                    continue
                self._held = got
                self._checked_at = time.monotonic()
                return got
        return False  # pragma: no cover - the loop returns or raises

    def acquire(
        self,
        *,
        wait: bool,
        poll: float = 0.5,
        should_stop: Callable[[], bool] = lambda: False,
        on_busy: Callable[[Holder | None], None] | None = None,
    ) -> bool:
        """Take the lock; with `wait`, try every `poll` seconds until it is free or
        `should_stop()`. `on_busy` is told the holder once, when the first try finds it taken."""
        told = False
        while True:
            if self.try_acquire():
                return True
            if not wait or should_stop():
                return False
            if on_busy is not None and not told:
                on_busy(self.holder())
                told = True
            time.sleep(poll)

    def still_held(self, max_age: float = 0.0) -> bool:
        """Whether the lock is still ours: asks Postgres, unless it answered yes less than
        `max_age` seconds ago. A lost connection means a lost lock."""
        with self._guard:
            if not self._held or self._conn is None:
                return False
            now = time.monotonic()
            if now - self._checked_at < max_age:
                return True
            try:
                held = bool(self._conn.execute(_HELD, _halves(self.key)).scalar_one())
            except DBAPIError:
                held = False
            if not held:
                self._held = False
                self._drop()
            self._checked_at = now
            return held

    def release(self) -> None:
        """Give the lock back; the connection stays open for the next try."""
        with self._guard:
            if not self._held:
                return
            self._held = False
            try:
                assert self._conn is not None
                self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            except DBAPIError:
                self._drop()  # the session is gone, and the lock with it

    def holder(self) -> Holder | None:
        """Who holds the lock now (None if nobody, or if the lookup itself failed)."""
        try:
            return find_holder(self._lookup, self.name)
        except DBAPIError:
            return None

    def close(self) -> None:
        """Release the lock if held and close the connection."""
        with self._guard:
            self.release()
            self._drop()
            self._engine.dispose()

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self._engine.connect()
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(DBAPIError):  # already broken: nothing to close
                self._conn.close()
            self._conn = None

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
