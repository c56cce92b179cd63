"""Finding the PostgreSQL server programs (initdb, pg_ctl, postgres) on this machine."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

from syncd.pgcluster.errors import PostgresNotFoundError

SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
INSTALL_HINT = (
    "Install the PostgreSQL server: `apt-get install postgresql` on Debian/Ubuntu, "
    "`dnf install postgresql-server` on Fedora/RHEL, `apk add postgresql` on Alpine, "
    "`brew install postgresql` on macOS. Or use a server you already have: set "
    "SYNCD_DATABASE_URL (for the tests, SYNCD_TEST_DATABASE_URL)."
)
_GLOBS = (
    "/usr/lib/postgresql/*/bin",  # Debian, Ubuntu
    "/usr/pgsql-*/bin",  # PGDG packages on RHEL and Fedora
    "/opt/homebrew/opt/postgresql*/bin",  # Homebrew on Apple silicon
    "/usr/local/opt/postgresql*/bin",  # Homebrew on Intel
    "/Applications/Postgres.app/Contents/Versions/*/bin",
)


def find_bindir() -> Path:
    """The directory holding initdb, pg_ctl and postgres, or raise PostgresNotFoundError.

    Looked for through `pg_config --bindir`, then PATH, then the usual install directories,
    newest version first.
    """
    looked: list[str] = []
    for directory in candidate_dirs():
        looked.append(str(directory))
        if all(os.access(directory / name, os.X_OK) for name in SERVER_PROGRAMS):
            return directory
    checked = f" (checked {', '.join(dict.fromkeys(looked))})" if looked else ""
    raise PostgresNotFoundError(
        "PostgreSQL server programs (initdb, pg_ctl, postgres) not found through "
        f"`pg_config --bindir`, PATH or {', '.join(_GLOBS)}{checked}. {INSTALL_HINT}"
    )


def candidate_dirs() -> list[Path]:
    """Directories that may hold the server programs, in the order they are tried."""
    found: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        # Debian's libpq-dev ships pg_config without the server: its bindir may lack initdb.
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(  # noqa: S603 - a program found on PATH, no arguments of ours
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            found.append(Path(out.stdout.strip()))
    on_path = shutil.which("pg_ctl")
    if on_path:
        found += [Path(on_path).parent, Path(on_path).resolve().parent]
    globbed = [Path(p) for pattern in _GLOBS for p in glob.glob(pattern)]
    found += sorted(globbed, key=version_key, reverse=True)
    return found


def version_key(bindir: Path) -> tuple[int, ...]:
    """(16,) for /usr/lib/postgresql/16/bin, (14, 2) for .../postgresql@14.2/bin."""
    for part in reversed(bindir.parts):
        numbers = re.findall(r"\d+", part)
        if numbers:
            return tuple(int(n) for n in numbers)
    return ()
