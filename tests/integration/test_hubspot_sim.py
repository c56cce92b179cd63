"""The HubSpot simulator over loopback HTTP: HubSpot's shapes, limits and quirks.

The conformance tests check real simulator answers against the response schemas of HubSpot's
official v3 specs for companies and contacts (`$SYNCD_SPEC_DIR/hubspot`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from syncd.sim.base import Fault, SimServer
from syncd.sim.hubspot import HubSpotSim, RateLimits, add_arguments, build
from syncd.sim.hubspot_shapes import rate_limit_body
from tests.integration.hubspot_support import TOKEN, FakeClock, Spec, load_specs

COMPANIES = "/crm/v3/objects/companies"
CONTACTS = "/crm/v3/objects/contacts"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> HubSpotSim:
    return HubSpotSim(TOKEN, limits=None, clock=clock, custom_properties=True)


@pytest.fixture
def server(sim: HubSpotSim) -> Iterator[SimServer]:
    with SimServer(sim) as running:
        yield running


@pytest.fixture
def client(server: SimServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as http:
        yield http


@pytest.fixture(scope="module")
def specs(spec_dir: Path) -> dict[str, Spec]:
    return load_specs(spec_dir)


def upsert_companies(client: httpx.Client, *keys: str, **props: str) -> httpx.Response:
    inputs = [
        {"idProperty": "connect_account_id", "id": k, "properties": {"name": k, **props}}
        | {"objectWriteTraceId": k}
        for k in keys
    ]
    return client.post(f"{COMPANIES}/batch/upsert", json={"inputs": inputs})


def upsert_contacts(client: httpx.Client, *emails: str) -> httpx.Response:
    inputs = [
        {
            "idProperty": "email",
            "id": e,
            "properties": {"firstname": "Ann"},
            "objectWriteTraceId": e,
        }
        for e in emails
    ]
    return client.post(f"{CONTACTS}/batch/upsert", json={"inputs": inputs})


def search_modified(
    client: httpx.Client, op: str, value: int, *, after: int = 0, limit: int = 200
) -> httpx.Response:
    body = {
        "filterGroups": [
            {
                "filters": [
                    {"propertyName": "hs_lastmodifieddate", "operator": op, "value": str(value)}
                ]
            }
        ],
        "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["name", "connect_account_id"],
        "limit": limit,
        "after": str(after),
    }
    return client.post(f"{COMPANIES}/search", json=body)


# --- batch writes ----------------------------------------------------------------------------


def test_batch_upsert_creates_then_updates_and_says_which(client: httpx.Client) -> None:
    first = upsert_companies(client, "TA-1", "TA-2")
    again = upsert_companies(client, "TA-2", "TA-3")

    assert first.status_code == 200
    assert again.status_code == 200
    body = first.json()
    assert body["status"] == "COMPLETE"
    assert body["startedAt"]
    assert body["completedAt"]
    assert [r["new"] for r in body["results"]] == [True, True]
    assert {r["objectWriteTraceId"]: r["new"] for r in again.json()["results"]} == {
        "TA-2": False,
        "TA-3": True,
    }
    assert body["results"][0]["properties"]["connect_account_id"] == "TA-1"


def test_upsert_by_a_property_without_unique_values_is_refused(client: httpx.Client) -> None:
    inputs = [{"idProperty": "name", "id": "Acme", "properties": {"city": "Oslo"}}]
    response = client.post(f"{COMPANIES}/batch/upsert", json={"inputs": inputs})

    assert response.status_code == 400
    assert "non-unique" in response.json()["message"]


def test_a_batch_over_100_inputs_is_refused_whole(client: httpx.Client, sim: HubSpotSim) -> None:
    response = upsert_companies(client, *[f"TA-{i}" for i in range(101)])

    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"
    assert len(sim.companies) == 0


def test_an_unknown_property_fails_the_whole_batch(client: httpx.Client, sim: HubSpotSim) -> None:
    response = upsert_companies(client, "TA-1", no_such_property="x")

    assert response.status_code == 400
    assert "PROPERTY_DOESNT_EXIST" in response.json()["message"]
    assert len(sim.companies) == 0


def test_an_invalid_email_fails_only_that_contact(client: httpx.Client, sim: HubSpotSim) -> None:
    sim.fail_email("refused@example.com")

    response = upsert_contacts(client, "ann@example.com", "not-an-email", "refused@example.com")

    assert response.status_code == 207
    body = response.json()
    assert body["numErrors"] == 2
    assert [r["properties"]["email"] for r in body["results"]] == ["ann@example.com"]
    failed = {e["context"]["objectWriteTraceId"][0]: e for e in body["errors"]}
    assert set(failed) == {"not-an-email", "refused@example.com"}
    assert all(e["category"] == "VALIDATION_ERROR" for e in failed.values())
    assert "INVALID_EMAIL" in failed["not-an-email"]["message"]
    assert len(sim.contacts) == 1


def test_creating_a_record_with_a_taken_unique_value_conflicts(
    client: httpx.Client, sim: HubSpotSim
) -> None:
    upsert_contacts(client, "ann@example.com")
    inputs = [
        {"properties": {"email": "bob@example.com"}},
        {"properties": {"email": "ANN@example.com"}},
    ]

    response = client.post(f"{CONTACTS}/batch/create", json={"inputs": inputs})

    assert response.status_code == 409
    assert response.json()["category"] == "CONFLICT"
    assert "Existing ID" in response.json()["message"]
    assert len(sim.contacts) == 1  # nothing of the batch was written


def test_duplicate_ids_in_one_batch_are_refused(client: httpx.Client) -> None:
    response = upsert_contacts(client, "ann@example.com", "Ann@Example.com")

    assert response.status_code == 400
    assert "Duplicate IDs" in response.json()["message"]


def test_batch_read_by_unique_property_reports_missing_ids(client: httpx.Client) -> None:
    upsert_companies(client, "TA-1")
    body = {
        "idProperty": "connect_account_id",
        "inputs": [{"id": "TA-1"}, {"id": "TA-404"}],
        "properties": ["name"],
        "propertiesWithHistory": [],
    }

    response = client.post(f"{COMPANIES}/batch/read", json=body)

    assert response.status_code == 207
    answer = response.json()
    assert [r["properties"]["name"] for r in answer["results"]] == ["TA-1"]
    assert answer["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert answer["errors"][0]["context"] == {"ids": ["TA-404"]}


# --- search ----------------------------------------------------------------------------------


def test_search_filters_sorts_and_pages_by_offset(
    client: httpx.Client, sim: HubSpotSim, clock: FakeClock
) -> None:
    for i in range(5):
        upsert_companies(client, f"TA-{i}")
        clock.advance(1)
    start = clock.ms() - 5000
    middle = sim.company("TA-2")
    assert middle is not None

    first = search_modified(client, "GTE", start + 1000, limit=2).json()
    second = search_modified(client, "GTE", start + 1000, limit=2, after=2).json()
    body = {
        "filterGroups": [
            {
                "filters": [
                    {
                        "propertyName": "connect_account_id",
                        "operator": "IN",
                        "values": ["TA-0", "TA-4"],
                    }
                ]
            },
            {
                "filters": [
                    {
                        "propertyName": "hs_object_id",
                        "operator": "EQ",
                        "value": str(middle.id),
                    }
                ]
            },
        ],
        "sorts": ["name"],
    }
    either = client.post(f"{COMPANIES}/search", json=body).json()

    assert first["total"] == 4
    assert [r["properties"]["name"] for r in first["results"]] == ["TA-1", "TA-2"]
    assert first["paging"]["next"]["after"] == "2"
    assert [r["properties"]["name"] for r in second["results"]] == ["TA-3", "TA-4"]
    assert "paging" not in second
    assert [r["properties"]["name"] for r in either["results"]] == ["TA-0", "TA-2", "TA-4"]


def test_search_refuses_to_page_past_10000_results(client: httpx.Client, sim: HubSpotSim) -> None:
    sim.seed_companies((f"TA-{i:05d}" for i in range(10_050)), at=1_000)

    last_page = search_modified(client, "GTE", 0, after=9_800)
    past = search_modified(client, "GTE", 0, after=10_000)

    assert last_page.status_code == 200
    assert last_page.json()["total"] == 10_050  # the total counts beyond the cap
    assert past.status_code == 400
    assert past.json()["category"] == "VALIDATION_ERROR"


def test_search_pages_hold_at_most_200_and_one_sort(client: httpx.Client) -> None:
    too_big = search_modified(client, "GTE", 0, limit=201)
    two_sorts = client.post(f"{COMPANIES}/search", json={"sorts": ["name", "city"]})

    assert too_big.status_code == 400
    assert two_sorts.status_code == 400


def test_search_knows_which_modified_property_each_object_has(client: httpx.Client) -> None:
    def on(path: str, prop: str) -> int:
        body = {
            "filterGroups": [{"filters": [{"propertyName": prop, "operator": "GTE", "value": "0"}]}]
        }
        return client.post(f"{path}/search", json=body).status_code

    assert on(COMPANIES, "hs_lastmodifieddate") == 200
    assert on(CONTACTS, "lastmodifieddate") == 200
    assert on(COMPANIES, "lastmodifieddate") == 400


def test_every_write_bumps_the_modified_date_ours_included(
    client: httpx.Client, sim: HubSpotSim, clock: FakeClock
) -> None:
    upsert_companies(client, "TA-1", city="Oslo")
    created = sim.company("TA-1").modified_ms  # type: ignore[union-attr]
    clock.advance(2)

    upsert_companies(client, "TA-1", city="Oslo")  # same values: still a write

    found = search_modified(client, "GTE", created + 1).json()
    assert [r["properties"]["connect_account_id"] for r in found["results"]] == ["TA-1"]
    assert sim.company("TA-1").modified_ms == created + 2000  # type: ignore[union-attr]


def test_a_crm_user_edit_bumps_the_modified_date(
    client: httpx.Client, sim: HubSpotSim, clock: FakeClock
) -> None:
    upsert_companies(client, "TA-1")
    clock.advance(5)

    sim.edit_company("TA-1", city="Bergen")

    found = search_modified(client, "GTE", clock.ms()).json()
    assert found["total"] == 1
    assert sim.company("TA-1").properties["city"] == "Bergen"  # type: ignore[union-attr]


def test_search_sees_writes_only_after_the_configured_lag(
    client: httpx.Client, sim: HubSpotSim, clock: FakeClock
) -> None:
    sim.set_search_lag(5.0)
    upsert_companies(client, "TA-1", city="Oslo")
    assert search_modified(client, "GTE", 0).json()["total"] == 0

    clock.advance(5)
    assert search_modified(client, "GTE", 0).json()["results"][0]["properties"]["name"] == "TA-1"

    sim.edit_company("TA-1", name="Renamed")
    stale = search_modified(client, "GTE", 0).json()["results"][0]["properties"]["name"]
    clock.advance(5)
    fresh = search_modified(client, "GTE", 0).json()["results"][0]["properties"]["name"]
    assert (stale, fresh) == ("TA-1", "Renamed")


def test_bulk_touch_stamps_one_millisecond_on_many_records(
    client: httpx.Client, sim: HubSpotSim
) -> None:
    sim.seed_companies(f"TA-{i}" for i in range(300))

    sim.bulk_touch(250, at=1_800_000_000_000)

    assert search_modified(client, "EQ", 1_800_000_000_000).json()["total"] == 250


# --- auth, limits, faults --------------------------------------------------------------------


def test_a_missing_or_wrong_token_gets_hubspots_401(server: SimServer) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = httpx.get(f"{server.url}/crm/v3/properties/companies", headers=headers)
        assert response.status_code == 401
        assert response.json()["category"] == "INVALID_AUTHENTICATION"


def limited(clock: FakeClock, limits: RateLimits) -> tuple[SimServer, httpx.Client]:
    server = SimServer(HubSpotSim(TOKEN, limits=limits, clock=clock))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return server, httpx.Client(base_url=server.url, headers=headers, timeout=10)


def test_the_ten_second_budget_answers_429_with_hubspots_body_and_headers(
    clock: FakeClock,
) -> None:
    server, client = limited(clock, RateLimits(burst=3, daily=1000, search_per_second=None))
    with server, client:
        answers = [client.get("/crm/v3/properties/companies") for _ in range(4)]
        clock.advance(10)
        after_window = client.get("/crm/v3/properties/companies")

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-HubSpot-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    refused = answers[3]
    assert refused.headers["X-HubSpot-RateLimit-Max"] == "3"
    assert refused.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert refused.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "997"
    body = refused.json()
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["errorType"] == "RATE_LIMIT"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert after_window.status_code == 200


def test_search_has_its_own_rate_of_5_per_second_and_no_rate_headers(clock: FakeClock) -> None:
    server, client = limited(clock, RateLimits(burst=1, daily=None, search_per_second=5))
    with server, client:
        answers = [client.post(f"{COMPANIES}/search", json={}) for _ in range(6)]
        clock.advance(1)
        next_second = client.post(f"{COMPANIES}/search", json={})

    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert answers[5].json()["policyName"] == "SECONDLY"
    assert not any(h.lower().startswith("x-hubspot-ratelimit") for a in answers for h in a.headers)
    assert next_second.status_code == 200


def test_the_daily_budget_answers_429_daily(clock: FakeClock) -> None:
    server, client = limited(clock, RateLimits(burst=None, daily=2, search_per_second=None))
    with server, client:
        answers = [client.get("/crm/v3/properties/companies") for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["policyName"] == "DAILY"
    assert answers[1].headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"


def test_injected_faults_carry_hubspots_error_bodies(
    client: httpx.Client, server: SimServer
) -> None:
    server.faults.inject(Fault(status=429))
    server.faults.inject(Fault(status=429, body=rate_limit_body("SECONDLY")))
    server.faults.inject(Fault(status=503))
    server.faults.inject(Fault(status=423))

    answers = [client.get("/crm/v3/properties/companies").json() for _ in range(4)]

    assert [a.get("policyName") for a in answers[:2]] == ["TEN_SECONDLY_ROLLING", "SECONDLY"]
    assert all(a["status"] == "error" and a["correlationId"] for a in answers)
    assert answers[3]["category"] == "LOCKED"


def test_a_dropped_answer_still_applies_the_write(
    client: httpx.Client, server: SimServer, sim: HubSpotSim
) -> None:
    server.faults.inject(Fault(drop_response=True, match="batch/upsert"))

    with pytest.raises(httpx.TransportError):
        upsert_companies(client, "TA-1")

    assert sim.company("TA-1") is not None


# --- paths, properties, associations --------------------------------------------------------


def test_date_versioned_paths_reach_the_same_records(client: httpx.Client) -> None:
    upsert_companies(client, "TA-1")
    body = {"idProperty": "connect_account_id", "inputs": [{"id": "TA-1"}], "properties": ["name"]}

    classic = client.post(f"{COMPANIES}/batch/read", json=body).json()
    dated = client.post("/crm/objects/2026-03/companies/batch/read", json=body).json()
    props = client.get("/crm/properties/2026-03/companies/connect_account_id")

    assert classic["results"][0]["id"] == dated["results"][0]["id"]
    assert props.json()["hasUniqueValue"] is True


def test_properties_can_be_created_once_and_flagged_unique(client: httpx.Client) -> None:
    spec: dict[str, object] = {"name": "vat_id", "label": "VAT", "type": "string"}
    spec |= {"fieldType": "text", "groupName": "companyinformation", "hasUniqueValue": True}

    created = client.post("/crm/v3/properties/companies", json=spec)
    again = client.post("/crm/v3/properties/companies", json=spec)
    names = {p["name"] for p in client.get("/crm/v3/properties/companies").json()["results"]}
    upsert = client.post(
        f"{COMPANIES}/batch/upsert",
        json={"inputs": [{"idProperty": "vat_id", "id": "NO123", "properties": {}}]},
    )

    assert created.status_code == 201
    assert created.json()["hasUniqueValue"] is True
    assert again.status_code == 409
    assert {"vat_id", "connect_account_id", "name", "hs_lastmodifieddate"} <= names
    assert upsert.status_code == 200
    assert upsert.json()["results"][0]["new"] is True


def test_contacts_link_to_companies_inline_or_through_v4(
    client: httpx.Client, sim: HubSpotSim
) -> None:
    company_id = upsert_companies(client, "TA-1").json()["results"][0]["id"]
    inline = {"properties": {"email": "ann@example.com"}}
    inline["associations"] = [  # type: ignore[assignment]
        {
            "to": {"id": company_id},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}],
        }
    ]
    created = client.post(f"{CONTACTS}/batch/create", json={"inputs": [inline]})
    bob = upsert_contacts(client, "bob@example.com").json()["results"][0]["id"]

    linked = client.put(
        f"/crm/v4/objects/contacts/{bob}/associations/default/companies/{company_id}"
    )
    read = client.post(
        "/crm/v4/associations/companies/contacts/batch/read",
        json={"inputs": [{"id": company_id}, {"id": "999999"}]},
    ).json()
    ann = created.json()["results"][0]["id"]
    single = client.get(f"{CONTACTS}/{ann}", params={"associations": "companies"}).json()

    assert linked.json()["results"][0]["associationSpec"]["associationTypeId"] == 279
    assert {t["toObjectId"] for t in read["results"][0]["to"]} == {int(ann), int(bob)}
    assert read["errors"][0]["context"] == {"fromObjectId": ["999999"]}
    assert {r["id"] for r in single["associations"]["companies"]["results"]} == {company_id}
    company = sim.company("TA-1")
    assert company is not None
    assert company.properties["num_associated_contacts"] == "2"


def test_the_command_line_builds_a_server_with_the_given_options() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--port", "0", "--token", "abc", "--burst-limit", "0", "--setup"])

    with build(args) as server:
        answer = httpx.get(
            f"{server.url}/crm/v3/properties/companies/connect_account_id",
            headers={"Authorization": "Bearer abc"},
        )

    app = server.app
    assert isinstance(app, HubSpotSim)
    assert app.limiter is not None
    assert app.limiter.limits.burst is None
    assert answer.status_code == 200  # --setup created it; the token given is the one required
    assert "X-HubSpot-RateLimit-Max" not in answer.headers


# --- conformance with HubSpot's official specs -----------------------------------------------


def answers_of_every_kind(
    client: httpx.Client, sim: HubSpotSim
) -> list[tuple[str, str, str, httpx.Response]]:
    """(object type, spec path, method, answer) for each endpoint and status the sim serves."""
    out: list[tuple[str, str, str, httpx.Response]] = []

    def add(otype: str, suffix: str, method: str, response: httpx.Response) -> None:
        out.append((otype, f"/crm/v3/objects/{otype}{suffix}", method, response))

    add("companies", "/batch/upsert", "post", upsert_companies(client, "TA-1", "TA-2"))
    add("contacts", "/batch/upsert", "post", upsert_contacts(client, "ann@example.com", "bad"))
    company_id = sim.company("TA-1").id  # type: ignore[union-attr]
    for otype in ("companies", "contacts"):
        path = f"/crm/v3/objects/{otype}"
        create = {
            "inputs": [
                {"properties": {"name" if otype == "companies" else "email": "x@example.com"}}
            ]
        }
        add(otype, "/batch/create", "post", client.post(f"{path}/batch/create", json=create))
        update = {
            "inputs": [
                {"id": str(company_id), "properties": {}},
                {"id": "424242", "properties": {}},
            ]
        }
        add(otype, "/batch/update", "post", client.post(f"{path}/batch/update", json=update))
        read = {
            "inputs": [{"id": str(company_id)}, {"id": "1"}],
            "properties": [],
            "propertiesWithHistory": [],
        }
        add(otype, "/batch/read", "post", client.post(f"{path}/batch/read", json=read))
        add(otype, "/search", "post", client.post(f"{path}/search", json={"limit": 1}))
        add(otype, "/search", "post", client.post(f"{path}/search", json={"after": "10000"}))
        add(otype, "", "get", client.get(path, params={"limit": 1, "properties": "name,email"}))
        single = "/{companyId}" if otype == "companies" else "/{contactId}"
        add(
            otype,
            single,
            "get",
            client.get(f"{path}/{company_id}", params={"associations": "contacts"}),
        )
        add(otype, single, "get", client.get(f"{path}/31337"))
    add(
        "companies",
        "/batch/upsert",
        "post",
        upsert_companies(client, *[f"T{i}" for i in range(101)]),
    )
    add(
        "contacts",
        "/batch/create",
        "post",
        client.post(
            f"{CONTACTS}/batch/create",
            json={"inputs": [{"properties": {"email": "ann@example.com"}}]},
        ),
    )
    refused = httpx.get(f"{client.base_url}{COMPANIES}", headers={"Authorization": "Bearer nope"})
    add("companies", "", "get", refused)
    return out


def test_every_answer_matches_hubspots_official_response_schemas(
    client: httpx.Client, server: SimServer, sim: HubSpotSim, specs: dict[str, Spec]
) -> None:
    server.faults.inject(Fault(status=429, match="GET /crm/v3/objects/contacts\\?"))
    answers = answers_of_every_kind(client, sim)
    answers.append(("contacts", CONTACTS, "get", client.get(CONTACTS)))

    statuses = set()
    for otype, path, method, response in answers:
        spec = specs[otype]
        schema = spec.response_schema(path, method, response.status_code)
        problems = spec.problems(schema, response.json())
        assert not problems, f"{method.upper()} {path} -> {response.status_code}: {problems}"
        statuses.add(response.status_code)
    assert statuses == {200, 207, 400, 401, 404, 409, 429}


def test_association_answers_match_the_specs_default_association_schema(
    client: httpx.Client, specs: dict[str, Spec]
) -> None:
    company = upsert_companies(client, "TA-1").json()["results"][0]["id"]
    contact = upsert_contacts(client, "ann@example.com").json()["results"][0]["id"]
    spec = specs["companies"]
    schema = spec.component("BatchResponsePublicDefaultAssociation")

    single = client.put(
        f"/crm/v4/objects/contacts/{contact}/associations/default/companies/{company}"
    )
    batch = client.post(
        "/crm/v4/associations/contacts/companies/batch/associate/default",
        json={
            "inputs": [
                {"from": {"id": contact}, "to": {"id": company}},
                {"from": {"id": "1"}, "to": {"id": "2"}},
            ]
        },
    )

    assert batch.status_code == 207
    for response in (single, batch):
        assert not spec.problems(schema, response.json())


@pytest.mark.parametrize(
    "association",
    [
        {"to": {"id": "{company}"}},
        {"to": {"id": "{company}"}, "types": []},
        {"to": {"id": "{company}"}, "types": [{"associationTypeId": 279}]},
        {
            "to": {"id": "{company}"},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 280}],
        },
    ],
)
def test_a_malformed_inline_association_refuses_the_create_batch(
    client: httpx.Client, sim: HubSpotSim, association: dict[str, object]
) -> None:
    company_id = upsert_companies(client, "TA-1").json()["results"][0]["id"]
    spec = json.loads(json.dumps(association).replace("{company}", company_id))
    good = {"properties": {"email": "bob@example.com"}}
    bad = {"properties": {"email": "ann@example.com"}, "associations": [spec]}

    response = client.post(f"{CONTACTS}/batch/create", json={"inputs": [good, bad]})

    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"
    assert len(sim.contacts) == 0  # nothing written: 280 is company -> contact


def test_a_create_batch_holding_an_existing_email_is_refused_whole_naming_it(
    client: httpx.Client, sim: HubSpotSim
) -> None:
    existing = upsert_contacts(client, "ann@example.com").json()["results"][0]["id"]
    inputs = [{"properties": {"email": e}} for e in ("bob@example.com", "Ann@Example.com")]

    response = client.post(f"{CONTACTS}/batch/create", json={"inputs": inputs})

    assert response.status_code == 409
    assert response.json()["message"] == f"Contact already exists. Existing ID: {existing}"
    assert len(sim.contacts) == 1
