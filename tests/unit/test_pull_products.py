"""How the pull's product part cuts the products to read into requests and tells, from a
listing's pages, which products Connect surely did not list."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from syncd.connect.paging import Page
from syncd.sync.pull_products import PRODUCT_CHUNK, Listing, chunks

ids_st = st.lists(st.from_regex(r"PRD-\d{3}-\d{3}-\d{3}", fullmatch=True), unique=True)


def page(items: list[Any], offset: int = 0, total: int | None = None) -> Page:
    return Page(items, offset, offset + len(items), total)


@given(ids_st, st.integers(min_value=1, max_value=150))
def test_chunks_keep_every_id_in_order_and_none_is_larger_than_asked(
    ids: list[str], size: int
) -> None:
    cut = chunks(ids, size)

    assert [i for chunk in cut for i in chunk] == ids
    assert all(1 <= len(chunk) <= size for chunk in cut)
    assert len(cut) == -(-len(ids) // size)


def test_250_products_make_three_requests() -> None:
    ids = [f"PRD-000-000-{n:03d}" for n in range(250)]

    assert [len(chunk) for chunk in chunks(ids)] == [100, 100, 50]
    assert PRODUCT_CHUNK == 100


@given(ids_st, st.data())
def test_a_complete_listing_lacks_exactly_the_products_it_did_not_hold(
    asked: list[str], data: st.DataObject
) -> None:
    held = data.draw(st.lists(st.sampled_from(asked), unique=True) if asked else st.just([]))
    listing = Listing()
    listing.add(page([{"id": i} for i in held], total=len(held)))

    assert listing.absent(asked) == [i for i in asked if i not in held]


def test_a_listing_over_two_pages_counts_both() -> None:
    listing = Listing()
    listing.add(page([{"id": "PRD-000-000-001"}], total=2))
    listing.add(page([{"id": "PRD-000-000-002"}], offset=1, total=2))

    assert listing.absent(["PRD-000-000-001", "PRD-000-000-002", "PRD-000-000-003"]) == [
        "PRD-000-000-003"
    ]


def test_a_listing_without_a_total_cannot_tell_what_is_absent() -> None:
    listing = Listing()
    listing.add(page([{"id": "PRD-000-000-001"}]))

    assert listing.absent(["PRD-000-000-001", "PRD-000-000-002"]) == []


def test_an_item_without_an_id_may_be_any_product_so_none_is_absent() -> None:
    listing = Listing()
    listing.add(page([{"id": "PRD-000-000-001"}, {"name": "no id"}, "not an object"], total=3))

    assert listing.unidentified == 2
    assert listing.absent(["PRD-000-000-001", "PRD-000-000-002"]) == []


def test_fewer_distinct_products_than_the_total_means_the_order_moved_so_none_is_absent() -> None:
    listing = Listing()
    # The same product on both pages: the order moved between them and one product was skipped.
    listing.add(page([{"id": "PRD-000-000-001"}], total=2))
    listing.add(page([{"id": "PRD-000-000-001"}], offset=1, total=2))

    assert listing.absent(["PRD-000-000-001", "PRD-000-000-002"]) == []
