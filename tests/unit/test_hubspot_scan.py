"""The sliding-window scan over HubSpot search: nothing missed, whatever the ties and their order.

The fake search answers like HubSpot (first page only, one ascending sort, ties in no promised
order); small pages make full pages, boundary ties and one-millisecond bursts common.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.crm.hubspot_scan import scan_modified, to_ms

MODIFIED = "hs_lastmodifieddate"


class FakeSearch:
    def __init__(self, stamps: list[int], page: int, seed: int = 0) -> None:
        self.rows: list[dict[str, Any]] = [
            {"id": str(1000 + i), "properties": {MODIFIED: str(ms)}} for i, ms in enumerate(stamps)
        ]
        self.page = page
        self.rng = random.Random(seed)
        self.calls = 0
        self.edits: dict[int, tuple[int, int]] = {}
        """call number -> (row index, new stamp): a CRM user's edit while the scan runs."""

    def __call__(self, filters: list[dict[str, str]], sort: str) -> list[dict[str, Any]]:
        self.calls += 1
        if self.calls in self.edits:
            index, stamp = self.edits[self.calls]
            self.rows[index]["properties"][MODIFIED] = str(stamp)
        matched = [r for r in self.rows if all(self._ok(r, f) for f in filters)]
        self.rng.shuffle(matched)
        matched.sort(key=lambda r: self._value(r, sort))
        return [dict(r) for r in matched[: self.page]]

    def _value(self, row: dict[str, Any], prop: str) -> int:
        return int(row["id"]) if prop == "hs_object_id" else int(row["properties"][prop])

    def _ok(self, row: dict[str, Any], spec: dict[str, str]) -> bool:
        left, right = self._value(row, spec["propertyName"]), int(spec["value"])
        ops = {"GTE": left >= right, "GT": left > right, "EQ": left == right}
        return ops[spec["operator"]]


def scanned(search: FakeSearch, since: int) -> list[str]:
    pages = scan_modified(search, MODIFIED, since, page=search.page)
    return [str(r["id"]) for page in pages for r in page]


STAMPS = st.lists(st.integers(min_value=0, max_value=30), max_size=300) | st.lists(
    st.integers(min_value=0, max_value=3), max_size=120
)
"""Spread timestamps, or a few milliseconds shared by many records (bulk edits)."""


@settings(max_examples=300, deadline=None)
@given(
    stamps=STAMPS,
    since=st.integers(min_value=0, max_value=32),
    page=st.integers(min_value=1, max_value=12),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_every_record_modified_since_the_start_is_returned_exactly_once(
    stamps: list[int], since: int, page: int, seed: int
) -> None:
    search = FakeSearch(stamps, page, seed)

    found = scanned(search, since)

    expected = [r["id"] for r in search.rows if int(r["properties"][MODIFIED]) >= since]
    assert sorted(found) == sorted(expected)


@settings(max_examples=200, deadline=None)
@given(
    stamps=st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=200),
    page=st.integers(min_value=1, max_value=10),
    edits=st.lists(st.tuples(st.integers(1, 60), st.integers(0, 199)), max_size=5),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_records_edited_during_the_scan_never_make_others_missed(
    stamps: list[int], page: int, edits: list[tuple[int, int]], seed: int
) -> None:
    search = FakeSearch(stamps, page, seed)
    untouched = {r["id"] for i, r in enumerate(search.rows) if i not in {e[1] for e in edits}}
    # Each edit moves a record to a later millisecond than any before, as a live edit does.
    search.edits = {call: (index % len(stamps), 100 + n) for n, (call, index) in enumerate(edits)}

    found = set(scanned(search, 0))

    assert untouched <= found


def test_a_burst_in_one_millisecond_is_sliced_by_id_in_page_sized_steps() -> None:
    search = FakeSearch([5] * 2_500 + [7] * 30 + [3] * 40, page=50, seed=1)

    found = scanned(search, 0)

    assert len(found) == len(set(found)) == 2_570
    # About one search per page: 40 + 2,500 + 30 records at 50 a page, plus the boundaries.
    assert search.calls <= 2_570 // 50 + 4


def test_dates_come_as_iso_instants_or_epoch_milliseconds() -> None:
    assert to_ms("2026-01-01T00:00:00.250Z") == 1_767_225_600_250
    assert to_ms("1767225600250") == 1_767_225_600_250
    assert to_ms("") is None
    assert to_ms("yesterday") is None
