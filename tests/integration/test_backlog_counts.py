"""The backlog counts of /metrics and `syncd status`, read from the push's queue and the partial
index of migration 0008, are exactly those of the dashboard views, in every state an account and
its link can be in (stale queue marks included). Real Postgres."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, text

from syncd.service import status
from syncd.service.metrics_db import ACCOUNTS_SYNC_OFF, Backlog, read_backlog
from syncd.store import push_queue
from tests.integration.test_push_queue import (
    ACCOUNTS,
    ENABLED,
    NewAccount,
    apply,
    changes,
    reset,
)

FLAGS = (True, False, None)
# (state, synced version relative to the account's; None: never synced), or no link at all.
LINKS: tuple[tuple[str, int | None] | None, ...] = (
    None,
    ("synced", 0),
    ("synced", -1),
    ("synced", 1),  # the CRM has a version the mirror has not seen yet
    ("retry", None),
    ("unknown", -1),
    ("rejected", 0),
)
VERSION = 5
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

# The dashboard views, counted the way the collector and the status command used to count.
VIEW_BACKLOG = text(
    """
    SELECT
        (SELECT count(*) FROM v_pending_tars),
        (SELECT count(*) FROM v_account_sync WHERE behind AND sync_enabled IS TRUE),
        (SELECT count(*) FROM v_account_sync WHERE sync_enabled IS NOT TRUE)
    """
)
VIEW_BEHIND = text(
    "SELECT count(*) FILTER (WHERE behind AND sync_enabled) AS accounts_behind, "
    "count(*) FILTER (WHERE behind AND sync_enabled IS NOT TRUE) AS accounts_behind_sync_off "
    "FROM v_account_sync"
)
LINK_SCAN = text(
    "SELECT count(*) FILTER (WHERE state = 'retry') AS crm_retry, "
    "count(*) FILTER (WHERE state = 'unknown') AS crm_unknown, "
    "count(*) FILTER (WHERE state = 'rejected') AS crm_rejected, "
    "min(next_attempt_at) FILTER (WHERE state IN ('retry', 'unknown')) AS next_retry_at "
    "FROM crm_links"
)


def from_views(conn: Connection) -> Backlog:
    return Backlog(*(int(n) for n in conn.execute(VIEW_BACKLOG).one()))


def account_id(n: int) -> str:
    return f"TA-0000-0001-{n:04d}"


def every_state(conn: Connection) -> None:
    """Accounts of every flag (as inserted, then as switched to) and every kind of link, half of
    them unmarked afterwards (`push_queue.unmark` clears only marks that outlived their
    reason), and pending TARs of some: the triggers of 0007 mark them as in production."""
    combinations = itertools.product(FLAGS, FLAGS, LINKS, (False, True))
    for n, (first, then, link, unmark) in enumerate(combinations):
        account = account_id(n)
        conn.execute(
            text(
                "INSERT INTO tier_accounts (id, name, type, version, record, sync_enabled) "
                "VALUES (:id, 'n', 'customer', :version, '{}', :enabled)"
            ),
            {"id": account, "version": VERSION, "enabled": first},
        )
        if link is not None:
            state, offset = link
            conn.execute(
                text(
                    "INSERT INTO crm_links (account_id, crm, state, synced_version, "
                    "next_attempt_at, last_error) VALUES (:id, 'test', :state, :synced, :next, "
                    ":error)"
                ),
                {
                    "id": account,
                    "state": state,
                    "synced": None if offset is None else VERSION + offset,
                    "next": NOW + timedelta(minutes=n) if state in ("retry", "unknown") else None,
                    "error": None if state == "synced" else f"{state} {n % 3}",
                },
            )
        conn.execute(
            text("UPDATE tier_accounts SET sync_enabled = :enabled WHERE id = :id"),
            {"id": account, "enabled": then},
        )
        if unmark:
            push_queue.unmark(conn, [account])
        if n % 4 < 2:  # pending, or settled; a pending one with its accept under way
            tar = f"TAR-{n:04d}"
            add_tar(conn, tar, account, "pending" if n % 4 == 0 else "accepted")
            if n % 8 == 0:
                add_action(conn, "accept", tar)
    add_tar(conn, "TAR-9999", account_id(9999), "pending")  # its account not mirrored yet
    add_action(conn, "update_account", account_id(0))
    conn.execute(
        text(
            "INSERT INTO products (id, name, tiers_updates, read_at, record) "
            "VALUES ('PRD-000-000-001', 'P', true, now(), '{}')"
        )
    )


def add_tar(conn: Connection, tar: str, account: str, status: str) -> None:
    conn.execute(
        text(
            "INSERT INTO tier_account_requests (id, account_id, account_version, product_id, "
            "type, status, created_at, record) VALUES (:tar, :id, :version, 'PRD-000-000-001', "
            "'update', :status, now(), '{}')"
        ),
        {"tar": tar, "id": account, "version": VERSION, "status": status},
    )


def add_action(conn: Connection, kind: str, object_id: str) -> None:
    conn.execute(
        text("INSERT INTO connect_outbox (kind, object_id, state) VALUES (:kind, :id, 'sent')"),
        {"kind": kind, "id": object_id},
    )


def test_backlog_gauges_equal_the_views_counts_in_every_state(engine: Engine) -> None:
    with engine.begin() as conn:
        every_state(conn)

    with engine.connect() as conn:
        got, expected = read_backlog(conn), from_views(conn)
        marked = conn.execute(text("SELECT count(*) FROM push_dirty")).scalar_one()

    assert got == expected
    # The fixture holds what makes the counts differ from a naive count of the queue.
    assert 0 < expected.accounts_behind < marked, "stale marks and accounts behind"
    assert expected.accounts_sync_off > 0
    assert expected.pending_tars > 0


def test_status_counts_equal_the_views_and_a_scan_of_every_link(engine: Engine) -> None:
    with engine.begin() as conn:
        every_state(conn)

    report = status.collect(engine)

    with engine.connect() as conn:
        behind = conn.execute(VIEW_BEHIND).one()._asdict()
        links = conn.execute(LINK_SCAN).one()._asdict()
        top = conn.execute(
            text(
                "SELECT last_error, count(*) FROM crm_links WHERE state <> 'synced' "
                "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5"
            )
        ).all()
    backlog, failures = report["backlog"], report["failures"]
    assert behind["accounts_behind"] > 0
    assert behind["accounts_behind_sync_off"] > 0
    assert {name: backlog[name] for name in behind} == behind
    assert (backlog["crm_retry"], backlog["crm_unknown"]) == (
        links["crm_retry"],
        links["crm_unknown"],
    )
    assert backlog["next_retry_at"] == links["next_retry_at"] is not None
    unsettled = failures["unsettled"]
    assert (unsettled["crm_rejected"], unsettled["crm_retry"], unsettled["crm_unknown"]) == (
        links["crm_rejected"],
        links["crm_retry"],
        links["crm_unknown"],
    )
    assert [(e["error"], e["accounts"]) for e in failures["top_errors"]] == [tuple(r) for r in top]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.tuples(*(ENABLED for _ in ACCOUNTS)), changes, changes)
def test_after_any_changes_the_backlog_counts_are_the_views(
    engine: Engine, flags: tuple[bool | None, ...], before: list[Any], after: list[Any]
) -> None:
    reset(engine)
    with engine.begin() as conn:  # every account there first, so that most changes apply
        for n, enabled in enumerate(flags):
            apply(conn, NewAccount(n, enabled))
    for step in (before, after):  # two transactions: marks committed, then changed again
        with engine.begin() as conn:
            for change in step:
                apply(conn, change)

    with engine.connect() as conn:
        assert read_backlog(conn) == from_views(conn)
        behind = conn.execute(VIEW_BEHIND).one()._asdict()
    backlog = status.collect(engine)["backlog"]
    assert {name: backlog[name] for name in behind} == behind


def test_the_sync_off_count_can_be_read_from_the_partial_index_alone(engine: Engine) -> None:
    # Seq scans priced out: the plan shows whether the index's predicate matches the statement's
    # condition (a statement reworded, or an index changed, would fall back to another scan).
    with engine.begin() as conn:
        every_state(conn)
        conn.execute(text("ANALYZE tier_accounts"))
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        conn.execute(text("SET LOCAL enable_bitmapscan = off"))
        plans = [
            "\n".join(conn.execute(text(f"EXPLAIN {statement}")).scalars())
            for statement in (
                ACCOUNTS_SYNC_OFF,
                status.BEHIND_COUNTS["accounts_behind_sync_off"].text,
            )
        ]

    for plan in plans:
        assert "Index Only Scan using ix_tier_accounts_sync_off" in plan, plan
