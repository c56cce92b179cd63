"""Request paths: built from segments so an id cannot escape its place, and reduced to a template
(`/tier/accounts/{id}`) for counters and logs, so metrics do not grow a label per record."""

from __future__ import annotations

import re
from urllib.parse import quote

_WORD = re.compile(r"[a-z][a-z0-9_-]*")
_NUMBER = re.compile(r"\d+")


def join_path(*segments: str | int) -> str:
    """`/a/b/c` from segments, each percent-encoded so that `/`, `?`, `#` or `..` in an id stay
    inside that segment (`join_path("tier", "accounts", ta_id, "versions", 3)`)."""
    parts = []
    for segment in segments:
        text = str(segment)
        if text in ("", ".", ".."):
            raise ValueError(f"not a usable path segment: {text!r}")
        parts.append(quote(text, safe=""))
    return "/" + "/".join(parts)


def path_template(path: str) -> str:
    """`path` with record ids as `{id}` and numbers as `{n}`.

    Only lower-case words (the collection and action names of the API) are kept as they are;
    anything else becomes `{id}`, which bounds the number of distinct templates whatever the ids.
    """
    path = path.split("?", 1)[0]
    segments = []
    for segment in path.strip("/").split("/"):
        if not segment or _WORD.fullmatch(segment):
            segments.append(segment)
        elif _NUMBER.fullmatch(segment):
            segments.append("{n}")
        else:
            segments.append("{id}")
    return "/" + "/".join(segments)
