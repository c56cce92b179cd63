"""HubSpot read answers of a shape the spec does not give, served by the simulator over loopback.

Every read (companies and contacts `batch/read`, the v4 association reads, both searches) fails
with a non-fatal `CrmError` naming the call, the place in the answer, what was expected there and
what came, quoting the body's start without the token: never a KeyError or TypeError, never "no
record". The cycle-level behaviour (the batch left to retry, nothing written for it) is in
`test_hubspot_read_cycle`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from syncd.crm.hubspot import HubSpotAdapter
from syncd.crm.port import CrmError, CrmRecord, Upsert
from syncd.retry import RetryPolicy
from syncd.sim.base import Fault, SimServer
from syncd.sim.hubspot import HubSpotSim
from tests.integration.hubspot_support import START, TOKEN, FakeClock

STAMP = "2026-01-01T00:00:00.000Z"
KEY = "TA-0000-0000-0000"
GONE = object()
"""In `row(...)`: leave this member out."""


def row(**changes: Any) -> dict[str, Any]:
    """A record as HubSpot returns it (company and contact properties both: each read takes its
    own), with `changes` made (`GONE` leaves a member out)."""
    props = {
        "connect_account_id": KEY,
        "name": "Company 0",
        "email": "buyer0@example.com",
        "hs_lastmodifieddate": STAMP,
        "lastmodifieddate": STAMP,
    }
    made = {"id": "1001", "properties": props, "createdAt": STAMP, "updatedAt": STAMP}
    made.update(changes)
    return {k: v for k, v in made.items() if v is not GONE}


def answer(*results: Any, **extra: Any) -> dict[str, Any]:
    return {"status": "COMPLETE", "results": list(results), "startedAt": STAMP, **extra}


def link(**changes: Any) -> dict[str, Any]:
    """One v4 association read result, with `changes` made (`GONE` leaves a member out)."""
    target = {"toObjectId": 1002, "associationTypes": [{"category": "HUBSPOT_DEFINED"}]}
    made = {"from": {"id": "1001"}, "to": [target]}
    made.update(changes)
    return {k: v for k, v in made.items() if v is not GONE}


RETRYABLE = {
    "status": "error",
    "category": "INTERNAL_ERROR",
    "message": f"Something went wrong (Bearer {TOKEN})",
    "context": {"ids": ["1001"]},
}
"""HubSpot failing some inputs of a batch read itself; the message echoes the token."""

ODD_RECORDS = [
    pytest.param(200, {"status": "COMPLETE"}, "`results`, a list, got nothing", id="no_results"),
    pytest.param(200, {"results": None}, "`results`, a list, got null", id="results_null"),
    pytest.param(200, {"results": row()}, "`results`, a list, got an object", id="results_obj"),
    pytest.param(200, answer("1001"), "`results[0]`, an object, got a string", id="record_text"),
    pytest.param(200, answer(row(id=GONE)), "`results[0].id`, a record id", id="id_missing"),
    pytest.param(200, answer(row(id={"id": "1"})), "got an object", id="id_an_object"),
    pytest.param(200, answer(row(id="c-1001")), "`results[0].id`", id="id_not_digits"),
    pytest.param(200, answer(row(id=True)), "got a boolean", id="id_a_boolean"),
    pytest.param(200, answer(row(id=-1)), "got a number", id="id_negative"),
    pytest.param(200, answer(row(), row(id=GONE)), "`results[1].id`", id="second_without_id"),
    pytest.param(
        200,
        answer(row(properties=GONE)),
        "`results[0].properties`, an object, got nothing",
        id="properties_missing",
    ),
    pytest.param(200, answer(row(properties=[KEY])), "got a list", id="properties_a_list"),
    pytest.param(
        200,
        answer(row(properties={"hs_lastmodifieddate": 17, "lastmodifieddate": 17})),
        "modifieddate`, a string or null, got a number",
        id="modified_a_number",
    ),
    pytest.param(207, answer(errors={"message": "x"}), "`errors`, a list", id="errors_an_object"),
    pytest.param(207, answer(errors=["x"]), "`errors[0]`, an object", id="error_a_string"),
]
ODD_LINKS = [
    pytest.param(200, {"status": "COMPLETE"}, "`results`, a list, got nothing", id="no_results"),
    pytest.param(200, answer(link(**{"from": GONE})), "`results[0].from`, an object", id="from"),
    pytest.param(200, answer(link(**{"from": {"id": []}})), "`results[0].from.id`", id="from_id"),
    pytest.param(200, answer(link(to=GONE)), "`results[0].to`, a list, got nothing", id="to"),
    pytest.param(200, answer(link(to={"toObjectId": 1})), "got an object", id="to_an_object"),
    pytest.param(200, answer(link(to=[1002])), "`results[0].to[0]`, an object", id="target_num"),
    pytest.param(
        200,
        answer(link(to=[{"associationTypes": []}])),
        "`results[0].to[0].toObjectId`, a record id (a number, or a string of digits), got nothing",
        id="target_id_missing",
    ),
    pytest.param(200, answer(link(to=[{"toObjectId": 1.5}])), "got a number", id="target_float"),
    pytest.param(207, answer(errors=[7]), "`errors[0]`, an object", id="error_a_number"),
]


def since_start() -> datetime:
    return datetime.fromtimestamp(START, UTC)


def read_account(adapter: HubSpotAdapter) -> dict[str, CrmRecord]:
    return adapter.read([KEY])


def scan(adapter: HubSpotAdapter) -> list[CrmRecord]:
    return list(adapter.changed_since(since_start()))


RECORD_READS = [
    pytest.param("/crm/v3/objects/companies/batch/read", read_account, id="companies_read"),
    pytest.param("/crm/v3/objects/contacts/batch/read", read_account, id="contacts_read"),
    pytest.param("/crm/v3/objects/companies/search", scan, id="companies_search"),
    pytest.param("/crm/v3/objects/contacts/search", scan, id="contacts_search"),
]
LINK_READS = [
    pytest.param("/crm/v4/associations/companies/contacts/batch/read", read_account, id="of_co"),
    pytest.param("/crm/v4/associations/contacts/companies/batch/read", scan, id="of_contacts"),
]


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
def adapter(crm_server: SimServer, clock: FakeClock) -> Iterator[HubSpotAdapter]:
    retry = RetryPolicy(sleep=clock.sleep, clock=clock)
    with HubSpotAdapter(crm_server.url, TOKEN, retry=retry, timeout=10) as made:
        made.upsert(
            [Upsert(KEY, {"connect_account_id": KEY, "name": "Company 0"}, {"email": "b@x.io"})]
        )
        clock.advance(1)
        yield made


def failure(
    crm_server: SimServer,
    adapter: HubSpotAdapter,
    path: str,
    call: Callable[[HubSpotAdapter], object],
    status: int,
    body: Any,
) -> str:
    """The message of the error `call` raises when `path` answers `body` once."""
    crm_server.faults.inject(Fault(status=status, body=body, match=f"^POST {path}\\?"))
    writes = len(crm_server.requests_matching("POST", r"batch/(create|upsert|associate)"))

    with pytest.raises(CrmError) as caught:
        call(adapter)

    assert crm_server.faults.pending() == 0, "the odd answer was served"
    assert not caught.value.fatal, "a later cycle may get a proper answer"
    message = str(caught.value)
    assert message.startswith(f"HubSpot POST {path}: "), "it names the call"
    assert TOKEN not in f"{message} {caught.value!r}"
    written = crm_server.requests_matching("POST", r"batch/(create|upsert|associate)")
    assert len(written) == writes, "nothing written on an unreadable answer"
    return message


@pytest.mark.parametrize(("path", "call"), RECORD_READS)
@pytest.mark.parametrize(("status", "body", "fragment"), ODD_RECORDS)
def test_a_record_read_answer_of_another_shape_is_an_error_saying_where_and_what_came(
    adapter: HubSpotAdapter,
    crm_server: SimServer,
    path: str,
    call: Callable[[HubSpotAdapter], object],
    status: int,
    body: Any,
    fragment: str,
) -> None:
    message = failure(crm_server, adapter, path, call, status, body)

    assert "malformed answer: expected " in message
    assert fragment in message, message
    assert "; the answer: '{" in message, "it quotes the body's start"


@pytest.mark.parametrize(("path", "call"), LINK_READS)
@pytest.mark.parametrize(("status", "body", "fragment"), ODD_LINKS)
def test_an_association_read_answer_of_another_shape_is_an_error_saying_where_and_what_came(
    adapter: HubSpotAdapter,
    crm_server: SimServer,
    path: str,
    call: Callable[[HubSpotAdapter], object],
    status: int,
    body: Any,
    fragment: str,
) -> None:
    message = failure(crm_server, adapter, path, call, status, body)

    assert "malformed answer: expected " in message
    assert fragment in message, message


@pytest.mark.parametrize(("path", "call"), [*RECORD_READS, *LINK_READS])
def test_a_batch_read_failed_by_hubspot_itself_for_some_inputs_is_an_error_not_none_found(
    adapter: HubSpotAdapter,
    crm_server: SimServer,
    path: str,
    call: Callable[[HubSpotAdapter], object],
) -> None:
    message = failure(crm_server, adapter, path, call, 207, answer(errors=[RETRYABLE]))

    assert "HubSpot could not read 1 of the records asked for: Something went wrong" in message
    assert "Bearer ***" in message, "HubSpot's reason, the token removed"


def test_a_company_read_by_its_key_without_the_key_is_an_error_not_another_company(
    adapter: HubSpotAdapter, crm_server: SimServer
) -> None:
    props = {"name": "Company 0", "hs_lastmodifieddate": STAMP}
    path = "/crm/v3/objects/companies/batch/read"

    message = failure(crm_server, adapter, path, read_account, 200, answer(row(properties=props)))

    expected = "`results[0].properties.connect_account_id`, the value the record was read by"
    assert f"{expected}, got nothing" in message, message


@pytest.mark.parametrize("value", [None, "yesterday"])
def test_a_search_record_without_a_readable_modified_date_is_an_error_not_a_stuck_scan(
    adapter: HubSpotAdapter, crm_server: SimServer, value: str | None
) -> None:
    props = {"connect_account_id": KEY, "hs_lastmodifieddate": value}
    path = "/crm/v3/objects/companies/search"

    message = failure(crm_server, adapter, path, scan, 200, answer(row(properties=props)))

    assert "`results[0].properties.hs_lastmodifieddate`, a date, got " in message, message


def test_the_quoted_answer_leaves_the_token_out(
    adapter: HubSpotAdapter, crm_server: SimServer
) -> None:
    body = {"status": "COMPLETE", "echo": f"Bearer {TOKEN}"}
    path = "/crm/v3/objects/companies/batch/read"

    message = failure(crm_server, adapter, path, read_account, 200, body)

    assert '"echo":"Bearer ***"' in message, message


def test_well_formed_answers_still_read_the_account_and_its_changes(
    adapter: HubSpotAdapter, crm: HubSpotSim
) -> None:
    company = crm.company(KEY)
    assert company is not None

    record = adapter.read([KEY])[KEY]
    changed = scan(adapter)

    assert (record.crm_id, record.contact["email"]) == (str(company.id), "b@x.io")
    assert [r.key for r in changed] == [KEY]
