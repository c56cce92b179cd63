"""Whole cycles as real `syncd` processes: the sync flag, the CRM, the write-back, and crashes.

A Connect simulator of 500 accounts (products with the sync capability on and off), a CRM
simulator and a real Postgres. The first cycle only mirrors (so that operators can set overrides
on mirrored accounts); the cycles after it are `syncd sync` processes.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select, text

from syncd.connect.client import ConnectClient
from syncd.sim.base import SimServer
from syncd.sim.connect import ConnectSim
from syncd.sim.hubspot import HubSpotSim
from syncd.sim.salesforce import SalesforceSim
from syncd.store.schema import connect_outbox, sync_runs, tier_accounts
from syncd.sync.cycle import run_cycle
from syncd.sync.pull import PullOptions
from tests.e2e.process import syncd

KEY = "SU-000-000-000:e2e-key"
TOKEN = "e2e-crm-token"


@dataclass
class Stack:
    crm: str
    connect: ConnectSim
    connect_server: SimServer
    crm_sim: Any
    crm_server: SimServer
    env: dict[str, str]
    engine: Engine

    def crm_keys(self) -> set[str]:
        if self.crm == "hubspot":
            return {o.value("connect_account_id") for o in self.crm_sim.companies.records.values()}
        rows = self.crm_sim.org.records["Account"].values()
        return {row["Connect_Account_Id__c"] for row in rows}

    def crm_count(self) -> int:
        if self.crm == "hubspot":
            return len(self.crm_sim.companies.records)
        return int(self.crm_sim.count("Account"))

    def refuse(self, email: str) -> None:
        if self.crm == "hubspot":
            self.crm_sim.fail_email(email)
        else:
            self.crm_sim.refuse_email(email)

    def actions(self) -> Counter[tuple[str, str]]:
        """(TAR id, accept|ignore) -> requests sent to Connect."""
        out: Counter[tuple[str, str]] = Counter()
        for logged in self.connect_server.requests:
            parts = logged.path.rstrip("/").split("/")
            if logged.method == "POST" and parts[-1] in ("accept", "ignore"):
                out[(parts[-2], parts[-1])] += 1
        return out

    def flag_on(self) -> set[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(tier_accounts.c.id).where(tier_accounts.c.sync_enabled))
            return set(rows.scalars())


@pytest.fixture(params=["hubspot", "salesforce"])
def stack(request: pytest.FixtureRequest, database_url: str) -> Iterator[Stack]:
    connect = ConnectSim(KEY)
    connect.seed(21, accounts=500, products=4, capability_on_ratio=0.5)
    crm_sim: Any
    if request.param == "hubspot":
        crm_sim = HubSpotSim(TOKEN, limits=None, custom_properties=True)
    else:
        crm_sim = SalesforceSim(TOKEN)
    engine = create_engine(database_url)
    with SimServer(connect) as connect_server, SimServer(crm_sim) as crm_server:
        env = {
            "SYNCD_DATABASE_URL": database_url,
            "SYNCD_CONNECT_URL": f"{connect_server.url}/public/v1",
            "SYNCD_CONNECT_API_KEY": KEY,
            "SYNCD_CRM": request.param,
            "SYNCD_HUBSPOT_URL": crm_server.url,
            "SYNCD_HUBSPOT_TOKEN": TOKEN,
            "SYNCD_SALESFORCE_URL": crm_server.url,
            "SYNCD_SALESFORCE_TOKEN": TOKEN,
            "SYNCD_SYNC_DEFAULT": "off",
        }
        with ConnectClient(env["SYNCD_CONNECT_URL"], KEY) as client:
            run_cycle(engine, client, PullOptions())  # mirror only: overrides need the accounts
        yield Stack(request.param, connect, connect_server, crm_sim, crm_server, env, engine)
    engine.dispose()


def pending_by_account(sim: ConnectSim) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for tar in sim.tars.values():
        if tar.status == "pending":
            out.setdefault(tar.account.id, []).append(tar.id)
    return out


def expected_flags(sim: ConnectSim, overrides: dict[str, bool]) -> set[str]:
    """The accounts whose sync is on, from the simulator's own state."""
    on = set()
    for account in sim.accounts.values():
        if account.id in overrides:
            if overrides[account.id]:
                on.add(account.id)
        elif any(product.updates for product in account.products):
            on.add(account.id)
    return on


