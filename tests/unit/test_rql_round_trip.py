"""What the client's RQL builder writes, the simulator's parser reads back unchanged."""

from __future__ import annotations

from urllib.parse import unquote

from hypothesis import given
from hypothesis import strategies as st

from syncd.connect import rql
from syncd.sim.rql import Cmp, In, parse

texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30).filter(
    lambda text: not ('"' in text and "'" in text)
)


@given(texts)
def test_any_text_value_comes_back_unchanged(value: str) -> None:
    query = unquote(rql.render_query(rql.eq("name", value), rql.ordering("id")))
    parsed = parse(query)
    assert parsed.filter == Cmp("eq", "name", value)
    assert parsed.ordering == ("id",)


@given(st.lists(texts, min_size=1, max_size=5))
def test_hostile_lists_cannot_add_conditions(values: list[str]) -> None:
    parsed = parse(unquote(rql.render_query(rql.in_("id", values))))
    assert parsed.filter == In("in", "id", tuple(values))
