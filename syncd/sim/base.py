"""What every simulator shares: an HTTP/1.1 server on loopback, a request log, fault injection.

A simulator is a `SimApp` (routing and state) served by a `SimServer` (threads, sockets, faults).
Faults come two ways: scripted (`faults.inject(Fault(...), times=3)`, matched in order) for exact
tests, and random rates (`faults.rate_429 = 0.3`) drawn from a seeded generator for soak runs.
"""

from __future__ import annotations

import json
import random
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    """The raw query string, percent-decoded (`unquote`, not `unquote_plus`, as django-rql does)."""
    headers: dict[str, str]
    body: bytes
    raw_query: str = ""
    """The query string as sent, still percent-encoded: for APIs whose parameters may hold `&`,
    `=` or `+` (a SOQL `q=` with quoted literals), parse this with `urllib.parse.parse_qs`."""

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    """Bytes sent as they are (for broken JSON, HTML error pages); `body` is ignored then."""

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        if self.body is None:
            return b""
        return json.dumps(self.body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    query: str
    body: bytes
    status: int
    """The status sent; 0 when no response was sent (dropped or reset)."""
    at: float
    fault: str | None = None

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class Fault:
    """One injected fault. `match` is a regex searched in `"METHOD /path?query"`."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    latency: float = 0.0
    drop_response: bool = False
    """Apply the request, then close the connection without answering."""
    reset: bool = False
    """Close the connection without reading or applying the request."""
    match: str | None = None
    name: str = "fault"


class Faults:
    """Scripted faults (consumed in order) and random ones (seeded rates)."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._scripted: list[list[Any]] = []  # [fault, remaining]
        self.rate_429 = 0.0
        self.retry_after: str | None = "1"
        self.retry_after_share = 1.0
        """Share of the random 429s that carry `Retry-After`; the others (`random_429_bare`)
        carry none, so the client falls back on its own backoff."""
        self.rate_5xx = 0.0
        self.rate_reset = 0.0
        self.rate_drop_write = 0.0
        self.latency = 0.0
        self.spike_rate = 0.0
        self.spike_latency = 0.0

    def inject(self, fault: Fault, times: int = 1) -> None:
        with self._lock:
            self._scripted.append([fault, times])

    def clear(self) -> None:
        with self._lock:
            self._scripted.clear()
            self.rate_429 = self.rate_5xx = self.rate_reset = self.rate_drop_write = 0.0
            self.latency = self.spike_rate = self.spike_latency = 0.0
            self.retry_after_share = 1.0

    def pending(self) -> int:
        with self._lock:
            return sum(remaining for _, remaining in self._scripted)

    def draw(self, line: str, is_write: bool) -> Fault | None:
        with self._lock:
            for entry in self._scripted:
                fault, remaining = entry
                if remaining > 0 and (fault.match is None or re.search(fault.match, line)):
                    entry[1] -= 1
                    if entry[1] == 0:
                        self._scripted.remove(entry)
                    return fault  # type: ignore[no-any-return]
            return self._random(is_write)

    def _random(self, is_write: bool) -> Fault | None:
        latency = self.latency
        if self.spike_rate and self._rng.random() < self.spike_rate:
            latency += self.spike_latency
        roll = self._rng.random()
        if roll < self.rate_429:
            # Drawn only when some 429s go bare, so seeded runs of the default stay the same.
            if self.retry_after and (
                self.retry_after_share >= 1 or self._rng.random() < self.retry_after_share
            ):
                headers = {"Retry-After": self.retry_after}
                return Fault(status=429, headers=headers, latency=latency, name="random_429")
            return Fault(status=429, latency=latency, name="random_429_bare")
        roll -= self.rate_429
        if roll < self.rate_5xx:
            return Fault(status=self._rng.choice((500, 502, 503, 504)), latency=latency, name="5xx")
        roll -= self.rate_5xx
        if roll < self.rate_reset:
            return Fault(reset=True, latency=latency, name="reset")
        roll -= self.rate_reset
        if is_write and roll < self.rate_drop_write:
            return Fault(drop_response=True, latency=latency, name="drop")
        return Fault(latency=latency, name="latency") if latency else None


class SimApp:
    """Routing and state of one simulator. Subclasses fill `routes` and the error shapes."""

    name = "sim"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Response]]] = []

    def route(self, method: str, pattern: str, handler: Callable[..., Response]) -> None:
        self.routes.append((method, re.compile(f"^{pattern}$"), handler))

    def authorize(self, request: Request) -> Response | None:
        """None when the request may go on, else the refusal to send."""
        return None

    def error_response(self, status: int, headers: dict[str, str]) -> Response:
        """The body this API sends with an injected status (429, 5xx)."""
        return Response(status, {"error": "injected"}, headers)

    def not_found(self, request: Request) -> Response:
        return Response(404, {"error": f"no route for {request.method} {request.path}"})

    def is_write(self, method: str) -> bool:
        return method in {"POST", "PUT", "PATCH", "DELETE"}

    def dispatch(self, request: Request) -> Response:
        refusal = self.authorize(request)
        if refusal is not None:
            return refusal
        for method, pattern, handler in self.routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                with self.lock:
                    return handler(request, **match.groupdict())
        return self.not_found(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms per request on Linux loopback).
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log replaces the stderr access log

    def _handle(self) -> None:
        sim = self.server.sim
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(
            method=self.command,
            path=parts.path,
            query=unquote(parts.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            raw_query=parts.query,
        )
        line = f"{request.method} {request.path}?{request.query}"
        fault = sim.faults.draw(line, sim.app.is_write(request.method))
        if fault and fault.latency:
            time.sleep(fault.latency)
        if fault and fault.reset:
            sim.log(request, 0, fault.name)
            self._reset()
            return
        if fault and fault.status:
            response = sim.app.error_response(fault.status, dict(fault.headers))
            if isinstance(fault.body, bytes):
                response.raw = fault.body  # e.g. a proxy's HTML error page
            elif fault.body is not None:
                response.body = fault.body
        else:
            response = sim.app.dispatch(request)
        if fault and fault.drop_response:
            sim.log(request, 0, fault.name)
            self._reset()
            return
        sim.log(request, response.status, fault.name if fault else None)
        payload = response.encode()
        self.send_response(response.status)
        headers = {"Content-Type": "application/json", **response.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _reset(self) -> None:
        # SO_LINGER 0 turns close() into a TCP RST: the client sees a connection reset.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sim: SimServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (its timeout is shorter than an injected latency) has closed the
        # connection by the time the answer is written: expected, not worth a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class SimServer:
    """Serves one `SimApp` on loopback, in a background thread or in the foreground."""

    def __init__(self, app: SimApp, port: int = 0, host: str = "127.0.0.1", seed: int = 0) -> None:
        self.app = app
        self.faults = Faults(seed)
        self.requests: list[LoggedRequest] = []
        self.keep_log = True
        self._log_lock = threading.Lock()
        self._server = _Server((host, port), _Handler)
        self._server.sim = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def log(self, request: Request, status: int, fault: str | None) -> None:
        if not self.keep_log:
            return
        entry = LoggedRequest(
            request.method, request.path, request.query, request.body, status, time.time(), fault
        )
        with self._log_lock:
            self.requests.append(entry)

    def requests_matching(self, method: str | None = None, path: str = "") -> list[LoggedRequest]:
        with self._log_lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and re.search(path, r.path)
            ]

    def clear_log(self) -> None:
        with self._log_lock:
            self.requests.clear()

    def start(self) -> SimServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown() waits up to one poll interval
            name=f"sim-{self.app.name}",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> int:
        """Serve in the foreground until Ctrl-C, then close; exit code 0 (`syncd sim …`)."""
        try:
            self._server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()
        return 0

    def stop(self) -> None:
        # shutdown() waits for a serve_forever loop to end: it would wait for ever on a server
        # never started, or one whose foreground loop already ended (Ctrl-C).
        if self._thread is not None and self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> SimServer:
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
