"""From a tier account (the JSON record as Connect sends it) to the fields of the CRM's records.

`default_mapping(crm)` is the brief's default; `mapping_from_toml(crm, table)` applies the
overrides of the TOML config; `apply(mapping, ta)` fills the account and contact records;
`check_against(mapping, ...)` names the mapped properties the CRM lacks.

TOML format: the `[mapping]` table of the config file.

    [mapping]
    key_property = "platform_account_id"   # optional: renames the account's upsert-key property
    contact_key_property = "email"         # optional: renames the contact's upsert-key property

    [mapping.account]
    name = "name"                          # property = dotted source path into the TA
    description = { source = "external_uid" }
    BillingStreet = { source = ["contact_info.address_line1", "contact_info.address_line2"],
                      transform = "join_lines" }
    phone = { source = "contact_info.contact.phone_number", transform = "phone", owner = "crm" }
    city = { source = "contact_info.city", policy = "manual" }
    connect_tax_id = false                 # false drops a default property

    [mapping.contact]
    firstname = { source = "contact_info.contact.first_name", transform = "title" }

Each table merges into the default mapping of the CRM: a property named there replaces the default
one, `false` removes it, any other property is added. An inline table takes `source` (a path, or a
list of paths for the joins), `transform` (join_lines, join_comma, upper, lower, title,
country_code, phone), `owner` (connect, the default, or crm) and `policy` (connect_wins, crm_wins,
manual; see `syncd.domain.diff`). A source path must be a field a tier account can have (e.g. `id`,
`tax_id`, `contact_info.city`, `contact_info.contact.email`, `parent.name`); a typo stops syncd at
start with a message naming the property.
"""

from __future__ import annotations

from collections.abc import Mapping as AnyMapping
from typing import Any, Final, Literal

from syncd.domain.fieldmap import FieldMap, Mapping, MappingError
from syncd.domain.transforms import UnmappableValue

__all__ = [
    "FieldMap",
    "Mapping",
    "MappingError",
    "UnmappableValue",
    "apply",
    "check_against",
    "default_mapping",
    "mapping_from_toml",
]

CrmName = Literal["hubspot", "salesforce"]
Record = dict[str, str | None]

_CONTACT: Final = "contact_info.contact"
_PHONE_SOURCE: Final = f"{_CONTACT}.phone_number"


def _hubspot() -> Mapping:
    return Mapping(
        crm="hubspot",
        account=(
            FieldMap("name", "name"),
            FieldMap("contact_info.address_line1", "address"),
            FieldMap("contact_info.address_line2", "address2"),
            FieldMap("contact_info.city", "city"),
            FieldMap("contact_info.state", "state"),
            FieldMap("contact_info.postal_code", "zip"),
            FieldMap("contact_info.country", "country", "country_code"),
            FieldMap(_PHONE_SOURCE, "phone", "phone"),
            FieldMap("id", "connect_account_id"),
            FieldMap("tax_id", "connect_tax_id"),
        ),
        contact=(
            # HubSpot stores contact emails in lower case; sending them otherwise would make every
            # diff see a change that the next read-back undoes.
            FieldMap(f"{_CONTACT}.email", "email", "lower"),
            FieldMap(f"{_CONTACT}.first_name", "firstname"),
            FieldMap(f"{_CONTACT}.last_name", "lastname"),
            FieldMap(_PHONE_SOURCE, "phone", "phone"),
        ),
        key_property="connect_account_id",
        contact_key_property="email",
    )


def _salesforce() -> Mapping:
    return Mapping(
        crm="salesforce",
        account=(
            FieldMap("name", "Name"),
            FieldMap(
                ("contact_info.address_line1", "contact_info.address_line2"),
                "BillingStreet",
                "join_lines",
            ),
            FieldMap("contact_info.city", "BillingCity"),
            FieldMap("contact_info.state", "BillingState"),
            FieldMap("contact_info.postal_code", "BillingPostalCode"),
            FieldMap("contact_info.country", "BillingCountry", "country_code"),
            FieldMap(_PHONE_SOURCE, "Phone", "phone"),
            FieldMap("id", "Connect_Account_Id__c"),
            FieldMap("tax_id", "Connect_Tax_Id__c"),
        ),
        contact=(
            # AccountId is not mapped: the adapter sets it from the account it has just upserted.
            FieldMap(f"{_CONTACT}.first_name", "FirstName"),
            FieldMap(f"{_CONTACT}.last_name", "LastName"),
            FieldMap(f"{_CONTACT}.email", "Email", "lower"),
            FieldMap(_PHONE_SOURCE, "Phone", "phone"),
            FieldMap("id", "Connect_Account_Id__c"),
        ),
        key_property="Connect_Account_Id__c",
        contact_key_property="Connect_Account_Id__c",
    )


def default_mapping(crm: str) -> Mapping:
    """The default mapping of `crm` ("hubspot" or "salesforce")."""
    if crm == "hubspot":
        return _hubspot()
    if crm == "salesforce":
        return _salesforce()
    raise MappingError(f"no mapping for CRM {crm!r} (hubspot or salesforce)")


_TOP_KEYS: Final = frozenset({"account", "contact", "key_property", "contact_key_property"})
_ENTRY_KEYS: Final = frozenset({"source", "transform", "owner", "policy"})


