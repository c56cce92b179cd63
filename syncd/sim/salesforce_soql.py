"""The SOQL the Salesforce simulator understands: enough for syncd's queries, parsed strictly.

Supported: `SELECT f, … FROM Object [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], …]
[LIMIT n]`, where `cond` combines comparisons (`= != <> < <= > >=`, `IN (…)`, `NOT IN (…)`) with
AND, OR, NOT and parentheses. Literals are quoted strings (with SOQL's backslash escapes), unquoted
datetimes (`2025-01-01T00:00:00Z`), numbers, `null`, `true` and `false`.

The select list may hold parent-to-child relationship subqueries, one level deep, as in
`SELECT Id, (SELECT Id, LastName FROM Contacts WHERE Email != null) FROM Account`: the subquery
names a child relationship (not an object) and takes WHERE, ORDER BY and LIMIT (SOQL reference,
"Relationship Queries"). A subquery inside a subquery is refused, as Salesforce refuses it.

Strictness matters more than breadth: the simulator must refuse what Salesforce refuses (an unknown
escape, an unterminated string), so that a query built by string pasting fails loudly in tests.
Escapes: SOQL reference, "Quoted String Escape Sequences".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

Literal = str | datetime | float | bool | None


class SoqlError(Exception):
    """A query Salesforce would refuse; `code` is the `errorCode` to answer with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Comparison:
    field: str
    op: str
    """One of `= != < <= > >= IN NOTIN` (`<>` is read as `!=`)."""
    value: Literal | tuple[Literal, ...]


@dataclass(frozen=True)
class BoolOp:
    op: str
    """`AND`, `OR` or `NOT` (NOT has one part)."""
    parts: tuple[Condition, ...]


Condition = Comparison | BoolOp


@dataclass(frozen=True)
class OrderKey:
    field: str
    descending: bool = False
    nulls_last: bool = False


