"""The effective sync flag of an account: the operator's override, else what Connect says about
the account's products, else the configured default (product.md §3 "Sync flag per account").

What Connect says about one product is its "Tier Accounts Sync" capability,
`capabilities.tiers.updates` (connect-api.md §2.2), once syncd has read the product. Until then the
account's TARs of that product stand in for it: Connect creates a TAR `pending` when the capability
is on and `unsupported` when it is off (connect-api.md §2.1). A product with both kinds of TAR (its
capability was switched) counts as on: a pending TAR is one Connect still expects the vendor to
settle, and only a synced account gets it settled.

`syncd.store.flags.recompute_flags` applies this same rule to every account in one SQL statement;
a test checks that both agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Source = Literal["override", "capability", "default"]
SOURCES: tuple[Source, ...] = ("override", "capability", "default")


@dataclass(frozen=True)
class ProductSignal:
    """What syncd knows about one product of one account."""

    capability: bool | None
    """The product's `capabilities.tiers.updates`; None when the product was not read (or its
    record does not say)."""
    pending: bool = False
    """The account has a `pending` TAR of this product."""
    unsupported: bool = False
    """The account has an `unsupported` TAR of this product."""


@dataclass(frozen=True)
class Flag:
    """An account's effective flag and where it came from."""

    enabled: bool
    source: Source


def product_says(signal: ProductSignal) -> bool | None:
    """Whether this product wants the account synced: on, off, or None when nothing is known."""
    if signal.capability is not None:
        return signal.capability
    if signal.pending:
        return True
    if signal.unsupported:
        return False
    return None


def capability_flag(products: Iterable[ProductSignal]) -> bool | None:
    """On if any product is on; off if some product is off and none is on; else None (the
    products say nothing yet)."""
    said = {product_says(signal) for signal in products} - {None}
    if not said:
        return None
    return True in said


def effective_flag(override: bool | None, products: Iterable[ProductSignal], default: bool) -> Flag:
    """The flag of an account with operator override `override` (None: not set), the signals of
    its products, and the configured default (`SYNCD_SYNC_DEFAULT`)."""
    if override is not None:
        return Flag(override, "override")
    capability = capability_flag(products)
    if capability is not None:
        return Flag(capability, "capability")
    return Flag(default, "default")
