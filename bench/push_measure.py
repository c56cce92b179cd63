"""What the push benchmark measures: requests by kind, wall-clock and CPU time, one result row."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

BATCH = {"hubspot": 100, "salesforce": 200}


def kind_of(request: httpx.Request) -> str:
    """read, write or metadata, as the targets count them."""
    path = request.url.path
    if "/properties/" in path or "/describe" in path:
        return "metadata"
    if path.endswith(("/search", "/batch/read")) or "/query" in path:
        return "read"
    return "write" if request.method in ("POST", "PATCH", "PUT", "DELETE") else "read"


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Meter:
    """Wall-clock seconds and the CPU this process and the simulator use over a span."""

    def __init__(self, sim_pid: int) -> None:
        self.sim_pid = sim_pid
        self.seconds = 0.0
        self.cpu = (0.0, 0.0)

    def __enter__(self) -> Meter:
        self._start = (time.perf_counter(), time.process_time(), process_cpu(self.sim_pid))
        return self

    def __exit__(self, *exc: object) -> None:
        wall, own, sim = self._start
        self.seconds = time.perf_counter() - wall
        self.cpu = (time.process_time() - own, process_cpu(self.sim_pid) - sim)


class CountingTransport(httpx.HTTPTransport):
    """Counts requests by kind; safe to share between the push's two threads."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.counts[kind_of(request)] += 1
        return super().handle_request(request)


@dataclass
class Result:
    crm: str
    scenario: str
    contestant: str
    accounts: int
    seconds: float
    requests: dict[str, int]
    failed: int = 0
    cpu: tuple[float, float] = (0.0, 0.0)
    """CPU seconds used meanwhile by this process (both threads) and by the simulator."""
    latency_ms: float = 0.0
    """What the simulator added to every request."""

    @property
    def rate(self) -> float:
        return self.accounts / self.seconds if self.seconds else 0.0

    def cpu_ms(self) -> str:
        """CPU milliseconds per account: this process + the simulator's."""
        own, sim = (1000 * c / self.accounts if self.accounts else 0.0 for c in self.cpu)
        return f"{own:.2f}+{sim:.2f}"

    def per_batch(self, kind: str) -> float:
        batches = self.accounts / BATCH[self.crm]
        return self.requests.get(kind, 0) / batches if batches else 0.0
