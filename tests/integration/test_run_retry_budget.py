"""The per-run retry budget as the entrypoints build it: one `RetryBudget` shared by the Connect
client and the CRM adapter (`syncd.bootstrap`), started afresh by every run, and what the run
spent of it recorded as `counts["retries"]` in `sync_runs`.

Connect and HubSpot simulators over loopback, real Postgres. The faults are 503s, whose retries
wait at most the policy's jittered backoff (`Retry-After: 0` on Connect).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, select

from syncd import bootstrap
from syncd.config import Settings, load_settings
from syncd.connect.client import ConnectClient
from syncd.crm.port import CrmPort
from syncd.retry import RetryBudget
from syncd.sim.base import Fault, SimServer
from syncd.sim.connect import ConnectSim
from syncd.sim.hubspot import HubSpotSim
from syncd.store.schema import sync_runs
from syncd.sync.cycle import CycleResult, run_cycle

KEY = "SU-000-000-000:test-secret"  # the `sim` fixture's key (tests/integration/conftest.py)
TOKEN = "budget-crm-token"
HUBSPOT_WRITE = r"POST /crm/v3/objects/companies/batch/(create|upsert)"
CONNECT_READ = r"GET /public/v1/tier/account-requests"


@dataclass
class Stack:
    settings: Settings
    engine: Engine
    sim: ConnectSim
    connect: SimServer
    hubspot: SimServer
    crm_sim: HubSpotSim
    budget: RetryBudget
    client: ConnectClient
    crm: CrmPort

    def cycle(self) -> CycleResult:
        return run_cycle(
            self.engine,
            self.client,
            bootstrap.pull_options(self.settings),
            crm=self.crm,
            mapping=bootstrap.mapping(self.settings),
            sync_default=True,
            retry_budget=self.budget,
        )

    def crm_keys(self) -> list[str | None]:
        return [o.value("connect_account_id") for o in self.crm_sim.companies.records.values()]

    def link_account(self) -> str:
        product = self.sim.add_product(updates=True)
        account_id = str(self.sim.add_account()["id"])
        self.sim.link(account_id, product["id"])
        self.sim.change_account(account_id)
        return account_id


@pytest.fixture
def stack(engine: Engine, database_url: str, sim: ConnectSim, server: SimServer) -> Iterator[Stack]:
    crm_sim = HubSpotSim(TOKEN, limits=None, custom_properties=True)
    with SimServer(crm_sim) as hubspot:
        settings = load_settings(
            database_url=database_url,
            connect_url=f"{server.url}/public/v1",
            connect_api_key=KEY,
            crm="hubspot",
            hubspot_url=hubspot.url,
            hubspot_token=TOKEN,
            http_timeout=10,
            retry_attempts=6,
            retry_max_seconds=30,
            retry_budget=2,
        )
        budget = bootstrap.retry_budget(settings)
        with bootstrap.connect_client(settings, budget=budget) as client:
            crm = bootstrap.crm(settings, bootstrap.mapping(settings), budget=budget)
            try:
                yield Stack(settings, engine, sim, server, hubspot, crm_sim, budget, client, crm)
            finally:
                getattr(crm, "close", lambda: None)()


def recorded_counts(engine: Engine, run_id: int) -> dict[str, object]:
    with engine.connect() as conn:
        counts = conn.execute(
            select(sync_runs.c.counts).where(sync_runs.c.id == run_id)
        ).scalar_one()
    return dict(counts)


def test_a_run_starts_with_the_whole_budget_shared_by_connect_and_the_crm_and_records_it(
    stack: Stack,
) -> None:
    stack.link_account()
    while stack.budget.take():  # spent by an earlier run
        pass
    stack.connect.faults.inject(Fault(status=503, headers={"Retry-After": "0"}, match=CONNECT_READ))
    stack.hubspot.faults.inject(Fault(status=503, match=HUBSPOT_WRITE))

    result = stack.cycle()

    assert result.outcome == "success", result.error
    assert stack.connect.faults.pending() == stack.hubspot.faults.pending() == 0
    assert result.counts["retries"] == 2, "one retry each, from the one budget"
    assert recorded_counts(stack.engine, result.run_id)["retries"] == 2


def test_once_the_budget_is_spent_the_record_waits_for_the_next_run_which_has_it_whole(
    stack: Stack,
) -> None:
    account_id = stack.link_account()
    stack.hubspot.faults.inject(Fault(status=503, match=HUBSPOT_WRITE), times=3)

    first = stack.cycle()

    assert first.outcome == "partial", first.error
    assert first.counts["retries"] == 2
    assert first.counts["push"]["retry"] == 1
    assert stack.hubspot.faults.pending() == 0, "the third 503 was the last try"

    stack.hubspot.faults.inject(Fault(status=503, match=HUBSPOT_WRITE), times=2)

    second = stack.cycle()

    assert second.outcome == "success", second.error
    assert second.counts["retries"] == 2, "the budget started afresh"
    assert second.counts["push"]["created"] == 1
    assert stack.crm_keys() == [account_id]
