"""SOQL building checked against the simulator's strict parser; header and error parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.crm.salesforce_http import ApiUsage, api_error, parse_limit_info
from syncd.crm.salesforce_soql import (
    chunk_for_url,
    datetime_literal,
    encoded_length,
    field_list,
    in_list,
    quote,
)
from syncd.sim.salesforce_soql import Comparison, SoqlError, parse

keys = st.text(max_size=40)


@given(st.lists(keys, min_size=1, max_size=8))
def test_any_key_survives_quoting_as_one_literal(values: list[str]) -> None:
    query = parse(f"SELECT Id FROM Account WHERE Connect_Account_Id__c IN {in_list(values)}")

    assert isinstance(query.where, Comparison)
    assert query.where.op == "IN"
    assert query.where.value == tuple(values)


@given(keys, keys)
def test_a_quoted_key_cannot_add_conditions(first: str, second: str) -> None:
    query = parse(f"SELECT Id FROM Account WHERE Name = {quote(first)} AND Phone = {quote(second)}")

    assert query.where is not None
    assert [c.value for c in query.where.parts] == [first, second]  # type: ignore[union-attr]


def test_unescaped_quote_is_what_the_parser_refuses() -> None:
    with pytest.raises(SoqlError):
        parse("SELECT Id FROM Account WHERE Name = 'it's'")


@given(st.lists(keys, max_size=60), st.integers(min_value=0, max_value=300))
def test_url_chunks_keep_every_key_in_order_within_budget(values: list[str], fixed: int) -> None:
    budget = 600
    chunks = list(chunk_for_url(values, fixed, budget))

    assert [v for chunk in chunks for v in chunk] == values
    for chunk in chunks:
        assert chunk
        if len(chunk) > 1:
            # `fixed` covers the rest of the URL, the list's parentheses included.
            assert fixed - encoded_length("()") + encoded_length(in_list(chunk)) <= budget


def test_field_names_are_checked_not_quoted() -> None:
    assert field_list(["Id", "Name", "Id", "Connect_Account_Id__c"]) == (
        "Id, Name, Connect_Account_Id__c"
    )
    with pytest.raises(ValueError, match="API name"):
        field_list(["Name FROM User --"])


@pytest.mark.parametrize(
    ("when", "literal"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, 999_000, tzinfo=UTC), "2026-01-02T03:04:05Z"),
        (datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05Z"),
        (
            datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
            "2026-01-02T03:04:05Z",
        ),
    ],
)
def test_datetime_literals_are_utc_and_rounded_down(when: datetime, literal: str) -> None:
    assert datetime_literal(when) == literal


@pytest.mark.parametrize(
    ("header", "usage"),
    [
        ("api-usage=10018/100000", ApiUsage(10018, 100000)),
        ("api-usage=5/15000, api-bursts=1/750", ApiUsage(5, 15000)),
        ("", None),
        (None, None),
    ],
)
def test_limit_info_header_is_parsed(header: str | None, usage: ApiUsage | None) -> None:
    assert parse_limit_info(header) == usage


def test_error_bodies_of_any_shape_are_read() -> None:
    array = httpx.Response(403, json=[{"message": "m", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    oauth = httpx.Response(400, json={"error": "invalid_grant", "error_description": "d"})
    html = httpx.Response(502, text="<html>Bad Gateway</html>")

    assert (api_error(array).code, api_error(array).message) == ("REQUEST_LIMIT_EXCEEDED", "m")
    assert api_error(oauth).code == "invalid_grant"
    assert api_error(html).code == ""
    assert "502" in api_error(html).message
