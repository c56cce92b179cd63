"""`syncd sync` and `syncd resync`: one cycle now, through the same code path as the daemon.

`--dry-run` swaps the writer, not the logic: the plan is computed as for a real cycle (the pull
still refreshes syncd's own mirror) and printed instead of being written to the CRM.
"""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from dataclasses import asdict
from typing import Any

from syncd import bootstrap
from syncd.config import Settings
from syncd.service.locking import LockBusy, writer_lock
from syncd.service.progress import ProgressReporter
from syncd.service.progress_mark import EVERY, ProgressMark
from syncd.store import migrate
from syncd.store.links import Selection
from syncd.sync.cycle import CycleResult, run_cycle
from syncd.sync.push import PlanReport, PushOptions

EXIT_LOCK_BUSY = 1


def run_once(
    settings: Settings,
    *,
    kind: str,
    selection: Selection,
    dry_run: bool,
    as_json: bool,
    reconcile: bool = False,
    wait: bool = True,
) -> int:
    """Run one cycle under the writer lock and print its outcome (or its plan); return the
    exit code. Without `wait`, exit 1 at once when another process holds the lock."""
    engine = bootstrap.engine(settings)
    try:
        migrate.require_current(engine)
        fields = bootstrap.mapping(settings)
        with ExitStack() as stack:
            budget = bootstrap.retry_budget(settings)  # shared by both clients
            client = stack.enter_context(bootstrap.connect_client(settings, budget=budget))
            crm = bootstrap.checked_crm(settings, fields, budget=budget)
            stack.callback(getattr(crm, "close", lambda: None))
            locked = stack.enter_context(writer_lock(engine, wait=wait, command=kind))
            # Progress on stderr (a bar on a terminal); the outcome goes to stdout.
            reporter = stack.enter_context(ProgressReporter(kind, sys.stderr))
            result = run_cycle(
                engine,
                client,
                bootstrap.pull_options(settings),
                kind=kind,
                trigger="manual",
                reconcile=reconcile,
                crm=crm,
                mapping=fields,
                push=PushOptions(selection=selection, dry_run=dry_run),
                sync_default=settings.sync_default == "on",
                disabled_tar_policy=settings.disabled_tar_policy,
                writeback_concurrency=settings.writeback_concurrency,
                progress=reporter.phase_started,
                # A daemon standing by stays ready while this run makes progress.
                should_stop=ProgressMark.on(engine, EVERY).watch(locked.should_stop),
                retry_budget=budget,
            )
            locked.finish(result)
        if dry_run and result.push is not None:
            print_plan(result.push.report, as_json)
        else:
            print_result(result, as_json)
        return result.exit_code
    except LockBusy as exc:
        print(f"syncd {kind}: {exc}", file=sys.stderr)
        return EXIT_LOCK_BUSY
    finally:
        engine.dispose()


def print_result(result: CycleResult, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                {
                    "run": result.run_id,
                    "outcome": result.outcome,
                    "error": result.error,
                    "counts": result.counts,
                },
                default=str,
            )
        )
        return
    line = f"run {result.run_id}: {result.outcome}"
    push = result.counts.get("push")
    if push:
        line += (
            f"; {push['created']} created, {push['updated']} updated, "
            f"{push['unchanged']} unchanged, {push['rejected']} rejected, "
            f"{push['retry']} to retry, {push['unknown']} unknown"
        )
    print(line + (f" ({result.error})" if result.error else ""))


def print_plan(report: PlanReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(asdict(report), default=str, indent=2))
        return
    print(
        f"plan: {len(report.creates)} to create, {len(report.updates)} to update, "
        f"{report.unchanged} unchanged, {len(report.conflicts)} conflicts (nothing written)"
    )
    rows: list[tuple[str, ...]] = [("account", "action", "field", "new value")]
    rows += [(key, "create", "", "") for key in report.creates]
    for key, changes in report.updates.items():
        rows += [(key, "update", name, _show(value)) for name, value in sorted(changes.items())]
    for conflict in report.conflicts:
        rows.append(
            (
                conflict["account"],
                f"conflict ({conflict['resolution']})",
                f"{conflict['object']}.{conflict['field']}",
                f"CRM {_show(conflict['crm_value'])} / Connect {_show(conflict['wanted'])}",
            )
        )
    if len(rows) > 1:
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def _show(value: Any) -> str:
    text = "" if value is None else str(value).replace("\n", "\\n")
    return text if len(text) <= 40 else text[:37] + "..."
