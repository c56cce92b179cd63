"""The side-by-side benchmarks (bench/scenarios.py) at a tiny size, so that they cannot rot.

Each scenario runs as the command a person runs, on the tests' Postgres, and must complete and
report what each contestant asked of each system. Times are printed by the benchmark, never
checked here: they mean nothing at this size and on a shared machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.pg import PgServer

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "bench" / "scenarios.py"

pytest.importorskip("connect.client", reason="the official Connect client (a dev dependency)")
pytest.importorskip("hubspot", reason="the official HubSpot client (a dev dependency)")

pytestmark = pytest.mark.slow


def run_scenario(name: str, results: Path, pg_server: PgServer, *options: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(SCENARIOS), name, "--scale", "smoke", "--results", str(results),
         "--pg-url", pg_server.url, *options],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result: dict[str, Any] = json.loads((results / f"{name}.json").read_text())
    return result


def requests(run: dict[str, Any], system: str) -> dict[str, int]:
    counts: dict[str, int] = run["requests"][system]["by_endpoint"]
    return counts


def test_resync_scenario_reports_each_contestants_connect_requests(
    tmp_path: Path, pg_server: PgServer
) -> None:
    result = run_scenario("resync100k", tmp_path, pg_server, "--latency", "0")
    syncd, official, tuned = result["runs"]
    assert syncd["output"]["outcome"] == "success"
    assert requests(syncd, "connect").get("GET /tier/accounts", 0) >= 1
    # 300 accounts: three pages at the official client's default 100, one at 1000.
    assert requests(official, "connect") == {"GET /tier/accounts": 3}
    assert requests(tuned, "connect") == {"GET /tier/accounts": 1}
    assert official["output"]["records"] == tuned["output"]["records"] == 300
    assert all(run["peak_rss_mb"] > 0 for run in result["runs"])
    assert {t["name"] for t in result["targets"]} >= {"speed-up over the official client"}


def test_tars_scenario_settles_every_tar_with_both_contestants(
    tmp_path: Path, pg_server: PgServer
) -> None:
    result = run_scenario("tars10k", tmp_path, pg_server, "--accounts", "12", "--latency", "0")
    syncd, naive = result["runs"]
    for run in (syncd, naive):
        assert requests(run, "connect")["POST /tier/account-requests/{id}/accept"] == 12
        assert run["requests"]["crm"]["by_kind"]["write"] >= 1
    # The per-TAR script: one look-up and one write per TAR, nothing batched.
    assert requests(naive, "crm") == {
        "GET /crm/v3/objects/companies/{id}": 12,
        "POST /crm/v3/objects/companies/batch/create": 12,
    }
    assert result["setup"]["after"] == {"pending": 0, "companies": 12, "contacts": 12}


def test_idle_and_memory_scenarios_report_requests_per_cycle(
    tmp_path: Path, pg_server: PgServer
) -> None:
    idle = run_scenario("idle", tmp_path, pg_server, "--accounts", "50", "150", "--cycles", "1")
    assert [run["name"] for run in idle["runs"]] == [
        f"{label}, {size} accounts"
        for size in (50, 150)
        for label in ("settling cycle", "idle cycle, new process", "2 idle cycles, one process")
    ]
    for size in ("50", "150"):
        measured = idle["setup"][size]
        assert measured["crm_writes"] == 0
        assert measured["connect_requests"] >= 1
        assert measured["fill"]["accounts"] == int(size)
    daemon = idle["runs"][2]
    assert [c["outcome"] for c in daemon["output"]["cycles"]] == ["success", "success"]
    memory = run_scenario("memory", tmp_path, pg_server, "--accounts", "100")
    (run,) = memory["runs"]
    assert run["output"]["outcome"] == "success"
    assert run["requests"]["connect"]["total"] >= 1
    assert run["peak_rss_mb"] > 0
