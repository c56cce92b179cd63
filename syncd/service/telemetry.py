"""What `syncd run` shows the outside: metrics, the health server and sd_notify, fed by the
daemon's events through its observer seam."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from sqlalchemy import Engine

from syncd.config import Settings
from syncd.service import sdnotify
from syncd.service.health import HealthServer, Readiness
from syncd.service.metrics import Metrics
from syncd.service.observer import Observer
from syncd.store.heartbeat import State
from syncd.sync.cycle import CycleResult


class Telemetry(Observer):
    """Counts each cycle, says whether this process is the active writer, and keeps systemd told.

    The watchdog is pinged on every heartbeat (at most every 15 s) and every failed cycle:
    both prove the daemon's threads are alive, whether or not Postgres answers.
    """

    def __init__(self, metrics: Metrics, notifier: sdnotify.Notifier) -> None:
        self.metrics = metrics
        self.notifier = notifier

    def ready(self) -> None:
        self.notifier.ready()

    def cycle_finished(self, result: CycleResult) -> None:
        self.metrics.observe_cycle(result)
        self.notifier.status(f"last run {result.run_id}: {result.outcome}")

    def cycle_failed(self, error: BaseException) -> None:
        self.notifier.status(f"cycle failed: {type(error).__name__}")
        self.notifier.watchdog()

    def beat(self, state: State) -> None:
        self.metrics.set_writer(state == "active")
        self.notifier.watchdog()

    def stopping(self) -> None:
        self.metrics.set_writer(False)
        self.notifier.stopping()


@contextmanager
def telemetry(
    settings: Settings, engine: Engine, clients: list[tuple[str, httpx.Client]]
) -> Iterator[Telemetry]:
    """Metrics over `clients`, served with /healthz and /readyz on `SYNCD_HTTP_ADDR` (if set)."""
    metrics = Metrics(engine)
    for system, client in clients:
        metrics.instrument(client, system)
    readiness = Readiness(engine, settings.interval)
    with HealthServer(settings.http_addr, metrics=metrics, readiness=readiness):
        yield Telemetry(metrics, sdnotify.default())
