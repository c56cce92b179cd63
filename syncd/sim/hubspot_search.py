"""CRM search (`POST /crm/v3/objects/{type}/search`) as HubSpot evaluates it.

Rules reproduced (HubSpot search guide; crm-apis.md §2.2, §4.1): filters in a group are ANDed,
groups are ORed; at most 5 groups, 6 filters per group, 18 in all (the limits are version-dependent;
these are the strictest published); a single sort; `limit` up to 200; `after` is an integer offset;
no query may page past 10,000 results (400); `total` counts every match, beyond the cap too.
"""

from __future__ import annotations

import functools
import heapq
import math
import operator
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from syncd.sim.hubspot_shapes import parse_time_ms
from syncd.sim.hubspot_store import PropertyDef, SimObject

MAX_RESULTS = 10_000
MAX_LIMIT = 200
MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS = 18

Predicate = Callable[[SimObject], bool]


class SearchError(Exception):
    """A request HubSpot refuses with 400 VALIDATION_ERROR."""


@dataclass(frozen=True)
class SearchPage:
    total: int
    results: list[SimObject]
    next_after: int | None


def search(
    objects: Iterable[SimObject],
    body: dict[str, Any],
    properties: dict[str, PropertyDef],
    rng: random.Random | None = None,
) -> SearchPage:
    """Evaluate one search request over `objects` (what the index holds now). With `rng`, records
    that tie on the sort come in random order, as HubSpot promises no order among them."""
    predicate = _compile_groups(body.get("filterGroups") or [], properties)
    sort = _sort(body.get("sorts") or [], properties)
    limit = _int(body.get("limit", 10), "limit")
    after = _int(body.get("after") or 0, "after")
    if not 0 < limit <= MAX_LIMIT:
        raise SearchError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    if after < 0:
        raise SearchError(f"after must not be negative, got {after}")
    if after + limit > MAX_RESULTS:
        # The index behind search cannot page past 10,000 hits (crm-apis.md §4.1).
        raise SearchError(
            f"Paging past {MAX_RESULTS} results is not supported (after={after}, "
            f"limit={limit}); narrow the filters instead."
        )
    matched = [o for o in objects if predicate(o)]
    name, descending = sort
    value = _getter(name, properties)
    # Records without a value sort last; ties go by id, or at random with `rng`.
    present, absent = (1, 0) if descending else (0, 1)
    blank: Any = 0 if _numeric(properties[name]) else ""
    salt = rng.randrange(1 << 30) if rng is not None else None

    def key(obj: SimObject) -> tuple[int, Any, int]:
        v = value(obj)
        tie = obj.id if salt is None else (obj.id * 2_654_435_761 + salt) % 4_294_967_291
        return (absent, blank, tie) if v is None else (present, v, tie)

    # Only the first `after + limit` in order are needed: a partial selection, not a full sort.
    select = heapq.nlargest if descending else heapq.nsmallest
    page = select(after + limit, matched, key=key)[after:]
    more = after + len(page) < len(matched)
    return SearchPage(len(matched), page, after + len(page) if more else None)


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SearchError(f"{name} must be an integer, got {value!r}") from None


def _compile_groups(groups: list[Any], properties: dict[str, PropertyDef]) -> Predicate:
    if len(groups) > MAX_GROUPS:
        raise SearchError(f"At most {MAX_GROUPS} filterGroups are allowed, got {len(groups)}")
    compiled: list[list[Predicate]] = []
    for group in groups:
        filters = group.get("filters") if isinstance(group, dict) else None
        if not isinstance(filters, list) or len(filters) > MAX_FILTERS_PER_GROUP:
            raise SearchError(f"A filterGroup holds at most {MAX_FILTERS_PER_GROUP} filters")
        compiled.append([_compile(f, properties) for f in filters])
    if sum(len(g) for g in compiled) > MAX_FILTERS:
        raise SearchError(f"At most {MAX_FILTERS} filters are allowed in all")

    if len(compiled) == 1:
        start: Predicate = _anything
        return functools.reduce(_both, compiled[0], start)

    def matches(obj: SimObject) -> bool:
        for group in compiled:
            for predicate in group:
                if not predicate(obj):
                    break
            else:
                return True
        return not compiled

    return matches


def _anything(obj: SimObject) -> bool:
    return True


def _both(first: Predicate, second: Predicate) -> Predicate:
    if first is _anything:
        return second
    return lambda obj: first(obj) and second(obj)


_SYSTEM: dict[str, Callable[[SimObject], Any]] = {
    "hs_object_id": operator.attrgetter("id"),
    "createdate": operator.attrgetter("created_ms"),
    "hs_lastmodifieddate": operator.attrgetter("modified_ms"),
    "lastmodifieddate": operator.attrgetter("modified_ms"),
}
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "EQ": operator.eq,
    "LT": operator.lt,
    "LTE": operator.le,
    "GT": operator.gt,
    "GTE": operator.ge,
}


