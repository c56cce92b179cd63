"""The metrics object: cycle counts, request counts and quotas from httpx hooks (MockTransport)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from syncd.service.metrics import RECORD_OUTCOMES, Metrics
from syncd.service.metrics_http import Quota, quotas
from syncd.service.sdnotify import Notifier
from syncd.service.telemetry import Telemetry
from syncd.sync.cycle import CycleResult

Handler = Callable[[httpx.Request], httpx.Response]


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def instrumented(metrics: Metrics, system: str, handler: Handler) -> httpx.Client:
    client = httpx.Client(base_url="https://api.example", transport=httpx.MockTransport(handler))
    metrics.instrument(client, system)
    return client


COUNTS: dict[str, Any] = {
    "pull": {
        "pages": 3,
        "requests_seen": 9,
        "requests_written": 7,
        "accounts_seen": 5,
        "accounts_written": 4,
        "requests_refreshed": 2,
        "products_read": 1,
        "malformed": 1,
        "drift": 0,
        "failed_feeds": [],
    },
    "flags": {"linked": 3, "changed": 2, "malformed": 0, "enabled": 10, "failed_parts": []},
    "push": {
        "planned": 6,
        "unchanged": 1,
        "created": 2,
        "updated": 1,
        "rejected": 1,
        "retry": 1,
        "unknown": 0,
        "conflicts": 1,
        "crm_reads": 2,
        "crm_writes": 2,
    },
    "writeback": {
        "accepted": 3,
        "ignored": 1,
        "read_back": 1,
        "released": 0,
        "failed": 0,
        "unsettled": 0,
        "left_pending": {"flag off": 2, "crm behind": 1},
        "accounts_updated": 1,
        "fields_skipped": 0,
        "failed_parts": [],
    },
    "seconds": {"pull": 1.5, "flags": 0.25, "push": 2.0, "writeback": 0.75},
    "connect_requests": 12,
}


def test_a_cycle_counts_its_outcome_durations_and_every_record_outcome() -> None:
    metrics = Metrics()

    metrics.observe_cycle(CycleResult(7, "partial", COUNTS), finished_at=1_700_000_000.0)

    assert sample(metrics, "syncd_cycles_total", kind="sync", outcome="partial") == 1
    assert sample(metrics, "syncd_cycle_duration_seconds_sum", kind="sync") == 4.5
    for phase, seconds in COUNTS["seconds"].items():
        assert sample(metrics, "syncd_phase_duration_seconds_sum", phase=phase) == seconds
        assert sample(metrics, "syncd_phase_duration_seconds_count", phase=phase) == 1
    for phase, outcomes in RECORD_OUTCOMES.items():
        for outcome, key in outcomes.items():
            value = COUNTS[phase][key]
            expected = sum(value.values()) if isinstance(value, dict) else value
            got = sample(metrics, "syncd_records_total", phase=phase, outcome=outcome)
            assert got == expected, (phase, outcome)
    assert sample(metrics, "syncd_last_cycle_timestamp_seconds") == 1_700_000_000.0
    assert sample(metrics, "syncd_last_success_timestamp_seconds") == 1_700_000_000.0


def test_a_failed_cycle_moves_the_last_cycle_time_but_not_the_last_success() -> None:
    metrics = Metrics()
    metrics.observe_cycle(CycleResult(1, "success", COUNTS), finished_at=100.0)

    failed = {"pull": COUNTS["pull"], "seconds": {"pull": 0.5}}
    metrics.observe_cycle(CycleResult(2, "failed", failed, "boom", kind="reconcile"), seconds=9.0)

    assert sample(metrics, "syncd_last_success_timestamp_seconds") == 100.0
    assert (sample(metrics, "syncd_last_cycle_timestamp_seconds") or 0) > 100.0
    assert sample(metrics, "syncd_cycles_total", kind="reconcile", outcome="failed") == 1
    assert sample(metrics, "syncd_cycle_duration_seconds_sum", kind="reconcile") == 9.0
    # The push did not run in the failed cycle: its counters did not move.
    assert sample(metrics, "syncd_records_total", phase="push", outcome="created") == 2


def test_writer_gauge_follows_the_daemon_state_and_drops_when_it_stops() -> None:
    metrics = Metrics()
    telemetry = Telemetry(metrics, Notifier(env={}))
    assert sample(metrics, "syncd_writer") == 0
    assert sample(metrics, "syncd_up") == 1
    seen = []
    for state in ("active", "standby", "active"):
        telemetry.beat(state)
        seen.append(sample(metrics, "syncd_writer"))
    telemetry.stopping()

    assert seen == [1, 0, 1]
    assert sample(metrics, "syncd_writer") == 0


def test_requests_are_counted_by_system_method_and_status() -> None:
    metrics = Metrics()
    statuses = iter([200, 201, 429, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(statuses))

    with instrumented(metrics, "connect", handler) as client:
        client.get("/a")
        client.post("/b")
        client.get("/c")
        client.get("/d")

    def count(method: str, status: str) -> float | None:
        return sample(
            metrics, "syncd_api_requests_total", system="connect", method=method, status=status
        )

    assert count("GET", "200") == 2
    assert count("POST", "201") == 1
    assert count("GET", "429") == 1


def test_a_request_without_an_answer_is_counted_as_an_error() -> None:
    metrics = Metrics()

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with instrumented(metrics, "hubspot", handler) as client, pytest.raises(httpx.ConnectError):
        client.post("/crm/v3/objects/companies/batch/upsert")

    labels = {"system": "hubspot", "method": "POST", "status": "error"}
    assert sample(metrics, "syncd_api_requests_total", **labels) == 1


def test_each_hop_of_a_redirect_is_counted() -> None:
    metrics = Metrics()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/old":
            return httpx.Response(302, headers={"Location": "/new"})
        return httpx.Response(200)

    client = httpx.Client(
        base_url="https://api.example",
        transport=httpx.MockTransport(handler),
        follow_redirects=True,
    )
    metrics.instrument(client, "connect")
    with client:
        client.get("/old")

    labels = {"system": "connect", "method": "GET"}
    assert sample(metrics, "syncd_api_requests_total", status="302", **labels) == 1
    assert sample(metrics, "syncd_api_requests_total", status="200", **labels) == 1


def test_instrumenting_a_client_twice_counts_each_request_once() -> None:
    metrics = Metrics()
    with instrumented(metrics, "salesforce", lambda r: httpx.Response(200)) as client:
        metrics.instrument(client, "salesforce")
        client.get("/services/data/v62.0/query")

    labels = {"system": "salesforce", "method": "GET", "status": "200"}
    assert sample(metrics, "syncd_api_requests_total", **labels) == 1


def test_an_unknown_system_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown system"):
        Metrics().instrument(httpx.Client(), "zendesk")


HUBSPOT_LIMITS = {
    "X-HubSpot-RateLimit-Max": "100",
    "X-HubSpot-RateLimit-Remaining": "97",
    "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
    "X-HubSpot-RateLimit-Daily": "250000",
    "X-HubSpot-RateLimit-Daily-Remaining": "249000",
}


def test_hubspot_quota_gauges_keep_the_last_values_across_search_answers_without_headers() -> None:
    metrics = Metrics()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/search"):
            return httpx.Response(200)  # search answers carry no rate-limit headers
        return httpx.Response(200, headers=HUBSPOT_LIMITS)

    with instrumented(metrics, "hubspot", handler) as client:
        client.post("/crm/v3/objects/companies/batch/read")
        client.post("/crm/v3/objects/companies/search")

    def gauge(kind: str, window: str) -> float | None:
        return sample(metrics, f"syncd_api_quota_{kind}", system="hubspot", window=window)

    assert gauge("remaining", "burst") == 97
    assert gauge("limit", "burst") == 100
    assert gauge("remaining", "daily") == 249000
    assert gauge("limit", "daily") == 250000


def test_salesforce_quota_is_read_from_sforce_limit_info_with_bursts() -> None:
    headers = httpx.Headers({"Sforce-Limit-Info": "api-usage=10018/100000, api-bursts=1/750"})

    assert list(quotas("salesforce", headers)) == [
        Quota("daily", 89982, 100000),
        Quota("burst", 749, 750),
    ]


def test_connect_answers_report_no_quota() -> None:
    assert list(quotas("connect", httpx.Headers(HUBSPOT_LIMITS))) == []


@given(used=st.integers(0, 10**7), limit=st.integers(0, 10**7))
def test_salesforce_remaining_quota_is_the_limit_minus_usage_never_below_zero(
    used: int, limit: int
) -> None:
    headers = httpx.Headers({"Sforce-Limit-Info": f"api-usage={used}/{limit}"})

    (quota,) = quotas("salesforce", headers)

    assert quota.limit == limit
    assert quota.remaining == max(0, limit - used)


def test_the_exposition_parses_and_holds_every_documented_name() -> None:
    metrics = Metrics()
    metrics.observe_cycle(CycleResult(1, "success", COUNTS))
    answer = httpx.Response(200, headers=HUBSPOT_LIMITS)
    with instrumented(metrics, "hubspot", lambda r: answer) as c:
        c.get("/crm/v3/properties/companies")

    families = {f.name for f in text_string_to_metric_families(metrics.exposition().decode())}

    assert {
        "syncd_cycles",
        "syncd_cycle_duration_seconds",
        "syncd_phase_duration_seconds",
        "syncd_records",
        "syncd_api_requests",
        "syncd_api_quota_remaining",
        "syncd_api_quota_limit",
        "syncd_last_success_timestamp_seconds",
        "syncd_last_cycle_timestamp_seconds",
        "syncd_up",
        "syncd_writer",
    } <= families


def test_two_metrics_objects_do_not_share_counts() -> None:
    first, second = Metrics(), Metrics()

    first.observe_cycle(CycleResult(1, "success", COUNTS))

    assert sample(first, "syncd_cycles_total", kind="sync", outcome="success") == 1
    assert sample(second, "syncd_cycles_total", kind="sync", outcome="success") is None
