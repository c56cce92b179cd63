"""The crash-point matrix: a real `syncd` process killed with SIGKILL at each named point
(`syncd.crashpoints`), restarted, and the promises of product.md §5 checked afterwards.

Every case starts from the same small world (`crash_world.py`): a Connect simulator of 30
accounts (products with the sync capability on and off), a CRM simulator and a fresh database,
synced once in-process. Then, before the killed process, Connect and the CRM change: accounts
edited (some twice), new accounts linked through assets to a new product or to none, a product
switched on, an account switched off by its override though it has a pending TAR, a contact
email the CRM refuses (its TARs are ignored), an email a CRM user already holds as an unlinked
contact (the association call), and for the PUT point a CRM-owned field edited in the CRM. Pages
hold 5 records and products are read every cycle, so every point is reached; `name:n` kills at
the n-th time.

The killed process must die by SIGKILL (a point never reached fails the case). At most two
`syncd sync` runs later (a daemon for the daemon's point), the world must have converged, and:

- no CRM record twice; a record only for an account whose sync was on at some time;
- every pending TAR of a flag-on account applied exactly once (the Connect log); the actions
  the kill left `sent` in the outbox read back (GET) and, once applied, never sent again;
- no CRM write and no Connect action for a flag-off account since the changes;
- no run left `running`, the killed one marked `aborted`.

Migrations have their own test: `syncd db upgrade` killed between two revisions or before its
commit leaves the database at the revision it started from, and a rerun completes.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from syncd.domain.mapping import apply
from syncd.sim.base import LoggedRequest, SimServer
from syncd.sim.connect import ConnectSim
from syncd.sim.hubspot import HubSpotSim
from syncd.sim.salesforce import SalesforceSim
from syncd.store import migrate
from syncd.store.runs import start_run
from syncd.store.schema import sync_runs
from tests.e2e.crash_world import (
    KEY,
    NEW_PHONE,
    TOKEN,
    Case,
    edit_phone,
    make_case,
    rerun_daemon,
    syncd,
)
from tests.e2e.invariants import (
    acted_twice,
    action_posts,
    applied_actions,
    convergence,
    duplicates,
    expected_flags,
    off_account_traffic,
    pending_tars,
    runs_left_running,
    tar_action,
)


@dataclass(frozen=True)
class Point:
    name: str
    nth: int = 1
    command: tuple[str, ...] = ("sync",)
    crm: str = "hubspot"
    shows: str = ""
    """What the killed run must have done before dying, for the point to mean what it says:
    `sent` (outbox rows left sent), `put`, `associate`, `settled` (a TAR applied)."""

    @property
    def crash_at(self) -> str:
        return self.name if self.nth == 1 else f"{self.name}:{self.nth}"

    @property
    def daemon(self) -> bool:
        return self.command[0] == "run"

    @property
    def id(self) -> str:
        return f"{self.crm}-{self.crash_at}" if self.crm != "hubspot" else self.crash_at


POINTS = [
    # pull: a page's rows are one statement; the point is after it, before the commit
    Point("pull.tar_feed.before_commit", 2),
    Point("pull.tar_feed.page_committed", 2),
    Point("pull.pending_sweep.before_commit", 2),
    Point("pull.account_feed.before_commit", 2),
    Point("pull.account_feed.page_committed", 1),
    Point("pull.reconcile.before_commit", 3, ("sync", "--reconcile")),
    Point("pull.reconcile.page_committed", 3, ("sync", "--reconcile")),
    Point("pull.products.before_commit"),
    # flags
    Point("flags.assets_linked.before_commit"),
    Point("flags.products.before_commit"),
    Point("flags.decided.before_commit"),
    # push: each kind of CRM write, then the batch's commit
    Point("hubspot.contacts_written"),
    Point("hubspot.companies_written"),
    Point("hubspot.associations_written", shows="associate"),
    Point("hubspot.after_write", 2),
    Point("push.after_crm_write"),
    Point("push.before_commit"),
    Point("push.after_crm_write", crm="salesforce"),
    Point("push.before_commit", crm="salesforce"),
    # write-back: the outbox row before the call, the calls, the settling
    Point("writeback.outbox_recorded"),
    Point("writeback.before_send", 3),
    Point("writeback.accept.after_send", 3, shows="sent"),
    Point("writeback.ignore.after_send", shows="sent"),
    Point("writeback.settle.before_commit", shows="sent"),
    Point("writeback.put.after_send", shows="put"),
    # the run and the lock
    Point("lock.acquired"),
    Point("cycle.run_started"),
    Point("cycle.before_finish", shows="settled"),
    Point("daemon.cycle_locked", command=("run",)),
]


@pytest.fixture
def servers(request: pytest.FixtureRequest) -> Iterator[tuple[SimServer, SimServer]]:
    crm = getattr(request, "param", "hubspot")
    connect = ConnectSim(KEY)
    connect.seed(11, accounts=30, products=4, capability_on_ratio=0.5, changed_ratio=0.6)
    crm_sim: Any
    if crm == "hubspot":
        crm_sim = HubSpotSim(TOKEN, limits=None, custom_properties=True)
    else:
        crm_sim = SalesforceSim(TOKEN)
    with SimServer(connect) as connect_server, SimServer(crm_sim) as crm_server:
        yield connect_server, crm_server


def crash_and_recover(case: Case, point: Point) -> dict[str, Any]:
    """Kill syncd at the point, then rerun until converged (at most two runs); what happened."""
    world = case.world
    marks = {"connect": len(world.connect_server.requests), "crm": len(world.crm_server.requests)}
    pending_before = pending_tars(world.connect)
    killed = case.sync(*point.command, SYNCD_CRASH_AT=point.crash_at)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-3000:])
    marks["connect_kill"] = len(world.connect_server.requests)
    marks["crm_kill"] = len(world.crm_server.requests)
    left_sent = world.unsettled_outbox(("sent",))
    problems: list[str] = []
    reruns = 0
    on = expected_flags(world.connect, world.overrides)
    while reruns < 2:
        reruns += 1
        if point.daemon:
            rerun_daemon(case)
        else:
            done = case.sync("sync")
            assert done.returncode in (0, 3), done.stderr[-3000:]
        problems = convergence(
            world, on, pending_before | pending_tars(world.connect), refused=case.refused
        )
        if not problems:
            break
    assert not problems, problems
    return {"marks": marks, "pending": pending_before, "left_sent": left_sent, "reruns": reruns}


def assert_promises_kept(case: Case, point: Point, seen: dict[str, Any]) -> None:
    world, sim = case.world, case.world.connect
    marks = seen["marks"]
    connect_log = list(world.connect_server.requests)
    crm_log = list(world.crm_server.requests)
    on = expected_flags(sim, world.overrides)
    off = set(sim.accounts) - on

    assert duplicates(world) == []
    assert set(world.crm_keys()) <= case.warm_on | on, "a CRM record for an account never on"
    assert acted_twice(connect_log) == []
    applied, posts = applied_actions(connect_log), action_posts(connect_log)
    for tar_id in sorted(seen["pending"]):
        tar = sim.tars[tar_id]
        if tar.account.id in on:
            # No fault here: one request per action, even across the kill.
            assert applied[tar_id] == posts[tar_id] == 1, (tar_id, tar.status, posts[tar_id])
            wanted = "ignored" if tar.account.id in case.refused else "accepted"
            assert tar.status == wanted, (tar_id, tar.status)
        else:
            assert tar.status == "pending", (tar_id, tar.status)
    assert (
        off_account_traffic(
            world, off, connect_log[marks["connect"] :], crm_log[marks["crm"] :], on=on
        )
        == []
    )
    assert runs_left_running(world.engine) == []
    with world.engine.connect() as conn:
        errors = conn.execute(
            select(sync_runs.c.error).where(sync_runs.c.outcome == "aborted")
        ).scalars()
        dead = [e for e in errors if e and "ended before it finished" in e]
    # The killed run (or, before the lock, the one a dead process left) marked by the next run;
    # the daemon's point comes before its run starts.
    assert len(dead) == (0 if point.daemon else 1), dead
    assert_read_back_not_resent(seen["left_sent"], connect_log, marks)
    killed_part = connect_log[marks["connect"] : marks["connect_kill"]]
    if point.shows == "sent":
        assert seen["left_sent"], "the kill left no action between its call and its settling"
    if point.shows == "put":
        assert any(r.method == "PUT" for r in killed_part), "no PUT before the kill"
        put = case.put_account
        assert put is not None
        held = world.crm_fields(put)
        assert held is not None
        assert apply(world.mapping, sim.account(put))[0]["phone"] == held["phone"] == NEW_PHONE
    if point.shows == "associate":
        crm_part = crm_log[marks["crm"] : marks["crm_kill"]]
        assert any("associate" in r.path for r in crm_part), "no association call before the kill"
    if point.shows == "settled":
        assert any(tar_action(r) for r in killed_part), "no TAR settled before the kill"


def assert_read_back_not_resent(
    left_sent: list[Any], log: list[LoggedRequest], marks: dict[str, int]
) -> None:
    """Every outbox row the kill left `sent` was read back by the next run; an action applied
    before the kill was never sent again."""
    before = log[marks["connect"] : marks["connect_kill"]]
    after = log[marks["connect_kill"] :]
    applied_before = applied_actions(before)
    for row in left_sent:
        if row.kind == "update_account":
            path = f"/tier/accounts/{row.object_id}"
            assert any(r.method == "GET" and r.path.endswith(path) for r in after), row
            put_before = [r for r in before if r.method == "PUT" and r.path.endswith(path)]
            put_after = [r for r in after if r.method == "PUT" and r.path.endswith(path)]
            assert not (put_before and put_after), f"{row.object_id}: PUT sent again"
            continue
        path = f"/tier/account-requests/{row.object_id}"
        assert any(r.method == "GET" and r.path.rstrip("/").endswith(path) for r in after), row
        if applied_before[row.object_id]:
            assert action_posts(after)[row.object_id] == 0, f"{row.object_id} sent again"


@pytest.mark.parametrize(
    ("point", "servers"),
    [pytest.param(p, p.crm, id=p.id) for p in POINTS],
    indirect=["servers"],
)
def test_syncd_killed_at_a_named_point_converges_on_restart_keeping_every_promise(
    point: Point, servers: tuple[SimServer, SimServer], database_url: str, tmp_path: Path
) -> None:
    case = make_case(point.crm, database_url, servers, tmp_path)
    try:
        if point.name == "lock.acquired":
            # A run a dead process left behind: the lock's next holder must mark it aborted.
            start_run(case.world.engine, "sync", "manual")
        if point.shows == "put":
            case.put_account = sorted(case.warm_on)[9]  # none of the accounts `change` picked
            edit_phone(case.world, case.put_account)

        seen = crash_and_recover(case, point)

        assert_promises_kept(case, point, seen)
        print(f"{point.id}: converged after {seen['reruns']} run(s)")
    finally:
        case.world.engine.dispose()


@pytest.mark.parametrize(
    "point", ["migrate.revision_applied:2", "migrate.before_commit"], ids=lambda p: p
)
def test_syncd_db_upgrade_killed_leaves_the_revision_it_started_from_and_a_rerun_completes(
    point: str,
    empty_database_url: str,
    database_url: str,
    servers: tuple[SimServer, SimServer],
    tmp_path: Path,
) -> None:
    url = empty_database_url
    migrate.upgrade(url, "0002")
    env = {"SYNCD_DATABASE_URL": url, "SYNCD_LOG_LEVEL": "WARNING"}

    killed = syncd("db", "upgrade", env={**env, "SYNCD_CRASH_AT": point})

    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    # One transaction for every revision: nothing of the killed upgrade stays.
    assert migrate.current(url) == "0002"
    rerun = syncd("db", "upgrade", env=env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert migrate.current(url) == migrate.head()
    # The same schema as an upgrade never interrupted (`database_url` is one).
    assert migrate.check(url) == migrate.check(database_url)
    # The migrated database serves a whole cycle, with every promise kept.
    case = make_case("hubspot", url, servers, tmp_path)
    try:
        seen = crash_and_recover(case, Point("cycle.run_started"))
        assert_promises_kept(case, Point("cycle.run_started"), seen)
    finally:
        case.world.engine.dispose()
