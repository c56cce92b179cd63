"""RQL as the Connect API reads it: a parser for the simulators (evaluation is in `rql_filter`).

The grammar follows django-rql / lib-rql (the libraries behind Connect's collections):

- comparisons `eq, ne, gt, ge, lt, le, like, ilike` as `op(prop,value)`, `prop=op=value`, or the
  shorthand `prop=value` (= `eq`);
- lists `in(prop,(a,b))` / `out(...)` (also `prop=in=(a,b)`);
- logic `and(...)`, `or(...)`, `not(...)`, infix `a&b` / `a,b` (and), `(a|b)` / `(a;b)` (or);
  several top-level expressions joined by `&` are ANDed;
- `ordering(a,-b)`, `select(a,-b)`, and the plain parameters `limit`, `offset`, `search`;
- constants `null()` and `empty()`; values in double or single quotes. As in django-rql
  (`QUOTED_VAL` is `/"[^"]*"/ | /'[^']*'/`) there is no escape: everything between the quotes is
  literal, a backslash included, and a value holding a `"` goes in single quotes.

The query arrives percent-decoded (django-rql uses `unquote`, so `+` stays a plus). Whitespace
around tokens is dropped; an unquoted value may contain inner spaces, as in django-rql.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

COMPARISONS = frozenset({"eq", "ne", "gt", "ge", "lt", "le", "like", "ilike"})
LISTS = frozenset({"in", "out"})
_PROP = re.compile(r"[A-Za-z][\w.\-]*\Z")
_DELIMS = frozenset("(),&|;=")
_PARAMS = frozenset({"limit", "offset", "search"})


class RQLError(ValueError):
    """The query cannot be parsed or applied; the simulators answer it with a 400."""


class Const(enum.Enum):
    """The RQL constants `null()` and `empty()` (only unquoted; `"null()"` is a plain string)."""

    NULL = "null()"
    EMPTY = "empty()"


Value = str | Const


@dataclass(frozen=True)
class Cmp:
    op: str
    prop: str
    value: Value


@dataclass(frozen=True)
class In:
    op: str
    """`in` or `out`."""
    prop: str
    values: tuple[Value, ...]


@dataclass(frozen=True)
class And:
    terms: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    terms: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    term: Node


Node = Cmp | In | And | Or | Not


@dataclass(frozen=True)
class Query:
    """A parsed query: a filter tree plus the top-level directives."""

    filter: Node | None = None
    ordering: tuple[str, ...] | None = None
    """Signed properties (`-x` descending), or None when the query has no `ordering(...)`."""
    select: tuple[str, ...] = ()
    limit: int | None = None
    offset: int | None = None
    search: str | None = None


# Directives are parsed like terms, then lifted out of the top-level AND chain.
@dataclass(frozen=True)
class _Directive:
    name: str
    args: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class _Tok:
    kind: str
    """One of the delimiters `(),&|;=`, `W` (bare word) or `Q` (quoted value)."""
    text: str
    pos: int


def parse(query: str) -> Query:
    """Parse a percent-decoded query string into a `Query`; raise `RQLError` if malformed."""
    parser = _Parser(_tokenize(query))
    terms = parser.top()
    return _lift(terms)


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _DELIMS:
            tokens.append(_Tok(c, c, i))
            i += 1
        elif c in "\"'":
            value, end = _read_quoted(text, i)
            tokens.append(_Tok("Q", value, i))
            i = end
        else:
            start = i
            while i < n and text[i] not in _DELIMS:
                i += 1
            word = text[start:i].strip()
            if word:
                tokens.append(_Tok("W", word, start))
    return tokens


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    end = text.find(text[start], start + 1)
    if end < 0:
        raise RQLError(f"unterminated quoted value at position {start}")
    return text[start + 1 : end], end + 1


class _Parser:
    def __init__(self, tokens: list[_Tok]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self, ahead: int = 0) -> _Tok | None:
        j = self.i + ahead
        return self.tokens[j] if j < len(self.tokens) else None

    def kind(self, ahead: int = 0) -> str | None:
        tok = self.peek(ahead)
        return tok.kind if tok else None

    def take(self, kind: str) -> _Tok:
        tok = self.peek()
        if tok is None or tok.kind != kind:
            where = f"'{tok.text}' at position {tok.pos}" if tok else "end of query"
            expected = "a name" if kind == "W" else f"'{kind}'"
            raise RQLError(f"expected {expected}, found {where}")
        self.i += 1
        return tok

    def top(self) -> list[Node | _Directive]:
        # A URL query may carry empty parameters (`?&limit=10`, `a=1&&b=2`): skip them.
        terms: list[Node | _Directive] = []
        while self.peek() is not None:
            if self.kind() == "&":
                self.i += 1
                continue
            terms.append(self.term())
            while self.kind() == ",":
                self.i += 1
                terms.append(self.term())
            if self.kind() != "&":
                break
        if self.peek() is not None:
            tok = self.tokens[self.i]
            raise RQLError(f"unexpected '{tok.text}' at position {tok.pos}")
        return terms

    def term(self) -> Node | _Directive:
        if self.kind() == "(":
            self.i += 1
            node = self.group()
            self.take(")")
            return node
        name = self.take("W").text
        if self.kind() == "(":
            return self.call(name)
        if self.kind() == "=":
            return self.shorthand(name)
        raise RQLError(f"'{name}' is neither an operator call nor a 'prop=value' term")

    def group(self) -> Node | _Directive:
        first = self.term()
        sep = self.kind()
        if sep not in ("&", ",", "|", ";"):
            return first
        terms = [first]
        while self.kind() == sep:
            self.i += 1
            terms.append(self.term())
        nodes = tuple(_node(t) for t in terms)
        return And(nodes) if sep in ("&", ",") else Or(nodes)

    def call(self, name: str) -> Node | _Directive:
        self.take("(")
        if name in COMPARISONS:
            prop = self.prop()
            self.take(",")
            result: Node | _Directive = Cmp(name, prop, self.value())
        elif name in LISTS:
            prop = self.prop()
            self.take(",")
            result = In(name, prop, self.value_list())
        elif name in ("and", "or"):
            terms = [_node(self.term())]
            while self.kind() == ",":
                self.i += 1
                terms.append(_node(self.term()))
            result = And(tuple(terms)) if name == "and" else Or(tuple(terms))
        elif name == "not":
            result = Not(_node(self.term()))
        elif name in ("ordering", "select"):
            result = _Directive(name, self.signed_props())
        elif name == "limit":
            args = [self.value_text()]
            if self.kind() == ",":
                self.i += 1
                args.append(self.value_text())
            result = _Directive("limit", tuple(args))
        else:
            raise RQLError(f"unknown operator '{name}'")
        self.take(")")
        return result

    def shorthand(self, prop: str) -> Node | _Directive:
        self.take("=")
        op_tok = self.peek()
        if op_tok and op_tok.kind == "W" and self.kind(1) == "=":
            op = op_tok.text
            self.i += 2
            if op in COMPARISONS:
                return Cmp(op, _check_prop(prop), self.value())
            if op in LISTS:
                if self.kind() != "(":
                    raise RQLError(f"'{prop}={op}=' needs a parenthesized list")
                return In(op, _check_prop(prop), self.value_list())
            raise RQLError(f"unknown operator '{op}'")
        if prop in _PARAMS:
            return _Directive(prop, (self.value_text(),))
        return Cmp("eq", _check_prop(prop), self.value())

    def prop(self) -> str:
        return _check_prop(self.take("W").text)

    def signed_props(self) -> tuple[str, ...]:
        props: list[str] = []
        if self.kind() == ")":
            return ()
        while True:
            word = self.take("W").text
            bare = word[1:] if word[:1] in "+-" else word
            _check_prop(bare)
            props.append(word[1:] if word.startswith("+") else word)
            if self.kind() != ",":
                return tuple(props)
            self.i += 1

    def value(self) -> Value:
        tok = self.peek()
        if tok is None or tok.kind not in ("W", "Q"):
            where = f"'{tok.text}' at position {tok.pos}" if tok else "end of query"
            raise RQLError(f"expected a value, found {where}")
        self.i += 1
        if tok.kind == "W" and tok.text in ("null", "empty") and self.kind() == "(":
            self.i += 1
            self.take(")")
            return Const.NULL if tok.text == "null" else Const.EMPTY
        return tok.text

    def value_text(self) -> str:
        value = self.value()
        if isinstance(value, Const):
            raise RQLError(f"{value.value} is not allowed here")
        return value

    def value_list(self) -> tuple[Value, ...]:
        # `in(p,(a,b))` is the standard form; a bare `in(p,a,b)` is accepted too.
        wrapped = self.kind() == "("
        if wrapped:
            self.i += 1
        values = [self.value()]
        while self.kind() == ",":
            self.i += 1
            values.append(self.value())
        if wrapped:
            self.take(")")
        return tuple(values)


def _check_prop(prop: str) -> str:
    if not _PROP.match(prop):
        raise RQLError(f"bad property name '{prop}'")
    return prop


def _node(term: Node | _Directive) -> Node:
    if isinstance(term, _Directive):
        raise RQLError(f"'{term.name}' is only allowed at the top level of the query")
    return term


def _lift(terms: list[Node | _Directive]) -> Query:
    """Take the directives out of the top-level AND chain; the rest is the filter."""
    nodes: list[Node] = []
    found: dict[str, tuple[str, ...]] = {}
    for term in terms:
        if isinstance(term, _Directive):
            if term.name == "ordering" and "ordering" in found:
                # django-rql: "query can contain only one ordering operation".
                raise RQLError("the query can contain only one ordering operation")
            if term.name == "limit" and len(term.args) == 2:
                found["offset"] = term.args[1:]
            found[term.name] = term.args[:1] if term.name == "limit" else term.args
        else:
            nodes.append(term)
    flt: Node | None = None
    if len(nodes) == 1:
        flt = nodes[0]
    elif nodes:
        flt = And(tuple(nodes))
    return Query(
        filter=flt,
        ordering=found.get("ordering"),
        select=found.get("select", ()),
        limit=_non_negative("limit", found.get("limit")),
        offset=_non_negative("offset", found.get("offset")),
        search=found["search"][0] if "search" in found else None,
    )


def _non_negative(name: str, args: tuple[str, ...] | None) -> int | None:
    if args is None:
        return None
    text = args[0]
    if not text.isdigit():
        raise RQLError(f"{name} must be a non-negative integer, not '{text}'")
    return int(text)
