"""The RQL builder: values never change a query's structure, and come back as they went in.

The reference parser below reads the grammar documented in `syncd.connect.rql` the way django-rql
does: one `urllib.parse.unquote` of the whole query, then quoted values as `"[^"]*"` or `'[^']*'`
with no escape (lib-rql `QUOTED_VAL`).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.connect.rql import (
    EMPTY,
    NULL,
    Comparison,
    Constant,
    Expr,
    Listing,
    Logical,
    Not,
    RQLValueError,
    Value,
    and_,
    eq,
    ge,
    gt,
    in_,
    le,
    lt,
    ne,
    not_,
    or_,
    ordering,
    out,
    render_query,
    select,
    with_paging,
)

# ---------------------------------------------------------------- reference parser


_TOKEN = re.compile(r"""(?P<quoted>"[^"]*"|'[^']*')|(?P<punct>[(),&=])|(?P<word>[^(),&="']+)""")
_CMP = {"eq", "ne", "gt", "ge", "lt", "le"}


class _Parser:
    def __init__(self, decoded: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(decoded):
            match = _TOKEN.match(decoded, position)
            assert match, f"unlexable at {position}: {decoded[position:]!r}"
            kind = match.lastgroup
            assert kind is not None
            self.tokens.append((kind, match.group()))
            position = match.end()
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def take(self, kind: str | None = None, text: str | None = None) -> str:
        assert self.i < len(self.tokens), "unexpected end"
        got_kind, got = self.tokens[self.i]
        assert kind is None or got_kind == kind, f"expected {kind}, got {got!r}"
        assert text is None or got == text, f"expected {text!r}, got {got!r}"
        self.i += 1
        return got

    def query(self) -> list[Any]:
        parts = [self.part()]
        while self.peek() == "&":
            self.take("punct", "&")
            parts.append(self.part())
        assert self.i == len(self.tokens), "trailing tokens"
        return parts

    def part(self) -> Any:
        word = self.take("word")
        if word in ("limit", "offset"):
            self.take("punct", "=")
            return (word, int(self.take("word")))
        if word in ("ordering", "select"):
            self.take("punct", "(")
            fields = [self.take("word")]
            while self.peek() == ",":
                self.take("punct", ",")
                fields.append(self.take("word"))
            self.take("punct", ")")
            return (word, tuple(fields))
        return self.expr(word)

    def expr(self, word: str | None = None) -> Any:
        word = word or self.take("word")
        self.take("punct", "(")
        if word in _CMP:
            field = self.take("word")
            self.take("punct", ",")
            result: Any = (word, field, self.value())
        elif word in ("in", "out"):
            field = self.take("word")
            self.take("punct", ",")
            self.take("punct", "(")
            values = [self.value()]
            while self.peek() == ",":
                self.take("punct", ",")
                values.append(self.value())
            self.take("punct", ")")
            result = (word, field, tuple(values))
        elif word in ("and", "or"):
            operands = [self.expr()]
            while self.peek() == ",":
                self.take("punct", ",")
                operands.append(self.expr())
            assert len(operands) >= 2
            result = (word, tuple(operands))
        elif word == "not":
            result = ("not", self.expr())
            assert result[1][0] in _CMP | {"in", "out"}, "not() around a logical operator"
        else:
            raise AssertionError(f"unknown operator {word!r}")
        self.take("punct", ")")
        return result

    def value(self) -> Any:
        kind, text = self.tokens[self.i]
        if kind == "quoted":
            self.i += 1
            return ("text", text[1:-1])
        word = self.take("word")
        if word in ("null", "empty"):
            self.take("punct", "(")
            self.take("punct", ")")
            return ("raw", word + "()")
        return ("raw", word)


def parse(wire: str) -> list[Any]:
    # django-rql: unquote (not unquote_plus) the raw query string once, then parse.
    return _Parser(unquote(wire)).query()


# ---------------------------------------------------------------- expected trees


def _value_back(token: str, like: Value) -> Any:
    """The Python value a raw token reads as, given the type that was sent."""
    if isinstance(like, Constant):
        return Constant(token)
    if isinstance(like, bool):
        return {"true": True, "false": False}[token]
    if isinstance(like, int):
        return int(token)
    if isinstance(like, float):
        return float(token)
    if isinstance(like, datetime):
        assert token.endswith("Z")
        return datetime.fromisoformat(token[:-1]).replace(tzinfo=UTC)
    assert isinstance(like, date)
    return date.fromisoformat(token)


def _same_value(parsed: Any, sent: Value) -> bool:
    kind, token = parsed
    if isinstance(sent, str):
        return bool(kind == "text" and token == sent)
    return bool(kind == "raw" and _value_back(token, sent) == sent)


def _matches(parsed: Any, expr: Expr) -> bool:
    if isinstance(expr, Comparison):
        op, field, value = parsed
        return op == expr.op and field == expr.field and _same_value(value, expr.value)
    if isinstance(expr, Listing):
        op, field, values = parsed
        return (
            op == expr.op
            and field == expr.field
            and len(values) == len(expr.values)
            and all(_same_value(p, v) for p, v in zip(values, expr.values, strict=True))
        )
    if isinstance(expr, Logical):
        op, operands = parsed
        return (
            op == expr.op
            and len(operands) == len(expr.operands)
            and all(_matches(p, e) for p, e in zip(operands, expr.operands, strict=True))
        )
    assert isinstance(expr, Not)
    return bool(parsed[0] == "not" and _matches(parsed[1], expr.operand))


# ---------------------------------------------------------------- strategies

fields = st.from_regex(r"[A-Za-z][A-Za-z0-9_.\-]{0,15}", fullmatch=True).filter(
    lambda f: f not in {"limit", "offset", "ordering", "select", "search"}
)
texts = st.text().filter(lambda t: not ('"' in t and "'" in t))
offsets = st.builds(
    timezone, st.timedeltas(min_value=-timedelta(hours=23), max_value=timedelta(hours=23))
)
aware_datetimes = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=offsets
)
values: st.SearchStrategy[Value] = st.one_of(
    texts,
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    aware_datetimes,
    st.dates(),
    st.sampled_from([NULL, EMPTY]),
)
comparisons = st.builds(
    Comparison, st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"]), fields, values
)
listings = st.builds(
    Listing,
    st.sampled_from(["in", "out"]),
    fields,
    st.lists(values, min_size=1, max_size=4).map(tuple),
)


