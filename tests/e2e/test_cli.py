"""The `syncd` command as a real process: settings, exit codes, migrations, one cycle, status."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from syncd.sim.base import Fault, SimServer
from syncd.sim.connect import ConnectSim
from syncd.sim.hubspot import HubSpotSim
from tests.e2e.process import syncd

KEY = "SU-000-000-000:cli-secret-key"
TOKEN = "pat-cli-secret-token"


@dataclass
class Stack:
    connect: ConnectSim
    connect_server: SimServer
    hubspot: HubSpotSim
    env: dict[str, str]


@pytest.fixture
def stack(database_url: str) -> Iterator[Stack]:
    connect = ConnectSim(KEY)
    connect.seed(3, accounts=60, capability_on_ratio=1.0)
    hubspot = HubSpotSim(TOKEN, limits=None, custom_properties=True)
    with SimServer(connect) as connect_server, SimServer(hubspot) as hubspot_server:
        env = {
            "SYNCD_DATABASE_URL": database_url,
            "SYNCD_CONNECT_URL": f"{connect_server.url}/public/v1",
            "SYNCD_CONNECT_API_KEY": KEY,
            "SYNCD_HUBSPOT_URL": hubspot_server.url,
            "SYNCD_HUBSPOT_TOKEN": TOKEN,
            "SYNCD_SYNC_DEFAULT": "on",
        }
        yield Stack(connect, connect_server, hubspot, env)


def test_a_missing_setting_stops_the_command_with_exit_2_naming_it() -> None:
    result = syncd("sync")
    assert result.returncode == 2
    assert "SYNCD_DATABASE_URL is not set" in result.stderr


def test_an_invalid_setting_stops_the_command_with_exit_2_naming_it() -> None:
    result = syncd("status", env={"SYNCD_DATABASE_URL": "postgresql://h/d", "SYNCD_INTERVAL": "x"})
    assert result.returncode == 2
    assert "SYNCD_INTERVAL" in result.stderr


def test_db_upgrade_current_and_check_on_an_empty_database(empty_database_url: str) -> None:
    env = {"SYNCD_DATABASE_URL": empty_database_url}
    assert syncd("db", "current", env=env).returncode == 1

    upgraded = syncd("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    current = syncd("db", "current", env=env)
    assert current.returncode == 0
    checked = syncd("db", "check", env=env)
    assert checked.returncode == 0, checked.stdout
    assert "schema matches the code" in checked.stdout


def test_sync_refuses_a_database_that_is_not_migrated(
    empty_database_url: str, stack: Stack
) -> None:
    result = syncd("sync", env={**stack.env, "SYNCD_DATABASE_URL": empty_database_url})
    assert result.returncode == 2
    assert "syncd db upgrade" in result.stderr


def test_one_cycle_mirrors_connect_fills_the_crm_and_status_reports_it(stack: Stack) -> None:
    result = syncd("sync", env=stack.env)

    assert result.returncode == 0, result.stderr
    assert "success" in result.stdout
    assert len(stack.hubspot.companies.records) == len(stack.connect.accounts)
    status = syncd("status", "--json", env=stack.env)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["accounts"] == len(stack.connect.accounts)
    assert report["runs"][0]["outcome"] == "success"
    human = syncd("status", env=stack.env)
    assert "accounts mirrored: 60" in human.stdout
    for output in (result.stdout, result.stderr, status.stdout, human.stdout):
        assert KEY not in output
        assert TOKEN not in output


def test_a_cycle_with_malformed_records_exits_3(stack: Stack) -> None:
    tar = next(iter(stack.connect.tars))
    broken = {**stack.connect.tar(tar), "status": "approved"}
    stack.connect_server.faults.inject(
        Fault(status=200, body=[broken], match=r"GET /public/v1/tier/account-requests\?ordering")
    )
    result = syncd("sync", env=stack.env)
    assert result.returncode == 3, result.stderr
    assert "partial" in result.stdout


def test_dry_run_prints_the_plan_and_writes_nothing_to_the_crm(stack: Stack) -> None:
    result = syncd("sync", "--dry-run", "--json", env=stack.env)

    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert len(plan["creates"]) == len(stack.connect.accounts)
    assert len(stack.hubspot.companies.records) == 0
    table = syncd("resync", "--dry-run", env=stack.env)
    assert "to create" in table.stdout


def test_the_connect_simulator_runs_as_a_command() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "syncd", "sim", "connect", "--port", "0", "--accounts", "5"],
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip()
        finally:
            process.terminate()
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/public/v1")


def test_the_demo_runs_cycles_and_accepts_tars() -> None:
    result = syncd("demo", "--cycles", "2", "--interval", "0", "--accounts", "60")
    assert result.returncode == 0, result.stderr
    first = next(line for line in result.stdout.splitlines() if line.startswith("cycle 1:"))
    accepted = re.search(r"TARs (\d+) accepted", first)
    assert accepted is not None, first
    assert int(accepted.group(1)) > 0, first
