"""`syncd check`: is the configuration complete, and do Postgres, Connect and the CRM answer?

One line per check (`ok   postgres …` / `FAIL connect …`); exit 0 when every check passes, 1
when one fails, 2 when the settings themselves are bad (as every other command). Each check
costs one or two cheap requests with short timeouts and at most one retry, so the command fits
in a container's or an operator's patience. Lines name URLs (the database's with its password
hidden) and the services' error codes, never a key, a token or a password.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import httpx
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine, pool, text
from sqlalchemy.exc import SQLAlchemyError

from syncd import bootstrap
from syncd.config import ConfigError, Settings, load_settings
from syncd.connect.errors import ConnectError
from syncd.crm.port import CrmError
from syncd.domain.mapping import Mapping, check_against
from syncd.logcontext import redact, register_secrets
from syncd.service.logs import secret_values
from syncd.store import migrate

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
CHECK_TIMEOUT = 10.0
"""Seconds for each request of a check (the configured timeout if shorter)."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: `detail` says what was found or what is wrong."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        """`ok   name detail` or `FAIL name detail`."""
        return f"{'ok' if self.ok else 'FAIL':<4} {self.name}: {self.detail}"


def quick(settings: Settings) -> Settings:
    """The settings with short timeouts and one retry at most, for checks that must not hang."""
    return settings.model_copy(
        update={
            "http_timeout": min(settings.http_timeout, CHECK_TIMEOUT),
            "retry_attempts": min(settings.retry_attempts, 2),
            "retry_max_seconds": min(settings.retry_max_seconds, CHECK_TIMEOUT),
        }
    )


def check_settings(config: Path | None) -> tuple[CheckResult, Settings | None, Mapping | None]:
    """Load the settings and the mapping, and require what `syncd run` needs."""
    try:
        settings = load_settings(config)
        settings.require("database_url", "connect_api_key")
        if settings.crm == "hubspot":
            settings.require("hubspot_token")
        else:
            settings.require("salesforce_url", "salesforce_token")
        fields = bootstrap.mapping(settings)
    except ConfigError as exc:
        return CheckResult("settings", False, str(exc)), None, None
    detail = f"crm {settings.crm}, database {settings.database_url_masked}"
    return CheckResult("settings", True, detail), settings, fields


def check_postgres(settings: Settings) -> CheckResult:
    """Connect, read the server version and the schema revision; fail unless it is at head."""
    url = settings.database_url_value
    engine = create_engine(
        url,
        poolclass=pool.NullPool,
        hide_parameters=True,
        connect_args={"connect_timeout": max(1, round(CHECK_TIMEOUT))},
    )
    try:
        with engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar_one()
        found, newest = migrate.current(engine), migrate.head()
    except SQLAlchemyError as exc:
        return CheckResult("postgres", False, f"{settings.database_url_masked}: {_db_error(exc)}")
    finally:
        engine.dispose()
    server = f"PostgreSQL {str(version).split()[0]},"
    if found != newest:
        remedy = "run `syncd db upgrade`" if _known(found) else "it is newer: upgrade syncd"
        detail = f"schema {found or '(empty)'}, this syncd needs {newest}: {remedy}"
        return CheckResult("postgres", False, f"{server} {detail}")
    return CheckResult("postgres", True, f"{server} schema {found} = head")


def _known(revision: str | None) -> bool:
    """Whether this syncd's migrations know `revision` (None: an empty database)."""
    if revision is None:
        return True
    try:
        ScriptDirectory.from_config(migrate.alembic_config()).get_revision(revision)
    except CommandError:
        return False
    return True


def _db_error(exc: SQLAlchemyError) -> str:
    # The driver's message names host, port, user and database, never the password; only its
    # first line is kept (libpq adds hints on the next ones).
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(original).__name__


def check_connect(settings: Settings) -> CheckResult:
    """One authenticated `GET /tier/accounts?limit=0&offset=0`: its total, or Connect's error."""
    name = f"connect {settings.connect_url}"
    try:
        with bootstrap.connect_client(quick(settings)) as client:
            total = client.count("/tier/accounts", "")
    except ConnectError as exc:
        return CheckResult(name, False, exc.message)
    except ValueError as exc:  # an API key with nothing but the "ApiKey" prefix
        return CheckResult(name, False, str(exc))
    return CheckResult(name, True, f"{total} tier accounts visible")


def check_crm(settings: Settings, fields: Mapping) -> CheckResult:
    """Read the CRM's account and contact properties and check the mapping against them."""
    url = settings.hubspot_url if settings.crm == "hubspot" else settings.salesforce_url
    name = f"{settings.crm} {url}"
    try:
        adapter = bootstrap.crm(quick(settings), fields)
        try:
            missing = check_against(fields, adapter.properties(), adapter.contact_properties())
        finally:
            getattr(adapter, "close", lambda: None)()
    except (CrmError, httpx.HTTPError) as exc:
        return CheckResult(name, False, str(exc))
    if missing:
        detail = f"missing {', '.join(missing)} (`syncd crm setup` creates syncd's own)"
        return CheckResult(name, False, detail)
    count = len(fields.account) + len(fields.contact)
    return CheckResult(
        name, True, f"all {count} mapped properties present (key {fields.key_property})"
    )


def reachability_checks(settings: Settings, fields: Mapping) -> list[Callable[[], CheckResult]]:
    """Every reachability check, in order; each runs whatever the others' outcome."""
    return [
        lambda: check_postgres(settings),
        lambda: check_connect(settings),
        lambda: check_crm(settings, fields),
    ]


def run(config: Path | None, out: TextIO) -> int:
    """Print one line per check to `out`; the exit code (0 all ok, 1 a check failed, 2 config)."""
    first, settings, fields = check_settings(config)
    print(first.line(), file=out, flush=True)
    if settings is None or fields is None:
        return EXIT_USAGE
    # Belt and braces: the messages quoted below come from the services and drivers, which are
    # not supposed to echo a secret; should one do it anyway, it is masked here and in the logs.
    # A database URL without a password is no secret: it stays readable in the lines.
    shown = settings.database_url_masked
    register_secrets(s for s in secret_values(settings) if s != shown)
    failed = 0
    for check in reachability_checks(settings, fields):
        result = check()
        print(redact(result.line()), file=out, flush=True)
        failed += not result.ok
    return EXIT_OK if not failed else EXIT_FAILED
