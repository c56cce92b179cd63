"""The concurrency settings of issue 6: defaults, bounds, and errors that name the setting."""

from __future__ import annotations

import pytest

from syncd import bootstrap
from syncd.config import ConfigError, load_settings


def test_pages_are_fetched_four_at_once_and_accepts_sent_eight_at_once_by_default() -> None:
    settings = load_settings()
    assert (settings.pull_concurrency, settings.writeback_concurrency) == (4, 8)
    assert bootstrap.pull_options(settings).concurrency == 4


def test_the_environment_sets_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_PULL_CONCURRENCY", "1")
    monkeypatch.setenv("SYNCD_WRITEBACK_CONCURRENCY", "16")
    settings = load_settings()
    assert (settings.pull_concurrency, settings.writeback_concurrency) == (1, 16)
    assert bootstrap.pull_options(settings).concurrency == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SYNCD_PULL_CONCURRENCY", "0"),
        ("SYNCD_PULL_CONCURRENCY", "33"),
        ("SYNCD_WRITEBACK_CONCURRENCY", "0"),
        ("SYNCD_WRITEBACK_CONCURRENCY", "65"),
        ("SYNCD_WRITEBACK_CONCURRENCY", "many"),
    ],
)
def test_a_concurrency_out_of_bounds_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()
