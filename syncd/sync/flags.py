"""The flag phase: decide which accounts syncd may write (product.md §2.5, §3).

Runs after the pull, in three parts:

1. accounts to decide that have no TAR and no linked product are linked to products through
   their assets: one `GET /assets` listing per `batch` accounts, filtered on the three tier roles
   (`tiers.customer.id`, `tiers.tier1.id`, `tiers.tier2.id`, spec v37 filters on `/assets`). The
   accounts to decide are the new ones and those whose inputs changed
   (`syncd.store.flag_inputs`), so an account is looked up once, when it arrives (again only if
   its look-up failed), and an idle cycle sends no /assets request;
2. products linked that way and never read are read, a hundred a request (`GET /products` with
   `in(id,(...))`, the pull's `syncd.sync.pull_products.ProductReader`), so their capability
   counts in this very cycle (the pull re-reads them after the TTL, like the TARs' products). A
   malformed product is rejected into the ledger, a product absent from the answer is marked read
   and keeps what the mirror knew of it, exactly as in the pull;
3. the flags of those accounts, and of the accounts of a product whose capability changed, are
   decided in one SQL statement (`syncd.store.flags.recompute_changed`); every account's when
   the default changed. A cycle where nothing changed decides nothing and costs a few index
   look-ups at any number of accounts.

The push then writes only accounts with `tier_accounts.sync_enabled IS TRUE`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from syncd import crashpoints
from syncd.connect import rql
from syncd.connect.client import ConnectClient
from syncd.connect.errors import ConnectError, MalformedResponse
from syncd.domain.assets import AssetLink, asset_links
from syncd.domain.records import InvalidRecord
from syncd.store import asset_links as store
from syncd.store import flag_inputs
from syncd.store.flags import recompute_changed
from syncd.store.runs import LedgerEntry, record
from syncd.sync.pull import Stopped
from syncd.sync.pull_products import ProductReader

logger = logging.getLogger(__name__)

ASSETS = "/assets"
TIER_FILTERS = ("tiers.customer.id", "tiers.tier1.id", "tiers.tier2.id")
_CANDIDATE_PAGE = 1000


@dataclass
class FlagCounts:
    looked_up: int = 0
    """Accounts looked up through /assets."""
    asset_pages: int = 0
    linked: int = 0
    """New (account, product) links from assets."""
    product_pages: int = 0
    """Pages of `GET /products` listings (a hundred products a request)."""
    products_read: int = 0
    malformed: int = 0
    enabled: int = 0
    """Accounts decided on in this run (of those decided: see `full`)."""
    disabled: int = 0
    changed: int = 0
    """Accounts whose flag or its source changed."""
    full: bool = False
    """Whether every account was decided (first run, or a new default), not only the changed."""
    failed_parts: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def assets_query(account_ids: list[str]) -> str:
    """`or(in(tiers.customer.id,(…)),in(tiers.tier1.id,(…)),in(tiers.tier2.id,(…)))`: the assets
    where any of `account_ids` is the customer or a reseller."""
    return rql.render_query(rql.or_(*(rql.in_(name, account_ids) for name in TIER_FILTERS)))


class FlagPhase:
    """Links accounts to products, reads those products, decides every account's flag."""

    def __init__(
        self,
        engine: Engine,
        client: ConnectClient,
        *,
        default: bool,
        run_id: int | None,
        batch: int = 100,
        should_stop: Callable[[], bool] = lambda: False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.engine = engine
        self.client = client
        self.default = default
        self.run_id = run_id
        self.batch = batch
        self.should_stop = should_stop
        self.clock = clock
        self.counts = FlagCounts()
        self._linked_products: set[str] = set()
        self._not_looked_up: list[str] = []
        """Accounts whose look-up failed: marked again when the flags are decided."""

    def run(self) -> FlagCounts:
        """All three parts; a part that fails on Connect is recorded in the ledger and in
        `failed_parts`, and the flags are still decided from what is known. A fatal error (401,
        403) propagates; so does `Stopped`, between batches."""
        for name, part in (
            ("link_assets", self.link_assets),
            ("read_products", self.read_products),
        ):
            try:
                part()
            except MalformedResponse as exc:
                self._part_failed(name, exc, exc.body)
            except ConnectError as exc:
                if exc.kind == "fatal":
                    raise
                self._part_failed(name, exc, None)
        self.decide()
        return self.counts

    # -- the parts -----------------------------------------------------------------------------

    def link_assets(self) -> None:
        """Look up, through their assets, the accounts to decide that have no TAR and no link."""
        batches = self._unlinked_batches()
        for ids in batches:
            self._check_stop()
            try:
                self._link_batch(ids)
            except ConnectError:
                # Looked up next run: they are marked again once the flags are decided.
                self._not_looked_up = [*ids, *(i for rest in batches for i in rest)]
                raise

    def read_products(self) -> None:
        """Read the capability of the products linked in this run that were never read, a
        hundred a request, as the pull does (`syncd.sync.pull_products`)."""
        with self.engine.connect() as conn:
            wanted = store.unread_products(conn, self._linked_products)
        tally = _ProductTally()
        reader = ProductReader(
            self.engine,
            self.client,
            tally,
            self.run_id,
            self.clock(),
            reject=self._reject,
            check_stop=self._check_stop,
            phase="flags",
            crash_point="flags.products.before_commit",
        )
        try:
            reader.read(wanted)
        finally:
            # What was committed before a stop or a failed listing counts too.
            self.counts.product_pages += tally.pages
            self.counts.products_read += tally.products_read

    def decide(self) -> None:
        """Decide, in one statement, the flags of the accounts whose inputs changed."""
        with self.engine.begin() as conn:
            result = recompute_changed(conn, self.default)
            flag_inputs.mark(conn, self._not_looked_up)
            crashpoints.reach("flags.decided.before_commit")
        self.counts.enabled = result.enabled
        self.counts.disabled = result.disabled
        self.counts.changed = result.changed
        self.counts.full = result.full
        logger.info(
            "flags_decided",
            extra={"run_id": self.run_id, **self.counts.as_dict()},
        )

    # -- mechanics -----------------------------------------------------------------------------

    def _unlinked_batches(self) -> Iterator[list[str]]:
        """Accounts to look up, `batch` at a time, in id order (keyset paging)."""
        after = ""
        waiting: list[str] = []
        while True:
            with self.engine.connect() as conn:
                ids, last = flag_inputs.lookup_candidates(conn, after, _CANDIDATE_PAGE)
            if last is None:
                break
            after = last
            waiting.extend(ids)
            while len(waiting) >= self.batch:
                yield waiting[: self.batch]
                waiting = waiting[self.batch :]
        if waiting:
            yield waiting

    def _link_batch(self, ids: list[str]) -> None:
        """Link `ids` to the products of their assets."""
        ours = set(ids)
        found: dict[tuple[str, str], AssetLink] = {}
        refused: list[LedgerEntry] = []
        for page in self.client.iter_pages(ASSETS, assets_query(ids)):
            self.counts.asset_pages += 1
            for item in page.items:
                try:
                    links = asset_links(item, ours)
                except InvalidRecord as exc:
                    refused.append(_malformed("asset", exc, item))
                    continue
                for link in links:
                    found.setdefault((link.account_id, link.product_id), link)
        with self.engine.begin() as conn:
            self.counts.linked += store.store_links(conn, list(found.values()))
            record(conn, self.run_id, refused)
            crashpoints.reach("flags.assets_linked.before_commit")
        self.counts.looked_up += len(ids)
        self.counts.malformed += len(refused)
        self._linked_products.update(product_id for _, product_id in found)
        logger.debug("assets_linked", extra={"accounts": len(ids), "links": len(found)})

    def _check_stop(self) -> None:
        if self.should_stop():
            raise Stopped

    def _reject(
        self, object_type: str, object_id: str | None, phase: str, exc: Exception, body: Any
    ) -> None:
        """`ProductReader`'s reject: one ledger entry for a product refused or malformed."""
        self.counts.malformed += 1
        kind = "invalid_record" if isinstance(exc, InvalidRecord) else "refused"
        entry = LedgerEntry(object_type, object_id, phase, "error", kind, str(exc), body)
        with self.engine.begin() as conn:
            record(conn, self.run_id, [entry])

    def _part_failed(self, name: str, exc: Exception, payload: Any) -> None:
        self.counts.failed_parts.append(name)
        logger.error("flags_part_failed", extra={"part": name, "error": str(exc)})
        entry = LedgerEntry(
            "page", None, f"flags.{name}", "error", type(exc).__name__, str(exc), payload
        )
        with self.engine.begin() as conn:
            record(conn, self.run_id, [entry])


@dataclass
class _ProductTally:
    """The counters `ProductReader` moves (its `Counts`), added to `FlagCounts` afterwards."""

    pages: int = 0
    products_read: int = 0


def _malformed(object_type: str, exc: InvalidRecord, item: Any) -> LedgerEntry:
    return LedgerEntry(
        object_type, exc.record_id, "flags", "malformed", "invalid_record", str(exc), item
    )
