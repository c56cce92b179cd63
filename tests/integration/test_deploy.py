"""The Grafana dashboard and the systemd units work: every SQL query of the dashboard runs, as the
read-only role, on a database a real cycle filled; every PromQL expression names only syncd's
metrics; `systemd-analyze verify` accepts the units."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from syncd.connect.client import ConnectClient
from syncd.crm.memory import MemoryCrm
from syncd.domain.mapping import default_mapping
from syncd.pgcluster.admin import conninfo
from syncd.sim.connect import ConnectSim
from syncd.store.grants import grant_readonly
from syncd.sync.cycle import run_cycle
from syncd.sync.pull import PullOptions

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "syncd.json"
SYSTEMD = REPO / "deploy" / "systemd"

METRICS = {
    "syncd_cycles_total",
    "syncd_cycle_duration_seconds",
    "syncd_phase_duration_seconds",
    "syncd_records_total",
    "syncd_api_requests_total",
    "syncd_api_quota_remaining",
    "syncd_api_quota_limit",
    "syncd_pending_tars",
    "syncd_accounts_behind",
    "syncd_accounts_sync_off",
    "syncd_last_success_timestamp_seconds",
    "syncd_last_cycle_timestamp_seconds",
    "syncd_up",
    "syncd_writer",
}
"""The metric names syncd exports (fixed: dashboards and alerts outside the repo use them)."""
HISTOGRAMS = {"syncd_cycle_duration_seconds", "syncd_phase_duration_seconds"}
SERIES = METRICS | {h + s for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}
PROMQL_KEYWORDS = {"bool", "offset", "and", "or", "unless", "inf", "nan"}


def panels() -> list[dict[str, Any]]:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = []
    for panel in board["panels"]:
        found += [panel, *panel.get("panels", [])]
    return found


def targets(key: str) -> list[tuple[str, dict[str, Any]]]:
    return [(p["title"], t) for p in panels() for t in p.get("targets", []) if key in t]


def test_the_dashboard_imports_anywhere_and_its_panels_do_not_overlap() -> None:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in board["templating"]["list"]}
    found = panels()

    assert variables["DS_PROMETHEUS"]["type"] == variables["DS_POSTGRES"]["type"] == "datasource"
    assert len({p["id"] for p in found}) == len(found)
    cells = [
        (x, y)
        for p in found
        for x in range(p["gridPos"]["x"], p["gridPos"]["x"] + p["gridPos"]["w"])
        for y in range(p["gridPos"]["y"], p["gridPos"]["y"] + p["gridPos"]["h"])
    ]
    assert len(cells) == len(set(cells))
    assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in found)
    # Every data source is one of the two variables: nothing names a data source of ours.
    for p in found:
        for ref in [p.get("datasource"), *(t.get("datasource") for t in p.get("targets", []))]:
            assert ref is None or ref["uid"] in ("${DS_PROMETHEUS}", "${DS_POSTGRES}"), p["title"]


# --- PromQL --------------------------------------------------------------------------------


def promql_series(expr: str) -> list[str]:
    """The series an expression selects: identifiers that are not functions, keywords, labels."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    bare = re.sub(r"\{[^}]*\}", "", bare)  # label matchers
    bare = re.sub(r"\[[^\]]*\]", "", bare)  # ranges, [$__rate_interval]
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)
    names = []
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", bare):
        if bare[match.end() :].lstrip().startswith("(") or match.group() in PROMQL_KEYWORDS:
            continue  # a function or an aggregation
        names.append(match.group())
    return names


