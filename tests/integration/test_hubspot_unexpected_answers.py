"""HubSpot answers of a shape the spec does not give, served by the simulator over loopback.

The property reads (`properties`, `contact_properties`, `setup`, `syncd check`) fail with a
reason naming what came, never reading such an answer as "no properties"; a v4 association
batch answered so leaves its accounts to retry, never failing the run.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from syncd.crm.hubspot import HubSpotAdapter
from syncd.crm.port import CrmError, Outcome, Upsert
from syncd.retry import RetryPolicy
from syncd.service.check import run
from syncd.sim.base import Fault, SimServer
from syncd.sim.connect import ConnectSim
from syncd.sim.hubspot import HubSpotSim
from tests.integration.hubspot_support import TOKEN, FakeClock

PROPERTY_READS = r"GET /crm/v3/properties/(companies|contacts)"
PROPERTY_WRITES = r"^/crm/v3/properties/"
LINKS = r"POST /crm/v4/associations/contacts/companies/batch/associate/default"
CONNECT_KEY = "SU-000-000-000:check-secret-key"
HTML = (
    b"<html>\n<title>Down for maintenance</title>\n<p>Bearer "
    + TOKEN.encode()
    + b"</p>\n"
    + b"<p>"
    + b"Back soon. " * 40
    + b"</p></html>"
)
"""A proxy's page with status 200, quoting the request's token (as some echo headers)."""


def key(i: int) -> str:
    return f"TA-{i:04d}-0000-0000"


def account(i: int) -> Upsert:
    return Upsert(
        key(i),
        {"connect_account_id": key(i), "name": f"Company {i}"},
        {"email": f"buyer{i}@example.com", "firstname": "Ann", "lastname": f"Buyer {i}"},
    )


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
        yield made


def served(body: Any, content_type: str | None, status: int = 200, *, match: str) -> Fault:
    """An answer in place of HubSpot's: bytes as they are (with `content_type`), else JSON."""
    headers = {"Content-Type": content_type} if content_type else {}
    return Fault(status=status, headers=headers, body=body, match=match)


# --- the property definitions -----------------------------------------------------------------

ODD_PROPERTY_ANSWERS = [
    pytest.param(HTML, "text/html", "not JSON (200, text/html)", id="an_html_page"),
    pytest.param({"paging": {}}, None, "expected `results`", id="results_missing"),
    pytest.param({"results": {"name": "city"}}, None, "expected `results`", id="results_an_object"),
    pytest.param({"results": ["name", 7]}, None, "expected `results`", id="items_not_objects"),
    pytest.param({"results": [{"label": "x"}]}, None, "expected `results`", id="items_no_name"),
    pytest.param([{"name": "city"}], None, "not a JSON object (a list)", id="a_json_list"),
]
READS: dict[str, Callable[[HubSpotAdapter], object]] = {
    "properties": HubSpotAdapter.properties,
    "contact_properties": HubSpotAdapter.contact_properties,
    "setup": HubSpotAdapter.setup,
}


@pytest.mark.parametrize("read", list(READS))
@pytest.mark.parametrize(("body", "content_type", "fragment"), ODD_PROPERTY_ANSWERS)
def test_a_property_answer_of_another_shape_is_an_error_saying_what_came_never_no_properties(
    adapter: HubSpotAdapter,
    crm_server: SimServer,
    read: str,
    body: Any,
    content_type: str | None,
    fragment: str,
) -> None:
    crm_server.faults.inject(served(body, content_type, match=PROPERTY_READS))

    with pytest.raises(CrmError) as caught:
        READS[read](adapter)

    assert crm_server.faults.pending() == 0, "the odd answer was served"
    error = caught.value
    assert not error.fatal, "a later run may get a proper answer"
    assert fragment in str(error)
    assert "properties of co" in str(error), "it names the call"
    assert TOKEN not in f"{error!s} {error!r}"
    assert crm_server.requests_matching("POST", PROPERTY_WRITES) == [], "setup created nothing"


def test_an_html_page_for_the_properties_is_quoted_in_the_error_without_the_token(
    adapter: HubSpotAdapter, crm_server: SimServer
) -> None:
    crm_server.faults.inject(served(HTML, "text/html", match=PROPERTY_READS))

    with pytest.raises(CrmError) as caught:
        adapter.properties()

    message = str(caught.value)
    assert "<title>Down for maintenance</title> <p>Bearer ***</p>" in message, message
    assert TOKEN not in message
    assert len(message) < 300, "a short excerpt on one line, not the page"


def test_a_token_cut_by_the_excerpts_end_leaves_no_piece_of_it_in_the_error(
    adapter: HubSpotAdapter, crm_server: SimServer
) -> None:
    # The token starts 118 characters in: the excerpt's cut (120) falls inside it.
    page = b"<p>" + b"x" * 107 + b" Bearer " + TOKEN.encode() + b"</p>"
    crm_server.faults.inject(served(page, "text/html", match=PROPERTY_READS))

    with pytest.raises(CrmError) as caught:
        adapter.properties()

    message = str(caught.value)
    assert "Bearer **…" in message, message
    assert "Bearer p" not in message, message


def test_a_well_formed_property_answer_still_reads_and_setup_creates_nothing_twice(
    adapter: HubSpotAdapter, crm_server: SimServer
) -> None:
    assert "connect_account_id" in adapter.properties()
    assert "email" in adapter.contact_properties()
    assert adapter.setup() == []
    assert crm_server.requests_matching("POST", PROPERTY_WRITES) == []


