"""`syncd run` as real processes: graceful and forced stops, the writer lock between daemons and
one-shot commands, takeover by a standby, and runs a dead process left marked `aborted`.

The Connect simulator is slowed (latency per request, small pages), so that a cycle lasts long
enough to be interrupted in the middle.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select, text

from syncd.sim.base import Fault, SimServer
from syncd.sim.connect import ConnectSim
from syncd.sim.hubspot import HubSpotSim
from syncd.store.schema import daemon_heartbeats, sync_cursors, sync_runs, tier_account_requests

KEY = "SU-000-000-000:daemon-key"
TOKEN = "pat-daemon-token"
WAIT = 120.0
LATENCY = 0.15


def until(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


class Syncd:
    """A `syncd` process whose output goes to files (a pipe nobody reads would block it)."""

    def __init__(self, args: list[str], env: dict[str, str], workdir: Path, name: str) -> None:
        self.out = workdir / f"{name}.out"
        self.err = workdir / f"{name}.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "syncd", *args],
                env={**os.environ, **env},
                stdout=out,
                stderr=err,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = WAIT) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"syncd did not exit within {timeout} s:\n{self.stderr()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@dataclass
class Stack:
    connect: ConnectSim
    connect_server: SimServer
    hubspot: HubSpotSim
    env: dict[str, str]
    engine: Engine
    workdir: Path
    started: list[Syncd]

    def syncd(self, *args: str, name: str, **env: str) -> Syncd:
        process = Syncd(list(args), {**self.env, **env}, self.workdir, name)
        self.started.append(process)
        return process

    def runs(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(sync_runs).order_by(sync_runs.c.started_at)).all())

    def running_run_of(self, pid: int) -> Any:
        return next((r for r in self.runs() if r.pid == pid and r.outcome == "running"), None)

    def finished_run_of(self, pid: int, after: datetime | None = None) -> Any:
        done = [r for r in self.runs() if r.pid == pid and r.outcome in ("success", "partial")]
        return next((r for r in done if after is None or r.started_at >= after), None)

    def heartbeat_state(self, pid: int) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(daemon_heartbeats.c.state).where(
                    daemon_heartbeats.c.instance == f"{socket.gethostname()}:{pid}"
                )
            ).first()
        return None if row is None else str(row.state)

    def db_now(self) -> datetime:
        with self.engine.connect() as conn:
            moment: datetime = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
        return moment


@pytest.fixture
def stack(database_url: str, tmp_path: Path) -> Iterator[Stack]:
    connect = ConnectSim(KEY)
    connect.seed(5, accounts=60, capability_on_ratio=1.0)
    hubspot = HubSpotSim(TOKEN, limits=None, custom_properties=True)
    engine = create_engine(database_url)
    started: list[Syncd] = []
    with SimServer(connect) as connect_server, SimServer(hubspot) as hubspot_server:
        connect_server.faults.latency = LATENCY
        env = {
            "SYNCD_DATABASE_URL": database_url,
            "SYNCD_CONNECT_URL": f"{connect_server.url}/public/v1",
            "SYNCD_CONNECT_API_KEY": KEY,
            "SYNCD_HUBSPOT_URL": hubspot_server.url,
            "SYNCD_HUBSPOT_TOKEN": TOKEN,
            "SYNCD_SYNC_DEFAULT": "on",
            "SYNCD_PAGE_SIZE": "10",
            "SYNCD_INTERVAL": "1",
            "SYNCD_SHUTDOWN_GRACE": "20",
            "SYNCD_HTTP_ADDR": "",
        }
        try:
            yield Stack(connect, connect_server, hubspot, env, engine, tmp_path, started)
        finally:
            for process in started:
                process.stop()
            engine.dispose()


def assert_no_two_runs_overlap(runs: list[Any]) -> None:
    assert all(r.outcome != "running" for r in runs), [(r.id, r.outcome) for r in runs]
    ordered = sorted(runs, key=lambda r: r.started_at)
    for before, after in itertools.pairwise(ordered):
        assert before.finished_at <= after.started_at, (before.id, after.id)


def test_sigterm_mid_cycle_stops_within_the_grace_period_keeping_data_and_cursors_consistent(
    stack: Stack,
) -> None:
    daemon = stack.syncd("run", name="daemon")
    run = until(lambda: stack.running_run_of(daemon.pid), "a running cycle")
    until(lambda: cursor(stack.engine, "pull.tar_feed"), "a page of the TAR feed committed")

    asked = time.monotonic()
    daemon.signal(signal.SIGTERM)
    code = daemon.wait()
    stopped_after = time.monotonic() - asked

    assert code == 0, daemon.stderr()[-3000:]
    assert stopped_after < float(stack.env["SYNCD_SHUTDOWN_GRACE"])
    (aborted,) = [r for r in stack.runs() if r.id == run.id]
    assert aborted.outcome == "aborted"
    assert "stopped on request" in aborted.error
    assert stack.heartbeat_state(daemon.pid) == "stopped"
    assert_cursor_behind_stored_rows(stack)

    stack.connect_server.faults.latency = 0
    again = stack.syncd("run", name="again")
    until(lambda: stack.finished_run_of(again.pid), "a complete cycle after the restart")
    again.signal(signal.SIGTERM)
    assert again.wait() == 0

    assert len(stack.hubspot.companies.records) == len(stack.connect.accounts)
    assert_no_two_runs_overlap(stack.runs())


def cursor(engine: Engine, name: str) -> str | None:
    with engine.connect() as conn:
        value = conn.execute(
            select(sync_cursors.c.value).where(sync_cursors.c.name == name)
        ).scalar_one_or_none()
    return None if value is None else str(value)


def assert_cursor_behind_stored_rows(stack: Stack) -> None:
    """The TAR feed's cursor is the creation time of a stored TAR, and every TAR created
    before it is stored: it never passed a page that was not committed."""
    watermark = cursor(stack.engine, "pull.tar_feed")
    assert watermark is not None
    moment = datetime.fromisoformat(watermark)
    with stack.engine.connect() as conn:
        stored = dict(
            conn.execute(
                select(tier_account_requests.c.id, tier_account_requests.c.created_at)
            ).all()
        )
    assert moment in set(stored.values())
    behind = {t.id for t in stack.connect.tars.values() if t.created_at < moment}
    assert behind <= set(stored)


def hold_the_account_feed(stack: Stack, seconds: float = 30) -> dict[str, str]:
    """Make the first cycle hang on its first account page (after the TAR feed's pages are
    committed), so that it is surely still running while the test acts; the settings for it."""
    stack.connect_server.faults.inject(
        Fault(latency=seconds, match=r"GET /public/v1/tier/accounts\?"), times=1
    )
    return {"SYNCD_HTTP_TIMEOUT": str(seconds * 4)}


def test_a_standby_daemon_takes_over_when_the_active_one_is_killed(stack: Stack) -> None:
    first = stack.syncd("run", name="first", **hold_the_account_feed(stack))
    until(lambda: stack.running_run_of(first.pid), "the first daemon's cycle")
    until(lambda: cursor(stack.engine, "pull.tar_feed"), "a page of the TAR feed committed")
    second = stack.syncd("run", name="second")
    until(lambda: stack.heartbeat_state(second.pid) == "standby", "the second daemon standing by")
    killed_run = stack.running_run_of(first.pid)
    assert killed_run is not None, "the first daemon's cycle ended before the kill"

    first.signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    killed_at = stack.db_now()

    taken_over = until(
        lambda: stack.finished_run_of(second.pid, after=killed_at), "the standby's cycle"
    )
    assert taken_over.finished_at > killed_at
    second.signal(signal.SIGTERM)
    assert second.wait() == 0, second.stderr()[-3000:]

    runs = stack.runs()
    (dead,) = [r for r in runs if r.id == killed_run.id]
    assert dead.outcome == "aborted"
    assert "ended before it finished" in dead.error
    assert {r.pid for r in runs} == {first.pid, second.pid}
    assert_no_two_runs_overlap(runs)


def test_resync_no_wait_refuses_while_a_cycle_runs_and_wait_runs_after_it(stack: Stack) -> None:
    stack.connect_server.faults.latency = 0
    slow = hold_the_account_feed(stack)
    daemon = stack.syncd("run", name="daemon", SYNCD_INTERVAL="600", **slow)
    cycle = until(lambda: stack.running_run_of(daemon.pid), "the daemon's cycle")

    refused = stack.syncd("resync", "--no-wait", name="refused")
    assert refused.wait() == 1
    message = (
        "another syncd is running a cycle on this database "
        f"(pid {daemon.pid} on host {socket.gethostname()})"
    )
    assert message in refused.stderr()

    waiting = stack.syncd("resync", name="waiting")
    until(lambda: "waiting for it to finish" in waiting.stderr(), "the resync to wait")
    assert stack.running_run_of(waiting.pid) is None
    assert waiting.wait() in (0, 3), waiting.stderr()[-3000:]

    runs = {r.id: r for r in stack.runs()}
    (resync,) = [r for r in runs.values() if r.pid == waiting.pid]
    assert runs[cycle.id].outcome in ("success", "partial")
    assert resync.kind == "resync"
    assert resync.started_at >= runs[cycle.id].finished_at
    with stack.engine.connect() as conn:
        mark = conn.execute(text("SELECT value FROM sync_cursors WHERE name = 'daemon.progress'"))
    assert mark.scalar_one() == str(resync.id), "the resync's progress keeps a standby ready"
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    assert_no_two_runs_overlap(stack.runs())


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_second_signal_ends_the_daemon_at_once(stack: Stack, signum: int, code: int) -> None:
    # The cycle's first request hangs for longer than the test: only the second signal ends it.
    stack.connect_server.faults.inject(
        Fault(latency=60, match=r"GET /public/v1/tier/account-requests"), times=1
    )
    daemon = stack.syncd("run", name="daemon", SYNCD_SHUTDOWN_GRACE="300", SYNCD_HTTP_TIMEOUT="300")
    run = until(lambda: stack.running_run_of(daemon.pid), "the daemon's cycle")
    daemon.signal(signum)
    until(lambda: "stop_requested" in daemon.stderr(), "the first signal to be handled")
    assert daemon.process.poll() is None  # still waiting for the cycle, as it should

    daemon.signal(signum)

    assert daemon.wait(timeout=30) == code
    assert "shutdown_forced" in daemon.stderr()
    assert stack.running_run_of(daemon.pid) is not None  # left behind, for the next holder

    stack.connect_server.faults.latency = 0
    after = stack.syncd("sync", "--no-wait", name="after")
    assert after.wait() in (0, 3), after.stderr()[-3000:]
    (left,) = [r for r in stack.runs() if r.id == run.id]
    assert left.outcome == "aborted"
    assert "ended before it finished" in left.error


def test_the_daemon_never_migrates_and_exits_2_on_a_database_that_is_behind(
    empty_database_url: str, tmp_path: Path
) -> None:
    daemon = Syncd(["run"], {"SYNCD_DATABASE_URL": empty_database_url}, tmp_path, "daemon")

    assert daemon.wait() == 2
    assert "syncd db upgrade" in daemon.stderr()
    engine = create_engine(empty_database_url)
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert tables == 0
