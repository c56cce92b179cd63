"""The filterable fields of the simulated Connect collections, as spec v37 documents them.

Names, lookups, `ordering` and `search` flags, and null literals are those of the spec's query
parameters for `GET /tier/accounts`, `GET /tier/account-requests`, `GET /assets` and
`GET /products` (a spec test checks them). Fields the spec lists with no lookups (`version`,
`tax_id`, `contact_info` on accounts) answer 400 to any filter, as django-rql does; fields it does
not list at all (notably `events.updated.at` on accounts and TARs) are ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from syncd.sim.connect_model import Account, Asset, Product, Tar
from syncd.sim.rql_filter import (
    NULLABLE_STRING_LOOKUPS,
    RANGE_LOOKUPS,
    STRING_LOOKUPS,
    Field,
)

Lookup = Callable[[str], Account | None]

_NONE: frozenset[str] = frozenset()
_NULL_HUB = frozenset({"HB-0000-0000"})


def _s(
    get: Callable[[Any], Any],
    nullable: bool = True,
    ordering: bool = False,
    search: bool = False,
    null_values: frozenset[str] = frozenset(),
) -> Field[Any]:
    lookups = NULLABLE_STRING_LOOKUPS if nullable else STRING_LOOKUPS
    return Field(get, lookups=lookups, ordering=ordering, search=search, null_values=null_values)


def account_fields(lookup: Lookup) -> dict[str, Field[Account]]:
    """`GET /tier/accounts`; `lookup` resolves parents (for `parent.name`, `parent.parent.id`)."""

    def parent(a: Account) -> Account | None:
        return lookup(a.data.parent_id) if a.data.parent_id else None

    def grandparent_id(a: Account) -> str | None:
        p = parent(a)
        return p.data.parent_id if p else None

    fields: dict[str, Field[Any]] = {
        "contact_info": Field(lambda a: None, lookups=_NONE),
        "contact_info.contact.email": Field(
            lambda a: a.data.contact.email, lookups=frozenset({"eq", "in"})
        ),
        "db": _s(lambda a: a.db, nullable=False, ordering=True),
        "events.created.at": Field(
            lambda a: a.created_at, kind="datetime", lookups=RANGE_LOOKUPS, ordering=True
        ),
        "events.created.by": _s(lambda a: a.created_by.id),
        "events.updated.by": _s(lambda a: a.data.updated_by.id),
        "external_id": _s(lambda a: a.data.external_id, search=True, ordering=True),
        "external_uid": _s(lambda a: a.data.external_uid, nullable=False, search=True),
        "hub.id": _s(lambda a: a.hub.id, search=True, ordering=True, null_values=_NULL_HUB),
        "hub.name": _s(lambda a: a.hub.name, nullable=False, search=True, ordering=True),
        "id": _s(lambda a: a.id, search=True),
        "name": _s(lambda a: a.data.name, search=True, ordering=True),
        "owner.id": _s(lambda a: a.owner.id, search=True, ordering=True),
        "owner.name": _s(lambda a: a.owner.name, nullable=False, search=True, ordering=True),
        "parent.id": _s(lambda a: a.data.parent_id, search=True),
        "parent.name": _s(
            lambda a: p.data.name if (p := parent(a)) else None, search=True, ordering=True
        ),
        "parent.parent.id": _s(grandparent_id),
        "scopes": Field(
            lambda a: a.scopes, kind="list", lookups=frozenset({"eq", "like", "ilike", "in"})
        ),
        "tax_id": Field(lambda a: a.data.tax_id, lookups=_NONE),
        "type": _s(lambda a: a.data.type, nullable=False),
        "version": Field(lambda a: a.data.version, kind="int", lookups=_NONE),
    }
    return fields


def tar_fields() -> dict[str, Field[Tar]]:
    """`GET /tier/account-requests`."""
    fields: dict[str, Field[Any]] = {
        "account.external_id": _s(lambda t: t.data.external_id, search=True, ordering=True),
        "account.external_uid": _s(
            lambda t: t.data.external_uid, nullable=False, search=True, ordering=True
        ),
        "account.hub.id": _s(
            lambda t: t.account.hub.id, search=True, ordering=True, null_values=_NULL_HUB
        ),
        "account.hub.name": _s(
            lambda t: t.account.hub.name, nullable=False, search=True, ordering=True
        ),
        "account.id": _s(lambda t: t.account.id, ordering=True),
        "account.name": _s(lambda t: t.data.name, ordering=True),
        "account.version": Field(lambda t: t.data.version, kind="int", lookups=RANGE_LOOKUPS),
        "events.created.at": Field(
            lambda t: t.created_at, kind="datetime", lookups=RANGE_LOOKUPS, ordering=True
        ),
        "id": _s(lambda t: t.id, search=True, ordering=True),
        "product.id": _s(lambda t: t.product.id, search=True, ordering=True),
        "product.name": _s(lambda t: t.product.name, nullable=False, search=True, ordering=True),
        "status": _s(lambda t: t.status, nullable=False, ordering=True),
    }
    return fields


def asset_fields() -> dict[str, Field[Asset]]:
    """`GET /assets`: the fields that link assets to tier accounts and products."""

    def tier_id(name: str) -> Callable[[Asset], str | None]:
        def get(a: Asset) -> str | None:
            tier: Account | None = getattr(a, name)
            return tier.id if tier else None

        return get

    when = frozenset({"gt", "lt"})
    fields: dict[str, Field[Any]] = {
        "connection.provider.id": _s(lambda a: a.customer.owner.id, search=True),
        "connection.vendor.id": _s(lambda a: a.product.vendor.id, search=True),
        "connection.type": _s(lambda a: "production", nullable=False),
        "created": Field(lambda a: a.created_at, kind="datetime", lookups=when, ordering=True),
        "id": _s(lambda a: a.id, search=True),
        "product.id": _s(lambda a: a.product.id, search=True),
        "product.name": _s(lambda a: a.product.name, nullable=False, search=True, ordering=True),
        "status": _s(lambda a: "active", nullable=False, search=True, ordering=True),
        "tiers.customer.external_id": _s(lambda a: a.customer.data.external_id, search=True),
        "tiers.customer.external_uid": _s(
            lambda a: a.customer.data.external_uid, nullable=False, search=True
        ),
        "tiers.customer.id": _s(lambda a: a.customer.id, search=True, ordering=True),
        "tiers.customer.name": _s(lambda a: a.customer.data.name, search=True, ordering=True),
        "tiers.tier1.id": _s(tier_id("tier1")),
        "tiers.tier2.id": _s(tier_id("tier2")),
        "updated": Field(lambda a: a.created_at, kind="datetime", lookups=when, ordering=True),
    }
    return fields


def product_fields() -> dict[str, Field[Product]]:
    """`GET /products`: the fields a vendor integration filters on. `id` has no `ordering` in the
    spec (only `name` and the `events.*` fields do), so `ordering(id)` is refused like there."""
    when: Field[Product] = Field(
        lambda p: p.created_at, kind="datetime", lookups=RANGE_LOOKUPS, ordering=True
    )
    fields: dict[str, Field[Any]] = {
        "events.created.at": when,
        "events.published.at": Field(
            lambda p: p.created_at,
            kind="datetime",
            lookups=RANGE_LOOKUPS | {"null"},
            ordering=True,
        ),
        "events.updated.at": when,
        "external_id": _s(lambda p: p.id.replace("PRD-", "EXT-")),
        "id": _s(lambda p: p.id, search=True),
        "name": _s(lambda p: p.name, nullable=False, search=True, ordering=True),
        "owner.id": _s(lambda p: p.vendor.id, search=True),
        "owner.name": _s(lambda p: p.vendor.name, nullable=False, search=True),
        # Every simulated product is published (`connect_render.product_json`).
        "status": Field(lambda p: "published", lookups=RANGE_LOOKUPS),
    }
    return fields