def _compile(spec: Any, properties: dict[str, PropertyDef]) -> Predicate:
    if not isinstance(spec, dict):
        raise SearchError("a filter must be an object")
    name, op = spec.get("propertyName"), spec.get("operator")
    if name not in properties:
        raise SearchError(f"Property {name!r} does not exist")
    numeric = _numeric(properties[name])
    value = _getter(name, properties)
    if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        wanted = op == "HAS_PROPERTY"
        if name in _SYSTEM:
            return lambda obj: wanted
        return lambda obj: bool(obj.properties.get(name)) is wanted
    if op in ("IN", "NOT_IN"):
        values = {_operand(v, numeric, name) for v in spec.get("values") or []}
        inside = op == "IN"
        return lambda obj: (value(obj) in values) is inside
    if op == "NEQ":
        operand = _operand(spec.get("value"), numeric, name)
        return lambda obj: value(obj) != operand
    if op == "BETWEEN":
        low = _operand(spec.get("value"), numeric, name)
        high = _operand(spec.get("highValue"), numeric, name)
        return lambda obj: (
            _ordered(value(obj), operator.ge, low) and _ordered(value(obj), operator.le, high)
        )
    if op not in _OPERATORS:
        raise SearchError(f"Unsupported operator {op!r}")
    compare, operand = _OPERATORS[op], _operand(spec.get("value"), numeric, name)
    if name in _SYSTEM:  # never empty
        return lambda obj: compare(value(obj), operand)
    return lambda obj: _ordered(value(obj), compare, operand)


def _ordered(left: Any, compare: Callable[[Any, Any], bool], right: Any) -> bool:
    return left is not None and compare(left, right)


def _numeric(prop: PropertyDef) -> bool:
    return prop.type in ("number", "datetime", "date")


def _getter(name: str, properties: dict[str, PropertyDef]) -> Callable[[SimObject], Any]:
    """How search reads a property: numbers (ids, dates) as numbers, text case-insensitively."""
    if name in _SYSTEM:
        return _SYSTEM[name]
    if _numeric(properties[name]):
        return lambda obj: obj.number(name)

    def text(obj: SimObject) -> str | None:
        raw = obj.properties.get(name)
        return raw.lower() if raw is not None else None

    return text


def _operand(raw: Any, numeric: bool, name: str) -> float | str:
    if raw is None:
        raise SearchError(f"filter on {name!r} needs a value")
    text = str(raw)
    if not numeric:
        return text.lower()  # string comparisons in search are case-insensitive
    value = parse_time_ms(text) if not _is_number(text) else float(text)
    if value is None:
        raise SearchError(f"{text!r} is not a valid value for {name!r}")
    return float(value)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _sort(sorts: list[Any], properties: dict[str, PropertyDef]) -> tuple[str, bool]:
    """HubSpot allows one sort. The spec types `sorts` as strings, the guide shows objects
    (`{"propertyName", "direction"}`); both are accepted. Default: by record id."""
    if len(sorts) > 1:
        raise SearchError("Only one sort is allowed")
    if not sorts:
        return "hs_object_id", False
    spec = sorts[0]
    if isinstance(spec, str):
        name, descending = spec.lstrip("-"), spec.startswith("-")
    elif isinstance(spec, dict):
        name = spec.get("propertyName", "")
        descending = spec.get("direction", "ASCENDING") == "DESCENDING"
    else:
        raise SearchError("a sort must be a property name or an object")
    if name not in properties:
        raise SearchError(f"Property {name!r} does not exist")
    return name, descending


def key_range(body: dict[str, Any]) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Bounds on (modified ms, record id) that a one-group search implies, so that the store can
    scan an index instead of every record; None when the filters imply none. Every filter is
    still applied to what the index returns: this only narrows the candidates."""
    groups = body.get("filterGroups")
    if not isinstance(groups, list) or len(groups) != 1 or not isinstance(groups[0], dict):
        return None
    filters = groups[0].get("filters")
    if not isinstance(filters, list):
        return None
    low, high, low_id = _FLOOR, _CEILING, _FLOOR
    for spec in filters:
        name, op = (
            (spec.get("propertyName"), spec.get("operator")) if isinstance(spec, dict) else ("", "")
        )
        value = _bound(spec.get("value")) if isinstance(spec, dict) else None
        if value is None:
            continue
        # Stored dates and ids are integers: the tightest integer bounds of each comparison.
        above = math.floor(value) + 1 if op == "GT" else math.ceil(value)
        below = math.ceil(value) - 1 if op == "LT" else math.floor(value)
        if name in ("hs_lastmodifieddate", "lastmodifieddate"):
            if op in ("GTE", "EQ", "GT"):
                low = max(low, above)
            if op in ("LTE", "EQ", "LT"):
                high = min(high, below)
        elif name == "hs_object_id" and op in ("GT", "GTE"):
            low_id = max(low_id, above)
    if (low, high) == (_FLOOR, _CEILING):
        return None
    # Ids narrow the range only inside one millisecond (the index is ordered by date, then id).
    return (low, low_id if low == high else _FLOOR), (high, _CEILING)


_FLOOR, _CEILING = -(2**62), 2**62


def _bound(raw: Any) -> float | None:
    if raw is None:
        return None
    text = str(raw)
    value = float(text) if _is_number(text) else parse_time_ms(text)
    if value is None or not math.isfinite(value):
        return None  # the search itself reports what is wrong with it
    return float(value)