def _combine(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    many = st.lists(children, min_size=1, max_size=4)
    return st.one_of(
        many.map(lambda es: and_(*es)), many.map(lambda es: or_(*es)), children.map(not_)
    )


expressions: st.SearchStrategy[Expr] = st.recursive(
    st.one_of(comparisons, listings), _combine, max_leaves=12
)

HOSTILE = [
    "x),or(eq(id,*",
    "a,b",
    "(x)",
    "a&limit=5",
    "&offset=0&",
    "k=v",
    "it's",
    'say "hi"',
    "100%",
    "%22",
    "%2B",
    "a+b",
    "with space",
    "  ",
    "",
    "null()",
    "empty()",
    "*",
    "\\",
    "ends with \\",
    'back\\"slash',
    "back\\'slash",
    "line\nbreak",
    "tab\there",
    "\x00",
    "Köln \u2013 Zürich \u2713 東京",
    "🙂",
    "#frag",
    "?q=1",
    "ordering(-id)",
    "'",
    '"',
]


# ---------------------------------------------------------------- properties


@given(expressions)
def test_any_expression_parses_back_to_the_same_tree(expr: Expr) -> None:
    [parsed] = parse(render_query(expr))
    assert _matches(parsed, expr)


@given(fields, st.text())
def test_any_text_value_comes_back_unchanged_or_is_refused(field: str, text: str) -> None:
    if '"' in text and "'" in text:
        with pytest.raises(RQLValueError):
            eq(field, text)
        return
    query = render_query(eq(field, text), ordering("-id"), limit=10, offset=20)
    assert parse(query) == [
        ("eq", field, ("text", text)),
        ("ordering", ("-id",)),
        ("limit", 10),
        ("offset", 20),
    ]


@given(st.lists(texts, min_size=1, max_size=5), texts)
def test_text_values_never_add_or_remove_structure(listed: list[str], compared: str) -> None:
    query = render_query(in_("a", listed), ne("b", compared), select("id"), limit=1, offset=0)
    parsed = parse(query)
    assert [p[0] for p in parsed] == ["in", "ne", "select", "limit", "offset"]
    assert parsed[0] == ("in", "a", tuple(("text", t) for t in listed))
    assert parsed[1] == ("ne", "b", ("text", compared))


@given(expressions)
def test_wire_form_uses_only_url_safe_characters(expr: Expr) -> None:
    # A raw `+` would be a space to a form decoder; quotes, spaces and `#` are not URL-safe.
    assert re.fullmatch(r"[A-Za-z0-9_.~:()\-,&=%]*", render_query(expr))


@given(aware_datetimes)
def test_datetimes_are_sent_in_utc_with_a_z_suffix(moment: datetime) -> None:
    [(_, _, (kind, token))] = parse(render_query(ge("events.created.at", moment)))
    assert kind == "raw"
    assert token.endswith("Z")
    assert "+" not in token
    back = datetime.fromisoformat(token[:-1]).replace(tzinfo=UTC)
    assert back == moment
    assert back.utcoffset() == timedelta(0)


# ---------------------------------------------------------------- examples


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_stays_one_value(text: str) -> None:
    query = render_query(eq("name", text), eq("id", "TA-1"), limit=5, offset=0)
    assert parse(query) == [
        ("eq", "name", ("text", text)),
        ("eq", "id", ("text", "TA-1")),
        ("limit", 5),
        ("offset", 0),
    ]


def test_a_typical_tar_query_reads_as_documented() -> None:
    since = datetime(2025, 6, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    query = render_query(
        and_(eq("status", "pending"), ge("events.created.at", since)),
        ordering("events.created.at", "id"),
        limit=100,
        offset=0,
    )
    assert unquote(query) == (
        'and(eq(status,"pending"),ge(events.created.at,2025-06-01T00:00:00Z))'
        "&ordering(events.created.at,id)&limit=100&offset=0"
    )


def test_text_with_a_double_quote_is_single_quoted() -> None:
    assert unquote(render_query(eq("name", 'the "best"'))) == "eq(name,'the \"best\"')"


def test_text_with_both_quote_characters_is_refused() -> None:
    with pytest.raises(RQLValueError, match="both"):
        eq("name", 'it\'s "quoted"')


def test_constants_are_unquoted_and_text_that_looks_like_them_is_quoted() -> None:
    assert unquote(render_query(eq("parent.id", NULL), ne("name", "null()"))) == (
        'eq(parent.id,null())&ne(name,"null()")'
    )


def test_plus_in_a_value_is_percent_encoded() -> None:
    query = render_query(eq("phone", "+49 40"), eq("x", 1e16))
    assert "+" not in query
    assert "%2B49%2040" in query


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(RQLValueError, match="naive"):
        gt("events.created.at", datetime(2025, 1, 1))


def test_datetimes_out_of_range_in_utc_are_refused() -> None:
    with pytest.raises(RQLValueError, match="range"):
        lt("events.created.at", datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), object(), b"bytes"])
