"""The Connect HTTP client: auth, bounded retries, classified errors, `Content-Range` paging.

Built once per process on one `httpx.Client` (explicit timeouts, injectable transport). The sending
core (auth, one classification of every response, bounded retries honouring `Retry-After`) is
`syncd.connect.session`; this module adds the verbs and the paging (`syncd.connect.paging`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import httpx

from syncd.connect.paging import Page as Page
from syncd.connect.paging import PageProblem, is_last_page, make_page, parse_content_range
from syncd.connect.rql import with_paging
from syncd.connect.session import ConnectSession
from syncd.retry import RetryPolicy

DEFAULT_RETRY = RetryPolicy()


class ConnectClient(ConnectSession):
    """Client of the Connect public API (`base_url` such as
    `https://api.connect.cloudblue.com/public/v1`). Paths are relative to it: `/tier/accounts`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        page_size: int = 1000,
        retry: RetryPolicy = DEFAULT_RETRY,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        super().__init__(base_url, api_key, timeout=timeout, retry=retry, transport=transport)
        self.page_size = page_size

    def __repr__(self) -> str:
        return f"ConnectClient(base_url={self.base_url!r})"

    def get(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        """GET `path` and return its JSON (None for an empty body)."""
        return self._json("GET", path, self._request("GET", path, params=params))

    def post(self, path: str, json: Any = None) -> Any:
        """POST `json` (no body when None) to `path` and return the JSON answer. A lost answer
        raises `OutcomeUnknown`: the POST is never repeated once it may have arrived."""
        return self._json("POST", path, self._request("POST", path, json=json))

    def put(self, path: str, json: Any) -> Any:
        """PUT `json` to `path` and return the JSON answer; lost answers as for `post`."""
        return self._json("PUT", path, self._request("PUT", path, json=json))

    def iter_pages(
        self, path: str, query: str, *, start_offset: int = 0, limit: int | None = None
    ) -> Iterator[Page]:
        """The pages of collection `path` filtered by `query` (from `rql.render_query`, without
        limit/offset), from `start_offset`, asking `limit` items a page (default `page_size`).

        The next offset is this offset plus the items received, so a server that clamps the limit
        loses nothing. Stops at `total`, at an empty page, or (no total) at a short page. A body
        that is not a list, or a `Content-Range` contradicting it, raises MalformedResponse.
        """
        size = self.page_size if limit is None else limit
        offset = start_offset
        while True:
            page = self.page_at(path, query, offset, size)
            yield page
            if is_last_page(page, size):
                return
            offset = page.next_offset

    def page_at(self, path: str, query: str, offset: int, limit: int) -> Page:
        """The one page of collection `path` filtered by `query` that starts at `offset`, asking
        `limit` items (the server may send fewer). A body that is not a list, or a
        `Content-Range` contradicting it, raises MalformedResponse. Safe to call from several
        threads at once (`syncd.connect.fanout` does)."""
        if limit < 1 or offset < 0:
            raise ValueError("limit must be at least 1 and start_offset at least 0")
        response = self._request("GET", path, query=with_paging(query, limit, offset))
        items = self._json("GET", path, response)
        try:
            content_range = parse_content_range(response.headers.get("Content-Range"))
            page = make_page(offset, items, content_range)
        except PageProblem as exc:
            raise self._malformed("GET", path, response, f"offset {offset}: {exc}") from None
        return replace(page, body=response.content)

    def count(self, path: str, query: str) -> int:
        """How many items `query` matches, from the total of a `limit=0` request (OAC `count`)."""
        response = self._request("GET", path, query=with_paging(query, 0, 0))
        try:
            content_range = parse_content_range(response.headers.get("Content-Range"))
        except PageProblem as exc:
            raise self._malformed("GET", path, response, str(exc)) from None
        if content_range is None or content_range.total is None:
            raise self._malformed("GET", path, response, "no total in Content-Range")
        return content_range.total
