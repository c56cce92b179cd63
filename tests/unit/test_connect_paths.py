"""Request paths: ids stay inside their segment; templates have bounded cardinality."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.connect.paths import join_path, path_template

segments = st.text(min_size=1).filter(lambda s: s not in (".", ".."))


@given(st.lists(segments, min_size=1, max_size=5))
def test_each_segment_comes_back_whole(parts: list[str]) -> None:
    path = join_path(*parts)
    assert "?" not in path
    assert "#" not in path
    assert [unquote(p) for p in path[1:].split("/")] == parts


@pytest.mark.parametrize("bad", ["", ".", ".."])
def test_empty_and_dot_segments_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        join_path("tier", "accounts", bad)


def test_join_path_builds_the_usual_paths() -> None:
    assert join_path("tier", "accounts", "TA-1", "versions", 3) == "/tier/accounts/TA-1/versions/3"
    assert join_path("tier", "accounts", "../x?y") == "/tier/accounts/..%2Fx%3Fy"


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/tier/accounts", "/tier/accounts"),
        ("/tier/accounts/TA-4821-0937-5512", "/tier/accounts/{id}"),
        ("/tier/accounts/TA-4821-0937-5512/versions/3", "/tier/accounts/{id}/versions/{n}"),
        (
            "/tier/account-requests/TAR-4821-0937-5512-003-001/accept",
            "/tier/account-requests/{id}/accept",
        ),
        ("/products/PRD-905-211-748?select(x)", "/products/{id}"),
    ],
)
def test_templates_replace_ids_and_numbers(path: str, template: str) -> None:
    assert path_template(path) == template


@given(st.lists(st.text(alphabet=st.characters(exclude_characters="/?")), max_size=6))
def test_templates_hold_only_api_words_and_placeholders(parts: list[str]) -> None:
    template = path_template("/" + "/".join(parts))
    for segment in template[1:].split("/"):
        assert segment in ("", "{id}", "{n}") or re.fullmatch(r"[a-z][a-z0-9_-]*", segment)
