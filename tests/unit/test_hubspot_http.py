"""How the HubSpot client classifies answers and transport failures (httpx.MockTransport)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from syncd.crm.hubspot_http import HubSpotHttp, LostResponse, RetriesExhausted
from syncd.crm.port import CrmError
from syncd.retry import RetryPolicy

Handler = Callable[[httpx.Request], httpx.Response]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def client(handler: Handler, clock: Clock) -> HubSpotHttp:
    retry = RetryPolicy(sleep=clock.sleep, clock=clock)
    transport = httpx.MockTransport(handler)
    return HubSpotHttp("https://api.hubapi.example", "pat-secret", transport=transport, retry=retry)


def answers(*responses: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A handler giving these answers in turn (an exception is raised), and the requests seen."""
    queue, seen = list(responses), []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handle, seen


def test_a_write_whose_answer_times_out_is_reported_lost_and_not_resent() -> None:
    handler, seen = answers(httpx.ReadTimeout("timed out"))
    http = client(handler, Clock())

    with pytest.raises(LostResponse):
        http.request("POST", "/crm/v3/objects/companies/batch/upsert", "write", json={})

    assert len(seen) == 1
    assert http.stats.total("write", 0) == 1


def test_a_write_that_never_connected_is_simply_retried() -> None:
    handler, seen = answers(httpx.ConnectError("refused"), httpx.Response(200, json={}))
    http = client(handler, Clock())

    assert http.request("POST", "/x", "write", json={}).status_code == 200
    assert len(seen) == 2


def test_a_read_that_times_out_is_retried() -> None:
    handler, seen = answers(httpx.ReadTimeout("timed out"), httpx.Response(200, json={}))
    http = client(handler, Clock())

    assert (
        http.request("POST", "/crm/v3/objects/companies/batch/read", "read", json={}).status_code
        == 200
    )
    assert len(seen) == 2


def test_a_migration_in_progress_is_retried_after_retry_after() -> None:
    handler, _ = answers(httpx.Response(477, headers={"Retry-After": "7"}), httpx.Response(200))
    clock = Clock()

    assert client(handler, clock).request("GET", "/x", "read").status_code == 200
    assert clock.sleeps == [7.0]


def test_a_429_without_a_policy_waits_the_ten_second_window() -> None:
    handler, _ = answers(httpx.Response(429, json={"status": "error"}), httpx.Response(200))
    clock = Clock()

    client(handler, clock).request("GET", "/x", "read")

    assert clock.sleeps == [10.0]


def test_retries_stop_at_the_policys_attempts() -> None:
    handler, seen = answers(*[httpx.Response(502) for _ in range(10)])

    with pytest.raises(RetriesExhausted) as caught:
        client(handler, Clock()).request("GET", "/x", "read")

    assert caught.value.status == 502
    assert not caught.value.fatal
    assert len(seen) == RetryPolicy().attempts


def test_a_missing_scope_is_fatal_and_says_so() -> None:
    body = {"status": "error", "message": "missing scopes", "category": "MISSING_SCOPES"}
    handler, _ = answers(httpx.Response(403, json=body))

    with pytest.raises(CrmError) as caught:
        client(handler, Clock()).request("GET", "/x", "read")

    assert caught.value.fatal
    assert "MISSING_SCOPES" in str(caught.value)
    assert "pat-secret" not in str(caught.value)


def test_searches_are_paced_to_five_per_second() -> None:
    handler, _ = answers(*[httpx.Response(200, json={}) for _ in range(11)])
    clock = Clock()
    http = client(handler, clock)

    for _ in range(11):
        http.request("POST", "/crm/v3/objects/companies/search", "search", json={})

    assert clock.sleeps == [1.0, 1.0]


def test_the_latest_rate_headers_are_kept_and_a_spent_budget_pauses_the_next_call() -> None:
    spent = {
        "X-HubSpot-RateLimit-Max": "100",
        "X-HubSpot-RateLimit-Remaining": "0",
        "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
    }
    handler, _ = answers(httpx.Response(200, headers=spent), httpx.Response(200))
    clock = Clock()
    http = client(handler, clock)

    http.request("GET", "/a", "read")
    assert http.quota["X-HubSpot-RateLimit-Remaining"] == "0"
    http.request("GET", "/b", "read")

    assert clock.sleeps == [10.0]
    assert http.stats.as_dict() == {"read": {"200": 2}}
    assert "pat-secret" not in repr(http)
