"""The dashboard views answer on a populated database, and say why a TAR is still pending."""

from __future__ import annotations

from sqlalchemy import Engine, text

from syncd.connect.client import ConnectClient
from syncd.crm.memory import MemoryCrm
from syncd.domain.mapping import default_mapping
from syncd.sim.connect import ConnectSim
from syncd.sync.cycle import run_cycle
from syncd.sync.pull import PullOptions


def test_the_views_answer_after_a_cycle(
    engine: Engine, sim: ConnectSim, client: ConnectClient
) -> None:
    sim.seed(4, accounts=40)
    mapping = default_mapping("hubspot")
    run_cycle(engine, client, PullOptions(), crm=MemoryCrm.for_mapping(mapping), mapping=mapping)

    with engine.connect() as conn:
        pending = conn.execute(text("SELECT * FROM v_pending_tars")).mappings().all()
        accounts = conn.execute(text("SELECT * FROM v_account_sync")).mappings().all()
        runs = conn.execute(text("SELECT * FROM v_run_summary")).mappings().all()

    assert len(accounts) == len(sim.accounts)
    assert len(pending) == sum(1 for t in sim.tars.values() if t.status == "pending")
    assert all(row["why_pending"] for row in pending)
    assert runs[0]["outcome"] in ("success", "partial")
    assert runs[0]["pull_seconds"] is not None
