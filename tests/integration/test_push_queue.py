"""The push's queue holds every account behind with sync on, whatever happened before.

The triggers of migration 0007 mark accounts in `push_dirty`; the push reads its candidates
from the marks only (`syncd.store.links.iter_candidates`) and clears the marks of accounts
pushed or switched off (`syncd.store.push_queue.unmark`). After any mix of changes, the
candidates read from the queue must be those a scan of every account and link finds.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, create_engine, delete, insert, select, text

from syncd.store import migrate, push_queue
from syncd.store.links import Selection, iter_candidates, save_links
from syncd.store.schema import crm_links, push_dirty, tier_accounts

ACCOUNTS = [f"TA-0000-0000-{n:04d}" for n in range(5)]
NOW = datetime(2026, 11, 27, tzinfo=UTC)
ENABLED = st.sampled_from([None, True, False])


@dataclass(frozen=True)
class NewAccount:
    account: int
    enabled: bool | None


@dataclass(frozen=True)
class NewVersion:
    """A newer version stored the way the pull stores it: an upsert."""

    account: int


@dataclass(frozen=True)
class SyncFlag:
    account: int
    enabled: bool | None


@dataclass(frozen=True)
class Link:
    """A link saved the way the push saves it; `behind` versions short of the account's."""

    account: int
    behind: int | None
    backoff: bool


@dataclass(frozen=True)
class DropLink:
    account: int


@dataclass(frozen=True)
class Unmark:
    some: tuple[int, ...] | None


accounts_st = st.integers(0, len(ACCOUNTS) - 1)
changes = st.lists(
    st.one_of(
        st.builds(NewAccount, accounts_st, ENABLED),
        st.builds(NewVersion, accounts_st),
        st.builds(SyncFlag, accounts_st, ENABLED),
        st.builds(Link, accounts_st, st.none() | st.integers(0, 2), st.booleans()),
        st.builds(DropLink, accounts_st),
        st.builds(Unmark, st.none() | st.lists(accounts_st, max_size=3).map(tuple)),
    ),
    max_size=12,
)


def reset(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(delete(crm_links))
        conn.execute(delete(tier_accounts))
        assert conn.execute(select(push_dirty.c.account_id)).all() == []


def apply(conn: Connection, change: object) -> None:
    if isinstance(change, NewAccount):
        conn.execute(
            text(
                "INSERT INTO tier_accounts (id, name, type, version, record, sync_enabled) "
                "VALUES (:id, 'n', 'customer', 1, '{}', :enabled) ON CONFLICT DO NOTHING"
            ),
            {"id": ACCOUNTS[change.account], "enabled": change.enabled},
        )
    elif isinstance(change, NewVersion):
        conn.execute(
            text(
                "INSERT INTO tier_accounts (id, name, type, version, record) "
                "SELECT id, name, type, version + 1, record FROM tier_accounts WHERE id = :id "
                "ON CONFLICT (id) DO UPDATE SET version = excluded.version, name = 'v' "
                "WHERE tier_accounts.version < excluded.version"
            ),
            {"id": ACCOUNTS[change.account]},
        )
    elif isinstance(change, SyncFlag):
        conn.execute(
            text("UPDATE tier_accounts SET sync_enabled = :enabled WHERE id = :id"),
            {"id": ACCOUNTS[change.account], "enabled": change.enabled},
        )
    elif isinstance(change, Link):
        account = ACCOUNTS[change.account]
        version = conn.execute(
            select(tier_accounts.c.version).where(tier_accounts.c.id == account)
        ).scalar()
        if version is not None:
            synced = None if change.behind is None else version - change.behind
            save_links(conn, [_link(account, synced, change.backoff)])
    elif isinstance(change, DropLink):
        conn.execute(delete(crm_links).where(crm_links.c.account_id == ACCOUNTS[change.account]))
    elif isinstance(change, Unmark):
        some = None if change.some is None else [ACCOUNTS[i] for i in change.some]
        push_queue.unmark(conn, some)


def _link(account: str, synced: int | None, backoff: bool) -> dict[str, Any]:
    return {
        "account_id": account,
        "crm": "test",
        "state": "synced" if synced is not None else "retry",
        "synced_version": synced,
        "next_attempt_at": NOW + timedelta(hours=1) if backoff else None,
    }


_BEHIND_SCAN = text(
    "SELECT a.id FROM tier_accounts a LEFT JOIN crm_links l ON l.account_id = a.id "
    "WHERE a.sync_enabled AND (l.synced_version IS NULL OR l.synced_version < a.version)"
)


def queued(engine: Engine, **selection: Any) -> set[str]:
    chosen = Selection(only_enabled=True, **selection)
    return {c.account_id for batch in iter_candidates(engine, chosen, NOW, 2) for c in batch}


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(ENABLED, min_size=len(ACCOUNTS), max_size=len(ACCOUNTS)), changes, changes)
def test_the_queue_yields_what_a_scan_of_every_account_finds(
    engine: Engine, flags: list[bool | None], before: list[object], after: list[object]
) -> None:
    reset(engine)
    accounts = [NewAccount(i, enabled) for i, enabled in enumerate(flags)]
    for step in (accounts + before, after):  # marks committed, then changed again
        with engine.begin() as conn:
            for change in step:
                apply(conn, change)

    with engine.connect() as conn:
        behind = set(conn.execute(_BEHIND_SCAN).scalars())
        waiting = set(
            conn.execute(
                select(crm_links.c.account_id).where(crm_links.c.next_attempt_at > NOW)
            ).scalars()
        )
    assert queued(engine, ignore_backoff=True) == behind
    assert queued(engine) == behind - waiting
    with engine.begin() as conn:
        push_queue.unmark(conn)
        marked = set(conn.execute(select(push_dirty.c.account_id)).scalars())
    assert marked == behind, "unmarking keeps the accounts behind and only those"


