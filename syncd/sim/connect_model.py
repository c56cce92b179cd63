"""The Connect simulator's records and their JSON shapes (spec v37: `dp.TierAccountDetail`,
`dp.TierAccountVersion`, `dp.TierAccountRequest`, `dp.ProductVersion`, `dp.Subscription`).

Records are small slotted objects; JSON is built on demand, so 100,000 accounts stay cheap. An
account keeps every version of its data (`AccountData`, immutable); a TAR points at the version it
announced instead of copying it.

Shape choices where the spec and reality disagree (connect-api.md §1): strings the read schemas
declare non-nullable (`address_line2`, `state`, `tax_id`, `external_id`) are sent as `""` when
unknown, and a reseller without a parent has no `parent` key at all (as connect-cli expects),
although `dp.TierAccountDetail` lists `parent` as required.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Json = dict[str, Any]


def iso(moment: datetime) -> str:
    """Connect's datetime format, to the second with an offset: `2020-03-09T14:31:17+00:00`."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def to_utc(moment: datetime) -> datetime:
    """`moment` in UTC to the second (Connect shows no more); a naive value is taken as UTC."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(microsecond=0)


def make_id(prefix: str, number: int, groups: tuple[int, ...]) -> str:
    """`make_id("TA", 123, (4, 4, 4))` -> `TA-0000-0000-0123`."""
    digits = str(number).zfill(sum(groups))
    if groups == (4, 4, 4):  # the common case, made cheap for seeding
        return f"{prefix}-{digits[:4]}-{digits[4:8]}-{digits[8:]}"
    parts, at = [], 0
    for size in groups:
        parts.append(digits[at : at + size])
        at += size
    return "-".join([prefix, *parts])


def scramble(n: int, width: int, salt: int) -> int:
    """A bijection on [0, 10**width): sequential counters become random-looking, unique ids."""
    # The multiplier is odd and not a multiple of 5, so it is invertible modulo any power of ten.
    return (n * 25_214_903_917 + salt) % int(10**width)


@dataclass(frozen=True, slots=True)
class Party:
    """A reference to an account, user or hub: `{id, name}` (+ `icon` when there is one)."""

    id: str
    name: str
    icon: str | None = None

    def json(self) -> Json:
        out: Json = {"id": self.id, "name": self.name}
        if self.icon is not None:
            out["icon"] = self.icon
        return out


@dataclass(frozen=True, slots=True)
class Contact:
    first_name: str
    last_name: str
    email: str
    country_code: str = ""
    area_code: str = ""
    phone_number: str = ""
    extension: str = ""

    def json(self) -> Json:
        return {
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": self.email,
            "phone_number": {
                "country_code": self.country_code,
                "area_code": self.area_code,
                "phone_number": self.phone_number,
                "extension": self.extension,
            },
        }


@dataclass(frozen=True, slots=True)
class AccountData:
    """One version of a tier account's data."""

    version: int
    name: str
    type: str
    external_id: str
    external_uid: str
    tax_id: str
    environment: str
    parent_id: str | None
    address_line1: str
    address_line2: str
    city: str
    state: str
    postal_code: str
    country: str
    contact: Contact
    updated_at: datetime
    updated_by: Party

    def contact_info(self) -> Json:
        return {
            "address_line1": self.address_line1,
            "address_line2": self.address_line2,
            "city": self.city,
            "state": self.state,
            "postal_code": self.postal_code,
            "country": self.country,
            "contact": self.contact.json(),
        }


class Product:
    __slots__ = ("category", "created_at", "icon", "id", "name", "updates", "vendor")

    def __init__(
        self, id: str, name: str, vendor: Party, updates: bool, created_at: datetime
    ) -> None:
        self.id = id
        self.name = name
        self.vendor = vendor
        self.updates = updates
        self.created_at = created_at
        self.icon = f"/media/{vendor.id}/{id}/media/{id}-logo.png"
        self.category = Party("CAT-00012", "Software")

    def reference(self) -> Json:
        """`dp.Product`, as embedded in TARs and assets."""
        return {"id": self.id, "icon": self.icon, "name": self.name, "status": "published"}


CUSTOMER = ("customer",)
TIER1 = ("tier1",)
TIER2 = ("tier2",)


class Account:
    __slots__ = (
        "created_at",
        "created_by",
        "db",
        "hub",
        "id",
        "owner",
        "products",
        "scopes",
        "versions",
    )

    def __init__(
        self,
        id: str,
        db: str,
        owner: Party,
        hub: Party,
        created_by: Party,
        data: AccountData,
        scopes: tuple[str, ...],
    ) -> None:
        self.id = id
        self.db = db
        self.owner = owner
        self.hub = hub
        self.created_at = data.updated_at
        self.created_by = created_by
        self.versions = [data]
        self.scopes = scopes
        """connect-api.md §1: `customer`, or the tier levels a reseller acts at."""
        self.products: list[Product] = []
        """Products linked to this account through assets, in any tier role, in link order."""

    @property
    def data(self) -> AccountData:
        return self.versions[-1]


class Tar:
    __slots__ = (
        "account",
        "created_at",
        "created_by",
        "data",
        "id",
        "product",
        "reason",
        "status",
        "updated_at",
        "updated_by",
    )

    def __init__(
        self, id: str, account: Account, data: AccountData, product: Product, status: str
    ) -> None:
        self.id = id
        self.account = account
        self.data = data
        self.product = product
        self.status = status
        self.reason: str | None = None
        self.created_at = data.updated_at
        self.created_by = data.updated_by
        self.updated_at = data.updated_at
        self.updated_by: Party | None = None


class Asset:
    __slots__ = ("created_at", "customer", "id", "product", "tier1", "tier2")

    def __init__(
        self,
        id: str,
        customer: Account,
        tier1: Account | None,
        tier2: Account | None,
        product: Product,
        created_at: datetime,
    ) -> None:
        self.id = id
        self.customer = customer
        self.tier1 = tier1
        self.tier2 = tier2
        self.product = product
        self.created_at = created_at
