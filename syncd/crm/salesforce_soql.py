"""Building SOQL safely: quoted literals, datetime literals, field names, IN lists that fit a URL.

A key is data, never syntax: every value goes through `quote`, which applies SOQL's escape
sequences (SOQL reference, "Quoted String Escape Sequences"), so a TA id holding `'` or `\\`
cannot end the literal. Field and object names come from configuration; they are checked
against the identifier shape instead, since SOQL has no way to quote them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from urllib.parse import quote_plus

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\f": "\\f",
}
# Not `\b`: the SOQL reference calls it "bell" in one place and backspace in another, so other
# control characters, backspace included, go out as unambiguous `\uXXXX` escapes.


_NEEDS_ESCAPE = re.compile(r"[\\'\"\x00-\x1f\x7f]")


def quote(value: str) -> str:
    """`value` as a SOQL string literal, quotes included."""
    if not _NEEDS_ESCAPE.search(value):
        return "'" + value + "'"  # nothing to escape (TA ids): no per-character work
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")  # other control characters: unicode escape
        else:
            out.append(char)
    return "'" + "".join(out) + "'"


def identifier(name: str) -> str:
    """`name` if it is a plain API name (`Name`, `Connect_Account_Id__c`), else ValueError."""
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a Salesforce API name: {name!r}")
    return name


def field_list(names: Iterable[str]) -> str:
    """Comma-separated, checked and de-duplicated field names, first occurrence first."""
    return ", ".join(identifier(name) for name in dict.fromkeys(names))


def datetime_literal(when: datetime) -> str:
    """A SOQL datetime literal (unquoted, UTC). Naive datetimes are taken as UTC. Rounded down
    to the second: Salesforce stamps carry whole seconds, and rounding down only widens a
    `>=` window."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=4096)
def parse_datetime(text: str) -> datetime:
    """A datetime as Salesforce returns it (`2025-01-01T00:00:00.000+0000`). Cached: `strptime`
    is slow, and the records of one write share one stamp (whole seconds)."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


def encoded_length(soql: str) -> int:
    """Length of `soql` once form-encoded as the `q` parameter (as httpx sends it)."""
    return len(quote_plus(soql, safe=""))


def in_list(values: Sequence[str]) -> str:
    """`('a', 'b')` with every value quoted."""
    return "(" + ", ".join(quote(v) for v in values) + ")"


def chunk_for_url(values: Sequence[str], fixed: int, budget: int) -> Iterator[list[str]]:
    """Split `values` into IN lists whose encoded length, plus `fixed`, stays within `budget`.

    Salesforce refuses URIs over 16,384 bytes (414) and advises much shorter ones (Salesforce
    Help 000386264), so reads are chunked by size, not by count. A single value longer than the
    budget still gets a chunk of its own.
    """
    chunk: list[str] = []
    used = fixed
    for value in values:
        cost = encoded_length(quote(value) + ", ")
        if chunk and used + cost > budget:
            yield chunk
            chunk, used = [], fixed
        chunk.append(value)
        used += cost
    if chunk:
        yield chunk
