"""The HubSpot adapter against the HubSpot simulator over loopback HTTP.

The simulator and the adapter's retry policy share one fake clock: rate windows, search lag and
timestamps move only when a test (or a retry's recorded sleep) moves them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.crm.hubspot import HubSpotAdapter
from syncd.crm.port import CrmError, Outcome, Upsert
from syncd.retry import RetryPolicy
from syncd.sim.base import Fault, SimServer
from syncd.sim.hubspot import HubSpotSim, RateLimits
from syncd.sim.hubspot_shapes import rate_limit_body
from syncd.sim.hubspot_store import PropertyDef
from tests.integration.hubspot_support import TOKEN, FakeClock, Spec, load_specs

COMPANY_UPSERTS = "/crm/v3/objects/companies/batch/upsert"
COMPANY_CREATES = "/crm/v3/objects/companies/batch/create"
CONTACT_UPSERTS = "/crm/v3/objects/contacts/batch/upsert"
CONTACT_CREATES = "/crm/v3/objects/contacts/batch/create"
CONTACT_READS = "/crm/v3/objects/contacts/batch/read"
LINKS = "/crm/v4/associations/contacts/companies/batch/associate/default"


def key(i: int) -> str:
    return f"TA-{i:04d}-0000-0000"


def account(i: int, **fields: str | None) -> Upsert:
    return Upsert(
        key(i),
        {"connect_account_id": key(i), "name": f"Company {i}", "city": "Oslo", **fields},
        {"email": f"buyer{i}@example.com", "firstname": "Ann", "lastname": f"Buyer {i}"},
    )


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


def make_adapter(
    server: SimServer, clock: FakeClock, token: str = TOKEN, **options: object
) -> HubSpotAdapter:
    retry = RetryPolicy(sleep=clock.sleep, clock=clock)
    return HubSpotAdapter(server.url, token, retry=retry, timeout=10, **options)  # type: ignore[arg-type]


@pytest.fixture
def adapter(server: SimServer, clock: FakeClock) -> Iterator[HubSpotAdapter]:
    with make_adapter(server, clock) as made:
        yield made


@pytest.fixture
def open_adapter(server: SimServer, clock: FakeClock) -> Iterator[Callable[..., HubSpotAdapter]]:
    """Adapters with options of the test's choosing, closed after it."""
    made: list[HubSpotAdapter] = []

    def build(**options: object) -> HubSpotAdapter:
        made.append(make_adapter(server, clock, **options))  # type: ignore[arg-type]
        return made[-1]

    yield build
    for one in made:
        one.close()


def since_now(clock: FakeClock) -> datetime:
    return datetime.fromtimestamp(clock.now, UTC)


def posts(server: SimServer, path: str) -> int:
    return len(server.requests_matching("POST", f"^{path}$"))


# --- setup and volume ------------------------------------------------------------------------


def test_setup_creates_the_custom_properties_once(clock: FakeClock) -> None:
    app = HubSpotSim(TOKEN, limits=None, clock=clock)
    with SimServer(app) as server, make_adapter(server, clock) as adapter:
        before = adapter.properties()
        first, second = adapter.setup(), adapter.setup()
        after = adapter.properties()
        contact = adapter.contact_properties()

    assert "connect_account_id" not in before
    assert {"connect_account_id", "connect_tax_id"} <= after
    assert {"email", "firstname", "lastname", "phone"} <= contact
    assert first == [
        "created company property connect_account_id (unique)",
        "created company property connect_tax_id",
    ]
    assert second == []
    assert app.companies.properties["connect_account_id"].unique


def as_read(item: Upsert, adapter: HubSpotAdapter) -> Upsert:
    """The upsert the push phase makes after reading the account: with the ids it found."""
    held = adapter.read([item.key]).get(item.key)
    if held is None:
        return item
    linked = held.contact_id if held.contact.get("email") == item.contact["email"] else None  # type: ignore[index]
    return replace(item, crm_id=held.crm_id, contact_id=linked)


