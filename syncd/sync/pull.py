"""The pull phase: what changed in Connect goes into the mirror.

The v37 spec documents no `events.updated.at` filter on tier accounts or their requests, so:

- the change feed is the TAR collection read by `events.created.at` from a watermark minus an
  overlap window (late-committed records), ordered `events.created.at,id`, de-duplicated by id;
  each TAR carries the account snapshot at its new version;
- every `pending` TAR is swept each cycle, and TARs we hold as pending that left the sweep are
  read back by id, so their real status is mirrored;
- new accounts come from `/tier/accounts` by `events.created.at`;
- the capability of every product seen is read, and re-read once it is older than the TTL;
- a reconcile scans every account and records version drift the feeds missed.

A page's rows and its cursor commit in one transaction; the cursor only moves forward and only to
a value taken from rows already stored (it is the `events.created.at` of the page's last row).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from syncd import crashpoints
from syncd.connect import rql
from syncd.connect.client import ConnectClient, Page
from syncd.connect.errors import ConnectError, MalformedResponse, RecordError
from syncd.domain.records import (
    InvalidRecord,
    TierAccount,
    TierAccountRequest,
    parse_account,
    parse_product,
    parse_request,
)
from syncd.store import mirror
from syncd.store.runs import LedgerEntry, record
from syncd.sync.prefetch import prefetch

logger = logging.getLogger(__name__)
R = TypeVar("R")

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
            ("account_feed", self.account_feed),
            ("products", self.products),
        ]
        if reconcile:
            parts.append(("reconcile", self.reconcile))
        for name, part in parts:
            try:
                part()
            except MalformedResponse as exc:
                self._feed_failed(name, exc, exc.body)
            except ConnectError as exc:
                if exc.kind == "fatal":
                    raise
                self._feed_failed(name, exc, None)
        return self.counts

    # -- the parts -----------------------------------------------------------------------------

    def tar_feed(self) -> None:
        """New TARs (any status) since the watermark, with their account snapshots."""
        self._feed(TAR_CURSOR, TARS, self._store_requests)

    def account_feed(self) -> None:
        """Accounts created since the watermark (they may have no TAR yet)."""
        self._feed(ACCOUNT_CURSOR, ACCOUNTS, self._store_accounts)

    def pending_sweep(self) -> None:
        """Every pending TAR; then read back by id the ones we hold as pending that left it."""
        seen: set[str] = set()
        query = rql.render_query(rql.eq("status", "pending"), rql.ordering("id"))
        for page in self._pages(TARS, query):
            with self.engine.begin() as conn:
                stored = self._store_requests(conn, page.items)
            seen.update(r.id for r in stored)
        with self.engine.connect() as conn:
            gone = sorted(mirror.pending_request_ids(conn) - seen)
        for start in range(0, len(gone), BY_ID_CHUNK):
            chunk = gone[start : start + BY_ID_CHUNK]
            by_id = rql.render_query(rql.in_("id", chunk), rql.ordering("id"))
            for page in self._pages(TARS, by_id):
                with self.engine.begin() as conn:
                    self.counts.requests_refreshed += len(self._store_requests(conn, page.items))

    def products(self) -> None:
        """Read the sync capability of products never read, or read longer ago than the TTL."""
        now = self.clock()
        with self.engine.connect() as conn:
            wanted = mirror.products_to_read(conn, now - self.options.product_ttl)
        for product_id in wanted:
            self._check_stop()
            try:
                body = self.client.get(f"/products/{product_id}")
                found = parse_product(body)
            except RecordError as exc:
                self._reject("product", product_id, "products", exc, None)
                continue
            except InvalidRecord as exc:
                self._reject("product", product_id, "products", exc, body)
                continue
            with self.engine.begin() as conn:
                mirror.store_products(conn, [found], now)
            self.counts.products_read += 1

    def reconcile(self) -> None:
        """Scan every account; store what the mirror lacks and record it as drift."""
        query = rql.render_query(rql.ordering("events.created.at"))
        for page in self._pages(ACCOUNTS, query):
            accounts, entries = self._parse(page.items, parse_account, "tier_account")
            with self.engine.begin() as conn:
                mirrored = mirror.stored_versions(conn, [a.id for a in accounts])
                for account in accounts:
                    have = mirrored.get(account.id)
                    if have is None or have < account.version:
                        self.counts.drift += 1
                        entries.append(
                            LedgerEntry(
                                "tier_account",
                                account.id,
                                "reconcile",
                                "drift",
                                message=f"mirror had version {have}, Connect has {account.version}",
                            )
                        )
                self.counts.accounts_seen += len(accounts)
                self.counts.accounts_written += mirror.store_accounts(conn, accounts, "reconcile")
                record(conn, self.run_id, entries)

    # -- mechanics -----------------------------------------------------------------------------

    def _feed(
        self,
        cursor: str,
        path: str,
        store: Callable[[Connection, Sequence[Any]], Sequence[TierAccount | TierAccountRequest]],
    ) -> None:
        with self.engine.connect() as conn:
            watermark = mirror.get_cursor(conn, cursor)
        since = None
        if watermark is not None:
            since = datetime.fromisoformat(watermark) - self.options.overlap
        # `id` is orderable on the TAR collection only (v37 spec): accounts order by time alone.
        order = rql.ordering(
            *(("events.created.at", "id") if path == TARS else ("events.created.at",))
        )
        if since is None:
            query = rql.render_query(order)
        else:
            query = rql.render_query(rql.ge("events.created.at", since), order)
        name = cursor.removeprefix("pull.")
        for page in self._pages(path, query):
            with self.engine.begin() as conn:
                stored = store(conn, page.items)
                newest = max((r.created_at for r in stored if r.created_at), default=None)
                crashpoints.reach(f"pull.{name}.before_commit")
                if newest is not None and (
                    watermark is None or newest > datetime.fromisoformat(watermark)
                ):
                    watermark = _format_moment(newest)
                    mirror.set_cursor(conn, cursor, watermark)
            crashpoints.reach(f"pull.{name}.page_committed")

    def _pages(self, path: str, query: str) -> Iterator[Page]:
        pages = self.client.iter_pages(path, query, limit=self.options.page_size)
        for page in prefetch(pages):
            self._check_stop()
            self.counts.pages += 1
            logger.debug(
                "page_fetched",
                extra={
                    "path": path,
                    "offset": page.offset,
                    "items": len(page.items),
                    "total": page.total,
                },
            )
            yield page

    def _check_stop(self) -> None:
        if self.should_stop():
            raise Stopped

    def _store_requests(self, conn: Connection, items: Sequence[Any]) -> list[TierAccountRequest]:
        requests, entries = self._parse(items, parse_request, "tier_account_request")
        self.counts.requests_seen += len(requests)
        mirror.store_accounts(conn, [r.account for r in requests], "request")
        self.counts.requests_written += mirror.store_requests(conn, requests)
        record(conn, self.run_id, entries)
        return requests

    def _store_accounts(self, conn: Connection, items: Sequence[Any]) -> list[TierAccount]:
        accounts, entries = self._parse(items, parse_account, "tier_account")
        self.counts.accounts_seen += len(accounts)
        self.counts.accounts_written += mirror.store_accounts(conn, accounts, "account")
        record(conn, self.run_id, entries)
        return accounts

    def _parse(
        self, items: Sequence[Any], parse: Callable[[Any], R], object_type: str
    ) -> tuple[list[R], list[LedgerEntry]]:
        parsed: list[R] = []
        entries: list[LedgerEntry] = []
        for item in items:
            try:
                parsed.append(parse(item))
            except InvalidRecord as exc:
                self.counts.malformed += 1
                logger.warning(
                    "record_malformed", extra={"object_id": exc.record_id, "problems": exc.problems}
                )
                entries.append(
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
        return parsed, entries

    def _reject(
        self, object_type: str, object_id: str, phase: str, exc: Exception, payload: Any
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
