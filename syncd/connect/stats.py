"""Request and retry counters of a Connect client, by method and path template."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class ClientStats:
    """Requests sent, by `(method, path template, status)` (status 0: no response), and retries,
    by `(method, path template)`. Read by tests, metrics and benchmarks."""

    requests: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    retries: Counter[tuple[str, str]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count_request(self, method: str, template: str, status: int) -> None:
        with self._lock:
            self.requests[(method, template, status)] += 1

    def count_retry(self, method: str, template: str) -> None:
        with self._lock:
            self.retries[(method, template)] += 1

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    @property
    def total_retries(self) -> int:
        return sum(self.retries.values())