def other_account_of(item: Upsert) -> Upsert:
    """Another account with the same contact (one person running two accounts)."""
    return Upsert("TA-OTHER", {"connect_account_id": "TA-OTHER", "name": "Other"}, item.contact)


def renamed_contact(item: Upsert) -> Upsert:
    return replace(item, contact={**(item.contact or {}), "firstname": "Anna"})


def test_a_thousand_new_accounts_take_two_calls_per_hundred_then_a_hundred_changes_are_found(
    adapter: HubSpotAdapter, server: SimServer, sim: HubSpotSim, clock: FakeClock
) -> None:
    results = adapter.upsert([account(i) for i in range(1000)])

    assert {r.outcome for r in results} == {Outcome.DONE}
    assert all(r.crm_id and r.contact_id for r in results)
    calls = [COMPANY_CREATES, COMPANY_UPSERTS, CONTACT_CREATES, CONTACT_UPSERTS, LINKS]
    # Contacts upserted first, then companies created with the link to their contact inline.
    assert [posts(server, p) for p in calls] == [10, 0, 0, 10, 0]
    assert (len(sim.companies), len(sim.contacts)) == (1000, 1000)
    company = sim.company(key(7))
    assert company is not None
    assert [c.value("email") for c in sim.company_contacts(company)] == ["buyer7@example.com"]

    clock.advance(60)
    since = since_now(clock)
    changed = [as_read(account(i, name=f"Renamed {i}"), adapter) for i in range(0, 1000, 10)]
    server.clear_log()
    adapter.upsert(changed)
    found = list(adapter.changed_since(since))

    # The read found each contact linked: a plain upsert, no association call.
    assert [posts(server, p) for p in calls] == [0, 1, 0, 1, 0]
    assert sorted(r.key for r in found) == sorted(c.key for c in changed)  # each once
    assert all(r.fields["name"] == f"Renamed {int(r.key[3:7])}" for r in found)
    assert all(r.contact["email"] == f"buyer{int(r.key[3:7])}@example.com" for r in found)
    assert all(r.modified_at is not None and r.modified_at >= since for r in found)


def existing_companies(adapter: HubSpotAdapter, count: int) -> list[Upsert]:
    """Accounts whose companies exist without a contact, as the push phase has them after its
    read: each account's contact is then new to its company."""
    adapter.upsert([replace(account(i), contact=None) for i in range(count)])
    return [as_read(account(i), adapter) for i in range(count)]


def test_new_accounts_take_two_calls_even_when_a_contact_exists_already(
    adapter: HubSpotAdapter,
    server: SimServer,
    sim: HubSpotSim,
    open_adapter: Callable[..., HubSpotAdapter],
) -> None:
    other = open_adapter()  # another process: this adapter has not seen its contact
    other.upsert([other_account_of(account(5))])
    server.clear_log()

    results = adapter.upsert([account(i) for i in range(10)])

    assert {r.outcome for r in results} == {Outcome.DONE}
    calls = [CONTACT_UPSERTS, COMPANY_CREATES, CONTACT_CREATES, LINKS, CONTACT_READS]
    assert [posts(server, p) for p in calls] == [1, 1, 0, 0, 0]
    ann = sim.contact("buyer5@example.com")
    assert ann is not None
    assert results[5].contact_id == str(ann.id)
    assert sorted(sim.associations.companies_of(ann.id)) == sorted(
        c.id for c in (sim.company("TA-OTHER"), sim.company(key(5))) if c is not None
    )
    assert len(sim.contacts) == 10


