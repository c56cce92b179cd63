"""SIGTERM and SIGINT for the daemon: the first asks for a graceful stop, the second ends at once.

Like procrastinate's `signals.py`, the handlers are installed only for the daemon's life and the
previous ones are put back after. The second signal does not wait for anything: the process exits
with 128 + the signal number (130 for SIGINT, 143 for SIGTERM, the shells' convention), leaving
the run it was in `running`; the next process that takes the writer lock marks it `aborted`.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def forced_exit_code(signum: int) -> int:
    """The exit code after a second signal: 128 + its number (130 SIGINT, 143 SIGTERM)."""
    return 128 + signum


@contextmanager
def stop_signals(
    request_stop: Callable[[int], None],
    *,
    hard_exit: Callable[[int], object] = os._exit,
) -> Iterator[None]:
    """While inside, the first SIGTERM or SIGINT calls `request_stop(signum)`; the next one
    calls `hard_exit(128 + signum)`. Outside the main thread (where Python cannot install signal
    handlers) nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if received:
            logger.warning("shutdown_forced", extra={"signal": name})
            _flush_logs()
            hard_exit(forced_exit_code(signum))
            return
        received.append(signum)
        logger.info("stop_requested", extra={"signal": name})
        request_stop(signum)

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _flush_logs() -> None:
    # os._exit skips the interpreter's cleanup: what the handlers buffered would be lost.
    for handler in logging.getLogger().handlers:
        handler.flush()
