"""`syncd check` against the simulators over loopback and a real Postgres: one line per check,
exit 0 when everything answers, 1 when something does not, 2 for bad settings; no secret shown."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest

from syncd.pgcluster.admin import conninfo
from syncd.service.check import run
from syncd.sim.base import SimServer
from syncd.sim.connect import ConnectSim
from syncd.sim.hubspot import HubSpotSim
from syncd.sim.salesforce import SalesforceSim

KEY = "SU-000-000-000:check-secret-key"
TOKEN = "pat-check-secret-token"
PASSWORD = "check-db-password"
SF_TOKEN = "00Dcheck!salesforce-secret-token"


@pytest.fixture
def good_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    connect = ConnectSim(KEY)
    connect.seed(1, accounts=7)
    hubspot = HubSpotSim(TOKEN, limits=None, custom_properties=True)
    with SimServer(connect) as connect_server, SimServer(hubspot) as hubspot_server:
        env = {
            "SYNCD_DATABASE_URL": database_url,
            "SYNCD_CONNECT_URL": f"{connect_server.url}/public/v1",
            "SYNCD_CONNECT_API_KEY": KEY,
            "SYNCD_HUBSPOT_URL": hubspot_server.url,
            "SYNCD_HUBSPOT_TOKEN": TOKEN,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield env


def check(monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple[int, list[str]]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = io.StringIO()
    code = run(None, out)
    text = out.getvalue()
    for secret in (KEY, KEY.partition(":")[2], TOKEN, PASSWORD, SF_TOKEN):
        assert secret not in text
    return code, text.splitlines()


def line(lines: list[str], subject: str) -> str:
    found = [entry for entry in lines if entry[5:].startswith(subject)]
    assert len(found) == 1, lines
    return found[0]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_every_check_passes_when_everything_answers(
    good_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, lines = check(monkeypatch)

    assert code == 0, lines
    assert [entry[:5] for entry in lines] == ["ok   "] * 4
    database = good_env["SYNCD_DATABASE_URL"]  # the test server's URL holds no password
    assert line(lines, "settings") == f"ok   settings: crm hubspot, database {database}"
    assert "schema 0" in line(lines, "postgres")
    assert line(lines, "postgres").endswith("= head")
    assert line(lines, "connect").endswith(": 7 tier accounts visible")
    assert "key connect_account_id" in line(lines, "hubspot")


def test_a_wrong_connect_key_is_a_fail_line_with_connects_error_and_exit_1(
    good_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, lines = check(monkeypatch, SYNCD_CONNECT_API_KEY="SU-000-000-000:wrong")

    assert code == 1
    failed = line(lines, "connect")
    assert failed.startswith("FAIL connect http://127.0.0.1:")
    assert "401 AUTH_001" in failed
    assert line(lines, "postgres").startswith("ok")
    assert line(lines, "hubspot").startswith("ok")


@pytest.mark.parametrize(("token", "ok"), [(SF_TOKEN, True), ("00Dwrong!token", False)])
def test_salesforce_is_checked_the_same_way(
    good_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, token: str, ok: bool
) -> None:
    monkeypatch.delenv("SYNCD_HUBSPOT_TOKEN")
    with SimServer(SalesforceSim(SF_TOKEN)) as server:
        code, lines = check(
            monkeypatch,
            SYNCD_CRM="salesforce",
            SYNCD_SALESFORCE_URL=server.url,
            SYNCD_SALESFORCE_TOKEN=token,
        )

    assert code == (0 if ok else 1), lines
    checked = line(lines, f"salesforce {server.url}")
    assert checked.startswith("ok   " if ok else "FAIL ")
    assert token not in "\n".join(lines)


def test_a_wrong_crm_token_is_a_fail_line_and_exit_1(
    good_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, lines = check(monkeypatch, SYNCD_HUBSPOT_TOKEN="pat-wrong")

    assert code == 1
    assert line(lines, "hubspot").startswith("FAIL")
    assert "401" in line(lines, "hubspot")


def test_a_crm_without_syncds_properties_fails_naming_them(
    good_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = HubSpotSim(TOKEN, limits=None, custom_properties=False)
    with SimServer(bare) as server:
        code, lines = check(monkeypatch, SYNCD_HUBSPOT_URL=server.url)

    assert code == 1
    failed = line(lines, "hubspot")
    assert failed.startswith("FAIL")
    assert "account.connect_account_id" in failed
    assert "syncd crm setup" in failed


def test_postgres_down_is_a_fail_line_with_the_password_hidden(
    good_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"postgresql+psycopg://syncd:{PASSWORD}@127.0.0.1:{closed_port()}/syncd"
    code, lines = check(monkeypatch, SYNCD_DATABASE_URL=url)

    assert code == 1
    failed = line(lines, "postgres")
    assert failed.startswith("FAIL postgres: postgresql+psycopg://syncd:***@127.0.0.1:")
    assert line(lines, "connect").startswith("ok")


def test_a_database_behind_the_code_fails_telling_to_upgrade(
    good_env: dict[str, str], empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, lines = check(monkeypatch, SYNCD_DATABASE_URL=empty_database_url)

    assert code == 1
    failed = line(lines, "postgres")
    assert failed.startswith("FAIL postgres: PostgreSQL ")
    assert "schema (empty)" in failed
    assert "syncd db upgrade" in failed


def test_a_database_ahead_of_the_code_fails_telling_to_upgrade_syncd(
    good_env: dict[str, str], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(conninfo(database_url), autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")

    code, lines = check(monkeypatch)

    assert code == 1
    failed = line(lines, "postgres")
    assert "schema 9999" in failed
    assert failed.endswith("it is newer: upgrade syncd")


def test_a_missing_setting_is_a_fail_settings_line_and_exit_2(
    good_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNCD_HUBSPOT_TOKEN")
    code, lines = check(monkeypatch)

    assert code == 2
    assert lines == ["FAIL settings: SYNCD_HUBSPOT_TOKEN is not set (needed by this command)"]


def test_the_command_exits_0_and_prints_the_lines(good_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "syncd", "check"],
        env={**os.environ, **good_env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert len(result.stdout.splitlines()) == 4
    assert KEY not in result.stdout + result.stderr
    assert TOKEN not in result.stdout + result.stderr
