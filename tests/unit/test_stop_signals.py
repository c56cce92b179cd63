"""SIGTERM and SIGINT: the first asks for a stop, the second exits at once with 128 + signum."""

from __future__ import annotations

import os
import signal

import pytest

from syncd.service.signals import forced_exit_code, stop_signals


@pytest.mark.parametrize(
    ("first", "second", "code"),
    [
        (signal.SIGTERM, signal.SIGTERM, 143),
        (signal.SIGINT, signal.SIGINT, 130),
        (signal.SIGTERM, signal.SIGINT, 130),
    ],
)
def test_the_first_signal_asks_for_a_stop_and_the_second_exits_at_once(
    first: signal.Signals, second: signal.Signals, code: int
) -> None:
    stops: list[int] = []
    exits: list[int] = []

    with stop_signals(stops.append, hard_exit=exits.append):
        os.kill(os.getpid(), first)
        assert (stops, exits) == ([first], [])
        os.kill(os.getpid(), second)

    assert stops == [first]
    assert exits == [code]


def test_the_previous_handlers_are_back_afterwards() -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with stop_signals(lambda _signum: None, hard_exit=lambda _code: None):
        assert signal.getsignal(signal.SIGTERM) not in before
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_the_exit_codes_follow_the_shell_convention() -> None:
    assert forced_exit_code(signal.SIGINT) == 130
    assert forced_exit_code(signal.SIGTERM) == 143
