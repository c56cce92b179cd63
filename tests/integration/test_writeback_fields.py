"""CRM-owned fields going back to Connect (`PUT /tier/accounts/{id}`), with the in-memory CRM, the
Connect simulator and a real Postgres; and the whole write-back once on each CRM simulator."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from syncd import crashpoints
from syncd.connect.client import ConnectClient
from syncd.crm.hubspot import HubSpotAdapter
from syncd.crm.memory import MemoryCrm
from syncd.crm.port import CrmPort
from syncd.crm.salesforce import SalesforceAdapter
from syncd.domain.mapping import Mapping, mapping_from_toml
from syncd.retry import RetryPolicy
from syncd.sim.base import Fault, LoggedRequest, SimServer
from syncd.sim.connect import ConnectSim
from syncd.sim.hubspot import HubSpotSim
from syncd.sim.salesforce import SalesforceSim
from syncd.store.schema import connect_outbox, crm_links, sync_ledger
from syncd.sync.cycle import run_cycle
from syncd.sync.pull import PullOptions
from syncd.sync.writeback import WritebackPhase

PHONE = {"source": "contact_info.contact.phone_number", "transform": "phone", "owner": "crm"}
ADDRESS = {
    "source": ["contact_info.address_line1", "contact_info.address_line2"],
    "transform": "join_lines",
    "owner": "crm",
}
# The contact's phone comes from the same TA field: left out, so that a phone edit going to
# Connect does not come back to the contact as a (legitimate) Connect change.
MAPPING = mapping_from_toml(
    "hubspot", {"account": {"phone": PHONE, "address": ADDRESS}, "contact": {"phone": False}}
)
NEW_PHONE = "+1 555 0199"
NEW_PHONE_PARTS = {
    "country_code": "+1",
    "area_code": "555",
    "phone_number": "0199",
    "extension": "",
}


@pytest.fixture
def crm() -> MemoryCrm:
    return MemoryCrm.for_mapping(MAPPING)


def linked_accounts(sim: ConnectSim, count: int) -> list[str]:
    product = sim.add_product(updates=True)["id"]
    ids = []
    for _ in range(count):
        account = sim.add_account()["id"]
        sim.link(account, product)
        ids.append(account)
    return sorted(ids)


def set_flag(engine: Engine, ids: list[str], value: bool) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE tier_accounts SET sync_enabled = :v, sync_decided_at = now() "
                "WHERE id = ANY(:ids)"
            ),
            {"v": value, "ids": ids},
        )


def cycle(engine: Engine, client: ConnectClient, crm: CrmPort, mapping: Mapping) -> None:
    result = run_cycle(engine, client, PullOptions(), crm=crm, mapping=mapping)
    assert result.outcome == "success", result.error


def writeback(
    engine: Engine,
    client: ConnectClient,
    crm: CrmPort,
    mapping: Mapping = MAPPING,
    **options: Any,
) -> WritebackPhase:
    phase = WritebackPhase(engine, client, crm, mapping, run_id=None, **options)
    phase.run()
    return phase


def connect_writes(server: SimServer) -> list[LoggedRequest]:
    return [r for r in server.requests if r.method in ("POST", "PUT")]


def puts(server: SimServer) -> list[LoggedRequest]:
    return [r for r in server.requests if r.method == "PUT"]


def phone_of(sim: ConnectSim, account_id: str) -> Any:
    return sim.account(account_id)["contact_info"]["contact"]["phone_number"]


def synced_phone(engine: Engine, account_id: str) -> Any:
    with engine.connect() as conn:
        fields = conn.execute(
            select(crm_links.c.synced_fields).where(crm_links.c.account_id == account_id)
        ).scalar_one()
    return fields.get("phone")


def upserts(crm: MemoryCrm) -> int:
    return sum(1 for call in crm.calls if call.method == "upsert")


def test_a_crm_edit_of_a_crm_owned_field_reaches_connect_once_and_the_next_cycles_are_quiet(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient, crm: MemoryCrm
) -> None:
    (account,) = linked_accounts(sim, 1)
    cycle(engine, client, crm, MAPPING)
    set_flag(engine, [account], True)
    echo = writeback(engine, client, crm)
    assert (echo.counts.crm_records, connect_writes(server)) == (1, [])  # our create came back

    crm.edit(account, {"phone": NEW_PHONE})
    sent = writeback(engine, client, crm)

    (put,) = puts(server)
    assert put.path == f"/public/v1/tier/accounts/{account}"
    assert set(put.json()) == {"contact_info"}
    assert phone_of(sim, account) == NEW_PHONE_PARTS
    assert synced_phone(engine, account) == NEW_PHONE
    assert (sent.counts.accounts_updated, sent.counts.fields_sent) == (1, 1)

    server.clear_log()
    writes_before = upserts(crm)
    cycle(engine, client, crm, MAPPING)
    after = writeback(engine, client, crm)

    # Connect's new version comes back as a TAR: accepted, and nothing goes back to the CRM.
    ((tar_id, status),) = [(t["id"], t["status"]) for t in sim.tars_of(account)]
    assert status == "accepted"
    assert [r.path for r in connect_writes(server)] == [
        f"/public/v1/tier/account-requests/{tar_id}/accept"
    ]
    assert upserts(crm) == writes_before
    assert after.counts.accounts_updated == 0

    server.clear_log()
    cycle(engine, client, crm, MAPPING)
    writeback(engine, client, crm)
    assert connect_writes(server) == []
    assert upserts(crm) == writes_before


def test_a_joined_field_cannot_go_back_and_is_noted_once(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient, crm: MemoryCrm
) -> None:
    (account,) = linked_accounts(sim, 1)
    cycle(engine, client, crm, MAPPING)
    set_flag(engine, [account], True)
    crm.edit(account, {"address": "Somewhere Else 1\nFloor 2"})

    first = writeback(engine, client, crm)
    second = writeback(engine, client, crm)

    assert puts(server) == []
    assert (first.counts.fields_skipped, second.counts.fields_skipped) == (1, 0)
    with engine.connect() as conn:
        notes = conn.execute(
            select(sync_ledger.c.outcome, sync_ledger.c.message).where(
                sync_ledger.c.phase == "writeback"
            )
        ).all()
    assert len(notes) == 1
    assert notes[0].outcome == "skipped"
    assert "join" in notes[0].message


def test_an_edit_made_while_sync_is_off_reaches_connect_once_it_is_switched_on(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient, crm: MemoryCrm
) -> None:
    off, other = linked_accounts(sim, 2)
    cycle(engine, client, crm, MAPPING)
    set_flag(engine, [off], False)
    set_flag(engine, [other], True)
    crm.edit(off, {"phone": NEW_PHONE})

    held = writeback(engine, client, crm, crm_overlap=timedelta(0))
    crm.edit(other, {"description": "an unmapped edit, later: the cursor passes the first"})
    writeback(engine, client, crm, crm_overlap=timedelta(0))

    assert held.counts.waiting_flag == 1
    assert puts(server) == []
    assert synced_phone(engine, off) != NEW_PHONE

    set_flag(engine, [off], True)
    crm.calls.clear()
    caught_up = writeback(engine, client, crm, crm_overlap=timedelta(0))

    assert [c.keys for c in crm.calls if c.method == "read"] == [(off,)]
    assert len(puts(server)) == 1
    assert phone_of(sim, off) == NEW_PHONE_PARTS
    assert caught_up.counts.accounts_updated == 1


def test_a_crash_after_the_put_is_settled_by_reading_the_account_back(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient, crm: MemoryCrm
) -> None:
    (account,) = linked_accounts(sim, 1)
    cycle(engine, client, crm, MAPPING)
    set_flag(engine, [account], True)
    crm.edit(account, {"phone": NEW_PHONE})

    def killed() -> None:
        raise SystemExit("killed after the PUT")

    crashpoints.install("writeback.after_send", killed)
    with pytest.raises(SystemExit):
        writeback(engine, client, crm)
    crashpoints.reset()

    rerun = writeback(engine, client, crm)

    assert len(puts(server)) == 1
    assert rerun.counts.read_back == 1
    assert synced_phone(engine, account) == NEW_PHONE
    with engine.connect() as conn:
        rows = conn.execute(select(connect_outbox.c.kind, connect_outbox.c.state)).all()
    assert [tuple(r) for r in rows] == [("update_account", "done")]
    writeback(engine, client, crm)
    assert len(puts(server)) == 1


def test_a_lost_put_answer_is_settled_by_reading_back_and_a_refused_one_is_not_repeated(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient, crm: MemoryCrm
) -> None:
    lost, refused = linked_accounts(sim, 2)
    cycle(engine, client, crm, MAPPING)
    set_flag(engine, [lost, refused], True)
    crm.edit(lost, {"phone": NEW_PHONE})
    crm.edit(refused, {"phone": "+44 20 7946 0000"})
    server.faults.inject(Fault(drop_response=True, match=f"PUT .*/{lost}"))
    body = {"error_code": "VAL_001", "errors": ["contact_info.contact.phone_number: invalid"]}
    server.faults.inject(Fault(status=400, body=body, match=f"PUT .*/{refused}"))

    first = writeback(engine, client, crm)
    writeback(engine, client, crm)

    assert server.faults.pending() == 0
    assert sorted(r.path.rsplit("/", 1)[1] for r in puts(server)) == sorted([lost, refused])
    assert phone_of(sim, lost) == NEW_PHONE_PARTS
    assert (first.counts.accounts_updated, first.counts.read_back, first.counts.failed) == (1, 1, 1)
    with engine.connect() as conn:
        states = dict(
            (row.object_id, row.state)
            for row in conn.execute(select(connect_outbox.c.object_id, connect_outbox.c.state))
        )
    assert states == {lost: "done", refused: "failed"}


# ---- the HubSpot and Salesforce simulators ------------------------------------------------

TOKEN = "crm-test-token"
INSTANT = RetryPolicy(attempts=4, max_seconds=5, sleep=lambda _: None)
PHONE_PROPERTY = {"hubspot": "phone", "salesforce": "Phone"}


@dataclass
class RealCrm:
    name: str
    sim: Any
    server: SimServer
    adapter: CrmPort
    mapping: Mapping

    def edit_phone(self, key: str, value: str) -> None:
        if self.name == "hubspot":
            self.sim.edit_company(key, phone=value)
        else:
            self.sim.edit_account(key, Phone=value)

    def writes(self) -> list[LoggedRequest]:
        return [
            r
            for r in self.server.requests
            if r.method in ("POST", "PATCH", "PUT")
            and not any(part in r.path for part in ("search", "/query", "batch/read"))
        ]


@pytest.fixture(params=["hubspot", "salesforce"])
def real_crm(request: pytest.FixtureRequest) -> Iterator[RealCrm]:
    name: str = request.param
    phone = PHONE_PROPERTY[name]
    mapping = mapping_from_toml(name, {"account": {phone: PHONE}, "contact": {phone: False}})
    fields = {
        "account_fields": [f.target for f in mapping.account],
        "contact_fields": [f.target for f in mapping.contact],
    }
    if name == "hubspot":
        sim: Any = HubSpotSim(TOKEN, limits=None, custom_properties=True)
        with SimServer(sim) as server:
            adapter: Any = HubSpotAdapter(
                server.url,
                TOKEN,
                retry=INSTANT,
                company_fields=fields["account_fields"],
                contact_fields=fields["contact_fields"],
            )
            yield RealCrm(name, sim, server, adapter, mapping)
            adapter.close()
    else:
        sim = SalesforceSim(TOKEN)
        with SimServer(sim) as server:
            adapter = SalesforceAdapter(
                server.url,
                TOKEN,
                retry=INSTANT,
                account_fields=fields["account_fields"],
                contact_fields=fields["contact_fields"],
            )
            yield RealCrm(name, sim, server, adapter, mapping)
            adapter.close()


def test_tars_are_settled_and_a_crm_phone_edit_reaches_connect_once_with_each_crm(
    engine: Engine,
    sim: ConnectSim,
    server: SimServer,
    client: ConnectClient,
    real_crm: RealCrm,
) -> None:
    changed, edited = linked_accounts(sim, 2)
    sim.change_account(changed, name="Renamed In Connect")
    crm, mapping = real_crm.adapter, real_crm.mapping
    cycle(engine, client, crm, mapping)
    set_flag(engine, [changed, edited], True)
    real_crm.edit_phone(edited, NEW_PHONE)

    first = writeback(engine, client, crm, mapping)

    (tar,) = sim.tars_of(changed)
    assert sim.tar(tar["id"])["status"] == "accepted"
    assert len(puts(server)) == 1
    assert phone_of(sim, edited) == NEW_PHONE_PARTS
    assert (first.counts.accepted, first.counts.accounts_updated) == (1, 1)

    server.clear_log()
    real_crm.server.clear_log()
    cycle(engine, client, crm, mapping)
    writeback(engine, client, crm, mapping)

    (own,) = sim.tars_of(edited)  # made by our PUT
    assert sim.tar(own["id"])["status"] == "accepted"
    assert [r.method for r in connect_writes(server)] == ["POST"]
    assert real_crm.writes() == []

    server.clear_log()
    cycle(engine, client, crm, mapping)
    writeback(engine, client, crm, mapping)
    assert connect_writes(server) == []
    assert real_crm.writes() == []


def test_a_crm_edit_and_a_connect_change_in_one_cycle_both_arrive(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient, crm: MemoryCrm
) -> None:
    [account] = linked_accounts(sim, 1)
    cycle(engine, client, crm, MAPPING)
    set_flag(engine, [account], True)
    crm.edit(account, {"phone": NEW_PHONE})
    sim.change_account(account, name="Changed In Connect")
    server.clear_log()

    cycle(engine, client, crm, MAPPING)

    held = crm.get(account)
    assert held is not None
    assert held.fields["name"] == "Changed In Connect"
    assert len(puts(server)) == 1
    assert phone_of(sim, account) == NEW_PHONE_PARTS
