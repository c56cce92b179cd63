"""`syncd status` as a real process: the runs, the daemons, the backlog, the failures, the flags."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from syncd.connect.client import ConnectClient
from syncd.sim.base import SimServer
from syncd.sim.connect import ConnectSim
from syncd.sim.hubspot import HubSpotSim
from syncd.sync.cycle import run_cycle
from syncd.sync.pull import PullOptions
from tests.e2e.process import syncd

KEY = "SU-000-000-000:status-key"
TOKEN = "status-crm-token"


@dataclass
class Synced:
    """A database after a mirror-only cycle (run 1), an override that turns one account off,
    and one `syncd sync` (run 2) in which the CRM refused one account."""

    env: dict[str, str]
    engine: Engine
    connect: ConnectSim
    refused: str
    disabled: str

    def scalar(self, sql: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql)).scalar_one()


@pytest.fixture
def synced(database_url: str) -> Iterator[Synced]:
    connect = ConnectSim(KEY)
    connect.seed(5, accounts=60, products=4, capability_on_ratio=0.5)
    hubspot = HubSpotSim(TOKEN, limits=None, custom_properties=True)
    with_pending = sorted({t.account.id for t in connect.tars.values() if t.status == "pending"})
    refused, disabled = with_pending[0], with_pending[1]
    hubspot.fail_email(connect.account(refused)["contact_info"]["contact"]["email"])
    engine = create_engine(database_url)
    with SimServer(connect) as connect_server, SimServer(hubspot) as hubspot_server:
        env = {
            "SYNCD_DATABASE_URL": database_url,
            "SYNCD_CONNECT_URL": f"{connect_server.url}/public/v1",
            "SYNCD_CONNECT_API_KEY": KEY,
            "SYNCD_HUBSPOT_URL": hubspot_server.url,
            "SYNCD_HUBSPOT_TOKEN": TOKEN,
            "SYNCD_SYNC_DEFAULT": "off",
        }
        with ConnectClient(env["SYNCD_CONNECT_URL"], KEY) as client:
            run_cycle(engine, client, PullOptions())  # mirror only: overrides need the accounts
        done = syncd("accounts", "disable", disabled, "--reason", "status test", env=env)
        assert done.returncode == 0, done.stderr
        result = syncd("sync", env=env)
        assert result.returncode == 3, result.stderr  # the refused account
        yield Synced(env, engine, connect, refused, disabled)
    engine.dispose()


def heartbeat_table(engine: Engine, present: bool) -> None:
    """The daemon's table (schema 0005) as a database of that schema has it, or none."""
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS daemon_heartbeats"))
        if present:
            conn.execute(
                text(
                    "CREATE TABLE daemon_heartbeats (instance text PRIMARY KEY, host text, "
                    "pid integer, version text, started_at timestamptz DEFAULT now(), "
                    "beat_at timestamptz DEFAULT now(), state text, last_run_id bigint)"
                )
            )


