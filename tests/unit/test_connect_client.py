"""ConnectClient against `httpx.MockTransport`: paging, retries, error classes, secrecy."""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from syncd.connect.client import ConnectClient
from syncd.connect.errors import (
    MALFORMED_EXCERPT,
    ConnectError,
    FatalError,
    MalformedResponse,
    OutcomeUnknown,
    RecordError,
    RetriableError,
)
from syncd.connect.paging import Page
from syncd.connect.rql import eq, ordering, render_query
from syncd.retry import RetryPolicy

BASE = "https://connect.test/public/v1"
KEY = "SU-123-456-789:s3cr3t-Value-0042"
SECRET = "s3cr3t-Value-0042"
TAR = "TAR-4821-0937-5512-003-001"
Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class FakeTime:
    """A clock that only moves when the client sleeps."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make_client(fake_time: FakeTime) -> Iterator[Callable[..., ConnectClient]]:
    clients: list[ConnectClient] = []

    def make(handler: Handler, **kwargs: Any) -> ConnectClient:
        retry = RetryPolicy(
            attempts=kwargs.pop("attempts", 4),
            max_seconds=kwargs.pop("max_seconds", 60.0),
            base=0.5,
            cap=kwargs.pop("cap", 4.0),
            sleep=fake_time.sleep,
            clock=fake_time.clock,
        )
        client = ConnectClient(
            BASE,
            kwargs.pop("api_key", KEY),
            retry=retry,
            transport=httpx.MockTransport(handler),
            **kwargs,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def paging_params(request: httpx.Request) -> tuple[int, int]:
    query = unquote(request.url.query.decode())
    limit = re.search(r"(?:^|&)limit=(\d+)", query)
    offset = re.search(r"(?:^|&)offset=(\d+)", query)
    assert limit, query
    assert offset, query
    return int(limit.group(1)), int(offset.group(1))


@dataclass
class FakeCollection:
    """A list endpoint in django-rql's manner: clamps `limit`, answers with `Content-Range`."""

    size: int
    max_limit: int = 1000
    content_range: bool = True
    claimed_total: int | None = None
    asked: list[tuple[int, int]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        limit, offset = paging_params(request)
        self.asked.append((limit, offset))
        items = [{"id": f"TA-{i:04d}"} for i in range(self.size)]
        page = items[offset : offset + min(limit, self.max_limit)]
        headers = {}
        if self.content_range:
            total = self.size if self.claimed_total is None else self.claimed_total
            last = offset + len(page) - 1 if page else offset
            headers["Content-Range"] = f"items {offset}-{last}/{total}"
        return httpx.Response(200, json=page, headers=headers)


def collect(client: ConnectClient, **kwargs: Any) -> list[str]:
    return [
        item["id"]
        for page in client.iter_pages("/tier/accounts", "", **kwargs)
        for item in page.items
    ]


# ---------------------------------------------------------------- paging


def test_paging_with_a_server_that_clamps_the_limit_loses_and_repeats_nothing(
    make_client: Callable[..., ConnectClient],
) -> None:
    server = FakeCollection(size=237, max_limit=50)
    client = make_client(server, page_size=1000)
    ids = collect(client)
    assert ids == [f"TA-{i:04d}" for i in range(237)]
    assert server.asked == [(1000, 0), (1000, 50), (1000, 100), (1000, 150), (1000, 200)]


def test_pages_report_offsets_and_total(make_client: Callable[..., ConnectClient]) -> None:
    client = make_client(FakeCollection(size=120), page_size=50)
    pages = list(client.iter_pages("/tier/accounts", ""))
    assert [(p.offset, p.next_offset, p.total, len(p.items)) for p in pages] == [
        (0, 50, 120, 50),
        (50, 100, 120, 50),
        (100, 120, 120, 20),
    ]


def test_paging_stops_at_total_without_asking_for_an_empty_page(
    make_client: Callable[..., ConnectClient],
) -> None:
    server = FakeCollection(size=200)
    client = make_client(server, page_size=100)
    assert len(collect(client)) == 200
    assert server.asked == [(100, 0), (100, 100)]


def test_paging_stops_at_an_empty_page_when_the_total_overstates(
    make_client: Callable[..., ConnectClient],
) -> None:
    server = FakeCollection(size=150, claimed_total=400)
    client = make_client(server, page_size=100)
    assert len(collect(client)) == 150
    assert server.asked == [(100, 0), (100, 100), (100, 150)]


def test_paging_without_content_range_stops_at_a_short_page(
    make_client: Callable[..., ConnectClient],
) -> None:
    server = FakeCollection(size=250, content_range=False)
    client = make_client(server, page_size=100)
    assert len(collect(client)) == 250
    assert server.asked == [(100, 0), (100, 100), (100, 200)]


def test_paging_resumes_from_start_offset_with_the_given_limit(
    make_client: Callable[..., ConnectClient],
) -> None:
    server = FakeCollection(size=30)
    client = make_client(server)
    assert collect(client, start_offset=25, limit=2) == [f"TA-{i:04d}" for i in range(25, 30)]
    assert server.asked == [(2, 25), (2, 27), (2, 29)]


def test_the_query_is_sent_as_rendered_followed_by_paging(
    make_client: Callable[..., ConnectClient],
) -> None:
    sent: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.query)
        return httpx.Response(200, json=[], headers={"Content-Range": "items 0-0/0"})

    query = render_query(eq("name", 'x),or(eq(id,* & "q"'), ordering("-id"))
    client = make_client(handler)
    assert list(client.iter_pages("/tier/accounts", query)) == [
        Page(items=[], offset=0, next_offset=0, total=0)
    ]
    assert sent == [f"{query}&limit=1000&offset=0".encode()]


