"""The per-record ledger (`syncd.store.runs.record`) on a real Postgres."""

from __future__ import annotations

from sqlalchemy import Engine, select

from syncd.store.runs import PAYLOAD_MAX, LedgerEntry, record, start_run
from syncd.store.schema import sync_ledger


def test_a_batch_of_entries_keeps_its_order_nulls_text_and_payloads(engine: Engine) -> None:
    run_id = start_run(engine, "sync", "manual")
    entries = [
        LedgerEntry("tier_account", f"TA-{i}", "push", "created", message=f"name, city {i}")
        for i in range(300)
    ]
    entries[7] = LedgerEntry(
        "tier_account",
        None,
        "push",
        "rejected",
        "crm_rejected",
        'Ærø "quoted" \\ {brace}, [x]',
        payload={"id": "TA-7", "note": "nul \x00 here"},
    )
    entries[8] = LedgerEntry("page", None, "pull", "malformed", "json", None, payload="<html>")
    entries[9] = LedgerEntry(
        "tier_account", "TA-9", "push", "updated", payload="x" * (PAYLOAD_MAX + 5)
    )

    with engine.begin() as conn:
        record(conn, run_id, entries)
        record(conn, None, [])
    with engine.connect() as conn:
        rows = conn.execute(select(sync_ledger).order_by(sync_ledger.c.id)).all()

    assert [(r.object_id, r.outcome) for r in rows] == [(e.object_id, e.outcome) for e in entries]
    assert {r.run_id for r in rows} == {run_id}
    bad = rows[7]
    assert (bad.error_kind, bad.message) == ("crm_rejected", 'Ærø "quoted" \\ {brace}, [x]')
    assert bad.payload == '{"id": "TA-7", "note": "nul \\u0000 here"}'
    assert (rows[8].object_id, rows[8].message, rows[8].payload) == (None, None, "<html>")
    assert rows[9].payload.startswith("x" * PAYLOAD_MAX + "... [cut:")
    assert (rows[0].error_kind, rows[0].payload, rows[0].message) == (None, None, "name, city 0")


def test_entries_without_a_run_or_any_optional_value_are_kept(engine: Engine) -> None:
    with engine.begin() as conn:
        record(conn, None, [LedgerEntry("tier_account", "TA-1", "push", "unknown")])
    with engine.connect() as conn:
        row = conn.execute(select(sync_ledger)).one()

    assert (row.run_id, row.object_id, row.error_kind, row.message, row.payload) == (
        None,
        "TA-1",
        None,
        None,
        None,
    )
    assert row.at is not None
