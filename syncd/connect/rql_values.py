"""RQL values and field names in wire form: quoted, percent-encoded, UTC. See `syncd.connect.rql`
for the grammar these tokens fit in."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from urllib.parse import quote

_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]*")
# Names django-rql reads as paging or as operators when they stand alone as a field
# (DJRQL `RQLLimitOffsetTransformer` takes any `limit=`/`offset=` comparison as paging).
_RESERVED_FIELDS = frozenset({"limit", "offset", "ordering", "select", "search"})
_SAFE = ":"  # on top of the unreserved characters quote() never encodes


class RQLValueError(ValueError):
    """A field name or value that cannot be written in RQL without changing the query."""


@dataclass(frozen=True)
class Constant:
    """An RQL constant such as `null()`: emitted unquoted, unlike any text."""

    token: str


NULL = Constant("null()")
EMPTY = Constant("empty()")

Value = str | bool | int | float | datetime | date | Constant


def check_field(name: str, *, signed: bool = False) -> str:
    if not isinstance(name, str):
        raise RQLValueError(f"an RQL field name is text, not {type(name).__name__}")
    bare = name[1:] if signed and name.startswith("-") else name
    if not _FIELD.fullmatch(bare) or bare in _RESERVED_FIELDS:
        raise RQLValueError(f"not a usable RQL field name: {name!r}")
    return name


def _encode(text: str) -> str:
    try:
        return quote(text, safe=_SAFE, encoding="utf-8", errors="strict")
    except UnicodeEncodeError:
        raise RQLValueError("text is not encodable as UTF-8 (lone surrogate)") from None


def _render_text(text: str) -> str:
    # No escape exists inside RQL quotes, so pick the delimiter the text does not contain.
    if '"' not in text:
        delimiter = '"'
    elif "'" not in text:
        delimiter = "'"
    else:
        raise RQLValueError("text holding both ' and \" cannot be quoted in RQL")
    return _encode(delimiter + text + delimiter)


def _render_datetime(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise RQLValueError("naive datetime: give it a timezone so it can be sent in UTC")
    # `Z` rather than `+00:00`: a raw `+` would read as a space to a form decoder (DJRQL notes).
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise RQLValueError("datetime out of range once moved to UTC") from None
    return utc.replace(tzinfo=None).isoformat(timespec="auto") + "Z"


def render_value(value: Value) -> str:
    """One value in wire form (percent-encoded); raise RQLValueError if it cannot be written."""
    if isinstance(value, Constant):
        return value.token
    if isinstance(value, str):
        return _render_text(value)
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RQLValueError(f"not a finite number: {value!r}")
        return _encode(repr(value))
    if isinstance(value, datetime):  # before date: datetime is a date
        return _encode(_render_datetime(value))
    if isinstance(value, date):
        return value.isoformat()
    raise RQLValueError(f"unsupported RQL value type: {type(value).__name__}")
