"""Every record modified since a moment, through HubSpot search, whatever its 10,000-result cap.

HubSpot search refuses to page past 10,000 results (400) and bulk edits stamp thousands of records
with one millisecond (crm-apis.md §4.1; supaglue #585, airbyte #43317). So the scan never pages with
`after`: every query asks for the first page of a sliding window instead.

1. `modified >= t`, sorted by the modified date, one page. The next window starts at the page's
   last timestamp, again with `>=`, and skips the ids already returned at that timestamp. Records
   that tie on the sort come in no promised order, so re-reading the boundary millisecond is what
   makes sure none of them is skipped.
2. When a whole page shares one millisecond, that millisecond is drained on its own: `modified ==
   t and hs_object_id > last id`, sorted by id, page after page. Then the scan goes on with `> t`.

Offsets are never used, so a record edited during the scan cannot shift the pages and make another
one skipped; it shows up again later in the scan with its new date. Cost: about one search per
page of new records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

PAGE = 200
"""HubSpot's largest search page."""

Filters = list[dict[str, str]]
Search = Callable[[Filters, str], list[dict[str, Any]]]
"""Runs one search (filters ANDed, sorted ascending by the named property) and returns the first
page of results."""


def to_ms(value: str | None) -> int | None:
    """A HubSpot date value (ISO 8601 or epoch milliseconds) as epoch milliseconds."""
    if not value:
        return None
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _filter(prop: str, op: str, value: int) -> dict[str, str]:
    return {"propertyName": prop, "operator": op, "value": str(value)}


def scan_modified(
    search: Search, modified: str, since_ms: int, extra: Filters | None = None, page: int = PAGE
) -> Iterator[list[dict[str, Any]]]:
    """Pages of records (as HubSpot returns them) whose `modified` property is >= `since_ms`,
    in ascending modified order; none is missed, a record is repeated only if it changed again
    while the scan ran. `page` is the size of the pages `search` returns."""
    extra = list(extra or [])
    lower, op = since_ms, "GTE"
    seen_at_lower: set[str] = set()
    while True:
        rows = search([*extra, _filter(modified, op, lower)], modified)
        fresh = [r for r in rows if str(r["id"]) not in seen_at_lower]
        if fresh:
            yield fresh
        if len(rows) < page:
            return
        stamps = [to_ms((r.get("properties") or {}).get(modified)) for r in rows]
        last = stamps[-1]
        if last is None:
            raise ValueError(f"search result without {modified}: cannot advance the scan")
        if stamps[0] == last:
            # A whole page in one millisecond: a bulk edit. Slice it by record id.
            seen = seen_at_lower | {str(r["id"]) for r in rows}
            yield from _drain(search, modified, last, extra, seen, page)
            lower, op, seen_at_lower = last, "GT", set()
            continue
        seen_at_lower = {str(r["id"]) for r, ms in zip(rows, stamps, strict=True) if ms == last}
        lower, op = last, "GTE"


def _drain(
    search: Search, modified: str, stamp: int, extra: Filters, seen: set[str], page: int
) -> Iterator[list[dict[str, Any]]]:
    after_id = 0
    while True:
        filters = [*extra, _filter(modified, "EQ", stamp), _filter("hs_object_id", "GT", after_id)]
        rows = search(filters, "hs_object_id")
        fresh = [r for r in rows if str(r["id"]) not in seen]
        if fresh:
            yield fresh
        if len(rows) < page:
            return
        after_id = int(rows[-1]["id"])