@dataclass(frozen=True)
class Query:
    fields: tuple[str, ...]
    sobject: str
    """The object queried; in a subquery, the child relationship's name until compiled."""
    where: Condition | None = None
    order_by: tuple[OrderKey, ...] = ()
    limit: int | None = None
    subqueries: tuple[Query, ...] = ()
    """Child relationship subqueries of the select list, in order."""
    relationship: str | None = None
    """In a compiled subquery: the child relationship's name (`sobject` is then the child)."""


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
   |(?P<string>'(?:[^'\\]|\\.)*')
   |(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
   |(?P<number>-?\d+(?:\.\d+)?)
   |(?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
   |(?P<op><=|>=|!=|<>|=|<|>)
   |(?P<punct>[(),])
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


def unescape(quoted: str) -> str:
    """The value of a quoted SOQL string literal (quotes included in `quoted`)."""
    body, out, i = quoted[1:-1], [], 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        nxt = body[i + 1 : i + 2]
        if nxt.lower() in _ESCAPES and nxt:
            out.append(_ESCAPES[nxt.lower()] if nxt.isalpha() else _ESCAPES[nxt])
            i += 2
        elif nxt == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", body[i + 2 : i + 6]):
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        else:
            raise SoqlError("MALFORMED_QUERY", f"Invalid string literal {quoted!r}: bad escape")
    return "".join(out)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.lastgroup is None:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token at position {pos}")
        if match.lastgroup != "space":
            tokens.append((match.lastgroup, match.group()))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self, ahead: int = 0) -> tuple[str, str]:
        index = self.pos + ahead
        return self.tokens[index] if index < len(self.tokens) else ("end", "")

    def keyword(self, *words: str) -> bool:
        """Consume the keywords if they come next (case-insensitive)."""
        for offset, word in enumerate(words):
            kind, text = self.peek(offset)
            if kind != "ident" or text.upper() != word:
                return False
        self.pos += len(words)
        return True

    def expect_keyword(self, *words: str) -> None:
        if not self.keyword(*words):
            raise SoqlError(
                "MALFORMED_QUERY", f"expected {' '.join(words)} near {self.peek()[1]!r}"
            )

    def take(self, kind: str, text: str | None = None) -> str:
        got_kind, got = self.peek()
        if got_kind != kind or (text is not None and got != text):
            raise SoqlError("MALFORMED_QUERY", f"unexpected {got or 'end of query'!r}")
        self.pos += 1
        return got

    def query(self) -> Query:
        query = self.select(nested=False)
        if self.peek()[0] != "end":
            raise SoqlError("MALFORMED_QUERY", f"unexpected {self.peek()[1]!r} after the query")
        return query

    def select(self, nested: bool) -> Query:
        self.expect_keyword("SELECT")
        fields: list[str] = []
        subqueries: list[Query] = []
        while True:
            if self.peek() == ("punct", "(") and self.peek(1)[1].upper() == "SELECT":
                if nested:
                    raise SoqlError("MALFORMED_QUERY", "a subquery cannot hold another subquery")
                self.pos += 1
                subqueries.append(self.select(nested=True))
                self.take("punct", ")")
            else:
                fields.append(self.take("ident"))
            if self.peek() != ("punct", ","):
                break
            self.pos += 1
        self.expect_keyword("FROM")
        sobject = self.take("ident")
        where = self.disjunction() if self.keyword("WHERE") else None
        order: list[OrderKey] = []
        if self.keyword("ORDER", "BY"):
            order.append(self.order_key())
            while self.peek() == ("punct", ","):
                self.pos += 1
                order.append(self.order_key())
        limit = int(self.take("number")) if self.keyword("LIMIT") else None
        return Query(tuple(fields), sobject, where, tuple(order), limit, tuple(subqueries))

    def order_key(self) -> OrderKey:
        field = self.take("ident")
        descending = self.keyword("DESC")
        if not descending:
            self.keyword("ASC")
        nulls_last = descending
        if self.keyword("NULLS", "LAST"):
            nulls_last = True
        elif self.keyword("NULLS", "FIRST"):
            nulls_last = False
        return OrderKey(field, descending, nulls_last)

    def disjunction(self) -> Condition:
        parts = [self.conjunction()]
        while self.keyword("OR"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else BoolOp("OR", tuple(parts))

    def conjunction(self) -> Condition:
        parts = [self.unary()]
        while self.keyword("AND"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else BoolOp("AND", tuple(parts))

    def unary(self) -> Condition:
        if self.keyword("NOT"):
            return BoolOp("NOT", (self.unary(),))
        if self.peek() == ("punct", "("):
            self.pos += 1
            inner = self.disjunction()
            self.take("punct", ")")
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        field = self.take("ident")
        if self.keyword("NOT", "IN"):
            return Comparison(field, "NOTIN", self.value_list())
        if self.keyword("IN"):
            return Comparison(field, "IN", self.value_list())
        op = self.take("op")
        return Comparison(field, "!=" if op == "<>" else op, self.literal())

    def value_list(self) -> tuple[Literal, ...]:
        self.take("punct", "(")
        values = [self.literal()]
        while self.peek() == ("punct", ","):
            self.pos += 1
            values.append(self.literal())
        self.take("punct", ")")
        return tuple(values)

    def literal(self) -> Literal:
        kind, text = self.peek()
        self.pos += 1
        if kind == "string":
            return unescape(text)
        if kind == "datetime":
            return datetime.fromisoformat(text)
        if kind == "number":
            return float(text)
        if kind == "ident" and text.lower() in {"null", "true", "false"}:
            return {"null": None, "true": True, "false": False}[text.lower()]
        raise SoqlError("MALFORMED_QUERY", f"expected a value, got {text or 'end of query'!r}")


def parse(text: str) -> Query:
    """Parse one SOQL statement; SoqlError if Salesforce would refuse its syntax."""
    return _Parser(text).query()


def _compare(actual: Any, op: str, wanted: Any) -> bool:
    if op in {"IN", "NOTIN"}:
        return bool(actual in wanted) == (op == "IN")
    if op in {"=", "!="}:
        return bool(actual == wanted) == (op == "=")
    if actual is None or wanted is None:
        return False  # SOQL: a range comparison with null is never true
    ops: dict[str, Callable[[Any, Any], bool]] = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    return ops[op](actual, wanted)


def matches(cond: Condition | None, row: Mapping[str, Any]) -> bool:
    """Whether `row` (canonical field names) satisfies the condition."""
    if cond is None:
        return True
    if isinstance(cond, Comparison):
        return _compare(row.get(cond.field), cond.op, cond.value)
    if cond.op == "AND":
        return all(matches(part, row) for part in cond.parts)
    if cond.op == "OR":
        return any(matches(part, row) for part in cond.parts)
    return not matches(cond.parts[0], row)


def sort_rows(rows: Sequence[Mapping[str, Any]], order: Sequence[OrderKey]) -> list[Any]:
    """Rows sorted as ORDER BY says: stable sorts from the last key to the first."""
    result = list(rows)
    for key in reversed(order):
        present = [r for r in result if r.get(key.field) is not None]
        absent = [r for r in result if r.get(key.field) is None]
        present.sort(key=lambda r, f=key.field: r[f], reverse=key.descending)  # type: ignore[misc]
        result = present + absent if key.nulls_last else absent + present
    return result


def comparisons(cond: Condition | None) -> list[Comparison]:
    """Every comparison in a condition tree."""
    if cond is None:
        return []
    if isinstance(cond, Comparison):
        return [cond]
    return [leaf for part in cond.parts for leaf in comparisons(part)]


def rename(query: Query, resolve: Callable[[str], str]) -> Query:
    """The query with every field name replaced by `resolve(name)`: SOQL names are
    case-insensitive, so the simulator maps them to the canonical spelling once."""

    def walk(cond: Condition) -> Condition:
        if isinstance(cond, Comparison):
            return Comparison(resolve(cond.field), cond.op, cond.value)
        return BoolOp(cond.op, tuple(walk(part) for part in cond.parts))

    return Query(
        tuple(resolve(f) for f in query.fields),
        query.sobject,
        walk(query.where) if query.where is not None else None,
        tuple(OrderKey(resolve(k.field), k.descending, k.nulls_last) for k in query.order_by),
        query.limit,
        query.subqueries,
    )
