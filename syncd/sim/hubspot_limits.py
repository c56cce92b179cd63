"""HubSpot's rate limits, as the simulator enforces them.

Three policies (HubSpot usage guidelines; crm-apis.md §2.2): a burst budget per rolling 10 s
(`TEN_SECONDLY_ROLLING`, 100 on Free/Starter), a daily budget (`DAILY`, 250,000 on Starter, reset
at midnight) and CRM search at 5 requests per second (`SECONDLY`). Search is exempt from the burst
budget (the spec's `x-hubspot-rate-limit-exemptions: ["ten-secondly"]`) and its responses carry no
`X-HubSpot-RateLimit-*` headers; every other response does.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from syncd.sim.base import Response
from syncd.sim.hubspot_shapes import rate_limit_body


@dataclass(frozen=True)
class RateLimits:
    """Budgets; None turns one off."""

    burst: int | None = 100
    burst_window: float = 10.0
    daily: int | None = 250_000
    search_per_second: int | None = 5


class RateLimiter:
    """Counts requests on the simulator's clock (seconds since the epoch)."""

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self._burst: deque[float] = deque()
        self._search: deque[float] = deque()
        self._day = -1
        self._daily_used = 0

    def admit(self, is_search: bool, now: float) -> Response | None:
        """Count one request; None when it may go on, else the 429 to send."""
        limits = self.limits
        day = int(now // 86_400)
        if day != self._day:
            self._day, self._daily_used = day, 0
        if limits.daily is not None and self._daily_used >= limits.daily:
            return self._refuse("DAILY", is_search, now)
        if is_search:
            if limits.search_per_second is not None:
                _expire(self._search, now - 1.0)
                if len(self._search) >= limits.search_per_second:
                    return self._refuse("SECONDLY", is_search, now)
                self._search.append(now)
        elif limits.burst is not None:
            _expire(self._burst, now - limits.burst_window)
            if len(self._burst) >= limits.burst:
                return self._refuse("TEN_SECONDLY_ROLLING", is_search, now)
            self._burst.append(now)
        self._daily_used += 1
        return None

    def headers(self, now: float) -> dict[str, str]:
        """The `X-HubSpot-RateLimit-*` headers of a non-search response."""
        limits = self.limits
        headers: dict[str, str] = {}
        if limits.burst is not None:
            _expire(self._burst, now - limits.burst_window)
            headers["X-HubSpot-RateLimit-Max"] = str(limits.burst)
            headers["X-HubSpot-RateLimit-Remaining"] = str(max(0, limits.burst - len(self._burst)))
            headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(
                int(limits.burst_window * 1000)
            )
        if limits.daily is not None:
            headers["X-HubSpot-RateLimit-Daily"] = str(limits.daily)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(
                max(0, limits.daily - self._daily_used)
            )
        return headers

    def _refuse(self, policy: str, is_search: bool, now: float) -> Response:
        headers = {} if is_search else self.headers(now)
        return Response(429, rate_limit_body(policy), headers)


def _expire(stamps: deque[float], before: float) -> None:
    while stamps and stamps[0] <= before:
        stamps.popleft()
