"""Pages of Connect records, fetched and checked ahead of the writer.

Worker threads fetch the next pages and check their records while the caller writes the current
one: the writer waits on Postgres, which leaves Python free for the workers. With a concurrency
above one, once the first page told the total, that many pages are fetched at once
(`syncd.connect.fanout`): over a slow link the requests' latency overlaps instead of adding up.
Either way the caller gets the pages in offset order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from syncd.connect.client import ConnectClient, Page
from syncd.connect.fanout import fan_out_pages
from syncd.domain.records import InvalidRecord, TierAccount, TierAccountRequest
from syncd.store import mirror
from syncd.store.runs import LedgerEntry
from syncd.sync.prefetch import prefetch

logger = logging.getLogger(__name__)

R = TypeVar("R", TierAccount, TierAccountRequest)


@dataclass(frozen=True)
class CheckedPage(Generic[R]):
    page: Page
    records: list[R]
    """The records that passed the checks, in page order."""
    refused: list[LedgerEntry]
    """One ledger entry per record that did not, with what is wrong and the record as received."""

    @property
    def records_json(self) -> str:
        """The JSON array of the good records, for the store (the body as received if it can)."""
        return mirror.records_json(
            self.page.body,
            [r.record for r in self.records],
            complete=len(self.records) == len(self.page.items),
        )


def check_page(page: Page, parse: Callable[[Any, bool], R], object_type: str) -> CheckedPage[R]:
    records: list[R] = []
    refused: list[LedgerEntry] = []
    check_nul = page.has_nul  # one scan of the body, not one per record
    for item in page.items:
        try:
            records.append(parse(item, check_nul))
        except InvalidRecord as exc:
            logger.warning(
                "record_malformed", extra={"object_id": exc.record_id, "problems": exc.problems}
            )
            refused.append(
                LedgerEntry(
                    object_type,
                    exc.record_id,
                    "pull",
                    "malformed",
                    "invalid_record",
                    str(exc),
                    item,
                )
            )
    return CheckedPage(page, records, refused)


def checked_pages(
    client: ConnectClient,
    path: str,
    query: str,
    page_size: int,
    parse: Callable[[Any, bool], R],
    object_type: str,
    concurrency: int = 1,
) -> Iterator[CheckedPage[R]]:
    """The pages of `path` for `query`, each checked, in offset order: one page ahead of the
    consumer, or up to `concurrency` pages fetched at once after the first."""
    if concurrency <= 1:
        pages = client.iter_pages(path, query, limit=page_size)
        return prefetch(check_page(page, parse, object_type) for page in pages)

    def check(page: Page) -> CheckedPage[R]:
        return check_page(page, parse, object_type)

    fanned = fan_out_pages(
        client, path, query, limit=page_size, concurrency=concurrency, transform=check
    )
    return (checked for _, checked in fanned)
