"""Applying a parsed RQL query to in-memory objects, the way django-rql applies it to a table.

Each collection declares its filterable fields (`Field`: how to read the value, its type, the
lookups the API documents, whether it can order or is searched by `search=`). Semantics copied from
django-rql (`dj_rql/filter_cls.py`), because that is what Connect runs:

- a filter on a field the collection does not declare is silently ignored (it matches everything,
  and drops out of an `or`), unless the caller asks for `strict` checking;
- a lookup the field does not allow, `null()` on a non-nullable field, or a value that does not
  convert to the field's type (an integer, a datetime) is an error: the API answers 400;
- `ne` and `out` match rows whose value is null (Django's `exclude`); `gt/ge/lt/le` never do;
- `like`/`ilike` use `*` as the wildcard, `\\*` for a literal star;
- ordering is allowed only on fields flagged for it, one `ordering(...)` per query; nulls sort last
  ascending and first descending (Postgres). Callers append `id` as the final tiebreak.
- `select(...)` is accepted and ignored: these collections are served whole.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from syncd.sim.rql import And, Cmp, Const, In, Node, Not, Or, Query, RQLError, Value

T = TypeVar("T")
Predicate = Callable[[T], bool]

STRING_LOOKUPS = frozenset({"eq", "ne", "like", "ilike", "in", "out"})
NULLABLE_STRING_LOOKUPS = STRING_LOOKUPS | {"null"}
RANGE_LOOKUPS = frozenset({"eq", "ne", "ge", "gt", "le", "lt", "in", "out"})


@dataclass(frozen=True)
class Field(Generic[T]):
    """One filterable field of a collection."""

    get: Callable[[T], Any]
    kind: str = "str"
    """`str`, `int`, `datetime` (aware), or `list` (a list of strings, such as `scopes`)."""
    lookups: frozenset[str] = STRING_LOOKUPS
    ordering: bool = False
    search: bool = False
    null_values: frozenset[str] = frozenset()
    """Extra literals that mean null for this field (Connect: `HB-0000-0000` for `hub.id`)."""


Fields = Mapping[str, Field[T]]


def parse_datetime(text: str) -> datetime:
    """An ISO-8601 date or datetime; a value without an offset is taken as UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise RQLError(f"'{text}' is not an ISO-8601 date or datetime") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def compile_filter(query: Query, fields: Fields[T], strict: bool = False) -> Predicate[T] | None:
    """The predicate for the query's filter and `search`, or None when nothing filters."""
    parts = []
    if query.filter is not None:
        parts.append(_compile(query.filter, fields, strict))
    if query.search:
        parts.append(_search(query.search, fields))
    return _all([p for p in parts if p is not None])


def apply(items: Sequence[T], query: Query, fields: Fields[T], strict: bool = False) -> list[T]:
    """Filter and order `items` (already in their default order) by `query`."""
    predicate = compile_filter(query, fields, strict)
    rows = [item for item in items if predicate(item)] if predicate else list(items)
    if query.ordering:
        order(rows, query.ordering, fields)
    return rows


def order(rows: list[T], ordering: Sequence[str], fields: Fields[T]) -> None:
    """Sort in place by signed field names; stable, so earlier keys win and ties keep order."""
    keys: list[tuple[Field[T], bool]] = []
    for signed in ordering:
        descending = signed.startswith("-")
        name = signed[1:] if descending else signed
        spec = fields.get(name)
        if spec is None or not spec.ordering:
            raise RQLError(f"Bad ordering filter: {name}.")
        keys.append((spec, descending))
    for spec, descending in reversed(keys):
        getter = spec.get

        def key(item: T, getter: Callable[[T], Any] = getter) -> tuple[bool, Any]:
            value = getter(item)
            return (True, 0) if value is None else (False, value)

        rows.sort(key=key, reverse=descending)


def _all(predicates: list[Predicate[T]]) -> Predicate[T] | None:
    if not predicates:
        return None
    if len(predicates) == 1:
        return predicates[0]
    return lambda item: all(p(item) for p in predicates)


def _any(predicates: list[Predicate[T]]) -> Predicate[T] | None:
    if not predicates:
        return None
    return lambda item: any(p(item) for p in predicates)


