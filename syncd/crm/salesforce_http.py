"""Talking HTTP to Salesforce: bearer auth with one refresh, bounded retries, one classification.

Each response is classified once (docs/crm-apis.md §3.3 and §4.2):

- 2xx: returned;
- 401 `INVALID_SESSION_ID`: refresh the access token once when a refresh flow is configured and
  try again; a second 401, or no refresh flow, is fatal (simple-salesforce #272 and PR #685: a
  refresh loop without a bound recurses forever);
- 403 `REQUEST_LIMIT_EXCEEDED`: the daily allowance ("TotalRequests Limit exceeded") stops the
  run with `QuotaExceeded`, never read as an auth failure (SwiftlySalesforce #29); the concurrent
  long-running variant is retried;
- 429, 5xx, `SERVER_UNAVAILABLE`, transport errors before a request was sent: retried with the
  `RetryPolicy`, honouring `Retry-After`;
- a write whose request went out but whose answer did not come back: `ResponseLost`, so the
  caller reports UNKNOWN and settles it by reading back instead of retrying blindly;
- any other 4xx: fatal, since the request itself (mapping, API version) is wrong for this org;
- a refused certificate or a host name that does not resolve: fatal at once, naming the cause
  (`syncd.connect.classify.is_misconfiguration`), since repeating cannot mend it.

Tokens live only in this object's private attributes and the `Authorization` header: never in
logs, reprs or exception messages (an error body may echo them: `redact` takes them out of every
text of an answer that goes into a `CrmError`).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from syncd.connect.classify import is_misconfiguration
from syncd.connect.errors import Redactor
from syncd.crm.port import CrmError
from syncd.retry import RetryPolicy, RetryState, parse_retry_after

log = logging.getLogger(__name__)

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


@dataclass(frozen=True)
class ApiUsage:
    """The org's rolling 24 h API usage, from the `Sforce-Limit-Info` header."""

    used: int
    limit: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


def parse_limit_info(value: str | None) -> ApiUsage | None:
    """`api-usage=10018/100000` (newer orgs append `, api-bursts=1/750`); None if absent."""
    match = _USAGE.search(value or "")
    return ApiUsage(int(match[1]), int(match[2])) if match else None


@dataclass(frozen=True)
class ApiError:
    code: str
    message: str


def api_error(response: httpx.Response) -> ApiError:
    """The first error of Salesforce's array body; tolerant of HTML and odd shapes."""
    try:
        body = response.json()
    except ValueError:
        return ApiError("", f"HTTP {response.status_code} (no JSON body)")
    first = body[0] if isinstance(body, list) and body else body
    if isinstance(first, dict):
        code = first.get("errorCode") or first.get("error") or ""
        message = first.get("message") or first.get("error_description") or ""
        return ApiError(str(code), str(message))
    return ApiError("", f"HTTP {response.status_code}")


def json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    """The JSON object a 2xx answer must be; a non-fatal CrmError naming what is wrong (the
    records involved are retried on a later cycle) for anything else."""
    try:
        data = response.json()
    except ValueError:
        kind = response.headers.get("content-type") or "no content type"
        raise CrmError(
            f"Salesforce {what}: the answer is not JSON ({response.status_code}, {kind})"
        ) from None
    if not isinstance(data, dict):
        raise CrmError(
            f"Salesforce {what}: the answer is not a JSON object (a {type(data).__name__})"
        )
    return data


class QuotaExceeded(CrmError):
    """The org's daily API allowance is spent: stop the run, try again once usage drops."""

    def __init__(self, usage: ApiUsage | None) -> None:
        seen = f" (api-usage {usage.used}/{usage.limit})" if usage else ""
        super().__init__(
            "Salesforce API request limit exceeded: 403 REQUEST_LIMIT_EXCEEDED 'TotalRequests "
            f"Limit exceeded'{seen}. This is the org's rolling 24 h quota, not an "
            "authentication failure; the run stops and resumes once usage drops.",
            fatal=True,
            status=403,
        )


class ResponseLost(Exception):
    """A write went out but its answer never came back: it may or may not have been applied."""


@dataclass(frozen=True)
class RefreshFlow:
    """OAuth 2 refresh-token grant settings. Secrets are kept out of the repr."""

    token_url: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    refresh_token: str = field(default="", repr=False)


