"""`syncd run` as a real process seen from outside: /metrics scraped and parsed, /readyz flipping
when its Postgres stops and back when it restarts, and sd_notify datagrams on a real socket."""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncd.pgcluster import PgCluster
from syncd.sim.base import SimServer
from syncd.sim.connect import ConnectSim
from syncd.sim.hubspot import HubSpotSim
from syncd.store import migrate
from tests.e2e.test_daemon import Syncd, until

KEY = "SU-000-000-000:telemetry-key"
TOKEN = "pat-telemetry-token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(
    scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in scraped.items() if n == name and wanted <= set(ls))


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify.sock"))
    listener.settimeout(30)
    yield listener
    listener.close()


def received(listener: socket.socket, wanted: str) -> list[str]:
    messages: list[str] = []
    while not any(wanted in message for message in messages):
        messages.append(listener.recv(4096).decode())
    return messages


def test_the_daemon_serves_metrics_and_readiness_and_tells_systemd(
    pg_cluster: PgCluster, tmp_path: Path, notify_socket: socket.socket
) -> None:
    database_url = pg_cluster.create_database("syncd_telemetry")
    migrate.upgrade(database_url)
    connect = ConnectSim(KEY)
    connect.seed(3, accounts=20, capability_on_ratio=1.0)
    hubspot = HubSpotSim(TOKEN, limits=None, custom_properties=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with SimServer(connect) as connect_server, SimServer(hubspot) as hubspot_server:
        env = {
            "SYNCD_DATABASE_URL": database_url,
            "SYNCD_CONNECT_URL": f"{connect_server.url}/public/v1",
            "SYNCD_CONNECT_API_KEY": KEY,
            "SYNCD_HUBSPOT_URL": hubspot_server.url,
            "SYNCD_HUBSPOT_TOKEN": TOKEN,
            "SYNCD_SYNC_DEFAULT": "on",
            "SYNCD_INTERVAL": "2",
            "SYNCD_HTTP_ADDR": f"127.0.0.1:{port}",
            "NOTIFY_SOCKET": notify_socket.getsockname(),
            "WATCHDOG_USEC": "2000000",
        }
        daemon = Syncd(["run"], env, tmp_path, "daemon")
        try:
            assert any("READY=1" in m for m in received(notify_socket, "READY=1"))
            assert received(notify_socket, "WATCHDOG=1")

            def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
                try:
                    found = samples(httpx.get(f"{base}/metrics").text)
                except httpx.TransportError:
                    return None
                return found if total(found, "syncd_cycles_total", outcome="success") else None

            scraped = until(scrape, "a successful cycle in /metrics", timeout=60)
            connect_log = len(connect_server.requests)
            counted = total(scraped, "syncd_api_requests_total", system="connect")
            assert 0 < counted <= connect_log
            assert total(scraped, "syncd_api_requests_total", system="hubspot") > 0
            assert total(scraped, "syncd_records_total", phase="push", outcome="created") == 20
            assert total(scraped, "syncd_up") == 1
            assert httpx.get(f"{base}/readyz").status_code == 200

            pg_cluster.stop()
            until(lambda: httpx.get(f"{base}/readyz").status_code == 503, "/readyz 503", 30)
            assert httpx.get(f"{base}/healthz").status_code == 200
            pg_cluster.start()
            until(lambda: httpx.get(f"{base}/readyz").status_code == 200, "/readyz 200", 60)

            daemon.signal(signal.SIGTERM)
            assert daemon.wait() == 0, daemon.stderr()[-3000:]
            assert received(notify_socket, "STOPPING=1")
        finally:
            daemon.stop()
