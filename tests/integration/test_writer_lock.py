"""The writer lock on a real Postgres: exclusive, named, lost with its session; runs it aborts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, insert, select, text, update

from syncd.service.locking import LockBusy, writer_lock
from syncd.store import heartbeat, runs
from syncd.store.heartbeat import Instance
from syncd.store.lock import Holder, WriterLock, find_holder
from syncd.store.schema import daemon_heartbeats, sync_runs


@pytest.fixture
def first(engine: Engine) -> Iterator[WriterLock]:
    lock = WriterLock(engine, pid=101, host="alpha")
    yield lock
    lock.close()


@pytest.fixture
def second(engine: Engine) -> Iterator[WriterLock]:
    lock = WriterLock(engine, pid=202, host="beta")
    yield lock
    lock.close()


def test_a_second_process_cannot_take_the_lock_until_the_first_releases_it(
    first: WriterLock, second: WriterLock
) -> None:
    assert first.try_acquire()
    assert not second.try_acquire()

    first.release()

    assert second.try_acquire()
    assert not first.try_acquire()


def test_the_holder_is_named_by_the_pid_and_host_it_gave(engine: Engine, first: WriterLock) -> None:
    assert find_holder(engine) is None
    first.try_acquire()

    holder = find_holder(engine)

    assert holder is not None
    assert (holder.pid, holder.host) == (101, "alpha")
    assert holder.describe() == "pid 101 on host alpha"


def test_a_lock_whose_session_is_ended_is_free_and_its_holder_knows_it_lost_it(
    engine: Engine, first: WriterLock, second: WriterLock
) -> None:
    first.try_acquire()
    holder = find_holder(engine)
    assert holder is not None
    assert first.still_held()

    with engine.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": holder.backend_pid})

    assert second.try_acquire()
    assert not first.still_held()
    assert not first.held


def test_a_cached_answer_is_given_only_within_max_age(engine: Engine, first: WriterLock) -> None:
    first.try_acquire()
    assert first.still_held()
    holder = find_holder(engine)
    assert holder is not None
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": holder.backend_pid})

    assert first.still_held(max_age=3600)  # answered yes a moment ago: not asked again
    assert not first.still_held(max_age=0)


def test_a_waiting_acquire_takes_the_lock_once_the_holder_releases_it(
    first: WriterLock, second: WriterLock
) -> None:
    first.try_acquire()
    told = threading.Event()
    holders: list[Holder | None] = []
    got: list[bool] = []

    def busy(holder: Holder | None) -> None:
        holders.append(holder)
        told.set()

    def wait_for_it() -> None:
        got.append(second.acquire(wait=True, poll=0.05, on_busy=busy))

    waiter = threading.Thread(target=wait_for_it)
    waiter.start()
    assert told.wait(30)
    assert not got
    first.release()
    waiter.join(30)

    assert got == [True]
    assert second.held
    assert [h.pid if h else None for h in holders] == [101]


def test_writer_lock_without_wait_raises_naming_the_holder(
    engine: Engine, first: WriterLock
) -> None:
    first.try_acquire()

    with (
        pytest.raises(
            LockBusy,
            match=r"another syncd is running a cycle on this database "
            r"\(pid 101 on host alpha\)",
        ),
        writer_lock(engine, wait=False, command="resync"),
    ):
        pass


def start_run(engine: Engine, host: str, pid: int, outcome: str = "running") -> int:
    with engine.begin() as conn:
        run_id = conn.execute(
            insert(sync_runs)
            .values(kind="sync", trigger="test", host=host, pid=pid, outcome=outcome)
            .returning(sync_runs.c.id)
        ).scalar_one()
    return int(run_id)


def outcome_of(engine: Engine, run_id: int) -> tuple[str, str | None, bool]:
    with engine.connect() as conn:
        row = conn.execute(select(sync_runs).where(sync_runs.c.id == run_id)).one()
    return row.outcome, row.error, row.finished_at is not None


def test_taking_the_writer_lock_marks_runs_left_running_as_aborted(engine: Engine) -> None:
    dead = start_run(engine, "gone", 7)
    done = start_run(engine, "gone", 8, outcome="success")

    with writer_lock(engine, wait=False, command="sync"):
        pass

    outcome, error, finished = outcome_of(engine, dead)
    assert (outcome, finished) == ("aborted", True)
    assert error is not None
    assert "ended before it finished" in error
    assert outcome_of(engine, done)[0] == "success"


def test_abort_unfinished_of_one_process_leaves_the_others(engine: Engine) -> None:
    mine, other = start_run(engine, "here", 1), start_run(engine, "here", 2)

    assert runs.abort_unfinished(engine, "grace over", host="here", pid=1) == [mine]

    assert outcome_of(engine, mine)[:2] == ("aborted", "grace over")
    assert outcome_of(engine, other)[0] == "running"


def test_a_heartbeat_row_follows_the_instance_and_a_restart_takes_it_over(
    engine: Engine,
) -> None:
    instance = Instance("host-a", 42, "9.9")
    heartbeat.register(engine, instance)
    run_id = start_run(engine, "host-a", 42, outcome="success")
    heartbeat.beat(engine, instance, "active", run_id)
    heartbeat.beat(engine, instance, "standby")
    with engine.connect() as conn:
        rows = heartbeat.instances(conn)
    assert [(r["instance"], r["state"], r["last_run_id"], r["version"]) for r in rows] == [
        ("host-a:42", "standby", run_id, "9.9")
    ]

    heartbeat.register(engine, instance)

    with engine.connect() as conn:
        (row,) = heartbeat.instances(conn)
    assert (row["state"], row["last_run_id"]) == ("starting", None)


def test_prune_deletes_only_instances_silent_for_longer_than_asked(engine: Engine) -> None:
    old, fresh = Instance("old", 1), Instance("fresh", 2)
    heartbeat.register(engine, old)
    heartbeat.register(engine, fresh)
    with engine.begin() as conn:
        conn.execute(
            update(daemon_heartbeats)
            .where(daemon_heartbeats.c.instance == old.id)
            .values(beat_at=text("now() - interval '8 days'"))
        )

    assert heartbeat.prune(engine, timedelta(days=7)) == 1

    with engine.connect() as conn:
        assert [r["instance"] for r in heartbeat.instances(conn)] == [fresh.id]
