"""Prometheus metrics of one syncd process, on a registry of its own (tests stay isolated).

The names are an interface (the Grafana dashboard reads them); change them only with it:

| metric | type | labels |
|---|---|---|
| `syncd_cycles_total` | counter | kind, outcome |
| `syncd_cycle_duration_seconds` | histogram | kind |
| `syncd_phase_duration_seconds` | histogram | phase (pull, flags, push, writeback) |
| `syncd_records_total` | counter | phase, outcome (see `RECORD_OUTCOMES`) |
| `syncd_api_requests_total` | counter | system, method, status (HTTP code or `error`) |
| `syncd_api_quota_remaining`, `syncd_api_quota_limit` | gauge | system, window |
| `syncd_pending_tars`, `syncd_accounts_behind`, `syncd_accounts_sync_off` | gauge | (database) |
| `syncd_last_success_timestamp_seconds`, `syncd_last_cycle_timestamp_seconds` | gauge | |
| `syncd_up`, `syncd_writer` | gauge | |

The timestamps are this process's own cycles ("success" counts `partial` too: the cycle ran to
its end, and its failed records are in the ledger). With replicas, take the `max` over them.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

import httpx
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from sqlalchemy import Engine

from syncd.service import metrics_http
from syncd.service.dbprobe import DbProbe
from syncd.service.metrics_db import BacklogCollector
from syncd.sync.cycle import CycleResult

CONTENT_TYPE = CONTENT_TYPE_LATEST
PHASES = ("pull", "flags", "push", "writeback")
COMPLETED = frozenset({"success", "partial"})
"""Outcomes of a cycle that ran to its end."""

RECORD_OUTCOMES: dict[str, dict[str, str]] = {
    "pull": {
        "tars": "requests_written",
        "accounts": "accounts_written",
        "refreshed": "requests_refreshed",
        "malformed": "malformed",
        "drift": "drift",
    },
    "flags": {"linked": "linked", "changed": "changed", "malformed": "malformed"},
    "push": {
        "created": "created",
        "updated": "updated",
        "unchanged": "unchanged",
        "rejected": "rejected",
        "retry": "retry",
        "unknown": "unknown",
        "conflicts": "conflicts",
    },
    "writeback": {
        "accepted": "accepted",
        "ignored": "ignored",
        "failed": "failed",
        "released": "released",
        "read_back": "read_back",
        "account_updated": "accounts_updated",
        "fields_skipped": "fields_skipped",
        "left_pending": "left_pending",
    },
}
"""`syncd_records_total{phase, outcome}` from each phase's counts: outcome label -> count key.
Counts of a phase's records per cycle (pull's `tars`/`accounts` are rows written to the mirror;
`left_pending` sums the write-back's reasons)."""

CYCLE_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
PHASE_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


def _count(value: Any) -> int:
    """A count as a phase reports it: a number, or a dict of numbers by reason."""
    if isinstance(value, dict):
        return sum(int(v) for v in value.values())
    return int(value) if isinstance(value, int | float) else 0


