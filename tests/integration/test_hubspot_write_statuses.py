"""Which statuses of a HubSpot batch write are read record by record, over loopback.

HubSpot's v3 objects spec documents 200 for `batch/create` and `batch/upsert`; its error-handling
guide adds 207 Multi-Status for a partial success; the live API answers `batch/create` with 201
Created. Each of them is an answer to read record by record, not a failure of the whole batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from syncd.crm.hubspot import HubSpotAdapter
from syncd.crm.hubspot_http import HubSpotHttp
from syncd.crm.hubspot_records import Written
from syncd.crm.hubspot_writes import COMPANY_TO_CONTACT, BatchWriter, NewEntry
from syncd.crm.port import Outcome, Upsert
from syncd.retry import RetryPolicy
from syncd.sim.base import Fault, Request, Response, SimServer
from syncd.sim.hubspot import HubSpotSim
from tests.integration.hubspot_support import TOKEN, FakeClock
from tests.spec import load_spec

SPECS = {"companies": "hubspot/companies-v3.json", "contacts": "hubspot/contacts-v3.json"}
KEYS = {"companies": "connect_account_id", "contacts": "email"}
STAMP = "2026-01-01T00:00:00.000Z"


def documented_successes(otype: str, mode: str) -> set[int]:
    """The 2xx statuses the official spec documents for `POST …/{otype}/batch/{mode}`."""
    spec = load_spec(SPECS[otype])
    responses = spec["paths"][f"/crm/v3/objects/{otype}/batch/{mode}"]["post"]["responses"]
    return {int(code) for code in responses if code.isdigit() and 200 <= int(code) < 300}


def key(otype: str, n: int) -> str:
    return f"buyer{n}@example.com" if otype == "contacts" else f"TA-{n:04d}-0000-0000"


def batch_answer(otype: str, status: int, done: str, ident: str, refused: str) -> dict[str, Any]:
    """An answer confirming `done` as record `ident`; a 207 refuses `refused` too."""
    record = {
        "id": ident,
        "properties": {KEYS[otype]: done},
        "objectWriteTraceId": done,
        "createdAt": STAMP,
        "updatedAt": STAMP,
    }
    body: dict[str, Any] = {"status": "COMPLETE", "results": [record], "startedAt": STAMP}
    if status == 207:
        refusal = {
            "status": "error",
            "category": "VALIDATION_ERROR",
            "message": "Property values were not valid",
            "context": {"objectWriteTraceId": [refused]},
        }
        body |= {"errors": [refusal], "numErrors": 1}
    return body


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def crm(clock: FakeClock) -> HubSpotSim:
    return HubSpotSim(TOKEN, limits=None, clock=clock, custom_properties=True)


@pytest.fixture
def crm_server(crm: HubSpotSim) -> Iterator[SimServer]:
    with SimServer(crm) as running:
        yield running


@pytest.fixture
def writer(crm_server: SimServer, clock: FakeClock) -> Iterator[BatchWriter]:
    retry = RetryPolicy(sleep=clock.sleep, clock=clock)
    http = HubSpotHttp(crm_server.url, TOKEN, retry=retry, timeout=10)
    yield BatchWriter(http, lambda otype: f"/crm/v3/objects/{otype}")
    http.close()


def write(writer: BatchWriter, otype: str, mode: str, keys: list[str]) -> dict[str, Written]:
    if mode == "create":
        entries: list[NewEntry] = [(k, {KEYS[otype]: k}, []) for k in keys]
        return writer.create(otype, KEYS[otype], entries, COMPANY_TO_CONTACT)
    return writer.upsert(otype, KEYS[otype], [(k, k, {KEYS[otype]: k}) for k in keys])


@pytest.mark.parametrize("otype", ["companies", "contacts"])
@pytest.mark.parametrize("mode", ["create", "upsert"])
def test_every_documented_success_of_a_batch_write_is_read_record_by_record(
    writer: BatchWriter, crm_server: SimServer, otype: str, mode: str
) -> None:
    documented = documented_successes(otype, mode)
    assert 200 in documented, "the spec documents the plain success"
    statuses = sorted(documented | {207} | ({201} if mode == "create" else set()))

    for n, status in enumerate(statuses):
        done, refused, ident = key(otype, 2 * n + 1), key(otype, 2 * n + 2), str(9000 + n)
        body = batch_answer(otype, status, done, ident, refused)
        match = f"^POST /crm/v3/objects/{otype}/batch/{mode}\\?"
        crm_server.faults.inject(Fault(status=status, body=body, match=match))

        written = write(writer, otype, mode, [done, refused])

        assert crm_server.faults.pending() == 0, status
        assert written[done] == Written(Outcome.DONE, id=ident), status
        refusal = written[refused].outcome
        assert refusal is (Outcome.REJECTED if status == 207 else Outcome.RETRY), status


class LiveCreates(HubSpotSim):
    """HubSpot as it answers today: `batch/create` with 201 Created (the spec says 200)."""

    def dispatch(self, request: Request) -> Response:
        response = super().dispatch(request)
        if request.path.endswith("/batch/create") and response.status == 200:
            return replace(response, status=201)
        return response


def test_accounts_created_with_201_answers_are_done_linked_and_never_created_twice(
    clock: FakeClock,
) -> None:
    crm = LiveCreates(TOKEN, limits=None, clock=clock, custom_properties=True)
    keys = [key("companies", i) for i in range(3)]
    items = [
        Upsert(k, {"connect_account_id": k, "name": f"Company {i}"}, {"email": key("contacts", i)})
        for i, k in enumerate(keys)
    ]
    with (
        SimServer(crm) as server,
        HubSpotAdapter(
            server.url, TOKEN, retry=RetryPolicy(sleep=clock.sleep, clock=clock), timeout=10
        ) as adapter,
    ):
        first = adapter.upsert(items)
        # An existing company whose contact is new: the contact is created with the link.
        found = adapter.read([items[0].key])[items[0].key]
        moved = replace(items[0], contact={"email": "moved@example.com"}, crm_id=found.crm_id)
        second = adapter.upsert([moved])

        created = server.requests_matching("POST", r"/batch/create$")
        assert {r.status for r in created} == {201}, "HubSpot answered 201 to each create"
        assert {r.path.split("/")[4] for r in created} == {"companies", "contacts"}
    assert [r.outcome for r in [*first, *second]] == [Outcome.DONE] * 4
    assert len(crm.companies.records) == 3
    for i, result in enumerate(first):
        company = crm.company(result.key)
        assert company is not None
        assert result.crm_id == str(company.id)
        emails = sorted(str(c.value("email")) for c in crm.company_contacts(company))
        wanted = [key("contacts", i), "moved@example.com"] if i == 0 else [key("contacts", i)]
        assert emails == wanted
    contact = crm.contact("moved@example.com")
    assert contact is not None
    assert second[0].contact_id == str(contact.id)
