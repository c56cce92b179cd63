"""Health, readiness and metrics over HTTP (`SYNCD_HTTP_ADDR`, "host:port"; empty turns it off).

- `GET /healthz`: 200 `ok` while the process lives (a liveness probe).
- `GET /readyz`: 200 when ready, else 503; the body is one line of JSON with the reason.
- `GET /metrics`: the Prometheus text format.

Readiness: the database answers within a short timeout (2 s), and one of these holds:

1. a cycle ran to its end (outcome `success` or `partial`) no longer ago than 3 intervals;
2. a cycle is running (the newest row of `sync_runs` is `running`) and it made progress no longer
   ago than 3 intervals. Its progress is the later of its start and its progress mark
   (`syncd.service.progress_mark`: the process running it, `syncd run`, `sync` or `resync`,
   stamps the mark as the cycle reaches a page or batch boundary, at most every 15 s or half the
   interval), so a first sync that pages
   through a million accounts for hours stays ready, and a cycle hung on a request turns unready
   3 intervals after its last page or batch;
3. the process started no longer ago than 3 intervals (the first cycle may still be running).

Both runs and marks are read from the database, so they may be any process's on it: a hot
standby is ready while the active replica completes or progresses, and every replica turns
unready together when nobody does. A `partial` cycle counts, or one record the CRM keeps refusing
would make the service unready for ever. A run left `running` by a dead process stops
progressing, and counts no more once 3 intervals passed. Ages are computed by the database's
clock. Bodies never hold a setting's value: reasons are fixed texts
(`syncd.service.dbprobe`) or ages in seconds.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, text

from syncd.config import ConfigError
from syncd.service.dbprobe import DbProbe, ProbeFailed
from syncd.service.metrics import CONTENT_TYPE, Metrics
from syncd.service.progress_mark import MARK

logger = logging.getLogger(__name__)

INTERVALS = 3
"""How many intervals a completed cycle, or the last progress of a running one, keeps the service
ready."""

# One round trip, two ages by the database's clock, each read off the `started_at` index's newest
# entries. Runs are serialised by the writer lock (its holder marks the runs of dead processes
# `aborted` before starting its own), so the newest completed run is the newest finished one, and
# a run is running only if it is the newest of all: one row to look at, however idle the daemon.
# Its progress is its start or its mark, whichever is later (GREATEST skips the NULL of a missing
# mark); a mark naming another run does not count.
READINESS_AGES = text(
    """
    SELECT
        (SELECT extract(epoch FROM now() - finished_at)
         FROM sync_runs
         WHERE outcome IN ('success', 'partial') AND finished_at IS NOT NULL
         ORDER BY started_at DESC
         LIMIT 1) AS completed_age,
        (SELECT CASE WHEN r.outcome = 'running'
                THEN extract(epoch FROM now() - GREATEST(r.started_at, m.updated_at)) END
         FROM sync_runs AS r
         LEFT JOIN sync_cursors AS m ON m.name = :mark AND m.value = CAST(r.id AS text)
         ORDER BY r.started_at DESC
         LIMIT 1) AS progress_age
    """
)


def parse_http_addr(value: str) -> tuple[str, int] | None:
    """`host:port` (`[v6]:port`; an empty host listens on every interface) -> (host, port);
    None when `value` is empty (the listener is off). ConfigError names the setting."""
    value = value.strip()
    if not value:
        return None
    host, sep, port = value.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    # An IPv6 host needs its brackets: in `::1:9108` the port is ambiguous.
    stray = "[" in host or "]" in host or (":" in host and not bracketed)
    if not sep or not port.isdigit() or int(port) > 65535 or stray:
        raise ConfigError(
            f"SYNCD_HTTP_ADDR: expected host:port such as 127.0.0.1:9108, got {value!r}"
        )
    return host, int(port)


@dataclass(frozen=True)
class ReadyState:
    ready: bool
    reason: str
    last_success_age_seconds: float | None = None
    running_progress_age_seconds: float | None = None
    """Seconds since the running cycle last progressed; None (and left out of the body) when no
    cycle is running."""

    def body(self) -> bytes:
        fields = asdict(self)
        if self.running_progress_age_seconds is None:
            del fields["running_progress_age_seconds"]
        return json.dumps(fields, separators=(", ", ": ")).encode() + b"\n"


def _age(value: Decimal | float | None) -> float | None:
    return None if value is None else max(0.0, float(value))


def _readiness_ages(conn: Connection) -> tuple[float | None, float | None]:
    row = conn.execute(READINESS_AGES, {"mark": MARK}).one()
    return _age(row.completed_age), _age(row.progress_age)


class Readiness:
    """Decides /readyz, as the module docstring says. `clock` is monotonic seconds."""

    def __init__(
        self,
        engine: Engine,
        interval: float,
        *,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = INTERVALS * interval
        self.probe = DbProbe(engine, timeout, name="readiness")
        self.clock = clock
        self.started = clock()

    def check(self) -> ReadyState:
        """Ask the database, then apply `decide`."""
        try:
            completed, progress = self.probe.run(_readiness_ages)
        except ProbeFailed as exc:
            return ReadyState(False, str(exc))
        return decide(completed, self.clock() - self.started, self.limit, progress_age=progress)


def decide(
    age: float | None, uptime: float, limit: float, *, progress_age: float | None = None
) -> ReadyState:
    """Ready when a cycle completed `age` seconds ago with `age <= limit`; or a cycle is running
    that progressed `progress_age` seconds ago with `progress_age <= limit` (None: no cycle is
    running); or, whatever the ages, while the process is younger than `limit` (`uptime`)."""
    rounded = None if age is None else round(age, 1)
    progress = None if progress_age is None else round(progress_age, 1)
    if age is not None and age <= limit:
        return ReadyState(True, "a cycle completed within 3 intervals", rounded, progress)
    if progress_age is not None and progress_age <= limit:
        return ReadyState(
            True, "a cycle is running and progressed within 3 intervals", rounded, progress
        )
    if uptime < limit:
        return ReadyState(True, "starting: within 3 intervals of start", rounded, progress)
    if progress_age is not None:
        return ReadyState(
            False,
            f"a cycle is running but made no progress for {progress_age:.0f}s, "
            f"over 3 intervals ({limit:g}s)",
            rounded,
            progress,
        )
    if age is None:
        return ReadyState(False, "no cycle has completed yet")
    return ReadyState(
        False, f"last completed cycle {age:.0f}s ago, over 3 intervals ({limit:g}s)", rounded
    )


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("http_request", extra={"line": format % args})

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(200, b"ok\n", "text/plain; charset=utf-8")
        elif path == "/readyz":
            state = self.server.ready()
            self._send(200 if state.ready else 503, state.body(), "application/json")
        elif path == "/metrics" and self.server.metrics is not None:
            self._send(200, self.server.metrics.exposition(), CONTENT_TYPE)
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    metrics: Metrics | None
    readiness: Readiness | None

    def ready(self) -> ReadyState:
        if self.readiness is None:
            return ReadyState(True, "no readiness checks configured")
        return self.readiness.check()


class _Server6(_Server):
    address_family = socket.AF_INET6


class HealthServer:
    """The listener, served from a daemon thread. `addr` empty: start() and stop() do nothing."""

    def __init__(
        self, addr: str, *, metrics: Metrics | None = None, readiness: Readiness | None = None
    ) -> None:
        self.bind = parse_http_addr(addr)
        self.metrics = metrics
        self.readiness = readiness
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.bind is not None

    @property
    def address(self) -> tuple[str, int] | None:
        """The bound (host, port), once started: port 0 asks for a free one."""
        if self._server is None:
            return None
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str | None:
        address = self.address
        if address is None:
            return None
        host, port = address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> HealthServer:
        """Listen and serve; ConfigError when the address cannot be bound."""
        if self.bind is None or self._server is not None:
            return self
        host, port = self.bind
        cls = _Server6 if ":" in host else _Server
        try:
            server = cls((host, port), _Handler)
        except OSError as exc:
            raise ConfigError(
                f"SYNCD_HTTP_ADDR: cannot listen on {host}:{port}: {exc.strerror}"
            ) from None
        server.metrics = self.metrics
        server.readiness = self.readiness
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="syncd-http",
            daemon=True,
        )
        self._thread.start()
        logger.info("http_listening", extra={"address": self.url})
        return self

    def stop(self) -> None:
        """Stop serving and close the socket. Safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
        server.server_close()

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
