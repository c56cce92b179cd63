"""`syncd status`: the last runs, the daemons, the backlog, the failures and the sync flags.

Read from the dashboard views (`v_run_summary`, `v_pending_tars`) and a few counts of the
tables; `daemon_heartbeats` is read only where it exists (schema 0005 and later). The accounts
behind (`v_account_sync.behind`) are counted as the backlog gauges count them
(`syncd.service.metrics_db`): the same numbers, without reading every account and link.
The human form is `syncd.service.status_text`. `--json` prints the same content with these keys
(stable; times are ISO 8601, durations and ages in seconds):

- `format`: 1; `generated_at`: the database's clock;
- `accounts`: accounts mirrored; `requests`: mirrored TARs by status;
- `runs`: newest first, each `id`, `kind`, `trigger`, `outcome`, `started_at`, `finished_at`,
  `seconds` (so far, for a run still running), `error`, and `counts` (`requests_mirrored`,
  `accounts_mirrored`, `malformed`, `crm_created`, `crm_updated`, `crm_unchanged`,
  `crm_rejected`, `crm_retry`, `crm_unknown`, `conflicts`, `tars_accepted`, `tars_ignored`,
  `connect_requests`; null for a phase that did not run);
- `daemons`: null when the table does not exist, else one object per instance, newest beat
  first: `instance`, `host`, `pid`, `version`, `state`, `started_at`, `beat_at`, `age_seconds`,
  `last_run_id`;
- `backlog`: `pending_tars`, `oldest_pending_tar_at`, `oldest_pending_age_seconds`,
  `pending_tars_by_reason` (the view's `why_pending` up to its first colon), `accounts_behind`
  (mirrored version newer than the synced one, sync on), `accounts_behind_sync_off`,
  `crm_retry`, `crm_unknown` (CRM writes waiting for their retry or read-back),
  `next_retry_at`, `connect_actions` (write-back actions not settled, by outbox state);
- `failures`: `last_day` (ledger outcomes of failure in the runs of the last 24 hours, by
  error kind), `unsettled` (`crm_rejected`, `crm_retry`, `crm_unknown`, `connect_failed`:
  records in that state now), `top_errors` (the CRM's most frequent reasons among them,
  `error` and `accounts`);
- `flags`: `on`, `off`, `undecided`, and `on_by_source` / `off_by_source` (`override`,
  `capability`, `default`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, text

from syncd.service.metrics_db import ACCOUNTS_BEHIND
from syncd.service.status_text import render

FORMAT = 1
RUN_COUNTS = (
    "requests_mirrored",
    "accounts_mirrored",
    "malformed",
    "crm_created",
    "crm_updated",
    "crm_unchanged",
    "crm_rejected",
    "crm_retry",
    "crm_unknown",
    "conflicts",
    "tars_accepted",
    "tars_ignored",
    "connect_requests",
)
FAILED_OUTCOMES = ("error", "malformed", "rejected", "retry", "unknown", "failed")
ERROR_WIDTH = 160
"""Characters of a CRM error kept in `top_errors` (they quote the record's values)."""
HEARTBEAT_COLUMNS = ("instance", "host", "pid", "version", "state", "started_at", "beat_at")

# `v_account_sync`'s `behind`, counted as the backlog gauges count it (`syncd.service.metrics_db`)
# rather than over every account and link: with sync on, over the push's queue (every such
# account is marked there); with sync off or undecided, over those accounts only, which the
# partial index `ix_tier_accounts_sync_off` (its predicate written as here) lists.
BEHIND_COUNTS = {
    "accounts_behind": text(ACCOUNTS_BEHIND),
    "accounts_behind_sync_off": text(
        "SELECT count(*) FROM tier_accounts a LEFT JOIN crm_links l ON l.account_id = a.id "
        "WHERE a.sync_enabled IS NOT TRUE "
        "AND (l.synced_version IS NULL OR l.synced_version < a.version)"
    ),
}
# The states of `crm_links` other than `synced` (its CHECK constraint), named rather than
# `<> 'synced'`, so that the few links left unsettled are read through `ix_crm_links_state`.
UNSETTLED_STATES = ("retry", "rejected", "unknown")


def collect(engine: Engine, runs: int = 5) -> dict[str, Any]:
    """Everything `syncd status` shows, as the JSON document described in the module doc."""
    with engine.connect() as conn:
        now = conn.execute(text("SELECT now()")).scalar_one()
        requests: dict[str, int] = dict(
            conn.execute(
                text("SELECT status, count(*) FROM tier_account_requests GROUP BY status")
            ).all()
        )
        return {
            "format": FORMAT,
            "generated_at": now,
            "accounts": conn.execute(text("SELECT count(*) FROM tier_accounts")).scalar_one(),
            "requests": {str(k): int(v) for k, v in sorted(requests.items())},
            "runs": _runs(conn, runs),
            "daemons": _daemons(conn),
            "backlog": _backlog(conn),
            "failures": _failures(conn),
            "flags": _flags(conn),
        }


def _runs(conn: Connection, limit: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        text(
            "SELECT *, extract(epoch FROM coalesce(duration, now() - started_at)) AS seconds "
            "FROM v_run_summary ORDER BY run_id DESC LIMIT :limit"
        ),
        {"limit": max(limit, 0)},
    ).mappings()
    return [
        {
            "id": row["run_id"],
            "kind": row["kind"],
            "trigger": row["trigger"],
            "outcome": row["outcome"],
            "started_at": row["started_at"],
            "finished_at": row["finished_at"],
            "seconds": round(float(row["seconds"]), 3),
            "error": row["error"],
            "counts": {name: row[name] for name in RUN_COUNTS},
        }
        for row in rows
    ]


def _daemons(conn: Connection) -> list[dict[str, Any]] | None:
    """The heartbeat rows, or None when the table does not exist (a schema before 0005)."""
    if conn.execute(text("SELECT to_regclass('daemon_heartbeats')")).scalar_one() is None:
        return None
    rows = conn.execute(
        text(
            "SELECT *, extract(epoch FROM now() - beat_at) AS age_seconds "
            "FROM daemon_heartbeats ORDER BY beat_at DESC"
        )
    ).mappings()
    out = []
    for row in rows:
        # Read by name and only what is there: the table belongs to the daemon's migrations.
        item = {name: row.get(name) for name in HEARTBEAT_COLUMNS}
        age = row.get("age_seconds")
        item["age_seconds"] = round(float(age), 1) if age is not None else None
        item["last_run_id"] = row.get("last_run_id")
        out.append(item)
    return out


def _backlog(conn: Connection) -> dict[str, Any]:
    pending = conn.execute(
        text(
            "SELECT count(*) AS n, min(created_at) AS oldest, "
            "extract(epoch FROM now() - min(created_at)) AS age FROM v_pending_tars"
        )
    ).one()
    reasons = conn.execute(
        text(
            "SELECT split_part(why_pending, ':', 1) AS why, count(*) AS n FROM v_pending_tars "
            "GROUP BY 1 ORDER BY 2 DESC, 1"
        )
    ).all()
    behind = {name: int(conn.execute(sql).scalar_one()) for name, sql in BEHIND_COUNTS.items()}
    links = conn.execute(
        text(
            "SELECT count(*) FILTER (WHERE state = 'retry') AS retry, "
            "count(*) FILTER (WHERE state = 'unknown') AS unknown, "
            "min(next_attempt_at) AS next_at "
            "FROM crm_links WHERE state IN ('retry', 'unknown')"
        )
    ).one()
    outbox = conn.execute(
        text(
            "SELECT state, count(*) FROM connect_outbox "
            "WHERE state IN ('pending', 'sent', 'unknown') GROUP BY state ORDER BY state"
        )
    ).all()
    return {
        "pending_tars": int(pending.n),
        "oldest_pending_tar_at": pending.oldest,
        "oldest_pending_age_seconds": round(float(pending.age), 1) if pending.age else None,
        "pending_tars_by_reason": {str(why): int(n) for why, n in reasons},
        "accounts_behind": behind["accounts_behind"],
        "accounts_behind_sync_off": behind["accounts_behind_sync_off"],
        "crm_retry": int(links.retry),
        "crm_unknown": int(links.unknown),
        "next_retry_at": links.next_at,
        "connect_actions": {str(state): int(n) for state, n in outbox},
    }


def _failures(conn: Connection) -> dict[str, Any]:
    # By the runs of the last day, not the ledger's own time: the ledger is indexed by run.
    last_day = conn.execute(
        text(
            "SELECT coalesce(error_kind, outcome) AS kind, count(*) AS n FROM sync_ledger "
            "WHERE run_id IN (SELECT id FROM sync_runs WHERE started_at > now() - interval "
            "'1 day') AND outcome IN :outcomes GROUP BY 1 ORDER BY 2 DESC, 1"
        ).bindparams(bindparam("outcomes", expanding=True)),
        {"outcomes": list(FAILED_OUTCOMES)},
    ).all()
    states: dict[str, int] = dict(
        conn.execute(
            text(
                "SELECT state, count(*) FROM crm_links WHERE state IN :states GROUP BY state"
            ).bindparams(bindparam("states", expanding=True)),
            {"states": list(UNSETTLED_STATES)},
        ).all()
    )
    connect_failed = conn.execute(
        text("SELECT count(*) FROM connect_outbox WHERE state = 'failed'")
    ).scalar_one()
    top = conn.execute(
        text(
            "SELECT left(coalesce(last_error, '(no reason given)'), :width) AS error, "
            "count(*) AS n FROM crm_links WHERE state IN :states "
            "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5"
        ).bindparams(bindparam("states", expanding=True)),
        {"width": ERROR_WIDTH, "states": list(UNSETTLED_STATES)},
    ).all()
    return {
        "last_day": {str(kind): int(n) for kind, n in last_day},
        "unsettled": {
            "crm_rejected": int(states.get("rejected", 0)),
            "crm_retry": int(states.get("retry", 0)),
            "crm_unknown": int(states.get("unknown", 0)),
            "connect_failed": int(connect_failed),
        },
        "top_errors": [{"error": error, "accounts": int(n)} for error, n in top],
    }


def _flags(conn: Connection) -> dict[str, Any]:
    rows = conn.execute(
        text(
            "SELECT sync_enabled, coalesce(sync_source, 'default') AS source, count(*) "
            "FROM tier_accounts GROUP BY 1, 2"
        )
    ).all()
    sources = ("override", "capability", "default")
    on = dict.fromkeys(sources, 0)
    off = dict.fromkeys(sources, 0)
    undecided = 0
    for enabled, source, n in rows:
        if enabled is None:
            undecided += int(n)
        else:
            side = on if enabled else off
            side[source] = side.get(source, 0) + int(n)
    return {
        "on": sum(on.values()),
        "off": sum(off.values()),
        "undecided": undecided,
        "on_by_source": on,
        "off_by_source": off,
    }


# -- output ------------------------------------------------------------------------------------


def print_status(engine: Engine, as_json: bool = False, runs: int = 5) -> int:
    """Print the status (module doc); exit code 0."""
    data = collect(engine, runs)
    if as_json:
        print(json.dumps(data, default=_json_value, indent=2))
        return 0
    for line in render(data):
        print(line)
    return 0


def _json_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
