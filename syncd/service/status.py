"""`syncd status`: what the mirror holds and how the last runs went."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from syncd.store.runs import last_runs
from syncd.store.schema import sync_ledger, tier_account_requests, tier_accounts


def collect(engine: Engine, runs: int = 5) -> dict[str, Any]:
    with engine.connect() as conn:
        requests_by_status: dict[str, int] = dict(
            conn.execute(
                select(tier_account_requests.c.status, func.count()).group_by(
                    tier_account_requests.c.status
                )
            ).all()
        )
        accounts = conn.execute(select(func.count()).select_from(tier_accounts)).scalar_one()
        errors: dict[str | None, int] = dict(
            conn.execute(
                select(sync_ledger.c.error_kind, func.count())
                .where(sync_ledger.c.outcome.in_(("error", "malformed", "rejected")))
                .group_by(sync_ledger.c.error_kind)
            ).all()
        )
        recent = last_runs(conn, runs)
    return {
        "accounts": accounts,
        "requests": requests_by_status,
        "pending_requests": requests_by_status.get("pending", 0),
        "failures_by_kind": errors,
        "runs": recent,
    }


def _moment(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def print_status(engine: Engine, as_json: bool = False) -> int:
    data = collect(engine)
    if as_json:
        print(json.dumps(data, default=str, indent=2))
        return 0
    print(f"accounts mirrored: {data['accounts']}")
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(data["requests"].items())) or "none"
    print(f"tier account requests: {statuses}")
    failures = ", ".join(f"{k} {v}" for k, v in sorted(data["failures_by_kind"].items()))
    print(f"records failed: {failures or 'none'}")
    print("last runs:")
    for run in data["runs"]:
        pulled = run["counts"].get("pull", {})
        print(
            f"  #{run['id']:<5} {run['kind']:<9} {run['outcome']:<8} "
            f"{_moment(run['started_at'])} -> {_moment(run['finished_at'])}  "
            f"requests {pulled.get('requests_written', 0)} accounts "
            f"{pulled.get('accounts_written', 0)} malformed {pulled.get('malformed', 0)}"
            + (f"  error: {run['error']}" if run["error"] else "")
        )
    if not data["runs"]:
        print("  none yet")
    return 0
