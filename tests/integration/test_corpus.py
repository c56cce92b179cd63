"""The bad-input corpus (`tests/corpus/index.toml`), each case served through the simulators.

For every case: the input is kept as received (the ledger's payload), the error says what is
wrong, the rest of the run lands, and the cycle after it, with the input fixed or gone, is clean.
Valid unicode of every kind reaches both CRMs intact, and the cycle after writes nothing (no echo).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from syncd.connect.client import ConnectClient
from syncd.crm.hubspot import HubSpotAdapter
from syncd.crm.port import CrmPort
from syncd.crm.salesforce import SalesforceAdapter
from syncd.domain.mapping import Mapping, default_mapping
from syncd.retry import RetryPolicy
from syncd.sim.base import Fault, SimServer
from syncd.sim.connect import ConnectSim
from syncd.sim.hubspot import HubSpotSim
from syncd.sim.salesforce import SalesforceSim
from syncd.store.schema import (
    crm_conflicts,
    crm_links,
    sync_ledger,
    tier_account_requests,
    tier_accounts,
)
from syncd.sync.cycle import CycleResult, run_cycle
from syncd.sync.pull import PullOptions

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
CORPUS_PRODUCT = "PRD-700-100-001"
TOKEN = "corpus-crm-token"
FEED_FIRST_PAGE = r"GET /public/v1/tier/account-requests\?ordering"
ACCOUNTS_FIRST_PAGE = r"GET /public/v1/tier/accounts\?ordering"
ERRORS = ("malformed", "error", "retry", "unknown", "rejected", "failed")
"""Ledger outcomes that report a problem."""


@dataclass(frozen=True)
class Case:
    id: str
    file: str
    target: str
    expect: str
    fragment: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    match: str | None = None
    times: str = "once"
    note: str = ""
    known_bug: str = ""
    """A product bug that still stands between the case and its expectation: the case is an
    expected failure (strict) until it is fixed."""

    def body(self) -> bytes:
        return (CORPUS / self.file).read_bytes()

    def json(self) -> Any:
        return json.loads(self.body())

    def response_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.content_type:
            headers["Content-Type"] = self.content_type
        return headers


def load_cases() -> list[Case]:
    data = tomllib.loads((CORPUS / "index.toml").read_text(encoding="utf-8"))
    return [Case(**entry) for entry in data["case"]]


CASES = load_cases()


def cases(*targets: str) -> list[Any]:
    return [
        pytest.param(
            c,
            id=c.id,
            marks=[pytest.mark.xfail(reason=c.known_bug, strict=True)] if c.known_bug else [],
        )
        for c in CASES
        if c.target in targets
    ]


def problems(engine: Engine, run_id: int) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(sync_ledger).where(
                    sync_ledger.c.run_id == run_id, sync_ledger.c.outcome.in_(ERRORS)
                )
            ).all()
        )


def ids(engine: Engine, table: Any) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(table.c.id)).scalars())


def as_kept(body: bytes) -> str:
    """What the ledger keeps of a body as received: decoded (undecodable bytes replaced), NUL
    escaped, as Postgres text cannot hold it."""
    return body.decode("utf-8", errors="replace").replace("\x00", "\\u0000")


def test_the_corpus_has_forty_cases_or_more_each_with_its_file_and_expectation() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    for case in CASES:
        assert (CORPUS / case.file).is_file(), case.file
        assert case.target in {"tar", "account", "page", "unicode", "hubspot", "salesforce"}
        if case.target in ("tar", "account") or case.expect not in ("none", "synced"):
            assert case.fragment or case.target in ("hubspot", "salesforce"), case.id


# -- records inside a page -------------------------------------------------------------------


def linked_account(sim: ConnectSim) -> str:
    product = sim.add_product(updates=True)
    account_id = str(sim.add_account(created_at=T0)["id"])
    sim.link(account_id, product["id"])
    return account_id


@pytest.mark.parametrize("case", cases("tar", "account"))
def test_a_malformed_record_is_kept_as_received_with_its_reason_and_the_rest_lands(
    case: Case, engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    account_id = linked_account(sim)
    if case.target == "tar":
        good = sim.add_tars(account_id, 2, created_at=T0)
        match, table = FEED_FIRST_PAGE, tier_account_requests
    else:
        good = [sim.account(account_id), sim.account(linked_account(sim))]
        match, table = ACCOUNTS_FIRST_PAGE, tier_accounts
    page = [good[0], case.json(), good[1]]
    server.faults.inject(
        Fault(status=200, body=page, headers={"Content-Range": "items 0-2/3"}, match=match)
    )

    result = run_cycle(engine, client, PullOptions())

    assert result.outcome == "partial", result.error
    [kept] = problems(engine, result.run_id)
    assert kept.outcome == "malformed"
    assert kept.error_kind == case.expect
    assert case.fragment in kept.message
    received = case.json()
    # The ledger keeps a text payload as the text itself (`LedgerEntry.payload`): a record that
    # is a bare JSON string comes back without its quotes.
    kept_value = kept.payload if isinstance(received, str) else json.loads(kept.payload)
    assert kept_value == received, "kept as received"
    assert {g["id"] for g in good} <= ids(engine, table), "the rest of the page landed"

    again = run_cycle(engine, client, PullOptions())

    assert again.outcome == "success", again.error
    assert problems(engine, again.run_id) == []


# -- whole pages -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("page"))
def test_a_page_that_cannot_be_read_fails_its_feed_with_the_reason_and_keeps_the_body(
    case: Case, engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    account_id = linked_account(sim)
    pending = {t["id"] for t in sim.add_tars(account_id, 3, created_at=T0)}
    sim.add_product(CORPUS_PRODUCT, updates=True)  # the product the corpus's TARs name
    times = client.retry.attempts if case.times == "all" else 1
    fault = Fault(
        status=case.status, headers=case.response_headers(), body=case.body(), match=FEED_FIRST_PAGE
    )
    server.faults.inject(fault, times=times)

    result = run_cycle(engine, client, PullOptions())

    assert server.faults.pending() == 0, "the case was served"
    assert pending <= ids(engine, tier_account_requests), "the pending sweep still stored them"
    found = problems(engine, result.run_id)
    if case.expect == "none":
        assert result.outcome == "success", result.error
        assert found == []
        served = {t["id"] for t in case.json()}
        assert served <= ids(engine, tier_account_requests)
    else:
        assert result.outcome == "failed"
        assert result.counts["pull"]["failed_feeds"] == ["tar_feed"]
        [kept] = found
        assert (kept.object_type, kept.phase) == ("page", "pull.tar_feed")
        assert kept.error_kind == case.expect
        assert case.fragment in kept.message
        assert kept.payload == as_kept(case.body()), "the body is kept as received"

    again = run_cycle(engine, client, PullOptions())

    assert again.outcome == "success", again.error
    assert problems(engine, again.run_id) == []


# -- the CRM -----------------------------------------------------------------------------------


@dataclass
class Crm:
    name: str
    sim: Any
    server: SimServer
    mapping: Mapping

    def adapter(self, batch_size: int | None = None) -> CrmPort:
        policy = RetryPolicy(attempts=3, max_seconds=5, base=0.01, cap=0.02)
        adapter: CrmPort
        if self.name == "hubspot":
            adapter = HubSpotAdapter.for_mapping(
                self.server.url, TOKEN, self.mapping, retry=policy, timeout=10
            )
        else:
            adapter = SalesforceAdapter(
                self.server.url,
                TOKEN,
                account_fields=[f.target for f in self.mapping.account],
                contact_fields=[f.target for f in self.mapping.contact],
                retry=policy,
                timeout=10,
            )
        if batch_size is not None:
            adapter.batch_size = batch_size
        return adapter

    def account(self, key: str) -> dict[str, str | None] | None:
        """The account record's mapped fields, by TA id."""
        if self.name == "hubspot":
            company = self.sim.company(key)
            if company is None:
                return None
            return {f.target: company.value(f.target) for f in self.mapping.account}
        row = self.sim.account(key)
        return None if row is None else {f.target: row.get(f.target) for f in self.mapping.account}

    def contact(self, key: str, email: str) -> dict[str, str | None] | None:
        if self.name == "hubspot":
            contact = self.sim.contact(email.lower())
            if contact is None:
                return None
            return {f.target: contact.value(f.target) for f in self.mapping.contact}
        row = self.sim.contact(key)
        return None if row is None else {f.target: row.get(f.target) for f in self.mapping.contact}

    def keys(self) -> list[str]:
        if self.name == "hubspot":
            return [o.value("connect_account_id") for o in self.sim.companies.records.values()]
        return [r["Connect_Account_Id__c"] for r in self.sim.org.records["Account"].values()]


