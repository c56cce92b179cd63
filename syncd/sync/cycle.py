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
from syncd.crm.port import CrmError, CrmPort
from syncd.domain.mapping import Mapping
from syncd.store.runs import finish_run, start_run
from syncd.sync.pull import PullOptions, PullPhase, Stopped
from syncd.sync.push import PushOptions, PushPhase

logger = logging.getLogger(__name__)

EXIT_CODES = {"success": 0, "failed": 1, "aborted": 1, "partial": 3}


@dataclass(frozen=True)
class CycleResult:
    run_id: int
    outcome: str
    counts: dict[str, Any]
    error: str | None = None
    push: PushPhase | None = None

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
    crm: CrmPort | None = None,
    mapping: Mapping | None = None,
    push: PushOptions | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> CycleResult:
    """Run the phases once and record the run; never raises for a failed run.

    Without a `crm` (and its `mapping`) only the pull runs.
    """
    run_id = start_run(engine, kind, trigger)
    error: str | None = None
    requests_before = client.stats.total
    pull = PullPhase(engine, client, options, run_id, should_stop=should_stop)
    pusher = None
    if crm is not None and mapping is not None:
        pusher = PushPhase(
            engine, crm, mapping, push or PushOptions(), run_id, should_stop=should_stop
        )
    seconds: dict[str, float] = {}
    try:
        started = time.monotonic()
        pull.run(reconcile=reconcile)
        seconds["pull"] = time.monotonic() - started
        if pusher is not None:
            started = time.monotonic()
            pusher.run()
            seconds["push"] = time.monotonic() - started
        outcome, error = _outcome(pull, pusher)
    except Stopped:
        outcome, error = "aborted", "stopped on request; committed work is kept"
    except (ConnectError, CrmError) as exc:
        outcome, error = "failed", str(exc)
    except Exception as exc:  # any failure ends the run as failed, with its reason
        logger.exception("run_crashed", extra={"run_id": run_id})
        outcome, error = "failed", f"{type(exc).__name__}: {exc}"
    counts: dict[str, Any] = {"pull": pull.counts.as_dict()}
    if pusher is not None:
        counts["push"] = pusher.counts.as_dict()
    counts["seconds"] = {name: round(value, 3) for name, value in seconds.items()}
    counts["connect_requests"] = client.stats.total - requests_before
    finish_run(engine, run_id, outcome, counts, error)
    logger.info("run_finished", extra={"run_id": run_id, "outcome": outcome, "error": error})
    return CycleResult(run_id, outcome, counts, error, pusher)


def _outcome(pull: PullPhase, push: PushPhase | None) -> tuple[str, str | None]:
    if pull.counts.failed_feeds:
        return "failed", f"feeds failed: {', '.join(pull.counts.failed_feeds)}"
    failed_records = pull.counts.malformed
    if push is not None:
        failed_records += push.counts.rejected + push.counts.retry + push.counts.unknown
    return ("partial", None) if failed_records else ("success", None)
