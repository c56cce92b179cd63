"""One cycle: the phases in order, recorded as a row of `sync_runs`.

`syncd sync`, `syncd resync`, the daemon and the demo all run cycles through `run_cycle`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from sqlalchemy import Engine

from syncd import crashpoints, logcontext
from syncd.connect.client import ConnectClient
from syncd.connect.errors import ConnectError
from syncd.crm.port import CrmError, CrmPort
from syncd.domain.mapping import Mapping
from syncd.retry import RetryBudget
from syncd.store.runs import finish_run, start_run
from syncd.sync.flags import FlagPhase
from syncd.sync.pull import PullOptions, PullPhase, Stopped
from syncd.sync.push import PushOptions, PushPhase
from syncd.sync.writeback import DEFAULT_CONCURRENCY, WritebackPhase

logger = logging.getLogger(__name__)

EXIT_CODES = {"success": 0, "failed": 1, "aborted": 1, "partial": 3}


@dataclass(frozen=True)
class CycleResult:
    run_id: int
    outcome: str
    counts: dict[str, Any]
    error: str | None = None
    push: PushPhase | None = None
    kind: str = "sync"

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
    sync_default: bool | None = None,
    disabled_tar_policy: Literal["leave", "ignore"] = "leave",
    should_stop: Callable[[], bool] = lambda: False,
    progress: Callable[[str, object], None] | None = None,
    writeback_concurrency: int = DEFAULT_CONCURRENCY,
    retry_budget: RetryBudget | None = None,
) -> CycleResult:
    """Run the phases once and record the run; never raises for a failed run.

    The phases: pull; the sync flags, when `sync_default` is given (then only accounts whose sync
    is on are pushed); with a `crm` and its `mapping`, push and write-back. Without `sync_default`
    no flag is decided: every account is pushed and the write-back, which acts only on accounts
    whose sync is on, acts on none (tests of the push alone use that).

    `progress`, when given, is called with each phase's name and object as the phase starts
    (`syncd.service.progress` reads the object's counts while it runs). Every log line of the
    run carries its `run_id`; the run ends with one summary line, `run_finished`.

    `retry_budget` is the one the clients' retry policies share (`syncd.bootstrap.retry_budget`):
    it starts afresh with the run, and what the run spent of it is `counts["retries"]`.
    """
    began = time.monotonic()
    if retry_budget is not None:
        retry_budget.reset()
    run_id = start_run(engine, kind, trigger)
    crashpoints.reach("cycle.run_started")
    error: str | None = None
    requests_before = client.stats.total
    push = push or PushOptions()
    pull = PullPhase(engine, client, options, run_id, should_stop=should_stop)
    flags = None
    if sync_default is not None:
        flags = FlagPhase(
            engine, client, default=sync_default, run_id=run_id, should_stop=should_stop
        )
        push = replace(push, selection=replace(push.selection, only_enabled=True))
    pusher = writeback = None
    if crm is not None and mapping is not None:
        pusher = PushPhase(engine, crm, mapping, push, run_id, should_stop=should_stop)
        writeback = WritebackPhase(
            engine,
            client,
            crm,
            mapping,
            run_id=run_id,
            disabled_tar_policy=disabled_tar_policy,
            should_stop=should_stop,
            crm_overlap=options.overlap,
            dry_run=push.dry_run,
            concurrency=writeback_concurrency,
        )
    steps: list[tuple[str, Callable[[], object]]] = [("pull", lambda: pull.run(reconcile))]
    steps += [
        (name, phase.run)
        for name, phase in (("flags", flags), ("push", pusher), ("writeback", writeback))
        if phase is not None
    ]
    phases: dict[str, object] = {
        "pull": pull,
        "flags": flags,
        "push": pusher,
        "writeback": writeback,
    }
    seconds: dict[str, float] = {}
    with logcontext.bind(run_id=run_id):
        try:
            for name, step in steps:
                if progress is not None:
                    progress(name, phases[name])
                started = time.monotonic()
                step()
                seconds[name] = time.monotonic() - started
            outcome, error = _outcome(pull, flags, pusher, writeback)
        except Stopped:
            outcome, error = "aborted", "stopped on request; committed work is kept"
        except (ConnectError, CrmError) as exc:
            outcome, error = "failed", str(exc)
        except Exception as exc:  # any failure ends the run as failed, with its reason
            logger.exception("run_crashed", extra={"run_id": run_id})
            outcome, error = "failed", f"{type(exc).__name__}: {exc}"
    # The adapters keep secrets out of their messages; this is the net behind them, as the
    # error is stored and printed.
    error = logcontext.redact(error) if error else error
    counts: dict[str, Any] = {"pull": pull.counts.as_dict()}
    for name, phase in (("flags", flags), ("push", pusher), ("writeback", writeback)):
        if phase is not None:
            counts[name] = phase.counts.as_dict()
    counts["seconds"] = {name: round(value, 3) for name, value in seconds.items()}
    counts["connect_requests"] = client.stats.total - requests_before
    if retry_budget is not None:
        counts["retries"] = retry_budget.spent
    crashpoints.reach("cycle.before_finish")
    finish_run(engine, run_id, outcome, counts, error)
    logger.info(
        "run_finished",
        extra={
            "run_id": run_id,
            "kind": kind,
            "trigger": trigger,
            "outcome": outcome,
            "error": error,
            "seconds": round(time.monotonic() - began, 3),
            **brief_counts(counts),
        },
    )
    return CycleResult(run_id, outcome, counts, error, pusher, kind)


_BRIEF = {
    "pull": ("pages", "requests_written", "accounts_written", "malformed", "drift"),
    "flags": ("enabled", "disabled", "changed", "malformed"),
    "push": ("created", "updated", "unchanged", "rejected", "retry", "unknown", "conflicts"),
    "writeback": ("accepted", "ignored", "failed", "unsettled", "accounts_updated"),
}


def brief_counts(counts: dict[str, Any]) -> dict[str, Any]:
    """A run's counts in brief, for its summary line: a few numbers per phase that ran, the
    requests made to Connect and the CRM calls of the push (`crm_calls`)."""
    out: dict[str, Any] = {
        phase: {key: counts[phase].get(key, 0) for key in keys}
        for phase, keys in _BRIEF.items()
        if isinstance(counts.get(phase), dict)
    }
    out["connect_requests"] = counts.get("connect_requests", 0)
    push = counts.get("push")
    if isinstance(push, dict):
        out["crm_calls"] = push.get("crm_reads", 0) + push.get("crm_writes", 0)
    return out


def _outcome(
    pull: PullPhase,
    flags: FlagPhase | None,
    push: PushPhase | None,
    writeback: WritebackPhase | None,
) -> tuple[str, str | None]:
    """`failed` when a part of a phase failed as a whole, `partial` when some records did."""
    failed_parts = [f"pull.{name}" for name in pull.counts.failed_feeds]
    failed_records = pull.counts.malformed
    if flags is not None:
        failed_parts += [f"flags.{name}" for name in flags.counts.failed_parts]
        failed_records += flags.counts.malformed
    if push is not None:
        failed_records += push.counts.rejected + push.counts.retry + push.counts.unknown
    if writeback is not None:
        failed_parts += [f"writeback.{name}" for name in writeback.counts.failed_parts]
        failed_records += writeback.counts.failed + writeback.counts.unsettled
    if failed_parts:
        return "failed", f"failed: {', '.join(failed_parts)}"
    return ("partial", None) if failed_records else ("success", None)
