"""Which of our accounts an asset links to which product.

An asset (`dp.Subscription` in the v37 spec) names its product in `product.id` and the tier
accounts it belongs to in `tiers.customer`, `tiers.tier1` and `tiers.tier2` (each a reduced TA with
its `id`; tier1 and tier2 are absent when the customer has no reseller at that level). Connect
creates a TAR for every product linked to a changed account (connect-api.md §2), so the products
of an account that has no TAR yet are those of its assets.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from syncd.domain.records import PRODUCT_ID, InvalidRecord

TIERS = ("customer", "tier1", "tier2")


@dataclass(frozen=True)
class AssetLink:
    """Account `account_id` has a product `product_id` through asset `asset_id`."""

    account_id: str
    product_id: str
    asset_id: str | None


def _tier_ids(tiers: Any) -> list[str]:
    if not isinstance(tiers, dict):
        return []
    found = []
    for name in TIERS:
        tier = tiers.get(name)
        if isinstance(tier, dict) and isinstance(tier.get("id"), str):
            found.append(tier["id"])
    return found


def asset_links(record: Any, ours: Collection[str]) -> list[AssetLink]:
    """The links of asset `record` for the accounts in `ours`, once per account.

    An asset none of whose tiers is ours yields nothing, whatever its shape. One that is ours but
    whose product id is missing or malformed raises `InvalidRecord` (the caller keeps it in the
    ledger): guessing would link an account to the wrong product.
    """
    if not isinstance(record, dict):
        raise InvalidRecord("asset", [f"expected an object, got {type(record).__name__}"], None)
    accounts = [i for i in dict.fromkeys(_tier_ids(record.get("tiers"))) if i in ours]
    if not accounts:
        return []
    raw_id = record.get("id")
    asset_id = raw_id if isinstance(raw_id, str) else None
    product = record.get("product")
    product_id = product.get("id") if isinstance(product, dict) else None
    if not isinstance(product_id, str) or not PRODUCT_ID.fullmatch(product_id):
        shown = "missing" if product_id is None else f"{str(product_id)[:60]!r} is not a product id"
        raise InvalidRecord("asset", [f"product.id: {shown}"], asset_id)
    return [AssetLink(account_id, product_id, asset_id) for account_id in accounts]
