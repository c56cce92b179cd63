"""HubSpot over HTTP: one client, every response classified once, bounded retries.

Classification (HubSpot error-handling guide; crm-apis.md §2.2, §4.1):

- 429 by `policyName`: `TEN_SECONDLY_ROLLING` waits for the window in
  `X-HubSpot-RateLimit-Interval-Milliseconds` (10 s when absent), `SECONDLY` (search) waits 1 s,
  `DAILY` stops the run: the budget comes back at midnight, not after a backoff.
- 423 locked waits at least 2 s; 477 (migration) honours `Retry-After`; 500/502/503/504/524 back
  off. All bounded by `RetryPolicy` (attempts and total time).
- 401/403 are fatal: a 401 is not by itself a signal to refresh (HubSpot's guidance), and neither
  gets better by retrying.
- A write whose answer is lost (timeout, reset after sending) raises `LostResponse` and is not
  retried here: the caller reads back. Reads and searches are retried.

The bearer token lives only in the client's default headers: never in a log line, an exception
message or a repr (a text taken from an answer goes through `redact` first, as an answer may echo
the token).

A refused certificate or a host name that does not resolve is fatal at once, naming the cause
(`syncd.connect.classify.is_misconfiguration`): repeating cannot mend it.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from typing import Any

import httpx

from syncd.connect.classify import is_misconfiguration
from syncd.connect.errors import Redactor, body_excerpt
from syncd.crm.port import CrmError
from syncd.retry import RetryPolicy, parse_retry_after

log = logging.getLogger("syncd.crm.hubspot")

RETRYABLE = frozenset({423, 429, 477, 500, 502, 503, 504, 524})
QUOTA_HEADERS = (
    "X-HubSpot-RateLimit-Max",
    "X-HubSpot-RateLimit-Remaining",
    "X-HubSpot-RateLimit-Interval-Milliseconds",
    "X-HubSpot-RateLimit-Daily",
    "X-HubSpot-RateLimit-Daily-Remaining",
)
_CANONICAL = {h.lower(): h for h in QUOTA_HEADERS}
EXCERPT = 120
"""Characters of a body quoted in an error message about its shape."""


class LostResponse(Exception):
    """The request may have reached HubSpot and been applied, but no answer came back."""


class RetriesExhausted(CrmError):
    """Still refused (429, 5xx, locked) when the retry budget ran out."""

    def __init__(self, message: str, status: int, retry_after: float | None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class RequestStats:
    """Requests sent, by kind (`read`, `write`, `search`) and HTTP status (0: no answer)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, int]] = Counter()
        self._lock = threading.Lock()  # a read and a write may run at once (push prefetch)

    def record(self, kind: str, status: int) -> None:
        with self._lock:
            self.counts[(kind, status)] += 1

    def total(self, kind: str | None = None, status: int | None = None) -> int:
        return sum(
            n
            for (k, s), n in self.counts.items()
            if (kind is None or k == kind) and (status is None or s == status)
        )

    def as_dict(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (kind, status), n in sorted(self.counts.items()):
            out.setdefault(kind, {})[str(status)] = n
        return out

    def __repr__(self) -> str:
        return f"RequestStats({self.as_dict()})"


class HubSpotHttp:
    """Sends requests to one HubSpot account and applies the rules above."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        search_rate: float | None = 5.0,
    ) -> None:
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
        )
        self.retry = retry or RetryPolicy()
        self.redact = Redactor([token])
        """Removes the token from a text (an answer may echo it)."""
        self.quota: dict[str, str] = {}
        """Latest `X-HubSpot-RateLimit-*` values seen (search answers carry none)."""
        self.stats = RequestStats()
        self._search_rate = search_rate
        self._searches: deque[float] = deque()
        self._burst_spent = False
        # httpx's client may be shared between threads; the pacing and quota state here is
        # guarded, so that a read and a write running at once (push prefetch) stay consistent.
        self._state = threading.Lock()

    def __repr__(self) -> str:
        return f"HubSpotHttp(base_url={str(self._client.base_url)!r})"

    @property
    def client(self) -> httpx.Client:
        """The underlying client, for instrumentation (metrics hooks)."""
        return self._client

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, kind: str, *, json: Any = None) -> httpx.Response:
        """One logical request: the first answer that is not retryable, after bounded retries.
        Raises `CrmError` (fatal for credentials and the daily limit), `RetriesExhausted`, or
        `LostResponse` for a write that may have been applied."""
        state = self.retry.start()
        while True:
            self._pace(kind)
            try:
                response = self._client.request(method, path, json=json)
            except httpx.TransportError as exc:
                self.stats.record(kind, 0)
                if is_misconfiguration(exc):
                    detail = self.redact(str(exc)) or "no detail"
                    raise CrmError(
                        f"HubSpot {method} {path}: {type(exc).__name__}: {detail}", fatal=True
                    ) from None
                sent = not isinstance(
                    exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
                )
                if kind == "write" and sent:
                    log.warning(
                        "hubspot_response_lost", extra={"path": path, "error": type(exc).__name__}
                    )
                    raise LostResponse(f"{method} {path}: {type(exc).__name__}") from None
                if state.wait_or_give_up():
                    continue
                raise CrmError(
                    f"HubSpot unreachable ({method} {path}: {type(exc).__name__})"
                ) from None
            self.stats.record(kind, response.status_code)
            self._note_quota(response, kind)
            status = response.status_code
            if status in (401, 403):
                message = self.redact(_auth_message(response))
                raise CrmError(message, fatal=True, status=status)
            if status not in RETRYABLE:
                return response
            wait = self._wait_for(response)
            log.info("hubspot_retry", extra={"path": path, "status": status, "wait": wait})
            if not state.wait_or_give_up(wait):
                message = (
                    f"HubSpot still answers {status} to {method} {path} after {state.attempt} tries"
                )
                raise RetriesExhausted(message, status, wait)

    def _wait_for(self, response: httpx.Response) -> float | None:
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if status == 429:
            policy = str(json_body(response).get("policyName") or "")
            if policy == "DAILY":
                raise CrmError(
                    "HubSpot's daily API limit is spent (429 DAILY); it resets at midnight in the "
                    "account's time zone. Stopping this run.",
                    fatal=True,
                    status=429,
                )
            if policy == "SECONDLY":
                return 1.0
            interval = response.headers.get("x-hubspot-ratelimit-interval-milliseconds")
            if interval and interval.isdigit():
                return int(interval) / 1000
            return retry_after if retry_after is not None else 10.0
        if status == 423:
            return max(2.0, retry_after or 0.0)
        return retry_after

    def _note_quota(self, response: httpx.Response, kind: str) -> None:
        with self._state:
            for name, value in response.headers.items():
                lower = name.lower()
                if lower.startswith("x-hubspot-ratelimit-"):
                    self.quota[_CANONICAL.get(lower, lower)] = value
            if kind != "search" and "x-hubspot-ratelimit-remaining" in response.headers:
                self._burst_spent = response.headers["x-hubspot-ratelimit-remaining"] == "0"

    def _pace(self, kind: str) -> None:
        """Stay inside the limits instead of collecting 429s: at most `search_rate` searches per
        second, and a pause for the window when the burst budget was reported spent."""
        with self._state:
            self._pace_locked(kind)

    def _pace_locked(self, kind: str) -> None:
        # Sleeping with the lock held is on purpose: the other thread waits out the window too.
        if kind == "search" and self._search_rate:
            now = self.retry.clock()
            while self._searches and self._searches[0] <= now - 1.0:
                self._searches.popleft()
            if len(self._searches) >= self._search_rate:
                wait = self._searches[0] + 1.0 - now
                self.retry.sleep(wait)
                now += wait
                self._searches.popleft()
            self._searches.append(now)
        elif kind != "search" and self._burst_spent:
            interval = self.quota.get("X-HubSpot-RateLimit-Interval-Milliseconds", "10000")
            self.retry.sleep(int(interval) / 1000 if interval.isdigit() else 10.0)
            self._burst_spent = False


def json_body(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of an answer; {} for anything else (HTML error pages, empty bodies)."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def json_object(
    response: httpx.Response, what: str, redact: Redactor | None = None
) -> dict[str, Any]:
    """The JSON object of an answer that must be one; a non-fatal CrmError (the call is retried
    on a later cycle) for anything else, so that an unreadable read is never taken for "none".
    With `redact` (the client's token scrubber), the message quotes the start of the body."""
    try:
        data = response.json()
    except ValueError:
        kind = response.headers.get("content-type") or "no content type"
        problem = f"the answer is not JSON ({response.status_code}, {kind})"
    else:
        if isinstance(data, dict):
            return data
        problem = f"the answer is not a JSON object (a {type(data).__name__})"
    quoted = f": {excerpt(response, redact)}" if redact is not None else ""
    raise CrmError(f"{what}: {problem}{quoted}")


def excerpt(response: httpx.Response, redact: Redactor) -> str:
    """The start of a body on one line, quoted, token removed: enough to tell a proxy's HTML
    page from a JSON body of another shape. Redaction runs before the cut (`body_excerpt`), so
    a token straddling it cannot leave a piece behind."""
    text = " ".join(body_excerpt(response.content, redact, 2 * EXCERPT).split())
    return repr(text if len(text) <= EXCERPT else text[:EXCERPT] + "…")


def _auth_message(response: httpx.Response) -> str:
    category = json_body(response).get("category") or "no category"
    if response.status_code == 401:
        return (
            f"HubSpot refused the token (401 {category}): check SYNCD_HUBSPOT_TOKEN "
            "(a service key or private app token for this account)"
        )
    return (
        f"HubSpot denied access (403 {category}): the token lacks a scope this call needs "
        "(crm.objects.companies/contacts read and write, crm.schemas.*.write for setup)"
    )
