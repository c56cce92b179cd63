"""The mapping from a tier account to CRM fields: defaults, transforms, TOML overrides, checks."""

from __future__ import annotations

import copy
import tomllib
from typing import Any

import pytest

from syncd.domain.countries import COUNTRIES, EXTRA_NAMES, alpha2, fold
from syncd.domain.diff import FieldRule
from syncd.domain.mapping import (
    FieldMap,
    Mapping,
    MappingError,
    UnmappableValue,
    apply,
    check_against,
    default_mapping,
    mapping_from_toml,
)
from syncd.domain.transforms import TRANSFORMS


def _ta() -> dict[str, Any]:
    """A customer TA shaped like Connect's, with values of our own."""
    return {
        "id": "TA-1234-5678-9012",
        "version": 7,
        "name": "Harbor Lights Consulting S.L.",
        "type": "customer",
        "db": "EU",
        "external_id": "200311",
        "external_uid": "8d0e4b7a-51c2-4f0e-b1d9-6a2f7c3e9b10",
        "environment": "production",
        "scopes": ["customer"],
        "tax_id": "ESB12345678",
        "owner": {"id": "PA-111-222", "name": "Iberia Distribution", "icon": None},
        "parent": {"id": "TA-9999-0000-1111", "name": "Levante Resellers", "external_id": "200001"},
        "hub": {"id": "HB-1000-2000", "name": "Iberia Hub"},
        "contact_info": {
            "address_line1": "Calle Mayor 7",
            "address_line2": "Planta 2",
            "city": "Valencia",
            "state": "Valencia",
            "postal_code": "46001",
            "country": "es",
            "contact": {
                "first_name": "Lucía",
                "last_name": "Ferrer",
                "email": "Lucia.Ferrer@Harbor-Lights.example",
                "phone_number": {
                    "country_code": "+34",
                    "area_code": "96",
                    "phone_number": "1234567",
                    "extension": "",
                },
            },
        },
        "events": {"created": {"at": "2024-03-01T10:00:00+00:00"}},
    }


# ---- defaults ----------------------------------------------------------------------------


def test_hubspot_defaults_fill_the_company_and_its_contact() -> None:
    account, contact = apply(default_mapping("hubspot"), _ta())

    assert account == {
        "name": "Harbor Lights Consulting S.L.",
        "address": "Calle Mayor 7",
        "address2": "Planta 2",
        "city": "Valencia",
        "state": "Valencia",
        "zip": "46001",
        "country": "ES",
        "phone": "+34 96 1234567",
        "connect_account_id": "TA-1234-5678-9012",
        "connect_tax_id": "ESB12345678",
    }
    assert contact == {
        "email": "lucia.ferrer@harbor-lights.example",
        "firstname": "Lucía",
        "lastname": "Ferrer",
        "phone": "+34 96 1234567",
    }


def test_salesforce_defaults_fill_the_account_and_its_contact() -> None:
    account, contact = apply(default_mapping("salesforce"), _ta())

    assert account == {
        "Name": "Harbor Lights Consulting S.L.",
        "BillingStreet": "Calle Mayor 7\nPlanta 2",
        "BillingCity": "Valencia",
        "BillingState": "Valencia",
        "BillingPostalCode": "46001",
        "BillingCountry": "ES",
        "Phone": "+34 96 1234567",
        "Connect_Account_Id__c": "TA-1234-5678-9012",
        "Connect_Tax_Id__c": "ESB12345678",
    }
    assert contact == {
        "FirstName": "Lucía",
        "LastName": "Ferrer",
        "Email": "lucia.ferrer@harbor-lights.example",
        "Phone": "+34 96 1234567",
        "Connect_Account_Id__c": "TA-1234-5678-9012",
    }


def test_default_keys_are_the_ones_the_adapters_upsert_by() -> None:
    hubspot, salesforce = default_mapping("hubspot"), default_mapping("salesforce")

    assert (hubspot.key_property, hubspot.contact_key_property) == ("connect_account_id", "email")
    assert (salesforce.key_property, salesforce.contact_key_property) == (
        "Connect_Account_Id__c",
        "Connect_Account_Id__c",
    )
    # AccountId belongs to the adapter, never to the mapping.
    assert "AccountId" not in {f.target for f in salesforce.contact}


