"""RQL query builder for Connect collections, with values that cannot change a query's structure.

Connect reads RQL from the raw query string with django-rql / lib-rql (DJRQL `dj_rql/drf/_utils.py`
calls `urllib.parse.unquote` once, not `unquote_plus`, then parses with a Lark grammar). This
module emits a strict subset of that grammar, so that the simulator's parser
(`syncd/sim/rql.py`) only has to accept what is written here.

Grammar of what is emitted, as the server sees it after ONE `urllib.parse.unquote`::

    query        = part *( "&" part )                 ; parts are ANDed
    part         = expr | ordering | select | paging
    expr         = comparison | listing | logical | negation
    comparison   = cmp-op "(" field "," value ")"
    cmp-op       = "eq" | "ne" | "gt" | "ge" | "lt" | "le"
    listing      = list-op "(" field "," "(" value *( "," value ) ")" ")"
    list-op      = "in" | "out"
    logical      = log-op "(" expr "," expr *( "," expr ) ")"   ; always two or more operands
    log-op       = "and" | "or"
    negation     = "not" "(" ( comparison | listing ) ")"      ; never around and/or
    ordering     = "ordering" "(" signed-field *( "," signed-field ) ")"   ; at most once
    select       = "select" "(" signed-field *( "," signed-field ) ")"     ; at most once
    signed-field = [ "-" ] field
    paging       = "limit=" 1*DIGIT | "offset=" 1*DIGIT       ; last, limit before offset
    field        = ALPHA *( ALPHA | DIGIT | "_" | "-" | "." )  ; ASCII only; never limit,
                                                              ; offset, ordering, select, search
    value        = dq-string | sq-string | number | boolean | datetime | date
                 | "null()" | "empty()"
    dq-string    = DQUOTE *( any char but DQUOTE ) DQUOTE     ; text without a DQUOTE
    sq-string    = "'" *( any char but "'" ) "'"              ; text with a DQUOTE, without "'"
    number       = [ "-" ] 1*DIGIT [ "." 1*DIGIT ] [ ( "e" | "E" ) ( "+" | "-" ) 1*DIGIT ]
    boolean      = "true" | "false"
    datetime     = YYYY "-" MM "-" DD "T" hh ":" mm ":" ss [ "." 6DIGIT ] "Z"   ; always UTC
    date         = YYYY "-" MM "-" DD

Rules a parser relies on:

* Every Python `str` value is emitted quoted, even `pending`, so a quoted token is always text and
  never `null()`, `empty()`, a number or a keyword. Inside quotes nothing is special: django-rql's
  `QUOTED_VAL` is `/"[^"]*"/ | /'[^']*'/` and its `remove_quotes` drops the first and last
  character, so there is no escape. `&`, `,`, `(`, `)`, `=`, `*`, `\\`, spaces and newlines in a
  quoted value are literal. Text holding both quote characters cannot be written and is refused
  with `RQLValueError`.
* Unquoted tokens (numbers, booleans, dates, `null()`, `empty()`) never contain a quote, comma,
  parenthesis, `&` or `=`.

Wire form (what `render_query` returns, ready to follow `?`): inside values, and for the quote
delimiters themselves, every byte of the UTF-8 text except `A-Z a-z 0-9 _ . - ~ :` is
percent-encoded (`"` is `%22`, `'` is `%27`, `+` is `%2B`, `&` is `%26`, space is `%20`);
structure characters `( ) , & = -` and field names are sent as they are. Decoding once with
`urllib.parse.unquote` gives the grammar above.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from syncd.connect.rql_values import EMPTY as EMPTY
from syncd.connect.rql_values import NULL as NULL
from syncd.connect.rql_values import Constant as Constant
from syncd.connect.rql_values import RQLValueError as RQLValueError
from syncd.connect.rql_values import Value as Value
from syncd.connect.rql_values import check_field, render_value

CmpOp = Literal["eq", "ne", "gt", "ge", "lt", "le"]
ListOp = Literal["in", "out"]
LogOp = Literal["and", "or"]


class Expr:
    """A filter expression. Combine with `&`, `|` and `~`, or with `and_`, `or_`, `not_`."""

    def render(self) -> str:
        """This expression in wire form."""
        raise NotImplementedError

    def __and__(self, other: Expr) -> Expr:
        return and_(self, other)

    def __or__(self, other: Expr) -> Expr:
        return or_(self, other)

    def __invert__(self) -> Expr:
        return not_(self)


@dataclass(frozen=True)
class Comparison(Expr):
    op: CmpOp
    field: str
    value: Value

    def __post_init__(self) -> None:
        check_field(self.field)
        render_value(self.value)  # refuse a bad value when built, not when sent

    def render(self) -> str:
        return f"{self.op}({self.field},{render_value(self.value)})"


@dataclass(frozen=True)
class Listing(Expr):
    op: ListOp
    field: str
    values: tuple[Value, ...]

    def __post_init__(self) -> None:
        check_field(self.field)
        # The grammar needs at least one value: `in(f,())` does not parse.
        if not self.values:
            raise RQLValueError(f"{self.op}() needs at least one value")
        for value in self.values:
            render_value(value)

    def render(self) -> str:
        return f"{self.op}({self.field},({','.join(render_value(v) for v in self.values)}))"


@dataclass(frozen=True)
class Logical(Expr):
    op: LogOp
    operands: tuple[Expr, ...]

    def __post_init__(self) -> None:
        if len(self.operands) < 2:
            raise RQLValueError(f"{self.op}() needs two or more operands")

    def render(self) -> str:
        return f"{self.op}({','.join(e.render() for e in self.operands)})"


@dataclass(frozen=True)
class Not(Expr):
    # lib-rql / django-rql: `not_op: "not" "(" expr_term ")"`, so and/or cannot be negated
    # directly; `not_` pushes the negation inwards instead.
    operand: Comparison | Listing

    def __post_init__(self) -> None:
        if not isinstance(self.operand, Comparison | Listing):
            raise TypeError("Not() takes a comparison or a listing; use not_() for the rest")

    def render(self) -> str:
        return f"not({self.operand.render()})"


def eq(field: str, value: Value) -> Comparison:
    """`field` equals `value` (exact match: `*` is not a wildcard here)."""
    return Comparison("eq", field, value)


def ne(field: str, value: Value) -> Comparison:
    """`field` differs from `value`."""
    return Comparison("ne", field, value)


def gt(field: str, value: Value) -> Comparison:
    """`field` greater than `value`."""
    return Comparison("gt", field, value)


def ge(field: str, value: Value) -> Comparison:
    """`field` greater than or equal to `value`."""
    return Comparison("ge", field, value)


def lt(field: str, value: Value) -> Comparison:
    """`field` less than `value`."""
    return Comparison("lt", field, value)


def le(field: str, value: Value) -> Comparison:
    """`field` less than or equal to `value`."""
    return Comparison("le", field, value)


def in_(field: str, values: Iterable[Value]) -> Listing:
    """`field` is one of `values` (at least one)."""
    return Listing("in", field, tuple(values))


def out(field: str, values: Iterable[Value]) -> Listing:
    """`field` is none of `values` (at least one)."""
    return Listing("out", field, tuple(values))


def _logical(op: LogOp, exprs: tuple[Expr, ...]) -> Expr:
    if not exprs:
        raise RQLValueError(f"{op}_() needs at least one expression")
    flat: list[Expr] = []
    for expr in exprs:
        if not isinstance(expr, Expr):
            raise TypeError(f"not an RQL expression: {type(expr).__name__}")
        if isinstance(expr, Logical) and expr.op == op:
            flat.extend(expr.operands)
        else:
            flat.append(expr)
    return flat[0] if len(flat) == 1 else Logical(op, tuple(flat))


def and_(*exprs: Expr) -> Expr:
    """All of `exprs`; one expression is returned as it is."""
    return _logical("and", exprs)


def or_(*exprs: Expr) -> Expr:
    """Any of `exprs`; one expression is returned as it is."""
    return _logical("or", exprs)


def not_(expr: Expr) -> Expr:
    """The negation of `expr`. RQL's `not()` takes only a comparison or a listing, so the
    negation of and/or is rewritten with De Morgan's laws, and a double negation cancels."""
    if isinstance(expr, Not):
        return expr.operand
    if isinstance(expr, Comparison | Listing):
        return Not(expr)
    if isinstance(expr, Logical):
        flipped: LogOp = "or" if expr.op == "and" else "and"
        return _logical(flipped, tuple(not_(e) for e in expr.operands))
    raise TypeError(f"not an RQL expression: {type(expr).__name__}")


