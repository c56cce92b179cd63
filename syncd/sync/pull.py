"""The pull phase: what changed in Connect goes into the mirror.

The v37 spec documents no `events.updated.at` filter on tier accounts or their requests, so:

- the change feed is the TAR collection read by `events.created.at` from a watermark minus an
  overlap window (late-committed records), ordered `events.created.at,id`, de-duplicated by id;
  each TAR carries the account snapshot at its new version;
- every `pending` TAR is swept each cycle, and TARs we hold as pending that left the sweep are
  read back by id, so their real status is mirrored;
- new accounts come from `/tier/accounts` by `events.created.at`;
- the capability of every product seen is read, and re-read once it is older than the TTL;
- a reconcile scans every account and records version drift the feeds missed. It reads the
  accounts in the account feed's order and moves the feed's cursor, so in a reconciling cycle it
  is the account feed: the accounts are not paged twice.

A page's rows and its cursor commit in one transaction; the cursor only moves forward and only to
a value taken from rows already stored (it is the `events.created.at` of the page's last row).
With `concurrency` above one, up to that many pages are fetched at once once the first page gave
the total (`syncd.connect.fanout`), and still stored one by one in offset order, so the cursor
never passes a page not stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from syncd import crashpoints
from syncd.connect import rql
from syncd.connect.client import ConnectClient
from syncd.connect.errors import ConnectError, MalformedResponse
from syncd.domain.records import (
    InvalidRecord,
    TierAccount,
    TierAccountRequest,
    parse_account,
    parse_request,
)
from syncd.store import mirror
from syncd.store.runs import LedgerEntry, record
from syncd.sync import pull_store
from syncd.sync.pages import CheckedPage, checked_pages
from syncd.sync.pull_products import ProductReader

logger = logging.getLogger(__name__)
R = TypeVar("R", TierAccount, TierAccountRequest)

TARS = "/tier/account-requests"
ACCOUNTS = "/tier/accounts"
TAR_CURSOR = "pull.tar_feed"
ACCOUNT_CURSOR = "pull.account_feed"
BY_ID_CHUNK = 100


class Stopped(Exception):
    """The run was asked to stop; everything committed so far is consistent."""


@dataclass(frozen=True)
class PullOptions:
    page_size: int = 1000
    overlap: timedelta = timedelta(minutes=10)
    product_ttl: timedelta = timedelta(hours=1)
    concurrency: int = 4
    """Pages fetched at once after a listing's first page (1: one after the other)."""


