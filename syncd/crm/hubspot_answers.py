"""HubSpot's read answers, every part syncd uses checked against the shape the spec gives.

A read answer of another shape (a member missing, a list where an object belongs, an id that is
neither digits nor a number) fails the read with a non-fatal `CrmError` saying what was expected
at which place and quoting the start of the body, token removed: the caller retries those records
on a later cycle. It is never read as "no record": the push would then create the record again,
or rewrite every field over the CRM's edits.

Shapes, from HubSpot's v3 objects spec (`BatchResponseSimplePublicObject`,
`CollectionResponseWithTotalSimplePublicObject`: `results` required, each a `SimplePublicObject`
whose `id` is a string and `properties` an object of strings or nulls) and the v4 associations
batch read (`results[].from.id`, `results[].to[].toObjectId`, a number). Record ids are HubSpot's
numeric object ids: syncd pages searches by them (`hs_object_id > last`).

A 207's `errors` say which inputs failed. "Not found" and "no associations" are the expected
ones; an error of HubSpot's own (rate limit, internal error, timeout: `is_retryable`) means those
records could not be read, so the read fails as well.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from syncd.connect.errors import Redactor
from syncd.crm.hubspot_http import excerpt, json_object
from syncd.crm.hubspot_records import is_retryable, reason_of
from syncd.crm.port import CrmError

T = TypeVar("T")
MISSING: Any = object()
"""Stands for a member the answer does not hold (as opposed to one that is null)."""


class Mismatch(Exception):
    """A part of an answer is not of the expected shape: where, what was expected, what came."""

    def __init__(self, where: str, expected: str, came: object) -> None:
        super().__init__(f"expected `{where}`, {expected}, got {json_kind(came)}")


def json_kind(value: object) -> str:
    """What a JSON value is, in JSON's words (never the value: it may hold anything)."""
    if value is MISSING:
        return "nothing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def record_id(value: object) -> str | None:
    """A HubSpot object id as text: digits, or a non-negative whole number; None otherwise."""
    if isinstance(value, str):
        return value if value and value.isascii() and value.isdigit() else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    return None


def id_at(container: Mapping[str, Any], name: str, where: str) -> str:
    """The record id held in `container[name]`."""
    value = container.get(name, MISSING)
    ident = record_id(value)
    if ident is None:
        raise Mismatch(where, "a record id (a number, or a string of digits)", value)
    return ident


def object_at(container: Mapping[str, Any], name: str, where: str) -> dict[str, Any]:
    """The object held in `container[name]`."""
    value = container.get(name, MISSING)
    if not isinstance(value, dict):
        raise Mismatch(where, "an object", value)
    return value


def list_at(container: Mapping[str, Any], name: str, where: str) -> list[Any]:
    """The list held in `container[name]`."""
    value = container.get(name, MISSING)
    if not isinstance(value, list):
        raise Mismatch(where, "a list", value)
    return value


def record(
    row: Any, where: str, names: Sequence[str], key: str | None = None
) -> tuple[str, dict[str, str | None]]:
    """The id and properties of a `SimplePublicObject`. Each property of `names` it holds must
    be a string or null; `key` (the property the record was read by) must be there, a string:
    without it the record cannot be matched to what was asked, and would read as "none"."""
    if not isinstance(row, dict):
        raise Mismatch(where, "an object", row)
    ident = id_at(row, "id", f"{where}.id")
    props = object_at(row, "properties", f"{where}.properties")
    for name in names:
        value = props.get(name)
        if value is not None and not isinstance(value, str):
            raise Mismatch(f"{where}.properties.{name}", "a string or null", value)
    if key is not None and not (isinstance(props.get(key), str) and props[key]):
        raise Mismatch(
            f"{where}.properties.{key}", "the value the record was read by", props.get(key, MISSING)
        )
    # Properties nobody asked for are not used: whatever their type, they are left out.
    kept = {k: v for k, v in props.items() if v is None or isinstance(v, str)}
    return ident, kept


def links(row: Any, where: str) -> tuple[str, list[str]]:
    """(record id, ids of its associated records) of one v4 association batch read result."""
    if not isinstance(row, dict):
        raise Mismatch(where, "an object", row)
    source = object_at(row, "from", f"{where}.from")
    ident = id_at(source, "id", f"{where}.from.id")
    targets = []
    for n, target in enumerate(list_at(row, "to", f"{where}.to")):
        if not isinstance(target, dict):
            raise Mismatch(f"{where}.to[{n}]", "an object", target)
        targets.append(id_at(target, "toObjectId", f"{where}.to[{n}].toObjectId"))
    return ident, targets


@dataclass(frozen=True)
class Answer:
    """The JSON object a read got back, with what it takes to say why it cannot be read."""

    what: str
    """The call, for messages ("HubSpot POST /crm/v3/objects/companies/batch/read")."""
    data: dict[str, Any]
    response: httpx.Response
    redact: Redactor

    @classmethod
    def of(cls, response: httpx.Response, what: str, redact: Redactor) -> Answer:
        """The answer of a read whose status said success; a `CrmError` when it is not a JSON
        object (the message quotes the body's start, token removed)."""
        return cls(what, json_object(response, what, redact), response, redact)

    def each(self, check: Callable[[Any, str], T]) -> list[T]:
        """`check(entry, where)` of each entry of `results` (a list, required), once `errors`
        says that every input not among them is simply not there."""
        try:
            rows = list_at(self.data, "results", "results")
            self._check_errors()
            return [check(row, f"results[{n}]") for n, row in enumerate(rows)]
        except Mismatch as exc:
            raise self.malformed(exc) from None

    def _check_errors(self) -> None:
        failed = self.data.get("errors")
        if failed is None:  # a 200 carries none
            return
        if not isinstance(failed, list):
            raise Mismatch("errors", "a list", failed)
        for n, entry in enumerate(failed):
            if not isinstance(entry, dict):
                raise Mismatch(f"errors[{n}]", "an object", entry)
        retry = [entry for entry in failed if is_retryable(entry)]
        if retry:
            reason = self.redact(reason_of(retry[0]))
            count = f"{len(retry)} of the records asked for"
            raise CrmError(f"{self.what}: HubSpot could not read {count}: {reason}")

    def malformed(self, mismatch: Mismatch) -> CrmError:
        """The error of an answer whose `mismatch` makes it unreadable."""
        came = excerpt(self.response, self.redact)
        return CrmError(f"{self.what}: malformed answer: {mismatch}; the answer: {came}")
