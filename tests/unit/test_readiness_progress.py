"""The readiness rule for a running cycle, and the throttled progress mark, without a database."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.service.health import decide
from syncd.service.progress_mark import ProgressMark

LIMIT = 3 * 60.0
AGES = st.none() | st.floats(0, 10 * LIMIT)


@given(age=AGES, progress_age=AGES, uptime=st.floats(0, 10 * LIMIT))
def test_ready_exactly_when_a_cycle_completed_or_the_running_one_progressed_within_3_intervals(
    age: float | None, progress_age: float | None, uptime: float
) -> None:
    state = decide(age, uptime, LIMIT, progress_age=progress_age)

    completed = age is not None and age <= LIMIT
    progressing = progress_age is not None and progress_age <= LIMIT
    assert state.ready == (completed or progressing or uptime < LIMIT)


def test_a_running_cycle_that_progressed_lately_keeps_a_stale_service_ready() -> None:
    state = decide(5000.0, 9000.0, LIMIT, progress_age=12.34)

    assert state.ready
    assert state.reason == "a cycle is running and progressed within 3 intervals"
    assert json.loads(state.body()) == {
        "ready": True,
        "reason": "a cycle is running and progressed within 3 intervals",
        "last_success_age_seconds": 5000.0,
        "running_progress_age_seconds": 12.3,
    }


def test_a_stuck_cycle_is_not_ready_and_says_for_how_long_it_made_no_progress() -> None:
    state = decide(None, 9000.0, LIMIT, progress_age=400.0)

    assert not state.ready
    assert (
        state.reason == "a cycle is running but made no progress for 400s, over 3 intervals (180s)"
    )
    assert state.running_progress_age_seconds == 400.0


def test_the_body_leaves_the_progress_age_out_when_no_cycle_is_running() -> None:
    body = json.loads(decide(1000.0, 9000.0, LIMIT).body())

    assert "running_progress_age_seconds" not in body
    assert body["reason"] == "last completed cycle 1000s ago, over 3 intervals (180s)"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_mark_is_stamped_at_the_first_poll_then_at_most_once_per_period() -> None:
    stamps: list[float] = []
    clock = Clock()
    mark = ProgressMark(lambda: stamps.append(clock.now), 5.0, clock=clock)
    polled = mark.watch(lambda: False)

    for step in range(12):  # a poll every second for 12 seconds
        clock.now = 100.0 + step
        polled()

    assert stamps == [100.0, 105.0, 110.0]


def test_a_new_cycle_stamps_at_its_first_poll_even_within_the_period() -> None:
    stamps: list[float] = []
    clock = Clock()
    mark = ProgressMark(lambda: stamps.append(clock.now), 5.0, clock=clock)
    mark.watch(lambda: False)()
    clock.now += 1

    mark.watch(lambda: False)()

    assert stamps == [100.0, 101.0]


def test_the_watched_poll_answers_what_should_stop_answers() -> None:
    answers = iter([False, True])
    mark = ProgressMark(lambda: None, 5.0, clock=Clock())

    polled = mark.watch(lambda: next(answers))

    assert [polled(), polled()] == [False, True]


def test_a_failing_stamp_never_reaches_the_cycle_and_is_not_retried_at_every_poll() -> None:
    calls: list[int] = []
    clock = Clock()

    def broken() -> None:
        calls.append(1)
        raise OSError("database gone")

    mark = ProgressMark(broken, 5.0, clock=clock)
    polled = mark.watch(lambda: False)

    results = [polled(), polled()]
    clock.now += 5
    polled()

    assert results == [False, False]
    assert len(calls) == 2


def test_the_period_must_be_positive() -> None:
    with pytest.raises(ValueError, match="every"):
        ProgressMark(lambda: None, 0)
