"""Retry policy shared by every HTTP client: bounded by attempts and by total time.

Backoff is exponential with full jitter, but a server's `Retry-After` always wins when it asks for
longer. Tests make retries instant by passing a `sleep` that records instead of sleeping.

A `RetryBudget` bounds the retries of a whole run on top of that: shared by the policies of every
client of the run, it refuses further retries once spent, so a storm of 429s costs at most the
budget, not `attempts - 1` per request.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime


class RetryBudget:
    """Retries allowed to one run, across every request and client whose policy holds it.

    Once spent, every retriable failure is final for the rest of the run: the records involved
    wait for the next run, whose budget starts afresh (`reset`). Thread-safe.
    """

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError("a retry budget cannot be negative")
        self.limit = limit
        self._spent = 0
        self._lock = threading.Lock()

    @property
    def spent(self) -> int:
        """Retries granted since the last reset."""
        return self._spent

    def take(self) -> bool:
        """Grant one retry (True), or refuse once the budget is spent (False)."""
        with self._lock:
            if self._spent >= self.limit:
                return False
            self._spent += 1
            return True

    def reset(self) -> None:
        """Start a new run's budget."""
        with self._lock:
            self._spent = 0

    def __repr__(self) -> str:
        return f"RetryBudget(spent={self._spent}, limit={self.limit})"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    """Tries in all, the first included."""
    max_seconds: float = 120.0
    """No retry starts once this much time has passed since the first try."""
    base: float = 0.5
    cap: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    budget: RetryBudget | None = field(default=None, compare=False)
    """The run's budget, shared with the other clients' policies; None: per-request bounds only."""

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try number `attempt + 1` (`attempt` counts from 1)."""
        jittered = random.uniform(0, min(self.cap, self.base * 2 ** (attempt - 1)))
        if retry_after is not None:
            return max(retry_after, jittered)
        return jittered

    def start(self) -> RetryState:
        return RetryState(self, self.clock())


@dataclass
class RetryState:
    """The retries of one logical request."""

    policy: RetryPolicy
    started: float
    attempt: int = 1

    def wait_or_give_up(self, retry_after: float | None = None) -> bool:
        """Sleep before the next try and return True, or return False when the budget is spent."""
        if self.attempt >= self.policy.attempts:
            return False
        delay = self.policy.backoff(self.attempt, retry_after)
        if self.policy.clock() + delay - self.started > self.policy.max_seconds:
            return False
        if self.policy.budget is not None and not self.policy.budget.take():
            return False
        self.policy.sleep(delay)
        self.attempt += 1
        return True


def parse_retry_after(value: str | None, now: Callable[[], datetime] | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3); None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now() if now else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())