def test_one_cycle_syncs_exactly_the_flag_on_accounts_and_settles_their_tars(stack: Stack) -> None:
    sim = stack.connect
    pending = pending_by_account(sim)
    capable = sorted(a for a in pending if a in expected_flags(sim, {}))
    turned_off, turned_on = capable[0], sorted(set(sim.accounts) - expected_flags(sim, {}))[0]
    for account_id, command in ((turned_off, "disable"), (turned_on, "enable")):
        done = syncd("accounts", command, account_id, "--reason", "e2e test", env=stack.env)
        assert done.returncode == 0, done.stderr
    overrides = {turned_off: False, turned_on: True}
    refused = capable[1]
    stack.refuse(sim.account(refused)["contact_info"]["contact"]["email"])
    unsupported = {t.id for t in sim.tars.values() if t.status == "unsupported"}

    result = syncd("sync", env=stack.env)

    assert result.returncode in (0, 3), result.stderr
    on = expected_flags(sim, overrides)
    assert stack.flag_on() == on
    # The refused change is the contact's email: the account's own record was written.
    assert stack.crm_keys() == on
    actions = stack.actions()
    assert all(count == 1 for count in actions.values()), actions
    for account_id, tars in pending.items():
        for tar_id in tars:
            status = sim.tars[tar_id].status
            if account_id == refused:
                assert status == "ignored"
                assert "email" in (sim.tars[tar_id].reason or "").lower()
            elif account_id in on:
                assert status == "accepted", (account_id, tar_id)
            else:
                assert status == "pending"
    assert all(sim.tars[t].status == "unsupported" for t in unsupported)
    assert not {t for t, _ in actions} & unsupported
    off = set(sim.accounts) - on
    crm_traffic = " ".join(
        f"{r.query} {r.body.decode(errors='replace')}" for r in stack.crm_server.requests
    )
    assert not [a for a in off if a in crm_traffic], "a flag-off account reached the CRM"
    connect_writes = [r for r in stack.connect_server.requests if r.method != "GET"]
    assert not [r for r in connect_writes for a in off if a[3:] in r.path]

    # Switching one account on: the next cycle syncs it and accepts its TARs.
    switched = turned_off
    assert (
        syncd("accounts", "enable", switched, "--reason", "back on", env=stack.env).returncode == 0
    )
    again = syncd("sync", env=stack.env)
    assert again.returncode in (0, 3), again.stderr
    assert switched in stack.crm_keys()
    assert all(sim.tars[t].status == "accepted" for t in pending[switched])


@pytest.mark.parametrize(
    "point", ["pull.tar_feed.before_commit", "push.after_crm_write", "writeback.after_send"]
)
def test_a_process_killed_at_a_named_point_converges_on_rerun(stack: Stack, point: str) -> None:
    sim = stack.connect
    killed = syncd("sync", env={**stack.env, "SYNCD_CRASH_AT": point})
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    for _ in range(2):
        rerun = syncd("sync", env=stack.env)
        assert rerun.returncode in (0, 3), rerun.stderr

    on = stack.flag_on()
    assert stack.crm_keys() == on
    assert stack.crm_count() == len(on), "a CRM record was created twice"
    actions = stack.actions()
    assert all(count == 1 for count in actions.values()), f"acted twice: {actions}"
    still_pending = [
        t.id for t in sim.tars.values() if t.status == "pending" and t.account.id in on
    ]
    assert still_pending == []
    with stack.engine.connect() as conn:
        unsettled = conn.execute(
            select(connect_outbox.c.object_id).where(connect_outbox.c.state != "done")
        ).all()
        outcomes = conn.execute(select(sync_runs.c.outcome).order_by(sync_runs.c.id)).all()
        status = json.loads(syncd("status", "--json", env=stack.env).stdout)
        assert conn.execute(text("SELECT count(*) FROM v_pending_tars")).scalar_one() >= 0
    assert unsettled == []
    assert outcomes[-1].outcome in ("success", "partial")
    assert status["runs"]
