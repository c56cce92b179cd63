"""CRM-owned values going back to Connect: which mapped fields can go, and as what.

A field the mapping gives to the CRM (`FieldMap.owner == "crm"`) goes back to Connect with
`PUT /tier/accounts/{id}` when its CRM value changed. It can only when it is filled from one source
path that a vendor may write (`dp.TierAccountUpdate` in the v37 spec: `name`, `external_id`,
`external_uid`, `tax_id`, `type`, `environment` and everything under `contact_info`), through a
transform that can be undone:

- none: the CRM text as it is.
- upper, lower, title: the CRM text as it is. Case folding cannot be undone, and the CRM's own
  casing is the best there is; mapped forward again it is folded, but a CRM-owned field is never
  written to an existing CRM record, so nothing echoes.
- country_code: the alpha-2 code of the CRM value (a name or an alpha-3 code becomes its code; an
  unknown value goes as it is, as it came).
- phone: "+CC AREA NUMBER ext. E" split back into Connect's phone object; a value that does not
  split into parts that format back to it is not sent.
- join_lines, join_comma: never; one CRM text cannot be split back into several fields.

A CRM value that clears a field Connect requires (name, address line 1, city, postal code,
country, the contact's names and email) is not sent either. Pure code: no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from syncd.domain.countries import alpha2
from syncd.domain.diff import normalise, same
from syncd.domain.fieldmap import FieldMap
from syncd.domain.transforms import TRANSFORMS

PHONE_OBJECT: Final = "contact_info.contact.phone_number"
PHONE_PARTS: Final = ("country_code", "area_code", "phone_number", "extension")
PHONE_PART_MAX: Final = 25
"""Connect's limit on each part of a phone number (SPEC `dp.TierContactInfoContactReference`)."""

_ADDRESS: Final = ("address_line1", "address_line2", "city", "state", "postal_code", "country")
_CONTACT: Final = ("first_name", "last_name", "email")

WRITABLE: Final = frozenset(
    {"name", "external_id", "external_uid", "tax_id", "type", "environment"}
    | {f"contact_info.{key}" for key in _ADDRESS}
    | {f"contact_info.contact.{key}" for key in _CONTACT}
    | {PHONE_OBJECT}
    | {f"{PHONE_OBJECT}.{part}" for part in PHONE_PARTS}
)
"""TA paths `PUT /tier/accounts/{id}` takes (`dp.TierAccountUpdate`)."""

REQUIRED: Final = frozenset(
    {"name", "type", "external_uid"}
    | {f"contact_info.{key}" for key in ("address_line1", "city", "postal_code", "country")}
    | {f"contact_info.contact.{key}" for key in _CONTACT}
)
"""Paths Connect refuses to clear (required or enum in the spec; external_uid is an identity)."""

REVERSIBLE: Final = frozenset({None, "upper", "lower", "title", "country_code", "phone"})


class NotReversible(ValueError):
    """This field, or this value of it, cannot go back to Connect; the message says why."""


def why_not_reversible(fieldmap: FieldMap) -> str | None:
    """Why a CRM-owned field can never go back to Connect, or None when it can."""
    paths = fieldmap.paths
    if len(paths) != 1:
        return (
            f"{fieldmap.target} joins {len(paths)} tier account fields "
            f"({', '.join(paths)}): one CRM value cannot be split back into them"
        )
    if fieldmap.transform not in REVERSIBLE:
        return f"{fieldmap.target}: the {fieldmap.transform} transform cannot be undone"
    if paths[0] not in WRITABLE:
        return f"{fieldmap.target}: Connect does not let a vendor write {paths[0]}"
    return None


