"""No secret anywhere: real `syncd` processes, given distinctive secret values, succeeding and
failing, and then a scan for each value of their stdout and stderr (debug logs on), of every text
and JSON column of every table of the database, and of the reprs of the settings and clients.

The database password is real: the processes connect as a role created with it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine, bindparam, create_engine, text
from sqlalchemy.engine import make_url

from syncd import bootstrap
from syncd.config import Settings, load_settings
from syncd.pgcluster.admin import conninfo
from syncd.sim.base import Fault, SimServer
from syncd.sim.connect import ConnectSim
from syncd.sim.hubspot import HubSpotSim
from syncd.sim.salesforce import SalesforceSim
from tests.e2e.process import syncd
from tests.pg import PgServer

CONNECT_KEY = "SU-913-274-118:cnk-Vq7rT2mX9pL4sW8z"
CONNECT_SECRET = "cnk-Vq7rT2mX9pL4sW8z"
WRONG_CONNECT_KEY = "SU-913-274-118:cnk-WrongQ3z8Lx5Np"
HUBSPOT_TOKEN = "pat-na1-hsk-3Jd9QmZ71xKpLw0E"
WRONG_HUBSPOT_TOKEN = "pat-na1-hsk-Wr0ng5Gk9Rt2Vx"
SALESFORCE_TOKEN = "00Dsf-access-Yt6Hn2Qw8ZrLp0Vc"
SALESFORCE_REFRESH = "5Aep-refresh-Kd82NfQ0xZmW4TbR"
SALESFORCE_CLIENT_SECRET = "sfcs-Bn31XvQ7pLz9MkW2"
PG_PASSWORD = "pgpw-Hq4Zt8LmX2vN7cRs"

SECRETS = {
    "Connect key": CONNECT_KEY,
    "Connect key secret": CONNECT_SECRET,
    "wrong Connect key": WRONG_CONNECT_KEY,
    "wrong Connect key secret": WRONG_CONNECT_KEY.partition(":")[2],
    "HubSpot token": HUBSPOT_TOKEN,
    "wrong HubSpot token": WRONG_HUBSPOT_TOKEN,
    "Salesforce token": SALESFORCE_TOKEN,
    "Salesforce refresh token": SALESFORCE_REFRESH,
    "Salesforce client secret": SALESFORCE_CLIENT_SECRET,
    "database password": PG_PASSWORD,
}
TEXT_TYPES = ("text", "jsonb", "json", "character varying")


@dataclass
class Seen:
    """Every text the scan reads, by where it came from."""

    texts: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        result = syncd(*args, env=env)
        label = f"syncd {' '.join(args)} #{len(self.texts)}"
        self.texts[f"{label} stdout"] = result.stdout
        self.texts[f"{label} stderr"] = result.stderr
        return result

    def daemon(self, env: dict[str, str], workdir: Path) -> None:
        """`syncd run` until it has finished a cycle, then stopped with SIGTERM."""
        out, err = workdir / "run.out", workdir / "run.err"
        env = {**os.environ, **env, "SYNCD_INTERVAL": "1", "SYNCD_HTTP_ADDR": ""}
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "syncd", "run"], env=env, stdout=stdout, stderr=stderr
            )
        try:
            deadline = time.monotonic() + 120
            while '"run_finished"' not in err.read_text(errors="replace"):
                if process.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.texts["syncd run stdout"] = out.read_text(errors="replace")
        self.texts["syncd run stderr"] = err.read_text(errors="replace")
        assert '"run_finished"' in self.texts["syncd run stderr"], self.texts["syncd run stderr"]

    def database(self, engine: Engine) -> None:
        """Every value of every text or JSON column of every table, as text."""
        with engine.connect() as conn:
            columns = conn.execute(
                text(
                    "SELECT c.table_name, c.column_name FROM information_schema.columns c "
                    "JOIN information_schema.tables t USING (table_schema, table_name) "
                    "WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' "
                    "AND c.data_type IN :types"
                ).bindparams(bindparam("types", expanding=True)),
                {"types": list(TEXT_TYPES)},
            ).all()
            for table, column in columns:
                values = conn.execute(
                    text(f'SELECT "{column}"::text FROM "{table}" WHERE "{column}" IS NOT NULL')
                ).scalars()
                self.texts[f"{table}.{column}"] = "\n".join(values)

    def leaks(self, secrets: dict[str, str]) -> list[str]:
        return [
            f"{name} in {where}"
            for where, seen in self.texts.items()
            for name, value in secrets.items()
            if value in seen
        ]


@pytest.fixture
def secret_url(pg_server: PgServer, database_url: str) -> Iterator[str]:
    """`database_url` as a role of its own whose password is PG_PASSWORD."""
    role = f"syncd_secret_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(conninfo(pg_server.url), autocommit=True) as conn:
        try:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(PG_PASSWORD)
                )
            )
        except psycopg.errors.InsufficientPrivilege:
            pytest.skip("the test server's admin user may not create roles")
    yield (
        make_url(database_url)
        .set(username=role, password=PG_PASSWORD)
        .render_as_string(hide_password=False)
    )
    with psycopg.connect(conninfo(pg_server.url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    made = create_engine(database_url)
    yield made
    made.dispose()


def base_env(secret_url: str, connect_url: str) -> dict[str, str]:
    return {
        "SYNCD_DATABASE_URL": secret_url,
        "SYNCD_CONNECT_URL": connect_url,
        "SYNCD_CONNECT_API_KEY": CONNECT_KEY,
        "SYNCD_SYNC_DEFAULT": "on",
        "SYNCD_LOG_LEVEL": "DEBUG",
        # Failures come fast: one retry, within two seconds.
        "SYNCD_RETRY_ATTEMPTS": "2",
        "SYNCD_RETRY_MAX_SECONDS": "2",
    }


def test_no_secret_in_output_logs_database_or_reprs_with_hubspot(
    secret_url: str, engine: Engine, tmp_path: Path
) -> None:
    connect = ConnectSim(CONNECT_KEY)
    connect.seed(8, accounts=40, capability_on_ratio=1.0)
    hubspot = HubSpotSim(HUBSPOT_TOKEN, limits=None, custom_properties=True)
    seen = Seen()
    with SimServer(connect) as connect_server, SimServer(hubspot) as hubspot_server:
        env = {
            **base_env(secret_url, f"{connect_server.url}/public/v1"),
            "SYNCD_HUBSPOT_URL": hubspot_server.url,
            "SYNCD_HUBSPOT_TOKEN": HUBSPOT_TOKEN,
        }
        first = seen.run("sync", env=env)
        assert first.returncode == 0, first.stderr
        assert '"event": "run_finished"' in first.stderr  # debug logs are in the scan
        assert seen.run("resync", "--dry-run", env=env).returncode == 0
        assert seen.run("resync", "--dry-run", "--json", env=env).returncode == 0
        assert seen.run("status", env=env).returncode == 0
        assert seen.run("status", "--json", env=env).returncode == 0
        assert seen.run("accounts", "list", env=env).returncode == 0
        seen.run("check", env=env)
        seen.daemon(env, tmp_path)

        # Connect answers errors that quote the key back (a misbehaving proxy would): a 500
        # on the TAR feed until the retries are spent, and a 400 refusing an accept.
        echo = {"error_code": "ECHO", "errors": [f"rejected header: ApiKey {CONNECT_KEY}"]}
        feed = r"GET /public/v1/tier/account-requests\?"
        connect_server.faults.inject(Fault(status=500, body=echo, match=feed), times=2)
        accept = r"POST /public/v1/tier/account-requests/[^/]+/accept"
        connect_server.faults.inject(Fault(status=400, body=echo, match=accept), times=10)
        for account_id in sorted(connect.accounts)[:2]:
            connect.change_account(account_id)
        failing = seen.run("sync", env=env)
        assert failing.returncode == 1, failing.stderr  # the feed failed

        # A wrong Connect key (401), a wrong CRM token (401).
        wrong_key = seen.run("sync", env={**env, "SYNCD_CONNECT_API_KEY": WRONG_CONNECT_KEY})
        assert wrong_key.returncode == 1, wrong_key.stderr
        wrong_token = seen.run("sync", env={**env, "SYNCD_HUBSPOT_TOKEN": WRONG_HUBSPOT_TOKEN})
        assert wrong_token.returncode != 0
        assert "401" in wrong_token.stderr
        seen.run("check", env={**env, "SYNCD_HUBSPOT_TOKEN": WRONG_HUBSPOT_TOKEN})

        settings = load_settings(
            database_url=secret_url,
            connect_url=env["SYNCD_CONNECT_URL"],
            connect_api_key=CONNECT_KEY,
            hubspot_url=hubspot_server.url,
            hubspot_token=HUBSPOT_TOKEN,
        )
        reprs(seen, settings)

    seen.database(engine)
    errors = seen.texts["sync_runs.error"]
    assert "ECHO" in seen.texts["sync_ledger.message"]  # the echoed errors were stored...
    assert "401" in errors  # ... and the wrong key's failure
    assert not seen.leaks({**SECRETS, "database URL": secret_url})


def reprs(seen: Seen, settings: Settings) -> None:
    """The reprs (and str) of the settings, the engine and the clients built from them."""
    seen.texts["repr(settings)"] = repr(settings)
    seen.texts["str(settings)"] = str(settings)
    seen.texts["settings as JSON"] = settings.model_dump_json()
    built = bootstrap.engine(settings)
    seen.texts["repr(engine)"] = f"{built!r} {built.url!s} {built.url!r}"
    built.dispose()
    with bootstrap.connect_client(settings) as client:
        seen.texts["repr(connect client)"] = repr(client)
    crm = bootstrap.crm(settings, bootstrap.mapping(settings))
    seen.texts["repr(crm)"] = f"{crm!r} {vars(crm)!r}"
    getattr(crm, "close", lambda: None)()


def test_no_secret_in_output_logs_database_or_reprs_with_salesforce(
    secret_url: str, engine: Engine
) -> None:
    connect = ConnectSim(CONNECT_KEY)
    connect.seed(9, accounts=30, capability_on_ratio=1.0)
    # The configured access token has expired: syncd refreshes it with the refresh token.
    salesforce = SalesforceSim(
        "00Dsim-first-token-0000",
        refresh_token=SALESFORCE_REFRESH,
        client_id="syncd-e2e",
        client_secret=SALESFORCE_CLIENT_SECRET,
    )
    seen = Seen()
    with SimServer(connect) as connect_server, SimServer(salesforce) as salesforce_server:
        env = {
            **base_env(secret_url, f"{connect_server.url}/public/v1"),
            "SYNCD_CRM": "salesforce",
            "SYNCD_SALESFORCE_URL": salesforce_server.url,
            "SYNCD_SALESFORCE_TOKEN": SALESFORCE_TOKEN,
            "SYNCD_SALESFORCE_REFRESH_TOKEN": SALESFORCE_REFRESH,
            "SYNCD_SALESFORCE_CLIENT_ID": "syncd-e2e",
            "SYNCD_SALESFORCE_CLIENT_SECRET": SALESFORCE_CLIENT_SECRET,
        }
        first = seen.run("sync", env=env)
        assert first.returncode == 0, first.stderr
        assert salesforce.token_grants >= 1
        assert seen.run("resync", "--dry-run", env=env).returncode == 0
        assert seen.run("status", "--json", env=env).returncode == 0
        seen.run("check", env=env)

        # The refresh token revoked: the 401 cannot be cured, the run fails.
        granted = set(salesforce.tokens) - {"00Dsim-first-token-0000"}
        salesforce.revoke_refresh_token()
        salesforce.expire_token()
        failing = seen.run("sync", env=env)
        assert failing.returncode != 0
        assert "401" in failing.stderr or "invalid_grant" in failing.stderr

        settings = load_settings(
            database_url=secret_url,
            connect_api_key=CONNECT_KEY,
            crm="salesforce",
            salesforce_url=salesforce_server.url,
            salesforce_token=SALESFORCE_TOKEN,
            salesforce_refresh_token=SALESFORCE_REFRESH,
            salesforce_client_id="syncd-e2e",
            salesforce_client_secret=SALESFORCE_CLIENT_SECRET,
        )
        reprs(seen, settings)

    seen.database(engine)
    issued = {f"access token {i}": token for i, token in enumerate(sorted(granted))}
    assert not seen.leaks({**SECRETS, **issued, "database URL": secret_url})


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_no_secret_when_postgres_is_unreachable_with_a_url_holding_the_password() -> None:
    url = f"postgresql+psycopg://syncd:{PG_PASSWORD}@127.0.0.1:{closed_port()}/syncd"
    env = {
        "SYNCD_DATABASE_URL": url,
        "SYNCD_CONNECT_URL": "http://127.0.0.1:9/public/v1",
        "SYNCD_CONNECT_API_KEY": CONNECT_KEY,
        "SYNCD_HUBSPOT_TOKEN": HUBSPOT_TOKEN,
        "SYNCD_LOG_LEVEL": "DEBUG",
    }
    seen = Seen()
    for args in (
        ("sync",),
        ("resync", "--dry-run"),
        ("status",),
        ("status", "--json"),
        ("accounts", "list"),
        ("db", "current"),
        ("check",),
    ):
        result = seen.run(*args, env=env)
        assert result.returncode != 0, (args, result.stdout)
    sync_err = seen.texts["syncd sync #0 stderr"]
    assert "command_failed" in sync_err
    assert "connection" in sync_err.lower()  # the driver's reason is kept, masked
    # A URL that does not parse: the configuration error names the setting, not the value.
    unparsable = f"postgresql+psycopg://syncd:{PG_PASSWORD}@127.0.0.1:port/syncd"
    broken = seen.run("status", env={**env, "SYNCD_DATABASE_URL": unparsable})
    assert broken.returncode == 2
    assert "SYNCD_DATABASE_URL" in broken.stderr

    assert not seen.leaks({**SECRETS, "database URL": url, "unparsable URL": unparsable})
