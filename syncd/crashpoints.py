"""Named points where tests kill or interrupt syncd, to prove that a restart converges.

In production nothing is set and `reach` costs one dictionary look-up and one environment read.
Tests either set `SYNCD_CRASH_AT=<name>` (or `<name>:<n>` for the n-th time the point is reached)
on a real `syncd` process, which then kills itself with SIGKILL there, or register an in-process
hook with `install`.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from collections.abc import Callable

_hooks: dict[str, Callable[[], None]] = {}
_reached: Counter[str] = Counter()
# Phases reach points from worker threads too (concurrent accepts): counting and the hook go
# together, so "the n-th time" is one thread's, once.
_lock = threading.RLock()

ENV = "SYNCD_CRASH_AT"


def reach(name: str) -> None:
    """Called by the phases at each named point."""
    with _lock:
        _reached[name] += 1
        hook = _hooks.get(name)
        if hook is not None:
            hook()
        wanted = os.environ.get(ENV)
        if not wanted:
            return
        point, _, nth = wanted.partition(":")
        if point == name and _reached[name] >= int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)


def install(name: str, hook: Callable[[], None]) -> None:
    _hooks[name] = hook


def reset() -> None:
    _hooks.clear()
    _reached.clear()


def times_reached(name: str) -> int:
    return _reached[name]