def test_unsupported_values_are_refused(bad: Any) -> None:
    with pytest.raises(RQLValueError):
        le("version", bad)


def test_lone_surrogates_are_refused() -> None:
    with pytest.raises(RQLValueError, match="UTF-8"):
        eq("name", "\udc80")


@pytest.mark.parametrize(
    "field", ["", "1abc", "a b", "a,b", "a)", "-id", "limit", "offset", "ordering", "naïve", 3]
)
def test_unusable_field_names_are_refused(field: Any) -> None:
    with pytest.raises(RQLValueError):
        eq(field, "x")


def test_ordering_and_select_take_signed_fields_only() -> None:
    assert unquote(render_query(ordering("-events.created.at", "id"), select("-account"))) == (
        "ordering(-events.created.at,id)&select(-account)"
    )
    with pytest.raises(RQLValueError):
        ordering("id),eq(a,1")
    with pytest.raises(RQLValueError):
        select()


def test_a_query_takes_one_ordering_and_one_select_at_most() -> None:
    with pytest.raises(RQLValueError):
        render_query(ordering("id"), ordering("name"))
    with pytest.raises(RQLValueError):
        render_query(select("id"), select("name"))


def test_listings_need_a_value() -> None:
    with pytest.raises(RQLValueError):
        in_("status", [])
    assert unquote(render_query(out("status", ["ignored", "unsupported"]))) == (
        'out(status,("ignored","unsupported"))'
    )


def test_and_or_flatten_and_a_single_operand_stands_alone() -> None:
    a, b, c = eq("a", 1), eq("b", 2), eq("c", 3)
    assert and_(a) == a
    assert and_(and_(a, b), c) == Logical("and", (a, b, c))
    assert (a | b) | c == Logical("or", (a, b, c))
    with pytest.raises(RQLValueError):
        or_()


def test_not_of_and_or_is_rewritten_because_rql_not_takes_one_comparison() -> None:
    a, b = eq("a", 1), in_("b", [2])
    assert not_(and_(a, b)) == Logical("or", (Not(a), Not(b)))
    assert ~(a | b) == Logical("and", (Not(a), Not(b)))
    assert not_(not_(a)) == a
    with pytest.raises(TypeError):
        Not(and_(a, b))  # type: ignore[arg-type]


def test_with_paging_appends_limit_and_offset_once() -> None:
    assert with_paging("", 10, 0) == "limit=10&offset=0"
    assert with_paging(render_query(eq("a", "x")), 10, 20) == "eq(a,%22x%22)&limit=10&offset=20"
    with pytest.raises(RQLValueError):
        with_paging("eq(a,1)&limit=5", 10, 0)
    with pytest.raises(RQLValueError):
        with_paging("", -1, 0)


def test_render_query_refuses_things_that_are_not_query_parts() -> None:
    with pytest.raises(TypeError):
        render_query("eq(a,1)")  # type: ignore[arg-type]
