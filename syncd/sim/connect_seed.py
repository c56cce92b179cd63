"""A realistic generated data set for the Connect simulator, fast enough for 100,000 accounts.

Reseller trees (tier2 -> tier1 -> customers), products with the "Tier Accounts Sync" capability on
or off, assets linking each customer (and so its resellers) to products, and a history of
provider-side changes: every change is a new account version with one TAR per linked product, the
latest ones left `pending` in the chosen share, older ones already `accepted` or `ignored`, and
those of products without the capability `unsupported`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from syncd.sim.connect_fake import Faker
from syncd.sim.connect_model import CUSTOMER, TIER1, TIER2, Account, Product, to_utc

if TYPE_CHECKING:
    from syncd.sim.connect_state import ConnectState

_PRODUCTS = [
    "Analytics Suite", "Backup Cloud", "Mail Security", "Office Connect", "CRM Pro",
    "Video Meetings", "Endpoint Protection", "Cloud Storage", "Project Planner", "HR Portal",
]  # fmt: skip
_REASONS = ["CRM record locked by legal hold", "Duplicate of an existing CRM company"]


@dataclass(frozen=True)
class SeedSummary:
    """What `seed` generated."""

    accounts: int
    resellers: int
    customers: int
    products: int
    assets: int
    tars: int
    pending: int
    unsupported: int


def seed_state(
    state: ConnectState,
    rng_seed: int = 0,
    *,
    accounts: int = 1000,
    products: int = 3,
    capability_on_ratio: float = 0.67,
    reseller_ratio: float = 0.05,
    tier2_ratio: float = 0.3,
    changed_ratio: float = 0.2,
    pending_ratio: float = 0.8,
    max_links: int = 3,
    start: datetime | None = None,
) -> SeedSummary:
    """Add a generated data set to `state` (deterministic for `rng_seed` and the options).

    `capability_on_ratio` of the products have the capability on; `reseller_ratio` of the accounts
    are resellers, `tier2_ratio` of those at tier2; `changed_ratio` of the accounts changed after
    creation (a fifth of them twice); `pending_ratio` of the latest TARs of capability-on products
    are still pending. Accounts are created between `start` (default: two years ago) and now.
    """
    rng = random.Random(rng_seed)
    faker = Faker(rng)
    now = state.now()
    start = to_utc(start) if start else now - timedelta(days=730)
    span = int((now - start).total_seconds())
    n_on = round(products * capability_on_ratio)
    made: list[Product] = []
    for i in range(products):
        name = f"Fabrikam {_PRODUCTS[i % len(_PRODUCTS)]}" + (f" {i // 10 + 1}" if i >= 10 else "")
        made.append(state.create_product(None, name, i < n_on, start))
    resellers = round(accounts * reseller_ratio) if accounts > 1 else 0
    tier2 = round(resellers * tier2_ratio) if resellers > 1 else 0
    # Oldest first: resellers exist before the customers below them.
    window = span * 9 // 10 or 1
    offsets = sorted(faker.below(window) for _ in range(accounts))
    tier2_ids: list[str] = []
    tier1_ids: list[str] = []
    all_accounts: list[Account] = []
    assets = 0
    for i, offset in enumerate(offsets):
        at = start + timedelta(seconds=offset)
        if i < tier2:
            type_, scopes, parent = "reseller", TIER2, None
        elif i < resellers:
            type_, scopes = "reseller", TIER1
            parent = faker.pick(tier2_ids) if tier2_ids and rng.random() < 0.6 else None
        else:
            type_, scopes = "customer", CUSTOMER
            parent = faker.pick(tier1_ids) if tier1_ids else None
        country = faker.country()
        data = faker.account(
            country=country,
            type=type_,
            parent_id=parent,
            external_id=str(100_000 + i),
            at=at,
            by=state.hub_user,
        )
        account = state.create_account(data, faker.db(country), scopes)
        all_accounts.append(account)
        (tier2_ids if scopes is TIER2 else tier1_ids if scopes is TIER1 else []).append(account.id)
        if type_ == "customer" and made:
            links = min(1 + (rng.random() < 0.3) + (rng.random() < 0.1), max_links, len(made))
            chosen = [faker.pick(made)] if links == 1 else rng.sample(made, links)
            for product in chosen:
                # Bought when created: the asset shares the account's timestamp object.
                state.create_asset(account, product, account.created_at)
                assets += 1
    counts = _history(state, rng, faker, all_accounts, changed_ratio, pending_ratio, now)
    return SeedSummary(
        accounts=accounts,
        resellers=resellers,
        customers=accounts - resellers,
        products=products,
        assets=assets,
        **counts,
    )


def _history(
    state: ConnectState,
    rng: random.Random,
    faker: Faker,
    accounts: list[Account],
    changed_ratio: float,
    pending_ratio: float,
    now: datetime,
) -> dict[str, int]:
    changed = rng.sample(accounts, round(len(accounts) * changed_ratio))
    events: list[tuple[datetime, str, Account]] = []
    remaining: dict[str, int] = {}
    for account in changed:
        times = 2 if rng.random() < 0.2 else 1
        remaining[account.id] = times
        window = max(int((now - account.created_at).total_seconds()), 1)
        for _ in range(times):
            events.append(
                (account.created_at + timedelta(seconds=faker.below(window)), account.id, account)
            )
    # In time order, so the TAR collection grows the way the live one does.
    events.sort(key=lambda e: (e[0], e[1]))
    tars = pending = unsupported = 0
    for at, _, account in events:
        remaining[account.id] -= 1
        latest = remaining[account.id] == 0

        def status(product: Product, latest: bool = latest) -> str:
            if not product.updates:
                return "unsupported"
            if latest and rng.random() < pending_ratio:
                return "pending"
            return "ignored" if rng.random() < 0.1 else "accepted"

        for tar in state.apply_change(
            account, faker.change(account.data), state.hub_user, at, status
        ):
            tars += 1
            pending += tar.status == "pending"
            unsupported += tar.status == "unsupported"
            if tar.status in ("accepted", "ignored"):
                tar.updated_at = min(at + timedelta(seconds=rng.randrange(60, 7200)), now)
                tar.updated_by = state.api_user
                tar.reason = rng.choice(_REASONS) if tar.status == "ignored" else None
    return {"tars": tars, "pending": pending, "unsupported": unsupported}
