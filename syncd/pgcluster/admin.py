"""Administration of a PostgreSQL server through an admin URL: create, drop, ping databases.

Used by `PgCluster`, and by the tests with any server (`SYNCD_TEST_DATABASE_URL`). URLs are
SQLAlchemy URLs (`postgresql+psycopg://user@host:port/db`); the admin URL's user must be allowed
to create databases.
"""

from __future__ import annotations

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

OperationalError = psycopg.OperationalError


def conninfo(url: str) -> str:
    """The libpq connection string for a SQLAlchemy URL (the `+driver` part dropped)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def with_database(url: str, database: str) -> str:
    """`url` pointing at another database of the same server."""
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def ping(url: str, *, timeout: float = 2) -> None:
    """Connect and run `SELECT 1`; raise OperationalError if the server does not answer."""
    with psycopg.connect(conninfo(url), connect_timeout=max(1, round(timeout))) as conn:
        conn.execute("SELECT 1")


def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    """Create database `name`, a copy of `template` if given; return its URL.

    A template must have no open session while it is copied (PostgreSQL refuses otherwise).
    """
    query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        query = sql.SQL("{} TEMPLATE {}").format(query, sql.Identifier(template))
    with psycopg.connect(conninfo(admin_url), autocommit=True) as conn:
        conn.execute(query)
    return with_database(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    """Drop database `name` if it exists, ending the sessions still connected to it."""
    with psycopg.connect(conninfo(admin_url), autocommit=True) as conn:
        if conn.info.server_version >= 130000:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            return
        # Before PostgreSQL 13 there is no FORCE: end the sessions, then drop.
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
