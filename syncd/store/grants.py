"""`syncd db grant-readonly ROLE`: let a dashboard's role read syncd's tables and views, only read.

Grants CONNECT on the database, USAGE on syncd's schema, SELECT on every table of syncd's (those
declared in `syncd.store.schema`, plus `alembic_version` so the schema revision can be read) and on
every `v_*` view, and sets default privileges so that the tables and views later migrations create
are readable too. Nothing else is created, except the role itself when asked (`--create`: a
NOLOGIN group role, to be granted to login roles with `GRANT role TO user`).

Default privileges belong to the role that creates the objects: run this as the user that runs
`syncd db upgrade` (it owns syncd's tables), or future tables are not covered.

Every name reaches SQL through `psycopg.sql.Identifier`, which quotes it: a role name cannot
inject SQL, whatever characters it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql
from sqlalchemy import Connection, Engine, text

from syncd.store.schema import metadata

MIGRATIONS_TABLE = "alembic_version"
VIEW_PREFIX = "v_"


class RoleNotFoundError(Exception):
    """The role to grant to does not exist (and `create` was not asked)."""


@dataclass(frozen=True)
class Grants:
    """What `grant_readonly` granted, for the command to print."""

    role: str
    database: str
    schema: str
    tables: tuple[str, ...]
    views: tuple[str, ...]
    created: bool

    def summary(self) -> str:
        """One line saying what was granted."""
        made = "created NOLOGIN role; " if self.created else ""
        return (
            f"{made}granted {self.role!r}: CONNECT on {self.database}, USAGE on {self.schema}, "
            f"SELECT on {len(self.tables)} tables and {len(self.views)} views "
            f"({', '.join(self.views)}), and on the tables and views later migrations create"
        )


def readable_relations(conn: Connection, schema: str) -> tuple[list[str], list[str]]:
    """syncd's tables and `v_*` views that exist in `schema`, each list sorted by name."""
    rows = conn.execute(
        text(
            "SELECT c.relname, c.relkind FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = :schema AND c.relkind IN ('r', 'p', 'v', 'm')"
        ),
        {"schema": schema},
    ).all()
    ours = {*metadata.tables, MIGRATIONS_TABLE}
    tables = sorted(name for name, kind in rows if kind in ("r", "p") and name in ours)
    views = sorted(
        name for name, kind in rows if kind in ("v", "m") and name.startswith(VIEW_PREFIX)
    )
    return tables, views


def _role_exists(conn: Connection, role: str) -> bool:
    found = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role})
    return found.first() is not None


def _run(conn: Connection, statement: sql.Composed) -> None:
    # On the psycopg connection under SQLAlchemy's (same transaction): psycopg renders the
    # identifiers quoted, and with no parameters it reads no placeholder in them ('%' is literal).
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    raw.execute(statement)


def grant_readonly(engine: Engine, role: str, *, create: bool = False) -> Grants:
    """Grant `role` read access to syncd's tables and views, now and for later migrations.

    Raises RoleNotFoundError when the role does not exist, unless `create` (then a NOLOGIN role is
    created). Runs in one transaction: either every grant is made or none.
    """
    if not role:
        raise ValueError("the role name is empty")
    with engine.begin() as conn:
        created = False
        if not _role_exists(conn, role):
            if not create:
                raise RoleNotFoundError(
                    f"role {role!r} does not exist: create it first (CREATE ROLE … LOGIN "
                    "PASSWORD …), or pass --create for a NOLOGIN group role"
                )
            _run(conn, sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
            created = True
        database = conn.execute(text("SELECT current_database()")).scalar_one()
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        tables, views = readable_relations(conn, schema)
        who, where = sql.Identifier(role), sql.Identifier(schema)
        statements = [
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), who),
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(where, who),
            *(
                sql.SQL("GRANT SELECT ON {}.{} TO {}").format(where, sql.Identifier(name), who)
                for name in (*tables, *views)
            ),
            # Tables and views that later migrations create (as the current user) in this schema.
            sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
                where, who
            ),
        ]
        for statement in statements:
            _run(conn, statement)
    return Grants(role, database, schema, tuple(tables), tuple(views), created)
