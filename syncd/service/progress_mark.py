"""The progress mark: when the running cycle last moved, kept in the database for /readyz.

The phases poll `should_stop` at every page and batch boundary (a Connect page fetched, a push
batch committed, a write-back action settled, a step of the flags), never inside a request or a
retry's wait. So a poll is the cheapest sign of progress there is: `ProgressMark.watch` wraps the
cycle's `should_stop`, and a poll stamps the `sync_cursors` row `daemon.progress` (value: the id
of the `running` run, `updated_at`: now by the database's clock), at most once every `every`
seconds. Every replica reads that row (`syncd.service.health`), so a standby sees the active
writer progress as the writer itself does.

The row is one upsert a few bytes long, written on the cycle's thread only while the cycle moves:
an idle or a stuck daemon writes nothing. A failed write is logged and forgotten: progress
bookkeeping never fails a cycle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine, text

logger = logging.getLogger(__name__)

MARK = "daemon.progress"
"""The `sync_cursors` row of the mark."""
EVERY = 15.0
"""Seconds between stamps of a one-shot run (`syncd sync`, `syncd resync`); the daemon stamps
at most every min(this, interval / 2)."""

_LOCAL_TIMEOUT = text("SELECT set_config('statement_timeout', '2000', true)")
# The newest run still `running` is the one this process runs: only the writer lock's holder runs
# cycles, and it marked the runs of dead processes `aborted` before starting its own.
_STAMP = text(
    """
    INSERT INTO sync_cursors (name, value, updated_at)
    SELECT :name, CAST(id AS text), now()
    FROM sync_runs
    WHERE outcome = 'running'
    ORDER BY started_at DESC
    LIMIT 1
    ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at
    """
)


def stamp(engine: Engine) -> None:
    """Mark the running run (if any) as having progressed now."""
    with engine.begin() as conn:
        # A writer that holds a lock on the row or the table must not hold up the cycle long.
        conn.execute(_LOCAL_TIMEOUT)
        conn.execute(_STAMP, {"name": MARK})


class ProgressMark:
    """Stamps progress through `publish` (normally `stamp` on the daemon's engine), throttled
    to once every `every` seconds of `clock` (monotonic). Thread-safe."""

    def __init__(
        self,
        publish: Callable[[], None],
        every: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if every <= 0:
            raise ValueError("every must be positive")
        self.publish = publish
        self.every = every
        self.clock = clock
        self._last: float | None = None
        self._guard = threading.Lock()

    @classmethod
    def on(cls, engine: Engine, every: float) -> ProgressMark:
        """A mark stamped in `engine`'s `sync_cursors`."""
        return cls(lambda: stamp(engine), every)

    def watch(self, should_stop: Callable[[], bool]) -> Callable[[], bool]:
        """`should_stop` for a new cycle, each poll of it counted as progress. The first poll
        stamps at once: the mark may still name the cycle before."""
        with self._guard:
            self._last = None

        def polled() -> bool:
            self.progressed()
            return should_stop()

        return polled

    def progressed(self) -> None:
        """The cycle moved: stamp the mark, unless it was stamped less than `every` ago."""
        # Non-blocking: a poll from another thread while a stamp is being written skips it.
        if not self._guard.acquire(blocking=False):
            return
        try:
            now = self.clock()
            if self._last is not None and now - self._last < self.every:
                return
            self._last = now  # also after a failure: a database in trouble is not hammered
            try:
                self.publish()
            except Exception as exc:  # noqa: BLE001 - progress bookkeeping never fails a cycle
                logger.warning("progress_mark_failed", extra={"error": type(exc).__name__})
        finally:
            self._guard.release()
