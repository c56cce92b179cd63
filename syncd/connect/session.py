"""Sending to Connect: the authenticated `httpx.Client`, bounded retries, one classification.

The core under `ConnectClient` (`syncd.connect.client`), which adds the verbs and the paging.
Every response is classified once (`syncd.connect.errors`); GETs are repeated on 408/429/5xx and
transport errors within the `RetryPolicy` budget, honouring `Retry-After`; writes are repeated
only when Connect surely did not act on them (see `syncd.connect.classify`). A throttling answer
paces every thread of the client (`syncd.connect.throttle`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from types import TracebackType
from typing import Any, Self

import httpx

from syncd.connect.classify import may_repeat_status, transport_error
from syncd.connect.errors import (
    MALFORMED_EXCERPT,
    ConnectError,
    MalformedResponse,
    OutcomeUnknown,
    Redactor,
    RetriableError,
    body_excerpt,
    error_class,
    http_error,
)
from syncd.connect.paths import path_template
from syncd.connect.stats import ClientStats
from syncd.connect.throttle import Throttle
from syncd.retry import RetryPolicy, parse_retry_after

# The client's logger name, kept when this code moved here: log filters select its events by it.
logger = logging.getLogger("syncd.connect.client")

_API_KEY_PREFIX = "ApiKey "
_API_KEY_PREFIX_RE = re.compile(r"^apikey(?:\s+|$)", re.IGNORECASE)


@dataclass(frozen=True)
class _Failure:
    error: ConnectError
    repeatable: bool
    retry_after: float | None
    reason: str
    """The status, or the transport exception's name, for logs."""
    pause: float | None = None
    """Seconds every thread of the client should hold off (a 429, or a `Retry-After`)."""


def _user_agent() -> str:
    try:
        version = metadata.version("syncd")
    except metadata.PackageNotFoundError:
        version = "0+unknown"
    return f"syncd/{version}"


def _auth_header(api_key: str) -> str:
    # The legacy SDK prepends "ApiKey " only when missing (PYSDK); tokens are pasted both ways.
    key = _API_KEY_PREFIX_RE.sub("", api_key.strip(), count=1).strip()
    if not key:
        raise ValueError("the Connect API key is empty")
    return _API_KEY_PREFIX + key


class ConnectSession:
    """One `httpx.Client` to `base_url`, with the API key, the retry policy, the request counters
    and the throttle shared by the threads using it."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        retry: RetryPolicy,
        transport: httpx.BaseTransport | None,
    ) -> None:
        header = _auth_header(api_key)
        bare = header[len(_API_KEY_PREFIX) :]
        # Redact the header, the key, and the secret after `SU-…:` wherever they might echo back.
        self._redact = Redactor([header, bare, bare.partition(":")[2]])
        self.base_url = base_url
        self.retry = retry
        self.stats = ClientStats()
        self.throttle = Throttle(retry.clock, retry.sleep)
        """Shared by the threads using this client (`syncd.connect.throttle`)."""
        self._http = httpx.Client(
            base_url=base_url,
            headers={
                "Authorization": header,
                "User-Agent": _user_agent(),
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            # GET /tier/accounts/{id} "returns the base object or redirects to a version" (SPEC).
            # httpx drops Authorization when a redirect leaves the origin.
            follow_redirects=True,
            transport=transport,
        )

    @property
    def httpx_client(self) -> httpx.Client:
        """The underlying client, for instrumentation (metrics hooks)."""
        return self._http

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        query: str | None = None,
    ) -> httpx.Response:
        """Send until a 2xx comes back (returned), or raise the classified error."""
        template = path_template(path)
        # The query is already in wire form; httpx keeps its percent-escapes as they are.
        url = path if query is None else f"{path}?{query}"
        state = self.retry.start()
        paused = False
        while True:
            outcome = self._paced_attempt(method, path, template, url, params, json, paused)
            if isinstance(outcome, httpx.Response):
                return outcome
            if isinstance(outcome.error, OutcomeUnknown):
                extra = {"method": method, "path": path, "template": template}
                logger.warning("request_outcome_unknown", extra={**extra, "reason": outcome.reason})
            if not outcome.repeatable:
                raise outcome.error
            before = self.retry.clock()
            if not state.wait_or_give_up(outcome.retry_after):
                raise outcome.error
            paused = outcome.pause is not None  # slept its own backoff: no second wait
            self.stats.count_retry(method, template)
            logger.warning(
                "request_retried",
                extra={
                    "method": method,
                    "path": path,
                    "template": template,
                    "attempt": state.attempt,
                    "reason": outcome.reason,
                    "retry_after": outcome.retry_after,
                    "waited": round(self.retry.clock() - before, 3),
                },
            )

    def _paced_attempt(
        self,
        method: str,
        path: str,
        template: str,
        url: str,
        params: Mapping[str, str | int] | None,
        json: Any,
        after_own_pause: bool,
    ) -> httpx.Response | _Failure:
        """One try, sent when the throttle lets it go; a throttling answer paces the others."""
        self.throttle.wait_turn(after_own_pause)
        outcome: httpx.Response | _Failure | None = None
        try:
            outcome = self._attempt(method, path, template, url, params, json)
        finally:
            self.throttle.done(outcome.pause if isinstance(outcome, _Failure) else None)
        return outcome

    def _attempt(
        self,
        method: str,
        path: str,
        template: str,
        url: str,
        params: Mapping[str, str | int] | None,
        json: Any,
    ) -> httpx.Response | _Failure:
        """One try: the 2xx response, or what went wrong and whether it may be repeated."""
        try:
            response = self._http.request(method, url, params=params, json=json)
        except httpx.RequestError as exc:
            self.stats.count_request(method, template, 0)
            error, repeatable = transport_error(method, path, exc, self._redact)
            return _Failure(error, repeatable, None, type(exc).__name__)
        status = response.status_code
        self.stats.count_request(method, template, status)
        if 200 <= status < 300:
            return response
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        error = self._http_error(method, path, response, retry_after)
        repeatable = isinstance(error, RetriableError) and not isinstance(error, OutcomeUnknown)
        pause = retry_after
        if pause is None and status == 429:
            # No Retry-After: every thread holds off as long as the first backoff may last.
            pause = min(self.retry.cap, self.retry.base)
        return _Failure(error, repeatable, retry_after, str(status), pause)

    def _http_error(
        self, method: str, path: str, response: httpx.Response, retry_after: float | None
    ) -> ConnectError:
        status = response.status_code
        cls = error_class(status)
        if cls is RetriableError and not may_repeat_status(method, status):
            # A 500/502/504 to a write may come after Connect acted on it.
            cls = OutcomeUnknown
        return http_error(
            method,
            path,
            status,
            response.reason_phrase,
            response.content,
            self._redact,
            retry_after=retry_after,
            cls=cls,
        )

    def _json(self, method: str, path: str, response: httpx.Response) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise self._malformed(method, path, response, "body is not JSON") from None

    def _malformed(
        self, method: str, path: str, response: httpx.Response, problem: str
    ) -> MalformedResponse:
        return MalformedResponse(
            f"{method} {path}: {response.status_code} but {self._redact(problem)}",
            method=method,
            path=path,
            status=response.status_code,
            body=body_excerpt(response.content, self._redact, MALFORMED_EXCERPT),
        )