def test_a_contact_made_elsewhere_is_upserted_and_linked_alone_while_the_others_are_created(
    adapter: HubSpotAdapter,
    server: SimServer,
    sim: HubSpotSim,
    open_adapter: Callable[..., HubSpotAdapter],
) -> None:
    items = existing_companies(adapter, 10)
    other = open_adapter()  # another process: this adapter has not seen its contact
    other.upsert([other_account_of(account(5))])
    server.clear_log()

    results = adapter.upsert(items)

    assert {r.outcome for r in results} == {Outcome.DONE}
    creates = server.requests_matching("POST", f"^{CONTACT_CREATES}$")
    assert [c.status for c in creates] == [409, 200]  # HubSpot refuses the batch whole
    assert len(creates[1].json()["inputs"]) == 9
    upserted = server.requests_matching("POST", f"^{CONTACT_UPSERTS}$")
    assert [i["id"] for r in upserted for i in r.json()["inputs"]] == ["buyer5@example.com"]
    assert (posts(server, CONTACT_READS), posts(server, LINKS)) == (1, 1)
    assert len(sim.contacts) == 10
    for i in range(10):
        company = sim.company(key(i))
        assert company is not None
        emails = [c.value("email") for c in sim.company_contacts(company)]
        assert emails == [f"buyer{i}@example.com"]
    ann = sim.contact("buyer5@example.com")
    assert ann is not None
    assert results[5].contact_id == str(ann.id)


def test_a_contact_shared_with_an_account_of_an_earlier_batch_is_upserted_and_linked(
    adapter: HubSpotAdapter, server: SimServer, sim: HubSpotSim
) -> None:
    items = existing_companies(adapter, 10)
    adapter.upsert([other_account_of(account(5))])
    server.clear_log()

    results = adapter.upsert(items)

    assert {r.outcome for r in results} == {Outcome.DONE}
    creates = server.requests_matching("POST", f"^{CONTACT_CREATES}$")
    assert [(c.status, len(c.json()["inputs"])) for c in creates] == [(200, 9)]  # no 409
    assert [posts(server, p) for p in (CONTACT_UPSERTS, LINKS, CONTACT_READS)] == [1, 1, 0]
    ann = sim.contact("buyer5@example.com")
    assert ann is not None
    assert sorted(sim.associations.companies_of(ann.id)) == sorted(
        c.id for c in (sim.company("TA-OTHER"), sim.company(key(5))) if c is not None
    )
    assert len(sim.contacts) == 10


def test_a_company_whose_create_answer_was_lost_is_found_linked_and_then_only_upserted(
    adapter: HubSpotAdapter, server: SimServer, sim: HubSpotSim
) -> None:
    server.faults.inject(Fault(drop_response=True, match="companies/batch/create"))

    first = adapter.upsert([account(1), account(2)])

    assert {r.outcome for r in first} == {Outcome.UNKNOWN}
    again = [as_read(renamed_contact(account(i)), adapter) for i in (1, 2)]
    assert all(item.contact_id for item in again)  # the create was applied, linked inline
    server.clear_log()

    assert {r.outcome for r in adapter.upsert(again)} == {Outcome.DONE}
    assert [posts(server, p) for p in (COMPANY_CREATES, CONTACT_CREATES, LINKS)] == [0, 0, 0]
    assert (len(sim.companies), len(sim.contacts)) == (2, 2)


def test_a_contact_whose_upsert_answer_was_lost_is_linked_next_time_without_a_duplicate(
    adapter: HubSpotAdapter, server: SimServer, sim: HubSpotSim
) -> None:
    server.faults.inject(Fault(drop_response=True, match="contacts/batch/upsert"))

    first = adapter.upsert([account(1), account(2)])

    assert {r.outcome for r in first} == {Outcome.UNKNOWN}
    assert all(r.crm_id for r in first)  # the companies were created, without a link
    again = [as_read(account(i), adapter) for i in (1, 2)]
    assert all(item.crm_id and not item.contact_id for item in again)

    assert {r.outcome for r in adapter.upsert(again)} == {Outcome.DONE}
    assert (len(sim.companies), len(sim.contacts)) == (2, 2)
    for i in (1, 2):
        company = sim.company(key(i))
        assert company is not None
        emails = [c.value("email") for c in sim.company_contacts(company)]
        assert emails == [f"buyer{i}@example.com"]


def test_a_company_found_unchanged_is_not_written_when_only_its_contact_changes(
    adapter: HubSpotAdapter, server: SimServer, sim: HubSpotSim
) -> None:
    adapter.upsert([account(1)])
    item = as_read(renamed_contact(account(1)), adapter)
    server.clear_log()

    result = adapter.upsert([replace(item, fields={"connect_account_id": key(1)})])

    assert result[0].outcome is Outcome.DONE
    assert result[0].crm_id == item.crm_id
    assert [posts(server, p) for p in (COMPANY_UPSERTS, CONTACT_UPSERTS)] == [0, 1]
    assert sim.contact("buyer1@example.com").value("firstname") == "Anna"  # type: ignore[union-attr]


