"""The daemon's loop: the scheduler, the writer lock per cycle, the heartbeat, the graceful stop.

- One cycle at a time in a process: both jobs (`sync` every interval, `reconcile` every reconcile
  interval) run on one single-thread executor, with `max_instances=1` and `coalesce=True` (a cycle
  still running when the next is due makes the scheduler skip that one, never pile them up).
- One cycle at a time on a database: each cycle takes the writer lock (`syncd.store.lock`) and
  gives it back after, so a `syncd resync` started meanwhile waits for the end of the cycle, not
  of the daemon. A second daemon on the same database stands by: its cycles find the lock taken
  and skip, and the first of them after the active daemon dies takes over.
- Runs a dead process left `running` are marked `aborted` at the start of every locked cycle.
- The cycle's `should_stop` polls, one per page or batch, stamp its progress mark for /readyz
  (`syncd.service.progress_mark`), at most every `min(15 s, interval / 2)`.
- A stop (`request_stop`, the first signal) is seen by the phases between pages and batches; the
  daemon waits up to the grace period for the running cycle, then exits 0, or 1 when the grace
  ran out first (a hard exit, as the cycle thread is still inside a request).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from syncd import crashpoints
from syncd.service import progress_mark
from syncd.service.locking import LockedRun
from syncd.service.observer import Observer
from syncd.service.progress_mark import ProgressMark
from syncd.store import heartbeat, runs
from syncd.store.heartbeat import Instance, State
from syncd.store.lock import WriterLock, busy_message
from syncd.sync.cycle import CycleResult

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_GRACE_EXPIRED = 0, 1
HEARTBEAT_SECONDS = 15.0
"""Seconds between heartbeats (less when the cycle interval is shorter)."""
STALE_HEARTBEATS = timedelta(days=7)
"""Heartbeat rows of instances silent that long are deleted when a daemon starts."""

CycleFn = Callable[[str, Callable[[], bool]], CycleResult]
"""Runs one cycle of a kind (`sync` or `reconcile`), polling the stop function between steps."""


class Daemon:
    """The scheduler, the writer lock, the heartbeat and the graceful stop around `cycle`."""

    def __init__(
        self,
        engine: Engine,
        cycle: CycleFn,
        *,
        interval: float,
        reconcile_interval: float,
        shutdown_grace: float,
        stop: threading.Event | None = None,
        observer: Observer | None = None,
        instance: Instance | None = None,
        hard_exit: Callable[[int], object] = os._exit,
    ) -> None:
        self.engine = engine
        self.cycle = cycle
        self.interval = interval
        self.reconcile_interval = reconcile_interval
        self.grace = shutdown_grace
        self.stop = stop or threading.Event()
        self.observer = observer or Observer()
        self.instance = instance or heartbeat.this_instance()
        self.hard_exit = hard_exit
        self.beat_every = min(HEARTBEAT_SECONDS, interval)
        self.lock = WriterLock(engine, pid=self.instance.pid, host=self.instance.host)
        self.progress = ProgressMark.on(engine, min(progress_mark.EVERY, interval / 2))
        self.last_run_id: int | None = None
        self._busy = threading.Lock()  # held while a cycle runs; the stop takes it to wait
        self._state: State = "starting"
        self._state_guard = threading.Lock()
        self._beat_guard = threading.Lock()

    @property
    def state(self) -> State:
        return self._state

    def request_stop(self) -> None:
        """Ask for a graceful stop (what the first SIGTERM or SIGINT does)."""
        self.stop.set()

    def run(self) -> int:
        """Run until asked to stop; returns the exit code."""
        heartbeat.register(self.engine, self.instance)
        heartbeat.prune(self.engine, STALE_HEARTBEATS)
        scheduler = self._scheduler(datetime.now(UTC))
        self.observer.ready()  # before the first cycle can start, so it is the first event
        scheduler.start()
        logger.info(
            "daemon_started",
            extra={
                "instance": self.instance.id,
                "version": self.instance.version,
                "interval": self.interval,
                "reconcile_interval": self.reconcile_interval,
            },
        )
        while not self.stop.wait(0.5):
            pass
        return self._shutdown(scheduler)

    # -- scheduling ----------------------------------------------------------------------------

    def _scheduler(self, now: datetime) -> BackgroundScheduler:
        scheduler = BackgroundScheduler(
            executors={
                "cycles": ThreadPoolExecutor(max_workers=1),
                "default": ThreadPoolExecutor(max_workers=1),
            },
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=UTC,
        )
        reconcile_at = self._first_reconcile(now)
        interval = timedelta(seconds=self.interval)
        # A reconcile is a cycle and more: when one is due at start, it is the first cycle.
        first = now + interval if reconcile_at <= now else now
        for kind, every, at in (
            ("sync", self.interval, first),
            ("reconcile", self.reconcile_interval, reconcile_at),
        ):
            scheduler.add_job(
                self._cycle,
                IntervalTrigger(seconds=every, timezone=UTC),
                args=(kind,),
                id=kind,
                executor="cycles",
                next_run_time=at,
                misfire_grace_time=max(1, int(every)),
            )
        scheduler.add_job(
            self._beat_job,
            IntervalTrigger(seconds=self.beat_every, timezone=UTC),
            id="heartbeat",
            misfire_grace_time=max(1, int(self.beat_every)),
        )
        scheduler.add_listener(self._job_not_run, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        return scheduler

    def _first_reconcile(self, now: datetime) -> datetime:
        # Counted from the last reconcile of any process, so a restart does not redo it.
        last = runs.last_started(self.engine, "reconcile", ("success", "partial"))
        if last is None:
            return now
        return max(now, last + timedelta(seconds=self.reconcile_interval))

    def _reconcile_due(self) -> bool:
        # Another daemon (they alternate on the lock) may have reconciled since this one planned.
        last = runs.last_started(self.engine, "reconcile", ("success", "partial"))
        slack = min(self.interval, self.reconcile_interval / 2)
        due_after = timedelta(seconds=self.reconcile_interval - slack)
        return last is None or datetime.now(UTC) - last >= due_after

    def _job_not_run(self, event: JobExecutionEvent) -> None:
        if event.job_id in ("sync", "reconcile"):
            reason = "still running" if event.code == EVENT_JOB_MAX_INSTANCES else "missed"
            logger.info("cycle_skipped", extra={"kind": event.job_id, "reason": reason})

    # -- one cycle -----------------------------------------------------------------------------

    def _cycle(self, kind: str) -> None:
        if self.stop.is_set() or not self._busy.acquire(blocking=False):
            return
        try:
            self._locked_cycle(kind)
        except Exception as exc:  # the daemon outlives a failed cycle; the next one retries
            logger.exception("cycle_error", extra={"kind": kind})
            self.observer.cycle_failed(exc)
        finally:
            self._busy.release()

    def _locked_cycle(self, kind: str) -> None:
        if not self.lock.try_acquire():
            if self._state != "standby":
                holder = busy_message(self.lock.holder())
                logger.info("standing_by", extra={"holder": holder})
            self._set_state("standby")
            return
        try:
            self._set_state("active")
            run = LockedRun(self.engine, self.lock, self.stop.is_set)
            run.begin()
            if kind == "reconcile" and not self._reconcile_due():
                logger.info("reconcile_not_due")
                return
            crashpoints.reach("daemon.cycle_locked")
            result = self.cycle(kind, self.progress.watch(run.should_stop))
            self.last_run_id = result.run_id
            run.finish(result)
            self.observer.cycle_finished(result)
        finally:
            self.lock.release()
            self._beat()

    # -- heartbeat -----------------------------------------------------------------------------

    def _set_state(self, state: State) -> None:
        with self._state_guard:
            # Once stopping, a cycle winding down does not make the instance look active again.
            if self._state in ("stopping", "stopped") and state not in ("stopping", "stopped"):
                return
            self._state = state
        self._beat()

    def _beat_job(self) -> None:
        if not self.stop.is_set():
            self._beat()

    def _beat(self) -> None:
        # One beat at a time, reading the state inside: a slow beat of the heartbeat thread
        # can never land after (and overwrite) the `stopped` of the main thread.
        with self._beat_guard:
            state = self._state
            try:
                heartbeat.beat(self.engine, self.instance, state, self.last_run_id)
            except Exception as exc:  # noqa: BLE001 - a missed beat must not stop the daemon
                error = f"{type(exc).__name__}: {exc}"
                logger.warning("heartbeat_failed", extra={"error": error})
                return
            self.observer.beat(state)

    # -- stop ----------------------------------------------------------------------------------

    def _shutdown(self, scheduler: BackgroundScheduler) -> int:
        logger.info("daemon_stopping", extra={"grace": self.grace})
        self._set_state("stopping")
        self.observer.stopping()
        scheduler.shutdown(wait=False)
        if self._busy.acquire(timeout=self.grace):
            self.lock.close()
            self._set_state("stopped")
            logger.info("daemon_stopped")
            return EXIT_OK
        error = (
            f"stopped: the shutdown grace period ({self.grace:g} s) ended before the run did; "
            "committed work is kept"
        )
        aborted: list[int] = []
        try:
            host, pid = self.instance.host, self.instance.pid
            aborted = runs.abort_unfinished(self.engine, error, host=host, pid=pid)
        except Exception as exc:  # noqa: BLE001 - the next lock holder marks it instead
            logger.warning("abort_failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        self._set_state("stopped")
        logger.error("shutdown_grace_expired", extra={"grace": self.grace, "runs": aborted})
        for handler in logging.getLogger().handlers:
            handler.flush()
        # The cycle thread is still inside a request: only a hard exit does not wait for it.
        self.hard_exit(EXIT_GRACE_EXPIRED)
        return EXIT_GRACE_EXPIRED
