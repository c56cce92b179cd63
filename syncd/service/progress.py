"""Progress of a cycle while it runs, for `syncd sync` and `syncd resync`.

`run_cycle` calls `ProgressReporter.phase_started(name, phase)` as each phase starts; a thread of
the reporter then reads that phase's counts a few times a second and renders them:

- on a terminal (stderr is a tty), one line redrawn in place, with a bar when the total is known:
  `resync: push [#######-------------]  35% 3,500/10,000 accounts (1,950 created, …), 310 acc/s`;
- otherwise, a log event `progress` every few seconds (field `text` holds the same line, without
  the bar) and one `phase_finished` per phase, so that stderr stays JSON lines when it is not a
  terminal.

Totals: the pull's current feed as `Content-Range` told it; the push's candidates and the
write-back's pending TARs, counted when the phase starts (one count query each). The flags have
none. Reading the counts from another thread is safe: they are plain ints the phase only adds to.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from syncd import logcontext
from syncd.service.progress_lines import Snapshot, phase_total, render_bar, render_line, snapshot

__all__ = ["ProgressReporter"]

logger = logging.getLogger(__name__)

TTY_INTERVAL = 0.25
LINE_EVERY = 5.0
"""Seconds between two plain progress lines (not on a terminal)."""


# -- the reporter ------------------------------------------------------------------------------


@dataclass
class _Current:
    name: str
    phase: object
    started: float
    total: int | None
    last_line: float
    context: dict[str, Any]
    """The log context bound where the phase started (the run id): the final line of the last
    phase is written after the cycle has returned."""
    drawn: bool = False


class ProgressReporter:
    """Renders the progress of one cycle on `stream` (a bar on a terminal) or as log events.

    Use as a context manager around `run_cycle(..., progress=reporter.phase_started)`; `tick`
    renders once (the thread calls it; tests call it with their own clock).
    """

    def __init__(
        self,
        kind: str,
        stream: TextIO,
        *,
        tty: bool | None = None,
        every: float = LINE_EVERY,
        interval: float = TTY_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        totals: Callable[[object], int | None] = phase_total,
        width: Callable[[], int] | None = None,
    ) -> None:
        self.kind = kind
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.every = every
        self.interval = interval
        self.clock = clock
        self.totals = totals
        self.width = width or (lambda: _terminal_width(stream))
        self._current: _Current | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ProgressReporter:
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def phase_started(self, name: str, phase: object) -> None:
        """The `progress` callback of `run_cycle`: a phase starts (the one before is over)."""
        try:
            total = self.totals(phase)
        except Exception:  # progress never fails a run; the phase will say why
            logger.debug("progress_total_failed", exc_info=True)
            total = None
        now = self.clock()
        with self._lock:
            self._finish()
            self._current = _Current(name, phase, now, total, now, dict(logcontext.bound()))

    def tick(self) -> None:
        """Render the current phase once: redraw the bar, or log a line when it is time."""
        with self._lock:
            current = self._current
            if current is None:
                return
            snap = self._snapshot(current)
            if snap is None:
                return
            now = self.clock()
            seconds = now - current.started
            if self.tty:
                self.stream.write("\r" + render_bar(self.kind, snap, seconds, self.width()))
                self.stream.write("\x1b[K")
                self.stream.flush()
                current.drawn = True
            elif now - current.last_line >= self.every:
                current.last_line = now
                self._log("progress", current, snap, seconds, final=False)

    def close(self) -> None:
        """The cycle is over: render the last phase's final line, stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            self._finish()

    # -- mechanics -----------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(self.interval if self.tty else min(self.interval * 4, 1.0)):
            try:
                self.tick()
            except Exception:  # a reading taken mid-update; the next one will do
                logger.debug("progress_tick_failed", exc_info=True)

    def _snapshot(self, current: _Current) -> Snapshot | None:
        for _ in range(3):
            try:
                return snapshot(current.name, current.phase, current.total)
            except RuntimeError:  # a Counter grew while it was summed: read it again
                continue
        return None

    def _finish(self) -> None:
        """Render the final line of the current phase (the lock is held)."""
        current, self._current = self._current, None
        if current is None:
            return
        snap = self._snapshot(current)
        if snap is None:
            return
        seconds = self.clock() - current.started
        if self.tty:
            prefix = "\r" if current.drawn else ""
            self.stream.write(prefix + render_line(self.kind, snap, seconds, final=True))
            self.stream.write("\x1b[K\n")
            self.stream.flush()
        else:
            self._log("phase_finished", current, snap, seconds, final=True)

    def _log(
        self, event: str, current: _Current, snap: Snapshot, seconds: float, *, final: bool
    ) -> None:
        logger.info(
            event,
            extra={
                **current.context,
                "phase": snap.phase,
                "done": snap.done,
                "total": snap.total,
                "seconds": round(seconds, 3),
                "text": render_line(self.kind, snap, seconds, final=final),
            },
        )


def _terminal_width(stream: TextIO) -> int:
    """The width of the terminal `stream` writes to (stdout may be redirected while stderr is
    not, so not `shutil.get_terminal_size`, which asks stdout)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 100