@dataclass
class PullCounts:
    pages: int = 0
    requests_seen: int = 0
    requests_written: int = 0
    accounts_seen: int = 0
    accounts_written: int = 0
    requests_refreshed: int = 0
    products_read: int = 0
    malformed: int = 0
    drift: int = 0
    failed_feeds: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _format_moment(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


class PullPhase:
    """One pull over Connect; `run` does every part in order and returns the counts."""

    def __init__(
        self,
        engine: Engine,
        client: ConnectClient,
        options: PullOptions,
        run_id: int | None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.engine = engine
        self.client = client
        self.options = options
        self.run_id = run_id
        self.clock = clock
        self.should_stop = should_stop
        self.counts = PullCounts()

    def run(self, reconcile: bool = False) -> PullCounts:
        parts: list[tuple[str, Callable[[], None]]] = [
            ("tar_feed", self.tar_feed),
            ("pending_sweep", self.pending_sweep),
            # The reconcile scan covers what the account feed would read, and moves its cursor.
            ("reconcile", self.reconcile) if reconcile else ("account_feed", self.account_feed),
            ("products", self.products),
        ]
        for name, part in parts:
            try:
                part()
            except MalformedResponse as exc:
                self._feed_failed(name, exc, exc.body)
            except ConnectError as exc:
                if exc.kind == "fatal":
                    raise
                self._feed_failed(name, exc, exc.body)
        return self.counts

    # -- the parts -----------------------------------------------------------------------------

    def tar_feed(self) -> None:
        """New TARs (any status) since the watermark, with their account snapshots."""
        self._feed(
            TAR_CURSOR, self._request_pages, self._store_requests, ("events.created.at", "id")
        )

    def account_feed(self) -> None:
        """Accounts created since the watermark (they may have no TAR yet)."""
        # `id` is orderable on the TAR collection only (v37 spec): accounts order by time alone.
        self._feed(
            ACCOUNT_CURSOR, self._account_pages, self._store_accounts, ("events.created.at",)
        )

    def pending_sweep(self) -> None:
        """Every pending TAR; then read back by id the ones we hold as pending that left it."""
        seen: set[str] = set()
        query = rql.render_query(rql.eq("status", "pending"), rql.ordering("id"))
        for checked in self._request_pages(query):
            with self.engine.begin() as conn:
                self._store_requests(conn, checked)
                crashpoints.reach("pull.pending_sweep.before_commit")
            seen.update(r.id for r in checked.records)
        with self.engine.connect() as conn:
            gone = sorted(mirror.pending_request_ids(conn) - seen)
        for start in range(0, len(gone), BY_ID_CHUNK):
            chunk = gone[start : start + BY_ID_CHUNK]
            by_id = rql.render_query(rql.in_("id", chunk), rql.ordering("id"))
            for checked in self._request_pages(by_id):
                with self.engine.begin() as conn:
                    self._store_requests(conn, checked)
                self.counts.requests_refreshed += len(checked.records)

    def products(self) -> None:
        """Read the sync capability of products never read, or read longer ago than the TTL, a
        hundred a request (`syncd.sync.pull_products`). A product Connect no longer lists is
        marked read and keeps what the mirror knew of it: it is asked again after the TTL."""
        now = self.clock()
        with self.engine.connect() as conn:
            wanted = mirror.products_to_read(conn, now - self.options.product_ttl)
        reader = ProductReader(
            self.engine,
            self.client,
            self.counts,
            self.run_id,
            now,
            reject=self._reject,
            check_stop=self._check_stop,
        )
        reader.read(wanted)

    def reconcile(self) -> None:
        """Scan every account; store what the mirror lacks, and record as drift what the feeds
        missed: an account the mirror holds at an older version, or lacks though the account
        feed already read past its creation. The scan moves the account feed's cursor."""
        with self.engine.connect() as conn:
            watermark = mirror.get_cursor(conn, ACCOUNT_CURSOR)
        fed_up_to = None if watermark is None else datetime.fromisoformat(watermark)

        def store(conn: Connection, checked: CheckedPage[TierAccount]) -> None:
            pull_store.store_reconciled(conn, checked, self.counts, self.run_id, fed_up_to)

        self._feed(
            ACCOUNT_CURSOR,
            self._account_pages,
            store,
            ("events.created.at",),
            everything=True,
            name="reconcile",
        )

    # -- mechanics -----------------------------------------------------------------------------

    def _feed(
        self,
        cursor: str,
        pages: Callable[[str], Iterator[CheckedPage[R]]],
        store: Callable[[Connection, CheckedPage[R]], None],
        ordering: tuple[str, ...],
        *,
        everything: bool = False,
        name: str | None = None,
    ) -> None:
        """Page the feed from its watermark (from the start with `everything`), storing each page
        and moving the cursor in one transaction, page after page in order."""
        with self.engine.connect() as conn:
            watermark = mirror.get_cursor(conn, cursor)
        order = rql.ordering(*ordering)
        if watermark is None or everything:
            query = rql.render_query(order)
        else:
            since = datetime.fromisoformat(watermark) - self.options.overlap
            query = rql.render_query(rql.ge("events.created.at", since), order)
        name = name or cursor.removeprefix("pull.")
        for checked in pages(query):
            with self.engine.begin() as conn:
                store(conn, checked)
                newest = max((r.created_at for r in checked.records if r.created_at), default=None)
                crashpoints.reach(f"pull.{name}.before_commit")
                if newest is not None and (
                    watermark is None or newest > datetime.fromisoformat(watermark)
                ):
                    watermark = _format_moment(newest)
                    mirror.set_cursor(conn, cursor, watermark)
            crashpoints.reach(f"pull.{name}.page_committed")

    def _request_pages(self, query: str) -> Iterator[CheckedPage[TierAccountRequest]]:
        return self._pages(TARS, query, parse_request, "tier_account_request")

    def _account_pages(self, query: str) -> Iterator[CheckedPage[TierAccount]]:
        return self._pages(ACCOUNTS, query, parse_account, "tier_account")

    def _pages(
        self, path: str, query: str, parse: Callable[[Any, bool], R], object_type: str
    ) -> Iterator[CheckedPage[R]]:
        size = self.options.page_size
        concurrency = self.options.concurrency
        for checked in checked_pages(
            self.client, path, query, size, parse, object_type, concurrency
        ):
            self._check_stop()
            page = checked.page
            self.counts.pages += 1
            self.position = (path, page.next_offset, page.total)  # read by progress reporters
            self.counts.malformed += len(checked.refused)
            logger.debug(
                "page_fetched",
                extra={
                    "path": path,
                    "offset": page.offset,
                    "items": len(page.items),
                    "total": page.total,
                },
            )
            yield checked

    def _check_stop(self) -> None:
        if self.should_stop():
            raise Stopped

    def _store_requests(self, conn: Connection, checked: CheckedPage[TierAccountRequest]) -> None:
        pull_store.store_requests(conn, checked, self.counts, self.run_id)

    def _store_accounts(self, conn: Connection, checked: CheckedPage[TierAccount]) -> None:
        pull_store.store_accounts(conn, checked, self.counts, self.run_id)

    def _reject(
        self, object_type: str, object_id: str | None, phase: str, exc: Exception, payload: Any
    ) -> None:
        self.counts.malformed += 1
        kind = "invalid_record" if isinstance(exc, InvalidRecord) else "refused"
        with self.engine.begin() as conn:
            record(
                conn,
                self.run_id,
                [LedgerEntry(object_type, object_id, phase, "error", kind, str(exc), payload)],
            )

    def _feed_failed(self, name: str, exc: Exception, payload: Any) -> None:
        self.counts.failed_feeds.append(name)
        logger.error("feed_failed", extra={"feed": name, "error": str(exc)})
        with self.engine.begin() as conn:
            record(
                conn,
                self.run_id,
                [
                    LedgerEntry(
                        "page", None, f"pull.{name}", "error", type(exc).__name__, str(exc), payload
                    )
                ],
            )
