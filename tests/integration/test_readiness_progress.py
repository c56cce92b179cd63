"""/readyz during a long cycle, over loopback HTTP with a real Postgres: ready while the running
cycle stores pages, unready once it stops progressing, whichever process reads it.

The first tests set runs and marks by hand, aged by the database's clock; the last ones run the
daemon in-process with real pull cycles against the Connect simulator, slowed by its latency."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import Engine, text

from syncd.connect.client import ConnectClient
from syncd.retry import RetryPolicy
from syncd.service.daemon import Daemon
from syncd.service.health import HealthServer, Readiness
from syncd.service.progress_mark import MARK, stamp
from syncd.sim.base import Fault, SimServer
from syncd.sim.connect import ConnectSim
from syncd.store import heartbeat
from syncd.sync.cycle import CycleResult, run_cycle
from syncd.sync.pull import PullOptions
from tests.integration.conftest import CONNECT_KEY

INTERVAL = 60.0
STUCK = r"a cycle is running but made no progress for {}s, over 3 intervals \(180s\)"
WAIT = 60.0


class Clock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def past_the_start(engine: Engine, interval: float) -> Readiness:
    """A readiness whose process is older than 3 intervals: the start's waiver is over."""
    clock = Clock()
    readiness = Readiness(engine, interval, clock=clock)
    clock.now += 10 * interval
    return readiness


def get(server: HealthServer) -> httpx.Response:
    assert server.url is not None
    return httpx.get(server.url + "/readyz", timeout=30)


def reason(response: httpx.Response) -> str:
    return str(json.loads(response.text)["reason"])


def add_run(engine: Engine, outcome: str, started_ago: float) -> int:
    """A run started `started_ago` seconds ago that took 5 s, or is still `running`."""
    with engine.begin() as conn:
        return int(
            conn.execute(
                text(
                    "INSERT INTO sync_runs (kind, trigger, outcome, started_at, finished_at) "
                    "VALUES ('sync', 'test', :outcome, now() - make_interval(secs => :ago), "
                    "CASE WHEN :outcome = 'running' THEN NULL "
                    "ELSE now() - make_interval(secs => :ago - 5) END) RETURNING id"
                ),
                {"outcome": outcome, "ago": started_ago},
            ).scalar_one()
        )


def set_mark(engine: Engine, run_id: int, ago: float) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sync_cursors (name, value, updated_at) "
                "VALUES (:name, :value, now() - make_interval(secs => :ago)) "
                "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, "
                "updated_at = EXCLUDED.updated_at"
            ),
            {"name": MARK, "value": str(run_id), "ago": ago},
        )


def mark_of(engine: Engine) -> str | None:
    with engine.connect() as conn:
        value = conn.execute(
            text("SELECT value FROM sync_cursors WHERE name = :name"), {"name": MARK}
        ).scalar()
    return None if value is None else str(value)


# -- the rule, on runs and marks set by hand ----------------------------------------------------


def test_a_cycle_running_for_hours_is_ready_while_its_mark_is_fresh(engine: Engine) -> None:
    add_run(engine, "success", 200 * INTERVAL)  # the last completed cycle is long stale
    run_id = add_run(engine, "running", 100 * INTERVAL)
    set_mark(engine, run_id, 10)
    with HealthServer("127.0.0.1:0", readiness=past_the_start(engine, INTERVAL)) as server:
        response = get(server)

    assert response.status_code == 200
    assert reason(response) == "a cycle is running and progressed within 3 intervals"
    assert 10 <= json.loads(response.text)["running_progress_age_seconds"] < 3 * INTERVAL


def test_a_cycle_that_started_within_3_intervals_is_ready_before_its_first_mark(
    engine: Engine,
) -> None:
    add_run(engine, "running", 20)
    with HealthServer("127.0.0.1:0", readiness=past_the_start(engine, INTERVAL)) as server:
        response = get(server)

    assert response.status_code == 200
    assert reason(response) == "a cycle is running and progressed within 3 intervals"


def test_a_running_cycle_without_progress_for_3_intervals_is_503_saying_so(
    engine: Engine,
) -> None:
    run_id = add_run(engine, "running", 100 * INTERVAL)
    set_mark(engine, run_id, 3 * INTERVAL + 20)
    with HealthServer("127.0.0.1:0", readiness=past_the_start(engine, INTERVAL)) as server:
        response = get(server)

    assert response.status_code == 503
    assert re.fullmatch(STUCK.format(r"2\d\d"), reason(response))


def test_a_fresh_mark_of_an_earlier_run_does_not_make_a_stuck_run_progress(
    engine: Engine,
) -> None:
    earlier = add_run(engine, "aborted", 200 * INTERVAL)
    add_run(engine, "running", 100 * INTERVAL)  # say, left by a process that died
    set_mark(engine, earlier, 1)
    with HealthServer("127.0.0.1:0", readiness=past_the_start(engine, INTERVAL)) as server:
        response = get(server)

    assert response.status_code == 503
    assert re.fullmatch(STUCK.format(r"60\d\d"), reason(response))


