"""/healthz, /readyz and /metrics over loopback HTTP, with a real Postgres that may stop."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from syncd.pgcluster import PgCluster
from syncd.service.health import HealthServer, Readiness
from syncd.service.metrics import Metrics
from syncd.service.progress_mark import stamp
from syncd.store import migrate
from syncd.store.runs import start_run

INTERVAL = 60.0
DB_PASSWORD = "pg-secret-Zq81"  # a test value that must never be echoed


class Clock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def get(server: HealthServer, path: str) -> httpx.Response:
    assert server.url is not None
    return httpx.get(server.url + path, timeout=30)


def add_run(engine: Engine, outcome: str, finished_ago: float) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sync_runs (kind, trigger, outcome, started_at, finished_at) "
                "VALUES ('sync', 'test', :outcome, now() - make_interval(secs => :ago + 5), "
                "now() - make_interval(secs => :ago))"
            ),
            {"outcome": outcome, "ago": finished_ago},
        )


def reason(response: httpx.Response) -> str:
    return str(json.loads(response.text)["reason"])


def test_healthz_says_ok_and_unknown_paths_are_404() -> None:
    with HealthServer("127.0.0.1:0") as server:
        assert get(server, "/healthz").text == "ok\n"
        assert get(server, "/healthz").status_code == 200
        assert get(server, "/nope").status_code == 404
        assert get(server, "/metrics").status_code == 404  # no metrics object given


def test_readyz_is_ready_in_the_first_3_intervals_then_needs_a_completed_cycle(
    engine: Engine,
) -> None:
    clock = Clock()
    readiness = Readiness(engine, INTERVAL, clock=clock)
    with HealthServer("127.0.0.1:0", readiness=readiness) as server:
        starting = get(server, "/readyz")
        clock.now += 3 * INTERVAL
        never = get(server, "/readyz")

    assert starting.status_code == 200
    assert reason(starting) == "starting: within 3 intervals of start"
    assert never.status_code == 503
    assert reason(never) == "no cycle has completed yet"


def test_readyz_is_503_when_the_last_completed_cycle_is_older_than_3_intervals(
    engine: Engine,
) -> None:
    clock = Clock()
    readiness = Readiness(engine, INTERVAL, clock=clock)
    clock.now += 10 * INTERVAL  # past the start grace
    with HealthServer("127.0.0.1:0", readiness=readiness) as server:
        add_run(engine, "success", 3 * INTERVAL + 20)
        add_run(engine, "failed", 1)  # a recent failure proves nothing
        stale = get(server, "/readyz")
        # Another process (the active replica) completes a cycle with a failed record.
        add_run(engine, "partial", 10)
        fresh = get(server, "/readyz")

    assert stale.status_code == 503
    assert reason(stale).startswith("last completed cycle 20")
    assert "over 3 intervals (180s)" in reason(stale)
    assert fresh.status_code == 200
    assert json.loads(fresh.text)["last_success_age_seconds"] >= 10


def test_a_locked_table_makes_readyz_answer_503_in_time_instead_of_hanging(
    engine: Engine,
) -> None:
    add_run(engine, "success", 1)
    readiness = Readiness(engine, INTERVAL, timeout=0.5)
    metrics = Metrics(engine, db_timeout=0.5)
    with HealthServer("127.0.0.1:0", readiness=readiness, metrics=metrics) as server:
        with engine.connect() as locker:
            locker.execute(text("LOCK TABLE sync_runs, tier_accounts IN ACCESS EXCLUSIVE MODE"))
            blocked = get(server, "/readyz")
            scrape = get(server, "/metrics")
            locker.rollback()
        unblocked = wait_for_status(server, 200)

    assert blocked.status_code == 503
    assert reason(blocked).startswith("database")
    assert scrape.status_code == 200
    values = samples(scrape.text)
    assert values[("syncd_backlog_read_ok", ())] == 0
    assert ("syncd_pending_tars", ()) not in values
    assert unblocked.status_code == 200


def samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def wait_for_status(server: HealthServer, status: int, seconds: float = 60) -> httpx.Response:
    """Poll /readyz until it answers `status` (a restarted Postgres takes a moment)."""
    deadline = time.monotonic() + seconds
    while True:
        response = get(server, "/readyz")
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


@pytest.fixture
def private_engine(pg_cluster: PgCluster) -> Iterator[Engine]:
    """A migrated database on a cluster the test may stop; the URL carries a password."""
    url = pg_cluster.create_database("syncd_health")
    migrate.upgrade(url)
    with_password = make_url(url).set(password=DB_PASSWORD)
    engine = create_engine(with_password, pool_pre_ping=True, hide_parameters=True)
    yield engine
    engine.dispose()


def test_readyz_flips_to_503_when_postgres_stops_and_back_after_it_restarts(
    pg_cluster: PgCluster, private_engine: Engine
) -> None:
    add_run(private_engine, "success", 1)
    readiness = Readiness(private_engine, INTERVAL, timeout=2)
    metrics = Metrics(private_engine, db_timeout=2)
    with HealthServer("127.0.0.1:0", readiness=readiness, metrics=metrics) as server:
        before = get(server, "/readyz")
        pg_cluster.stop()
        down = get(server, "/readyz")
        scrape_down = get(server, "/metrics")
        pg_cluster.start()
        after = wait_for_status(server, 200)
        scrape_up = get(server, "/metrics")

    assert before.status_code == 200
    assert down.status_code == 503
    assert reason(down) in ("database unreachable", "database did not answer within 2s")
    assert samples(scrape_down.text)[("syncd_backlog_read_ok", ())] == 0
    assert after.status_code == 200
    assert samples(scrape_up.text)[("syncd_backlog_read_ok", ())] == 1
    url = private_engine.url.render_as_string(hide_password=False)
    for body in (before.text, down.text, after.text, scrape_down.text, scrape_up.text):
        assert DB_PASSWORD not in body
        assert url not in body
        assert f":{pg_cluster.port}" not in body


def test_readyz_is_503_when_postgres_stops_even_while_a_cycle_is_progressing(
    pg_cluster: PgCluster, private_engine: Engine
) -> None:
    start_run(private_engine, "sync", "test")
    stamp(private_engine)
    clock = Clock()
    readiness = Readiness(private_engine, INTERVAL, timeout=2, clock=clock)
    clock.now += 10 * INTERVAL  # past the start grace: only the running cycle keeps it ready
    with HealthServer("127.0.0.1:0", readiness=readiness) as server:
        progressing = get(server, "/readyz")
        pg_cluster.stop()
        down = get(server, "/readyz")

    assert progressing.status_code == 200
    assert reason(progressing) == "a cycle is running and progressed within 3 intervals"
    assert down.status_code == 503
    assert reason(down) in ("database unreachable", "database did not answer within 2s")
    assert DB_PASSWORD not in down.text