@dataclass(frozen=True)
class Ordering:
    fields: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.fields:
            raise RQLValueError("ordering() needs at least one field")
        for name in self.fields:
            check_field(name, signed=True)

    def render(self) -> str:
        return f"ordering({','.join(self.fields)})"


@dataclass(frozen=True)
class Select:
    fields: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.fields:
            raise RQLValueError("select() needs at least one field")
        for name in self.fields:
            check_field(name, signed=True)

    def render(self) -> str:
        return f"select({','.join(self.fields)})"


def ordering(*fields: str) -> Ordering:
    """Sort by `fields`; a leading `-` sorts that field descending."""
    return Ordering(tuple(fields))


def select(*fields: str) -> Select:
    """Ask for `fields` in the response; a leading `-` leaves that field out."""
    return Select(tuple(fields))


def _paging(limit: int | None, offset: int | None) -> list[str]:
    parts = []
    for name, number in (("limit", limit), ("offset", offset)):
        if number is None:
            continue
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise RQLValueError(f"{name} must be a non-negative integer")
        parts.append(f"{name}={number}")
    return parts


def render_query(
    *parts: Expr | Ordering | Select, limit: int | None = None, offset: int | None = None
) -> str:
    """The query string (without `?`) for filters, at most one ordering and one select, then
    `limit=N&offset=M` when given. Filters are joined with `&`, which RQL reads as AND."""
    filters = [p.render() for p in parts if isinstance(p, Expr)]
    orderings = [p.render() for p in parts if isinstance(p, Ordering)]
    selects = [p.render() for p in parts if isinstance(p, Select)]
    if len(filters) + len(orderings) + len(selects) != len(parts):
        raise TypeError("render_query takes expressions, ordering() and select() only")
    # django-rql refuses a second ordering ("query can contain only one ordering operation").
    if len(orderings) > 1 or len(selects) > 1:
        raise RQLValueError("at most one ordering() and one select() per query")
    return "&".join([*filters, *orderings, *selects, *_paging(limit, offset)])


_PAGING_PART = re.compile(r"(?:^|&)(?:limit|offset)=")


def with_paging(query: str, limit: int, offset: int) -> str:
    """`query` (from `render_query`, without paging) followed by `limit=…&offset=…`."""
    if _PAGING_PART.search(query):
        raise RQLValueError("query already holds limit= or offset=; paging is added here")
    paging = "&".join(_paging(limit, offset))
    return f"{query}&{paging}" if query else paging