class SalesforceHttp:
    """One `httpx.Client` per adapter, with auth, retries, request counts and usage."""

    def __init__(
        self,
        instance_url: str,
        token: str,
        *,
        api_version: str,
        refresh: RefreshFlow | None,
        retry: RetryPolicy,
        timeout: httpx.Timeout,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self.api_version = api_version
        self._token = token
        self._first_token = token
        self._refresh = refresh
        self._retry = retry
        self._client = httpx.Client(
            base_url=instance_url.rstrip("/"),
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json"},
        )
        self.stats: Counter[str] = Counter()
        """Requests by `"<kind> <status>"` (or the transport error's name instead of a status)."""
        self.quota: ApiUsage | None = None
        self.refreshes = 0
        # A read and a write may run at once (push prefetch): counters and the token refresh
        # are guarded, and a 401 refreshes only a token nobody refreshed meanwhile.
        self._lock = threading.Lock()

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def __repr__(self) -> str:
        return f"SalesforceHttp(base_url={str(self._client.base_url)!r})"

    @property
    def base_url(self) -> str:
        return str(self._client.base_url)

    @property
    def client(self) -> httpx.Client:
        """The underlying client, for instrumentation (metrics hooks)."""
        return self._client

    def close(self) -> None:
        self._client.close()

    def redact(self, text: str) -> str:
        """`text` without the access tokens (the first and the current one), the refresh token
        or the client secret."""
        flow = self._refresh
        secrets = [self._token, self._first_token]
        if flow is not None:
            secrets += [flow.refresh_token, flow.client_secret or ""]
        return Redactor(secrets)(text)

    def _misconfigured(self, what: str, exc: httpx.TransportError) -> CrmError:
        detail = self.redact(str(exc)) or "no detail"
        return CrmError(f"Salesforce {what}: {type(exc).__name__}: {detail}", fatal=True)

    def api_path(self, path: str) -> str:
        return f"/services/data/v{self.api_version}{path}"

    def send(
        self,
        kind: str,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        write: bool = False,
    ) -> httpx.Response:
        """One logical request, retried and re-authenticated as the module docstring says."""
        state = self._retry.start()
        refreshed = False
        while True:
            token = self._token
            headers = {"Authorization": f"Bearer {token}"}
            try:
                response = self._client.request(
                    method, url, params=params, json=body, headers=headers
                )
            except httpx.TransportError as exc:
                self._count(f"{kind} {type(exc).__name__}")
                if is_misconfiguration(exc):
                    raise self._misconfigured(kind, exc) from None
                if write and not isinstance(exc, _NOT_SENT):
                    raise ResponseLost(f"{kind}: {type(exc).__name__}") from None
                if self._again(state, kind, type(exc).__name__, None):
                    continue
                raise CrmError(
                    f"Salesforce {kind}: {type(exc).__name__} after {state.attempt} tries"
                ) from None
            self._count(f"{kind} {response.status_code}")
            self.quota = parse_limit_info(response.headers.get("Sforce-Limit-Info")) or self.quota
            status = response.status_code
            if 200 <= status < 300:
                return response
            raw = api_error(response)
            error = ApiError(self.redact(raw.code), self.redact(raw.message))
            if status == 401:
                if self._refresh is not None and not refreshed:
                    refreshed = True
                    with self._lock:
                        if self._token == token:  # else the other thread just refreshed it
                            self._refresh_token()
                    continue
                raise CrmError(self._auth_message(refreshed), fatal=True, status=401)
            if status == 403 and error.code == "REQUEST_LIMIT_EXCEEDED":
                if "TotalRequests" in error.message or "Concurrent" not in error.message:
                    raise QuotaExceeded(self.quota)
            elif status == 403:
                raise CrmError(
                    f"Salesforce refused {kind} (403 {error.code}: {error.message}); "
                    "check the integration user's permissions",
                    fatal=True,
                    status=403,
                )
            elif status != 429 and status < 500:
                fatal = error.code != "INVALID_QUERY_LOCATOR"  # a cursor that expired: rerun
                raise CrmError(
                    f"Salesforce {kind} failed: {status} {error.code}: {error.message}",
                    fatal=fatal,
                    status=status,
                )
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if self._again(state, kind, str(status), retry_after):
                continue
            raise CrmError(
                f"Salesforce {kind} still failing after {state.attempt} tries: "
                f"{status} {error.code}: {error.message}",
                status=status,
            )

    def _again(self, state: RetryState, kind: str, what: str, retry_after: float | None) -> bool:
        attempt = state.attempt
        if not state.wait_or_give_up(retry_after):
            return False
        log.warning("salesforce_retry kind=%s cause=%s attempt=%d", kind, what, attempt)
        return True

    @staticmethod
    def _auth_message(refreshed: bool) -> str:
        if refreshed:
            return (
                "Salesforce rejected a freshly refreshed access token (401 INVALID_SESSION_ID); "
                "check the connected app and the integration user"
            )
        return (
            "Salesforce access token expired or invalid (401 INVALID_SESSION_ID) and no refresh "
            "flow is configured; set a new SYNCD_SALESFORCE_TOKEN or configure a refresh token"
        )

    def _refresh_token(self) -> None:
        flow = self._refresh
        assert flow is not None
        form = {"grant_type": "refresh_token", "client_id": flow.client_id}
        form["refresh_token"] = flow.refresh_token
        if flow.client_secret:
            form["client_secret"] = flow.client_secret
        try:
            response = self._client.post(flow.token_url, data=form)
        except httpx.TransportError as exc:
            self.stats[f"token {type(exc).__name__}"] += 1  # under self._lock
            if is_misconfiguration(exc):
                raise self._misconfigured("token refresh", exc) from None
            raise CrmError(f"Salesforce token refresh failed: {type(exc).__name__}") from None
        self.stats[f"token {response.status_code}"] += 1  # under self._lock
        body: Any = None
        with contextlib.suppress(ValueError):
            body = response.json()
        token = body.get("access_token") if isinstance(body, dict) else None
        if response.status_code != 200 or not isinstance(token, str) or not token:
            code = self.redact(str(body.get("error", ""))) if isinstance(body, dict) else ""
            raise CrmError(
                f"Salesforce token refresh failed: {response.status_code} {code}; check the "
                "refresh token and the connected app",
                fatal=True,
                status=response.status_code,
            )
        self._token = token
        self.refreshes += 1
        instance = body.get("instance_url")
        if isinstance(instance, str) and instance.startswith("http"):
            # The token answer names the org's current instance; follow it after a move.
            self._client.base_url = httpx.URL(instance.rstrip("/"))
        log.info("salesforce_token_refreshed refreshes=%d", self.refreshes)
