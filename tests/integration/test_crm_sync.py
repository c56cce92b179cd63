"""Pull, plan and push against each CRM simulator over loopback, with a real Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from syncd import crashpoints
from syncd.connect.client import ConnectClient
from syncd.crm.hubspot import HubSpotAdapter
from syncd.crm.port import CrmPort
from syncd.crm.salesforce import SalesforceAdapter
from syncd.domain.mapping import Mapping, mapping_from_toml
from syncd.retry import RetryPolicy
from syncd.sim.base import LoggedRequest, SimServer
from syncd.sim.connect import ConnectSim
from syncd.sim.hubspot import HubSpotSim
from syncd.sim.salesforce import SalesforceSim
from syncd.store.schema import crm_conflicts, crm_links, sync_ledger
from syncd.sync.cycle import CycleResult, run_cycle
from syncd.sync.pull import PullOptions, PullPhase
from syncd.sync.push import PushCounts, PushOptions, PushPhase

TOKEN = "crm-test-token"
INSTANT = RetryPolicy(attempts=4, max_seconds=5, sleep=lambda _: None)

# The phone is owned by the CRM in these tests: edits made there are kept, not overwritten.
PHONE = {"source": "contact_info.contact.phone_number", "transform": "phone", "owner": "crm"}
OVERRIDES = {"hubspot": {"phone": PHONE}, "salesforce": {"Phone": PHONE}}


@dataclass
class Crm:
    name: str
    sim: Any
    server: SimServer
    adapter: CrmPort
    mapping: Mapping

    def key_of(self, account_id: str) -> Any:
        if self.name == "hubspot":
            return self.sim.company(account_id)
        return self.sim.account(account_id)

    def field(self, account_id: str, name: str) -> Any:
        record = self.key_of(account_id)
        if self.name == "hubspot":
            return record.value(name)
        return record[name]

    def edit(self, account_id: str, **fields: str) -> None:
        if self.name == "hubspot":
            self.sim.edit_company(account_id, **fields)
        else:
            self.sim.edit_account(account_id, **fields)

    def refuse_email(self, email: str) -> None:
        if self.name == "hubspot":
            self.sim.fail_email(email)
        else:
            self.sim.refuse_email(email)

    def count(self) -> int:
        if self.name == "hubspot":
            return len(self.sim.companies.records)
        return int(self.sim.count("Account"))

    def writes(self) -> list[LoggedRequest]:
        return [
            r
            for r in self.server.requests
            if r.method in ("POST", "PATCH", "PUT")
            and "search" not in r.path
            and "/query" not in r.path
            and "batch/read" not in r.path
        ]


@pytest.fixture(params=["hubspot", "salesforce"])
def crm(request: pytest.FixtureRequest) -> Iterator[Crm]:
    name: str = request.param
    mapping = mapping_from_toml(name, {"account": OVERRIDES[name]})
    account_fields = [f.target for f in mapping.account]
    contact_fields = [f.target for f in mapping.contact]
    if name == "hubspot":
        sim: Any = HubSpotSim(TOKEN, limits=None, custom_properties=True)
        with SimServer(sim) as server:
            adapter: Any = HubSpotAdapter(
                server.url,
                TOKEN,
                retry=INSTANT,
                company_fields=account_fields,
                contact_fields=contact_fields,
            )
            yield Crm(name, sim, server, adapter, mapping)
            adapter.close()
    else:
        sim = SalesforceSim(TOKEN)
        with SimServer(sim) as server:
            adapter = SalesforceAdapter(
                server.url,
                TOKEN,
                retry=INSTANT,
                account_fields=account_fields,
                contact_fields=contact_fields,
            )
            yield Crm(name, sim, server, adapter, mapping)
            adapter.close()


def cycle(engine: Engine, client: ConnectClient, crm: Crm) -> CycleResult:
    return run_cycle(engine, client, PullOptions(), crm=crm.adapter, mapping=crm.mapping)


def test_1000_accounts_are_created_then_100_changed_ones_updated(
    engine: Engine, sim: ConnectSim, client: ConnectClient, crm: Crm
) -> None:
    sim.seed(11, accounts=1000)

    first = cycle(engine, client, crm)
    assert first.outcome == "success", first.error
    assert first.counts["push"]["created"] == len(sim.accounts)
    assert crm.count() == len(sim.accounts)

    changed = sorted(sim.accounts)[::10][:100]
    for account_id in changed:
        sim.change_account(account_id, name=f"Changed {account_id}")
    second = cycle(engine, client, crm)
    assert second.outcome == "success", second.error
    assert second.counts["push"]["updated"] == 100
    wanted_name = "name" if crm.name == "hubspot" else "Name"
    assert all(crm.field(a, wanted_name) == f"Changed {a}" for a in changed)
    assert crm.count() == len(sim.accounts)


def test_the_cycle_after_a_push_makes_no_crm_write(
    engine: Engine, sim: ConnectSim, client: ConnectClient, crm: Crm
) -> None:
    sim.seed(12, accounts=150)
    cycle(engine, client, crm)
    crm.server.clear_log()

    again = cycle(engine, client, crm)

    assert again.outcome == "success"
    assert crm.writes() == []
    assert again.counts["push"]["planned"] == 0


def test_a_crash_between_the_crm_write_and_the_commit_leaves_no_duplicate(
    engine: Engine, sim: ConnectSim, client: ConnectClient, crm: Crm
) -> None:
    sim.seed(13, accounts=300)

    def killed() -> None:
        raise SystemExit("killed between the CRM write and the commit")

    crashpoints.install("push.after_crm_write", killed)
    with pytest.raises(SystemExit):
        cycle(engine, client, crm)
    crashpoints.reset()
    written_before = crm.count()
    assert written_before > 0

    rerun = cycle(engine, client, crm)

    assert rerun.outcome == "success", rerun.error
    assert crm.count() == len(sim.accounts)
    with engine.connect() as conn:
        synced = conn.execute(
            select(func.count()).select_from(crm_links).where(crm_links.c.state == "synced")
        ).scalar_one()
    assert synced == len(sim.accounts)


def test_one_invalid_email_in_a_batch_of_100_is_rejected_alone_and_again_next_cycle(
    engine: Engine, sim: ConnectSim, client: ConnectClient, crm: Crm
) -> None:
    sim.seed(14, accounts=100)
    bad = sorted(sim.accounts)[37]
    crm.refuse_email(sim.account(bad)["contact_info"]["contact"]["email"])

    first = cycle(engine, client, crm)

    assert first.outcome == "partial"
    assert first.counts["push"]["rejected"] == 1
    with engine.connect() as conn:
        link = conn.execute(select(crm_links).where(crm_links.c.account_id == bad)).one()
        done = conn.execute(
            select(func.count()).select_from(crm_links).where(crm_links.c.state == "synced")
        ).scalar_one()
    assert done == 99
    assert link.state == "rejected"
    assert "email" in (link.last_error or "").lower()

    second = cycle(engine, client, crm)
    assert second.counts["push"]["planned"] == 1
    assert second.counts["push"]["rejected"] == 1
    with engine.connect() as conn:
        reasons = (
            conn.execute(
                select(sync_ledger.c.message).where(
                    sync_ledger.c.object_id == bad, sync_ledger.c.outcome == "rejected"
                )
            )
            .scalars()
            .all()
        )
    assert len(reasons) == 2
    assert reasons[0] == reasons[1]


def test_crm_edits_are_overwritten_on_connect_owned_fields_and_kept_on_crm_owned_ones(
    engine: Engine, sim: ConnectSim, client: ConnectClient, crm: Crm
) -> None:
    sim.seed(15, accounts=5)
    cycle(engine, client, crm)
    account_id = sorted(sim.accounts)[2]
    city, phone = ("city", "phone") if crm.name == "hubspot" else ("BillingCity", "Phone")
    crm.edit(account_id, **{city: "Edited In The CRM", phone: "+1 555 0199"})
    sim.change_account(account_id, name="Changed In Connect")

    result = cycle(engine, client, crm)

    assert result.outcome == "success", result.error
    assert crm.field(account_id, city) != "Edited In The CRM"
    assert crm.field(account_id, phone) == "+1 555 0199"
    with engine.connect() as conn:
        conflicts = conn.execute(select(crm_conflicts)).all()
    assert [(c.field, c.crm_value, c.resolution) for c in conflicts] == [
        (city, "Edited In The CRM", "overwritten")
    ]


def reads(crm: Crm) -> list[LoggedRequest]:
    return [
        r
        for r in crm.server.requests
        if "/query" in r.path or r.path.endswith(("/batch/read", "/search"))
    ]


def push_alone(engine: Engine, client: ConnectClient, crm: Crm) -> PushCounts:
    """Pull, then push with the CRM's request log holding the push's requests alone (a cycle's
    write-back reads the CRM too)."""
    PullPhase(engine, client, PullOptions(), run_id=None).run()
    crm.server.clear_log()
    return PushPhase(engine, crm.adapter, crm.mapping, PushOptions(), run_id=None).run()


def test_new_accounts_take_one_read_and_two_writes_per_batch(
    engine: Engine, sim: ConnectSim, client: ConnectClient, crm: Crm
) -> None:
    sim.seed(16, accounts=200)
    batches = -(-len(sim.accounts) // crm.adapter.batch_size)

    counts = push_alone(engine, client, crm)

    assert counts.created == len(sim.accounts)
    assert len(reads(crm)) == batches
    # HubSpot: company upsert and contact create (linked inline); Salesforce: two Collections.
    # A contact key shared with an account of an earlier batch costs an upsert and a link more.
    shared = len(sim.accounts) - len(
        {sim.account(a)["contact_info"]["contact"]["email"].lower() for a in sim.accounts}
    )
    assert len(crm.writes()) <= 2 * batches + 2 * shared
    if crm.name == "hubspot":
        assert all(
            "associations" in i
            for r in crm.writes()
            if "create" in r.path
            for i in r.json()["inputs"]
        )


def test_an_update_of_account_fields_alone_reads_and_writes_only_the_accounts(
    engine: Engine, sim: ConnectSim, client: ConnectClient, crm: Crm
) -> None:
    sim.seed(17, accounts=150)
    cycle(engine, client, crm)
    with engine.connect() as conn:
        contacts_before = dict(
            conn.execute(select(crm_links.c.account_id, crm_links.c.contact_id)).all()
        )
    for account_id in sim.accounts:
        sim.change_account(account_id, name=f"Renamed {account_id}")

    counts = push_alone(engine, client, crm)

    assert counts.updated == len(sim.accounts)
    batches = -(-len(sim.accounts) // crm.adapter.batch_size)
    # HubSpot reads no contact (Connect wants what syncd wrote); Salesforce reads them with
    # their Accounts, in the same query.
    assert len(reads(crm)) == batches
    assert len(crm.writes()) == batches
    with engine.connect() as conn:
        contacts_after = dict(
            conn.execute(select(crm_links.c.account_id, crm_links.c.contact_id)).all()
        )
    assert contacts_after == contacts_before
    assert all(contacts_after.values())


def test_a_contact_changed_in_connect_is_read_and_written_without_a_new_link(
    engine: Engine, sim: ConnectSim, client: ConnectClient, crm: Crm
) -> None:
    sim.seed(18, accounts=20)
    cycle(engine, client, crm)
    account_id = sorted(sim.accounts)[4]
    sim.change_account(account_id, contact_info={"contact": {"first_name": "Renata"}})

    counts = push_alone(engine, client, crm)

    assert counts.updated == 1
    first_name = "firstname" if crm.name == "hubspot" else "FirstName"
    if crm.name == "hubspot":
        email = sim.account(account_id)["contact_info"]["contact"]["email"]
        contact = crm.sim.contact(email)
        assert contact.value(first_name) == "Renata"
        assert not [r for r in crm.writes() if "associat" in r.path or "create" in r.path]
    else:
        assert crm.sim.contact(account_id)[first_name] == "Renata"
    # The account's own fields did not change: only the contact is written.
    assert len(crm.writes()) == 1
