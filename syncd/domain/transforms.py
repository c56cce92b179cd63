"""Value transforms a mapping may apply on the way from a tier account to a CRM property.

Every transform takes the raw values found at the field's source paths (one per path, in order;
JSON values as Connect sends them, None where the path is missing or null) and returns one string,
or None when there is nothing to write. Blank strings count as None everywhere, so a CRM never
sees `""` for one record and nothing for another.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Final

from syncd.domain.countries import alpha2


class UnmappableValue(ValueError):
    """A source value of a shape the field's transform cannot turn into text (e.g. an object
    mapped without the `phone` transform). The record is malformed for this mapping; the plan phase
    marks it and goes on with the others."""


def text(value: Any) -> str | None:
    """A scalar JSON value as trimmed text; None for null or blank."""
    if value is None:
        return None
    if type(value) is str:  # the common case first: most values are strings
        return value.strip() or None
    if isinstance(value, bool):
        # bool before int: JSON true is a Python int too.
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        stripped = str(value).strip()
        return stripped or None
    raise UnmappableValue(f"a {type(value).__name__} is not a text value")


def _single(values: Sequence[Any]) -> Any:
    # The mapping guarantees one source path for every transform but the joins.
    return values[0]


def _join(separator: str) -> Callable[[Sequence[Any]], str | None]:
    def join(values: Sequence[Any]) -> str | None:
        # A list value (e.g. `scopes`) contributes its items, so it can be joined too.
        items = [
            item for value in values for item in (value if isinstance(value, list) else [value])
        ]
        parts = [part for part in (text(item) for item in items) if part is not None]
        return separator.join(parts) or None

    return join


def _plain(values: Sequence[Any]) -> str | None:
    return text(_single(values))


def _upper(values: Sequence[Any]) -> str | None:
    value = text(_single(values))
    return None if value is None else value.upper()


def _lower(values: Sequence[Any]) -> str | None:
    value = text(_single(values))
    return None if value is None else value.lower()


# A word is letters, possibly joined by apostrophes, so "o'neil" and "mcdonald's" stay one word;
# str.title() would give "Mcdonald'S".
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*")


def _title(values: Sequence[Any]) -> str | None:
    value = text(_single(values))
    if value is None:
        return None
    return _WORD.sub(lambda m: m[0][:1].upper() + m[0][1:].lower(), value)


def _country_code(values: Sequence[Any]) -> str | None:
    value = text(_single(values))
    if value is None:
        return None
    # An unknown country is passed on as given rather than dropped: losing the provider's value
    # would be worse than a CRM value that is not a code.
    return alpha2(value) or value


_PHONE_PARTS: Final = ("country_code", "area_code", "phone_number")


def _phone(values: Sequence[Any]) -> str | None:
    """`{country_code, area_code, phone_number, extension}` as "+49 40 5550123 ext. 12".

    Connect's phone object has every part optional and empty strings are common, so absent parts
    are skipped; a country code without its "+" gets one. A plain string is taken as it is.
    """
    value = _single(values)
    if value is None or isinstance(value, str):
        return text(value)
    if not isinstance(value, dict):
        raise UnmappableValue(f"a {type(value).__name__} is not a phone number object")
    number = text(value.get("phone_number"))
    if number is None:
        return None
    country = text(value.get("country_code"))
    if country is not None and not country.startswith("+"):
        country = "+" + country
    parts = [country, text(value.get("area_code")), number]
    formatted = " ".join(part for part in parts if part is not None)
    extension = text(value.get("extension"))
    return formatted if extension is None else f"{formatted} ext. {extension}"


Transform = Callable[[Sequence[Any]], str | None]

TRANSFORMS: Final[dict[str | None, Transform]] = {
    None: _plain,
    "join_lines": _join("\n"),
    "join_comma": _join(", "),
    "upper": _upper,
    "lower": _lower,
    "title": _title,
    "country_code": _country_code,
    "phone": _phone,
}
"""Transform name (None: the value as text) → function."""

JOINS: Final = frozenset({"join_lines", "join_comma"})
"""The transforms that take several source paths."""