def test_default_fields_are_all_owned_by_connect() -> None:
    for crm in ("hubspot", "salesforce"):
        mapping = default_mapping(crm)
        rules = {**mapping.account_rules(), **mapping.contact_rules()}
        assert set(rules.values()) == {FieldRule("connect", None)}


def test_an_unknown_crm_has_no_default_mapping() -> None:
    with pytest.raises(MappingError, match="pipedrive"):
        default_mapping("pipedrive")


def test_missing_and_null_sources_map_to_none() -> None:
    ta = _ta()
    del ta["contact_info"]["address_line2"]
    ta["contact_info"]["state"] = None
    ta["tax_id"] = "   "

    account, _ = apply(default_mapping("salesforce"), ta)

    assert account["BillingStreet"] == "Calle Mayor 7"
    assert account["BillingState"] is None
    assert account["Connect_Tax_Id__c"] is None


def test_every_mapped_property_is_present_and_a_string_or_none() -> None:
    mapping = mapping_from_toml(
        "hubspot", {"account": {"connect_version": "version", "scopes": {"source": "scopes"}}}
    )
    ta = _ta()
    ta["scopes"] = "customer"

    account, _ = apply(mapping, ta)

    assert set(account) == {f.target for f in mapping.account}
    assert account["connect_version"] == "7"
    assert all(value is None or isinstance(value, str) for value in account.values())


def test_a_ta_without_contact_gives_no_contact_record() -> None:
    ta = _ta()
    del ta["contact_info"]["contact"]

    for crm in ("hubspot", "salesforce"):
        account, contact = apply(default_mapping(crm), ta)
        assert contact is None
        assert account  # the account is still mapped


def test_a_hubspot_contact_without_email_is_not_mapped_as_it_cannot_be_keyed() -> None:
    ta = _ta()
    ta["contact_info"]["contact"]["email"] = ""

    _, contact = apply(default_mapping("hubspot"), ta)

    assert contact is None


def test_apply_does_not_change_the_ta_record() -> None:
    ta = _ta()
    before = copy.deepcopy(ta)

    apply(default_mapping("salesforce"), ta)

    assert ta == before


def test_an_object_mapped_without_a_transform_is_refused_naming_the_property() -> None:
    mapping = mapping_from_toml("hubspot", {"account": {"parent_ref": "parent"}})

    with pytest.raises(UnmappableValue, match="parent_ref"):
        apply(mapping, _ta())


# ---- transforms --------------------------------------------------------------------------


def _run(transform: str | None, *values: Any) -> str | None:
    return TRANSFORMS[transform](list(values))


def test_join_lines_skips_blank_parts() -> None:
    assert _run("join_lines", "Calle Mayor 7", "", "Planta 2") == "Calle Mayor 7\nPlanta 2"
    assert _run("join_lines", "Calle Mayor 7", None) == "Calle Mayor 7"
    assert _run("join_lines", None, "  ") is None


def test_join_comma_joins_paths_and_list_items() -> None:
    assert _run("join_comma", "Valencia", "Valencia") == "Valencia, Valencia"
    assert _run("join_comma", ["tier1", "tier2"]) == "tier1, tier2"


@pytest.mark.parametrize(
    ("transform", "value", "expected"),
    [
        ("upper", " es ", "ES"),
        ("lower", "Lucia.Ferrer@Example.COM", "lucia.ferrer@example.com"),
        ("title", "harbor LIGHTS consulting", "Harbor Lights Consulting"),
        ("title", "o'neil-smith", "O'neil-Smith"),
        ("title", "mcdonald's", "Mcdonald's"),
        (None, "  trimmed  ", "trimmed"),
        (None, 42, "42"),
        (None, True, "true"),
    ],
)
def test_text_transforms(transform: str | None, value: Any, expected: str) -> None:
    assert _run(transform, value) == expected


