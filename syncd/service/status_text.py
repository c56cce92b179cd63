"""The human form of `syncd status`: a few short lines per section of `status.collect`."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def render(data: dict[str, Any]) -> list[str]:
    """The lines of the human form of `collect`'s document."""
    lines = [f"syncd status at {_moment(data['generated_at'], zone=True)}"]
    lines += _render_daemons(data["daemons"])
    lines.append("last runs:")
    lines += [_render_run(run) for run in data["runs"]] or ["  none yet"]
    lines += _render_backlog(data["backlog"])
    lines += _render_failures(data["failures"])
    flags = data["flags"]
    requests = ", ".join(f"{n} {status}" for status, n in data["requests"].items()) or "none"
    lines.append(f"accounts mirrored: {data['accounts']}; tier account requests: {requests}")
    lines.append(
        f"sync flags: {flags['on']} on ({_sources(flags['on_by_source'])}), "
        f"{flags['off']} off ({_sources(flags['off_by_source'])}), "
        f"{flags['undecided']} not decided yet"
    )
    return lines


def _render_daemons(daemons: list[dict[str, Any]] | None) -> list[str]:
    if daemons is None:
        return []
    if not daemons:
        return ["daemons: none has run against this database"]
    lines = ["daemons:"]
    for d in daemons:
        last = f", last run #{d['last_run_id']}" if d.get("last_run_id") else ""
        lines.append(
            f"  {d['instance']} (pid {d['pid']}, {d.get('version') or '?'}): {d['state']}, "
            f"last beat {_age(d['age_seconds'])} ago{last}"
        )
    return lines


def _render_run(run: dict[str, Any]) -> str:
    c = run["counts"]
    parts = [f"pulled {c['requests_mirrored'] or 0} TARs, {c['accounts_mirrored'] or 0} accounts"]
    if c["malformed"]:
        parts[0] += f", {c['malformed']} malformed"
    if c["crm_created"] is not None:
        failed = (c["crm_rejected"] or 0) + (c["crm_retry"] or 0) + (c["crm_unknown"] or 0)
        parts.append(
            f"CRM {c['crm_created']} created, {c['crm_updated']} updated"
            + (f", {failed} failed" if failed else "")
        )
    if c["tars_accepted"] is not None:
        parts.append(f"TARs {c['tars_accepted']} accepted, {c['tars_ignored']} ignored")
    parts.append(f"{c['connect_requests'] or 0} Connect requests")
    line = (
        f"  #{run['id']:<5} {run['kind']:<7} {run['trigger']:<9} {run['outcome']:<8} "
        f"{_moment(run['started_at'])} {_age(run['seconds']):>7}  {'; '.join(parts)}"
    )
    if run["error"]:
        line += f"\n         error: {run['error']}"
    return line


def _render_backlog(b: dict[str, Any]) -> list[str]:
    pending = f"  pending TARs: {b['pending_tars']}"
    if b["pending_tars"]:
        reasons = ", ".join(f"{n} {why}" for why, n in b["pending_tars_by_reason"].items())
        pending += f", oldest {_age(b['oldest_pending_age_seconds'])} ({reasons})"
    actions = ", ".join(f"{n} {state}" for state, n in b["connect_actions"].items())
    waiting = f"  CRM writes waiting: {b['crm_retry']} to retry, {b['crm_unknown']} to read back"
    if b["next_retry_at"] is not None:
        waiting += f" (next at {_moment(b['next_retry_at'])})"
    return [
        "backlog:",
        pending,
        f"  accounts behind the CRM: {b['accounts_behind']} with sync on "
        f"({b['accounts_behind_sync_off']} with sync off are left alone)",
        waiting,
        f"  Connect actions not settled: {actions or 'none'}",
    ]


def _render_failures(f: dict[str, Any]) -> list[str]:
    last_day = ", ".join(f"{n} {kind}" for kind, n in f["last_day"].items()) or "none"
    u = f["unsettled"]
    lines = [
        "failures:",
        f"  last 24 hours: {last_day}",
        f"  unsettled now: {u['crm_rejected']} refused by the CRM, {u['crm_retry']} to retry, "
        f"{u['crm_unknown']} outcome unknown, {u['connect_failed']} Connect actions refused",
    ]
    lines += [f"    {e['accounts']:>5} x {e['error']}" for e in f["top_errors"]]
    return lines


def _sources(by_source: dict[str, int]) -> str:
    return ", ".join(f"{n} {source}" for source, n in by_source.items() if n) or "-"


def _moment(value: datetime | None, zone: bool = False) -> str:
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M:%S" + (" %Z" if zone else "")).strip()


def _age(seconds: float | None) -> str:
    """`42s`, `3m 20s`, `5h 02m`, `2d 04h`."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86_400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86_400}d {whole % 86_400 // 3600:02d}h"
