"""Per-record reasons taken from a CRM's answer are stored without the secrets it may echo.

A record's rejection or retry reason is HubSpot's `errors[].message` (a 207 Multi-Status entry,
or the body of a batch refused whole) or Salesforce's `errors[].message` of an sObject
Collections result; it lands in `crm_links.last_error`, `sync_ledger.message` and the logs. An
answer that quotes the token (a proxy, an Apex trigger, a validation rule) must leave no trace
of it there, while the rest of the reason stays readable.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select

from syncd.connect.client import ConnectClient
from syncd.crm.hubspot import HubSpotAdapter
from syncd.crm.port import CrmPort, Outcome, Upsert
from syncd.crm.salesforce import SalesforceAdapter
from syncd.domain.mapping import default_mapping
from syncd.retry import RetryPolicy
from syncd.sim.base import Fault, SimServer
from syncd.sim.connect import ConnectSim
from syncd.sim.hubspot import HubSpotSim
from syncd.sim.salesforce import SalesforceSim
from syncd.store.schema import crm_links, sync_ledger
from syncd.sync.cycle import run_cycle
from syncd.sync.pull import PullOptions

TOKEN = "pat-na1-reason-token-7f3c9a21"
SF_REFRESH = "5Aep861-reason-refresh-token"
SF_SECRET = "reason-client-secret-4411"
SECRETS = (TOKEN, SF_REFRESH, SF_SECRET)
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
FAST = RetryPolicy(attempts=2, max_seconds=2, base=0.01, cap=0.02)
COMPANY_CREATES = r"POST /crm/v3/objects/companies/batch/create"
ACCOUNT_UPSERTS = r"PATCH /services/data/v[\d.]+/composite/sobjects/Account/"


def hubspot_error(message: str, category: str, key: str) -> dict[str, Any]:
    return {
        "status": "error",
        "category": category,
        "message": message,
        "context": {"objectWriteTraceId": [key]},
    }


def multi_status(*errors: dict[str, Any]) -> dict[str, Any]:
    return {"status": "COMPLETE", "results": [], "numErrors": len(errors), "errors": list(errors)}


# (status, body of the answer, what stays of the reason, push outcome), by the account's key.
Answer = tuple[int, dict[str, Any], str, str]
HUBSPOT_ANSWERS: dict[str, Callable[[str], Answer]] = {
    "207_validation_error": lambda key: (
        207,
        multi_status(
            hubspot_error(
                f"Workflow refused: Bearer {TOKEN} may not set name", "VALIDATION_ERROR", key
            )
        ),
        "may not set name",
        "rejected",
    ),
    "207_invalid_property_values": lambda key: (
        207,
        multi_status(
            hubspot_error(
                "Property values were not valid: "
                + json.dumps([{"message": f"name {TOKEN} is odd", "error": "INVALID_NAME"}]),
                "VALIDATION_ERROR",
                key,
            )
        ),
        "is odd (INVALID_NAME)",
        "rejected",
    ),
    "207_rate_limited": lambda key: (
        207,
        multi_status(hubspot_error(f"Slow down, {TOKEN}", "RATE_LIMITS", key)),
        "Slow down",
        "retry",
    ),
    "400_refused_whole": lambda key: (
        400,
        {"status": "error", "category": "VALIDATION_ERROR", "message": f"Bad input ({TOKEN})"},
        "Bad input",
        "rejected",
    ),
    "200_results_not_a_list": lambda key: (
        200,
        {"status": "COMPLETE", "results": f"token={TOKEN}"},
        "`results` is not a list",
        "retry",
    ),
}


def linked_account(sim: ConnectSim) -> str:
    """A Connect account with a pending change for the push phase to write."""
    product = sim.add_product(updates=True)
    account_id = str(sim.add_account(created_at=T0)["id"])
    sim.link(account_id, product["id"])
    sim.change_account(account_id)
    return account_id


@contextmanager
def hubspot() -> Iterator[tuple[SimServer, CrmPort]]:
    crm = HubSpotSim(TOKEN, limits=None, custom_properties=True)
    mapping = default_mapping("hubspot")
    with (
        SimServer(crm) as running,
        HubSpotAdapter.for_mapping(running.url, TOKEN, mapping, retry=FAST, timeout=10) as adapter,
    ):
        yield running, adapter


@contextmanager
def salesforce() -> Iterator[tuple[SimServer, CrmPort]]:
    mapping = default_mapping("salesforce")
    with SimServer(SalesforceSim(TOKEN)) as running:
        adapter = SalesforceAdapter(
            running.url,
            TOKEN,
            account_fields=[f.target for f in mapping.account],
            contact_fields=[f.target for f in mapping.contact],
            refresh_token=SF_REFRESH,
            client_id="syncd",
            client_secret=SF_SECRET,
            retry=FAST,
            timeout=10,
        )
        with adapter:
            yield running, adapter


def stored_text(engine: Engine) -> tuple[list[str], list[str]]:
    """Every `crm_links` and `sync_ledger` row, as text."""
    with engine.connect() as conn:
        links = [" ".join(map(str, row)) for row in conn.execute(select(crm_links)).all()]
        ledger = [" ".join(map(str, row)) for row in conn.execute(select(sync_ledger)).all()]
    return links, ledger


def assert_no_secret(engine: Engine, caplog: pytest.LogCaptureFixture, kept: str) -> None:
    links, ledger = stored_text(engine)
    with engine.connect() as conn:
        [last_error] = conn.execute(select(crm_links.c.last_error)).scalars().all()
        messages = conn.execute(
            select(sync_ledger.c.message).where(sync_ledger.c.phase == "push")
        ).scalars()
        pushed = [m for m in messages if m]
    assert kept in (last_error or ""), last_error
    assert any(kept in m for m in pushed), pushed
    logged = [caplog.text, *(repr(vars(r)) for r in caplog.records)]  # extras included
    for secret in SECRETS:
        for text in [*links, *ledger, *logged]:
            assert secret[:12] not in text, "not even a piece of it"


def cycle_served(
    engine: Engine,
    client: ConnectClient,
    running: SimServer,
    adapter: CrmPort,
    fault: Fault,
    crm: str,
) -> str:
    """Run a cycle whose CRM write is answered with `fault`; the account's link state after it."""
    running.faults.inject(fault)
    result = run_cycle(
        engine, client, PullOptions(), crm=adapter, mapping=default_mapping(crm), sync_default=True
    )
    assert running.faults.pending() == 0, "the answer was served"
    assert result.outcome == "partial", result.error
    with engine.connect() as conn:
        [state] = conn.execute(select(crm_links.c.state)).scalars().all()
    return str(state)


