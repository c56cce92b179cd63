"""The pull's product part: the "Tier Accounts Sync" capability of many products a request.

`GET /products` takes RQL and documents the `in` lookup on `id` (spec v37), so the products to
read are listed `in(id,(...))`, `PRODUCT_CHUNK` at a time, not read with one `GET /products/{id}`
each: re-reading every product once per TTL costs an idle daemon one request per hundred products.
The spec gives `id` no `ordering` on this collection, so the listing is asked without one.

As before, each product is checked with `parse_product`: one that fails is rejected into the
ledger (the record as received kept) and the rest of its page stored; a page's products are
stored and committed together (crash point `pull.products.before_commit` before each commit);
the stop flag is checked between pages. A listing Connect refuses (a 4xx other than 401/403)
refuses each product of its chunk, as the one-by-one reads did, and the other chunks go on.

A product asked for but absent from the answer (deleted, or no longer visible to the key) is
marked read without changing what the mirror knows of it (`mirror.mark_products_read`): one read
before keeps its capability, so its accounts' flags do not move; one never read gets a row that
says nothing, which the flag rule reads exactly as an unread product (its TARs' status speaks).
Either way it is asked again after the TTL like every product, not every cycle, and the run logs
`product_missing` and records a `missing` ledger entry (not a failure). When the answer cannot
tell what is absent (no total, an item without an id, fewer distinct products than the total: an
order that moved between pages), nothing is marked and the products are asked again next cycle.

The flag phase reads the products it has just linked through assets with the same reader, under
its own ledger phase (`flags`) and crash point (`flags.products.before_commit`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine

from syncd import crashpoints
from syncd.connect import rql
from syncd.connect.client import ConnectClient, Page
from syncd.connect.errors import RecordError
from syncd.domain.records import InvalidRecord, Product, parse_product
from syncd.store import mirror
from syncd.store.runs import LedgerEntry, record

logger = logging.getLogger(__name__)

PRODUCTS = "/products"
PRODUCT_CHUNK = 100
"""Products asked per request, and the page size asked. A quoted, percent-encoded id takes about
24 characters, so a chunk keeps the URL near 2.5 kB, well under the 8 kB request lines that
common proxies accept; and 100 is the official client's default page size, so a chunk comes back
on one page unless a server clamps the limit below that."""

Reject = Callable[[str, str | None, str, Exception, Any], None]
"""`PullPhase._reject`: (object type, object id, phase, error, payload as received)."""


class Counts(Protocol):
    """The counters the product part moves (`syncd.sync.pull.PullCounts`)."""

    pages: int
    products_read: int


@dataclass
class Listing:
    """What the pages of one chunk's listing held, to tell which products it lacks."""

    ids: set[str] = field(default_factory=set)
    unidentified: int = 0
    """Items with no usable id: any of them may be a product asked for."""
    total: int | None = None
    """The total of the last page's `Content-Range` (None when the server gave none)."""

    def add(self, page: Page) -> None:
        for item in page.items:
            raw = item.get("id") if isinstance(item, dict) else None
            if isinstance(raw, str):
                self.ids.add(raw)
            else:
                self.unidentified += 1
        self.total = page.total

    def absent(self, asked: Sequence[str]) -> list[str]:
        """The products of `asked` surely not in the answer: none when it cannot tell."""
        if self.total is None or self.unidentified or len(self.ids) < self.total:
            return []
        return [product_id for product_id in asked if product_id not in self.ids]


def chunks(ids: Sequence[str], size: int = PRODUCT_CHUNK) -> list[list[str]]:
    """`ids` cut into lists of at most `size`, in order."""
    return [list(ids[start : start + size]) for start in range(0, len(ids), size)]


class ProductReader:
    """Reads the capability of products for one pull (`PullPhase.products`), or for the flag
    phase (`FlagPhase.read_products`, with its own ledger phase and crash point)."""

    def __init__(
        self,
        engine: Engine,
        client: ConnectClient,
        counts: Counts,
        run_id: int | None,
        read_at: datetime,
        *,
        reject: Reject,
        check_stop: Callable[[], None],
        phase: str = "products",
        crash_point: str = "pull.products.before_commit",
    ) -> None:
        self.engine = engine
        self.client = client
        self.counts = counts
        self.run_id = run_id
        self.read_at = read_at
        self.reject = reject
        self.check_stop = check_stop
        self.phase = phase
        """The ledger's `phase` of what the reader records (the flag phase reads products too)."""
        self.crash_point = crash_point

    def read(self, wanted: Sequence[str]) -> None:
        """List `wanted` by chunks, store what parses, reject the rest, mark the absent read."""
        for chunk in chunks(wanted):
            self.check_stop()
            listing = Listing()
            try:
                self._read_chunk(chunk, listing)
            except RecordError as exc:
                for product_id in chunk:
                    if product_id not in listing.ids:
                        self.reject("product", product_id, self.phase, exc, None)
                continue
            self._mark_absent(listing.absent(chunk))

    def _read_chunk(self, chunk: list[str], listing: Listing) -> None:
        query = rql.render_query(rql.in_("id", chunk))
        for page in self.client.iter_pages(PRODUCTS, query, limit=PRODUCT_CHUNK):
            self.check_stop()
            self.counts.pages += 1
            listing.add(page)
            found = self._parse(page)
            with self.engine.begin() as conn:
                mirror.store_products(conn, found, self.read_at)
                crashpoints.reach(self.crash_point)
            self.counts.products_read += len(found)

    def _parse(self, page: Page) -> list[Product]:
        found: dict[str, Product] = {}
        for item in page.items:
            try:
                product = parse_product(item)
            except InvalidRecord as exc:
                logger.warning(
                    "record_malformed", extra={"object_id": exc.record_id, "problems": exc.problems}
                )
                self.reject("product", exc.record_id, self.phase, exc, item)
                continue
            # One row per product: an upsert cannot touch a row twice in one statement.
            found[product.id] = product
        return list(found.values())

    def _mark_absent(self, missing: list[str]) -> None:
        if not missing:
            return
        logger.warning("product_missing", extra={"product_ids": missing})
        message = "not in the answer to GET /products: kept as known, asked again after the TTL"
        entries = [LedgerEntry("product", p, self.phase, "missing", None, message) for p in missing]
        with self.engine.begin() as conn:
            mirror.mark_products_read(conn, missing, self.read_at)
            record(conn, self.run_id, entries)
            crashpoints.reach(self.crash_point)
