"""The readiness rule and the listener address, without a server or a database."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.config import ConfigError
from syncd.service.health import HealthServer, ReadyState, decide, parse_http_addr

LIMIT = 3 * 60.0


@given(
    age=st.none() | st.floats(0, 10 * LIMIT),
    uptime=st.floats(0, 10 * LIMIT),
)
def test_ready_exactly_when_a_cycle_completed_within_3_intervals_or_the_process_is_young(
    age: float | None, uptime: float
) -> None:
    state = decide(age, uptime, LIMIT)

    assert state.ready == ((age is not None and age <= LIMIT) or uptime < LIMIT)


def test_a_stale_last_success_says_how_old_it_is() -> None:
    state = decide(1000.0, 5000.0, LIMIT)

    assert not state.ready
    assert state.reason == "last completed cycle 1000s ago, over 3 intervals (180s)"
    assert state.last_success_age_seconds == 1000.0


def test_no_cycle_ever_after_the_start_grace_is_not_ready() -> None:
    assert decide(None, LIMIT, LIMIT) == ReadyState(False, "no cycle has completed yet")


def test_the_readiness_body_is_one_line_of_json() -> None:
    body = decide(12.34, 1.0, LIMIT).body()

    assert body.endswith(b"\n")
    assert b"\n" not in body[:-1]
    assert json.loads(body) == {
        "ready": True,
        "reason": "a cycle completed within 3 intervals",
        "last_success_age_seconds": 12.3,
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:9108", ("127.0.0.1", 9108)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        (":9108", ("", 9108)),
        ("[::1]:9108", ("::1", 9108)),
        ("localhost:80", ("localhost", 80)),
        ("", None),
        ("  ", None),
    ],
)
def test_http_addr_is_host_colon_port_or_empty_for_off(
    value: str, expected: tuple[str, int] | None
) -> None:
    assert parse_http_addr(value) == expected


@pytest.mark.parametrize("value", ["9108", "localhost", "host:port", "h:70000", "::1:9108"])
def test_a_bad_http_addr_is_a_config_error_naming_the_setting(value: str) -> None:
    with pytest.raises(ConfigError, match="SYNCD_HTTP_ADDR"):
        parse_http_addr(value)


def test_an_empty_address_turns_the_listener_off() -> None:
    server = HealthServer("")

    with server:
        assert not server.enabled
        assert server.address is None
        assert server.url is None
