"""Validation of tier account writes (`dp.TierAccountUpdate`), with Connect's error messages.

Messages are `"<field>: <reason>"` as in Connect's `VAL_001` errors (connect-api.md §5.1); the
wording follows Django REST framework, which Connect's API is built on. Unknown and read-only keys
are ignored, as DRF serializers ignore them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from syncd.sim.connect_model import Account, Contact

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+\Z")
_TOO_LONG = "Ensure this field has no more than {} characters."


class Invalid(ValueError):
    """A write the API refuses with 400 `VAL_001`; `errors` are the messages."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def _text(errors: list[str], where: str, value: Any, limit: int, nullable: bool = False) -> str:
    if value is None and nullable:
        return ""
    if not isinstance(value, str):
        errors.append(f"{where}: Not a valid string.")
        return ""
    text: str = value
    if len(text) > limit:
        errors.append(f"{where}: {_TOO_LONG.format(limit)}")
    elif not text and not nullable:
        errors.append(f"{where}: This field may not be blank.")
    return text


def _required(errors: list[str], where: str, body: dict[str, Any], keys: tuple[str, ...]) -> bool:
    missing = [k for k in keys if k not in body]
    for key in missing:
        errors.append(f"{where}.{key}: This field is required.")
    return not missing


def _contact(errors: list[str], body: Any) -> Contact | None:
    where = "contact_info.contact"
    if not isinstance(body, dict):
        errors.append(f"{where}: Expected an object.")
        return None
    if not _required(errors, where, body, ("first_name", "last_name", "email")):
        return None
    email = _text(errors, f"{where}.email", body["email"], 254)
    if email and not _EMAIL.match(email):
        errors.append(f"{where}.email: Enter a valid email address.")
    phone = body.get("phone_number") or {}
    if not isinstance(phone, dict):
        errors.append(f"{where}.phone_number: Expected an object.")
        phone = {}
    parts = {
        key: _text(errors, f"{where}.phone_number.{key}", phone.get(key), 25, nullable=True)
        for key in ("country_code", "area_code", "phone_number", "extension")
    }
    return Contact(
        first_name=_text(errors, f"{where}.first_name", body["first_name"], 100),
        last_name=_text(errors, f"{where}.last_name", body["last_name"], 100),
        email=email,
        **parts,
    )


def _contact_info(errors: list[str], body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        errors.append("contact_info: Expected an object.")
        return {}
    keys = ("address_line1", "city", "country", "postal_code", "contact")
    if not _required(errors, "contact_info", body, keys):
        return {}
    out: dict[str, Any] = {
        "address_line1": _text(errors, "contact_info.address_line1", body["address_line1"], 255),
        "address_line2": _text(
            errors, "contact_info.address_line2", body.get("address_line2"), 255, nullable=True
        ),
        "city": _text(errors, "contact_info.city", body["city"], 100),
        "state": _text(errors, "contact_info.state", body.get("state"), 100, nullable=True),
        "postal_code": _text(errors, "contact_info.postal_code", body["postal_code"], 50),
        "country": _text(errors, "contact_info.country", body["country"], 100),
    }
    contact = _contact(errors, body["contact"])
    if contact is not None:
        out["contact"] = contact
    return out


def _choice(errors: list[str], key: str, value: Any, choices: tuple[str | None, ...]) -> Any:
    if value not in choices:
        errors.append(f'{key}: "{value}" is not a valid choice.')
    return value


def account_changes(
    body: dict[str, Any], current: Account, lookup: Callable[[str], Account | None]
) -> dict[str, Any]:
    """The `AccountData` fields a `dp.TierAccountUpdate` body sets; raise `Invalid` if malformed."""
    errors: list[str] = []
    out: dict[str, Any] = {}
    for key, limit in (("name", 255), ("external_id", 255), ("external_uid", 255)):
        if key in body:
            out[key] = _text(errors, key, body[key], limit)
    if "tax_id" in body:
        out["tax_id"] = _text(errors, "tax_id", body["tax_id"], 100, nullable=True)
    if "type" in body:
        out["type"] = _choice(errors, "type", body["type"], ("customer", "reseller"))
    if "environment" in body:
        env = _choice(errors, "environment", body["environment"], ("production", "test", "preview"))
        out["environment"] = env
    if "parent" in body:
        out["parent_id"] = _parent(errors, body["parent"], current, lookup)
    if "contact_info" in body:
        out.update(_contact_info(errors, body["contact_info"]))
    if errors:
        raise Invalid(errors)
    return out


def _parent(
    errors: list[str], value: Any, current: Account, lookup: Callable[[str], Account | None]
) -> str | None:
    if value is None:
        return None
    parent_id = value.get("id") if isinstance(value, dict) else None
    parent = lookup(parent_id) if isinstance(parent_id, str) else None
    if parent is None:
        errors.append("parent.id: Tier account not found.")
        return None
    if parent.data.type != "reseller" or parent.id == current.id:
        errors.append("parent.id: Only another reseller can be a parent.")
    return parent.id
