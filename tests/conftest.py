"""Fixtures shared by every test: a real PostgreSQL, migrated once, cloned for each test.

- `pg_server` (session): the server. `SYNCD_TEST_DATABASE_URL` if set (an admin URL whose user
  may create databases; the runs must not share it concurrently), else a private throwaway
  cluster started from the machine's PostgreSQL binaries (`syncd.pgcluster`). A test that needs
  Postgres fails when there is none: it never skips.
- `template_database` (session): `syncd_template`, migrated to head with syncd.store.migrate.
- `database_url`: a fresh database `test_<n>`, copied from the template, dropped after the test.
- `engine`: a SQLAlchemy engine (psycopg 3) on `database_url`, disposed after the test.
- `empty_database_url`: a fresh database with no schema at all (for migration tests).
- `pg_cluster`: a private cluster of the test's own, for tests that stop or restart Postgres.
- `spec_dir`: the official specs (`SYNCD_SPEC_DIR`, default `<repo>/../shared/spec`); tests
  that read a spec file skip when it is absent.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import OperationalError
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from syncd.pgcluster import PgCluster, PgClusterError, PostgresNotFoundError, ping
from syncd.store import migrate
from tests.pg import PgServer

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DATABASE = "syncd_template"
TEST_DATABASE_URL = "SYNCD_TEST_DATABASE_URL"
SPEC_DIR = "SYNCD_SPEC_DIR"

# A developer's shell may hold the settings of a real deployment: keep them out of the tests,
# which set what they need themselves. Only the test suite's own variables pass.
for _name in [n for n in os.environ if n.startswith("SYNCD_")]:
    if _name not in (TEST_DATABASE_URL, SPEC_DIR):
        del os.environ[_name]

_database_numbers = itertools.count(1)


def _external_server(url: str) -> PgServer:
    # The URL may hold a password: the messages name the variable, never the value.
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        backend = None
    if backend != "postgresql":
        pytest.fail(f"{TEST_DATABASE_URL} is not a postgresql URL", pytrace=False)
    try:
        ping(url, timeout=10)
    except OperationalError as exc:  # libpq's message names host, port and user, not a password
        pytest.fail(
            f"{TEST_DATABASE_URL} is set but the server does not answer: {exc}", pytrace=False
        )
    return PgServer(url)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The PostgreSQL server for the whole run."""
    url = os.environ.get(TEST_DATABASE_URL)
    if url:
        yield _external_server(url)
        return
    cluster = _start_cluster()
    try:
        yield PgServer(cluster.url, cluster)
    finally:
        cluster.close()


def _start_cluster() -> PgCluster:
    cluster = PgCluster()
    try:
        cluster.start()
    except (PostgresNotFoundError, PgClusterError) as exc:
        cluster.close()
        problem = str(exc)
    else:
        return cluster
    # Outside the except block, so the report is this one message, not a chained traceback.
    pytest.fail(f"no PostgreSQL for the tests: {problem}", pytrace=False)


@pytest.fixture(scope="session")
def template_database(pg_server: PgServer) -> Iterator[str]:
    """The name of a database migrated to head, copied by `database_url` for each test."""
    pg_server.drop_database(TEMPLATE_DATABASE)  # left over by a killed run on an external server
    migrate.upgrade(pg_server.create_database(TEMPLATE_DATABASE))
    yield TEMPLATE_DATABASE
    pg_server.drop_database(TEMPLATE_DATABASE)


def _fresh_database(pg_server: PgServer, template: str | None) -> Iterator[str]:
    name = f"test_{next(_database_numbers)}"
    pg_server.drop_database(name)
    yield pg_server.create_database(name, template=template)
    pg_server.drop_database(name)


@pytest.fixture
def database_url(pg_server: PgServer, template_database: str) -> Iterator[str]:
    """URL of a fresh database of the test's own, with syncd's schema at head."""
    yield from _fresh_database(pg_server, template_database)


@pytest.fixture
def empty_database_url(pg_server: PgServer) -> Iterator[str]:
    """URL of a fresh database of the test's own, with no schema at all."""
    yield from _fresh_database(pg_server, None)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A SQLAlchemy engine (psycopg 3) on the test's database."""
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    """A private cluster of the test's own, which it may stop and restart."""
    cluster = _start_cluster()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def spec_dir() -> Path:
    """Where the official API specs are; it may be absent (tests skip then)."""
    configured = os.environ.get(SPEC_DIR)
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "spec"
