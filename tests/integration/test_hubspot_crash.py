"""Nothing lost, nothing doubled: a push to HubSpot stopped between any two write calls, rerun.

Real Postgres, the Connect and HubSpot simulators over loopback. Batches of 10 accounts, with
contact emails shared inside a batch and across batches, so that every kind of write (contact
upserts, company creates with the link inline) is interrupted somewhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select

from syncd import crashpoints
from syncd.connect.client import ConnectClient
from syncd.crm.hubspot import HubSpotAdapter
from syncd.domain.mapping import Mapping, apply, default_mapping
from syncd.retry import RetryPolicy
from syncd.sim.base import SimServer
from syncd.sim.connect import ConnectSim
from syncd.sim.hubspot import HubSpotSim
from syncd.store.schema import crm_links
from syncd.sync.pull import PullOptions, PullPhase
from syncd.sync.push import PushCounts, PushOptions, PushPhase

TOKEN = "crash-test-token"
INSTANT = RetryPolicy(attempts=3, max_seconds=5, sleep=lambda _: None)
ACCOUNTS = 40
BATCH = 10
WRITES = 2 * ACCOUNTS // BATCH
"""A batch of new accounts costs two writes: contacts, then companies linked inline."""
SHARED = {12: 3, 13: 3, 25: 3, 27: 26, 38: 16}
"""Account index -> index of the account whose contact email it takes (same or earlier batch)."""
NEW_EMAILS = (1, 11, 21, 31)
"""Accounts whose email changes to one HubSpot does not hold, once they are synced."""
MOVED = {2: 20, 35: 20}
"""Accounts whose email changes to the one of another account (another batch), once synced."""
UPDATE_WRITES = 13
"""The update push's writes (every account renamed too): in batch 0, a contact create refused for
the existing email (409), the create again without it, its upsert, the companies and the link;
in batches 1 and 2, the contact create and the companies; in batch 3, the same as in batch 0 but
the 409, as the adapter now knows that email exists."""


class Killed(BaseException):
    """Stands for SIGKILL: nothing of syncd's catches it."""


@pytest.fixture
def hubspot() -> Iterator[SimServer]:
    """The HubSpot simulator, served; `hubspot.app` is the simulated portal."""
    with SimServer(HubSpotSim(TOKEN, limits=None, custom_properties=True)) as server:
        yield server


def adapter(server: SimServer) -> HubSpotAdapter:
    """A new adapter, as a restarted process has: nothing remembered."""
    made = HubSpotAdapter(server.url, TOKEN, retry=INSTANT)
    made.batch_size = BATCH
    return made


def push(engine: Engine, crm: HubSpotAdapter, mapping: Mapping) -> PushCounts:
    try:
        return PushPhase(engine, crm, mapping, PushOptions(), run_id=None).run()
    finally:
        crm.close()


def kill_at_write(n: int) -> None:
    """Stop syncd once the n-th write call from now has its answer (or lost it)."""
    crashpoints.reset()

    def hook() -> None:
        if crashpoints.times_reached("hubspot.after_write") == n:
            raise Killed

    crashpoints.install("hubspot.after_write", hook)


def seed(sim: ConnectSim) -> list[str]:
    sim.seed(31, accounts=ACCOUNTS)
    ids = sorted(sim.accounts)
    for index, source in SHARED.items():
        email = sim.account(ids[source])["contact_info"]["contact"]["email"]
        sim.change_account(ids[index], contact_info={"contact": {"email": email}})
    return ids


def change_contacts(sim: ConnectSim, ids: list[str]) -> None:
    """Every account renamed; some take a new email, some the email of another account."""
    emails = {index: f"moved{index}@example.com" for index in NEW_EMAILS}
    for index, source in MOVED.items():
        emails[index] = sim.account(ids[source])["contact_info"]["contact"]["email"]
    for index, account_id in enumerate(ids):
        changes: dict[str, Any] = {"name": f"Renamed {index}"}
        if index in emails:
            changes["contact_info"] = {"contact": {"email": emails[index]}}
        sim.change_account(account_id, **changes)


