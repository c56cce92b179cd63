"""The per-run retry budget: shared by every policy holding it, on top of per-request bounds."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.retry import RetryBudget, RetryPolicy


def instant(budget: RetryBudget | None, attempts: int = 6) -> tuple[RetryPolicy, list[float]]:
    slept: list[float] = []
    policy = RetryPolicy(
        attempts=attempts, base=0.01, cap=0.01, sleep=slept.append, clock=lambda: 0.0, budget=budget
    )
    return policy, slept


def test_retries_of_two_clients_sharing_a_budget_stop_once_it_is_spent() -> None:
    budget = RetryBudget(3)
    connect, connect_slept = instant(budget)
    crm, crm_slept = instant(budget)

    first, second = connect.start(), crm.start()
    granted = [first.wait_or_give_up(), second.wait_or_give_up(), first.wait_or_give_up()]
    refused = [second.wait_or_give_up(), first.wait_or_give_up()]

    assert granted == [True, True, True]
    assert refused == [False, False]
    assert budget.spent == 3
    assert len(connect_slept) + len(crm_slept) == 3, "a refused retry does not sleep"


def test_the_per_request_attempts_still_bound_a_request_within_a_large_budget() -> None:
    budget = RetryBudget(100)
    policy, _ = instant(budget, attempts=3)
    state = policy.start()

    tries = 1
    while state.wait_or_give_up():
        tries += 1

    assert tries == 3
    assert budget.spent == 2


def test_a_reset_gives_the_next_run_the_whole_budget_again() -> None:
    budget = RetryBudget(1)
    policy, _ = instant(budget)
    assert policy.start().wait_or_give_up()
    assert not policy.start().wait_or_give_up()

    budget.reset()

    assert policy.start().wait_or_give_up()


def test_a_policy_without_a_budget_keeps_only_the_per_request_bounds() -> None:
    policy, slept = instant(None, attempts=4)
    state = policy.start()
    assert [state.wait_or_give_up() for _ in range(4)] == [True, True, True, False]
    assert len(slept) == 3


def test_a_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        RetryBudget(-1)


@settings(max_examples=40, deadline=None)
@given(limit=st.integers(0, 50), threads=st.integers(1, 8), each=st.integers(0, 20))
def test_concurrent_takes_never_grant_more_than_the_limit(
    limit: int, threads: int, each: int
) -> None:
    budget = RetryBudget(limit)
    granted: list[bool] = []
    lock = threading.Lock()

    def take() -> None:
        mine = [budget.take() for _ in range(each)]
        with lock:
            granted.extend(mine)

    workers = [threading.Thread(target=take) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert sum(granted) == min(limit, threads * each) == budget.spent