@pytest.mark.parametrize("transform", ["upper", "lower", "title", "country_code", "phone", None])
def test_blank_values_stay_none_under_every_transform(transform: str | None) -> None:
    assert _run(transform, None) is None
    assert _run(transform, "  ") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("es", "ES"),
        ("ES", "ES"),
        ("Spain", "ES"),
        ("ESP", "ES"),
        (" spain ", "ES"),
        ("España", "ES"),
        ("tr", "TR"),
        ("Türkiye", "TR"),
        ("Turkey", "TR"),
        ("United Kingdom", "GB"),
        ("UK", "GB"),
        ("gbr", "GB"),
        ("United States of America", "US"),
        ("U.S.A.", "US"),
        ("Côte d'Ivoire", "CI"),
        ("Korea, Republic of", "KR"),
        ("South Korea", "KR"),
        ("Deutschland", "DE"),
        ("EL", "GR"),
    ],
)
def test_country_code_normalises_codes_and_names_to_alpha2(value: str, expected: str) -> None:
    assert _run("country_code", value) == expected


def test_an_unknown_country_is_passed_on_as_given() -> None:
    assert _run("country_code", " Atlantis ") == "Atlantis"


def test_country_table_has_every_code_once_and_no_name_means_two_countries() -> None:
    codes = [entry[0] for entry in COUNTRIES]
    assert len(codes) == len(set(codes)) == 249
    assert len({entry[1] for entry in COUNTRIES}) == 249
    meanings: dict[str, set[str]] = {}
    for entry in COUNTRIES:
        for name in entry:
            meanings.setdefault(fold(name), set()).add(entry[0])
    for code, names in EXTRA_NAMES.items():
        assert code in codes
        for name in names:
            meanings.setdefault(fold(name), set()).add(code)
    assert {k: v for k, v in meanings.items() if len(v) > 1} == {}
    assert all(alpha2(code) == code for code in codes)


@pytest.mark.parametrize(
    ("phone", "expected"),
    [
        (
            {"country_code": "+34", "area_code": "96", "phone_number": "1234567", "extension": ""},
            "+34 96 1234567",
        ),
        (
            {"country_code": "34", "area_code": "", "phone_number": "1234567", "extension": "12"},
            "+34 1234567 ext. 12",
        ),
        ({"phone_number": "1234567"}, "1234567"),
        ({"country_code": "+34", "area_code": "96", "phone_number": "", "extension": ""}, None),
        ({}, None),
        (" +34 961 234 567 ", "+34 961 234 567"),
    ],
)
def test_phone_formats_the_connect_phone_object(phone: Any, expected: str | None) -> None:
    assert _run("phone", phone) == expected


def test_phone_refuses_a_value_that_is_not_a_phone_object() -> None:
    with pytest.raises(UnmappableValue):
        _run("phone", ["+34", "1234567"])


# ---- TOML overrides ----------------------------------------------------------------------

_CONFIG = """
[mapping.account]
name = { source = "name", transform = "upper" }
description = "external_uid"
phone = { source = "contact_info.contact.phone_number", transform = "phone", owner = "crm" }
city = { source = "contact_info.city", policy = "manual" }
connect_tax_id = false

[mapping.contact]
firstname = { source = "contact_info.contact.first_name", transform = "title" }
"""


def test_toml_overrides_replace_add_and_remove_default_properties() -> None:
    table = tomllib.loads(_CONFIG)["mapping"]

    mapping = mapping_from_toml("hubspot", table)
    account, contact = apply(mapping, _ta())

    assert account["name"] == "HARBOR LIGHTS CONSULTING S.L."
    assert account["description"] == "8d0e4b7a-51c2-4f0e-b1d9-6a2f7c3e9b10"
    assert "connect_tax_id" not in account
    assert account["zip"] == "46001"  # untouched defaults stay
    assert contact is not None
    assert contact["firstname"] == "Lucía"
    rules = mapping.account_rules()
    assert rules["phone"] == FieldRule("crm", None)
    assert rules["city"] == FieldRule("connect", "manual")
    assert rules["city"].effective_policy == "manual"
    assert rules["phone"].effective_policy == "crm_wins"


def test_toml_join_takes_a_list_of_sources() -> None:
    table = {
        "account": {
            "address": {
                "source": ["contact_info.address_line1", "contact_info.address_line2"],
                "transform": "join_comma",
            }
        }
    }

    account, _ = apply(mapping_from_toml("hubspot", table), _ta())

    assert account["address"] == "Calle Mayor 7, Planta 2"


def test_an_empty_mapping_table_gives_the_defaults() -> None:
    for crm in ("hubspot", "salesforce"):
        assert mapping_from_toml(crm, {}) == default_mapping(crm)


