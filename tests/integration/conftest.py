"""Fixtures of the integration tests: the Connect simulator over loopback and a client of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from syncd import crashpoints
from syncd.connect.client import ConnectClient
from syncd.retry import RetryPolicy
from syncd.sim.base import SimServer
from syncd.sim.connect import ConnectSim

CONNECT_KEY = "SU-000-000-000:test-secret"


@pytest.fixture
def sim() -> ConnectSim:
    return ConnectSim(api_key=CONNECT_KEY)


@pytest.fixture
def server(sim: ConnectSim) -> Iterator[SimServer]:
    with SimServer(sim) as running:
        yield running


@pytest.fixture
def client(server: SimServer) -> Iterator[ConnectClient]:
    # Retries wait for real (Retry-After is honoured), but no longer than a test can afford.
    policy = RetryPolicy(attempts=4, max_seconds=10, base=0.01, cap=0.05)
    with ConnectClient(f"{server.url}/public/v1", CONNECT_KEY, timeout=10, retry=policy) as c:
        yield c


@pytest.fixture(autouse=True)
def _no_crash_hooks() -> Iterator[None]:
    yield
    crashpoints.reset()