def test_a_stale_success_with_no_cycle_running_is_503_whatever_mark_is_left(
    engine: Engine,
) -> None:
    add_run(engine, "success", 3 * INTERVAL + 30)
    finished = add_run(engine, "failed", 10)
    set_mark(engine, finished, 1)
    with HealthServer("127.0.0.1:0", readiness=past_the_start(engine, INTERVAL)) as server:
        response = get(server)

    assert response.status_code == 503
    assert reason(response).startswith("last completed cycle ")
    assert "running_progress_age_seconds" not in json.loads(response.text)


def test_stamp_marks_the_running_run_and_nothing_when_none_runs(engine: Engine) -> None:
    finished = add_run(engine, "success", 30)
    stamp(engine)
    nothing = mark_of(engine)
    running = add_run(engine, "running", 5)
    stamp(engine)

    assert finished != running
    assert nothing is None
    assert mark_of(engine) == str(running)


# -- the daemon, with real pull cycles slowed by the Connect simulator -------------------------

SHORT = 2.0
"""The interval of the in-process daemon: 3 intervals are 6 s."""
PAGE_LATENCY = 0.3
"""Each Connect request takes that long: a page of 2 accounts every 0.3 s, a cycle of 15 s."""


@dataclass(frozen=True)
class Running:
    server: HealthServer
    """Serves /readyz of a readiness whose start's waiver is over."""
    connect: SimServer


def running_age(engine: Engine) -> float | None:
    """How long ago the running run started, by the database's clock; None when none runs."""
    with engine.connect() as conn:
        age = conn.execute(
            text(
                "SELECT extract(epoch FROM now() - started_at) FROM sync_runs "
                "WHERE outcome = 'running' ORDER BY started_at DESC LIMIT 1"
            )
        ).scalar()
    return None if age is None else float(age)


def until(condition: Callable[[], bool], what: str, seconds: float = WAIT) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def long_cycle(engine: Engine) -> Iterator[Running]:
    """A daemon whose first cycle pulls 100 accounts 2 a page from a slow Connect simulator."""
    sim = ConnectSim(api_key=CONNECT_KEY)
    for _ in range(100):
        sim.add_account()
    policy = RetryPolicy(attempts=2, max_seconds=60, base=0.01, cap=0.05)
    with (
        SimServer(sim) as connect,
        ConnectClient(f"{connect.url}/public/v1", CONNECT_KEY, timeout=60, retry=policy) as client,
        HealthServer("127.0.0.1:0", readiness=past_the_start(engine, SHORT)) as server,
    ):
        connect.faults.latency = PAGE_LATENCY
        options = PullOptions(page_size=2, concurrency=1)

        def cycle(kind: str, should_stop: Callable[[], bool]) -> CycleResult:
            return run_cycle(engine, client, options, kind=kind, should_stop=should_stop)

        exits: list[int] = []
        daemon = Daemon(
            engine,
            cycle,
            interval=SHORT,
            reconcile_interval=3600.0,
            shutdown_grace=WAIT,
            instance=heartbeat.this_instance(),
            hard_exit=exits.append,
        )
        thread = threading.Thread(target=daemon.run, daemon=True)
        thread.start()
        try:
            until(lambda: running_age(engine) is not None, "the first cycle to start")
            yield Running(server, connect)
        finally:
            daemon.request_stop()
            thread.join(WAIT)
    assert not thread.is_alive()
    assert not exits


def test_readyz_stays_200_through_a_cycle_longer_than_3_intervals_while_pages_are_stored(
    engine: Engine, long_cycle: Running
) -> None:
    answers: list[httpx.Response] = []
    age = running_age(engine)
    # Until the cycle has run for 4 intervals: past the 3 a completed cycle would be given.
    while age is not None and age <= 4 * SHORT:
        answers.append(get(long_cycle.server))
        time.sleep(0.1)
        age = running_age(engine)

    assert age is not None, "the cycle ended before it ran for 4 intervals"
    assert answers
    assert [(a.status_code, reason(a)) for a in answers if a.status_code != 200] == []
    assert {reason(a) for a in answers} == {"a cycle is running and progressed within 3 intervals"}
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM tier_accounts")).scalar_one()
    assert stored > 0  # the pages were stored, not only fetched


def test_readyz_turns_503_saying_why_when_the_running_cycle_hangs_on_connect(
    engine: Engine, long_cycle: Running
) -> None:
    until(lambda: get(long_cycle.server).status_code == 200, "the cycle to be seen progressing")
    # The next request hangs for longer than 3 intervals (and the client waits for it).
    long_cycle.connect.faults.inject(Fault(latency=8 * SHORT, name="hang"))
    answers: list[httpx.Response] = []

    def unready() -> bool:
        answers.append(get(long_cycle.server))
        return answers[-1].status_code == 503

    until(unready, "/readyz 503", seconds=7 * SHORT)

    stuck = answers[-1]
    assert reason(stuck).startswith("a cycle is running but made no progress for ")
    assert reason(stuck).endswith("over 3 intervals (6s)")
    assert json.loads(stuck.text)["running_progress_age_seconds"] >= 3 * SHORT  # rounded
    assert running_age(engine) is not None  # the cycle is still running, only stuck
