"""CRM-owned values going back to Connect: which fields can, what value, and the PUT body."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.domain.diff import same
from syncd.domain.fieldmap import FieldMap
from syncd.domain.reverse import (
    PHONE_OBJECT,
    NotReversible,
    connect_value,
    holds,
    split_phone,
    update_body,
    why_not_reversible,
)
from syncd.domain.transforms import TRANSFORMS

TA = {
    "id": "TA-0001-0002-0003",
    "version": 3,
    "name": "Northwind",
    "tax_id": "DE1",
    "contact_info": {
        "address_line1": "Lindenstrasse 14",
        "address_line2": "",
        "city": "Hamburg",
        "state": "Hamburg",
        "postal_code": "20095",
        "country": "DE",
        "contact": {
            "first_name": "Miriam",
            "last_name": "Kessler",
            "email": "m@example.com",
            "phone_number": {
                "country_code": "+49",
                "area_code": "40",
                "phone_number": "5550123",
                "extension": "",
            },
        },
    },
}


def crm_field(source: str | tuple[str, ...], transform: str | None = None) -> FieldMap:
    return FieldMap(source, "target", transform, owner="crm")


def test_joined_fields_and_read_only_paths_cannot_go_back() -> None:
    joined = crm_field(("contact_info.address_line1", "contact_info.address_line2"), "join_lines")
    assert "cannot be split back" in (why_not_reversible(joined) or "")
    assert "does not let a vendor write" in (why_not_reversible(crm_field("parent.name")) or "")
    assert "does not let" in (why_not_reversible(crm_field("id")) or "")
    single_join = crm_field("scopes", "join_comma")
    assert "cannot be undone" in (why_not_reversible(single_join) or "")
    with pytest.raises(NotReversible):
        connect_value(joined, "a\nb")


@pytest.mark.parametrize("transform", [None, "upper", "lower", "title"])
def test_text_goes_back_as_the_crm_holds_it(transform: str | None) -> None:
    fieldmap = crm_field("name", transform)

    assert why_not_reversible(fieldmap) is None
    assert connect_value(fieldmap, "  Acme Holdings ") == "Acme Holdings"


def test_a_country_goes_back_as_its_code() -> None:
    fieldmap = crm_field("contact_info.country", "country_code")

    assert connect_value(fieldmap, "Germany") == "DE"
    assert connect_value(fieldmap, "esp") == "ES"
    assert connect_value(fieldmap, "Atlantis") == "Atlantis"


def test_a_phone_goes_back_as_connects_phone_object() -> None:
    fieldmap = crm_field(PHONE_OBJECT, "phone")

    assert connect_value(fieldmap, "+49 40 5550123 ext. 12") == {
        "country_code": "+49",
        "area_code": "40",
        "phone_number": "5550123",
        "extension": "12",
    }
    assert connect_value(fieldmap, "555-0199") == {
        "country_code": "",
        "area_code": "",
        "phone_number": "555-0199",
        "extension": "",
    }
    assert connect_value(fieldmap, None) == dict.fromkeys(
        ("country_code", "area_code", "phone_number", "extension"), ""
    )


def test_a_phone_that_does_not_fit_connects_parts_is_not_sent() -> None:
    fieldmap = crm_field(PHONE_OBJECT, "phone")

    with pytest.raises(NotReversible, match="phone parts"):
        connect_value(fieldmap, "+1 555 " + "1" * 30)
    with pytest.raises(NotReversible):
        connect_value(fieldmap, "+44")


def test_clearing_a_field_connect_requires_is_not_sent_but_an_optional_one_is() -> None:
    with pytest.raises(NotReversible, match="requires name"):
        connect_value(crm_field("name"), "  ")
    assert connect_value(crm_field("tax_id"), None) is None


PART = st.text(alphabet="0123456789-()", min_size=1, max_size=8)


@given(
    country=st.one_of(st.just(""), PART.map(lambda p: "+" + p)),
    area=st.one_of(st.just(""), PART),
    number=PART,
    extension=st.one_of(st.just(""), PART),
)
def test_a_phone_syncd_wrote_splits_back_into_parts_that_format_the_same(
    country: str, area: str, number: str, extension: str
) -> None:
    parts = {
        "country_code": country,
        "area_code": area,
        "phone_number": number,
        "extension": extension,
    }
    written = TRANSFORMS["phone"]([parts])
    assert written is not None

    back = split_phone(written)

    assert back is not None
    assert same(TRANSFORMS["phone"]([back]), written)


@given(text=st.text(alphabet="+0123456789 ext.()-", max_size=40))
def test_a_split_phone_always_formats_back_to_its_text(text: str) -> None:
    back = split_phone(text)

    if back is not None:
        formatted = TRANSFORMS["phone"]([back])
        assert formatted is not None
        assert formatted.split() == text.split()


def test_the_body_sets_top_level_fields_alone_and_contact_info_whole() -> None:
    original = copy.deepcopy(TA)
    phone = {"country_code": "+1", "area_code": "555", "phone_number": "0199", "extension": ""}

    body = update_body(TA, {"name": "Renamed", PHONE_OBJECT: phone})

    assert original == TA
    assert body["name"] == "Renamed"
    assert set(body) == {"name", "contact_info"}
    info = body["contact_info"]
    assert info["city"] == "Hamburg"
    assert info["contact"]["email"] == "m@example.com"
    assert info["contact"]["phone_number"] == phone
    assert update_body(TA, {"tax_id": None}) == {"tax_id": None}


def test_holds_compares_values_as_the_diff_does() -> None:
    assert holds(TA, "name", " Northwind ")
    assert holds(TA, "contact_info.address_line2", None)
    assert holds(TA, PHONE_OBJECT, {"country_code": "+49", "extension": None})
    assert not holds(TA, PHONE_OBJECT, {"area_code": "41"})
    assert not holds(TA, "name", "northwind")
