"""`syncd db grant-readonly ROLE`: the role reads every table and view of syncd's, writes none,
also reads what later migrations create, and a hostile role name cannot inject SQL."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from syncd.pgcluster.admin import conninfo
from syncd.store.grants import RoleNotFoundError, grant_readonly
from syncd.store.schema import metadata

_numbers = itertools.count(1)
PASSWORD = "reader-password"


class Roles:
    """Roles made by a test (roles belong to the whole server): dropped after it."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.names: list[str] = []

    def name(self, prefix: str = "syncd_reader") -> str:
        name = f"{prefix}_{os.getpid()}_{next(_numbers)}"
        self.names.append(name)
        return name

    def login(self, prefix: str = "syncd_reader") -> str:
        """A role that may log in with PASSWORD."""
        name = self.name(prefix)
        with psycopg.connect(conninfo(self.database_url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(name), sql.Literal(PASSWORD)
                )
            )
        return name

    def connect_as(self, role: str) -> psycopg.Connection[tuple[object, ...]]:
        url = make_url(self.database_url).set(username=role, password=PASSWORD)
        return psycopg.connect(conninfo(url.render_as_string(hide_password=False)), autocommit=True)

    def drop_all(self) -> None:
        with psycopg.connect(conninfo(self.database_url), autocommit=True) as conn:
            for name in self.names:
                exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
                if exists.fetchone() is None:
                    continue
                # Revokes its privileges here, default privileges included, then the role goes.
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.fixture
def roles(database_url: str) -> Iterator[Roles]:
    made = Roles(database_url)
    yield made
    made.drop_all()


def relations(engine: Engine) -> dict[str, str]:
    """Every table ('r') and view ('v') in syncd's schema, by name."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.relname, c.relkind FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'v')"
            )
        ).all()
    return {name: kind for name, kind in rows}


def privileges(engine: Engine, role: str, relation: str) -> dict[str, bool]:
    with engine.connect() as conn:
        return {
            privilege: conn.execute(
                text("SELECT has_table_privilege(:role, :relation, :privilege)"),
                {"role": role, "relation": relation, "privilege": privilege},
            ).scalar_one()
            for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
        }


def test_the_role_reads_every_table_and_view_and_writes_none(engine: Engine, roles: Roles) -> None:
    reader = roles.login()
    found = relations(engine)
    assert set(metadata.tables) <= set(found)
    assert {"v_pending_tars", "v_account_sync", "v_run_summary"} <= set(found)
    with engine.begin() as conn:  # a row, so the writes below would have something to change
        conn.execute(text("INSERT INTO sync_runs (kind, trigger) VALUES ('sync', 'manual')"))

    grants = grant_readonly(engine, reader)

    assert set(grants.tables) | set(grants.views) == set(found)
    with roles.connect_as(reader) as conn:
        for name, kind in sorted(found.items()):
            relation = sql.Identifier(name)
            conn.execute(sql.SQL("SELECT * FROM {} LIMIT 1").format(relation)).fetchall()
            assert privileges(engine, reader, name) == {
                "SELECT": True,
                "INSERT": False,
                "UPDATE": False,
                "DELETE": False,
                "TRUNCATE": False,
            }, name
            if kind != "r":
                continue
            first = conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = %s ORDER BY ordinal_position LIMIT 1",
                (name,),
            ).fetchone()
            assert first is not None
            column = sql.Identifier(str(first[0]))
            for write in (
                sql.SQL("INSERT INTO {} DEFAULT VALUES").format(relation),
                sql.SQL("UPDATE {} SET {} = {}").format(relation, column, column),
                sql.SQL("DELETE FROM {}").format(relation),
                sql.SQL("TRUNCATE {}").format(relation),
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(write)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sync_runs")).scalar_one() == 1


def test_tables_and_views_made_after_the_grant_are_readable(engine: Engine, roles: Roles) -> None:
    reader = roles.login()
    grant_readonly(engine, reader)

    with engine.begin() as conn:  # what a later migration would do, as the same user
        conn.execute(text("CREATE TABLE later_table (x integer)"))
        conn.execute(text("INSERT INTO later_table VALUES (1)"))
        conn.execute(text("CREATE VIEW v_later AS SELECT x FROM later_table"))

    with roles.connect_as(reader) as conn:
        assert conn.execute("SELECT x FROM later_table").fetchall() == [(1,)]
        assert conn.execute("SELECT x FROM v_later").fetchall() == [(1,)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO later_table VALUES (2)")


@pytest.mark.parametrize(
    "hostile",
    [
        'r"; DROP TABLE sync_runs; --',
        "r'; DROP TABLE sync_runs; --",
        "r %s %(x)s {} \\ ; DROP TABLE sync_runs",
    ],
)
def test_a_hostile_role_name_is_only_ever_a_name(
    engine: Engine, roles: Roles, hostile: str
) -> None:
    name = hostile + roles.name("x")  # unique per test; the role is dropped after it
    roles.names[-1] = name

    with pytest.raises(RoleNotFoundError):
        grant_readonly(engine, name)
    grants = grant_readonly(engine, name, create=True)

    assert grants.created
    with engine.connect() as conn:
        assert conn.execute(
            text("SELECT rolcanlogin FROM pg_roles WHERE rolname = :name"), {"name": name}
        ).all() == [(False,)]
    assert privileges(engine, name, "sync_runs")["SELECT"] is True
    assert "sync_runs" in relations(engine)


def test_a_missing_role_is_refused_naming_the_way_out_and_nothing_is_made(
    engine: Engine, roles: Roles
) -> None:
    name = roles.name()

    with pytest.raises(RoleNotFoundError, match=r"does not exist.*--create"):
        grant_readonly(engine, name)

    with engine.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": name})
        assert found.first() is None


def test_the_command_grants_and_refuses_a_missing_role_with_exit_2(
    database_url: str, roles: Roles
) -> None:
    reader = roles.login()
    env = {**os.environ, "SYNCD_DATABASE_URL": database_url}

    def syncd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "syncd", "db", "grant-readonly", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    done = syncd(reader)
    assert done.returncode == 0, done.stderr
    assert f"granted '{reader}'" in done.stdout
    assert "v_pending_tars" in done.stdout

    missing = syncd(roles.name())
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    assert "--create" in missing.stderr