def mapping_from_toml(crm: str, table: AnyMapping[str, Any]) -> Mapping:
    """The default mapping of `crm` with the overrides of a `[mapping]` TOML table (module doc).

    Raises MappingError naming the setting (e.g. `mapping.account.Phone: ...`) when it is wrong.
    """
    base = default_mapping(crm)
    unknown = sorted(set(table) - _TOP_KEYS)
    if unknown:
        raise MappingError(
            f"mapping.{unknown[0]}: unknown setting ({', '.join(sorted(_TOP_KEYS))})"
        )
    key = _name(table, "key_property", base.key_property)
    contact_key = _name(table, "contact_key_property", base.contact_key_property)
    account = _merge("account", base.account, base.key_property, key, table.get("account", {}))
    contact = _merge(
        "contact", base.contact, base.contact_key_property, contact_key, table.get("contact", {})
    )
    try:
        return Mapping(crm, account, contact, key, contact_key)
    except MappingError as exc:
        raise MappingError(f"mapping.{exc}") from None


def _name(table: AnyMapping[str, Any], setting: str, default: str) -> str:
    value = table.get(setting, default)
    if not isinstance(value, str) or not value.strip():
        raise MappingError(f"mapping.{setting}: must be a property name")
    return value


def _merge(
    record: str,
    defaults: tuple[FieldMap, ...],
    default_key: str,
    key: str,
    overrides: object,
) -> tuple[FieldMap, ...]:
    if not isinstance(overrides, AnyMapping):
        raise MappingError(f"mapping.{record}: must be a table of property = source")
    fields = {f.target: f for f in defaults}
    if key != default_key and default_key in fields:
        # Renaming the key keeps where its value comes from.
        old = fields.pop(default_key)
        fields[key] = FieldMap(old.source, key, old.transform, old.owner, old.policy)
    for target, spec in overrides.items():
        setting = f"mapping.{record}.{target}"
        if spec is False:
            fields.pop(target, None)
            continue
        try:
            fields[target] = _field(target, spec)
        except MappingError as exc:
            raise MappingError(f"{setting}: {_without_target(str(exc), target)}") from None
    return tuple(fields.values())


def _field(target: str, spec: object) -> FieldMap:
    if isinstance(spec, str):
        return FieldMap(spec, target)
    if not isinstance(spec, AnyMapping):
        raise MappingError("must be a source path, an inline table, or false")
    unknown = sorted(set(spec) - _ENTRY_KEYS)
    if unknown:
        raise MappingError(f"unknown key {unknown[0]!r} ({', '.join(sorted(_ENTRY_KEYS))})")
    source = spec.get("source")
    if isinstance(source, list) and source and all(isinstance(s, str) for s in source):
        source = tuple(source)
    elif not isinstance(source, str):
        raise MappingError("source must be a path or a list of paths")
    for key in ("transform", "owner", "policy"):
        if key in spec and not isinstance(spec[key], str):
            raise MappingError(f"{key} must be a string")
    return FieldMap(
        source,
        target,
        spec.get("transform"),
        spec.get("owner", "connect"),
        spec.get("policy"),
    )


def _without_target(message: str, target: str) -> str:
    # FieldMap's own messages start with the property name, which the setting already names.
    return message.removeprefix(f"{target}: ")


def _resolve(record: AnyMapping[str, Any], segments: tuple[str, ...]) -> Any:
    value: Any = record
    for segment in segments:
        # JSON objects are dicts: the exact type test spares the slow ABC check on every step.
        if type(value) is not dict and not isinstance(value, AnyMapping):
            return None
        value = value.get(segment)
    return value


def _fill(fields: tuple[FieldMap, ...], ta: AnyMapping[str, Any]) -> Record:
    out: Record = {}
    for fieldmap in fields:
        values = [_resolve(ta, segments) for segments in fieldmap.segments]
        try:
            out[fieldmap.target] = fieldmap.convert(values)
        except UnmappableValue as exc:
            raise UnmappableValue(f"{fieldmap.target} from {fieldmap.source}: {exc}") from None
    return out


def apply(mapping: Mapping, ta_record: AnyMapping[str, Any]) -> tuple[Record, Record | None]:
    """The account's and the contact's CRM fields for a TA record; every mapped property is present.

    A missing or null source gives None, and so does a blank value; the others are strings. The
    contact is None when nothing maps to one, when its upsert key has no value (a HubSpot contact
    without an email cannot be keyed), or when no field but the key has a value. Raises
    UnmappableValue when a value's shape does not fit its transform.
    """
    account = _fill(mapping.account, ta_record)
    if not mapping.contact:
        return account, None
    contact = _fill(mapping.contact, ta_record)
    key = mapping.contact_key_property
    if contact.get(key) is None or all(v is None for k, v in contact.items() if k != key):
        return account, None
    return account, contact


def check_against(
    mapping: Mapping, crm_properties: set[str], contact_properties: set[str]
) -> list[str]:
    """Every mapped property the CRM does not have, as `account.X` / `contact.Y`, mapping order."""
    missing = [f"account.{f.target}" for f in mapping.account if f.target not in crm_properties]
    missing += [
        f"contact.{f.target}" for f in mapping.contact if f.target not in contact_properties
    ]
    return missing