def assert_converged(
    engine: Engine,
    sim: ConnectSim,
    server: SimServer,
    ids: list[str],
    mapping: Mapping,
    *,
    emails_changed: bool = False,
) -> None:
    """One company per account with the account's fields, one contact per email, each company
    linked to its contact, and every link row synced with those ids. A contact holds the
    fields of an account whose contact it is: of its only account, or of one of the accounts
    sharing it (which one depends on the order of the writes: each account's diff sees the
    fields the other wrote). With `emails_changed`, a company keeps its old contact linked too,
    and its account's contact is the one `read` finds (the most recently written)."""
    app = server.app
    assert isinstance(app, HubSpotSim)
    wanted = {a: apply(mapping, sim.account(a)) for a in ids}
    fields_of: dict[str, list[dict[str, str | None]]] = {}
    for account_id in ids:
        contact = wanted[account_id][1]
        assert contact is not None
        fields_of.setdefault(str(contact["email"]), []).append(dict(contact))
    assert len(app.companies.records) == len(ids)
    if not emails_changed:
        assert len(app.contacts.records) == len(fields_of)
    crm = adapter(server)
    held = crm.read(ids)
    crm.close()
    with engine.connect() as conn:
        links = {row.account_id: row for row in conn.execute(select(crm_links))}
    for account_id in ids:
        fields, contact = wanted[account_id]
        company = app.company(account_id)
        assert company is not None, account_id
        assert {k: company.value(k) or None for k in fields} == fields
        email = str(contact["email"]) if contact else ""
        person = app.contact(email)
        assert person is not None, email
        assert {k: person.value(k) or None for k in mapping_fields(mapping)} in fields_of[email]
        linked = [c.id for c in app.company_contacts(company)]
        assert person.id in linked if emails_changed else linked == [person.id], account_id
        assert held[account_id].contact_id == str(person.id), account_id
        link = links[account_id]
        assert (link.state, link.crm_id, link.contact_id) == (
            "synced",
            str(company.id),
            str(person.id),
        )


def pulled(engine: Engine, sim: ConnectSim, client: ConnectClient) -> list[str]:
    """Seed the Connect simulator and pull it into the mirror; the accounts' ids."""
    ids = seed(sim)
    PullPhase(engine, client, PullOptions(), run_id=None).run()
    return ids


def mapping_fields(mapping: Mapping) -> list[str]:
    return [f.target for f in mapping.contact]


def test_every_batch_of_new_accounts_takes_two_writes_shared_contacts_included(
    engine: Engine,
    sim: ConnectSim,
    client: ConnectClient,
    hubspot: SimServer,
) -> None:
    server, mapping = hubspot, default_mapping("hubspot")
    ids = pulled(engine, sim, client)

    counts = push(engine, adapter(server), mapping)

    assert counts.created == ACCOUNTS
    assert counts.crm_writes == ACCOUNTS // BATCH
    writes = [r for r in server.requests if "/batch/read" not in r.path]
    assert len(writes) == WRITES
    assert_converged(engine, sim, server, ids, mapping)


@pytest.mark.parametrize("n", range(1, WRITES + 1))
def test_a_push_killed_after_any_write_converges_on_rerun_without_duplicates(
    n: int,
    engine: Engine,
    sim: ConnectSim,
    client: ConnectClient,
    hubspot: SimServer,
) -> None:
    server, mapping = hubspot, default_mapping("hubspot")
    ids = pulled(engine, sim, client)
    kill_at_write(n)

    with pytest.raises(Killed):
        push(engine, adapter(server), mapping)
    crashpoints.reset()
    rerun = push(engine, adapter(server), mapping)

    assert rerun.rejected + rerun.retry + rerun.unknown == 0
    assert_converged(engine, sim, server, ids, mapping)
    assert push(engine, adapter(server), mapping).planned == 0


def test_a_changed_email_gets_a_contact_with_every_field_in_the_calls_expected(
    engine: Engine,
    sim: ConnectSim,
    client: ConnectClient,
    hubspot: SimServer,
) -> None:
    server, mapping = hubspot, default_mapping("hubspot")
    ids = pulled(engine, sim, client)
    push(engine, adapter(server), mapping)
    change_contacts(sim, ids)
    PullPhase(engine, client, PullOptions(), run_id=None).run()
    server.clear_log()

    counts = push(engine, adapter(server), mapping)

    assert counts.updated == ACCOUNTS
    writes = [r for r in server.requests if "/batch/read" not in r.path]
    assert len(writes) == UPDATE_WRITES
    assert_converged(engine, sim, server, ids, mapping, emails_changed=True)


@pytest.mark.parametrize("n", range(1, UPDATE_WRITES + 1))
def test_a_push_of_changed_contacts_killed_after_any_write_converges_on_rerun(
    n: int,
    engine: Engine,
    sim: ConnectSim,
    client: ConnectClient,
    hubspot: SimServer,
) -> None:
    server, mapping = hubspot, default_mapping("hubspot")
    ids = pulled(engine, sim, client)
    push(engine, adapter(server), mapping)
    change_contacts(sim, ids)
    PullPhase(engine, client, PullOptions(), run_id=None).run()
    kill_at_write(n)

    with pytest.raises(Killed):
        push(engine, adapter(server), mapping)
    crashpoints.reset()
    rerun = push(engine, adapter(server), mapping)

    assert rerun.rejected + rerun.retry + rerun.unknown == 0
    assert_converged(engine, sim, server, ids, mapping, emails_changed=True)
    assert push(engine, adapter(server), mapping).planned == 0
