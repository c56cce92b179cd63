"""A private, throwaway PostgreSQL cluster, for the tests and for `syncd demo`.

It runs the machine's own server programs (`initdb`, `pg_ctl`, `postgres`, found by
`find_bindir`) on a free loopback port, with durability switched off (`fsync`,
`synchronous_commit`, `full_page_writes`): fast, and only for data nobody needs to keep. No unix
socket is opened; clients connect over TCP to 127.0.0.1 as the superuser `postgres`, trusted
without a password (loopback only).

    with PgCluster() as cluster:
        url = cluster.create_database("demo")   # postgresql+psycopg://postgres@127.0.0.1:PORT/demo

As root, the server runs as the `postgres` OS user (see `runas`).

Cleanup: `close()` (or leaving the `with` block) stops the server and removes the cluster's
directory. A watchdog process (`_watchdog.py`) does the same if the owner dies without closing,
even by SIGKILL. Should both be killed, what is left is a postmaster whose data directory is
`<tmp>/syncd-pg-*/data`: stop it with `pg_ctl stop -D <that dir> -m immediate`, then remove
`<tmp>/syncd-pg-*`.
"""

from syncd.pgcluster.admin import create_database, drop_database, ping, with_database
from syncd.pgcluster.binaries import INSTALL_HINT, find_bindir
from syncd.pgcluster.cluster import PgCluster
from syncd.pgcluster.errors import PgClusterError, PostgresNotFoundError

__all__ = [
    "INSTALL_HINT",
    "PgCluster",
    "PgClusterError",
    "PostgresNotFoundError",
    "create_database",
    "drop_database",
    "find_bindir",
    "ping",
    "with_database",
]