@pytest.mark.parametrize(
    ("content_range", "body"),
    [
        ("items 10-19/100", [{"id": i} for i in range(10)]),  # first != offset
        ("items 0-49/100", [{"id": i} for i in range(10)]),  # count != items
        ("items 0-9/5", [{"id": i} for i in range(10)]),  # last past total
        ("bytes 0-9/100", [{"id": i} for i in range(10)]),  # unreadable
        ("items 0-0/1", {"id": 1}),  # not a list
    ],
)
def test_a_content_range_or_body_that_contradicts_itself_is_malformed(
    make_client: Callable[..., ConnectClient], content_range: str, body: Any
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body, headers={"Content-Range": content_range})

    client = make_client(handler)
    with pytest.raises(MalformedResponse) as caught:
        list(client.iter_pages("/tier/accounts", ""))
    assert caught.value.body == json.dumps(body, separators=(",", ":"))
    assert caught.value.status == 200
    assert client.stats.total_retries == 0


def test_a_body_that_is_not_json_is_malformed_and_kept_up_to_the_limit(
    make_client: Callable[..., ConnectClient],
) -> None:
    page = "<html>" + "x" * (MALFORMED_EXCERPT + 5000)

    client = make_client(lambda request: httpx.Response(200, text=page))
    with pytest.raises(MalformedResponse, match="not JSON") as caught:
        client.get(f"/tier/account-requests/{TAR}")
    assert caught.value.body == page[:MALFORMED_EXCERPT]


def test_count_reads_the_total_of_a_zero_limit_request(
    make_client: Callable[..., ConnectClient],
) -> None:
    server = FakeCollection(size=237)
    client = make_client(server)
    assert client.count("/tier/accounts", render_query(eq("type", "customer"))) == 237
    assert server.asked == [(0, 0)]


def test_count_without_a_total_is_malformed(make_client: Callable[..., ConnectClient]) -> None:
    client = make_client(FakeCollection(size=3, content_range=False))
    with pytest.raises(MalformedResponse, match="total"):
        client.count("/tier/accounts", "")


# ---------------------------------------------------------------- retries


def test_retry_after_seconds_is_honoured(
    make_client: Callable[..., ConnectClient], fake_time: FakeTime
) -> None:
    answers = iter(
        [httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(200, json={"ok": 1})]
    )
    client = make_client(lambda request: next(answers), cap=0.1)
    assert client.get("/tier/accounts/TA-1") == {"ok": 1}
    assert len(fake_time.sleeps) == 1
    assert fake_time.sleeps[0] >= 2
    assert client.stats.retries[("GET", "/tier/accounts/{id}")] == 1


