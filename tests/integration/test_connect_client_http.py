"""ConnectClient over real sockets (the shared simulator framework on loopback): what httpx raises
when a connection is reset or an answer is dropped, and what the server receives."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from syncd.connect.client import ConnectClient
from syncd.connect.errors import OutcomeUnknown
from syncd.connect.rql import eq, ordering, render_query
from syncd.retry import RetryPolicy
from syncd.sim.base import Fault, Request, Response, SimApp, SimServer

KEY = "SU-000-000-000:loopback-secret"
TAR = "TAR-4821-0937-5512-003-001"


class TinyConnect(SimApp):
    """Just enough of Connect: one collection and the accept action."""

    name = "tiny-connect"

    def __init__(self) -> None:
        super().__init__()
        self.accepted: list[str] = []
        self.route("GET", r"/public/v1/tier/accounts", self.list_accounts)
        self.route("POST", r"/public/v1/tier/account-requests/(?P<tar>[^/]+)/accept", self.accept)

    def list_accounts(self, request: Request) -> Response:
        items = [{"id": f"TA-{i}"} for i in range(3)]
        return Response(200, items, {"Content-Range": "items 0-2/3"})

    def accept(self, request: Request, tar: str) -> Response:
        self.accepted.append(tar)
        return Response(200, {"id": tar, "status": "accepted"})


@pytest.fixture
def app() -> TinyConnect:
    return TinyConnect()


@pytest.fixture
def server(app: TinyConnect) -> Iterator[SimServer]:
    with SimServer(app) as running:
        yield running


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(server: SimServer, sleeps: list[float]) -> Iterator[ConnectClient]:
    retry = RetryPolicy(attempts=3, sleep=sleeps.append)
    with ConnectClient(f"{server.url}/public/v1", KEY, timeout=10, retry=retry) as connect:
        connect.get("/tier/accounts")  # a kept-alive connection, as in a long run
        server.clear_log()
        yield connect


def test_a_post_applied_but_unanswered_is_outcome_unknown_and_sent_once(
    client: ConnectClient, server: SimServer, app: TinyConnect
) -> None:
    server.faults.inject(Fault(drop_response=True))
    with pytest.raises(OutcomeUnknown):
        client.post(f"/tier/account-requests/{TAR}/accept")
    assert app.accepted == [TAR]
    assert len(server.requests_matching("POST")) == 1


def test_a_get_whose_connection_is_reset_is_retried(
    client: ConnectClient, server: SimServer, sleeps: list[float]
) -> None:
    server.faults.inject(Fault(reset=True))
    pages = list(client.iter_pages("/tier/accounts", ""))
    assert [item["id"] for page in pages for item in page.items] == ["TA-0", "TA-1", "TA-2"]
    assert [r.status for r in server.requests_matching("GET")] == [0, 200]
    assert len(sleeps) == 1


def test_a_429_from_the_server_is_waited_out(
    client: ConnectClient, server: SimServer, sleeps: list[float]
) -> None:
    server.faults.inject(Fault(status=429, headers={"Retry-After": "1"}))
    assert client.post(f"/tier/account-requests/{TAR}/accept") == {
        "id": TAR,
        "status": "accepted",
    }
    assert sleeps[0] >= 1


def test_the_server_reads_the_query_and_key_as_sent(
    client: ConnectClient, server: SimServer
) -> None:
    seen: list[Any] = []
    original = server.app.dispatch

    def spy(request: Request) -> Response:
        seen.append((request.query, request.header("authorization")))
        return original(request)

    server.app.dispatch = spy  # type: ignore[method-assign]
    hostile = 'x),or(eq(id,*& "+1" 100%'
    list(client.iter_pages("/tier/accounts", render_query(eq("name", hostile), ordering("id"))))
    assert seen == [
        (f"eq(name,'{hostile}')&ordering(id)&limit=1000&offset=0", f"ApiKey {KEY}"),
    ]
