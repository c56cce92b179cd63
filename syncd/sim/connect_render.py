"""JSON for the Connect simulator's records, built on demand (nothing is stored as JSON)."""

from __future__ import annotations

from collections.abc import Callable

from syncd.sim.connect_model import Account, AccountData, Asset, Json, Product, Tar, iso

Lookup = Callable[[str], Account | None]
"""Finds an account by id (to render a parent's name and external id)."""


def account_json(account: Account, lookup: Lookup, data: AccountData | None = None) -> Json:
    """`dp.TierAccountDetail` for the current version, or `dp.TierAccountVersion` for `data`."""
    data = data or account.data
    out: Json = {
        "id": account.id,
        "version": data.version,
        "name": data.name,
        "type": data.type,
        "db": account.db,
        "external_id": data.external_id,
        "external_uid": data.external_uid,
        "environment": data.environment,
        "scopes": list(account.scopes),
        "tax_id": data.tax_id,
        "owner": account.owner.json(),
    }
    parent = lookup(data.parent_id) if data.parent_id else None
    if parent is not None:
        out["parent"] = {
            "id": parent.id,
            "name": parent.data.name,
            "external_id": parent.data.external_id,
        }
    out["hub"] = account.hub.json()
    out["contact_info"] = data.contact_info()
    out["events"] = {
        "created": {"at": iso(account.created_at), "by": account.created_by.json()},
        "updated": {"at": iso(data.updated_at), "by": data.updated_by.json()},
    }
    return out


def tar_json(tar: Tar, lookup: Lookup) -> Json:
    """`dp.TierAccountRequest`: the account snapshot is the version the request announced."""
    updated: Json = {"at": iso(tar.updated_at)}
    if tar.updated_by is not None:
        updated["by"] = tar.updated_by.json()
    out: Json = {
        "id": tar.id,
        "type": "update",
        "status": tar.status,
        "account": account_json(tar.account, lookup, tar.data),
        "vendor": tar.product.vendor.json(),
        "provider": tar.account.owner.json(),
        "product": tar.product.reference(),
        "events": {
            "created": {"at": iso(tar.created_at), "by": tar.created_by.json()},
            "updated": updated,
        },
    }
    if tar.reason is not None:
        out["reason"] = tar.reason
    return out


def product_json(product: Product) -> Json:
    """`dp.ProductVersion`, reduced to what a vendor integration reads (and what it requires)."""
    created = {"at": iso(product.created_at), "by": product.vendor.json()}
    return {
        "id": product.id,
        "name": product.name,
        "external_id": product.id.replace("PRD-", "EXT-"),
        "icon": product.icon,
        "status": "published",
        "short_description": f"{product.name} for business customers.",
        "version": 1,
        "published_at": iso(product.created_at),
        "category": product.category.json(),
        "owner": product.vendor.json(),
        "latest": True,
        "purchase_model": "subscription",
        "capabilities": {
            "reservation": {"consumption": False},
            "cart": {"validation": False},
            "inquiring": {"validation": False},
            # The "Tier Accounts Sync" switch (connect-api.md §2.2).
            "tiers": {"updates": product.updates, "validation": False},
        },
        "visibility": {"owner": True, "listing": True, "syndication": False, "catalog": True},
        "public": True,
        "events": {"created": created, "published": created, "updated": created},
    }


_MARKETPLACES: dict[str, Json] = {
    "EU": {"id": "MP-91673", "name": "Europe"},
    "US": {"id": "MP-10432", "name": "United States"},
    "JP": {"id": "MP-70215", "name": "Japan"},
    "AU": {"id": "MP-55230", "name": "Australia"},
}


def _tier(account: Account) -> Json:
    # `subscriptions.TierAccount`: a reduced copy of the TA, with its id (used by the filters).
    data = account.data
    return {
        "id": account.id,
        "external_id": data.external_id,
        "external_uid": data.external_uid,
        "name": data.name,
        "tax_id": data.tax_id,
        "contact_info": data.contact_info(),
    }


def asset_json(asset: Asset) -> Json:
    """`dp.Subscription`, with the tiers (customer, tier1, tier2) that link TAs to a product."""
    customer = asset.customer
    tiers: Json = {"customer": _tier(customer)}
    if asset.tier1 is not None:
        tiers["tier1"] = _tier(asset.tier1)
    if asset.tier2 is not None:
        tiers["tier2"] = _tier(asset.tier2)
    hub = customer.hub.json()
    at = iso(asset.created_at)
    return {
        "id": asset.id,
        "status": "active",
        "external_id": asset.id.replace("AS-", "").replace("-", ""),
        "external_uid": None,
        "product": asset.product.reference(),
        "connection": {
            "id": "CT-" + customer.hub.id.removeprefix("HB-") + "-0001",
            "type": "production",
            "status": "approved",
            "provider": customer.owner.json(),
            "vendor": asset.product.vendor.json(),
            "hub": hub,
        },
        "events": {"created": {"at": at}, "updated": {"at": at}},
        "items": [],
        "params": [],
        "tiers": tiers,
        "marketplace": dict(_MARKETPLACES.get(customer.db, _MARKETPLACES["EU"])),
        "contract": {"id": "CRD-00000-00000-00001", "type": "distribution", "name": "Distribution"},
    }
