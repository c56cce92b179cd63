"""Alembic environment for syncd's schema.

The database comes from `config.attributes["connection"]` when the caller passes one in
(`syncd.store.migrate`, the tests), else from syncd's settings (`SYNCD_DATABASE_URL` or
`SYNCD_DATABASE_URL_FILE`): never from alembic.ini, so a password is never written into a file.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from logging.config import fileConfig
from typing import Any

from alembic import context, util
from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy import Connection, create_engine, pool, text

from syncd import crashpoints
from syncd.config import ConfigError, load_settings
from syncd.store.schema import metadata

config = context.config
target_metadata = metadata

# Serialises concurrent migration runs on one database (say, one `syncd db upgrade` per replica
# at deploy time): the second waits, then finds nothing left to do. Any constant works as long
# as nothing else in syncd uses it; this one is "syncd" in ASCII.
MIGRATION_LOCK_KEY = 0x73796E6364

OPTIONS: dict[str, Any] = {"target_metadata": target_metadata, "compare_type": True}

if config.config_file_name is not None and not config.attributes.get("connection"):
    # Only the `alembic` command line: an application calling in keeps its own logging.
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _database_url() -> str:
    try:
        return load_settings().database_url_value
    except ConfigError as exc:
        raise util.CommandError(str(exc)) from None


def run_migrations_offline() -> None:
    """`alembic upgrade --sql`: print the SQL instead of running it."""
    context.configure(
        url=_database_url(),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **OPTIONS,
    )
    with context.begin_transaction():
        context.run_migrations()


def _revision_applied(
    ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
) -> None:
    # A named point between two revisions (syncd.crashpoints): the tests kill `syncd db upgrade`
    # there and check that the database stays at the revision it started from.
    crashpoints.reach("migrate.revision_applied")


def _run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, on_version_apply=_revision_applied, **OPTIONS)
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against the passed-in connection, or a connection to the configured database."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_migrations(connection)
        return
    engine = create_engine(_database_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            _run_migrations(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