def test_renaming_the_key_property_keeps_the_ta_id_as_its_source() -> None:
    mapping = mapping_from_toml("hubspot", {"key_property": "platform_account_id"})
    account, _ = apply(mapping, _ta())

    assert mapping.key_property == "platform_account_id"
    assert account["platform_account_id"] == "TA-1234-5678-9012"
    assert "connect_account_id" not in account


@pytest.mark.parametrize(
    ("table", "setting"),
    [
        ({"account": {"name": {"source": "name", "transform": "shout"}}}, "mapping.account.name"),
        ({"account": {"city": "contact_info.cty"}}, "mapping.account.city"),
        ({"contact": {"email": "contact_info.contact.mail"}}, "mapping.contact.email"),
        ({"account": {"city": {"source": "contact_info.city", "color": "red"}}}, "color"),
        ({"account": {"city": {"source": "contact_info.city", "owner": "me"}}}, "account.city"),
        ({"account": {"city": {"source": "contact_info.city", "policy": "coin"}}}, "account.city"),
        (
            {
                "account": {
                    "city": {"source": "contact_info.city", "owner": "crm", "policy": "manual"}
                }
            },
            "mapping.account.city",
        ),
        (
            {"account": {"street": {"source": ["contact_info.address_line1", "name"]}}},
            "mapping.account.street",
        ),
        ({"account": {"city": 3}}, "mapping.account.city"),
        ({"account": {"city": {"source": []}}}, "mapping.account.city"),
        ({"account": {"connect_account_id": False}}, "connect_account_id"),
        ({"account": {"connect_account_id": "external_id"}}, "connect_account_id"),
        (
            {"account": {"connect_account_id": {"source": "id", "owner": "crm"}}},
            "connect_account_id",
        ),
        ({"contact": {"email": False}}, "mapping.contact.email"),
        ({"accounts": {}}, "mapping.accounts"),
        ({"account": "name"}, "mapping.account"),
        ({"key_property": ""}, "mapping.key_property"),
    ],
)
def test_a_bad_override_is_refused_naming_the_setting(table: dict[str, Any], setting: str) -> None:
    with pytest.raises(MappingError, match=setting):
        mapping_from_toml("hubspot", table)


def test_an_unknown_path_error_lists_what_the_ta_has_there() -> None:
    with pytest.raises(MappingError, match="address_line1") as caught:
        mapping_from_toml("hubspot", {"account": {"city": "contact_info.cty"}})
    assert "'cty'" in str(caught.value)


def test_paths_under_open_objects_are_accepted() -> None:
    mapping = mapping_from_toml("hubspot", {"account": {"created": "events.created.at"}})

    account, _ = apply(mapping, _ta())

    assert account["created"] == "2024-03-01T10:00:00+00:00"


def test_a_mapping_without_contact_fields_maps_no_contact() -> None:
    mapping = Mapping(
        "hubspot", (FieldMap("id", "connect_account_id"),), (), "connect_account_id", "email"
    )

    assert apply(mapping, _ta()) == ({"connect_account_id": "TA-1234-5678-9012"}, None)


def test_a_property_mapped_twice_is_refused() -> None:
    with pytest.raises(MappingError, match="mapped twice"):
        Mapping(
            "hubspot",
            (FieldMap("id", "connect_account_id"), FieldMap("name", "connect_account_id")),
            (),
            "connect_account_id",
            "email",
        )


# ---- check_against -----------------------------------------------------------------------


def test_check_against_names_every_missing_property() -> None:
    mapping = default_mapping("hubspot")
    company = {f.target for f in mapping.account} - {"connect_account_id", "connect_tax_id"}
    contact = {f.target for f in mapping.contact} - {"phone"}

    missing = check_against(mapping, company, contact)

    assert missing == ["account.connect_account_id", "account.connect_tax_id", "contact.phone"]


def test_check_against_is_empty_when_the_crm_has_every_property() -> None:
    mapping = default_mapping("salesforce")
    account = {f.target for f in mapping.account} | {"Description", "Website"}
    contact = {f.target for f in mapping.contact} | {"AccountId"}

    assert check_against(mapping, account, contact) == []


def test_check_against_ignores_contact_properties_when_no_contact_is_mapped() -> None:
    mapping = Mapping(
        "hubspot", (FieldMap("id", "connect_account_id"),), (), "connect_account_id", "email"
    )

    assert check_against(mapping, {"connect_account_id"}, set()) == []
