"""The PostgreSQL server the tests run against: the private cluster, or SYNCD_TEST_DATABASE_URL."""

from __future__ import annotations

from dataclasses import dataclass

from syncd.pgcluster import PgCluster, create_database, drop_database, with_database


@dataclass(frozen=True)
class PgServer:
    """A server the tests may create and drop databases on.

    `url` is an admin URL (SQLAlchemy form, `postgresql+psycopg://...`) whose user may create
    databases. `cluster` is the private cluster when the tests started one, else None: tests that
    stop or restart Postgres use their own `pg_cluster` instead, never this shared server.
    """

    url: str
    cluster: PgCluster | None = None

    def url_for(self, database: str) -> str:
        return with_database(self.url, database)

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database `name` (a copy of `template` if given); return its URL."""
        return create_database(self.url, name, template=template)

    def drop_database(self, name: str) -> None:
        """Drop database `name` if it exists, ending the sessions still connected to it."""
        drop_database(self.url, name)