def test_a_retry_after_beyond_the_time_budget_gives_up_at_once(
    make_client: Callable[..., ConnectClient], fake_time: FakeTime
) -> None:
    date = "Fri, 01 Jan 2100 00:00:00 GMT"
    client = make_client(lambda request: httpx.Response(429, headers={"Retry-After": date}))
    with pytest.raises(RetriableError) as caught:
        client.get("/tier/accounts")
    assert caught.value.status == 429
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 60
    assert fake_time.sleeps == []


def test_retries_are_bounded_by_attempts(
    make_client: Callable[..., ConnectClient], fake_time: FakeTime
) -> None:
    client = make_client(lambda request: httpx.Response(503), attempts=4)
    with pytest.raises(RetriableError) as caught:
        client.get("/tier/accounts")
    assert caught.value.status == 503
    assert client.stats.requests[("GET", "/tier/accounts", 503)] == 4
    assert len(fake_time.sleeps) == 3


def test_retries_are_bounded_by_total_time(
    make_client: Callable[..., ConnectClient], fake_time: FakeTime
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": "3"})

    client = make_client(handler, attempts=100, max_seconds=10.0, cap=1.0)
    with pytest.raises(RetriableError):
        client.get("/tier/accounts")
    # Tries at t=0, 3, 6, 9; a fourth wait would end at 12 > 10.
    assert fake_time.sleeps == [3.0, 3.0, 3.0]
    assert client.stats.total == 4


def test_server_errors_are_retried_then_raised_as_retriable(
    make_client: Callable[..., ConnectClient],
) -> None:
    client = make_client(lambda request: httpx.Response(500, json={"error_code": "SYS_001"}))
    with pytest.raises(RetriableError, match="500 SYS_001") as caught:
        client.get("/tier/accounts")
    assert caught.value.kind == "retriable"
    assert not isinstance(caught.value, OutcomeUnknown)
    assert client.stats.total == 4
    assert client.stats.total_retries == 3


def test_a_server_error_then_success_returns_the_answer(
    make_client: Callable[..., ConnectClient],
) -> None:
    answers = iter([httpx.Response(502), httpx.Response(200, json=[1])])
    client = make_client(lambda request: next(answers))
    assert client.get("/tier/accounts") == [1]
    assert client.stats.requests[("GET", "/tier/accounts", 502)] == 1
    assert client.stats.requests[("GET", "/tier/accounts", 200)] == 1


def test_transport_errors_on_get_are_retried(make_client: Callable[..., ConnectClient]) -> None:
    failures = [httpx.ReadTimeout("timed out"), httpx.RemoteProtocolError("disconnected")]

    def handler(request: httpx.Request) -> httpx.Response:
        if failures:
            raise failures.pop(0)
        return httpx.Response(200, json={"id": "TA-1"})

    client = make_client(handler)
    assert client.get("/tier/accounts/TA-1") == {"id": "TA-1"}
    assert client.stats.requests[("GET", "/tier/accounts/{id}", 0)] == 2


def test_retries_are_logged_as_events(
    make_client: Callable[..., ConnectClient], caplog: pytest.LogCaptureFixture
) -> None:
    answers = iter([httpx.Response(503), httpx.Response(200, json=[])])
    client = make_client(lambda request: next(answers))
    with caplog.at_level(logging.WARNING, logger="syncd.connect.client"):
        client.get("/tier/accounts")
    [record] = caplog.records
    assert record.getMessage() == "request_retried"
    assert record.__dict__["attempt"] == 2
    assert record.__dict__["reason"] == "503"
    assert record.__dict__["template"] == "/tier/accounts"


# ---------------------------------------------------------------- classification


def test_401_is_fatal_at_once_and_names_the_error_code(
    make_client: Callable[..., ConnectClient], fake_time: FakeTime
) -> None:
    body = {"error_code": "AUTH_001", "errors": ["API request is unauthorized."]}
    client = make_client(lambda request: httpx.Response(401, json=body))
    with pytest.raises(FatalError) as caught:
        client.get("/tier/accounts")
    assert str(caught.value) == "GET /tier/accounts: 401 AUTH_001 - API request is unauthorized."
    assert caught.value.kind == "fatal"
    assert client.stats.total == 1
    assert fake_time.sleeps == []


def test_403_is_fatal(make_client: Callable[..., ConnectClient]) -> None:
    client = make_client(lambda request: httpx.Response(403, json={"error_code": "AUTH_002"}))
    with pytest.raises(FatalError, match="403 AUTH_002"):
        client.get("/tier/accounts")


def test_a_refused_accept_is_a_record_error_with_code_and_errors(
    make_client: Callable[..., ConnectClient],
) -> None:
    body = {"error_code": "VAL_001", "errors": ["status: TAR is not pending"], "params": {}}
    client = make_client(lambda request: httpx.Response(400, json=body))
    with pytest.raises(RecordError) as caught:
        client.post(f"/tier/account-requests/{TAR}/accept")
    error = caught.value
    assert (
        str(error)
        == f"POST /tier/account-requests/{TAR}/accept: 400 VAL_001 - status: TAR is not pending"
    )
    assert (error.status, error.error_code, error.errors) == (
        400,
        "VAL_001",
        ["status: TAR is not pending"],
    )
    assert error.kind == "record"
    assert client.stats.requests == {("POST", "/tier/account-requests/{id}/accept", 400): 1}


def test_404_is_a_record_error(make_client: Callable[..., ConnectClient]) -> None:
    client = make_client(lambda request: httpx.Response(404))
    with pytest.raises(RecordError, match="GET /tier/accounts/TA-9: 404 Not Found"):
        client.get("/tier/accounts/TA-9")


def test_an_html_error_page_still_gives_a_clear_message(
    make_client: Callable[..., ConnectClient],
) -> None:
    page = (
        "<html><head><title>502 Bad Gateway</title><style>b{}</style></head>"
        "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
    )
    client = make_client(lambda request: httpx.Response(502, html=page), attempts=1)
    with pytest.raises(RetriableError) as caught:
        client.get("/tier/accounts")
    assert str(caught.value) == (
        "GET /tier/accounts: 502 Bad Gateway - 502 Bad Gateway 502 Bad Gateway nginx"
    )
    assert caught.value.body == page
    assert caught.value.error_code is None


def test_a_post_whose_answer_is_lost_is_not_repeated(
    make_client: Callable[..., ConnectClient], fake_time: FakeTime
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    client = make_client(handler)
    with pytest.raises(OutcomeUnknown, match="read the record back") as caught:
        client.post(f"/tier/account-requests/{TAR}/accept")
    assert isinstance(caught.value, RetriableError)
    assert client.stats.total == 1
    assert fake_time.sleeps == []


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_write_answered_by_a_gateway_error_is_not_repeated(
    make_client: Callable[..., ConnectClient], status: int
) -> None:
    client = make_client(lambda request: httpx.Response(status))
    with pytest.raises(OutcomeUnknown):
        client.put("/tier/accounts/TA-1", {"name": "x"})
    assert client.stats.total == 1


def test_a_write_refused_with_429_or_never_connected_is_repeated(
    make_client: Callable[..., ConnectClient],
) -> None:
    attempts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request.content.decode())
        if len(attempts) == 1:
            raise httpx.ConnectError("connection refused")
        if len(attempts) == 2:
            return httpx.Response(429, headers={"Retry-After": "1"})
        return httpx.Response(200, json={"status": "ignored"})

    client = make_client(handler)
    assert client.post(f"/tier/account-requests/{TAR}/ignore", {"reason": "r"}) == {
        "status": "ignored"
    }
    assert attempts == ['{"reason":"r"}'] * 3


def test_an_unknown_host_name_is_fatal(make_client: Callable[..., ConnectClient]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        cause = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        raise httpx.ConnectError("[Errno -2] Name or service not known") from cause

    client = make_client(handler)
    with pytest.raises(FatalError, match="Name or service not known"):
        client.get("/tier/accounts")
    assert client.stats.total == 1


def test_a_temporary_name_resolution_failure_is_retried(
    make_client: Callable[..., ConnectClient],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        cause = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        raise httpx.ConnectError("temporary failure") from cause

    client = make_client(handler, attempts=3)
    with pytest.raises(RetriableError):
        client.get("/tier/accounts")
    assert client.stats.total == 3


def test_redirects_to_a_version_are_followed(make_client: Callable[..., ConnectClient]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/TA-1"):
            return httpx.Response(
                302, headers={"Location": f"{BASE}/tier/accounts/TA-1/versions/3"}
            )
        assert request.headers["Authorization"] == f"ApiKey {KEY}"
        return httpx.Response(200, json={"id": "TA-1", "version": 3})

    client = make_client(handler)
    assert client.get("/tier/accounts/TA-1") == {"id": "TA-1", "version": 3}
    assert client.stats.requests == {("GET", "/tier/accounts/{id}", 200): 1}


def test_an_empty_answer_is_none(make_client: Callable[..., ConnectClient]) -> None:
    client = make_client(lambda request: httpx.Response(204))
    assert client.post(f"/tier/account-requests/{TAR}/accept") is None


# ---------------------------------------------------------------- headers and secrecy


@pytest.mark.parametrize("given", [KEY, f"ApiKey {KEY}", f"  {KEY}\n"])
def test_the_apikey_prefix_is_added_only_when_missing(
    make_client: Callable[..., ConnectClient], given: str
) -> None:
    seen: list[httpx.Headers] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200, json=[])

    make_client(handler, api_key=given).get("/tier/accounts")
    assert seen[0]["Authorization"] == f"ApiKey {KEY}"
    assert seen[0]["User-Agent"].startswith("syncd/")


@pytest.mark.parametrize("given", ["", "  ", "ApiKey", "apikey  "])
def test_an_empty_key_is_refused(given: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        ConnectClient(BASE, given)


def _echo_key(request: httpx.Request) -> str:
    return f"bad header {request.headers['Authorization']} (secret {SECRET})"


ECHOES: dict[str, Handler] = {
    "json 400": lambda r: httpx.Response(
        400, json={"error_code": _echo_key(r), "errors": [_echo_key(r)]}
    ),
    "html 502": lambda r: httpx.Response(502, html=f"<p>{_echo_key(r)}</p>"),
    "html 401": lambda r: httpx.Response(401, html=f"<p>{_echo_key(r)}</p>"),
    "bad json 200": lambda r: httpx.Response(200, text=_echo_key(r)),
    "lying range": lambda r: httpx.Response(
        200, json=[_echo_key(r)], headers={"Content-Range": "items 5-5/9"}
    ),
}


@pytest.mark.parametrize("name", list(ECHOES))
def test_the_key_never_appears_in_errors_or_logs(
    make_client: Callable[..., ConnectClient], caplog: pytest.LogCaptureFixture, name: str
) -> None:
    client = make_client(ECHOES[name], attempts=2)
    with caplog.at_level(logging.DEBUG), pytest.raises(ConnectError) as caught:
        list(client.iter_pages("/tier/accounts", ""))
    error = caught.value
    texts = [str(error), repr(error), error.body or "", *error.errors, error.error_code or ""]
    texts += [caplog.text, repr(client), repr(client.stats)]
    for text in texts:
        assert SECRET not in text
        assert "SU-123-456-789" not in text
    assert "***" in (error.body or "")


def test_the_key_never_appears_in_a_transport_error(
    make_client: Callable[..., ConnectClient], caplog: pytest.LogCaptureFixture
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.WriteError(f"broken pipe while sending {request.headers['Authorization']}")

    client = make_client(handler)
    with caplog.at_level(logging.DEBUG), pytest.raises(OutcomeUnknown) as caught:
        client.post(f"/tier/account-requests/{TAR}/accept")
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)
    assert caught.value.__cause__ is None
    assert SECRET not in caplog.text
