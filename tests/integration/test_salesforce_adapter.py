"""The Salesforce adapter against the simulator over loopback HTTP."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from syncd.crm.port import CrmError, Outcome, Upsert
from syncd.crm.salesforce import SalesforceAdapter
from syncd.crm.salesforce_http import QuotaExceeded
from syncd.retry import RetryPolicy
from syncd.sim.base import Fault, SimServer
from syncd.sim.salesforce import SalesforceSim
from syncd.sim.salesforce_schema import FieldSpec
from syncd.sim.salesforce_soql import Comparison, parse

TOKEN = "adapter-access-token-123"
REFRESH = "adapter-refresh-token-456"
SECRET = "adapter-client-secret-789"
EXT = "Connect_Account_Id__c"
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(clock: Clock) -> SalesforceSim:
    return SalesforceSim(
        TOKEN, refresh_token=REFRESH, client_id="client-1", client_secret=SECRET, clock=clock
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
def sleeps() -> list[float]:
    return []


Factory = Callable[..., SalesforceAdapter]


@pytest.fixture
def make(server: SimServer, sleeps: list[float]) -> Iterator[Factory]:
    built: list[SalesforceAdapter] = []

    def build(**options: Any) -> SalesforceAdapter:
        options.setdefault("retry", RetryPolicy(attempts=4, sleep=sleeps.append))
        # verify=False: plain HTTP on loopback, and it skips loading CA certificates per test.
        options.setdefault("transport", httpx.HTTPTransport(verify=False))
        adapter = SalesforceAdapter(server.url, options.pop("token", TOKEN), **options)
        built.append(adapter)
        return adapter

    yield build
    for adapter in built:
        adapter.close()


@pytest.fixture
def adapter(make: Factory) -> SalesforceAdapter:
    return make(refresh_token=REFRESH, client_id="client-1", client_secret=SECRET)


def item(n: int, name: str | None = None, email: str | None = None) -> Upsert:
    key = f"TA-0000-0000-{n:04d}"
    return Upsert(
        key,
        {"Name": name or f"Acme {n}", "BillingCity": "Lyon", "Connect_Tax_Id__c": f"FR{n}"},
        {"FirstName": "Ann", "LastName": f"Doe {n}", "Email": email or f"ann{n}@example.com"},
    )


def writes(server: SimServer, sobject: str) -> int:
    return len(server.requests_matching("PATCH", f"/composite/sobjects/{sobject}/"))


def test_thousand_accounts_take_five_plus_five_calls_then_a_hundred_changes(
    adapter: SalesforceAdapter, server: SimServer, sim: SalesforceSim, clock: Clock
) -> None:
    results = adapter.upsert([item(n) for n in range(1000)])

    assert Counter(r.outcome for r in results) == {Outcome.DONE: 1000}
    assert all(r.crm_id and r.contact_id for r in results)
    assert [r.key for r in results] == [item(n).key for n in range(1000)]
    assert (writes(server, "Account"), writes(server, "Contact")) == (5, 5)

    clock.advance(60)
    since = clock.datetime()
    changed = adapter.upsert([item(n, name=f"New name {n}") for n in range(0, 1000, 10)])
    seen = {record.key: record for record in adapter.changed_since(since)}

    assert all(r.outcome is Outcome.DONE for r in changed)
    assert (writes(server, "Account"), writes(server, "Contact")) == (6, 6)
    assert set(seen) == {item(n).key for n in range(0, 1000, 10)}
    assert seen[item(10).key].fields["Name"] == "New name 10"
    assert seen[item(10).key].contact["LastName"] == "Doe 10"
    assert seen[item(10).key].modified_at == since
    assert sim.count("Account") == 1000
    assert sim.count("Contact") == 1000


def test_crm_side_edits_of_accounts_or_contacts_are_changes(
    adapter: SalesforceAdapter, sim: SalesforceSim, clock: Clock
) -> None:
    adapter.upsert([item(n) for n in range(10)])
    clock.advance(60)
    since = clock.datetime()

    sim.edit_account(item(1).key, Phone="+33 1 23")
    sim.edit_contact(item(2).key, Email="new@example.com")
    changed = {record.key: record for record in adapter.changed_since(since)}

    assert set(changed) == {item(1).key, item(2).key}
    assert changed[item(1).key].fields["Phone"] == "+33 1 23"
    assert changed[item(2).key].contact["Email"] == "new@example.com"
    assert changed[item(2).key].fields["Name"] == "Acme 2"


def test_changed_since_follows_next_records_url(
    adapter: SalesforceAdapter, server: SimServer, sim: SalesforceSim, clock: Clock
) -> None:
    sim.page_size = 50
    since = clock.datetime()
    adapter.upsert([item(n) for n in range(120)])

    keys = [record.key for record in adapter.changed_since(since)]

    assert sorted(keys) == sorted(item(n).key for n in range(120))
    # 3 pages of Accounts, then 3 of Contacts (each Contact was written too): 2 + 2 locators.
    assert len(server.requests_matching("GET", r"/query/01g")) == 4


def test_one_invalid_email_in_two_hundred_rejects_only_that_account(
    adapter: SalesforceAdapter,
) -> None:
    items = [item(n, email="not an email" if n == 7 else None) for n in range(200)]

    results = adapter.upsert(items)

    assert Counter(r.outcome for r in results) == {Outcome.DONE: 199, Outcome.REJECTED: 1}
    rejected = results[7]
    assert rejected.key == item(7).key
    assert rejected.reason is not None
    assert "INVALID_EMAIL_ADDRESS" in rejected.reason
    assert rejected.crm_id is not None  # the Account itself was written


def test_lost_response_is_unknown_then_read_back_shows_it_without_duplicates(
    adapter: SalesforceAdapter, server: SimServer, sim: SalesforceSim
) -> None:
    items = [item(n) for n in range(10)]
    server.faults.inject(Fault(drop_response=True, match=r"composite/sobjects/Account"))

    lost = adapter.upsert(items)
    found = adapter.read([i.key for i in items])
    again = adapter.upsert(items)

    assert {r.outcome for r in lost} == {Outcome.UNKNOWN}
    assert set(found) == {i.key for i in items}
    assert all(r.outcome is Outcome.DONE for r in again)
    assert [r.crm_id for r in again] == [found[i.key].crm_id for i in items]
    assert sim.count("Account") == 10
    assert writes(server, "Account") == 2  # no blind retry of the lost call


def test_daily_quota_403_stops_the_run_and_is_not_auth(
    adapter: SalesforceAdapter, server: SimServer, sim: SalesforceSim, sleeps: list[float]
) -> None:
    sim.exhaust_quota()

    with pytest.raises(QuotaExceeded) as caught:
        adapter.upsert([item(1)])

    assert isinstance(caught.value, CrmError)
    assert caught.value.fatal
    assert caught.value.status == 403
    assert "not an authentication failure" in str(caught.value)
    assert sim.token_grants == 0
    assert not any(k.startswith("token") for k in adapter.stats)
    assert len(server.requests) == 1
    assert sleeps == []
    assert adapter.quota is not None
    assert adapter.quota.remaining == 0


def test_concurrent_request_limit_is_retried(
    adapter: SalesforceAdapter, sim: SalesforceSim, sleeps: list[float]
) -> None:
    adapter.upsert([item(1)])
    sim.concurrent_limit_errors = 2

    found = adapter.read([item(1).key])

    assert set(found) == {item(1).key}
    assert len(sleeps) == 2
    assert adapter.stats["query 403"] == 2


def test_expired_token_is_refreshed_once_then_the_call_succeeds(
    adapter: SalesforceAdapter, sim: SalesforceSim
) -> None:
    adapter.upsert([item(1)])
    sim.expire_token()

    found = adapter.read([item(1).key])
    adapter.read([item(1).key])

    assert set(found) == {item(1).key}
    assert sim.token_grants == 1
    assert adapter.stats["query 401"] == 1
    assert adapter.stats["token 200"] == 1


def test_a_second_401_after_refreshing_is_fatal(
    adapter: SalesforceAdapter, server: SimServer, sim: SalesforceSim
) -> None:
    server.faults.inject(Fault(status=401, match="query"), times=2)

    with pytest.raises(CrmError) as caught:
        adapter.read([item(1).key])

    assert caught.value.fatal
    assert caught.value.status == 401
    assert sim.token_grants == 1  # refreshed once, no loop
    assert "INVALID_SESSION_ID" in str(caught.value)


def test_401_without_a_refresh_flow_is_fatal_with_a_clear_message(
    make: Factory, sim: SalesforceSim
) -> None:
    plain = make()
    sim.expire_token()

    with pytest.raises(CrmError) as caught:
        plain.properties()

    assert caught.value.fatal
    assert caught.value.status == 401
    assert "SYNCD_SALESFORCE_TOKEN" in str(caught.value)


def test_revoked_refresh_token_is_fatal(adapter: SalesforceAdapter, sim: SalesforceSim) -> None:
    sim.expire_token()
    sim.revoke_refresh_token()

    with pytest.raises(CrmError) as caught:
        adapter.read([item(1).key])

    assert caught.value.fatal
    assert "invalid_grant" in str(caught.value)


def test_tokens_never_reach_reprs_errors_or_logs(
    adapter: SalesforceAdapter, server: SimServer, sim: SalesforceSim, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    sim.expire_token()
    adapter.read([item(1).key])  # refreshes
    server.faults.inject(Fault(status=401), times=2)
    with pytest.raises(CrmError) as caught:
        adapter.read([item(1).key])

    secrets = [TOKEN, REFRESH, SECRET, *sim.tokens]
    text = " ".join([caplog.text, repr(adapter), str(caught.value), repr(caught.value)])
    assert sim.tokens
    assert not [s for s in secrets if s in text]


def test_hostile_ids_in_read_do_not_change_the_soql(
    adapter: SalesforceAdapter, sim: SalesforceSim
) -> None:
    hostile = [
        "TA-1' OR Name != '",
        "TA-2\\' OR Name != null OR Name = \\'",
        "x') OR Id != null OR Connect_Account_Id__c IN ('",
        'TA-"3"\n\t\\',
        "TA-4\\",
    ]
    written = adapter.upsert([Upsert(key, {"Name": "H"}) for key in hostile[:2]] + [item(9)])
    assert all(r.outcome is Outcome.DONE for r in written)
    sim.soql_log.clear()

    found = adapter.read(hostile)

    assert set(found) == set(hostile[:2])
    where = parse(sim.soql_log[0]).where
    assert isinstance(where, Comparison)
    assert where.op == "IN"
    assert where.field == EXT
    assert where.value == tuple(hostile)


def test_reads_are_chunked_to_keep_urls_short(make: Factory, sim: SalesforceSim) -> None:
    lengths: list[int] = []

    class Recording(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            lengths.append(len(str(request.url)))
            return super().handle_request(request)

    adapter = make(transport=Recording(verify=False), max_url_length=2000)
    adapter.upsert([item(n) for n in range(300)])
    lengths.clear()

    found = adapter.read([item(n).key for n in range(300)] + ["TA-missing"])

    assert len(found) == 300
    assert len(lengths) > 2
    assert max(lengths) <= 2000


def test_server_errors_are_retried_with_bounded_backoff(
    adapter: SalesforceAdapter, server: SimServer, sleeps: list[float]
) -> None:
    server.faults.inject(Fault(status=503, headers={"Retry-After": "7"}), times=2)
    assert adapter.read([item(1).key]) == {}
    assert sleeps == [7.0, 7.0]

    server.faults.inject(Fault(status=500, match="query"), times=10)
    with pytest.raises(CrmError) as caught:
        adapter.read([item(1).key])
    assert not caught.value.fatal
    assert caught.value.status == 500
    assert adapter.stats["query 500"] == 4  # RetryPolicy(attempts=4)


def test_contacts_failing_after_their_accounts_are_written_wait_for_a_retry(
    adapter: SalesforceAdapter, server: SimServer
) -> None:
    server.faults.inject(Fault(status=503, match="sobjects/Contact"), times=10)

    results = adapter.upsert([item(1), item(2)])

    assert {r.outcome for r in results} == {Outcome.RETRY}
    assert all(r.crm_id for r in results)


def test_locked_rows_retry_and_duplicates_are_rejected(
    adapter: SalesforceAdapter, sim: SalesforceSim
) -> None:
    sim.add_field("Account", FieldSpec("Connect_Tax_Id__c", unique=True, custom=True))
    sim.lock_row(item(1).key)
    clash = Upsert(item(3).key, {"Name": "Clash", "Connect_Tax_Id__c": "FR2"})

    results = adapter.upsert([item(1), item(2), clash])

    assert [r.outcome for r in results] == [Outcome.RETRY, Outcome.DONE, Outcome.REJECTED]
    assert results[0].reason is not None
    assert "UNABLE_TO_LOCK_ROW" in results[0].reason
    assert results[2].reason is not None
    assert "DUPLICATE_VALUE" in results[2].reason


def test_usage_header_is_recorded(adapter: SalesforceAdapter, sim: SalesforceSim) -> None:
    adapter.properties()
    adapter.contact_properties()

    assert adapter.quota is not None
    assert (adapter.quota.used, adapter.quota.limit) == (2, sim.daily_limit)
    assert adapter.stats == {"describe 200": 2}


def test_properties_come_from_describe(adapter: SalesforceAdapter) -> None:
    assert {"Name", "BillingCity", EXT, "Connect_Tax_Id__c"} <= adapter.properties()
    assert {"Email", "AccountId", EXT} <= adapter.contact_properties()


def test_setup_checks_the_org_and_names_everything_missing(
    adapter: SalesforceAdapter, sim: SalesforceSim
) -> None:
    assert adapter.setup()

    sim.drop_field("Account", "Connect_Tax_Id__c")
    sim.add_field("Contact", FieldSpec(EXT, external_id=True, unique=False, custom=True))
    with pytest.raises(CrmError) as caught:
        adapter.setup()

    message = str(caught.value)
    assert caught.value.fatal
    assert "Account.Connect_Tax_Id__c is missing" in message
    assert "Contact.Connect_Account_Id__c is not marked Unique" in message


def test_a_key_repeated_in_one_call_goes_in_separate_batches_and_the_last_wins(
    adapter: SalesforceAdapter, server: SimServer, sim: SalesforceSim
) -> None:
    items = [item(1, name="First"), item(2), item(1, name="Second")]

    results = adapter.upsert(items)

    assert [r.outcome for r in results] == [Outcome.DONE] * 3
    assert [r.key for r in results] == [i.key for i in items]
    assert writes(server, "Account") == 2
    account = sim.account(item(1).key)
    assert account is not None
    assert account["Name"] == "Second"


def test_a_batch_of_200_accounts_and_their_contacts_is_read_in_one_query(
    adapter: SalesforceAdapter, sim: SalesforceSim
) -> None:
    adapter.upsert([item(n) for n in range(200)] + [Upsert("TA-no-contact", {"Name": "Solo"})])
    sim.soql_log.clear()

    found = adapter.read([item(n).key for n in range(200)] + ["TA-no-contact", "TA-missing"])

    assert len(sim.soql_log) == 1
    assert "FROM Contacts" in sim.soql_log[0]
    assert len(found) == 201
    assert found[item(7).key].contact["LastName"] == "Doe 7"
    assert found[item(7).key].contact_id == sim.contact(item(7).key)["Id"]  # type: ignore[index]
    assert (found["TA-no-contact"].contact_id, found["TA-no-contact"].contact) == (None, {})


def test_an_account_found_unchanged_is_not_written_when_only_its_contact_changes(
    adapter: SalesforceAdapter, server: SimServer, sim: SalesforceSim
) -> None:
    adapter.upsert([item(1)])
    held = adapter.read([item(1).key])[item(1).key]
    server.clear_log()
    contact_only = replace(item(1, email="new@example.com"), fields={}, crm_id=held.crm_id)

    [result] = adapter.upsert([contact_only])

    assert (result.outcome, result.crm_id) == (Outcome.DONE, held.crm_id)
    assert (writes(server, "Account"), writes(server, "Contact")) == (0, 1)
    assert sim.contact(item(1).key)["Email"] == "new@example.com"  # type: ignore[index]
