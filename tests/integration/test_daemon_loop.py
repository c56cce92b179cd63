"""The daemon's loop in-process, on a real Postgres, around a stand-in cycle that records real runs:
graceful stop, standby and takeover, the grace period, the reconcile schedule, the observer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import Engine, insert, select

from syncd.service.daemon import Daemon, Observer
from syncd.store import heartbeat, runs
from syncd.store.heartbeat import State
from syncd.store.lock import WriterLock
from syncd.store.schema import sync_runs
from syncd.sync.cycle import CycleResult

WAIT = 30.0


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@dataclass
class StandIn:
    """A cycle that records a run and goes on until released (or, if it listens, stopped)."""

    engine: Engine
    listens: bool = True
    release: threading.Event = field(default_factory=threading.Event)
    kinds: list[str] = field(default_factory=list)
    idle: threading.Event = field(default_factory=threading.Event)

    def __call__(self, kind: str, should_stop: Callable[[], bool]) -> CycleResult:
        self.idle.clear()
        run_id = runs.start_run(self.engine, kind, "schedule")
        self.kinds.append(kind)
        outcome = "success"
        while not self.release.wait(0.02):
            if self.listens and should_stop():
                outcome = "aborted"
                break
        runs.finish_run(self.engine, run_id, outcome, {})
        self.idle.set()
        return CycleResult(run_id, outcome, {})


@dataclass
class Recorder(Observer):
    events: list[str] = field(default_factory=list)

    def ready(self) -> None:
        self.events.append("ready")

    def cycle_finished(self, result: CycleResult) -> None:
        self.events.append(f"cycle:{result.outcome}")

    def beat(self, state: State) -> None:
        self.events.append(f"beat:{state}")

    def stopping(self) -> None:
        self.events.append("stopping")


@dataclass
class Running:
    daemon: Daemon
    thread: threading.Thread
    code: list[int]
    exits: list[int]

    def stop(self) -> int:
        self.daemon.request_stop()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()
        return self.code[0]


@pytest.fixture
def start(engine: Engine) -> Iterator[Callable[..., Running]]:
    started: list[tuple[Running, StandIn]] = []

    def launch(cycle: StandIn, observer: Observer | None = None, **options: float) -> Running:
        exits: list[int] = []
        daemon = Daemon(
            engine,
            cycle,
            interval=options.get("interval", 0.2),
            reconcile_interval=options.get("reconcile_interval", 3600.0),
            shutdown_grace=options.get("shutdown_grace", 10.0),
            observer=observer,
            instance=heartbeat.this_instance(),  # the host and pid its runs record
            hard_exit=exits.append,
        )
        code: list[int] = []
        thread = threading.Thread(target=lambda: code.append(daemon.run()), daemon=True)
        thread.start()
        running = Running(daemon, thread, code, exits)
        started.append((running, cycle))
        return running

    yield launch
    for running, cycle in started:
        cycle.release.set()
        running.daemon.request_stop()
        running.thread.join(WAIT)
        if cycle.kinds:  # a cycle the grace period gave up on: let it end before the drop
            cycle.idle.wait(WAIT)


def state_of(engine: Engine, instance: str) -> str | None:
    with engine.connect() as conn:
        rows = {r["instance"]: r["state"] for r in heartbeat.instances(conn)}
    return rows.get(instance)


def outcomes(engine: Engine) -> list[tuple[str, str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(select(sync_runs).order_by(sync_runs.c.id)).all()
    return [(r.kind, r.outcome, r.error) for r in rows]


def test_a_stop_during_a_cycle_ends_it_at_the_next_check_and_exits_0(
    engine: Engine, start: Callable[..., Running]
) -> None:
    cycle = StandIn(engine)
    observer = Recorder()
    running = start(cycle, observer)
    until(lambda: bool(cycle.kinds), "the first cycle")

    assert running.stop() == 0

    assert [o[1] for o in outcomes(engine)] == ["aborted"]
    assert state_of(engine, running.daemon.instance.id) == "stopped"
    assert running.exits == []
    events = observer.events
    assert events[0] == "ready"
    assert {"beat:active", "stopping", "cycle:aborted"} <= set(events)
    assert events[-1] == "beat:stopped"


def test_a_daemon_stands_by_while_the_lock_is_held_and_takes_over_once_free(
    engine: Engine, start: Callable[..., Running]
) -> None:
    other = WriterLock(engine, pid=1, host="elsewhere")
    try:
        assert other.try_acquire()
        cycle = StandIn(engine)
        running = start(cycle)
        instance = running.daemon.instance.id
        until(lambda: state_of(engine, instance) == "standby", "standby")
        assert cycle.kinds == []

        other.release()

        until(lambda: bool(cycle.kinds), "the takeover")
        until(lambda: state_of(engine, instance) == "active", "active")
        assert running.stop() == 0
    finally:
        other.close()


def test_runs_of_a_dead_holder_are_aborted_before_the_next_cycle_starts(
    engine: Engine, start: Callable[..., Running]
) -> None:
    with engine.begin() as conn:
        conn.execute(insert(sync_runs).values(kind="sync", trigger="schedule", host="dead", pid=9))
    cycle = StandIn(engine)
    running = start(cycle)
    until(lambda: bool(cycle.kinds), "the first cycle")

    (dead, mine) = outcomes(engine)
    assert dead[1] == "aborted"
    assert dead[2] is not None
    assert "ended before it finished" in dead[2]
    assert mine[1] == "running"
    assert running.stop() == 0


def test_when_the_grace_period_ends_first_the_run_is_aborted_and_the_exit_is_hard(
    engine: Engine, start: Callable[..., Running]
) -> None:
    cycle = StandIn(engine, listens=False)
    running = start(cycle, shutdown_grace=0.3)
    until(lambda: bool(cycle.kinds), "the first cycle")

    code = running.stop()

    assert code == 1
    assert running.exits == [1]
    ((_, outcome, error),) = outcomes(engine)
    assert outcome == "aborted"
    assert error is not None
    assert "grace period" in error


def test_the_first_cycle_is_the_reconcile_when_none_ran_yet(
    engine: Engine, start: Callable[..., Running]
) -> None:
    cycle = StandIn(engine)
    cycle.release.set()
    running = start(cycle)
    until(lambda: len(cycle.kinds) >= 2, "two cycles")
    assert running.stop() == 0

    assert cycle.kinds[0] == "reconcile"
    assert set(cycle.kinds[1:]) == {"sync"}


def test_a_recent_reconcile_is_not_redone_at_start(
    engine: Engine, start: Callable[..., Running]
) -> None:
    with engine.begin() as conn:
        conn.execute(insert(sync_runs).values(kind="reconcile", trigger="x", outcome="success"))
    cycle = StandIn(engine)
    cycle.release.set()
    running = start(cycle)
    until(lambda: len(cycle.kinds) >= 2, "two cycles")
    assert running.stop() == 0

    assert set(cycle.kinds) == {"sync"}