def test_one_invalid_email_in_a_batch_of_100_rejects_only_that_account(
    adapter: HubSpotAdapter, sim: HubSpotSim
) -> None:
    items = [account(i) for i in range(100)]
    items[42] = replace(items[42], contact={"email": "buyer42 at example.com", "firstname": "Ann"})

    results = adapter.upsert(items)

    assert [r.outcome for r in results].count(Outcome.DONE) == 99
    rejected = results[42]
    assert rejected.outcome is Outcome.REJECTED
    assert rejected.reason == "Email address buyer42 at example.com is invalid (INVALID_EMAIL)"
    assert rejected.crm_id is not None  # the company itself was written
    assert len(sim.contacts) == 99


def test_a_lost_answer_leaves_the_batch_unknown_and_read_back_settles_it_without_duplicates(
    adapter: HubSpotAdapter, server: SimServer, sim: HubSpotSim
) -> None:
    items = [account(i) for i in range(100)]
    server.faults.inject(Fault(drop_response=True, match="companies/batch/create"))

    first = adapter.upsert(items)

    assert {r.outcome for r in first} == {Outcome.UNKNOWN}
    assert posts(server, COMPANY_CREATES) == 1  # not re-sent blindly
    assert posts(server, COMPANY_UPSERTS) == 0
    found = adapter.read([i.key for i in items])
    assert sorted(found) == sorted(i.key for i in items)  # the write was applied

    again = adapter.upsert(items)

    assert {r.outcome for r in again} == {Outcome.DONE}
    assert [r.crm_id for r in again] == [found[i.key].crm_id for i in items]
    assert (len(sim.companies), len(sim.contacts)) == (100, 100)


def test_a_reset_before_anything_was_applied_is_unknown_too_and_read_back_finds_nothing(
    adapter: HubSpotAdapter, server: SimServer, sim: HubSpotSim
) -> None:
    items = [account(i) for i in range(3)]
    server.faults.inject(Fault(reset=True, match="companies/batch/create"))

    first = adapter.upsert(items)

    assert {r.outcome for r in first} == {Outcome.UNKNOWN}
    assert adapter.read([i.key for i in items]) == {}
    assert {r.outcome for r in adapter.upsert(items)} == {Outcome.DONE}
    assert len(sim.companies) == 3


@pytest.mark.slow
def test_25000_companies_changed_in_one_window_are_all_found_despite_the_10000_cap(
    server: SimServer,
    sim: HubSpotSim,
    clock: FakeClock,
    open_adapter: Callable[..., HubSpotAdapter],
) -> None:
    sim.shuffle_ties = True  # HubSpot promises no order among records tied on the sort
    base = clock.ms()
    sim.seed_companies((key(i) for i in range(50)), at=base - 1)  # before the window
    for group in range(120):  # 12,000 records spread over 120 milliseconds
        sim.seed_companies((key(100_000 + group * 100 + i) for i in range(100)), at=base + group)
    sim.seed_companies((key(200_000 + i) for i in range(13_000)), at=base + 500)  # a bulk edit
    adapter = open_adapter(contacts_in_changes=False)

    found = [r.key for r in adapter.changed_since(datetime.fromtimestamp(base / 1000, UTC))]

    assert len(found) == len(set(found)) == 25_000
    searches = server.requests_matching("POST", "companies/search")
    assert {s.status for s in searches} == {200}  # never a 400 from the cap
    assert {json.loads(s.body)["after"] for s in searches} == {"0"}  # never deep paging
    assert len(searches) < 200  # about one search per page of 200 new records


# --- rate limits, retries, auth --------------------------------------------------------------


