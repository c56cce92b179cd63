"""Offset paging by `Content-Range`, robust to a server that returns fewer items than asked.

Connect answers a list with `Content-Range: items <first>-<last>/<total>` (DJRQL
`RQLContentRangeLimitOffsetPagination`; an empty page reads `items <offset>-<offset>/<total>`).
django-rql silently clamps a `limit` above the view's maximum (DJRQL `get_limit`), and the official
client advances by the limit it asked for (OAC `models/iterators.py`), which skips items when the
server clamps. Here the next offset is always the offset plus the items actually received.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_CONTENT_RANGE = re.compile(r"\s*items\s+(\d+)\s*-\s*(\d+)\s*/\s*(\d+|\*)\s*", re.IGNORECASE)


class PageProblem(ValueError):
    """The page or its `Content-Range` is not consistent; the message says how."""


@dataclass(frozen=True)
class ContentRange:
    first: int
    last: int
    total: int | None
    """None when the server sent `*` (total unknown)."""


@dataclass(frozen=True)
class Page:
    """One page of a collection: its items, where it started, where the next one starts, and the
    collection's size when the server said it."""

    items: list[Any]
    offset: int
    next_offset: int
    total: int | None
    body: bytes = field(default=b"", repr=False, compare=False)
    """The response body as received (empty when unknown): the JSON text of `items`."""

    @property
    def has_nul(self) -> bool:
        """Whether a record may hold a NUL character, which Postgres cannot store. Valid JSON holds
        one only escaped (`\\u0000`): one scan of the body spares a walk over every record."""
        return not self.body or b"\\u0000" in self.body


def parse_content_range(value: str | None) -> ContentRange | None:
    """The header's numbers; None when absent. Raise PageProblem when present but unreadable."""
    if value is None:
        return None
    match = _CONTENT_RANGE.fullmatch(value)
    if not match:
        raise PageProblem(f"unreadable Content-Range: {value[:100]!r}")
    first, last, total = match.groups()
    return ContentRange(int(first), int(last), None if total == "*" else int(total))


def make_page(offset: int, items: Any, content_range: ContentRange | None) -> Page:
    """Check `items` against the `Content-Range` and build the page; raise PageProblem if they
    contradict each other."""
    if not isinstance(items, list):
        raise PageProblem(f"expected a JSON list of items, got {type(items).__name__}")
    total = content_range.total if content_range else None
    if content_range is not None and items:
        expected = f"items {offset}-{offset + len(items) - 1}"
        if content_range.first != offset:
            raise PageProblem(f"Content-Range starts at {content_range.first}, asked {offset}")
        if content_range.last - content_range.first + 1 != len(items):
            raise PageProblem(f"Content-Range says {_span(content_range)}, body has {expected}")
        if total is not None and content_range.last >= total:
            raise PageProblem(f"Content-Range {_span(content_range)} ends past total {total}")
    return Page(items, offset, offset + len(items), total)


def is_last_page(page: Page, limit: int) -> bool:
    """True when no further page should be asked for.

    An empty page always ends the listing. With a total, stop once it is reached. Without one
    (no `Content-Range`, or `*`), a page shorter than `limit` is taken as the last: the only sign
    left, though it cannot tell the end from a clamped limit. Connect always sends the header.
    """
    if not page.items:
        return True
    if page.total is not None:
        return page.next_offset >= page.total
    return len(page.items) < limit


def _span(content_range: ContentRange) -> str:
    total = "*" if content_range.total is None else content_range.total
    return f"items {content_range.first}-{content_range.last}/{total}"
