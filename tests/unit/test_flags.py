"""The effective sync flag rule, asset links, and the /assets query: examples, then properties."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.domain.assets import AssetLink, asset_links
from syncd.domain.flags import Flag, ProductSignal, effective_flag, product_says
from syncd.domain.records import InvalidRecord
from syncd.sync.flags import assets_query

ON = ProductSignal(capability=True)
OFF = ProductSignal(capability=False)
UNREAD = ProductSignal(capability=None)


# ---- examples ----------------------------------------------------------------------------


def test_the_override_wins_over_every_product() -> None:
    assert effective_flag(False, [ON, ON], default=True) == Flag(False, "override")
    assert effective_flag(True, [OFF], default=False) == Flag(True, "override")


def test_one_product_on_makes_the_account_on() -> None:
    assert effective_flag(None, [OFF, ON, UNREAD], default=False) == Flag(True, "capability")


def test_products_all_off_make_the_account_off_whatever_the_default() -> None:
    assert effective_flag(None, [OFF, OFF], default=True) == Flag(False, "capability")


def test_an_account_whose_products_say_nothing_takes_the_default() -> None:
    assert effective_flag(None, [], default=True) == Flag(True, "default")
    assert effective_flag(None, [UNREAD, UNREAD], default=False) == Flag(False, "default")


def test_an_unread_product_counts_by_its_tars_pending_on_unsupported_off() -> None:
    assert product_says(ProductSignal(None, pending=True)) is True
    assert product_says(ProductSignal(None, unsupported=True)) is False
    assert effective_flag(None, [ProductSignal(None, unsupported=True)], True) == Flag(
        False, "capability"
    )


def test_a_pending_tar_wins_over_an_unsupported_one_of_the_same_unread_product() -> None:
    assert product_says(ProductSignal(None, pending=True, unsupported=True)) is True


def test_a_read_capability_wins_over_the_products_tars() -> None:
    assert product_says(ProductSignal(False, pending=True)) is False
    assert product_says(ProductSignal(True, unsupported=True)) is True


def asset(asset_id: str, product: object, *tiers: str | None) -> dict[str, object]:
    names = ("customer", "tier1", "tier2")
    return {
        "id": asset_id,
        "product": {"id": product} if product is not None else {},
        "tiers": {name: {"id": tier} for name, tier in zip(names, tiers, strict=False) if tier},
    }


def test_an_asset_links_each_of_our_tier_accounts_to_its_product_once() -> None:
    record = asset("AS-1", "PRD-111-222-333", "TA-0000-0000-0001", "TA-0000-0000-0002", None)
    ours = {"TA-0000-0000-0001", "TA-0000-0000-0002", "TA-0000-0000-0009"}

    assert asset_links(record, ours) == [
        AssetLink("TA-0000-0000-0001", "PRD-111-222-333", "AS-1"),
        AssetLink("TA-0000-0000-0002", "PRD-111-222-333", "AS-1"),
    ]


def test_a_reseller_at_both_tiers_of_one_asset_is_linked_once() -> None:
    reseller = "TA-0000-0000-0002"
    record = asset("AS-1", "PRD-111-222-333", "TA-0000-0000-0001", reseller, reseller)
    assert asset_links(record, {reseller}) == [AssetLink(reseller, "PRD-111-222-333", "AS-1")]


def test_an_asset_of_other_accounts_yields_nothing_even_when_malformed() -> None:
    assert asset_links(asset("AS-1", None, "TA-0000-0000-0001"), {"TA-0000-0000-0002"}) == []


@pytest.mark.parametrize("product", [None, "", "prd-1", 42])
def test_our_asset_without_a_usable_product_id_is_refused(product: object) -> None:
    with pytest.raises(InvalidRecord) as caught:
        asset_links(asset("AS-1", product, "TA-0000-0000-0001"), {"TA-0000-0000-0001"})
    assert "product.id" in str(caught.value)
    assert caught.value.record_id == "AS-1"


def test_a_record_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidRecord):
        asset_links(["AS-1"], {"TA-0000-0000-0001"})


def test_the_assets_query_looks_for_the_accounts_in_every_tier_role() -> None:
    ids = ["TA-0000-0000-0001", "TA-0000-0000-0002"]
    wanted = '("TA-0000-0000-0001","TA-0000-0000-0002")'

    assert unquote(assets_query(ids)) == (
        f"or(in(tiers.customer.id,{wanted}),in(tiers.tier1.id,{wanted}),"
        f"in(tiers.tier2.id,{wanted}))"
    )


# ---- properties --------------------------------------------------------------------------

signals = st.builds(
    ProductSignal,
    capability=st.none() | st.booleans(),
    pending=st.booleans(),
    unsupported=st.booleans(),
)
products = st.lists(signals, max_size=6)
overrides = st.none() | st.booleans()


@given(overrides, products, st.booleans())
def test_the_flag_does_not_depend_on_the_order_of_the_products(
    override: bool | None, found: list[ProductSignal], default: bool
) -> None:
    assert effective_flag(override, found, default) == effective_flag(
        override, list(reversed(found)), default
    )


@given(st.booleans(), products, st.booleans())
def test_a_set_override_is_always_the_flag(
    override: bool, found: list[ProductSignal], default: bool
) -> None:
    assert effective_flag(override, found, default) == Flag(override, "override")


@given(products, st.booleans())
def test_the_default_is_used_exactly_when_no_product_says_anything(
    found: list[ProductSignal], default: bool
) -> None:
    flag = effective_flag(None, found, default)
    says_nothing = all(product_says(p) is None for p in found)
    assert (flag.source == "default") == says_nothing
    if says_nothing:
        assert flag.enabled is default


@given(products, signals, st.booleans())
def test_adding_a_product_that_is_on_turns_the_account_on(
    found: list[ProductSignal], extra: ProductSignal, default: bool
) -> None:
    flag = effective_flag(None, [*found, extra], default)
    if product_says(extra) is True:
        assert flag == Flag(True, "capability")
    if product_says(extra) is False and flag.enabled:
        # An off product never turns an account on: some other product (or the default) did.
        assert effective_flag(None, found, default).enabled
