"""The simulators' RQL: parsing (every operator, quoting, errors) and evaluation (types, nulls,
ordering, django-rql's treatment of unknown fields)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.sim.rql import And, Cmp, Const, In, Node, Not, Or, Query, RQLError, parse
from syncd.sim.rql_filter import (
    NULLABLE_STRING_LOOKUPS,
    RANGE_LOOKUPS,
    STRING_LOOKUPS,
    Field,
    apply,
    parse_datetime,
)

COMPARISONS = ["eq", "ne", "gt", "ge", "lt", "le", "like", "ilike"]


# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("op", COMPARISONS)
def test_every_comparison_parses_in_call_and_alias_form(op: str) -> None:
    expected = Cmp(op, "account.id", "TA-1")
    assert parse(f"{op}(account.id,TA-1)").filter == expected
    assert parse(f"account.id={op}=TA-1").filter == expected


def test_shorthand_is_eq() -> None:
    assert parse("status=pending").filter == Cmp("eq", "status", "pending")


@pytest.mark.parametrize("op", ["in", "out"])
def test_lists_parse_with_parenthesized_values(op: str) -> None:
    expected = In(op, "status", ("pending", "accepted"))
    assert parse(f"{op}(status,(pending,accepted))").filter == expected
    assert parse(f"status={op}=(pending,accepted)").filter == expected
    assert parse(f"{op}(status,(pending))").filter == In(op, "status", ("pending",))


def test_logical_operators_nest() -> None:
    query = parse("and(eq(a,1),or(eq(b,2),not(eq(c,3))))")
    assert query.filter == And(
        (Cmp("eq", "a", "1"), Or((Cmp("eq", "b", "2"), Not(Cmp("eq", "c", "3")))))
    )


def test_infix_and_or_groups() -> None:
    assert parse("(a=1|b=2)&c=3").filter == And(
        (Or((Cmp("eq", "a", "1"), Cmp("eq", "b", "2"))), Cmp("eq", "c", "3"))
    )
    assert parse("(a=1;b=2)").filter == Or((Cmp("eq", "a", "1"), Cmp("eq", "b", "2")))
    assert parse("a=1,b=2").filter == And((Cmp("eq", "a", "1"), Cmp("eq", "b", "2")))


def test_top_level_terms_joined_by_ampersand_are_anded_and_directives_lifted() -> None:
    query = parse(
        "eq(status,pending)&ge(events.created.at,2025-06-01T00:00:00Z)"
        "&ordering(events.created.at,-id)&select(-account)&limit=100&offset=200&search=acme"
    )
    assert query == Query(
        filter=And(
            (Cmp("eq", "status", "pending"), Cmp("ge", "events.created.at", "2025-06-01T00:00:00Z"))
        ),
        ordering=("events.created.at", "-id"),
        select=("-account",),
        limit=100,
        offset=200,
        search="acme",
    )


def test_empty_query_and_plus_sign_in_ordering() -> None:
    assert parse("") == Query()
    assert parse("&&limit=5&") == Query(limit=5)
    assert parse("ordering(+name)").ordering == ("name",)
    assert parse("ordering()").ordering == ()
    assert parse("limit(5,10)") == Query(limit=5, offset=10)


def test_constants_null_and_empty_only_unquoted() -> None:
    assert parse("eq(parent.id,null())").filter == Cmp("eq", "parent.id", Const.NULL)
    assert parse("ne(name,empty())").filter == Cmp("ne", "name", Const.EMPTY)
    assert parse('eq(name,"null()")').filter == Cmp("eq", "name", "null()")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('"A, B & C (Holding)"', "A, B & C (Holding)"),
        ("'Smith | Jones; a=b'", "Smith | Jones; a=b"),
        ("'say \"hi\"'", 'say "hi"'),
        ('"O\'Brien"', "O'Brien"),
        (r'"back\slash\"', "back\\slash\\"),
        (r'"C:\path"', r"C:\path"),
        ('""', ""),
        ("O'Brien", "O'Brien"),
        ("Acme Corp", "Acme Corp"),
        ("m.kessler+crm@northwind.example", "m.kessler+crm@northwind.example"),
        ("2025-06-01T00:00:00+00:00", "2025-06-01T00:00:00+00:00"),
    ],
)
def test_quoted_and_unquoted_values(text: str, value: str) -> None:
    assert parse(f"eq(name,{text})").filter == Cmp("eq", "name", value)


@pytest.mark.parametrize(
    "query",
    [
        "eq(a)",
        "eq(a,b",
        "eq(a,b))",
        "eq(,b)",
        "eq(a,)",
        "frob(a,b)",
        'eq(a,"b)',
        "eq(a,b)c",
        "a",
        "1a=b",
        "a=frob=b",
        "a=in=b",
        "in(a,)",
        "limit=-1",
        "limit=ten",
        "offset=1.5",
        "ordering(a)&ordering(b)",
        "and(eq(a,b),ordering(a))",
        "not(limit=5)",
        "eq(a,null()x)",
        "limit=null()",
        "a=1,",
        "(a=1|b=2&c=3)",
    ],
)
def test_malformed_queries_raise(query: str) -> None:
    with pytest.raises(RQLError):
        parse(query)


# -- evaluation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    id: str
    name: str | None = None
    version: int = 1
    at: datetime = datetime(2025, 6, 1, tzinfo=UTC)
    tags: tuple[str, ...] = ()


FIELDS: dict[str, Field[Row]] = {
    "id": Field(lambda r: r.id, lookups=NULLABLE_STRING_LOOKUPS, ordering=True, search=True),
    "name": Field(lambda r: r.name, lookups=NULLABLE_STRING_LOOKUPS, ordering=True, search=True),
    "version": Field(lambda r: r.version, kind="int", lookups=RANGE_LOOKUPS, ordering=True),
    "at": Field(lambda r: r.at, kind="datetime", lookups=RANGE_LOOKUPS, ordering=True),
    "tags": Field(lambda r: r.tags, kind="list", lookups=frozenset({"eq", "in", "like"})),
    "plain": Field(lambda r: r.name, lookups=STRING_LOOKUPS),
    "closed": Field(lambda r: r.name, lookups=frozenset()),
}


def ids(rows: list[Row], query: str, strict: bool = False) -> list[str]:
    return [r.id for r in apply(rows, parse(query), FIELDS, strict)]


def test_integers_compare_as_numbers() -> None:
    rows = [Row("a", version=9), Row("b", version=10), Row("c", version=100)]
    assert ids(rows, "gt(version,9)") == ["b", "c"]
    assert ids(rows, "le(version,10)") == ["a", "b"]
    assert ids(rows, "in(version,(9,100))") == ["a", "c"]
    assert ids(rows, "ordering(-version)") == ["c", "b", "a"]


def test_datetimes_compare_as_instants_whatever_the_offset() -> None:
    base = datetime(2025, 6, 1, 12, tzinfo=UTC)
    rows = [Row(str(i), at=base + timedelta(hours=i)) for i in range(4)]
    assert ids(rows, "ge(at,2025-06-01T13:00:00Z)") == ["1", "2", "3"]
    assert ids(rows, "ge(at,2025-06-01T13:00:00+00:00)") == ["1", "2", "3"]
    assert ids(rows, "lt(at,2025-06-01T15:00:00+02:00)") == ["0"]
    assert ids(rows, "eq(at,2025-06-01T14:00:00)") == ["2"]
    assert ids(rows, "gt(at,2025-06-01)") == ["0", "1", "2", "3"]
    assert ids(rows, "at=ne=2025-06-01T12:00:00.000000Z") == ["1", "2", "3"]


def test_parse_datetime_reads_offsets_and_treats_naive_as_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert parse_datetime("2025-06-01T10:00:00+02:00") == datetime(2025, 6, 1, 10, tzinfo=plus_two)
    assert parse_datetime("2025-06-01T08:00:00") == datetime(2025, 6, 1, 8, tzinfo=UTC)
    assert parse_datetime("2025-06-01").tzinfo is UTC


def test_null_and_empty_constants() -> None:
    rows = [Row("a", name=None), Row("b", name=""), Row("c", name="x")]
    assert ids(rows, "eq(name,null())") == ["a"]
    assert ids(rows, "ne(name,null())") == ["b", "c"]
    assert ids(rows, "eq(name,empty())") == ["b"]
    assert ids(rows, "ne(name,empty())") == ["a", "c"]


def test_ne_and_out_match_null_like_django_exclude() -> None:
    rows = [Row("a", name=None), Row("b", name="x"), Row("c", name="y")]
    assert ids(rows, "ne(name,x)") == ["a", "c"]
    assert ids(rows, "out(name,(x,y))") == ["a"]
    assert ids(rows, "in(name,(x,y))") == ["b", "c"]


def test_like_and_ilike_wildcards() -> None:
    rows = [Row("a", name="Acme Corp"), Row("b", name="acme"), Row("c", name="Corp *Star*")]
    assert ids(rows, "like(name,Acme*)") == ["a"]
    assert ids(rows, "ilike(name,acme*)") == ["a", "b"]
    assert ids(rows, "ilike(name,*corp*)") == ["a", "c"]
    assert ids(rows, r"like(name,*\*Star\*)") == ["c"]
    assert ids(rows, "like(name,acme)") == ["b"]


def test_list_fields_match_any_element() -> None:
    rows = [Row("a", tags=("tier1",)), Row("b", tags=("tier1", "tier2")), Row("c")]
    assert ids(rows, "eq(tags,tier2)") == ["b"]
    assert ids(rows, "in(tags,(tier2,customer))") == ["b"]
    assert ids(rows, "like(tags,tier*)") == ["a", "b"]


def test_logic_combines_predicates() -> None:
    rows = [Row("a", name="x", version=1), Row("b", name="y", version=2), Row("c", version=3)]
    assert ids(rows, "or(eq(name,x),gt(version,2))") == ["a", "c"]
    assert ids(rows, "not(eq(name,x))") == ["b", "c"]
    assert ids(rows, "and(ne(name,x),lt(version,3))&ne(id,c)") == ["b"]


def test_unknown_fields_are_ignored_and_drop_out_of_or() -> None:
    rows = [Row("a", name="x"), Row("b", name="y")]
    assert ids(rows, "eq(events.updated.at,2025-01-01)") == ["a", "b"]
    assert ids(rows, "or(eq(nope,1),eq(name,x))") == ["a"]
    assert ids(rows, "not(eq(nope,1))") == ["a", "b"]
    with pytest.raises(RQLError):
        ids(rows, "eq(nope,1)", strict=True)


@pytest.mark.parametrize(
    "query",
    [
        "gt(plain,x)",  # lookup not documented for the field
        "eq(plain,null())",  # field not nullable
        "gt(name,null())",  # null() only with eq/ne
        "gt(name,empty())",
        "eq(closed,x)",  # field listed with no lookups
        "eq(version,ten)",
        "in(version,(1,x))",
        "eq(version,empty())",
        "ge(at,yesterday)",
        "ordering(plain)",
        "ordering(nope)",
    ],
)
def test_invalid_lookups_values_and_orderings_raise(query: str) -> None:
    with pytest.raises(RQLError):
        ids([Row("a")], query)


def test_ordering_is_stable_multi_key_and_puts_nulls_last_ascending() -> None:
    rows = [Row("a", name="y", version=1), Row("b", name=None, version=2)]
    rows += [Row("c", name="x", version=2), Row("d", name="x", version=1)]
    assert ids(rows, "ordering(name)") == ["c", "d", "a", "b"]
    assert ids(rows, "ordering(-name)") == ["b", "a", "c", "d"]
    assert ids(rows, "ordering(-version,name)") == ["c", "b", "d", "a"]


def test_search_matches_any_search_field_case_insensitively() -> None:
    rows = [Row("TA-1", name="Northwind"), Row("TA-2", name="Contoso"), Row("x-north")]
    assert ids(rows, "search=NORTH") == ["TA-1", "x-north"]


# -- properties ------------------------------------------------------------------------------

_props = st.sampled_from(["id", "name", "account.id", "events.created.at", "a-b_c"])
_values = st.one_of(
    # Text holding both quote characters cannot be written in RQL (no escapes): never sent.
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12).filter(
        lambda text: not ('"' in text and "'" in text)
    ),
    st.sampled_from([Const.NULL, Const.EMPTY]),
)


def _nodes() -> st.SearchStrategy[Node]:
    leaf = st.one_of(
        st.builds(Cmp, st.sampled_from(COMPARISONS), _props, _values),
        st.builds(
            In,
            st.sampled_from(["in", "out"]),
            _props,
            st.lists(_values, min_size=1, max_size=3).map(tuple),
        ),
    )
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.builds(And, st.lists(inner, min_size=2, max_size=3).map(tuple)),
            st.builds(Or, st.lists(inner, min_size=2, max_size=3).map(tuple)),
            st.builds(Not, inner),
        ),
        max_leaves=6,
    )


def _quote(value: str | Const) -> str:
    if isinstance(value, Const):
        return value.value
    # No escapes in RQL quotes: the delimiter is the quote the text does not hold.
    return f"'{value}'" if '"' in value else f'"{value}"'


def _render(node: Node) -> str:
    if isinstance(node, Cmp):
        return f"{node.op}({node.prop},{_quote(node.value)})"
    if isinstance(node, In):
        return f"{node.op}({node.prop},({','.join(_quote(v) for v in node.values)}))"
    if isinstance(node, Not):
        return f"not({_render(node.term)})"
    name = "and" if isinstance(node, And) else "or"
    return f"{name}({','.join(_render(t) for t in node.terms)})"


@given(_nodes())
def test_any_tree_rendered_with_double_quotes_parses_back(node: Node) -> None:
    assert parse(_render(node)).filter == node


@given(
    st.lists(st.integers(-50, 50), max_size=12),
    st.sampled_from(["gt", "ge", "lt", "le", "eq", "ne"]),
    st.integers(-60, 60),
)
def test_integer_comparisons_agree_with_python(values: list[int], op: str, bound: int) -> None:
    rows = [Row(f"r{i}", version=v) for i, v in enumerate(values)]
    python: dict[str, Callable[[int], bool]] = {
        "gt": lambda v: v > bound,
        "ge": lambda v: v >= bound,
        "lt": lambda v: v < bound,
        "le": lambda v: v <= bound,
        "eq": lambda v: v == bound,
        "ne": lambda v: v != bound,
    }
    expected = [r.id for r in rows if python[op](r.version)]
    assert ids(rows, f"{op}(version,{bound})") == expected