def _compile(node: Node, fields: Fields[T], strict: bool) -> Predicate[T] | None:
    if isinstance(node, And):
        return _all([p for t in node.terms if (p := _compile(t, fields, strict)) is not None])
    if isinstance(node, Or):
        # Django: `Q() | Q(x)` is `Q(x)`: an ignored filter drops out of an OR.
        return _any([p for t in node.terms if (p := _compile(t, fields, strict)) is not None])
    if isinstance(node, Not):
        inner = _compile(node.term, fields, strict)
        return None if inner is None else (lambda item: not inner(item))
    spec = fields.get(node.prop)
    if spec is None:
        if strict:
            raise RQLError(f"Unknown filter: {node.prop}.")
        return None
    if isinstance(node, In):
        return _listing(node, spec)
    return _comparison(node, spec)


def _lookup_error(node: Cmp | In, value: Value) -> RQLError:
    shown = value.value if isinstance(value, Const) else value
    return RQLError(f"Bad filter query: lookup '{node.op}' on '{node.prop}' with '{shown}'.")


def _is_null(value: Value, spec: Field[Any]) -> bool:
    return value is Const.NULL or (isinstance(value, str) and value in spec.null_values)


def _comparison(node: Cmp, spec: Field[T]) -> Predicate[T]:
    get, value = spec.get, node.value
    if _is_null(value, spec):
        if "null" not in spec.lookups or node.op not in ("eq", "ne"):
            raise _lookup_error(node, value)
        wanted = node.op == "eq"
        return lambda item: (get(item) is None) == wanted
    if node.op not in spec.lookups or (value is Const.EMPTY and node.op not in ("eq", "ne")):
        raise _lookup_error(node, value)
    if node.op in ("like", "ilike"):
        assert isinstance(value, str)
        return _like(get, spec.kind, value, node.op == "ilike")
    typed = _typed(value, spec, node)
    if spec.kind == "list":

        def contains(item: T) -> bool:
            return typed in (get(item) or ())

        return contains if node.op == "eq" else (lambda item: not contains(item))
    if node.op == "eq":
        return lambda item: get(item) == typed
    if node.op == "ne":
        return lambda item: get(item) != typed
    compare = _ORDERED[node.op]
    return lambda item: (v := get(item)) is not None and compare(v, typed)


_ORDERED: dict[str, Callable[[Any, Any], bool]] = {
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


def _listing(node: In, spec: Field[T]) -> Predicate[T]:
    if node.op not in spec.lookups:
        raise _lookup_error(node, node.values[0])
    get = spec.get
    wanted = frozenset(_typed(v, spec, node) for v in node.values)
    is_list = spec.kind == "list"

    def hit(item: T) -> bool:
        value = get(item)
        return not wanted.isdisjoint(value or ()) if is_list else value in wanted

    return hit if node.op == "in" else (lambda item: not hit(item))


def _typed(value: Value, spec: Field[Any], node: Cmp | In) -> Any:
    if value is Const.NULL:
        raise _lookup_error(node, value)
    if value is Const.EMPTY:
        if spec.kind in ("int", "datetime"):
            raise RQLError(f"Bad filter query: empty() is not a value for '{node.prop}'.")
        return ""
    if spec.kind == "int":
        try:
            return int(value)
        except ValueError:
            raise RQLError(f"Bad filter query: '{value}' is not an integer.") from None
    if spec.kind == "datetime":
        return parse_datetime(value)
    return value


def _like(get: Callable[[T], Any], kind: str, pattern: str, insensitive: bool) -> Predicate[T]:
    literal_star = "\x00"
    parts = pattern.replace("\\*", literal_star).split("*")
    regex = ".*".join(re.escape(p).replace(literal_star, r"\*") for p in parts)
    compiled = re.compile(regex + r"\Z", re.DOTALL | (re.IGNORECASE if insensitive else 0))

    def matches(value: Any) -> bool:
        return value is not None and compiled.match(str(value)) is not None

    if kind == "list":
        return lambda item: any(matches(v) for v in get(item) or ())
    return lambda item: matches(get(item))


def _search(term: str, fields: Fields[T]) -> Predicate[T] | None:
    # django-rql: `search=x` is `ilike(f,*x*)` over every search field, ORed.
    pattern = term if term.startswith("*") else "*" + term
    pattern = pattern if pattern.endswith("*") else pattern + "*"
    return _any([_like(f.get, f.kind, pattern, True) for f in fields.values() if f.search])
