"""HubSpot read answers checked against their shape: any JSON reads or fails with a reason.

Answers are built in memory (`httpx.Response`), nothing is sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.connect.errors import Redactor
from syncd.crm import hubspot_answers as answers
from syncd.crm.hubspot_answers import Answer, record_id
from syncd.crm.port import CrmError

TOKEN = "pat-unit-answers-token"
WHAT = "HubSpot POST /crm/v3/objects/companies/batch/read"
NAMES = ("connect_account_id", "name", "hs_lastmodifieddate")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
ids = st.integers(min_value=0, max_value=2**63) | st.from_regex(r"[0-9]{1,18}", fullmatch=True)
values = st.none() | st.text()
good_records = st.fixed_dictionaries(
    {"id": ids, "properties": st.dictionaries(st.sampled_from(NAMES), values)}
)
good_links = st.fixed_dictionaries(
    {"from": st.fixed_dictionaries({"id": ids}), "to": st.lists(st.builds(dict, toObjectId=ids))}
)


def near(shape: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Any]:
    """Entries of `shape`, or of it with one member replaced by any JSON value, or any JSON."""
    swapped = st.tuples(shape, st.text(max_size=12) | st.sampled_from(["id", "properties"]))
    swapped_entries = st.builds(
        lambda pair, value: {**pair[0], pair[1]: value}, swapped, json_values
    )
    return shape | swapped_entries | json_values


def answer_of(body: Any, status: int = 200) -> Answer:
    headers = {"Content-Type": "application/json"}
    response = httpx.Response(status, headers=headers, content=json.dumps(body).encode())
    return Answer.of(response, WHAT, Redactor([TOKEN]))


def read_records(answer: Answer) -> list[tuple[str, dict[str, str | None]]]:
    return answer.each(lambda row, where: answers.record(row, where, NAMES))


def outcome(read: Callable[[], object]) -> CrmError | None:
    """None when `read` went through, the CrmError when it failed; anything else propagates."""
    try:
        read()
    except CrmError as exc:
        return exc
    return None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1001", "1001"),
        (1001, "1001"),
        (0, "0"),
        ("", None),
        ("c-1001", None),
        (" 1001", None),
        ("١٢", None),  # digits, but not ASCII ones: int() takes them, HubSpot never sends them
        (-1, None),
        (True, None),
        (10.0, None),
        (None, None),
        ({"id": "1"}, None),
    ],
)
def test_a_record_id_is_digits_or_a_whole_number(value: object, expected: str | None) -> None:
    assert record_id(value) == expected


@given(st.lists(near(good_records), max_size=4), st.none() | json_values)
def test_any_record_answer_reads_or_fails_with_a_crm_error_never_another_exception(
    results: list[Any], errors: Any
) -> None:
    body = {"results": results, "errors": errors}

    failed = outcome(lambda: read_records(answer_of(body, 207)))

    if failed is not None:
        assert not failed.fatal
        assert str(failed).startswith(WHAT)


@given(st.lists(near(good_links), max_size=4))
def test_any_association_answer_reads_or_fails_with_a_crm_error_never_another_exception(
    results: list[Any],
) -> None:
    failed = outcome(lambda: answer_of({"results": results}).each(answers.links))

    if failed is not None:
        assert "malformed answer: expected `results[" in str(failed)


@given(json_values.filter(lambda v: not isinstance(v, dict)))
def test_an_answer_that_is_not_a_json_object_is_an_error(body: Any) -> None:
    failed = outcome(lambda: answer_of(body))

    assert failed is not None
    assert "not a JSON object" in str(failed)


@given(st.lists(good_records, max_size=5))
def test_a_well_formed_answer_reads_every_record_as_it_came(records: list[dict[str, Any]]) -> None:
    read = read_records(answer_of({"results": records}))

    assert read == [(str(r["id"]), r["properties"]) for r in records]


@given(st.lists(good_links, max_size=5))
def test_a_well_formed_association_answer_reads_every_link(links: list[dict[str, Any]]) -> None:
    read = answer_of({"results": links}).each(answers.links)

    assert read == [
        (str(row["from"]["id"]), [str(t["toObjectId"]) for t in row["to"]]) for row in links
    ]


@given(st.text(max_size=40), st.text(max_size=40))
def test_the_message_about_a_malformed_answer_never_holds_the_token(
    before: str, after: str
) -> None:
    body = {"results": [{"id": f"{before}{TOKEN}{after}", "note": f"Bearer {TOKEN}"}]}

    failed = outcome(lambda: read_records(answer_of(body)))

    assert failed is not None
    assert TOKEN not in str(failed)
    assert "expected `results[0].id`, a record id" in str(failed)


def test_inputs_not_found_are_none_but_inputs_hubspot_failed_to_read_fail_the_read() -> None:
    missing = {"category": "OBJECT_NOT_FOUND", "message": "Could not get some COMPANY objects"}
    failed = {"category": "RATE_LIMITS", "message": f"Slow down {TOKEN}"}

    assert read_records(answer_of({"results": [], "errors": [missing]}, 207)) == []
    with pytest.raises(CrmError, match=r"could not read 1 of the records asked for: Slow down \*"):
        read_records(answer_of({"results": [], "errors": [missing, failed]}, 207))


def test_a_property_nobody_asked_for_is_left_out_whatever_its_type() -> None:
    row = {"id": "7", "properties": {"name": "Acme", "hs_num_contacts": 3, "zip": None}}

    assert read_records(answer_of({"results": [row]})) == [("7", {"name": "Acme", "zip": None})]
