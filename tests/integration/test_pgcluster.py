"""The throwaway PostgreSQL cluster: start, connect, restart, stop, clean up."""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text

from syncd.pgcluster import PgCluster, PgClusterError, ping
from syncd.pgcluster.admin import conninfo

REPO_ROOT = Path(__file__).resolve().parents[2]


def query(url: str, sql: str) -> object:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def execute(url: str, sql: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def accepts_connections(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_cluster_serves_its_url_on_loopback_with_durability_off(pg_cluster: PgCluster) -> None:
    url = pg_cluster.url

    assert url == f"postgresql+psycopg://postgres@127.0.0.1:{pg_cluster.port}/postgres"
    assert query(url, "SELECT current_user") == "postgres"
    assert query(url, "SHOW fsync") == "off"
    assert query(url, "SHOW synchronous_commit") == "off"
    assert query(url, "SHOW full_page_writes") == "off"
    assert query(url, "SHOW listen_addresses") == "127.0.0.1"
    assert query(url, "SHOW unix_socket_directories") == ""
    assert query(url, "SHOW server_encoding") == "UTF8"
    assert query(url, "SHOW lc_collate") == "C"


def test_create_database_copies_the_template(pg_cluster: PgCluster) -> None:
    source = pg_cluster.create_database("source")
    execute(source, "CREATE TABLE t AS SELECT 42 AS answer")

    copy = pg_cluster.create_database("copy", template="source")

    assert copy == pg_cluster.url_for("copy")
    assert query(copy, "SELECT answer FROM t") == 42


def test_drop_database_ends_open_sessions(pg_cluster: PgCluster) -> None:
    url = pg_cluster.create_database("busy")
    with psycopg.connect(conninfo(url)) as session:
        session.execute("SELECT 1")

        pg_cluster.drop_database("busy")

        with pytest.raises(psycopg.OperationalError):
            session.execute("SELECT 1")
    assert query(pg_cluster.url, "SELECT count(*) FROM pg_database WHERE datname = 'busy'") == 0


def test_restart_keeps_port_and_data(pg_cluster: PgCluster) -> None:
    url = pg_cluster.create_database("kept")
    execute(url, "CREATE TABLE t AS SELECT 'still here' AS v")
    port = pg_cluster.port

    pg_cluster.restart()

    assert pg_cluster.port == port
    assert pg_cluster.running
    assert query(url, "SELECT v FROM t") == "still here"


def test_stopped_cluster_refuses_connections_until_started(pg_cluster: PgCluster) -> None:
    pg_cluster.stop()

    assert not pg_cluster.running
    with pytest.raises(psycopg.OperationalError):
        ping(pg_cluster.url)

    pg_cluster.start()

    assert pg_cluster.running
    ping(pg_cluster.url)


def test_close_stops_the_server_and_removes_its_directory() -> None:
    with PgCluster() as cluster:
        root = cluster.data_dir.parent
        port = cluster.port
        assert root.is_dir()

    assert not root.exists()
    assert not accepts_connections(port)
    with pytest.raises(PgClusterError, match="closed"):
        cluster.start()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root must hand the server to another user")
def test_as_root_the_server_runs_as_the_postgres_os_user(pg_cluster: PgCluster) -> None:
    postgres = pwd.getpwnam("postgres")

    assert pg_cluster.data_dir.stat().st_uid == postgres.pw_uid
    pid = int((pg_cluster.data_dir / "postmaster.pid").read_text().split()[0])
    assert os.stat(f"/proc/{pid}").st_uid == postgres.pw_uid


OWNER = """
import sys
from syncd.pgcluster import PgCluster
cluster = PgCluster()
cluster.start()
print(cluster.data_dir.parent, cluster.port, flush=True)
sys.stdin.read()
"""


def test_a_killed_owner_leaves_no_cluster_behind() -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert owner.stdout is not None
    root_text, port_text = owner.stdout.readline().split()
    root, port = Path(root_text), int(port_text)
    assert root.is_dir()
    assert accepts_connections(port)

    owner.send_signal(signal.SIGKILL)
    owner.wait()
    assert owner.stdin is not None
    owner.stdin.close()
    owner.stdout.close()

    for _ in range(1200):  # bounded: a watchdog that never cleans up fails the test
        if not root.exists() and not accepts_connections(port):
            break
        time.sleep(0.05)
    assert not root.exists()
    assert not accepts_connections(port)
