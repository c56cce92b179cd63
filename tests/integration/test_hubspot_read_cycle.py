"""A cycle whose HubSpot read gets an answer of another shape: that batch waits, the rest lands.

The accounts of the batch whose read cannot be read are recorded to retry with the reason, and
nothing is written for them: an unreadable read taken for "no record" would create them again, or
write every field over the CRM's. The other batches land, and the next cycle settles the batch
without a duplicate.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, select

from syncd.connect.client import ConnectClient
from syncd.crm.hubspot import HubSpotAdapter
from syncd.domain.mapping import Mapping, default_mapping
from syncd.retry import RetryPolicy
from syncd.sim.base import Fault, SimServer
from syncd.sim.connect import ConnectSim
from syncd.sim.hubspot import HubSpotSim
from syncd.store.schema import crm_links, sync_ledger
from syncd.sync.cycle import CycleResult, run_cycle
from syncd.sync.pull import PullOptions

TOKEN = "read-cycle-token"
INSTANT = RetryPolicy(attempts=3, max_seconds=5, sleep=lambda _: None)
STAMP = "2026-01-01T00:00:00.000Z"
WRITES = r"batch/(create|upsert|associate)"
COMPANIES = "/crm/v3/objects/companies/batch/read"
CONTACTS = "/crm/v3/objects/contacts/batch/read"
LINKS = "/crm/v4/associations/companies/contacts/batch/read"
PROBLEMS = ("malformed", "error", "retry", "unknown", "rejected", "failed")
"""Ledger outcomes that report a problem."""


def answer(*results: Any, **extra: Any) -> dict[str, Any]:
    return {"status": "COMPLETE", "results": list(results), "startedAt": STAMP, **extra}


ODD = [
    pytest.param(
        COMPANIES,
        200,
        answer({"properties": {"name": "No id"}}),
        "`results[0].id`",
        id="company_without_id",
    ),
    pytest.param(
        COMPANIES,
        207,
        answer(errors=[{"category": "INTERNAL_ERROR", "message": "Something went wrong"}]),
        "could not read 1 of the records asked for",
        id="company_read_failed_by_hubspot",
    ),
    pytest.param(
        LINKS, 200, answer({"from": {"id": "1001"}}), "`results[0].to`, a list", id="links_no_to"
    ),
    pytest.param(
        CONTACTS,
        200,
        answer({"id": "1002", "properties": ["email"]}),
        "`results[0].properties`, an object, got a list",
        id="contact_properties_a_list",
    ),
]


@dataclass
class Crm:
    sim: HubSpotSim
    server: SimServer
    adapter: HubSpotAdapter
    mapping: Mapping


@pytest.fixture
def crm() -> Iterator[Crm]:
    sim = HubSpotSim(TOKEN, limits=None, custom_properties=True)
    mapping = default_mapping("hubspot")
    with (
        SimServer(sim) as server,
        HubSpotAdapter.for_mapping(server.url, TOKEN, mapping, retry=INSTANT, timeout=10) as made,
    ):
        yield Crm(sim, server, made, mapping)


def cycle(engine: Engine, client: ConnectClient, crm: Crm) -> CycleResult:
    return run_cycle(engine, client, PullOptions(), crm=crm.adapter, mapping=crm.mapping)


def push_problems(engine: Engine, run_id: int) -> list[Any]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(sync_ledger).where(
                sync_ledger.c.run_id == run_id,
                sync_ledger.c.phase == "push",
                sync_ledger.c.outcome.in_(PROBLEMS),
            )
        )
        return list(rows.all())


def link_states(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(select(crm_links.c.account_id, crm_links.c.state)).all()
    return {account_id: state for account_id, state in rows}


def email_of(sim: ConnectSim, account_id: str) -> str:
    return str(sim.account(account_id)["contact_info"]["contact"]["email"]).lower()


@pytest.mark.parametrize(("path", "status", "body", "fragment"), ODD)
def test_an_unreadable_read_leaves_its_batch_to_retry_unwritten_and_the_rest_lands(
    engine: Engine,
    sim: ConnectSim,
    client: ConnectClient,
    crm: Crm,
    path: str,
    status: int,
    body: Any,
    fragment: str,
) -> None:
    sim.seed(16, accounts=3)
    accounts = sorted(sim.accounts)
    assert cycle(engine, client, crm).outcome == "success"
    for account_id in accounts:  # a contact change: the read takes the contacts too
        sim.change_account(account_id, contact_info={"contact": {"first_name": "Renata"}})
    crm.server.faults.inject(Fault(status=status, body=body, match=f"^POST {path}\\?"))
    crm.server.clear_log()
    crm.adapter.batch_size = 1  # one account a batch: the answer spoils one batch

    second = cycle(engine, client, crm)

    assert crm.server.faults.pending() == 0, "the odd answer was served"
    assert second.outcome == "partial", second.error
    [problem] = push_problems(engine, second.run_id)
    assert problem.error_kind == "crm_retry"
    assert f"reading the CRM failed: HubSpot POST {path}: " in problem.message
    assert fragment in problem.message, problem.message
    unread = problem.object_id
    assert link_states(engine) == {a: "retry" if a == unread else "synced" for a in accounts}
    written = b" ".join(r.body for r in crm.server.requests_matching("POST", WRITES))
    assert unread.encode() not in written, "nothing was written for the unread account"
    assert email_of(sim, unread).encode() not in written

    third = cycle(engine, client, crm)

    assert third.outcome == "success", third.error
    assert push_problems(engine, third.run_id) == []
    assert len(crm.sim.companies.records) == len(accounts), "no company twice"
    for account_id in accounts:
        company = crm.sim.company(account_id)
        assert company is not None
        [contact] = crm.sim.company_contacts(company)
        assert contact.value("email") == email_of(sim, account_id)
        assert contact.value("firstname") == "Renata"