@pytest.mark.parametrize("answer", list(HUBSPOT_ANSWERS))
def test_a_hubspot_reason_quoting_the_token_is_stored_and_logged_without_it(
    answer: str,
    engine: Engine,
    sim: ConnectSim,
    client: ConnectClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    account_id = linked_account(sim)
    status, body, kept, outcome = HUBSPOT_ANSWERS[answer](account_id)
    with hubspot() as (running, adapter):
        fault = Fault(status=status, body=body, match=COMPANY_CREATES)
        state = cycle_served(engine, client, running, adapter, fault, "hubspot")
    assert state == outcome
    assert_no_secret(engine, caplog, kept)


SALESFORCE_ANSWERS = {
    "validation_message": (
        [
            {
                "success": False,
                "errors": [
                    {
                        "statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                        "message": f"Trigger saw Bearer {TOKEN} and refresh {SF_REFRESH}",
                        "fields": [],
                    }
                ],
            }
        ],
        "FIELD_CUSTOM_VALIDATION_EXCEPTION: Trigger saw Bearer ***",
        "rejected",
    ),
    "lock_message": (
        [
            {
                "success": False,
                "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": f"{SF_SECRET} busy"}],
            }
        ],
        "busy",
        "retry",
    ),
    "unknown_error_shape": (
        [{"success": False, "errors": [{"weird": f"echo {TOKEN}"}]}],
        'unexpected error entry: {"weird": "echo ***"}',
        "rejected",
    ),
    "unknown_error_shape_cut_inside_the_token": (
        # The entry is cut at 500 characters; the token starts at 486, so the cut falls inside.
        [{"success": False, "errors": [{"weird": f"{'x' * 474} {TOKEN}"}]}],
        "unexpected error entry",
        "rejected",
    ),
}


@pytest.mark.parametrize("answer", list(SALESFORCE_ANSWERS))
def test_a_salesforce_reason_quoting_a_secret_is_stored_and_logged_without_it(
    answer: str,
    engine: Engine,
    sim: ConnectSim,
    client: ConnectClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    body, kept, outcome = SALESFORCE_ANSWERS[answer]
    linked_account(sim)
    with salesforce() as (running, adapter):
        fault = Fault(status=200, body=body, match=ACCOUNT_UPSERTS)
        state = cycle_served(engine, client, running, adapter, fault, "salesforce")
    assert state == outcome
    assert_no_secret(engine, caplog, kept)


def test_a_hubspot_association_error_quoting_the_token_is_a_reason_without_it() -> None:
    crm = HubSpotSim(TOKEN, limits=None, custom_properties=True)
    contact = {"email": "ann@example.com", "firstname": "Ann"}
    with SimServer(crm) as running, HubSpotAdapter(running.url, TOKEN, retry=FAST) as adapter:
        [company] = adapter.upsert([Upsert("TA-1", {"connect_account_id": "TA-1"})])
        adapter.upsert([Upsert("TA-2", {"connect_account_id": "TA-2"}, contact)])
        person = crm.contact("ann@example.com")
        assert person is not None
        assert company.crm_id is not None
        error = {
            "status": "error",
            "category": "VALIDATION_ERROR",
            "message": f"Association refused for Bearer {TOKEN}",
            "context": {"ids": [str(person.id), company.crm_id]},
        }
        running.faults.inject(
            Fault(status=207, body=multi_status(error), match="associate/default")
        )

        [result] = adapter.upsert(
            [Upsert("TA-1", {"connect_account_id": "TA-1", "name": "One"}, contact, company.crm_id)]
        )

    assert running.faults.pending() == 0, "the answer was served"
    assert result.outcome is Outcome.RETRY
    assert result.reason == "Association refused for Bearer ***"
