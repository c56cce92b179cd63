"""The Salesforce simulator over loopback HTTP: shapes, paging, limits and errors."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from syncd.sim.base import Fault, SimServer
from syncd.sim.salesforce import SalesforceSim, add_arguments, build_server
from syncd.sim.salesforce_schema import FieldSpec

TOKEN = "test-access-token"
API = "/services/data/v62.0"
EXT = "Connect_Account_Id__c"
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(clock: Clock) -> SalesforceSim:
    return SalesforceSim(
        TOKEN,
        refresh_token="refresh-1",
        client_id="client-1",
        client_secret="secret-1",
        page_size=10,
        clock=clock,
    )


@pytest.fixture(scope="module")
def running() -> Iterator[SimServer]:
    # One listener per module (stopping one takes half a second); each test gets a fresh app.
    with SimServer(SalesforceSim()) as server:
        yield server


@pytest.fixture
def server(running: SimServer, sim: SalesforceSim) -> SimServer:
    running.app = sim
    running.faults.clear()
    running.clear_log()
    return running


@pytest.fixture
def http(server: SimServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    # verify=False: plain HTTP on loopback, and it skips loading CA certificates per test.
    with httpx.Client(base_url=server.url, headers=headers, timeout=10, verify=False) as client:
        yield client


def account(key: str, **fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": "Account"}, EXT: key, "Name": f"Acme {key}", **fields}


def contact(key: str, **fields: Any) -> dict[str, Any]:
    base = {"attributes": {"type": "Contact"}, EXT: key, "LastName": "Doe"}
    return {**base, "Account": {EXT: key}, **fields}


def upsert(
    http: httpx.Client, sobject: str, records: list[dict[str, Any]], all_or_none: bool = False
) -> httpx.Response:
    body = {"allOrNone": all_or_none, "records": records}
    return http.patch(f"{API}/composite/sobjects/{sobject}/{EXT}", json=body)


def query(http: httpx.Client, soql: str) -> httpx.Response:
    return http.get(f"{API}/query", params={"q": soql})


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert isinstance(body, list)
    return str(body[0]["errorCode"])


def test_collections_upsert_answers_per_record_in_request_order(http: httpx.Client) -> None:
    first = upsert(http, "Account", [account("TA-1"), account("TA-2")]).json()
    again = upsert(http, "Account", [account("TA-2"), account("TA-3"), account("TA-1")]).json()

    assert [r["created"] for r in first] == [True, True]
    assert [r["created"] for r in again] == [False, True, False]
    assert [r["id"] for r in again] == [first[1]["id"], again[1]["id"], first[0]["id"]]
    assert all(r["success"] and r["errors"] == [] for r in first + again)
    assert again[1]["id"].startswith("001")
    assert len(again[1]["id"]) == 18


def test_more_than_200_records_are_refused_whole(http: httpx.Client, sim: SalesforceSim) -> None:
    response = upsert(http, "Account", [account(f"TA-{i}") for i in range(201)])

    assert response.status_code == 400
    assert error_code(response) == "EXCEEDED_ID_LIMIT"
    assert sim.count("Account") == 0


def test_unknown_field_refuses_the_request(http: httpx.Client, sim: SalesforceSim) -> None:
    response = upsert(http, "Account", [account("TA-1", Nope__c="x")])

    assert response.status_code == 400
    assert error_code(response) == "INVALID_FIELD"
    assert "Nope__c" in response.json()[0]["message"]


def test_contact_names_its_account_by_external_id(http: httpx.Client, sim: SalesforceSim) -> None:
    account_id = upsert(http, "Account", [account("TA-1")]).json()[0]["id"]

    results = upsert(http, "Contact", [contact("TA-1"), contact("TA-404")]).json()

    assert results[0]["success"]
    assert sim.contact("TA-1") is not None
    assert sim.contact("TA-1")["AccountId"] == account_id  # type: ignore[index]
    assert not results[1]["success"]
    assert results[1]["errors"][0]["statusCode"] == "INVALID_FIELD"
    assert "TA-404" in results[1]["errors"][0]["message"]


def test_unique_field_clash_is_a_per_record_duplicate_value(
    http: httpx.Client, sim: SalesforceSim
) -> None:
    sim.add_field("Account", FieldSpec("Connect_Tax_Id__c", unique=True, custom=True))

    tax = "Connect_Tax_Id__c"
    results = upsert(
        http, "Account", [account("TA-1", **{tax: "T1"}), account("TA-2", **{tax: "T1"})]
    )

    first, second = results.json()
    assert first["success"]
    assert second["errors"][0]["statusCode"] == "DUPLICATE_VALUE"
    assert second["errors"][0]["fields"] == [tax]
    assert sim.account("TA-2") is None


def test_email_validation_rejects_bad_emails_until_switched_off(
    http: httpx.Client, sim: SalesforceSim
) -> None:
    upsert(http, "Account", [account("TA-1")])

    refused = upsert(http, "Contact", [contact("TA-1", Email="not-an-email")]).json()[0]
    sim.validate_email = False
    accepted = upsert(http, "Contact", [contact("TA-1", Email="not-an-email")]).json()[0]

    assert refused["errors"][0]["statusCode"] == "INVALID_EMAIL_ADDRESS"
    assert refused["errors"][0]["fields"] == ["Email"]
    assert accepted["success"]


def test_required_field_missing_on_create(http: httpx.Client) -> None:
    record = {"attributes": {"type": "Account"}, EXT: "TA-1"}

    result = upsert(http, "Account", [record]).json()[0]

    assert result["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"


def test_locked_row_fails_only_as_often_as_asked(http: httpx.Client, sim: SalesforceSim) -> None:
    sim.lock_row("TA-2", times=1)

    first = upsert(http, "Account", [account("TA-1"), account("TA-2")]).json()
    second = upsert(http, "Account", [account("TA-2")]).json()

    assert first[0]["success"]
    assert first[1]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert second[0]["success"]


def test_all_or_none_rolls_back_every_record(http: httpx.Client, sim: SalesforceSim) -> None:
    bad = {"attributes": {"type": "Account"}, EXT: "TA-2"}

    results = upsert(http, "Account", [account("TA-1"), bad], all_or_none=True).json()

    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert sim.count("Account") == 0


def test_every_write_bumps_system_modstamp_even_without_changes(
    http: httpx.Client, sim: SalesforceSim, clock: Clock
) -> None:
    upsert(http, "Account", [account("TA-1")])
    before = sim.account("TA-1")
    clock.advance(5)

    upsert(http, "Account", [account("TA-1")])

    after = sim.account("TA-1")
    assert before is not None
    assert after is not None
    assert after["SystemModstamp"] > before["SystemModstamp"]
    assert after["LastModifiedDate"] == after["SystemModstamp"]
    assert after["CreatedDate"] == before["CreatedDate"]


def test_query_pages_follow_next_records_url(http: httpx.Client) -> None:
    upsert(http, "Account", [account(f"TA-{i:02d}") for i in range(25)])

    first = query(http, f"SELECT Id, {EXT} FROM Account ORDER BY {EXT}").json()
    second = http.get(first["nextRecordsUrl"]).json()
    third = http.get(second["nextRecordsUrl"]).json()
    stale = http.get(second["nextRecordsUrl"].rsplit("-", 1)[0] + "-20")

    assert [first["totalSize"], first["done"], second["done"], third["done"]] == [
        25,
        False,
        False,
        True,
    ]
    assert "nextRecordsUrl" not in third
    keys = [r[EXT] for page in (first, second, third) for r in page["records"]]
    assert keys == [f"TA-{i:02d}" for i in range(25)]
    assert first["records"][0]["attributes"]["type"] == "Account"
    assert stale.status_code == 400
    assert error_code(stale) == "INVALID_QUERY_LOCATOR"


def test_query_filters_on_modstamp_and_sorts_by_stamp_then_id(
    http: httpx.Client, sim: SalesforceSim, clock: Clock
) -> None:
    upsert(http, "Account", [account("TA-1"), account("TA-2"), account("TA-3")])
    clock.advance(60)
    sim.edit_account("TA-3", Name="Renamed")
    sim.edit_account("TA-1", Name="Renamed too")

    soql = (
        f"SELECT Id, {EXT}, Name, SystemModstamp FROM Account "
        "WHERE SystemModstamp >= 2026-01-01T00:01:00Z ORDER BY SystemModstamp, Id"
    )
    records = query(http, soql).json()["records"]

    assert [r[EXT] for r in records] == ["TA-1", "TA-3"]  # same stamp: Id breaks the tie
    assert records[0]["SystemModstamp"] == "2026-01-01T00:01:00.000+0000"


def test_string_literals_are_unescaped_like_salesforce(http: httpx.Client) -> None:
    hostile = "TA-'1\\"
    upsert(http, "Account", [account(hostile), account("TA-2")])

    soql = f"SELECT Id, {EXT} FROM Account WHERE {EXT} IN ('TA-\\'1\\\\')"
    records = query(http, soql).json()["records"]

    assert [r[EXT] for r in records] == [hostile]


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Id FROM Account WHERE Name = 'open", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE Name = 'bad \\q escape'", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE Name = 'a' junk", "MALFORMED_QUERY"),
        ("SELECT Nope__c FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Widget__c", "INVALID_TYPE"),
        ("SELECT Id FROM Account WHERE SystemModstamp >= '2026-01-01T00:00:00Z'", "INVALID_FIELD"),
    ],
)
def test_queries_salesforce_would_refuse_are_refused(
    http: httpx.Client, soql: str, code: str
) -> None:
    response = query(http, soql)

    assert response.status_code == 400
    assert error_code(response) == code


def test_visibility_delay_hides_writes_from_queries_only(
    http: httpx.Client, sim: SalesforceSim, clock: Clock
) -> None:
    sim.visibility_delay = 30
    account_id = upsert(http, "Account", [account("TA-1")]).json()[0]["id"]

    hidden = query(http, "SELECT Id FROM Account").json()["totalSize"]
    by_id = http.get(f"{API}/sobjects/Account/{account_id}")
    clock.advance(30)
    shown = query(http, "SELECT Id FROM Account").json()["totalSize"]

    assert (hidden, by_id.status_code, shown) == (0, 200, 1)


def test_every_api_response_carries_the_usage_header(http: httpx.Client) -> None:
    first = http.get(f"{API}/sobjects/Account/describe")
    second = query(http, "SELECT Id FROM Account")
    refused = http.get(f"{API}/sobjects/Account/describe", headers={"Authorization": "Bearer x"})

    assert first.headers["Sforce-Limit-Info"] == "api-usage=1/100000"
    assert second.headers["Sforce-Limit-Info"] == "api-usage=2/100000"
    assert "Sforce-Limit-Info" in refused.headers


def test_daily_limit_answers_403_request_limit_exceeded_and_rolls_over(
    http: httpx.Client, sim: SalesforceSim, clock: Clock
) -> None:
    sim.daily_limit = 3
    for _ in range(3):
        assert query(http, "SELECT Id FROM Account").status_code == 200

    refused = query(http, "SELECT Id FROM Account")
    clock.advance(86_400)
    after_a_day = query(http, "SELECT Id FROM Account")

    assert refused.status_code == 403
    assert refused.json() == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    assert refused.headers["Sforce-Limit-Info"] == "api-usage=3/3"
    assert after_a_day.status_code == 200


def test_concurrent_limit_uses_the_same_code_with_another_message(
    http: httpx.Client, sim: SalesforceSim
) -> None:
    sim.concurrent_limit_errors = 1

    refused = query(http, "SELECT Id FROM Account")
    accepted = query(http, "SELECT Id FROM Account")

    assert refused.status_code == 403
    assert error_code(refused) == "REQUEST_LIMIT_EXCEEDED"
    assert "Concurrent" in refused.json()[0]["message"]
    assert accepted.status_code == 200


def test_expired_token_answers_invalid_session_id(http: httpx.Client, sim: SalesforceSim) -> None:
    sim.expire_token()

    response = query(http, "SELECT Id FROM Account")

    assert response.status_code == 401
    assert response.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]


def test_refresh_token_grant_issues_a_working_access_token(
    server: SimServer, sim: SalesforceSim
) -> None:
    sim.expire_token()
    form = {
        "grant_type": "refresh_token",
        "refresh_token": "refresh-1",
        "client_id": "client-1",
        "client_secret": "secret-1",
    }

    with httpx.Client(base_url=server.url, timeout=10, verify=False) as client:
        grant = client.post("/services/oauth2/token", data=form).json()
        response = client.get(
            f"{API}/query",
            params={"q": "SELECT Id FROM Account"},
            headers={"Authorization": f"Bearer {grant['access_token']}"},
        )
        wrong = client.post("/services/oauth2/token", data={**form, "refresh_token": "other"})
        sim.revoke_refresh_token()
        revoked = client.post("/services/oauth2/token", data=form)

    assert grant["instance_url"] == server.url
    assert response.status_code == 200
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    assert revoked.status_code == 400
    assert revoked.json()["error"] == "invalid_grant"


def test_injected_faults_use_salesforce_error_shapes(http: httpx.Client, server: SimServer) -> None:
    server.faults.inject(Fault(status=503))
    server.faults.inject(Fault(status=502))

    unavailable = query(http, "SELECT Id FROM Account")
    gateway = query(http, "SELECT Id FROM Account")

    assert error_code(unavailable) == "SERVER_UNAVAILABLE"
    assert "Sforce-Limit-Info" in unavailable.headers
    assert gateway.status_code == 502
    assert gateway.headers["Content-Type"] == "text/html"


def test_dropped_response_still_applies_the_write(
    http: httpx.Client, server: SimServer, sim: SalesforceSim
) -> None:
    server.faults.inject(Fault(drop_response=True, match="PATCH"))

    with pytest.raises(httpx.TransportError):
        upsert(http, "Account", [account("TA-1")])

    assert sim.account("TA-1") is not None
    assert server.requests[-1].status == 0


def test_describe_reports_external_id_and_unique_flags(http: httpx.Client) -> None:
    body = http.get(f"{API}/sobjects/Contact/describe").json()

    fields = {f["name"]: f for f in body["fields"]}
    assert fields[EXT]["externalId"]
    assert fields[EXT]["unique"]
    assert fields["AccountId"]["referenceTo"] == ["Account"]
    assert fields["Email"]["type"] == "email"


def test_record_by_id_and_not_found_shapes(http: httpx.Client) -> None:
    account_id = upsert(http, "Account", [account("TA-1")]).json()[0]["id"]

    found = http.get(f"{API}/sobjects/Account/{account_id}").json()
    missing = http.get(f"{API}/sobjects/Account/001000000000000AAA")

    assert found["Id"] == account_id
    assert found[EXT] == "TA-1"
    assert found["attributes"]["url"].endswith(account_id)
    assert missing.status_code == 404
    assert error_code(missing) == "NOT_FOUND"


def test_any_api_version_is_routed(http: httpx.Client) -> None:
    response = http.get("/services/data/v58.0/query", params={"q": "SELECT Id FROM Account"})

    assert response.status_code == 200


def test_overlong_uri_is_refused_with_414(http: httpx.Client) -> None:
    soql = "SELECT Id FROM Account WHERE Name IN (" + ", ".join(["'x'"] * 4000) + ")"

    assert query(http, soql).status_code == 414


def test_command_line_options_build_a_simulator_requiring_the_given_token() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--port", "0", "--token", "cli-token", "--page-size", "50"])

    with (
        build_server(args) as server,
        httpx.Client(base_url=server.url, timeout=10, verify=False) as client,
    ):
        soql = {"q": "SELECT Id FROM Account"}
        ok = client.get(f"{API}/query", params=soql, headers={"Authorization": "Bearer cli-token"})
        refused = client.get(f"{API}/query", params=soql, headers={"Authorization": "Bearer x"})

    assert (ok.status_code, refused.status_code) == (200, 401)
    assert isinstance(server.app, SalesforceSim)
    assert server.app.page_size == 50


def test_a_relationship_subquery_nests_each_accounts_contacts(
    http: httpx.Client, sim: SalesforceSim
) -> None:
    upsert(http, "Account", [account("TA-1"), account("TA-2"), account("TA-3")])
    upsert(http, "Contact", [contact("TA-1", FirstName="Ann"), contact("TA-2")])
    parent = sim.account("TA-1")
    assert parent is not None
    sim.org.write("Contact", None, {"LastName": "Hand-made", "AccountId": parent["Id"]})

    soql = (
        f"SELECT Id, {EXT}, (SELECT Id, {EXT}, FirstName FROM Contacts WHERE {EXT} != null) "
        f"FROM Account WHERE {EXT} IN ('TA-1', 'TA-3') ORDER BY {EXT}"
    )
    body = query(http, soql).json()

    first, third = body["records"]
    assert body["totalSize"] == 2
    assert first[EXT] == "TA-1"
    children = first["Contacts"]
    assert (children["totalSize"], children["done"]) == (1, True)
    assert children["records"][0]["attributes"]["type"] == "Contact"
    assert (children["records"][0][EXT], children["records"][0]["FirstName"]) == ("TA-1", "Ann")
    assert third["Contacts"] is None  # no child: null, not an empty result


def test_relationship_names_salesforce_would_refuse_are_refused(http: httpx.Client) -> None:
    unknown = query(http, "SELECT Id, (SELECT Id FROM Contact) FROM Account")
    nested = query(
        http, "SELECT Id, (SELECT Id, (SELECT Id FROM Contacts) FROM Contacts) FROM Account"
    )
    bad_field = query(http, "SELECT Id, (SELECT Nope__c FROM Contacts) FROM Account")

    assert (unknown.status_code, error_code(unknown)) == (400, "INVALID_TYPE")
    assert (nested.status_code, error_code(nested)) == (400, "MALFORMED_QUERY")
    assert (bad_field.status_code, error_code(bad_field)) == (400, "INVALID_FIELD")


def test_describe_names_the_child_relationship(http: httpx.Client) -> None:
    body = http.get(f"{API}/sobjects/Account/describe").json()

    assert {
        "childSObject": "Contact",
        "field": "AccountId",
        "relationshipName": "Contacts",
    }.items() <= body["childRelationships"][0].items()


def test_a_single_record_upsert_by_external_id_answers_201_then_200(
    http: httpx.Client, sim: SalesforceSim
) -> None:
    path = f"{API}/sobjects/Account/{EXT}/TA-1"

    created = http.patch(path, json={"Name": "Acme"})
    updated = http.patch(path, json={"Name": "Acme AS"})
    contact_created = http.patch(
        f"{API}/sobjects/Contact/{EXT}/TA-1", json={"LastName": "Doe", "Account": {EXT: "TA-1"}}
    )
    refused = http.patch(f"{API}/sobjects/Account/{EXT}/TA-2", json={"Phone": "1"})

    assert (created.status_code, created.json()["created"]) == (201, True)
    assert (updated.status_code, updated.json()["created"]) == (200, False)
    assert updated.json()["id"] == created.json()["id"]
    assert sim.account("TA-1")["Name"] == "Acme AS"  # type: ignore[index]
    assert contact_created.status_code == 201
    assert sim.contact("TA-1")["AccountId"] == created.json()["id"]  # type: ignore[index]
    assert (refused.status_code, error_code(refused)) == (400, "REQUIRED_FIELD_MISSING")
    assert sim.count("Account") == 1
