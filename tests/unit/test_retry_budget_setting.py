"""The `retry_budget` setting: its default, 0 for unlimited, and the budget bootstrap hands to
the policies it builds."""

from __future__ import annotations

import pytest

from syncd import bootstrap
from syncd.config import ConfigError, load_settings


def test_a_run_may_spend_500_retries_by_default() -> None:
    settings = load_settings()

    budget = bootstrap.retry_budget(settings)

    assert settings.retry_budget == budget.limit == 500


def test_a_budget_of_zero_is_unlimited_yet_still_counts_the_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SYNCD_RETRY_BUDGET", "0")
    budget = bootstrap.retry_budget(load_settings())

    granted = [budget.take() for _ in range(10_000)]

    assert all(granted)
    assert budget.spent == 10_000


@pytest.mark.parametrize("value", ["-1", "many"])
def test_a_budget_that_is_not_a_count_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SYNCD_RETRY_BUDGET", value)
    with pytest.raises(ConfigError, match="SYNCD_RETRY_BUDGET"):
        load_settings()


def test_a_client_holds_the_budget_it_is_given_and_a_policy_without_one_has_none() -> None:
    # That the CRM adapter spends the same budget: tests/integration/test_run_retry_budget.py.
    settings = load_settings(connect_api_key="SU-1:secret", retry_attempts=3)
    budget = bootstrap.retry_budget(settings)

    with bootstrap.connect_client(settings, budget=budget) as client:
        policy = client.retry

    assert policy.budget is budget
    assert policy.attempts == 3
    assert bootstrap.retry_policy(settings).budget is None
