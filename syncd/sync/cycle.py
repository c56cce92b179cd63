"""One cycle: the phases in order, recorded as a row of `sync_runs`.

`syncd sync`, `syncd resync`, the daemon and the demo all run cycles through `run_cycle`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from syncd.connect.client import ConnectClient
from syncd.connect.errors import ConnectError
from syncd.store.runs import finish_run, start_run
from syncd.sync.pull import PullOptions, PullPhase, Stopped

logger = logging.getLogger(__name__)

EXIT_CODES = {"success": 0, "failed": 1, "aborted": 1, "partial": 3}


@dataclass(frozen=True)
class CycleResult:
    run_id: int
    outcome: str
    counts: dict[str, Any]
    error: str | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]


def run_cycle(
    engine: Engine,
    client: ConnectClient,
    options: PullOptions,
    *,
    kind: str = "sync",
    trigger: str = "manual",
    reconcile: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
) -> CycleResult:
    """Run the phases once and record the run; never raises for a failed run."""
    run_id = start_run(engine, kind, trigger)
    started = time.monotonic()
    error: str | None = None
    counts: dict[str, Any] = {}
    phase = PullPhase(engine, client, options, run_id, should_stop=should_stop)
    try:
        phase.run(reconcile=reconcile)
        pulled = phase.counts
        if pulled.failed_feeds:
            outcome, error = "failed", f"feeds failed: {', '.join(pulled.failed_feeds)}"
        elif pulled.malformed:
            outcome = "partial"
        else:
            outcome = "success"
    except Stopped:
        outcome, error = "aborted", "stopped on request; committed work is kept"
    except ConnectError as exc:
        outcome, error = "failed", str(exc)
    except Exception as exc:
        logger.exception("run_crashed", extra={"run_id": run_id})
        outcome, error = "failed", f"{type(exc).__name__}: {exc}"
    counts["pull"] = phase.counts.as_dict()
    counts["pull"]["seconds"] = round(time.monotonic() - started, 3)
    counts["connect_requests"] = client.stats.total
    finish_run(engine, run_id, outcome, counts, error)
    logger.info("run_finished", extra={"run_id": run_id, "outcome": outcome, "error": error})
    return CycleResult(run_id, outcome, counts, error)