def test_the_promql_parser_finds_series_and_only_series() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, kind) (rate(syncd_cycle_duration_seconds_bucket"
        '{job=~"$job"}[$__rate_interval]))) / on (x) up > bool 1'
    )
    assert promql_series(expr) == ["syncd_cycle_duration_seconds_bucket", "up"]


def test_every_promql_expression_names_only_syncds_metrics() -> None:
    exprs = targets("expr")
    assert len(exprs) >= 10

    used: set[str] = set()
    for title, target in exprs:
        assert target["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, title
        series = promql_series(target["expr"])
        assert series, title
        assert set(series) <= SERIES, (title, set(series) - SERIES)
        used |= {re.sub(r"_(bucket|sum|count)$", "", s) for s in series}
    # The panels the dashboard promises: cycles, phases, API use and quota, the backlog, health.
    assert used == METRICS


# --- SQL -----------------------------------------------------------------------------------


def expand_macros(query: str) -> str:
    """What Grafana's PostgreSQL data source makes of the macros the dashboard uses (a day's
    range, 1 minute interval); any other macro is left, and fails the test."""
    query = re.sub(
        r"\$__timeFilter\(([^)]+)\)",
        r"\1 BETWEEN '2000-01-01T00:00:00Z' AND '2100-01-01T00:00:00Z'",
        query,
    )
    query = re.sub(
        r"\$__timeGroupAlias\(([^,]+),\s*\$__interval\)",
        r'floor(extract(epoch FROM \1) / 60) * 60 AS "time"',
        query,
    )
    assert "$" not in query, query
    return query


@pytest.fixture
def populated(engine: Engine, sim: ConnectSim, client: ConnectClient) -> Engine:
    """A database after a real cycle against the Connect simulator (no flag decided: every account
    pushed, every pending TAR left pending), plus a ledger entry and an open conflict, so that
    every panel has rows."""
    sim.seed(5, accounts=30)
    mapping = default_mapping("hubspot")
    crm = MemoryCrm.for_mapping(mapping)
    run_cycle(engine, client, PullOptions(), crm=crm, mapping=mapping)
    with engine.begin() as conn:
        run_id = conn.execute(text("SELECT max(id) FROM sync_runs")).scalar_one()
        conn.execute(
            text(
                "INSERT INTO sync_ledger (run_id, object_type, object_id, phase, outcome,"
                " error_kind, message) VALUES (:run, 'tier_account', 'TA-0000-0000-0001', 'push',"
                " 'rejected', 'validation', 'phone: not a phone number')"
            ),
            {"run": run_id},
        )
        conn.execute(
            text(
                "INSERT INTO crm_conflicts (run_id, account_id, object, field, connect_value,"
                " crm_value, resolution) VALUES (:run, 'TA-0000-0000-0001', 'account', 'city',"
                " 'Berlin', 'Munich', 'manual')"
            ),
            {"run": run_id},
        )
    return engine


@pytest.fixture
def reader(populated: Engine, database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection as a role given `grant_readonly`, as Grafana's data source would use."""
    role = f"grafana_{os.getpid()}"
    admin = conninfo(database_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'grafana'").format(sql.Identifier(role))
        )
    try:
        grant_readonly(populated, role)
        url = make_url(database_url).set(username=role, password="grafana")
        with psycopg.connect(conninfo(url.render_as_string(hide_password=False))) as conn:
            yield conn
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_every_dashboard_query_runs_as_the_read_only_role(
    reader: psycopg.Connection[Any],
) -> None:
    queries = targets("rawSql")
    assert len(queries) >= 8

    for title, target in queries:
        assert target["datasource"]["uid"] == "${DS_POSTGRES}", title
        try:
            cursor = reader.execute(expand_macros(target["rawSql"]))
        except psycopg.Error as exc:
            pytest.fail(f"{title}: {exc}")
        columns = [c.name for c in cursor.description or []]
        rows = cursor.fetchall()
        reader.rollback()
        assert rows, f"{title}: no row on a populated database"
        if target["format"] == "time_series":  # Grafana needs a "time" column first
            assert columns[0] == "time", title


# --- systemd -------------------------------------------------------------------------------


def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    syncd = str(Path(sys.executable).parent / "syncd")
    if not os.access(syncd, os.X_OK):
        pytest.skip("no installed `syncd` executable to stand in for /opt/syncd/bin/syncd")
    # verify insists that ExecStart's program exists: the copies run the installed syncd instead
    # of /opt/syncd/bin/syncd, the path the units assume. Nothing else is changed.
    names = ["syncd.service", "syncd-resync.service", "syncd-resync.timer"]
    for name in names:
        unit = (SYSTEMD / name).read_text(encoding="utf-8")
        (tmp_path / name).write_text(unit.replace("/opt/syncd/bin/syncd", syncd), encoding="utf-8")

    result = subprocess.run(
        [analyze, "verify", *(str(tmp_path / n) for n in names)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )

    # verify warns about unknown keys and bad values on stderr and still exits 0: both must be clean
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
