"""Concurrent offset paging (`syncd.connect.fanout`) against an in-memory collection."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.connect.errors import RetriableError
from syncd.connect.fanout import fan_out_pages
from syncd.connect.paging import ContentRange, Page, make_page


class Collection:
    """A collection served like django-rql: `limit` clamped to `max_limit`, `Content-Range`
    totals; `short_at` offsets answer with fewer items than they could (rows that vanished and
    came back), `grow_by` items appear once the first page was served."""

    def __init__(
        self,
        size: int,
        max_limit: int = 1000,
        short_at: frozenset[int] = frozenset(),
        grow_by: int = 0,
        fail_at: int | None = None,
        delay: float = 0.0,
    ) -> None:
        self.items = list(range(size))
        self.max_limit = max_limit
        self.short_at = set(short_at)
        self.grow_by = grow_by
        self.fail_at = fail_at
        self.delay = delay
        self.asked: list[tuple[int, int]] = []
        self.in_flight = 0
        self.peak = 0
        self._lock = threading.Lock()

    def page_at(self, path: str, query: str, offset: int, limit: int) -> Page:
        with self._lock:
            self.asked.append((offset, limit))
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        time.sleep(self.delay)  # lets requests overlap, as over a network
        try:
            with self._lock:
                if offset == self.fail_at:
                    raise RetriableError(f"offset {offset} failed")
                size = min(limit, self.max_limit)
                if offset in self.short_at:
                    self.short_at.discard(offset)
                    size = max(1, size // 2)
                items = self.items[offset : offset + size]
                total = len(self.items)
                if self.grow_by and offset == 0:
                    self.items += range(total, total + self.grow_by)
                    self.grow_by = 0
            last = offset + len(items) - 1 if items else offset
            return make_page(offset, items, ContentRange(offset, last, total))
        finally:
            with self._lock:
                self.in_flight -= 1


def collect(collection: Collection, limit: int, concurrency: int) -> list[int]:
    pages = fan_out_pages(
        collection, "/c", "", limit=limit, concurrency=concurrency, transform=lambda p: p.items
    )
    return [item for _, items in pages for item in items]


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(0, 60),
    limit=st.integers(1, 12),
    max_limit=st.integers(1, 12),
    concurrency=st.integers(1, 5),
    short_at=st.frozensets(st.integers(0, 60), max_size=4),
    grow_by=st.integers(0, 7),
)
def test_every_item_arrives_once_in_order_whatever_the_clamp_short_pages_and_growth(
    size: int,
    limit: int,
    max_limit: int,
    concurrency: int,
    short_at: frozenset[int],
    grow_by: int,
) -> None:
    collection = Collection(size, max_limit, short_at, grow_by if size else 0)

    items = collect(collection, limit, concurrency)

    # No gap, no repeat: what existed when paging began, and maybe some of what came later.
    assert items == collection.items[: len(items)]
    assert len(items) >= size


def test_after_the_first_page_the_pages_are_fetched_at_once_asking_the_served_size() -> None:
    collection = Collection(100, max_limit=10, delay=0.01)

    assert collect(collection, 1000, 4) == list(range(100))

    assert collection.asked[0] == (0, 1000)
    assert sorted(collection.asked[1:]) == [(offset, 10) for offset in range(10, 100, 10)]
    assert collection.peak > 1


def test_no_more_than_concurrency_pages_wait_ahead_of_a_slow_consumer() -> None:
    collection = Collection(200, max_limit=10)
    pages = fan_out_pages(
        collection, "/c", "", limit=10, concurrency=3, transform=lambda p: len(p.items)
    )
    next(pages)
    next(pages)  # the consumer holds page 2; at most 3 more were asked for
    assert len(collection.asked) <= 2 + 3
    pages.close()


def test_an_error_is_raised_when_the_consumer_reaches_that_page_after_the_pages_before() -> None:
    collection = Collection(100, max_limit=10, fail_at=50)
    seen: list[int] = []

    def consume() -> None:
        for page, _ in fan_out_pages(
            collection, "/c", "", limit=10, concurrency=4, transform=lambda p: None
        ):
            seen.append(page.offset)

    with pytest.raises(RetriableError, match="offset 50"):
        consume()
    assert seen == [0, 10, 20, 30, 40]


def test_without_a_total_the_pages_are_fetched_one_after_the_other() -> None:
    class NoTotal(Collection):
        def page_at(self, path: str, query: str, offset: int, limit: int) -> Page:
            page = super().page_at(path, query, offset, limit)
            return Page(page.items, page.offset, page.next_offset, None)

    collection = NoTotal(35, max_limit=10)
    assert collect(collection, 10, 4) == list(range(35))
    assert collection.peak == 1


def test_concurrency_below_one_is_refused() -> None:
    identity: Callable[[Page], Page] = lambda page: page  # noqa: E731
    with pytest.raises(ValueError, match="concurrency"):
        next(fan_out_pages(Collection(1), "/c", "", limit=1, concurrency=0, transform=identity))
