"""Schema migrations, run from code: `syncd db upgrade / current / check`, `syncd demo`, the tests.

The migrations are the Alembic scripts in `<repo>/alembic`, which the wheel carries as
`syncd/_alembic` (pyproject's hatch force-include). The Alembic configuration is built here, so
nothing depends on an alembic.ini in the working directory; `alembic/env.py` runs them on the
connection passed in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, pool
from sqlalchemy.engine import URL

from syncd import crashpoints
from syncd.store.schema import metadata

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
_CANDIDATES = (
    _PACKAGE_DIR / "_alembic",  # installed from a wheel
    _PACKAGE_DIR.parent / "alembic",  # a checkout, or an editable install
)

EngineOrUrl = Engine | URL | str


class MigrationsNotFoundError(RuntimeError):
    """Neither the packaged nor the checkout's migrations are there: a broken install."""


def script_location() -> Path:
    """The directory holding env.py and versions/."""
    for candidate in _CANDIDATES:
        if (candidate / "env.py").is_file():
            return candidate
    looked = ", ".join(str(c) for c in _CANDIDATES)
    raise MigrationsNotFoundError(f"syncd's migrations are missing (looked in {looked})")


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config for syncd's migrations; env.py uses `connection` when given."""
    config = Config()
    # ConfigParser interpolates '%': a path containing one must be escaped.
    config.set_main_option("script_location", str(script_location()).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@contextmanager
def _begin(target: EngineOrUrl) -> Iterator[Connection]:
    """A connection in a transaction that commits on success; a URL gets a one-off engine."""
    if isinstance(target, Engine):
        with target.begin() as connection:
            yield connection
        return
    engine = create_engine(target, poolclass=pool.NullPool)
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        engine.dispose()


def upgrade(target: EngineOrUrl, revision: str = "head") -> None:
    """Migrate the database up to `revision`, in one transaction (Postgres has transactional DDL).

    Concurrent runs are serialised by an advisory lock taken in env.py.
    """
    with _begin(target) as connection:
        command.upgrade(alembic_config(connection), revision)
        crashpoints.reach("migrate.before_commit")


def downgrade(target: EngineOrUrl, revision: str) -> None:
    """Migrate the database down to `revision` ("base" removes every table of syncd's)."""
    with _begin(target) as connection:
        command.downgrade(alembic_config(connection), revision)


def current(target: EngineOrUrl) -> str | None:
    """The database's revision, or None if it was never migrated."""
    with _begin(target) as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head() -> str:
    """The newest revision the code knows."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if revision is None:  # pragma: no cover - there is always a first migration
        raise MigrationsNotFoundError("no migration found")
    return revision


def check(target: EngineOrUrl) -> list[str]:
    """What differs between the tables the code declares and the database, one line each.

    Empty when the database is at head and matches `syncd.store.schema` (like `alembic check`).
    """
    with _begin(target) as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "target_metadata": metadata}
        )
        found = context.get_current_revision()
        diffs = compare_metadata(context, metadata)
    newest = head()
    problems = [] if found == newest else [f"database at revision {found}, code at {newest}"]
    return problems + [_describe(diff) for diff in diffs]


def _describe(diff: Any) -> str:
    """One line for an autogenerate difference (a tuple, or a list of column changes)."""
    if isinstance(diff, list):
        return "; ".join(_describe(item) for item in diff)
    op, *args = diff
    if op.startswith("modify_"):
        _schema, table, column, _existing, old, new = args
        return f"{op} {table}.{column}: {old!r} -> {new!r}"
    if op in ("add_column", "remove_column"):
        _schema, table, column = args
        return f"{op} {table}.{column.name}"
    thing = args[0]
    name = getattr(thing, "name", None) or repr(thing)
    table = getattr(thing, "table", None)
    return f"{op} {name} on {table.name}" if table is not None else f"{op} {name}"


def require_current(target: EngineOrUrl) -> None:
    """Stop with a ConfigError unless the database is at the revision the code expects."""
    from syncd.config import ConfigError

    found, newest = current(target), head()
    if found != newest:
        raise ConfigError(
            f"SYNCD_DATABASE_URL: the database schema is at {found or 'nothing'}, this syncd "
            f"needs {newest}: run `syncd db upgrade`"
        )
