"""Parsing Connect records: what is accepted, and what is refused with a reason per field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from syncd.domain.records import InvalidRecord, parse_account, parse_product, parse_request


def account(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "TA-1234-5678-9012",
        "version": 4,
        "name": "Harbour Lights Ltd",
        "type": "customer",
        "db": "EU",
        "external_id": "77",
        "external_uid": "8c1d1a2e-0000-4000-8000-000000000001",
        "environment": "production",
        "scopes": ["customer"],
        "tax_id": "GB123",
        "owner": {"id": "PA-111-222", "name": "Owner"},
        "parent": {"id": "TA-0000-0000-0001", "name": "Parent"},
        "hub": {"id": "HB-1111-2222", "name": "Hub"},
        "contact_info": {
            "address_line1": "1 Quay Street",
            "city": "Bristol",
            "postal_code": "BS1",
            "country": "GB",
            "contact": {"first_name": "Ada", "last_name": "Byron", "email": "ada@example.com"},
        },
        "events": {
            "created": {"at": "2025-01-02T03:04:05+00:00"},
            "updated": {"at": "2025-02-02T03:04:05+00:00"},
        },
    }
    record.update(changes)
    return record


def request(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "TAR-1234-5678-9012-004-001",
        "type": "update",
        "status": "pending",
        "account": account(),
        "product": {"id": "PRD-123-456-789", "name": "Suite"},
        "vendor": {"id": "VA-111-222"},
        "provider": {"id": "PA-111-222"},
        "events": {"created": {"at": "2025-02-02T03:04:06Z"}},
    }
    record.update(changes)
    return record


def test_a_complete_account_is_parsed_into_its_columns() -> None:
    parsed = parse_account(account())
    assert parsed.id == "TA-1234-5678-9012"
    assert parsed.version == 4
    assert (parsed.owner_id, parsed.parent_id, parsed.hub_id) == (
        "PA-111-222",
        "TA-0000-0000-0001",
        "HB-1111-2222",
    )
    assert parsed.country == "GB"
    assert parsed.created_at is not None
    assert parsed.created_at.year == 2025


def test_an_account_without_optional_references_is_accepted() -> None:
    record = account()
    for key in ("parent", "hub", "owner", "external_id", "environment", "tax_id"):
        del record[key]
    parsed = parse_account(record)
    assert parsed.parent_id is None
    assert parsed.environment is None


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"id": "TA-12-34"}, "id: 'TA-12-34' is not of the form"),
        ({"id": None}, "id: missing"),
        ({"version": "4"}, "version: expected an integer, got str"),
        ({"version": True}, "version: expected an integer, got bool"),
        ({"name": ""}, "name: empty"),
        ({"name": "x" * 256}, "name: longer than 255 characters"),
        ({"name": "A\x00B"}, "name: contains a NUL character"),
        ({"type": "distributor"}, "type: unknown value 'distributor'"),
        ({"environment": "staging"}, "environment: unknown value 'staging'"),
        ({"parent": "TA-0000-0000-0001"}, "parent: expected an object, got str"),
        ({"events": {"created": {"at": "yesterday"}}}, "events.created.at: 'yesterday' is not"),
        ({"events": {"created": {"at": "2025-01-02T03:04:05"}}}, "has no time zone"),
    ],
)
def test_a_bad_account_field_is_named_in_the_error(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidRecord) as caught:
        parse_account(account(**changes))
    assert problem in str(caught.value)


def test_every_problem_of_a_record_is_reported_at_once() -> None:
    with pytest.raises(InvalidRecord) as caught:
        parse_account(account(version=None, type="x", name=7))
    assert len(caught.value.problems) == 3


def test_a_record_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidRecord, match="expected an object, got list"):
        parse_request([1, 2])


def test_a_request_carries_its_parsed_account_snapshot() -> None:
    parsed = parse_request(request())
    assert parsed.account.version == 4
    assert parsed.product_id == "PRD-123-456-789"
    assert parsed.status == "pending"


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"status": "approved"}, "status: unknown value 'approved'"),
        ({"type": "create"}, "type: unknown value 'create'"),
        ({"id": "TAR-1"}, "id: 'TAR-1' is not of the form"),
        ({"product": {"id": 5}}, "product.id: expected a string, got int"),
        ({"account": None}, "account: missing"),
        ({"events": {}}, "events.created.at: missing"),
        ({"reason": "r" * 300}, "reason: longer than 255"),
    ],
)
def test_a_bad_request_field_is_named_in_the_error(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidRecord) as caught:
        parse_request(request(**changes))
    assert problem in str(caught.value)
    assert caught.value.record_id == (changes.get("id") or "TAR-1234-5678-9012-004-001")


def test_problems_of_the_account_snapshot_are_prefixed_with_account() -> None:
    broken = request()
    broken["account"] = copy.deepcopy(broken["account"])
    broken["account"]["version"] = None
    with pytest.raises(InvalidRecord, match=r"account\.version: missing"):
        parse_request(broken)


def test_a_product_capability_must_be_a_boolean() -> None:
    good = parse_product({"id": "PRD-123-456-789", "capabilities": {"tiers": {"updates": True}}})
    assert good.tiers_updates is True
    with pytest.raises(InvalidRecord, match="expected a boolean"):
        parse_product({"id": "PRD-123-456-789", "capabilities": {"tiers": {"updates": "yes"}}})
