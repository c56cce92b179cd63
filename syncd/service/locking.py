"""A run under the writer lock, as the daemon and `syncd sync` / `syncd resync` do it.

Once the lock is ours, any run still `running` belongs to a process that died: it is marked
`aborted` before ours starts. While the run goes on, the phases poll `should_stop`, which turns
true when the lock is lost (its connection ended), so that two processes never go on writing at
once; the run then ends `aborted` with that reason.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine

from syncd import crashpoints
from syncd.store import runs
from syncd.store.lock import Holder, WriterLock, busy_message
from syncd.sync.cycle import CycleResult

logger = logging.getLogger(__name__)

LOCK_CHECK_SECONDS = 1.0
"""How often, at most, a running cycle asks Postgres whether it still holds the writer lock."""
LOCK_LOST = (
    "stopped: the writer lock was lost (its database connection ended), so that another process "
    "may run; committed work is kept"
)


class LockBusy(Exception):
    """The writer lock is taken and the caller would not wait; the message names the holder."""


class LockedRun:
    """One run while `lock` is held: abort the dead runs, watch the lock, explain a loss."""

    def __init__(
        self, engine: Engine, lock: WriterLock, stop: Callable[[], bool] = lambda: False
    ) -> None:
        self.engine = engine
        self.lock = lock
        self.stop = stop
        self.lost = False

    def begin(self) -> list[int]:
        """Mark `aborted` the runs left `running` by dead processes; returns their ids."""
        error = (
            "the process running it ended before it finished; marked by the next holder of "
            f"the writer lock ({self.lock.label})"
        )
        aborted = runs.abort_unfinished(self.engine, error)
        if aborted:
            logger.warning("runs_aborted", extra={"runs": aborted})
        return aborted

    def should_stop(self) -> bool:
        """True when a stop was asked for, or the lock is no longer ours."""
        if self.stop():
            return True
        if not self.lock.still_held(max_age=LOCK_CHECK_SECONDS):
            self.lost = True
            return True
        return False

    def finish(self, result: CycleResult) -> None:
        """Record on the run why it stopped, when the lock was lost under it."""
        if self.lost:
            logger.error("writer_lock_lost", extra={"run_id": result.run_id})
            runs.amend_error(self.engine, result.run_id, LOCK_LOST)


@contextmanager
def writer_lock(engine: Engine, *, wait: bool, command: str) -> Iterator[LockedRun]:
    """Hold the writer lock for one run of `syncd <command>`.

    With `wait`, wait for the lock (saying once on stderr who holds it); without, raise LockBusy
    at once when another process holds it.
    """
    lock = WriterLock(engine)
    try:

        def waiting(holder: Holder | None) -> None:
            print(
                f"syncd {command}: {busy_message(holder)}; waiting for it to finish "
                "(--no-wait gives up instead)",
                file=sys.stderr,
            )

        if not lock.acquire(wait=wait, on_busy=waiting):
            raise LockBusy(busy_message(lock.holder()))
        crashpoints.reach("lock.acquired")
        run = LockedRun(engine, lock)
        run.begin()
        yield run
    finally:
        lock.close()
