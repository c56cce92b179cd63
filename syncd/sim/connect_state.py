"""The Connect simulator's records and the ways they change, with the hooks tests drive.

Every hook takes `self.lock` (the server's handlers run under it too), bumps `mutations` when it
changes something, and returns JSON shaped like the API's, so tests compare like with like.
"""

from __future__ import annotations

import gc
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from syncd.sim.connect_fake import Faker
from syncd.sim.connect_model import (
    CUSTOMER,
    TIER1,
    Account,
    AccountData,
    Asset,
    Json,
    Party,
    Product,
    Tar,
    make_id,
    scramble,
    to_utc,
)
from syncd.sim.connect_render import account_json, asset_json, product_json, tar_json
from syncd.sim.connect_seed import SeedSummary, seed_state
from syncd.sim.connect_validate import account_changes

_ID_FORMATS = {"TA": (4, 4, 4), "PRD": (3, 3, 3), "AS": (4, 4, 4)}


class ConnectState:
    """Accounts (with every version), TARs, products and assets, in memory."""

    lock: threading.RLock

    def __init__(self, seed: int = 0) -> None:
        self.accounts: dict[str, Account] = {}
        self.tars: dict[str, Tar] = {}
        self.products: dict[str, Product] = {}
        self.assets: dict[str, Asset] = {}
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        """Time of every write; set it to control `events.*.at` (seconds are kept, no more)."""
        self.mutations = 0
        """Counts state changes (API writes and hooks alike)."""
        self.vendor = Party("VA-804-332", "Fabrikam Cloud Software")
        self.provider = Party("PA-563-910", "Contoso Distribution EU")
        self.hub = Party("HB-3471-2950", "Contoso EU Production Hub")
        self.hub_user = Party("SU-210-448-913", "Contoso Hub Sync")
        """Who makes provider-side changes (hooks, seeding)."""
        self.api_user = Party("SU-118-392-774", "syncd integration")
        """Who the API key belongs to: the author of writes made through the API."""
        self._faker = Faker(random.Random(seed))
        self._salt = random.Random(seed).randrange(10**12)
        self._counters: dict[str, int] = {}
        self._id_sorted: dict[str, tuple[int, list[Any]]] = {}

    # -- primitives (used by the API handlers and the seeder) -----------------------------------

    def now(self) -> datetime:
        # Connect shows seconds; storing more would make `gt(events.created.at,<shown>)` lie.
        return to_utc(self.clock())

    def touch(self) -> None:
        self.mutations += 1

    def new_id(self, kind: str, taken: dict[str, Any]) -> str:
        groups = _ID_FORMATS[kind]
        width = sum(groups)
        while True:
            n = self._counters.get(kind, 0)
            self._counters[kind] = n + 1
            candidate = make_id(kind, scramble(n, width, self._salt), groups)
            if candidate not in taken:
                return candidate

    def create_product(self, id: str | None, name: str, updates: bool, at: datetime) -> Product:
        product = Product(id or self.new_id("PRD", self.products), name, self.vendor, updates, at)
        self.products[product.id] = product
        self.touch()
        return product

    def create_account(
        self, data: AccountData, db: str, scopes: tuple[str, ...], id: str | None = None
    ) -> Account:
        account_id = id or self.new_id("TA", self.accounts)
        account = Account(account_id, db, self.provider, self.hub, data.updated_by, data, scopes)
        self.accounts[account_id] = account
        self.touch()
        return account

    def create_asset(self, customer: Account, product: Product, at: datetime) -> Asset:
        tier1 = self.parent_of(customer)
        tier2 = self.parent_of(tier1) if tier1 else None
        asset = Asset(self.new_id("AS", self.assets), customer, tier1, tier2, product, at)
        self.assets[asset.id] = asset
        for account in (customer, tier1, tier2):
            if account is not None and product not in account.products:
                account.products.append(product)
        self.touch()
        return asset

    def parent_of(self, account: Account) -> Account | None:
        parent_id = account.data.parent_id
        return self.accounts.get(parent_id) if parent_id else None

    def apply_change(
        self,
        account: Account,
        changes: dict[str, Any],
        by: Party,
        at: datetime | None = None,
        status_for: Callable[[Product], str] | None = None,
    ) -> list[Tar]:
        """A new version with `changes` and one TAR per linked product; nothing if no change."""
        old = account.data
        new = replace(old, **changes)
        if new == old:
            return []
        at = at or self.now()
        new = replace(new, version=old.version + 1, updated_at=at, updated_by=by)
        account.versions.append(new)
        status_for = status_for or (lambda p: "pending" if p.updates else "unsupported")
        tars = []
        for index, product in enumerate(account.products, start=1):
            # connect-api.md §2: `TAR-<TA digits>-<version>-<product index>` (INFERRED meaning).
            tar_id = f"TAR-{account.id[3:]}-{new.version:03d}-{index:03d}"
            tar = Tar(tar_id, account, new, product, status_for(product))
            self.tars[tar_id] = tar
            tars.append(tar)
        self.touch()
        return tars

    def settle(self, tar: Tar, status: str, reason: str | None, by: Party) -> None:
        tar.status = status
        tar.reason = reason
        tar.updated_at = self.now()
        tar.updated_by = by
        self.touch()

    def find_by_external_uid(self, uid: str) -> Account | None:
        return next((a for a in self.accounts.values() if a.data.external_uid == uid), None)

    def _by_id(self, name: str, items: dict[str, Any]) -> list[Any]:
        # The base order of a collection is by id: stable sorts then break ties by id.
        cached = self._id_sorted.get(name)
        if cached is None or cached[0] != self.mutations:
            cached = (self.mutations, sorted(items.values(), key=lambda item: item.id))
            self._id_sorted[name] = cached
        return cached[1]

    def _sorted_accounts(self) -> list[Account]:
        return self._by_id("accounts", self.accounts)

    def _sorted_tars(self) -> list[Tar]:
        return self._by_id("tars", self.tars)

    def _sorted_assets(self) -> list[Asset]:
        return self._by_id("assets", self.assets)

    def _sorted_products(self) -> list[Product]:
        return self._by_id("products", self.products)

    # -- hooks for tests ------------------------------------------------------------------------

    def add_product(
        self, id: str | None = None, name: str | None = None, updates: bool = True
    ) -> Json:
        """A product of the vendor; `updates` is its "Tier Accounts Sync" capability."""
        with self.lock:
            label = name or f"Fabrikam Product {len(self.products) + 1}"
            return product_json(self.create_product(id, label, updates, self.now()))

    def set_capability(self, product_id: str, updates: bool) -> None:
        """Switch a product's `capabilities.tiers.updates` (affects TARs created from now on)."""
        with self.lock:
            self.products[product_id].updates = updates
            self.touch()

    def hide_product(self, product_id: str) -> None:
        """Take a product out of `GET /products` and `GET /products/{id}` (deleted, or no longer
        visible to the key); its TARs and assets keep referring to it."""
        with self.lock:
            del self.products[product_id]
            self.touch()

    def add_account(
        self,
        id: str | None = None,
        *,
        type: str = "customer",
        parent_id: str | None = None,
        scopes: Sequence[str] | None = None,
        created_at: datetime | None = None,
        **fields: Any,
    ) -> Json:
        """A new TA (version 1) with generated data; `fields` override it in the API's shape
        (`name=...`, `tax_id=...`, `contact_info={...}` merged into the generated one)."""
        with self.lock:
            parent = self.accounts[parent_id] if parent_id else None
            faker = self._faker
            country = faker.country()
            data = faker.account(
                country=country,
                type=type,
                parent_id=parent_id,
                external_id=str(100_000 + len(self.accounts)),
                at=to_utc(created_at) if created_at else self.now(),
                by=self.hub_user,
            )
            if scopes is None:
                scopes = CUSTOMER if type == "customer" else TIER1
                if parent is not None and type == "reseller" and "tier2" not in parent.scopes:
                    parent.scopes = (*parent.scopes, "tier2")
            account = self.create_account(data, faker.db(country), tuple(scopes), id)
            if fields:
                changes = account_changes(self._merged(account, fields), account, self.accounts.get)
                account.versions[0] = replace(data, **changes)
            return account_json(account, self.accounts.get)

    def link(self, account_id: str, product_id: str) -> Json:
        """An asset of `product_id` for `account_id` (with its parents as tier1 and tier2)."""
        with self.lock:
            account, product = self.accounts[account_id], self.products[product_id]
            return asset_json(self.create_asset(account, product, self.now()))

    def change_account(
        self, account_id: str, *, at: datetime | None = None, **changes: Any
    ) -> list[Json]:
        """A provider-side change: a new version and one TAR per linked product (`pending` if
        the product's capability is on, else `unsupported`). Without `changes`, a random edit."""
        with self.lock:
            account = self.accounts[account_id]
            if changes:
                fields = account_changes(self._merged(account, changes), account, self.accounts.get)
            else:
                fields = self._faker.change(account.data)
            tars = self.apply_change(account, fields, self.hub_user, to_utc(at) if at else None)
            return [tar_json(t, self.accounts.get) for t in tars]

    def add_tars(
        self, account_id: str, count: int, created_at: datetime | None = None
    ) -> list[Json]:
        """`count` successive random changes of one account, all at `created_at` (default: now),
        so their TARs share one `events.created.at`. The account needs linked products."""
        with self.lock:
            at = to_utc(created_at) if created_at else self.now()
            out: list[Json] = []
            for _ in range(count):
                batch: list[Json] = []
                while not batch:
                    batch = self.change_account(account_id, at=at)
                    if not self.accounts[account_id].products:
                        break
                out.extend(batch)
            return out

    def account(self, account_id: str) -> Json:
        with self.lock:
            return account_json(self.accounts[account_id], self.accounts.get)

    def tar(self, tar_id: str) -> Json:
        with self.lock:
            return tar_json(self.tars[tar_id], self.accounts.get)

    def tars_of(self, account_id: str) -> list[Json]:
        """The account's TARs, oldest first."""
        with self.lock:
            found = [t for t in self.tars.values() if t.account.id == account_id]
            return [tar_json(t, self.accounts.get) for t in sorted(found, key=lambda t: t.id)]

    def seed(self, rng_seed: int = 0, **options: Any) -> SeedSummary:
        """Generate a realistic data set; see `connect_seed.seed_state` for the options."""
        with self.lock:
            # Hundreds of thousands of new objects, none cyclic garbage: collections would only
            # rescan them, again and again.
            enabled = gc.isenabled()
            gc.disable()
            try:
                return seed_state(self, rng_seed, **options)
            finally:
                if enabled:
                    gc.enable()

    def _merged(self, account: Account, fields: dict[str, Any]) -> dict[str, Any]:
        body = dict(fields)
        if isinstance(body.get("contact_info"), dict):
            info = account.data.contact_info()
            given = body["contact_info"]
            if isinstance(given.get("contact"), dict):
                info["contact"] = {**info["contact"], **given["contact"]}
            body["contact_info"] = {**info, **{k: v for k, v in given.items() if k != "contact"}}
        return body