@contextmanager
def crm_of(name: str) -> Iterator[Crm]:
    sim: Any
    if name == "hubspot":
        sim = HubSpotSim(TOKEN, limits=None, custom_properties=True)
    else:
        sim = SalesforceSim(TOKEN)
    with SimServer(sim) as server:
        yield Crm(name, sim, server, default_mapping(name))


def cycle(engine: Engine, client: ConnectClient, crm: Crm, batch: int | None = None) -> CycleResult:
    adapter = crm.adapter(batch)
    try:
        return run_cycle(
            engine, client, PullOptions(), crm=adapter, mapping=crm.mapping, sync_default=True
        )
    finally:
        getattr(adapter, "close", lambda: None)()


def expected_fields(crm: Crm, account: dict[str, Any]) -> dict[str, str]:
    """The CRM values a Connect account maps to, for the fields the unicode cases set."""
    info = account["contact_info"]
    lines = [info["address_line1"], info.get("address_line2")]
    street = "\n".join(line for line in lines if line)
    if crm.name == "hubspot":
        return {"name": account["name"], "address": info["address_line1"], "city": info["city"]}
    return {"Name": account["name"], "BillingStreet": street, "BillingCity": info["city"]}


@pytest.mark.parametrize("crm_name", ["hubspot", "salesforce"])
@pytest.mark.parametrize("case", cases("unicode"))
def test_valid_unicode_reaches_the_crm_intact_and_the_next_cycle_writes_nothing(
    case: Case,
    crm_name: str,
    engine: Engine,
    sim: ConnectSim,
    server: SimServer,
    client: ConnectClient,
) -> None:
    account_id = linked_account(sim)
    [tar] = sim.change_account(account_id, **case.json())
    account = sim.account(account_id)
    contact = account["contact_info"]["contact"]

    with crm_of(crm_name) as crm:
        result = cycle(engine, client, crm)

        assert result.outcome == "success", (result.error, problems(engine, result.run_id))
        assert crm.account(account_id) is not None
        held = crm.account(account_id) or {}
        for name, wanted in expected_fields(crm, account).items():
            assert held[name] == wanted, (name, held[name], wanted)
        first, last = (
            ("firstname", "lastname") if crm_name == "hubspot" else ("FirstName", "LastName")
        )
        person = crm.contact(account_id, contact["email"]) or {}
        assert (person.get(first), person.get(last)) == (
            contact["first_name"],
            contact["last_name"],
        )
        assert sim.tars[tar["id"]].status == "accepted"
        with engine.connect() as conn:
            stored = conn.execute(
                select(tier_accounts.c.name).where(tier_accounts.c.id == account_id)
            ).scalar_one()
        assert stored == account["name"], "Postgres holds it intact"

        again = cycle(engine, client, crm)

        assert again.outcome == "success", again.error
        push = again.counts["push"]
        assert (push["created"], push["updated"], push["conflicts"]) == (0, 0, 0), push


