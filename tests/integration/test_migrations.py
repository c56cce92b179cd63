"""The migrations build exactly the schema that syncd/store/schema.py declares, and back."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import CheckConstraint, Connection, Engine, create_engine, inspect, text

from syncd.config import ConfigError
from syncd.store import migrate
from syncd.store.schema import metadata

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCK_KEY = 0x73796E6364  # alembic/env.py's MIGRATION_LOCK_KEY


def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_on_an_empty_database_reaches_head(empty_database_url: str) -> None:
    assert migrate.current(empty_database_url) is None

    migrate.upgrade(empty_database_url)

    assert migrate.current(empty_database_url) == migrate.head()
    assert table_names(empty_database_url) == set(metadata.tables) | {"alembic_version"}


def test_migrated_database_matches_the_declared_schema(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url)

    assert migrate.check(empty_database_url) == []


def test_migrations_create_the_declared_check_constraints(empty_database_url: str) -> None:
    # Autogenerate (and so `check`) does not compare CHECK constraints: compare them here.
    migrate.upgrade(empty_database_url)
    engine = create_engine(empty_database_url)
    try:
        inspector = inspect(engine)
        for table in metadata.sorted_tables:
            found = {c["name"] for c in inspector.get_check_constraints(table.name)}
            declared = {c.name for c in table.constraints if isinstance(c, CheckConstraint)}
            assert found == declared, table.name
    finally:
        engine.dispose()


def test_check_reports_a_database_that_was_never_migrated(empty_database_url: str) -> None:
    problems = migrate.check(empty_database_url)

    assert f"database at revision None, code at {migrate.head()}" in problems
    assert "add_table tier_accounts" in problems


def test_check_reports_a_schema_changed_outside_migrations(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE tier_accounts ADD COLUMN nickname text"))
        conn.execute(text("DROP INDEX ix_sync_ledger_run_id"))
        conn.execute(text("ALTER TABLE sync_cursors ALTER COLUMN value TYPE varchar(20)"))

    problems = migrate.check(engine)

    assert "remove_column tier_accounts.nickname" in problems
    assert "add_index ix_sync_ledger_run_id on sync_ledger" in problems
    assert any(p.startswith("modify_type sync_cursors.value") for p in problems)


def test_downgrade_to_base_removes_everything_and_upgrade_rebuilds_it(
    empty_database_url: str,
) -> None:
    migrate.upgrade(empty_database_url)

    migrate.downgrade(empty_database_url, "base")

    assert migrate.current(empty_database_url) is None
    assert table_names(empty_database_url) == {"alembic_version"}

    migrate.upgrade(empty_database_url)

    assert migrate.current(empty_database_url) == migrate.head()
    assert migrate.check(empty_database_url) == []


def test_every_test_database_starts_at_head(engine: Engine) -> None:
    assert migrate.current(engine) == migrate.head()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM tier_accounts")).scalar_one() == 0


def test_concurrent_upgrades_wait_for_each_other(empty_database_url: str) -> None:
    holder = create_engine(empty_database_url)
    errors: list[BaseException] = []

    def upgrade() -> None:
        try:
            migrate.upgrade(empty_database_url)
        except BaseException as exc:  # noqa: BLE001 - a thread's failure must reach the test
            errors.append(exc)

    try:
        with holder.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})
            worker = threading.Thread(target=upgrade)
            worker.start()
            wait_for_advisory_lock_waiter(conn)
            assert "alembic_version" not in table_names(empty_database_url)
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
            conn.commit()
        worker.join(timeout=60)
    finally:
        holder.dispose()

    assert not worker.is_alive()
    assert errors == []
    assert migrate.current(empty_database_url) == migrate.head()


def wait_for_advisory_lock_waiter(conn: Connection) -> None:
    """Until another session waits on an advisory lock (bounded, so a bug fails, not hangs)."""
    query = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    for _ in range(600):
        if conn.execute(query).scalar_one():
            return
        time.sleep(0.05)
    pytest.fail("the second upgrade never waited for the migration lock")


def alembic_cli(
    *args: str, database_url: str | None, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """`alembic -c <repo>/alembic.ini ARGS` run from `cwd`, with only this database configured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    if database_url is not None:
        env["SYNCD_DATABASE_URL"] = database_url
    env["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(REPO_ROOT / "alembic.ini"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_alembic_command_line_takes_the_database_from_syncd_settings(
    database_url: str, tmp_path: Path
) -> None:
    result = alembic_cli("check", database_url=database_url, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr


def test_alembic_command_line_without_a_database_names_the_setting(tmp_path: Path) -> None:
    result = alembic_cli("current", database_url=None, cwd=tmp_path)

    assert result.returncode != 0
    assert "SYNCD_DATABASE_URL is not set" in result.stderr


def test_packaged_migrations_are_preferred_to_the_checkout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    packaged, checkout = tmp_path / "syncd" / "_alembic", tmp_path / "alembic"
    for directory in (packaged, checkout):
        directory.mkdir(parents=True)
        (directory / "env.py").write_text("")
    monkeypatch.setattr(migrate, "_CANDIDATES", (packaged, checkout))

    assert migrate.script_location() == packaged
    assert migrate.alembic_config().get_main_option("script_location") == str(packaged)

    (packaged / "env.py").unlink()
    assert migrate.script_location() == checkout

    (checkout / "env.py").unlink()
    with pytest.raises(migrate.MigrationsNotFoundError):
        migrate.script_location()


def test_require_current_refuses_a_database_behind_the_code(empty_database_url: str) -> None:
    with pytest.raises(ConfigError, match="syncd db upgrade"):
        migrate.require_current(empty_database_url)

    migrate.upgrade(empty_database_url)

    migrate.require_current(empty_database_url)