def test_a_ten_secondly_429_is_waited_out_for_the_window_then_retried(
    adapter: HubSpotAdapter, server: SimServer, clock: FakeClock
) -> None:
    window = {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}
    server.faults.inject(Fault(status=429, headers=window, match="companies/batch/create"), times=2)

    results = adapter.upsert([account(1)])

    assert results[0].outcome is Outcome.DONE
    assert clock.sleeps == [10.0, 10.0]
    assert adapter.stats.total("write", 429) == 2


def test_a_secondly_429_on_search_waits_one_second(
    adapter: HubSpotAdapter, server: SimServer, clock: FakeClock
) -> None:
    server.faults.inject(Fault(status=429, body=rate_limit_body("SECONDLY"), match="/search"))

    assert list(adapter.changed_since(since_now(clock))) == []
    assert clock.sleeps == [1.0]


def test_the_daily_limit_stops_the_run_without_sleeping(
    adapter: HubSpotAdapter, server: SimServer, clock: FakeClock
) -> None:
    server.faults.inject(Fault(status=429, body=rate_limit_body("DAILY")))

    with pytest.raises(CrmError) as caught:
        adapter.upsert([account(1)])

    assert caught.value.fatal
    assert caught.value.status == 429
    assert "daily" in str(caught.value)
    assert clock.sleeps == []


def test_the_rate_limits_are_paced_from_the_headers_instead_of_collecting_429s(
    clock: FakeClock,
) -> None:
    limits = RateLimits(burst=5, daily=1_000, search_per_second=5)
    app = HubSpotSim(TOKEN, limits=limits, clock=clock, custom_properties=True)
    app.seed_companies((key(i) for i in range(3_000, 4_500)), at=clock.ms())  # 8 search pages
    with SimServer(app) as server, make_adapter(server, clock) as adapter:
        results = adapter.upsert([account(i) for i in range(300)])  # 6 writes
        writes_quota = dict(adapter.quota)
        changed = list(adapter.changed_since(datetime.fromtimestamp(0, UTC)))

    assert {r.outcome for r in results} == {Outcome.DONE}
    assert len(changed) == 1_800
    assert all(r.status != 429 for r in server.requests)
    assert 10.0 in clock.sleeps  # the burst window, after Remaining reached 0
    assert writes_quota["X-HubSpot-RateLimit-Max"] == "5"
    assert writes_quota["X-HubSpot-RateLimit-Daily-Remaining"] == "994"
    assert adapter.stats.total("write", 200) == 6
    assert adapter.stats.total("search", 200) >= 10


def test_server_errors_are_retried_within_the_budget_then_leave_the_records_to_retry(
    adapter: HubSpotAdapter, server: SimServer, clock: FakeClock
) -> None:
    server.faults.inject(Fault(status=503, match="companies/batch/create"), times=50)

    results = adapter.upsert([account(1), account(2)])

    assert {r.outcome for r in results} == {Outcome.RETRY}
    assert posts(server, COMPANY_CREATES) == RetryPolicy().attempts


def test_a_locked_record_is_retried_after_at_least_two_seconds(
    adapter: HubSpotAdapter, server: SimServer, clock: FakeClock
) -> None:
    server.faults.inject(Fault(status=423, match="contacts/batch/upsert"))

    assert adapter.upsert([account(1)])[0].outcome is Outcome.DONE
    assert clock.sleeps
    assert clock.sleeps[0] >= 2.0


def test_a_refused_token_is_fatal_and_never_shown(
    server: SimServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    open_adapter: Callable[..., HubSpotAdapter],
) -> None:
    secret = "pat-na1-very-secret"
    caplog.set_level(logging.DEBUG)
    adapter = open_adapter(token=secret)

    with pytest.raises(CrmError) as caught:
        adapter.read([key(1)])

    assert caught.value.fatal
    assert caught.value.status == 401
    assert "SYNCD_HUBSPOT_TOKEN" in str(caught.value)
    assert secret not in f"{caught.value!s} {caught.value!r} {adapter!r} {caplog.text}"
    assert clock.sleeps == []


# --- records ---------------------------------------------------------------------------------