def test_syncd_check_reports_an_unreadable_property_answer_not_every_property_missing(
    database_url: str, crm: HubSpotSim, crm_server: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect = ConnectSim(CONNECT_KEY)
    connect.seed(1, accounts=1)
    crm_server.faults.inject(served(HTML, "text/html", match=PROPERTY_READS), times=50)
    with SimServer(connect) as connect_server:
        env = {
            "SYNCD_DATABASE_URL": database_url,
            "SYNCD_CONNECT_URL": f"{connect_server.url}/public/v1",
            "SYNCD_CONNECT_API_KEY": CONNECT_KEY,
            "SYNCD_HUBSPOT_URL": crm_server.url,
            "SYNCD_HUBSPOT_TOKEN": TOKEN,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        out = io.StringIO()
        code = run(None, out)

    text = out.getvalue()
    [line] = [entry for entry in text.splitlines() if entry[5:].startswith("hubspot")]
    assert code == 1, text
    assert line.startswith("FAIL "), line
    assert "not JSON (200, text/html)" in line, line
    assert "missing" not in line, line
    assert TOKEN not in text


# --- v4 associations --------------------------------------------------------------------------


def unlinked(adapter: HubSpotAdapter, count: int) -> list[Upsert]:
    """Accounts whose company and contact both exist, not associated, as the push phase has them
    after its read: writing them takes one v4 association batch. Each contact belongs to
    another account too, which made this adapter write (and remember) it."""
    adapter.upsert([replace(account(i), contact=None) for i in range(count)])
    adapter.upsert(
        [
            Upsert(f"TA-OTHER-{i}", {"connect_account_id": f"TA-OTHER-{i}"}, account(i).contact)
            for i in range(count)
        ]
    )
    items = []
    for i in range(count):
        found = adapter.read([key(i)])[key(i)]
        assert found.contact_id is None
        items.append(replace(account(i), crm_id=found.crm_id))
    return items


def emails_of(crm: HubSpotSim, i: int) -> list[str]:
    company = crm.company(key(i))
    assert company is not None
    return [str(c.value("email")) for c in crm.company_contacts(company)]


ODD_LINK_ANSWERS = [
    pytest.param(HTML, "text/html", 200, "not JSON (200, text/html)", id="an_html_page"),
    pytest.param([], None, 200, "not a JSON object (a list)", id="a_json_list"),
    pytest.param({"results": "done"}, None, 200, "`results` is not a list", id="results_a_text"),
    pytest.param({"results": [7]}, None, 207, "entries that are not objects", id="items_numbers"),
    pytest.param(
        {"results": [{"from": {}, "to": {"id": "1"}}]},
        None,
        200,
        "without `from.id` and `to.id`",
        id="results_without_ids",
    ),
    pytest.param(
        {"results": [], "errors": [{"message": "odd", "context": "ids"}]},
        None,
        207,
        "did not confirm",
        id="error_context_a_text",
    ),
    pytest.param(
        {"results": [], "errors": {"message": "odd"}},
        None,
        207,
        "`errors` is not a list",
        id="errors_an_object",
    ),
    pytest.param(HTML, "text/html", 400, "HTTP 400", id="a_400_html_page"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "fragment"), ODD_LINK_ANSWERS)
def test_an_association_answer_of_another_shape_leaves_those_accounts_to_retry_with_the_reason(
    adapter: HubSpotAdapter,
    crm: HubSpotSim,
    crm_server: SimServer,
    body: Any,
    content_type: str | None,
    status: int,
    fragment: str,
) -> None:
    items = unlinked(adapter, 3)
    crm_server.faults.inject(served(body, content_type, status, match=LINKS))

    results = adapter.upsert([*items, account(9)])

    assert crm_server.faults.pending() == 0, "the odd answer was served"
    assert [r.outcome for r in results] == [Outcome.RETRY] * 3 + [Outcome.DONE]
    for result, item in zip(results, items, strict=False):
        assert fragment in (result.reason or ""), result.reason
        assert TOKEN not in (result.reason or "")
        assert result.crm_id == item.crm_id, "the company was written"
    assert emails_of(crm, 9) == ["buyer9@example.com"], "the account created meanwhile landed"

    again = adapter.upsert(items)

    assert {r.outcome for r in again} == {Outcome.DONE}
    assert [emails_of(crm, i) for i in range(3)] == [[f"buyer{i}@example.com"] for i in range(3)]


def test_an_association_answer_with_status_201_confirms_the_pairs_it_names(
    adapter: HubSpotAdapter, crm: HubSpotSim, crm_server: SimServer
) -> None:
    items = unlinked(adapter, 2)
    contacts = [crm.contact(f"buyer{i}@example.com") for i in range(2)]
    pairs = [(str(c.id), item.crm_id) for c, item in zip(contacts, items, strict=True) if c]
    [(contact_id, company_id), _] = pairs
    first = {"from": {"id": contact_id}, "to": {"id": company_id}}
    confirmed = {"status": "COMPLETE", "results": [first]}
    crm_server.faults.inject(served(confirmed, None, 201, match=LINKS))

    results = adapter.upsert(items)

    assert [r.outcome for r in results] == [Outcome.DONE, Outcome.RETRY]
    assert "did not confirm" in (results[1].reason or "")