def test_a_cycle_leaves_no_mark_and_a_new_version_marks_the_account_again(
    engine: Engine,
) -> None:
    reset(engine)
    with engine.begin() as conn:
        for i in range(3):
            apply(conn, NewAccount(i, True))
        assert set(conn.execute(select(push_dirty.c.account_id)).scalars()) == set(ACCOUNTS[:3])
        save_links(conn, [_link(a, 1, False) for a in ACCOUNTS[:3]])
        assert push_queue.unmark(conn, ACCOUNTS[:3]) == 3
        apply(conn, NewVersion(1))
        marked = conn.execute(select(push_dirty.c.account_id)).scalars().all()
    assert marked == [ACCOUNTS[1]]


def test_a_link_deleted_or_lowered_by_hand_marks_its_account_again(engine: Engine) -> None:
    reset(engine)
    with engine.begin() as conn:
        for i in range(3):
            apply(conn, NewAccount(i, i < 2))
        save_links(conn, [_link(a, 1, False) for a in ACCOUNTS[:3]])
        push_queue.unmark(conn)
        assert conn.execute(select(push_dirty.c.account_id)).all() == []
        conn.execute(delete(crm_links).where(crm_links.c.account_id.in_(ACCOUNTS[1:3])))
        save_links(conn, [_link(ACCOUNTS[0], 0, False)])
        marked = conn.execute(select(push_dirty.c.account_id)).scalars().all()
    assert sorted(marked) == ACCOUNTS[:2], "the account with sync off stays unmarked"


def test_unmarking_waits_for_an_override_switching_the_account_on(
    engine: Engine, database_url: str
) -> None:
    """`syncd accounts enable` runs beside a cycle, without the writer lock: a mark cleared
    while the override commits must not lose the account."""
    reset(engine)
    account = ACCOUNTS[0]
    with engine.begin() as conn:
        apply(conn, NewAccount(0, False))
        conn.execute(insert(push_dirty).values(account_id=account))  # a mark left from before
    other = create_engine(database_url)
    try:
        with other.connect() as override:
            override.execute(
                text("UPDATE tier_accounts SET sync_enabled = true WHERE id = :id"), {"id": account}
            )
            unmarked: list[int] = []
            cleaner = threading.Thread(target=lambda: unmarked.append(_unmark_all(engine)))
            cleaner.start()
            _wait_until_blocked(engine)
            override.commit()
            cleaner.join(timeout=30)
    finally:
        other.dispose()
    with engine.connect() as conn:
        marked = conn.execute(select(push_dirty.c.account_id)).scalars().all()
    assert unmarked == [0]
    assert marked == [account]


def _unmark_all(engine: Engine) -> int:
    with engine.begin() as conn:
        return push_queue.unmark(conn)


def _wait_until_blocked(engine: Engine) -> None:
    """Until a session of this database waits for a row lock."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    for _ in range(600):
        with engine.connect() as conn:
            if conn.execute(query).scalar_one():
                return
        time.sleep(0.05)
    raise AssertionError("the unmarking never waited for the override's lock")


def test_the_upgrade_marks_the_accounts_behind_today(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url, "0006")
    engine = create_engine(empty_database_url)
    try:
        with engine.begin() as conn:
            for i, enabled in enumerate([True, True, False, None]):
                apply(conn, NewAccount(i, enabled))
            save_links(conn, [_link(ACCOUNTS[0], 1, False)])
        migrate.upgrade(empty_database_url)
        with engine.connect() as conn:
            marked = conn.execute(select(push_dirty.c.account_id)).scalars().all()
    finally:
        engine.dispose()
    assert marked == [ACCOUNTS[1]]