def connect_value(fieldmap: FieldMap, crm_value: str | None) -> Any:
    """The value of the field's source path that stands for `crm_value` in Connect.

    Raises NotReversible when the field cannot go back (`why_not_reversible`) or this value
    cannot (a cleared required field, a phone number that does not split into Connect's parts).
    """
    why = why_not_reversible(fieldmap)
    if why is not None:
        raise NotReversible(why)
    path = fieldmap.paths[0]
    value = normalise(crm_value)
    if value is None:
        if path in REQUIRED:
            raise NotReversible(
                f"{fieldmap.target} was cleared in the CRM; Connect requires {path}"
            )
        # Connect's phone parts are strings, empty when absent (connect-api.md §1).
        return dict.fromkeys(PHONE_PARTS, "") if path == PHONE_OBJECT else None
    if fieldmap.transform == "country_code":
        return alpha2(value) or value
    if path == PHONE_OBJECT:
        parts = split_phone(value)
        if parts is None:
            raise NotReversible(
                f"{fieldmap.target}: {value!r} does not split into Connect's phone parts "
                f"(+country area number ext. extension, at most {PHONE_PART_MAX} characters each)"
            )
        return parts
    return value


def split_phone(text: str) -> dict[str, str] | None:
    """Connect's phone object for a number as the `phone` transform writes it, or None when the
    text does not split into parts that format back to the same text (spaces aside)."""
    body, _, extension = text.partition(" ext. ")
    tokens = body.split()
    country = tokens.pop(0) if tokens and tokens[0].startswith("+") else ""
    if not tokens:
        return None
    area = tokens.pop(0) if len(tokens) > 1 else ""
    parts = {
        "country_code": country,
        "area_code": area,
        "phone_number": " ".join(tokens),
        "extension": extension.strip(),
    }
    if any(len(part) > PHONE_PART_MAX for part in parts.values()):
        return None
    formatted = TRANSFORMS["phone"]([parts])
    if formatted is None or formatted.split() != text.split():
        return None
    return parts


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def resolve(record: Mapping[str, Any], path: str) -> Any:
    """The value at dotted `path` in a TA record; None where it is missing."""
    value: Any = record
    for segment in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(segment)
    return value


def holds(record: Mapping[str, Any], path: str, value: Any) -> bool:
    """Whether the TA `record` already holds `value` at `path` (blank and None alike; for an
    object, every key of `value` compared)."""
    current = resolve(record, path)
    if isinstance(value, Mapping):
        found = current if isinstance(current, Mapping) else {}
        return all(same(_text(found.get(k)), _text(v)) for k, v in value.items())
    return same(_text(current), _text(value))


def _writable_contact_info(info: Any) -> dict[str, Any]:
    # `dp.TierContactInfoReference` requires address_line1, city, country, postal_code and
    # contact whenever contact_info is sent: the whole object goes, as Connect holds it now.
    source = info if isinstance(info, Mapping) else {}
    out: dict[str, Any] = {key: source.get(key) for key in _ADDRESS if key in source}
    contact = source.get("contact")
    if isinstance(contact, Mapping):
        kept: dict[str, Any] = {key: contact.get(key) for key in _CONTACT if key in contact}
        phone = contact.get("phone_number")
        if isinstance(phone, Mapping):
            kept["phone_number"] = {part: phone.get(part) for part in PHONE_PARTS if part in phone}
        out["contact"] = kept
    return out


def _set(target: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        inner = target.get(key)
        if not isinstance(inner, dict):
            inner = target[key] = {}
        target = inner
    target[keys[-1]] = copy.deepcopy(value)


def update_body(record: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The body of `PUT /tier/accounts/{id}` that sets `changes` (TA path → value) on the TA
    `record` (Connect's current one): top-level fields alone, `contact_info` whole."""
    body: dict[str, Any] = {}
    info_changes = {p: v for p, v in changes.items() if p.startswith("contact_info.")}
    for path, value in changes.items():
        if path not in info_changes:
            body[path] = copy.deepcopy(value)
    if info_changes:
        info = _writable_contact_info(record.get("contact_info"))
        for path, value in info_changes.items():
            _set(info, path.removeprefix("contact_info.").split("."), value)
        body["contact_info"] = info
    return body