@pytest.mark.parametrize("case", cases("hubspot", "salesforce"))
def test_an_unexpected_crm_answer_leaves_that_account_to_retry_with_a_reason_and_the_rest_lands(
    case: Case, engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    accounts = [linked_account(sim) for _ in range(3)]
    for account_id in accounts:
        sim.change_account(account_id)

    with crm_of(case.target) as crm:
        crm.server.faults.inject(
            Fault(
                status=case.status,
                headers=case.response_headers(),
                body=case.body() if case.content_type else case.json(),
                match=case.match,
            )
        )
        # One account a batch: the answer spoils the first batch only.
        result = cycle(engine, client, crm, batch=1)

        assert crm.server.faults.pending() == 0, "the case was served"
        assert result.outcome == "partial", (result.error, result.counts.get("push"))
        found = problems(engine, result.run_id)
        pushed = [row for row in found if row.phase == "push"]
        assert len(pushed) == 1, found
        assert pushed[0].error_kind == case.expect
        assert pushed[0].message
        assert case.fragment in pushed[0].message
        with engine.connect() as conn:
            synced = set(
                conn.execute(
                    select(crm_links.c.account_id).where(crm_links.c.state == "synced")
                ).scalars()
            )
        assert len(synced) == 2, "the other accounts landed"

        again = cycle(engine, client, crm)

        assert again.outcome == "success", (again.error, problems(engine, again.run_id))
        assert problems(engine, again.run_id) == []
        assert sorted(crm.keys()) == sorted(accounts), "every account once in the CRM"
        pending = [t.id for t in sim.tars.values() if t.status == "pending"]
        assert pending == []


def test_a_nul_in_a_crm_value_does_not_fail_the_run(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient
) -> None:
    account_id = linked_account(sim)
    sim.change_account(account_id)
    with crm_of("hubspot") as crm:
        assert cycle(engine, client, crm).outcome == "success"
        crm.sim.edit_company(account_id, name="Edited\x00in the CRM")
        sim.change_account(account_id, name="Changed in Connect")

        result = cycle(engine, client, crm)

        assert result.outcome in ("success", "partial"), result.error
        with engine.connect() as conn:
            held = conn.execute(
                select(crm_conflicts.c.crm_value).where(crm_conflicts.c.account_id == account_id)
            ).scalars()
            assert "Edited\\u0000in the CRM" in list(held), "the conflict keeps it, escaped"
        again = cycle(engine, client, crm)
        assert again.outcome == "success", (again.error, problems(engine, again.run_id))
        assert again.counts["push"]["conflicts"] == 0
