"""Offset pages fetched by a small pool of threads once the first page told the total, handed
over strictly in offset order.

The first page is fetched alone: its `Content-Range` gives the collection's size, and the number
of items it holds is the page size the server really serves (django-rql clamps a `limit` above
its maximum without a word, DJRQL `get_limit`). The next offsets are then known in advance and
`concurrency` threads fetch them, each asking exactly that page size, so no page overlaps the
next. The consumer gets the pages in offset order, never one before those ahead of it, so a
caller that stores each page with its cursor in one transaction never moves the cursor past a
page it has not stored. At most `concurrency` pages wait, fetched, for the consumer.

The plan is re-made whenever a page does not end where the next planned one starts (the server
answered with fewer items than planned: the clamp changed, or rows left the collection): the pages
fetched beyond it are dropped and fetching resumes from where that page really ended. A page that
reports a larger total extends the plan. An empty page, or a page reaching the total, ends the
listing, as in `ConnectClient.iter_pages`.
"""

from __future__ import annotations

import contextvars
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, Protocol, TypeVar

from syncd.connect.paging import Page, is_last_page

T = TypeVar("T")


class PageSource(Protocol):
    """What fan-out needs of a client (`ConnectClient` is one)."""

    def page_at(self, path: str, query: str, offset: int, limit: int) -> Page: ...


def fan_out_pages(
    client: PageSource,
    path: str,
    query: str,
    *,
    limit: int,
    concurrency: int,
    transform: Callable[[Page], T],
    start_offset: int = 0,
) -> Generator[tuple[Page, T], None, None]:
    """Each page of `path` for `query` with `transform(page)` (run in the fetching thread, e.g.
    to check the records while the consumer writes), in offset order (module doc).

    With `concurrency` 1, or when the first page gives no total, pages are fetched one after the
    other. An error fetching a page is raised when the consumer reaches that page; a consumer
    that stops early leaves the fetches in flight to end on their own (their pages are dropped).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    first = client.page_at(path, query, start_offset, limit)
    yield first, transform(first)
    if is_last_page(first, limit):
        return
    if concurrency == 1 or first.total is None:
        page = first
        while not is_last_page(page, limit):
            page = client.page_at(path, query, page.next_offset, limit)
            yield page, transform(page)
        return
    yield from _Plan(client, path, query, transform, concurrency, first).run()


class _Plan(Generic[T]):
    """The pages after the first, fetched ahead by a pool (see `fan_out_pages`)."""

    def __init__(
        self,
        client: PageSource,
        path: str,
        query: str,
        transform: Callable[[Page], T],
        concurrency: int,
        first: Page,
    ) -> None:
        self.client = client
        self.path = path
        self.query = query
        self.transform = transform
        self.concurrency = concurrency
        self.size = len(first.items)
        """Items per page as the server serves them (fewer than asked when it clamps)."""
        self.total = first.total or 0
        self.next_offset = first.next_offset
        """The offset of the next page to ask for."""
        self.window: deque[tuple[int, Future[tuple[Page, T]]]] = deque()

    def _fetch(self, offset: int) -> tuple[Page, T]:
        page = self.client.page_at(self.path, self.query, offset, self.size)
        return page, self.transform(page)

    def _fill(self, pool: ThreadPoolExecutor) -> None:
        while len(self.window) < self.concurrency and self.next_offset < self.total:
            offset = self.next_offset
            # In a copy of the caller's context: the fetch's log lines carry the bound run id.
            context = contextvars.copy_context()
            self.window.append((offset, pool.submit(context.run, self._fetch, offset)))
            self.next_offset += self.size

    def _replan(self, from_offset: int) -> None:
        """Drop the pages planned beyond `from_offset`; fetching resumes there."""
        for _, future in self.window:
            future.cancel()
        self.window.clear()
        self.next_offset = from_offset

    def run(self) -> Iterator[tuple[Page, T]]:
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="pages")
        try:
            self._fill(pool)
            while self.window:
                _, future = self.window.popleft()
                page, result = future.result()
                yield page, result
                if is_last_page(page, self.size):
                    return
                if page.total is not None and page.total > self.total:
                    self.total = page.total  # the collection grew while it was paged
                expected = self.window[0][0] if self.window else self.next_offset
                if page.next_offset != expected:
                    # A short page in the middle: what it did not hold is fetched, not skipped.
                    self.size = min(self.size, len(page.items))
                    self._replan(page.next_offset)
                self._fill(pool)
        finally:
            # Fetches in flight end on their own; their pages are not waited for.
            pool.shutdown(wait=False, cancel_futures=True)
