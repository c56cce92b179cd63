"""/metrics after a real cycle: Connect simulator, a CRM simulator and Postgres, over loopback.

The counters must match the cycle's own counts, the request counts the simulators' request logs,
and the backlog gauges what the tables say (counted here without the views the collector reads).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from syncd import bootstrap
from syncd.connect.client import ConnectClient
from syncd.crm.hubspot import HubSpotAdapter
from syncd.crm.salesforce import SalesforceAdapter
from syncd.domain.mapping import Mapping, mapping_from_toml
from syncd.retry import RetryPolicy
from syncd.service.health import HealthServer
from syncd.service.metrics import RECORD_OUTCOMES, Metrics
from syncd.sim.base import Fault, SimServer
from syncd.sim.connect import ConnectSim
from syncd.sim.hubspot import HubSpotSim
from syncd.sim.salesforce import SalesforceSim
from syncd.sync.cycle import run_cycle
from syncd.sync.pull import PullOptions, PullPhase
from tests.integration.conftest import CONNECT_KEY

TOKEN = "crm-metrics-token"
INSTANT = RetryPolicy(attempts=4, max_seconds=5, sleep=lambda _: None)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Crm:
    name: str
    server: SimServer
    adapter: HubSpotAdapter | SalesforceAdapter
    mapping: Mapping


@pytest.fixture(params=["hubspot", "salesforce"])
def crm(request: pytest.FixtureRequest) -> Iterator[Crm]:
    name: str = request.param
    mapping = mapping_from_toml(name, {})
    fields = {
        "account": [f.target for f in mapping.account],
        "contact": [f.target for f in mapping.contact],
    }
    adapter: HubSpotAdapter | SalesforceAdapter
    if name == "hubspot":
        # Rate limits on: the answers carry the X-HubSpot-RateLimit-* headers.
        with SimServer(HubSpotSim(TOKEN, custom_properties=True)) as server:
            adapter = HubSpotAdapter(
                server.url,
                TOKEN,
                retry=INSTANT,
                company_fields=fields["account"],
                contact_fields=fields["contact"],
            )
            with adapter:
                yield Crm(name, server, adapter, mapping)
    else:
        with SimServer(SalesforceSim(TOKEN)) as server:
            adapter = SalesforceAdapter(
                server.url,
                TOKEN,
                retry=INSTANT,
                account_fields=fields["account"],
                contact_fields=fields["contact"],
            )
            with adapter:
                yield Crm(name, server, adapter, mapping)


def samples(body: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def logged(server: SimServer) -> Counter[tuple[str, str]]:
    """(method, status) of every request the simulator received; no answer counts as error."""
    return Counter((r.method, str(r.status) if r.status else "error") for r in server.requests)


def scraped_requests(found: Samples, system: str) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    for (name, labels), count in found.items():
        label = dict(labels)
        if name == "syncd_api_requests_total" and label["system"] == system:
            out[(label["method"], label["status"])] = int(count)
    return out


def backlog_from_tables(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                """
                SELECT
                    (SELECT count(*) FROM tier_account_requests WHERE status = 'pending'),
                    (SELECT count(*) FROM tier_accounts a
                        LEFT JOIN crm_links l ON l.account_id = a.id
                        WHERE a.sync_enabled
                          AND (l.synced_version IS NULL OR l.synced_version < a.version)),
                    (SELECT count(*) FROM tier_accounts
                        WHERE sync_enabled IS NULL OR NOT sync_enabled)
                """
            )
        ).one()
    return {
        "syncd_pending_tars": row[0],
        "syncd_accounts_behind": row[1],
        "syncd_accounts_sync_off": row[2],
    }


def enabled_accounts(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id FROM tier_accounts WHERE sync_enabled ORDER BY id"))
        return list(rows.scalars())


def test_metrics_after_a_real_cycle_match_its_counts_and_the_simulators_logs(
    engine: Engine, sim: ConnectSim, server: SimServer, client: ConnectClient, crm: Crm
) -> None:
    sim.seed(31, accounts=40, products=3)
    # Answers that are retried: a 503, a connection closed without an answer (counted `error`).
    server.faults.inject(Fault(status=503, headers={"Retry-After": "0"}, match="^GET"))
    server.faults.inject(Fault(reset=True, match="^GET"))
    crm.server.faults.inject(Fault(status=503, headers={"Retry-After": "0"}))
    metrics = Metrics(engine)
    for system, http in bootstrap.http_clients(client, crm.adapter):
        metrics.instrument(http, system)

    result = run_cycle(
        engine, client, PullOptions(), crm=crm.adapter, mapping=crm.mapping, sync_default=True
    )
    metrics.observe_cycle(result)
    # Then changes arrive and are mirrored, not yet pushed: a backlog to see.
    for account_id in enabled_accounts(engine)[:5]:
        sim.change_account(account_id, name=f"Renamed {account_id}")
    PullPhase(engine, client, PullOptions(), run_id=None).run()
    crm.adapter.properties()  # one request alone, whose quota headers are the last seen

    with HealthServer("127.0.0.1:0", metrics=metrics) as http_server:
        assert http_server.url is not None
        response = httpx.get(http_server.url + "/metrics", timeout=30)
    found = samples(response.text)

    assert result.outcome == "success", result.error
    assert result.counts["push"]["created"] > 0
    assert value(found, "syncd_cycles_total", kind="sync", outcome="success") == 1
    for phase, outcomes in RECORD_OUTCOMES.items():
        for outcome, key in outcomes.items():
            count: Any = result.counts[phase][key]
            expected = sum(count.values()) if isinstance(count, dict) else count
            got = value(found, "syncd_records_total", phase=phase, outcome=outcome)
            assert got == expected, (phase, outcome)
    for phase, seconds in result.counts["seconds"].items():
        assert value(found, "syncd_phase_duration_seconds_count", phase=phase) == 1
        assert value(found, "syncd_phase_duration_seconds_sum", phase=phase) == seconds

    assert scraped_requests(found, "connect") == logged(server)
    assert scraped_requests(found, crm.name) == logged(crm.server)
    assert {("GET", "503"), ("GET", "error")} <= set(logged(server))
    assert any(status == "503" for _, status in logged(crm.server))

    backlog = backlog_from_tables(engine)
    assert backlog["syncd_pending_tars"] > 0
    assert backlog["syncd_accounts_behind"] == 5
    assert backlog["syncd_accounts_sync_off"] > 0
    for name, expected_count in backlog.items():
        assert value(found, name) == expected_count, name
    assert value(found, "syncd_backlog_read_ok") == 1

    assert_quota(found, crm)
    assert value(found, "syncd_up") == 1
    assert value(found, "syncd_writer") == 0
    assert (value(found, "syncd_last_success_timestamp_seconds") or 0) > 0
    for secret in (CONNECT_KEY, CONNECT_KEY.partition(":")[2], TOKEN, str(engine.url)):
        assert secret not in response.text


def assert_quota(found: Samples, crm: Crm) -> None:
    """The gauges hold what the adapter itself read from the last answer."""
    if isinstance(crm.adapter, HubSpotAdapter):
        quota = crm.adapter.quota
        windows = {
            "burst": ("X-HubSpot-RateLimit-Remaining", "X-HubSpot-RateLimit-Max"),
            "daily": ("X-HubSpot-RateLimit-Daily-Remaining", "X-HubSpot-RateLimit-Daily"),
        }
        for window, (remaining, limit) in windows.items():
            labels = {"system": "hubspot", "window": window}
            assert value(found, "syncd_api_quota_remaining", **labels) == int(quota[remaining])
            assert value(found, "syncd_api_quota_limit", **labels) == int(quota[limit])
    else:
        usage = crm.adapter.quota
        assert usage is not None
        labels = {"system": "salesforce", "window": "daily"}
        assert value(found, "syncd_api_quota_remaining", **labels) == usage.remaining
        assert value(found, "syncd_api_quota_limit", **labels) == usage.limit
