"""Connect records as syncd reads them: parsed, checked, and kept next to the dict as received.

A record that fails a check raises `InvalidRecord` listing every problem found, so the caller can
keep it as received in the ledger and carry on with the rest of the page. Checks follow the v37
spec (`dp.TierAccountDetail`, `dp.TierAccountVersion`, `dp.TierAccountRequest`) plus one rule of
ours: no NUL character anywhere, because Postgres `jsonb` and `text` cannot store it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# ASCII digits only: `\d` alone also matches the digits of other scripts (Arabic-Indic ones).
ACCOUNT_ID = re.compile(r"TA-\d{4}-\d{4}-\d{4}", re.ASCII)
# The two trailing counters are three digits in every example; more are allowed (INFERRED).
REQUEST_ID = re.compile(r"TAR-\d{4}-\d{4}-\d{4}-\d{3,}-\d{3,}", re.ASCII)
PRODUCT_ID = re.compile(r"PRD-\d{3}-\d{3}-\d{3}", re.ASCII)
ACCOUNT_TYPES = frozenset({"customer", "reseller"})
ENVIRONMENTS = frozenset({"production", "test", "preview"})
REQUEST_STATUSES = frozenset({"pending", "accepted", "ignored", "unsupported"})
REQUEST_TYPES = frozenset({"update"})
NAME_MAX = 255


class InvalidRecord(ValueError):
    """A record from Connect that syncd cannot use; `problems` says why, one entry per field."""

    def __init__(self, kind: str, problems: list[str], record_id: str | None) -> None:
        self.kind = kind
        self.problems = problems
        self.record_id = record_id
        super().__init__(f"invalid {kind} {record_id or '(no id)'}: {'; '.join(problems)}")


@dataclass(frozen=True)
class TierAccount:
    id: str
    version: int
    name: str
    type: str
    external_id: str | None
    external_uid: str | None
    environment: str | None
    db: str | None
    owner_id: str | None
    hub_id: str | None
    parent_id: str | None
    country: str | None
    tax_id: str | None
    created_at: datetime | None
    updated_at: datetime | None
    record: Mapping[str, Any]


@dataclass(frozen=True)
class TierAccountRequest:
    id: str
    account: TierAccount
    product_id: str
    product_name: str | None
    vendor_id: str | None
    provider_id: str | None
    type: str
    status: str
    reason: str | None
    created_at: datetime
    updated_at: datetime | None
    record: Mapping[str, Any]


@dataclass(frozen=True)
class Product:
    id: str
    name: str | None
    tiers_updates: bool | None
    """`capabilities.tiers.updates`: on makes new TARs pending, off makes them unsupported."""
    record: Mapping[str, Any]


class _Checker:
    """Collects problems instead of stopping at the first one.

    Records come from `json.loads`, so objects are `dict`s (checked as such: it is faster than an
    ABC check, and this runs for every field of every record pulled).
    """

    def __init__(self, record: Any, kind: str, check_nul: bool = True) -> None:
        self.kind = kind
        self.problems: list[str] = []
        self.record: Mapping[str, Any] = record if isinstance(record, dict) else {}
        if not isinstance(record, dict):
            self.problems.append(f"expected an object, got {type(record).__name__}")
        elif check_nul and "\\u0000" in json.dumps(record):
            # The C encoder finds a NUL fast; the walk then names where it is.
            self._no_nul(record, "")

    def _no_nul(self, value: Any, path: str) -> None:
        if isinstance(value, str):
            if "\x00" in value:
                self.problems.append(f"{path or 'value'}: contains a NUL character")
        elif isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}" if path else str(key)
                if "\x00" in key:
                    # Keys too: Postgres `jsonb` refuses the whole page over one of them.
                    self.problems.append(f"{where!r}: a property name contains a NUL character")
                self._no_nul(item, where)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._no_nul(item, f"{path}[{index}]")

    def get(self, path: str) -> Any:
        if "." not in path:
            return self.record.get(path)
        value: Any = self.record
        for part in path.split("."):
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return value

    def text(
        self,
        path: str,
        *,
        required: bool = False,
        pattern: re.Pattern[str] | None = None,
        choices: frozenset[str] | None = None,
        max_length: int | None = None,
    ) -> str | None:
        value = self.get(path)
        if value is None:
            if required:
                self.problems.append(f"{path}: missing")
            return None
        if not isinstance(value, str):
            self.problems.append(f"{path}: expected a string, got {type(value).__name__}")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.problems.append(f"{path}: {_show(value)} is not of the form {pattern.pattern}")
            return None
        if choices is not None and value not in choices:
            self.problems.append(f"{path}: unknown value {_show(value)}")
            return None
        if max_length is not None and len(value) > max_length:
            self.problems.append(f"{path}: longer than {max_length} characters ({len(value)})")
            return None
        if required and not value.strip():
            self.problems.append(f"{path}: empty")
            return None
        return value

    def integer(self, path: str) -> int | None:
        value = self.get(path)
        if value is None:
            self.problems.append(f"{path}: missing")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.problems.append(f"{path}: expected an integer, got {type(value).__name__}")
            return None
        if value < 0:
            self.problems.append(f"{path}: negative")
            return None
        return value

    def moment(self, path: str, *, required: bool = False) -> datetime | None:
        value = self.text(path, required=required)
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            self.problems.append(f"{path}: {_show(value)} is not an ISO-8601 datetime")
            return None
        if parsed.tzinfo is None:
            self.problems.append(f"{path}: {_show(value)} has no time zone")
            return None
        return parsed

    def reference_id(self, path: str) -> str | None:
        """The `id` of an optional reference object such as `owner` or `parent`."""
        value = self.get(path)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problems.append(f"{path}: expected an object, got {type(value).__name__}")
            return None
        return self.text(f"{path}.id")

    def fail(self, record_id: str | None) -> None:
        if self.problems:
            raise InvalidRecord(self.kind, self.problems, record_id)


def _show(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _raw_id(record: Any) -> str | None:
    if isinstance(record, dict) and isinstance(record.get("id"), str):
        return str(record["id"])[:100]
    return None


def _account_fields(check: _Checker) -> dict[str, Any]:
    return {
        "id": check.text("id", required=True, pattern=ACCOUNT_ID),
        "version": check.integer("version"),
        "name": check.text("name", required=True, max_length=NAME_MAX),
        "type": check.text("type", required=True, choices=ACCOUNT_TYPES),
        "external_id": check.text("external_id", max_length=NAME_MAX),
        "external_uid": check.text("external_uid", max_length=NAME_MAX),
        "environment": check.text("environment", choices=ENVIRONMENTS),
        "db": check.text("db"),
        "owner_id": check.reference_id("owner"),
        "hub_id": check.reference_id("hub"),
        "parent_id": check.reference_id("parent"),
        "country": check.text("contact_info.country", max_length=100),
        "tax_id": check.text("tax_id", max_length=100),
        "created_at": check.moment("events.created.at"),
        "updated_at": check.moment("events.updated.at"),
    }


def parse_account(record: Any, check_nul: bool = True) -> TierAccount:
    """A TA (or a TA version, or the account snapshot inside a TAR).

    `check_nul=False` skips looking for NUL characters, for records known to hold none.
    """
    check = _Checker(record, "tier account", check_nul)
    fields = _account_fields(check)
    check.fail(_raw_id(record))
    return TierAccount(**fields, record=check.record)


def parse_request(record: Any, check_nul: bool = True) -> TierAccountRequest:
    check = _Checker(record, "tier account request", check_nul)
    fields: dict[str, Any] = {
        "id": check.text("id", required=True, pattern=REQUEST_ID),
        "product_id": check.text("product.id", required=True, pattern=PRODUCT_ID),
        "product_name": check.text("product.name"),
        "vendor_id": check.text("vendor.id"),
        "provider_id": check.text("provider.id"),
        "type": check.text("type", required=True, choices=REQUEST_TYPES),
        "status": check.text("status", required=True, choices=REQUEST_STATUSES),
        "reason": check.text("reason", max_length=NAME_MAX),
        "created_at": check.moment("events.created.at", required=True),
        "updated_at": check.moment("events.updated.at"),
    }
    account = check.get("account")
    parsed_account: TierAccount | None = None
    if account is None:
        check.problems.append("account: missing")
    else:
        try:
            parsed_account = parse_account(account, check_nul=False)  # checked with its request
        except InvalidRecord as exc:
            check.problems.extend(f"account.{problem}" for problem in exc.problems)
    check.fail(_raw_id(record))
    assert parsed_account is not None
    return TierAccountRequest(**fields, account=parsed_account, record=check.record)


def parse_product(record: Any) -> Product:
    check = _Checker(record, "product")
    product_id = check.text("id", required=True, pattern=PRODUCT_ID)
    name = check.text("name")
    updates = check.get("capabilities.tiers.updates")
    if updates is not None and not isinstance(updates, bool):
        check.problems.append(
            f"capabilities.tiers.updates: expected a boolean, got {type(updates).__name__}"
        )
    check.fail(_raw_id(record))
    assert product_id is not None
    return Product(product_id, name, updates, check.record)
