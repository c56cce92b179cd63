"""One pace for all the threads of a client: a 429 slows them all, and retries do not multiply.

Connect documents no rate limit (connect-api.md §5.1, §8 q.3), so a 429 is read the usual way:
too many requests, come back after `Retry-After`. When several threads share one client (pages
fetched concurrently, accepts sent concurrently), the 429 one of them gets says the others'
next requests would be refused too. So:

- the pause a throttling answer asks for (its `Retry-After`; for a 429 without one, the retry
  policy's first backoff) holds every thread of the client, not only the one that got it: the
  others wait it out instead of each collecting a 429 of its own and spending a retry on it;
- the first 429 of an episode halves the requests allowed in flight at once (never below one);
  each run of `recover_after` successes lets one more in again (additive increase,
  multiplicative decrease, as TCP does).

The request that got the answer sleeps its own backoff in the client's retry loop (at least the
pause) and then retries with `wait_turn(after_own_pause=True)`, so a lone thread waits exactly as
it would without a throttle.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

RECOVER_AFTER = 20
"""Successes in a row that let one more request in flight after a 429 lowered the limit."""


class Throttle:
    """Shared by every request of one client (thread-safe)."""

    def __init__(
        self,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        recover_after: int = RECOVER_AFTER,
    ) -> None:
        if recover_after < 1:
            raise ValueError("recover_after must be at least 1")
        self._clock = clock
        self._sleep = sleep
        self._recover_after = recover_after
        self._cond = threading.Condition()
        self._in_flight = 0
        self._limit: int | None = None
        """Requests allowed in flight; None until a 429 sets one."""
        self._peak = 1
        self._successes = 0
        self._paused_until = 0.0

    @property
    def limit(self) -> int | None:
        """The current bound on requests in flight (None: no 429 has asked for one)."""
        return self._limit

    def wait_turn(self, after_own_pause: bool = False) -> None:
        """Block until this request may go: no pause in force (unless `after_own_pause`: the
        request got the throttling answer and already slept its backoff) and a free place among
        the requests in flight."""
        with self._cond:
            remaining = self._paused_until - self._clock()
        if remaining > 0 and not after_own_pause:
            self._sleep(remaining)
        with self._cond:
            while self._limit is not None and self._in_flight >= self._limit:
                self._cond.wait()
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)

    def done(self, pause: float | None) -> None:
        """The request ended: `pause` is the seconds a throttling answer asked every thread to
        wait (None when the answer was not a throttling one)."""
        with self._cond:
            in_flight = self._in_flight
            self._in_flight -= 1
            if pause is None:
                self._succeeded()
            else:
                self._throttled(in_flight, pause)
            self._cond.notify_all()

    def _succeeded(self) -> None:
        if self._limit is None:
            return
        self._successes += 1
        if self._successes >= self._recover_after:
            self._successes = 0
            self._limit += 1
            if self._limit > self._peak:
                self._limit = None  # back above anything the callers asked for: no bound

    def _throttled(self, in_flight: int, pause: float) -> None:
        now = self._clock()
        if now >= self._paused_until:
            # The first 429 of an episode; the others answer requests sent before the pause.
            self._limit = max(1, in_flight // 2)
            self._successes = 0
        self._paused_until = max(self._paused_until, now + pause)