class Metrics:
    """The process's metrics. With an `engine`, the backlog gauges are read at each scrape."""

    def __init__(self, engine: Engine | None = None, *, db_timeout: float = 2.0) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.cycles = Counter("syncd_cycles", "Cycles run.", ["kind", "outcome"], registry=r)
        self.cycle_seconds = Histogram(
            "syncd_cycle_duration_seconds",
            "Duration of a cycle.",
            ["kind"],
            buckets=CYCLE_BUCKETS,
            registry=r,
        )
        self.phase_seconds = Histogram(
            "syncd_phase_duration_seconds",
            "Duration of a phase of a cycle.",
            ["phase"],
            buckets=PHASE_BUCKETS,
            registry=r,
        )
        self.records = Counter(
            "syncd_records", "Records by phase and outcome.", ["phase", "outcome"], registry=r
        )
        self.api_requests = Counter(
            "syncd_api_requests",
            "HTTP requests sent, by API and answer.",
            ["system", "method", "status"],
            registry=r,
        )
        self.quota_remaining = Gauge(
            "syncd_api_quota_remaining",
            "API quota left, as last reported.",
            ["system", "window"],
            registry=r,
        )
        self.quota_limit = Gauge(
            "syncd_api_quota_limit",
            "API quota, as last reported.",
            ["system", "window"],
            registry=r,
        )
        self.last_success = Gauge(
            "syncd_last_success_timestamp_seconds",
            "When this process last finished a cycle that ran to its end (success or partial).",
            registry=r,
        )
        self.last_cycle = Gauge(
            "syncd_last_cycle_timestamp_seconds",
            "When this process last finished a cycle, whatever its outcome.",
            registry=r,
        )
        self.up = Gauge("syncd_up", "1 while the process runs.", registry=r)
        self.up.set(1)
        self.writer_gauge = Gauge(
            "syncd_writer",
            "1 while this process is the active writer (it got the writer lock at its last try).",
            registry=r,
        )
        self._instrumented: weakref.WeakSet[httpx.Client] = weakref.WeakSet()
        if engine is not None:
            r.register(BacklogCollector(DbProbe(engine, db_timeout, name="metrics")))

    def observe_cycle(
        self,
        result: CycleResult,
        *,
        seconds: float | None = None,
        finished_at: float | None = None,
    ) -> None:
        """Count a finished cycle: outcome, durations, record outcomes and timestamps.

        `seconds` is the cycle's duration when the caller measured it, else the sum of its
        phases; `finished_at` (epoch seconds) defaults to now.
        """
        counts = result.counts
        phase_seconds: dict[str, float] = dict(counts.get("seconds") or {})
        kind = result.kind
        self.cycles.labels(kind, result.outcome).inc()
        total = seconds if seconds is not None else sum(phase_seconds.values())
        self.cycle_seconds.labels(kind).observe(total)
        for phase, value in phase_seconds.items():
            self.phase_seconds.labels(phase).observe(value)
        for phase, outcomes in RECORD_OUTCOMES.items():
            phase_counts = counts.get(phase)
            if not isinstance(phase_counts, dict):
                continue  # the phase did not run in this cycle
            for outcome, key in outcomes.items():
                self.records.labels(phase, outcome).inc(_count(phase_counts.get(key, 0)))
        moment = time.time() if finished_at is None else finished_at
        self.last_cycle.set(moment)
        if result.outcome in COMPLETED:
            self.last_success.set(moment)

    def set_writer(self, holding: bool) -> None:
        """Say whether this process now runs a cycle (holds the writer lock)."""
        self.writer_gauge.set(1 if holding else 0)

    def instrument(self, client: httpx.Client, system: str) -> None:
        """Count `client`'s requests as `system` and read the quota its answers report.

        `system` is `connect`, `hubspot` or `salesforce`. Instrumenting a client twice is a no-op.
        """
        if system not in metrics_http.SYSTEMS:
            raise ValueError(f"unknown system {system!r}: one of {metrics_http.SYSTEMS}")
        if client in self._instrumented:
            return
        self._instrumented.add(client)

        def on_response(response: httpx.Response) -> None:
            method = response.request.method
            self.api_requests.labels(system, method, str(response.status_code)).inc()
            for quota in metrics_http.quotas(system, response.headers):
                if quota.remaining is not None:
                    self.quota_remaining.labels(system, quota.window).set(quota.remaining)
                if quota.limit is not None:
                    self.quota_limit.labels(system, quota.window).set(quota.limit)

        def on_error(request: httpx.Request) -> None:
            self.api_requests.labels(system, request.method, metrics_http.ERROR_STATUS).inc()

        metrics_http.install(client, on_response, on_error)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format (what GET /metrics answers)."""
        return generate_latest(self.registry)
