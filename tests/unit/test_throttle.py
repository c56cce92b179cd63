"""The pace shared by the threads of one Connect client (`syncd.connect.throttle`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from syncd.connect.client import ConnectClient
from syncd.connect.throttle import Throttle
from syncd.retry import RetryPolicy


@dataclass
class FakeTime:
    now: float = 0.0
    sleeps: list[tuple[str, float]] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append((threading.current_thread().name, seconds))
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def in_thread(name: str, action: Callable[[], None]) -> None:
    thread = threading.Thread(target=action, name=name)
    thread.start()
    thread.join(5)
    assert not thread.is_alive()


def test_a_429_makes_other_requests_wait_out_its_pause_but_not_the_retry_that_slept_it(
    fake: FakeTime,
) -> None:
    throttle = Throttle(fake.clock, fake.sleep)

    def got_429() -> None:
        throttle.wait_turn()
        throttle.done(pause=2.0)
        throttle.wait_turn(after_own_pause=True)  # it slept its own backoff in the client
        throttle.done(pause=None)

    def succeeds() -> None:
        throttle.wait_turn()
        throttle.done(pause=None)

    in_thread("first", got_429)
    in_thread("other", succeeds)

    assert fake.sleeps == [("other", 2.0)]


def test_a_429_halves_the_requests_in_flight_and_successes_let_them_back(fake: FakeTime) -> None:
    throttle = Throttle(fake.clock, fake.sleep, recover_after=3)
    for _ in range(8):
        throttle.wait_turn()
    throttle.done(pause=1.0)  # one of eight in flight got a 429
    assert throttle.limit == 4
    for _ in range(7):
        throttle.done(pause=None)  # the rest answer; a 429 among them would not halve again
    assert throttle.limit == 6
    for _ in range(6):
        throttle.wait_turn()
        throttle.done(pause=None)
    assert throttle.limit == 8
    for _ in range(3):
        throttle.wait_turn()
        throttle.done(pause=None)
    assert throttle.limit is None, "back above the concurrency ever used: no bound"


def test_429s_answering_requests_sent_before_the_pause_do_not_halve_again(fake: FakeTime) -> None:
    throttle = Throttle(fake.clock, fake.sleep)
    for _ in range(8):
        throttle.wait_turn()
    throttle.done(pause=1.0)
    throttle.done(pause=1.0)
    throttle.done(pause=1.0)
    assert throttle.limit == 4


def test_a_thread_waits_for_a_place_when_the_limit_is_reached(fake: FakeTime) -> None:
    throttle = Throttle(fake.clock, fake.sleep)
    throttle.wait_turn()
    throttle.wait_turn()
    throttle.done(pause=0.0)  # limit 1 now, one request still in flight
    entered = threading.Event()

    def waiter() -> None:
        throttle.wait_turn()
        entered.set()
        throttle.done(None)

    thread = threading.Thread(target=waiter)
    thread.start()
    assert not entered.wait(0.2)
    throttle.done(None)
    assert entered.wait(5)
    thread.join(5)


@pytest.fixture
def client(fake: FakeTime) -> Iterator[ConnectClient]:
    answers = iter([429, 429, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(answers)
        headers = {"Retry-After": "3"} if status == 429 else {}
        return httpx.Response(status, json={}, headers=headers)

    retry = RetryPolicy(attempts=4, sleep=fake.sleep, clock=fake.clock)
    with ConnectClient(
        "https://connect.test/public/v1",
        "SU-1:k",
        retry=retry,
        transport=httpx.MockTransport(handler),
    ) as made:
        yield made


def test_a_lone_thread_waits_retry_after_once_per_429_as_without_a_throttle(
    fake: FakeTime, client: ConnectClient
) -> None:
    client.get("/tier/accounts")

    assert [seconds for _, seconds in fake.sleeps] == [3.0, 3.0]
    assert client.throttle.limit == 1
