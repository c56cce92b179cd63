"""Counting the requests of an `httpx.Client` and reading the API quota its answers report.

A response event hook sees every answer, redirects included (httpx calls it for each hop), so the
counts match what the server received. httpx has no hook for a request that got no answer (its
event hooks are `request` and `response` only), so transport errors are counted by wrapping the
client's transports. A body that fails to arrive after the status line is counted under its status.

Quota headers (crm-apis.md §2.2, §2.3):
- HubSpot: `X-HubSpot-RateLimit-Max` / `-Remaining` (the rolling 10 s burst budget) and
  `-Daily` / `-Daily-Remaining`; search answers carry none, so the last values seen stay.
- Salesforce: `Sforce-Limit-Info: api-usage=used/limit` (rolling 24 h), and on newer orgs
  `api-bursts=used/limit`.
- Connect documents no rate-limit header (connect-api.md §5.1, "Rate limiting / 429"): none is
  read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx

SYSTEMS = ("connect", "hubspot", "salesforce")
ERROR_STATUS = "error"
"""The `status` label of a request that got no answer (connection refused, timeout, reset)."""


@dataclass(frozen=True)
class Quota:
    """One quota window as an answer reported it; either number may be missing."""

    window: str
    remaining: int | None
    limit: int | None


_SALESFORCE = re.compile(r"(api-usage|api-bursts)=(\d+)/(\d+)")
_SALESFORCE_WINDOWS = {"api-usage": "daily", "api-bursts": "burst"}
_HUBSPOT_WINDOWS = (
    ("burst", "x-hubspot-ratelimit-remaining", "x-hubspot-ratelimit-max"),
    ("daily", "x-hubspot-ratelimit-daily-remaining", "x-hubspot-ratelimit-daily"),
)


def _number(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() else None


def quotas(system: str, headers: httpx.Headers) -> Iterator[Quota]:
    """The quota windows `headers` report for `system` (none for Connect)."""
    if system == "hubspot":
        for window, remaining_header, limit_header in _HUBSPOT_WINDOWS:
            remaining = _number(headers.get(remaining_header))
            limit = _number(headers.get(limit_header))
            if remaining is not None or limit is not None:
                yield Quota(window, remaining, limit)
    elif system == "salesforce":
        for name, used, limit in _SALESFORCE.findall(headers.get("sforce-limit-info") or ""):
            yield Quota(_SALESFORCE_WINDOWS[name], max(0, int(limit) - int(used)), int(limit))


ResponseHook = Callable[[httpx.Response], None]
ErrorHook = Callable[[httpx.Request], None]


class ErrorCountingTransport(httpx.BaseTransport):
    """Passes every request to `inner`; calls `on_error` when no answer came back."""

    def __init__(self, inner: httpx.BaseTransport, on_error: ErrorHook) -> None:
        self.inner = inner
        self._on_error = on_error

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return self.inner.handle_request(request)
        except httpx.TransportError:
            self._on_error(request)
            raise

    def close(self) -> None:
        self.inner.close()


def install(client: httpx.Client, on_response: ResponseHook, on_error: ErrorHook) -> None:
    """Add `on_response` to the client's response hooks and count transport errors.

    The transports are private attributes of `httpx.Client` (`_transport`, and `_mounts` for
    proxies from the environment); the unit tests fail if a new httpx moves them.
    """
    client.event_hooks["response"].append(on_response)
    client._transport = ErrorCountingTransport(client._transport, on_error)
    client._mounts = {
        pattern: None if transport is None else ErrorCountingTransport(transport, on_error)
        for pattern, transport in client._mounts.items()
    }