def test_a_unique_value_clash_rejects_only_the_clashing_account(
    server: SimServer,
    sim: HubSpotSim,
    clock: FakeClock,
    open_adapter: Callable[..., HubSpotAdapter],
) -> None:
    sim.companies.add_property(PropertyDef("vat_id", "VAT", unique=True))
    sim.seed_companies(["TA-OTHER"], vat_id="NO-1")
    fields = ("name", "connect_account_id", "vat_id")
    adapter = open_adapter(company_fields=fields)
    items = [account(i, vat_id=f"NO-{i + 10}") for i in range(8)]
    items[5] = account(5, vat_id="NO-1")

    results = adapter.upsert(items)

    assert [r.outcome for r in results] == [Outcome.DONE] * 5 + [Outcome.REJECTED] + [
        Outcome.DONE
    ] * 2
    assert "vat_id=NO-1 already exists" in (results[5].reason or "")
    assert sim.company(key(5)) is None


def test_accounts_sharing_a_contact_email_share_one_contact_linked_to_both(
    adapter: HubSpotAdapter, sim: HubSpotSim
) -> None:
    shared = {"email": "Owner@Example.com", "firstname": "Olga"}
    items = [replace(account(1), contact=shared), replace(account(2), contact=shared)]

    results = adapter.upsert(items)
    records = adapter.read([key(1), key(2)])

    assert {r.outcome for r in results} == {Outcome.DONE}
    assert results[0].contact_id == results[1].contact_id
    assert len(sim.contacts) == 1
    assert {r.contact["email"] for r in records.values()} == {"owner@example.com"}


def test_read_shows_the_new_contact_after_the_accounts_email_changed(
    adapter: HubSpotAdapter, clock: FakeClock
) -> None:
    adapter.upsert([account(1)])
    clock.advance(1)
    adapter.upsert([replace(account(1), contact={"email": "new@example.com", "firstname": "Ann"})])

    record = adapter.read([key(1), key(2)])

    assert list(record) == [key(1)]
    assert record[key(1)].contact["email"] == "new@example.com"
    assert record[key(1)].fields["connect_account_id"] == key(1)


def test_a_contact_edited_alone_brings_its_account_into_the_changes(
    adapter: HubSpotAdapter, sim: HubSpotSim, clock: FakeClock
) -> None:
    adapter.upsert([account(1), account(2)])
    clock.advance(30)
    since = since_now(clock)

    sim.edit_contact("buyer2@example.com", phone="+47 1234")
    sim.edit_company(key(1), city="Bergen")

    found = {r.key: r for r in adapter.changed_since(since)}
    assert sorted(found) == [key(1), key(2)]
    assert found[key(2)].contact["phone"] == "+47 1234"
    assert found[key(1)].fields["city"] == "Bergen"


def test_the_date_versioned_api_reaches_the_same_records(
    server: SimServer, clock: FakeClock, open_adapter: Callable[..., HubSpotAdapter]
) -> None:
    adapter = open_adapter(api_version="2026-03")

    adapter.upsert([account(1)])

    assert key(1) in adapter.read([key(1)])
    assert posts(server, "/crm/objects/2026-03/companies/batch/create") == 1


def test_the_adapters_requests_match_hubspots_request_schemas(
    adapter: HubSpotAdapter, server: SimServer, clock: FakeClock, spec_dir: Path
) -> None:
    specs: dict[str, Spec] = load_specs(spec_dir)
    adapter.upsert([account(1), account(2)])
    adapter.read([key(1)])
    list(adapter.changed_since(datetime.fromtimestamp(0, UTC)))

    checked = 0
    for logged in server.requests:
        otype = "companies" if "/companies/" in logged.path else "contacts"
        if not logged.path.startswith("/crm/v3/objects/"):
            continue
        spec = specs[otype]
        body = logged.json()
        if logged.path.endswith("/search"):
            # HubSpot's guide sends sort objects; this spec version types `sorts` as strings.
            assert [s["direction"] for s in body.pop("sorts")] == ["ASCENDING"]
        problems = spec.problems(spec.request_schema(logged.path, "post"), body)
        assert not problems, f"{logged.path}: {problems}"
        checked += 1
    assert checked >= 5