def test_status_reports_runs_daemons_backlog_failures_and_flags(synced: Synced) -> None:
    heartbeat_table(synced.engine, present=True)
    with synced.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO daemon_heartbeats (instance, host, pid, version, state, beat_at, "
                "last_run_id) VALUES ('box-1:4242', 'box-1', 4242, '1.2.3', 'active', "
                "now() - interval '90 seconds', 2)"
            )
        )
        # One account changed in Connect since the push, and one CRM write waiting to retry.
        behind = conn.execute(
            text(
                "UPDATE tier_accounts SET version = version + 1 WHERE id = ("
                "SELECT a.id FROM tier_accounts a JOIN crm_links l ON l.account_id = a.id "
                "WHERE a.sync_enabled AND l.state = 'synced' ORDER BY a.id LIMIT 1) RETURNING id"
            )
        ).scalar_one()
        conn.execute(
            text(
                "UPDATE crm_links SET state = 'retry', next_attempt_at = now() + interval '1 hour'"
                " WHERE account_id = (SELECT account_id FROM crm_links WHERE state = 'synced'"
                " AND account_id <> :behind ORDER BY account_id LIMIT 1)"
            ),
            {"behind": behind},
        )

    result = syncd("status", "--json", env=synced.env)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["format"] == 1
    assert report["accounts"] == len(synced.connect.accounts)
    run, mirror_only = report["runs"]
    assert mirror_only["id"] == 1
    assert mirror_only["counts"]["crm_created"] is None  # no push in that run
    assert (run["id"], run["kind"], run["trigger"], run["outcome"]) == (
        2,
        "sync",
        "manual",
        "partial",
    )
    assert run["counts"]["crm_rejected"] == 1
    assert run["counts"]["crm_created"] == synced.scalar(
        "SELECT count(*) FROM crm_links WHERE crm_id IS NOT NULL"
    )
    assert run["seconds"] > 0

    [daemon] = report["daemons"]
    assert (daemon["instance"], daemon["state"], daemon["last_run_id"]) == (
        "box-1:4242",
        "active",
        2,
    )
    assert daemon["age_seconds"] >= 90

    pending = [t for t in synced.connect.tars.values() if t.status == "pending"]
    backlog = report["backlog"]
    assert backlog["pending_tars"] == len(pending) > 0
    assert {t.account.id for t in pending} == {synced.disabled}
    assert backlog["pending_tars_by_reason"] == {"sync is off for the account": len(pending)}
    assert backlog["oldest_pending_age_seconds"] > 0
    assert backlog["accounts_behind"] == 2  # the one changed since, and the one refused
    assert backlog["crm_retry"] == 1
    assert backlog["next_retry_at"] is not None

    failures = report["failures"]
    assert failures["last_day"]["crm_rejected"] == 1
    assert failures["unsettled"] == {
        "crm_rejected": 1,
        "crm_retry": 1,
        "crm_unknown": 0,
        "connect_failed": 0,
    }
    assert sum(e["accounts"] for e in failures["top_errors"]) == 2

    flags = report["flags"]
    capable = {a.id for a in synced.connect.accounts.values() if any(p.updates for p in a.products)}
    assert synced.disabled in capable
    assert flags["on"] == len(capable) - 1
    assert flags["off"] == len(synced.connect.accounts) - flags["on"]
    assert flags["off_by_source"]["override"] == 1
    assert flags["undecided"] == 0


def test_the_human_status_says_the_same_in_short_lines(synced: Synced) -> None:
    heartbeat_table(synced.engine, present=True)
    with synced.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO daemon_heartbeats (instance, host, pid, version, state, last_run_id)"
                " VALUES ('box-2:7', 'box-2', 7, '1.2.3', 'standby', NULL)"
            )
        )

    result = syncd("status", env=synced.env)

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "daemons:\n  box-2:7 (pid 7, 1.2.3): standby, last beat " in out
    assert "\n  #2     sync    manual    partial " in out
    assert "1 failed" in out
    pending = synced.scalar("SELECT count(*) FROM tier_account_requests WHERE status = 'pending'")
    assert f"  pending TARs: {pending}, oldest " in out
    assert "  unsettled now: 1 refused by the CRM, 0 to retry" in out
    assert f"accounts mirrored: {len(synced.connect.accounts)};" in out
    assert "1 override" in out


def test_status_without_the_heartbeat_table_leaves_the_daemons_out(synced: Synced) -> None:
    heartbeat_table(synced.engine, present=False)

    as_json = syncd("status", "--json", env=synced.env)
    human = syncd("status", env=synced.env)

    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["daemons"] is None
    assert human.returncode == 0, human.stderr
    assert "daemon" not in human.stdout
    assert "last runs:" in human.stdout


def test_status_shows_as_many_runs_as_asked_newest_first(synced: Synced) -> None:
    again = syncd("sync", env=synced.env)
    assert again.returncode in (0, 3), again.stderr

    one = json.loads(syncd("status", "--json", "--runs", "1", env=synced.env).stdout)
    both = json.loads(syncd("status", "--json", env=synced.env).stdout)

    assert [run["id"] for run in one["runs"]] == [3]
    assert [run["id"] for run in both["runs"]] == [3, 2, 1]
